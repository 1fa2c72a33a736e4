//! [`SourceError`]: how a migration toward a real destination ends when it does not
//! complete, named by what happened to the destination.

use std::error::Error;
use std::fmt;
use std::io;

use ram_list::migration::SaveError;
use ram_list::stream::StreamError;

/// A migration that did not complete.
#[derive(Debug)]
#[non_exhaustive]
pub enum SourceError {
    /// The destination could not be reached.
    Connect {
        /// Its URI.
        peer: String,
        /// Why.
        source: io::Error,
    },
    /// Sending the stream failed after `bytes` bytes.
    Send {
        /// The destination.
        peer: String,
        /// Bytes sent before the failure.
        bytes: u64,
        /// The saver's error.
        source: SaveError,
    },
    /// The destination closed the return path without its `SHUT`: it did not load the
    /// stream (QEMU exits when an incoming migration fails).
    NotConfirmed {
        /// The destination.
        peer: String,
    },
    /// The destination's `SHUT` reported a failure.
    DestinationFailed {
        /// The destination.
        peer: String,
        /// The status it sent.
        status: u32,
    },
    /// The destination sent this many return-path messages without a `SHUT`.
    NoShut {
        /// The destination.
        peer: String,
        /// The messages it sent.
        messages: usize,
    },
    /// Reading the return path failed (a timeout, a malformed message).
    ReturnPath {
        /// The destination.
        peer: String,
        /// Why.
        source: StreamError,
    },
}

impl SourceError {
    /// The kind of the I/O error under a send failure.
    fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            SourceError::Send {
                source: SaveError::Io(e),
                ..
            } => Some(e.kind()),
            _ => None,
        }
    }
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::Connect { peer, .. } => write!(f, "cannot reach the destination {peer}"),
            SourceError::Send { peer, bytes, .. } => match self.io_kind() {
                Some(
                    io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted,
                ) => write!(
                    f,
                    "the destination {peer} closed the connection after {bytes} bytes: it refused the stream or stopped (a QEMU destination exits when it cannot load a migration: see its log)"
                ),
                Some(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => write!(
                    f,
                    "the destination {peer} took nothing more after {bytes} bytes (--timeout-s)"
                ),
                _ => write!(f, "sending the migration to {peer} failed after {bytes} bytes"),
            },
            SourceError::NotConfirmed { peer } => write!(
                f,
                "the destination {peer} closed the connection without confirming the migration: it did not load the stream (a QEMU destination exits when it cannot: see its log)"
            ),
            SourceError::DestinationFailed { peer, status } => write!(
                f,
                "the destination {peer} reported a failed load (SHUT status {status})"
            ),
            SourceError::NoShut { peer, messages } => write!(
                f,
                "the destination {peer} sent {messages} return-path messages and no SHUT"
            ),
            SourceError::ReturnPath { peer, .. } => write!(
                f,
                "no confirmation from the destination {peer} on the return path"
            ),
        }
    }
}

impl Error for SourceError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SourceError::Connect { source, .. } => Some(source),
            SourceError::Send { source, .. } => Some(source),
            SourceError::ReturnPath { source, .. } => Some(source),
            _ => None,
        }
    }
}
