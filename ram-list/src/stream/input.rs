//! [`CountingReader`]: the byte source every stream parser reads from, with the offset of
//! each field for its errors.

use std::io::{self, Read};

use super::error::{StreamError, StreamErrorKind};

/// A [`Read`] adaptor that counts consumed bytes, can peek one byte, and offers big-endian
/// field readers returning [`StreamError`]s that carry the field's offset.
///
/// ```
/// use ram_list::stream::CountingReader;
///
/// let mut r = CountingReader::new(&b"\x00\x02\x03ram"[..]);
/// assert_eq!(r.read_be16().unwrap(), 2);
/// assert_eq!(r.read_idstr("idstr").unwrap(), "ram");
/// assert_eq!(r.offset(), 6);
/// assert_eq!(r.read_u8().unwrap_err().offset(), 6); // truncated at byte 6
/// ```
#[derive(Debug)]
pub struct CountingReader<R> {
    inner: R,
    offset: u64,
    peeked: Option<u8>,
}

impl<R: Read> CountingReader<R> {
    /// Wraps `inner`; offsets count from the current position of `inner`.
    pub fn new(inner: R) -> Self {
        CountingReader {
            inner,
            offset: 0,
            peeked: None,
        }
    }

    /// Number of bytes consumed so far (a peeked byte is not consumed).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Returns the wrapped reader. A byte obtained by [`Self::peek_u8`] and not consumed
    /// yet is lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Returns the next byte without consuming it, or `None` at end of file.
    pub fn peek_u8(&mut self) -> Result<Option<u8>, StreamError> {
        if let Some(b) = self.peeked {
            return Ok(Some(b));
        }
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(None),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(Some(b[0]));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
                Err(source) => return Err(StreamError::io(self.offset, source)),
            }
        }
    }

    /// Fills `buf` completely, or fails with [`StreamErrorKind::Truncated`].
    pub fn read_bytes(&mut self, buf: &mut [u8]) -> Result<(), StreamError> {
        let start = self.offset;
        self.fill(buf, start, buf.len() as u64, 0)
    }

    /// Fills `buf`, a part of a field of `needed` bytes that starts at `start` and of which
    /// `done` bytes were read before: a short read is reported for the whole field.
    fn fill(
        &mut self,
        buf: &mut [u8],
        start: u64,
        needed: u64,
        done: u64,
    ) -> Result<(), StreamError> {
        let mut filled = 0;
        while filled < buf.len() {
            let got = done + filled as u64;
            match self.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(StreamError::new(
                        start,
                        StreamErrorKind::Truncated { needed, got },
                    ))
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(StreamError::new(
                        start,
                        StreamErrorKind::Truncated { needed, got },
                    ))
                }
                Err(e) => return Err(StreamError::io(self.offset, e)),
            }
        }
        Ok(())
    }

    /// Reads `len` bytes in chunks of at most 4 KiB, handing each to `sink`: memory never
    /// grows ahead of the data actually read, so a bogus `len` cannot make a huge
    /// allocation.
    fn read_chunked(&mut self, len: u64, mut sink: impl FnMut(&[u8])) -> Result<(), StreamError> {
        let start = self.offset;
        let mut chunk = [0u8; 4096];
        let mut done = 0u64;
        while done < len {
            let want = (len - done).min(chunk.len() as u64) as usize;
            self.fill(&mut chunk[..want], start, len, done)?;
            sink(&chunk[..want]);
            done += want as u64;
        }
        Ok(())
    }

    /// Reads exactly `len` bytes into a new vector. Memory grows with the data actually
    /// read, so a bogus `len` cannot trigger a huge allocation; callers should still bound
    /// `len`.
    pub fn read_vec(&mut self, len: usize) -> Result<Vec<u8>, StreamError> {
        let mut out = Vec::with_capacity(len.min(64 * 1024));
        self.read_chunked(len as u64, |c| out.extend_from_slice(c))?;
        Ok(out)
    }

    /// Consumes and discards `len` bytes.
    pub fn skip(&mut self, len: u64) -> Result<(), StreamError> {
        self.read_chunked(len, |_| ())
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8, StreamError> {
        let mut b = [0u8; 1];
        self.read_bytes(&mut b)?;
        Ok(b[0])
    }

    /// Reads a big-endian `u16`.
    pub fn read_be16(&mut self) -> Result<u16, StreamError> {
        let mut b = [0u8; 2];
        self.read_bytes(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    /// Reads a big-endian `u32`.
    pub fn read_be32(&mut self) -> Result<u32, StreamError> {
        let mut b = [0u8; 4];
        self.read_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// Reads a big-endian `u64`.
    pub fn read_be64(&mut self) -> Result<u64, StreamError> {
        let mut b = [0u8; 8];
        self.read_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    /// Reads a QEMU idstr: a `u8` length followed by that many UTF-8 bytes (no
    /// terminating NUL). `what` names the field in error messages.
    pub fn read_idstr(&mut self, what: &'static str) -> Result<String, StreamError> {
        let mut s = String::new();
        self.read_idstr_into(what, &mut s)?;
        Ok(s)
    }

    /// [`read_idstr`](Self::read_idstr) into `out` (cleared first), reusing its buffer.
    pub fn read_idstr_into(
        &mut self,
        what: &'static str,
        out: &mut String,
    ) -> Result<(), StreamError> {
        out.clear();
        let len = self.read_u8()?;
        let start = self.offset;
        let mut buf = [0u8; 255];
        let buf = &mut buf[..usize::from(len)];
        self.read_bytes(buf)?;
        let s = std::str::from_utf8(buf)
            .map_err(|_| StreamError::new(start, StreamErrorKind::InvalidUtf8 { what }))?;
        out.push_str(s);
        Ok(())
    }
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if let Some(b) = self.peeked.take() {
            buf[0] = b;
            self.offset += 1;
            return Ok(1);
        }
        loop {
            match self.inner.read(buf) {
                Ok(n) => {
                    self.offset += n as u64;
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn field_helpers_and_truncation() {
        let mut data = vec![1u8, 2, 3, 4, 5, 6, 7];
        data.extend_from_slice(&0x0809_0a0b_0c0d_0e0f_u64.to_be_bytes());
        data.extend_from_slice(b"\x02ab");
        data.extend_from_slice(&[9; 10]);
        let mut r = CountingReader::new(&data[..]);
        assert_eq!(r.peek_u8().unwrap(), Some(1));
        assert_eq!(r.offset(), 0);
        assert_eq!(r.read_u8().unwrap(), 1);
        assert_eq!(r.read_be16().unwrap(), 0x0203);
        assert_eq!(r.read_be32().unwrap(), 0x0405_0607);
        assert_eq!(r.read_be64().unwrap(), 0x0809_0a0b_0c0d_0e0f);
        assert_eq!(r.read_idstr("x").unwrap(), "ab");
        assert_eq!(r.offset(), 18);
        r.skip(3).unwrap();
        assert_eq!(r.read_vec(2).unwrap(), vec![9, 9]);
        let e = r.skip(10).unwrap_err();
        assert_eq!(e.offset(), 23);
        assert_eq!(e.kind(), &StreamErrorKind::Truncated { needed: 10, got: 5 });
        assert_eq!(r.peek_u8().unwrap(), None);
        // A long field read in chunks reports the whole field.
        let big = vec![0u8; 5000];
        let e = CountingReader::new(&big[..]).read_vec(9000).unwrap_err();
        assert_eq!(
            e.kind(),
            &StreamErrorKind::Truncated {
                needed: 9000,
                got: 5000
            }
        );
        // Not UTF-8.
        let e = CountingReader::new(&b"\x02\xff\xfe"[..])
            .read_idstr("name")
            .unwrap_err();
        assert_eq!(
            (e.offset(), e.kind()),
            (1, &StreamErrorKind::InvalidUtf8 { what: "name" })
        );
    }
}
