//! [`ReturnPathMessage`]: the messages a destination sends back to its source on QEMU's
//! return path (the same connection, the other direction), read and written.
//!
//! A source asks for the return path with the `MIG_CMD_OPEN_RETURN_PATH` command; the
//! destination then answers every `MIG_CMD_PING` with a `PONG` and, once it has loaded the
//! whole stream, sends `SHUT` with status 0 (QEMU 7.2 sends no `SHUT` when its load fails:
//! it exits, and the connection closes). Each message is `be16 type`, `be16 len`, `len`
//! bytes.

use std::io::Read;

use super::error::{StreamError, StreamErrorKind};
use super::input::CountingReader;
use super::{MIG_RP_MSG_PONG, MIG_RP_MSG_SHUT};

/// One return-path message.
///
/// ```
/// use ram_list::stream::{CountingReader, ReturnPathMessage};
///
/// let mut out = Vec::new();
/// ReturnPathMessage::Pong { value: 1 }.encode(&mut out);
/// ReturnPathMessage::Shut { status: 0 }.encode(&mut out);
/// let mut r = CountingReader::new(&out[..]);
/// assert_eq!(ReturnPathMessage::read(&mut r).unwrap(), ReturnPathMessage::Pong { value: 1 });
/// assert_eq!(ReturnPathMessage::read(&mut r).unwrap(), ReturnPathMessage::Shut { status: 0 });
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnPathMessage {
    /// `MIG_RP_MSG_SHUT`: the destination is done; `status` 0 means it loaded the stream.
    Shut {
        /// 0 on success.
        status: u32,
    },
    /// `MIG_RP_MSG_PONG`: the answer to a `PING` command carrying `value`.
    Pong {
        /// The ping's value.
        value: u32,
    },
    /// Any other message (postcopy page requests, bitmaps): its type and data.
    Other {
        /// The message type.
        kind: u16,
        /// Its data (at most 65535 bytes).
        data: Vec<u8>,
    },
}

impl ReturnPathMessage {
    /// Append the message's bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let (kind, data) = match self {
            ReturnPathMessage::Shut { status } => (MIG_RP_MSG_SHUT, &status.to_be_bytes()[..]),
            ReturnPathMessage::Pong { value } => (MIG_RP_MSG_PONG, &value.to_be_bytes()[..]),
            ReturnPathMessage::Other { kind, data } => (*kind, &data[..]),
        };
        let data = &data[..data.len().min(usize::from(u16::MAX))];
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&(data.len() as u16).to_be_bytes());
        out.extend_from_slice(data);
    }

    /// Read one message. A `SHUT` or `PONG` whose data is not 4 bytes is
    /// [`StreamErrorKind::BadReturnPathMessage`].
    ///
    /// # Blocking
    ///
    /// Blocks in `r.read` until the message has arrived.
    pub fn read<R: Read>(r: &mut CountingReader<R>) -> Result<Self, StreamError> {
        let at = r.offset();
        let kind = r.read_be16()?;
        let len = r.read_be16()?;
        let data = r.read_vec(usize::from(len))?;
        let word = || -> Result<u32, StreamError> {
            let bytes: [u8; 4] = data[..].try_into().map_err(|_| {
                StreamError::new(at, StreamErrorKind::BadReturnPathMessage { kind, len })
            })?;
            Ok(u32::from_be_bytes(bytes))
        };
        Ok(match kind {
            MIG_RP_MSG_SHUT => ReturnPathMessage::Shut { status: word()? },
            MIG_RP_MSG_PONG => ReturnPathMessage::Pong { value: word()? },
            _ => ReturnPathMessage::Other { kind, data },
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_shut_of_the_wrong_length_is_an_error_and_others_pass_through() {
        let bytes = [0, 1, 0, 2, 0, 0];
        let e = ReturnPathMessage::read(&mut CountingReader::new(&bytes[..])).unwrap_err();
        assert_eq!(
            e.kind(),
            &StreamErrorKind::BadReturnPathMessage { kind: 1, len: 2 }
        );
        let mut out = Vec::new();
        let other = ReturnPathMessage::Other {
            kind: 4,
            data: vec![1, 2, 3],
        };
        other.encode(&mut out);
        let got = ReturnPathMessage::read(&mut CountingReader::new(&out[..])).unwrap();
        assert_eq!(got, other);
        // Cut short: a typed truncation, not a hang or a panic.
        let e = ReturnPathMessage::read(&mut CountingReader::new(&out[..5])).unwrap_err();
        assert!(matches!(e.kind(), StreamErrorKind::Truncated { .. }), "{e}");
    }
}
