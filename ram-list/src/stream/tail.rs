//! The device-state tail of a stream: the FULL sections after the RAM section, the EOF
//! record and the vmstate description, delimited without knowing the devices.
//!
//! # How the sections are delimited
//!
//! A device body has no length prefix, and only the device's own code can parse it. But
//! the tail has a rigid frame: every body is followed by its footer (`0x7e`, `be32` id of
//! its section), and every footer by either the header of the next FULL section or the
//! EOF record, which a source follows with the vmstate description (`0x06`, `be32 len`,
//! JSON). So the scanner reads the body byte by byte and stops at a footer candidate only
//! if what follows it is one of those two:
//!
//! * a FULL header: a section id no earlier section used, an idstr of 1 to 255 printable
//!   ASCII bytes, instance and version ids;
//! * the EOF record, followed by the end of the stream or by a whole description that
//!   starts with `{` and ends the stream.
//!
//! A body that happens to contain such a sequence would be cut there; the description
//! catches it: it names every device section in order, and a split whose sections it
//! does not list in that order is an error
//! ([`StreamErrorKind::DeviceSectionUnlisted`]), never a silent mis-split.
//!
//! # Liveness
//!
//! The scanner reads only when it needs a byte it has not seen (it never waits for the
//! end of the connection), so it works with a source that keeps the connection open
//! after the stream, as QEMU does with a return path until the destination's `SHUT`.
//! One case cannot be decided without waiting: after an EOF record, whether a
//! description follows; a source that sends none (`-machine suppress-vmdesc=on`) must
//! close the connection (or not use a return path).

use std::collections::HashSet;
use std::io::{self, Read};

use super::device::DeviceSection;
use super::error::{StreamError, StreamErrorKind};
use super::input::CountingReader;
use super::record::{SectionHeader, SectionKind};
use super::vmdesc::first_unlisted;
use super::{
    MAX_VMDESC_LEN, QEMU_VM_EOF, QEMU_VM_SECTION_FOOTER, QEMU_VM_SECTION_FULL,
    QEMU_VM_VMDESCRIPTION,
};

/// Bytes the scanner asks the stream for at a time (it may get fewer).
const CHUNK: usize = 64 * 1024;

/// The device sections that end a stream, as delimited by
/// [`QemuFileReader::read_device_sections`](super::QemuFileReader::read_device_sections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceTail {
    /// The sections, in stream order.
    pub sections: Vec<DeviceSection>,
    /// The vmstate description after the EOF record, if the source sent one.
    pub vmdesc: Option<String>,
    /// Offset just after the last byte of the stream (the EOF record or the description).
    pub end_offset: u64,
}

/// The bytes of the tail read so far, and the stream they come from.
struct Scan<'r, R> {
    r: &'r mut CountingReader<R>,
    buf: Vec<u8>,
    /// Stream offset of `buf[0]`.
    base: u64,
    limit: usize,
    ended: bool,
}

impl<R: Read> Scan<'_, R> {
    /// Make `buf` hold at least `n` bytes, reading only while it holds fewer; `false` if
    /// the stream ended first.
    fn have(&mut self, n: usize) -> Result<bool, StreamError> {
        while self.buf.len() < n {
            if self.ended {
                return Ok(false);
            }
            let old = self.buf.len();
            if n > self.limit {
                return Err(StreamError::new(
                    self.base + old as u64,
                    StreamErrorKind::DeviceStateTooLong {
                        limit: self.limit as u64,
                    },
                ));
            }
            let want = (n - old).max(CHUNK).min(self.limit - old);
            self.buf.resize(old + want, 0);
            let got = match self.r.read(&mut self.buf[old..]) {
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => 0,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(StreamError::io(self.base + old as u64, e));
                }
            };
            self.buf.truncate(old + got);
            self.ended = got == 0;
        }
        Ok(true)
    }

    fn be32(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.buf[at],
            self.buf[at + 1],
            self.buf[at + 2],
            self.buf[at + 3],
        ])
    }

    /// The FULL header at `at`, and its length, if one is there whose section id is not
    /// in `used`.
    fn header(
        &mut self,
        at: usize,
        used: &HashSet<u32>,
    ) -> Result<Option<(SectionHeader, usize)>, StreamError> {
        if !self.have(at + 6)? {
            return Ok(None);
        }
        let section_id = self.be32(at + 1);
        let len = usize::from(self.buf[at + 5]);
        if len == 0 || used.contains(&section_id) || !self.have(at + 6 + len + 8)? {
            return Ok(None);
        }
        let name = &self.buf[at + 6..at + 6 + len];
        if !name.iter().all(|b| (0x20..=0x7e).contains(b)) {
            return Ok(None);
        }
        let idstr = String::from_utf8_lossy(name).into_owned();
        let header = SectionHeader {
            kind: SectionKind::Full,
            section_id,
            idstr,
            instance_id: self.be32(at + 6 + len),
            version_id: self.be32(at + 6 + len + 4),
            offset: self.base + at as u64,
        };
        Ok(Some((header, 6 + len + 8)))
    }

    /// If the EOF record at `at` ends the stream (alone, or followed by a whole
    /// description and nothing else): the description, and the end of the stream.
    #[allow(clippy::type_complexity)]
    fn end(&mut self, at: usize) -> Result<Option<(Option<String>, usize)>, StreamError> {
        if !self.have(at + 2)? {
            return Ok(Some((None, at + 1)));
        }
        if self.buf[at + 1] != QEMU_VM_VMDESCRIPTION || !self.have(at + 6)? {
            return Ok(None);
        }
        let len = self.be32(at + 2);
        if len > MAX_VMDESC_LEN || !self.have(at + 6 + len as usize)? {
            return Ok(None);
        }
        let end = at + 6 + len as usize;
        let Ok(json) = std::str::from_utf8(&self.buf[at + 6..end]) else {
            return Ok(None);
        };
        if !json.starts_with('{') {
            return Ok(None);
        }
        if let Some(&byte) = self.buf.get(end) {
            return Err(StreamError::new(
                self.base + end as u64,
                StreamErrorKind::TrailingData { byte },
            ));
        }
        Ok(Some((Some(json.to_owned()), end)))
    }
}

/// Read the tail whose first section `first` has just been opened (its header read,
/// `r` at its body): delimit every section, then the EOF record and the description.
/// `used`: section ids already bound in the stream (a new header cannot reuse one).
pub(super) fn read_tail<R: Read>(
    r: &mut CountingReader<R>,
    first: SectionHeader,
    used: &HashSet<u32>,
    limit: usize,
) -> Result<DeviceTail, StreamError> {
    let base = r.offset();
    let mut s = Scan {
        r,
        buf: Vec::new(),
        base,
        limit,
        ended: false,
    };
    let mut used = used.clone();
    used.insert(first.section_id);
    let mut sections = Vec::new();
    let mut cur = first;
    let mut body = 0;
    let mut i = 0;
    loop {
        if !s.have(i + 5)? {
            return Err(StreamError::new(
                base + body as u64,
                StreamErrorKind::UnterminatedSection {
                    section_id: cur.section_id,
                    idstr: cur.idstr,
                },
            ));
        }
        if s.buf[i] == QEMU_VM_SECTION_FOOTER && s.be32(i + 1) == cur.section_id {
            let after = i + 5;
            if !s.have(after + 1)? {
                return Err(StreamError::new(
                    base + after as u64,
                    StreamErrorKind::Truncated { needed: 1, got: 0 },
                ));
            }
            match s.buf[after] {
                QEMU_VM_SECTION_FULL => {
                    if let Some((next, len)) = s.header(after, &used)? {
                        used.insert(next.section_id);
                        let body_bytes = s.buf[body..i].to_vec();
                        sections.push(DeviceSection {
                            header: std::mem::replace(&mut cur, next),
                            body: body_bytes,
                        });
                        body = after + len;
                        i = body;
                        continue;
                    }
                }
                QEMU_VM_EOF => {
                    if let Some((vmdesc, end)) = s.end(after)? {
                        let body_bytes = s.buf[body..i].to_vec();
                        sections.push(DeviceSection {
                            header: cur,
                            body: body_bytes,
                        });
                        if let Some(json) = &vmdesc {
                            if let Some(k) = first_unlisted(json, &sections) {
                                let h = &sections[k].header;
                                return Err(StreamError::new(
                                    h.offset,
                                    StreamErrorKind::DeviceSectionUnlisted {
                                        idstr: h.idstr.clone(),
                                        instance_id: h.instance_id,
                                    },
                                ));
                            }
                        }
                        return Ok(DeviceTail {
                            sections,
                            vmdesc,
                            end_offset: base + end as u64,
                        });
                    }
                }
                _ => {}
            }
        }
        i += 1;
    }
}
