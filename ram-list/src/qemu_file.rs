//! Reader for the outer framing of QEMU's migration stream (the "QEMU file"
//! format written by `qemu_savevm_state_*` in QEMU's `migration/savevm.c`).
//!
//! The stream is a header followed by a sequence of records:
//!
//! ```text
//! be32 magic "QEVM" (0x5145564d)   be32 version (3)
//! [0x07 CONFIGURATION: be32 len, machine-type name, optional subsections]
//! { 0x01 START | 0x04 FULL : be32 section id, u8 len, idstr, be32 instance id, be32 version id
//!   0x02 PART  | 0x03 END  : be32 section id
//!       ...section body (no length prefix: only the section's owner can parse it)...
//!       0x7e footer, be32 section id
//!   0x08 COMMAND : be16 command, be16 len, data }*
//! 0x00 EOF
//! [0x06 VMDESCRIPTION: be32 len, JSON]
//! ```
//!
//! [`QemuFileReader`] handles the header, the configuration record, the
//! section framing (headers and footers) and the section-id -> idstr map.
//! Section *bodies* have no length prefix, so the caller parses each body
//! itself through [`QemuFileReader::payload`] and then calls
//! [`QemuFileReader::finish_section`].  See `tests/fixtures/README.md` for the
//! byte layout observed in real QEMU 7.2 streams.
//!
//! Every malformed input is reported as a [`QemuFileError`] carrying the byte
//! offset of the offending field; no length field can make the reader
//! allocate more than a small, fixed bound.

// The module offers a complete API; a crate that includes it with a private
// `mod qemu_file;` may use only part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::io::{self, Read};

/// Stream magic: the ASCII bytes `QEVM`, stored big-endian.
pub const QEMU_VM_FILE_MAGIC: u32 = 0x5145_564d;
/// The only stream version this reader accepts (QEMU's `QEMU_VM_FILE_VERSION`).
pub const QEMU_VM_FILE_VERSION: u32 = 3;

/// Record type: end of the device state (`QEMU_VM_EOF`).
pub const QEMU_VM_EOF: u8 = 0x00;
/// Record type: first part of an iterable section (`QEMU_VM_SECTION_START`).
pub const QEMU_VM_SECTION_START: u8 = 0x01;
/// Record type: intermediate part of an iterable section (`QEMU_VM_SECTION_PART`).
pub const QEMU_VM_SECTION_PART: u8 = 0x02;
/// Record type: last part of an iterable section (`QEMU_VM_SECTION_END`).
pub const QEMU_VM_SECTION_END: u8 = 0x03;
/// Record type: a complete, non-iterable section (`QEMU_VM_SECTION_FULL`).
pub const QEMU_VM_SECTION_FULL: u8 = 0x04;
/// Marker of a vmstate subsection (`QEMU_VM_SUBSECTION`); never a top-level record.
pub const QEMU_VM_SUBSECTION: u8 = 0x05;
/// Record type: JSON description of the device state, after EOF (`QEMU_VM_VMDESCRIPTION`).
pub const QEMU_VM_VMDESCRIPTION: u8 = 0x06;
/// Record type: machine configuration, right after the header (`QEMU_VM_CONFIGURATION`).
pub const QEMU_VM_CONFIGURATION: u8 = 0x07;
/// Record type: a migration command (`QEMU_VM_COMMAND`).
pub const QEMU_VM_COMMAND: u8 = 0x08;
/// Byte that starts every section footer (`QEMU_VM_SECTION_FOOTER`).
pub const QEMU_VM_SECTION_FOOTER: u8 = 0x7e;

/// `MIG_CMD_PACKAGED`: the command's data is the length of a nested stream
/// that follows it; such streams are not supported by this reader.
pub const MIG_CMD_PACKAGED: u16 = 7;

/// Largest accepted machine-type name in the configuration record.
pub const MAX_CONFIGURATION_NAME_LEN: u32 = 64 * 1024;
/// Largest accepted number of entries in the `configuration/capabilities` subsection.
pub const MAX_CONFIGURATION_CAPABILITIES: u32 = 1024;
/// Largest accepted JSON vmstate description after the EOF record.
pub const MAX_VMDESC_LEN: u32 = 16 * 1024 * 1024;

/// Subsection of the configuration record carrying `TARGET_PAGE_BITS`.
const SUBSECTION_TARGET_PAGE_BITS: &str = "configuration/target-page-bits";
/// Subsection of the configuration record listing migration capabilities.
const SUBSECTION_CAPABILITIES: &str = "configuration/capabilities";
/// Subsection of the configuration record carrying the source VM's UUID.
const SUBSECTION_UUID: &str = "configuration/uuid";

/// Errors produced while reading a QEMU migration stream.
///
/// Every variant carries the byte offset (from the start of the stream) of
/// the field that could not be read or was invalid; see [`QemuFileError::offset`].
#[derive(Debug)]
pub enum QemuFileError {
    /// The underlying reader failed with something other than end of file.
    Io {
        /// Offset at which the read was attempted.
        offset: u64,
        /// The underlying error.
        source: io::Error,
    },
    /// The stream ended in the middle of a field or before the EOF record.
    Truncated {
        /// Offset at which the field starts.
        offset: u64,
        /// Number of bytes the field needs.
        needed: u64,
        /// Number of bytes that were available.
        got: u64,
    },
    /// The stream does not start with `QEVM`.
    BadMagic {
        /// Offset of the magic (always 0).
        offset: u64,
        /// The value found instead.
        found: u32,
    },
    /// The stream version is not [`QEMU_VM_FILE_VERSION`].
    UnsupportedVersion {
        /// Offset of the version field.
        offset: u64,
        /// The version found.
        found: u32,
    },
    /// The configuration record's machine name length exceeds
    /// [`MAX_CONFIGURATION_NAME_LEN`].
    ConfigurationTooLong {
        /// Offset of the length field.
        offset: u64,
        /// The length found.
        len: u32,
    },
    /// The `configuration/capabilities` count exceeds
    /// [`MAX_CONFIGURATION_CAPABILITIES`].
    TooManyCapabilities {
        /// Offset of the count field.
        offset: u64,
        /// The count found.
        count: u32,
    },
    /// A configuration subsection this reader does not know how to skip.
    UnknownConfigSubsection {
        /// Offset of the subsection marker.
        offset: u64,
        /// The subsection's name.
        name: String,
    },
    /// A known configuration subsection with an unexpected version.
    UnsupportedSubsectionVersion {
        /// Offset of the version field.
        offset: u64,
        /// The subsection's name.
        name: String,
        /// The version found (only 1 is known).
        version: u32,
    },
    /// A record type byte that is not a valid top-level record.
    UnknownRecordType {
        /// Offset of the record type byte.
        offset: u64,
        /// The byte found.
        byte: u8,
    },
    /// A string field (idstr, machine name, capability, vmdesc) is not UTF-8.
    InvalidUtf8 {
        /// Offset of the string's first byte.
        offset: u64,
        /// What the string was.
        what: &'static str,
    },
    /// A PART or END record names a section id no START/FULL introduced.
    UnknownSectionId {
        /// Offset of the record type byte.
        offset: u64,
        /// The record kind.
        kind: SectionKind,
        /// The unknown section id.
        section_id: u32,
    },
    /// A START/FULL record reuses a section id for a different idstr/instance.
    ConflictingSectionId {
        /// Offset of the record type byte.
        offset: u64,
        /// The reused section id.
        section_id: u32,
        /// Name previously bound to the id.
        previous: String,
        /// Name in this record.
        idstr: String,
    },
    /// After a section body, the byte found is not the footer marker 0x7e.
    MissingFooter {
        /// Offset where the footer was expected.
        offset: u64,
        /// The section being finished.
        section_id: u32,
        /// The byte found instead of 0x7e.
        found: u8,
    },
    /// The footer names a different section id than its section.
    FooterMismatch {
        /// Offset of the footer's section id field.
        offset: u64,
        /// The id of the section being finished.
        expected: u32,
        /// The id found in the footer.
        found: u32,
    },
    /// A new record was requested while a section body was still open.
    SectionNotFinished {
        /// Current offset.
        offset: u64,
        /// The open section.
        section_id: u32,
    },
    /// [`QemuFileReader::finish_section`] was called for a section that is not
    /// the open one (or with no section open).
    NotOpen {
        /// Current offset.
        offset: u64,
        /// The section the caller tried to finish.
        section_id: u32,
    },
    /// A `QEMU_VM_COMMAND` this reader cannot step over.
    UnsupportedCommand {
        /// Offset of the record type byte.
        offset: u64,
        /// The command number.
        cmd: u16,
    },
    /// The vmstate description after EOF is longer than [`MAX_VMDESC_LEN`].
    VmdescTooLong {
        /// Offset of the length field.
        offset: u64,
        /// The length found.
        len: u32,
    },
    /// Bytes after the EOF record that are not a vmstate description.
    TrailingData {
        /// Offset of the unexpected byte.
        offset: u64,
        /// The byte found.
        byte: u8,
    },
    /// [`QemuFileReader::read_vmdesc`] was called before the EOF record.
    NotAtEof {
        /// Current offset.
        offset: u64,
    },
    /// Invalid section body, reported by a section parser (for example the
    /// RAM loader) through [`QemuFileError::invalid`].
    Invalid {
        /// Offset of the offending field.
        offset: u64,
        /// Human-readable description.
        message: String,
    },
}

impl QemuFileError {
    /// Builds an [`QemuFileError::Invalid`] error, for section-body parsers.
    pub fn invalid(offset: u64, message: impl Into<String>) -> Self {
        QemuFileError::Invalid {
            offset,
            message: message.into(),
        }
    }

    /// Byte offset in the stream at which the error was detected.
    pub fn offset(&self) -> u64 {
        match self {
            QemuFileError::Io { offset, .. }
            | QemuFileError::Truncated { offset, .. }
            | QemuFileError::BadMagic { offset, .. }
            | QemuFileError::UnsupportedVersion { offset, .. }
            | QemuFileError::ConfigurationTooLong { offset, .. }
            | QemuFileError::TooManyCapabilities { offset, .. }
            | QemuFileError::UnknownConfigSubsection { offset, .. }
            | QemuFileError::UnsupportedSubsectionVersion { offset, .. }
            | QemuFileError::UnknownRecordType { offset, .. }
            | QemuFileError::InvalidUtf8 { offset, .. }
            | QemuFileError::UnknownSectionId { offset, .. }
            | QemuFileError::ConflictingSectionId { offset, .. }
            | QemuFileError::MissingFooter { offset, .. }
            | QemuFileError::FooterMismatch { offset, .. }
            | QemuFileError::SectionNotFinished { offset, .. }
            | QemuFileError::NotOpen { offset, .. }
            | QemuFileError::UnsupportedCommand { offset, .. }
            | QemuFileError::VmdescTooLong { offset, .. }
            | QemuFileError::TrailingData { offset, .. }
            | QemuFileError::NotAtEof { offset }
            | QemuFileError::Invalid { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for QemuFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "migration stream, byte offset {}: ", self.offset())?;
        match self {
            QemuFileError::Io { source, .. } => write!(f, "I/O error: {source}"),
            QemuFileError::Truncated { needed, got, .. } => write!(
                f,
                "stream truncated: field needs {needed} bytes, only {got} available"
            ),
            QemuFileError::BadMagic { found, .. } => write!(
                f,
                "bad magic {found:#010x}, expected {QEMU_VM_FILE_MAGIC:#010x} (\"QEVM\")"
            ),
            QemuFileError::UnsupportedVersion { found, .. } => write!(
                f,
                "unsupported stream version {found}, expected {QEMU_VM_FILE_VERSION}"
            ),
            QemuFileError::ConfigurationTooLong { len, .. } => write!(
                f,
                "configuration machine name of {len} bytes exceeds {MAX_CONFIGURATION_NAME_LEN}"
            ),
            QemuFileError::TooManyCapabilities { count, .. } => write!(
                f,
                "{count} configuration capabilities exceed {MAX_CONFIGURATION_CAPABILITIES}"
            ),
            QemuFileError::UnknownConfigSubsection { name, .. } => {
                write!(f, "unknown configuration subsection {name:?}")
            }
            QemuFileError::UnsupportedSubsectionVersion { name, version, .. } => {
                write!(f, "unsupported version {version} of subsection {name:?}")
            }
            QemuFileError::UnknownRecordType { byte, .. } => {
                write!(f, "unknown record type {byte:#04x}")
            }
            QemuFileError::InvalidUtf8 { what, .. } => write!(f, "{what} is not valid UTF-8"),
            QemuFileError::UnknownSectionId {
                kind, section_id, ..
            } => write!(
                f,
                "{kind} record for section id {section_id} that no START/FULL introduced"
            ),
            QemuFileError::ConflictingSectionId {
                section_id,
                previous,
                idstr,
                ..
            } => write!(
                f,
                "section id {section_id} reused for {idstr:?} (was {previous:?})"
            ),
            QemuFileError::MissingFooter {
                section_id, found, ..
            } => write!(
                f,
                "expected section footer 0x7e after section {section_id}, found {found:#04x}"
            ),
            QemuFileError::FooterMismatch {
                expected, found, ..
            } => write!(
                f,
                "section footer names section {found}, expected {expected}"
            ),
            QemuFileError::SectionNotFinished { section_id, .. } => write!(
                f,
                "section {section_id} is still open; call finish_section first"
            ),
            QemuFileError::NotOpen { section_id, .. } => {
                write!(f, "section {section_id} is not the open section")
            }
            QemuFileError::UnsupportedCommand { cmd, .. } => {
                write!(f, "unsupported migration command {cmd}")
            }
            QemuFileError::VmdescTooLong { len, .. } => write!(
                f,
                "vmstate description of {len} bytes exceeds {MAX_VMDESC_LEN}"
            ),
            QemuFileError::TrailingData { byte, .. } => {
                write!(f, "unexpected byte {byte:#04x} after the EOF record")
            }
            QemuFileError::NotAtEof { .. } => {
                write!(f, "the vmstate description follows the EOF record")
            }
            QemuFileError::Invalid { message, .. } => f.write_str(message),
        }
    }
}

impl Error for QemuFileError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            QemuFileError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// A [`Read`] adaptor that counts consumed bytes, can peek one byte, and
/// offers big-endian field readers returning [`QemuFileError`]s that carry
/// the field's offset.
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

    /// Returns the wrapped reader.  A byte obtained by [`Self::peek_u8`] and
    /// not consumed yet is lost.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Returns the next byte without consuming it, or `None` at end of file.
    pub fn peek_u8(&mut self) -> Result<Option<u8>, QemuFileError> {
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
                Err(source) => {
                    return Err(QemuFileError::Io {
                        offset: self.offset,
                        source,
                    })
                }
            }
        }
    }

    /// Fills `buf` completely, or fails with [`QemuFileError::Truncated`].
    pub fn read_bytes(&mut self, buf: &mut [u8]) -> Result<(), QemuFileError> {
        let start = self.offset;
        let mut filled = 0;
        while filled < buf.len() {
            match self.read(&mut buf[filled..]) {
                Ok(0) => {
                    return Err(QemuFileError::Truncated {
                        offset: start,
                        needed: buf.len() as u64,
                        got: filled as u64,
                    })
                }
                Ok(n) => filled += n,
                Err(e) => return Err(self.map_io(e, start, buf.len() as u64, filled as u64)),
            }
        }
        Ok(())
    }

    /// Reads exactly `len` bytes into a new vector.  Memory grows with the
    /// data actually read, so a bogus `len` cannot trigger a huge allocation;
    /// callers should still bound `len`.
    pub fn read_vec(&mut self, len: usize) -> Result<Vec<u8>, QemuFileError> {
        const CHUNK: usize = 64 * 1024;
        let start = self.offset;
        let mut out = Vec::with_capacity(len.min(CHUNK));
        let mut chunk = [0u8; 4096];
        while out.len() < len {
            let want = (len - out.len()).min(chunk.len());
            match self.read(&mut chunk[..want]) {
                Ok(0) => {
                    return Err(QemuFileError::Truncated {
                        offset: start,
                        needed: len as u64,
                        got: out.len() as u64,
                    })
                }
                Ok(n) => out.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(self.map_io(e, start, len as u64, out.len() as u64)),
            }
        }
        Ok(out)
    }

    /// Consumes and discards `len` bytes.
    pub fn skip(&mut self, len: u64) -> Result<(), QemuFileError> {
        let start = self.offset;
        let mut done = 0u64;
        let mut chunk = [0u8; 4096];
        while done < len {
            let want = (len - done).min(chunk.len() as u64) as usize;
            match self.read(&mut chunk[..want]) {
                Ok(0) => {
                    return Err(QemuFileError::Truncated {
                        offset: start,
                        needed: len,
                        got: done,
                    })
                }
                Ok(n) => done += n as u64,
                Err(e) => return Err(self.map_io(e, start, len, done)),
            }
        }
        Ok(())
    }

    /// Reads one byte.
    pub fn read_u8(&mut self) -> Result<u8, QemuFileError> {
        let mut b = [0u8; 1];
        self.read_bytes(&mut b)?;
        Ok(b[0])
    }

    /// Reads a big-endian `u16`.
    pub fn read_be16(&mut self) -> Result<u16, QemuFileError> {
        let mut b = [0u8; 2];
        self.read_bytes(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    /// Reads a big-endian `u32`.
    pub fn read_be32(&mut self) -> Result<u32, QemuFileError> {
        let mut b = [0u8; 4];
        self.read_bytes(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// Reads a big-endian `u64`.
    pub fn read_be64(&mut self) -> Result<u64, QemuFileError> {
        let mut b = [0u8; 8];
        self.read_bytes(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    /// Reads a QEMU idstr: a `u8` length followed by that many UTF-8 bytes
    /// (no terminating NUL).  `what` names the field in error messages.
    pub fn read_idstr(&mut self, what: &'static str) -> Result<String, QemuFileError> {
        let len = self.read_u8()?;
        let start = self.offset;
        let mut buf = [0u8; 255];
        let buf = &mut buf[..usize::from(len)];
        self.read_bytes(buf)?;
        match std::str::from_utf8(buf) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(QemuFileError::InvalidUtf8 {
                offset: start,
                what,
            }),
        }
    }

    fn map_io(&self, e: io::Error, start: u64, needed: u64, got: u64) -> QemuFileError {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            QemuFileError::Truncated {
                offset: start,
                needed,
                got,
            }
        } else {
            QemuFileError::Io {
                offset: self.offset,
                source: e,
            }
        }
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

/// The contents of the `QEMU_VM_CONFIGURATION` record (vmstate
/// "configuration", version 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Machine type name of the source, e.g. `"none"`, `"microvm"` or
    /// `"pc-i440fx-7.2"` (the `pc` alias is resolved by QEMU).
    pub machine_type: String,
    /// `TARGET_PAGE_BITS` from the `configuration/target-page-bits`
    /// subsection; QEMU only sends it for targets with a variable page size.
    pub target_page_bits: Option<u32>,
    /// Capabilities from the `configuration/capabilities` subsection (QEMU
    /// 7.2 only lists `x-ignore-shared` there, and only when enabled).
    pub capabilities: Vec<String>,
    /// Source UUID from the `configuration/uuid` subsection (sent with the
    /// `validate-uuid` capability and a `-uuid`).
    pub uuid: Option<[u8; 16]>,
}

impl Configuration {
    /// Whether the `configuration/capabilities` subsection lists `name`.
    pub fn has_capability(&self, name: &str) -> bool {
        self.capabilities.iter().any(|c| c == name)
    }
}

/// Kind of a section record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// `QEMU_VM_SECTION_START` (0x01): first part of an iterable section
    /// (e.g. "ram"); carries the full header.
    Start,
    /// `QEMU_VM_SECTION_PART` (0x02): intermediate part; only the section id.
    Part,
    /// `QEMU_VM_SECTION_END` (0x03): last part; only the section id.
    End,
    /// `QEMU_VM_SECTION_FULL` (0x04): a whole device state; full header.
    Full,
}

impl SectionKind {
    /// The record type byte of this kind.
    pub fn record_type(self) -> u8 {
        match self {
            SectionKind::Start => QEMU_VM_SECTION_START,
            SectionKind::Part => QEMU_VM_SECTION_PART,
            SectionKind::End => QEMU_VM_SECTION_END,
            SectionKind::Full => QEMU_VM_SECTION_FULL,
        }
    }

    /// Whether the record carries idstr, instance id and version id on the
    /// wire (START and FULL do, PART and END do not).
    pub fn has_full_header(self) -> bool {
        matches!(self, SectionKind::Start | SectionKind::Full)
    }
}

impl fmt::Display for SectionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SectionKind::Start => "SECTION_START",
            SectionKind::Part => "SECTION_PART",
            SectionKind::End => "SECTION_END",
            SectionKind::Full => "SECTION_FULL",
        })
    }
}

/// Header of a section record.  For PART and END records, which only carry
/// the section id on the wire, `idstr`, `instance_id` and `version_id` are
/// resolved from the START/FULL record that introduced the id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    /// The record kind.
    pub kind: SectionKind,
    /// Section id, unique per SaveStateEntry within the stream.
    pub section_id: u32,
    /// Name of the state, e.g. `"ram"`, `"timer"`, `"globalstate"`.
    pub idstr: String,
    /// Instance id (several devices may share an idstr).
    pub instance_id: u32,
    /// Version of the section's format (e.g. 4 for "ram").
    pub version_id: u32,
    /// Offset of the record type byte in the stream.
    pub offset: u64,
}

/// One top-level record, as returned by [`QemuFileReader::next_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A section header; its body follows and must be consumed through
    /// [`QemuFileReader::payload`] before [`QemuFileReader::finish_section`].
    Section(SectionHeader),
    /// A `QEMU_VM_COMMAND` record (postcopy / return-path control).
    Command {
        /// Command number (`enum qemu_vm_cmd` in QEMU).
        cmd: u16,
        /// Command payload (at most 65535 bytes).
        data: Vec<u8>,
        /// Offset of the record type byte.
        offset: u64,
    },
    /// The `QEMU_VM_EOF` record: no more device state follows.
    Eof,
}

/// Where the reader is in the record sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: the next byte is a record type.
    Between,
    /// Inside the body of this section id.
    InSection(u32),
    /// The EOF record has been read.
    AfterEof,
    /// The vmstate description (or the end of the file) has been read.
    Done,
}

/// Streaming reader of the outer QEMU migration format.
///
/// Typical use: walk the sections, parse the bodies you know, stop at one you do not
/// (bodies have no length prefix, so an unknown one cannot be skipped):
///
/// ```
/// use ram_list::QemuFileReader;
///
/// # fn main() -> Result<(), ram_list::QemuFileError> {
/// // A minimal stream: header, then a "ram" START section whose body is a lone EOS.
/// let mut s = Vec::new();
/// s.extend_from_slice(b"QEVM\0\0\0\x03");
/// s.push(0x01); // SECTION_START
/// s.extend_from_slice(&2u32.to_be_bytes());
/// s.extend_from_slice(b"\x03ram");
/// s.extend_from_slice(&0u32.to_be_bytes()); // instance id
/// s.extend_from_slice(&4u32.to_be_bytes()); // version id
/// s.extend_from_slice(&0x10u64.to_be_bytes()); // body: EOS
/// s.extend_from_slice(b"\x7e\0\0\0\x02"); // footer
/// s.push(0x00); // EOF
///
/// let mut qf = QemuFileReader::new(&s[..])?;
/// while let Some(h) = qf.next_section()? {
///     match h.idstr.as_str() {
///         "ram" => assert_eq!(qf.payload().read_be64()?, 0x10),
///         _ => break, // unknown bodies cannot be skipped: no length prefix
///     }
///     qf.finish_section(&h)?;
/// }
/// assert_eq!(qf.read_vmdesc()?, None);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct QemuFileReader<R> {
    reader: CountingReader<R>,
    configuration: Option<Configuration>,
    /// section id -> (idstr, instance id, version id)
    sections: HashMap<u32, (String, u32, u32)>,
    state: State,
}

impl<R: Read> QemuFileReader<R> {
    /// Reads and checks the file header (magic, version 3) and, if present,
    /// the configuration record.  The reader issues many small reads, so wrap
    /// files and sockets in a [`std::io::BufReader`].
    pub fn new(r: R) -> Result<Self, QemuFileError> {
        let mut reader = CountingReader::new(r);
        let magic = reader.read_be32()?;
        if magic != QEMU_VM_FILE_MAGIC {
            return Err(QemuFileError::BadMagic {
                offset: 0,
                found: magic,
            });
        }
        let version = reader.read_be32()?;
        if version != QEMU_VM_FILE_VERSION {
            return Err(QemuFileError::UnsupportedVersion {
                offset: 4,
                found: version,
            });
        }
        let configuration = if reader.peek_u8()? == Some(QEMU_VM_CONFIGURATION) {
            reader.read_u8()?;
            Some(read_configuration(&mut reader)?)
        } else {
            None
        };
        Ok(QemuFileReader {
            reader,
            configuration,
            sections: HashMap::new(),
            state: State::Between,
        })
    }

    /// The configuration record, if the stream had one (QEMU omits it only
    /// for very old machine types).
    pub fn configuration(&self) -> Option<&Configuration> {
        self.configuration.as_ref()
    }

    /// Number of bytes consumed from the stream so far.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// The underlying reader positioned inside the current section body; the
    /// caller parses the body with it (it implements [`Read`] and has
    /// big-endian field helpers).
    pub fn payload(&mut self) -> &mut CountingReader<R> {
        &mut self.reader
    }

    /// Idstr, instance id and version id bound to `section_id` by an earlier
    /// START or FULL record.
    pub fn section_info(&self, section_id: u32) -> Option<(&str, u32, u32)> {
        self.sections
            .get(&section_id)
            .map(|(n, i, v)| (n.as_str(), *i, *v))
    }

    /// Reads the next top-level record.  Returns [`Record::Eof`] at the EOF
    /// record, and again on every later call.
    pub fn next_record(&mut self) -> Result<Record, QemuFileError> {
        match self.state {
            State::Between => {}
            State::InSection(section_id) => {
                return Err(QemuFileError::SectionNotFinished {
                    offset: self.reader.offset(),
                    section_id,
                })
            }
            State::AfterEof | State::Done => return Ok(Record::Eof),
        }
        let offset = self.reader.offset();
        let byte = self.reader.read_u8()?;
        match byte {
            QEMU_VM_EOF => {
                self.state = State::AfterEof;
                Ok(Record::Eof)
            }
            QEMU_VM_SECTION_START | QEMU_VM_SECTION_FULL => {
                let kind = if byte == QEMU_VM_SECTION_START {
                    SectionKind::Start
                } else {
                    SectionKind::Full
                };
                let section_id = self.reader.read_be32()?;
                let idstr = self.reader.read_idstr("section idstr")?;
                let instance_id = self.reader.read_be32()?;
                let version_id = self.reader.read_be32()?;
                if let Some((prev, prev_inst, _)) = self.sections.get(&section_id) {
                    if *prev != idstr || *prev_inst != instance_id {
                        return Err(QemuFileError::ConflictingSectionId {
                            offset,
                            section_id,
                            previous: prev.clone(),
                            idstr,
                        });
                    }
                }
                self.sections
                    .insert(section_id, (idstr.clone(), instance_id, version_id));
                self.state = State::InSection(section_id);
                Ok(Record::Section(SectionHeader {
                    kind,
                    section_id,
                    idstr,
                    instance_id,
                    version_id,
                    offset,
                }))
            }
            QEMU_VM_SECTION_PART | QEMU_VM_SECTION_END => {
                let kind = if byte == QEMU_VM_SECTION_PART {
                    SectionKind::Part
                } else {
                    SectionKind::End
                };
                let section_id = self.reader.read_be32()?;
                let (idstr, instance_id, version_id) = match self.sections.get(&section_id) {
                    Some((n, i, v)) => (n.clone(), *i, *v),
                    None => {
                        return Err(QemuFileError::UnknownSectionId {
                            offset,
                            kind,
                            section_id,
                        })
                    }
                };
                self.state = State::InSection(section_id);
                Ok(Record::Section(SectionHeader {
                    kind,
                    section_id,
                    idstr,
                    instance_id,
                    version_id,
                    offset,
                }))
            }
            QEMU_VM_COMMAND => {
                let cmd = self.reader.read_be16()?;
                let len = self.reader.read_be16()?;
                let data = self.reader.read_vec(usize::from(len))?;
                Ok(Record::Command { cmd, data, offset })
            }
            _ => Err(QemuFileError::UnknownRecordType { offset, byte }),
        }
    }

    /// Reads records up to the next section header; `None` at the EOF record.
    ///
    /// `QEMU_VM_COMMAND` records are stepped over, except `MIG_CMD_PACKAGED`
    /// (a nested stream follows it), which is [`QemuFileError::UnsupportedCommand`].
    pub fn next_section(&mut self) -> Result<Option<SectionHeader>, QemuFileError> {
        loop {
            match self.next_record()? {
                Record::Section(h) => return Ok(Some(h)),
                Record::Eof => return Ok(None),
                Record::Command { cmd, offset, .. } => {
                    if cmd == MIG_CMD_PACKAGED {
                        return Err(QemuFileError::UnsupportedCommand { offset, cmd });
                    }
                }
            }
        }
    }

    /// Reads and checks the footer (0x7e, be32 section id) that ends the
    /// body of `header`'s section; call it once the body has been consumed.
    pub fn finish_section(&mut self, header: &SectionHeader) -> Result<(), QemuFileError> {
        if self.state != State::InSection(header.section_id) {
            return Err(QemuFileError::NotOpen {
                offset: self.reader.offset(),
                section_id: header.section_id,
            });
        }
        let offset = self.reader.offset();
        let marker = self.reader.read_u8()?;
        if marker != QEMU_VM_SECTION_FOOTER {
            return Err(QemuFileError::MissingFooter {
                offset,
                section_id: header.section_id,
                found: marker,
            });
        }
        let id_offset = self.reader.offset();
        let found = self.reader.read_be32()?;
        if found != header.section_id {
            return Err(QemuFileError::FooterMismatch {
                offset: id_offset,
                expected: header.section_id,
                found,
            });
        }
        self.state = State::Between;
        Ok(())
    }

    /// After the EOF record, reads the optional `QEMU_VM_VMDESCRIPTION`
    /// record (a JSON description of the device sections) and checks that
    /// nothing else follows it.  Returns `None` if the file ends right after
    /// EOF (e.g. `-machine suppress-vmdesc=on`), and `None` on later calls.
    pub fn read_vmdesc(&mut self) -> Result<Option<String>, QemuFileError> {
        match self.state {
            State::AfterEof => {}
            State::Done => return Ok(None),
            State::Between | State::InSection(_) => {
                return Err(QemuFileError::NotAtEof {
                    offset: self.reader.offset(),
                })
            }
        }
        let offset = self.reader.offset();
        let desc = match self.reader.peek_u8()? {
            None => None,
            Some(QEMU_VM_VMDESCRIPTION) => {
                self.reader.read_u8()?;
                let len_offset = self.reader.offset();
                let len = self.reader.read_be32()?;
                if len > MAX_VMDESC_LEN {
                    return Err(QemuFileError::VmdescTooLong {
                        offset: len_offset,
                        len,
                    });
                }
                let start = self.reader.offset();
                let bytes = self.reader.read_vec(len as usize)?;
                let text = String::from_utf8(bytes).map_err(|_| QemuFileError::InvalidUtf8 {
                    offset: start,
                    what: "vmstate description",
                })?;
                Some(text)
            }
            Some(byte) => return Err(QemuFileError::TrailingData { offset, byte }),
        };
        let end = self.reader.offset();
        if let Some(byte) = self.reader.peek_u8()? {
            return Err(QemuFileError::TrailingData { offset: end, byte });
        }
        self.state = State::Done;
        Ok(desc)
    }

    /// Returns the underlying reader (see [`CountingReader::into_inner`]).
    pub fn into_inner(self) -> R {
        self.reader.into_inner()
    }
}

/// Parses the body of the configuration record (the type byte is consumed):
/// vmstate "configuration" v1 = be32 len + name, then optional subsections.
fn read_configuration<R: Read>(
    reader: &mut CountingReader<R>,
) -> Result<Configuration, QemuFileError> {
    let len_offset = reader.offset();
    let len = reader.read_be32()?;
    if len > MAX_CONFIGURATION_NAME_LEN {
        return Err(QemuFileError::ConfigurationTooLong {
            offset: len_offset,
            len,
        });
    }
    let name_offset = reader.offset();
    let name = reader.read_vec(len as usize)?;
    let machine_type = String::from_utf8(name).map_err(|_| QemuFileError::InvalidUtf8 {
        offset: name_offset,
        what: "configuration machine type",
    })?;
    let mut cfg = Configuration {
        machine_type,
        target_page_bits: None,
        capabilities: Vec::new(),
        uuid: None,
    };
    // Subsections: QEMU's loader peeks for QEMU_VM_SUBSECTION; that byte is
    // never a top-level record type, so the peek is unambiguous.
    while reader.peek_u8()? == Some(QEMU_VM_SUBSECTION) {
        let sub_offset = reader.offset();
        reader.read_u8()?;
        let name = reader.read_idstr("subsection name")?;
        let version_offset = reader.offset();
        let version = reader.read_be32()?;
        let known = matches!(
            name.as_str(),
            SUBSECTION_TARGET_PAGE_BITS | SUBSECTION_CAPABILITIES | SUBSECTION_UUID
        );
        if !known {
            return Err(QemuFileError::UnknownConfigSubsection {
                offset: sub_offset,
                name,
            });
        }
        if version != 1 {
            return Err(QemuFileError::UnsupportedSubsectionVersion {
                offset: version_offset,
                name,
                version,
            });
        }
        match name.as_str() {
            SUBSECTION_TARGET_PAGE_BITS => cfg.target_page_bits = Some(reader.read_be32()?),
            SUBSECTION_CAPABILITIES => {
                let count_offset = reader.offset();
                let count = reader.read_be32()?;
                if count > MAX_CONFIGURATION_CAPABILITIES {
                    return Err(QemuFileError::TooManyCapabilities {
                        offset: count_offset,
                        count,
                    });
                }
                for _ in 0..count {
                    let cap = reader.read_idstr("capability name")?;
                    cfg.capabilities.push(cap);
                }
            }
            _ => {
                let mut uuid = [0u8; 16];
                reader.read_bytes(&mut uuid)?;
                cfg.uuid = Some(uuid);
            }
        }
    }
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Cursor};

    // ---------------------------------------------------------------
    // Synthetic stream builder
    // ---------------------------------------------------------------

    #[derive(Default)]
    struct B(Vec<u8>);

    impl B {
        fn header() -> Self {
            let mut b = B::default();
            b.be32(QEMU_VM_FILE_MAGIC).be32(QEMU_VM_FILE_VERSION);
            b
        }
        fn u8(&mut self, v: u8) -> &mut Self {
            self.0.push(v);
            self
        }
        fn be16(&mut self, v: u16) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn be32(&mut self, v: u32) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn be64(&mut self, v: u64) -> &mut Self {
            self.0.extend_from_slice(&v.to_be_bytes());
            self
        }
        fn bytes(&mut self, v: &[u8]) -> &mut Self {
            self.0.extend_from_slice(v);
            self
        }
        fn idstr(&mut self, s: &str) -> &mut Self {
            self.u8(s.len() as u8).bytes(s.as_bytes())
        }
        fn config(&mut self, name: &str) -> &mut Self {
            self.u8(QEMU_VM_CONFIGURATION)
                .be32(name.len() as u32)
                .bytes(name.as_bytes())
        }
        fn start(&mut self, kind: u8, id: u32, name: &str, inst: u32, ver: u32) -> &mut Self {
            self.u8(kind).be32(id).idstr(name).be32(inst).be32(ver)
        }
        fn part(&mut self, kind: u8, id: u32) -> &mut Self {
            self.u8(kind).be32(id)
        }
        fn footer(&mut self, id: u32) -> &mut Self {
            self.u8(QEMU_VM_SECTION_FOOTER).be32(id)
        }
        fn reader(&self) -> Cursor<Vec<u8>> {
            Cursor::new(self.0.clone())
        }
    }

    /// A complete, well-formed stream: configuration with all three
    /// subsections, a START/PART/END iterable section with 8-byte bodies,
    /// a command, a FULL section, EOF and a vmdesc.
    fn good_stream() -> B {
        let mut b = B::header();
        b.config("none");
        b.u8(QEMU_VM_SUBSECTION)
            .idstr(SUBSECTION_TARGET_PAGE_BITS)
            .be32(1)
            .be32(12);
        b.u8(QEMU_VM_SUBSECTION)
            .idstr(SUBSECTION_CAPABILITIES)
            .be32(1)
            .be32(2)
            .idstr("x-ignore-shared")
            .idstr("other");
        b.u8(QEMU_VM_SUBSECTION)
            .idstr(SUBSECTION_UUID)
            .be32(1)
            .bytes(&[7u8; 16]);
        b.start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
            .be64(0x10)
            .footer(2);
        b.u8(QEMU_VM_COMMAND).be16(2).be16(4).be32(0xdead_beef);
        b.part(QEMU_VM_SECTION_PART, 2).be64(0x10).footer(2);
        b.part(QEMU_VM_SECTION_END, 2).be64(0x10).footer(2);
        b.start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
            .bytes(&[0u8; 24])
            .footer(0);
        b.u8(QEMU_VM_EOF);
        b.u8(QEMU_VM_VMDESCRIPTION).be32(2).bytes(b"{}");
        b
    }

    /// Body parser for the synthetic streams: "ram" bodies are one be64,
    /// "timer" bodies 24 bytes.
    fn walk_synthetic<R: Read>(
        r: R,
    ) -> Result<(Vec<SectionHeader>, Option<String>), QemuFileError> {
        let mut qf = QemuFileReader::new(r)?;
        let mut seen = Vec::new();
        while let Some(h) = qf.next_section()? {
            match h.idstr.as_str() {
                "ram" => {
                    qf.payload().read_be64()?;
                }
                "timer" => qf.payload().skip(24)?,
                other => panic!("unexpected section {other}"),
            }
            qf.finish_section(&h)?;
            seen.push(h);
        }
        let desc = qf.read_vmdesc()?;
        Ok((seen, desc))
    }

    #[test]
    fn good_synthetic_stream() {
        let b = good_stream();
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        let cfg = qf.configuration().unwrap().clone();
        assert_eq!(cfg.machine_type, "none");
        assert_eq!(cfg.target_page_bits, Some(12));
        assert_eq!(cfg.capabilities, vec!["x-ignore-shared", "other"]);
        assert!(cfg.has_capability("x-ignore-shared"));
        assert!(!cfg.has_capability("validate-uuid"));
        assert_eq!(cfg.uuid, Some([7u8; 16]));

        let h = qf.next_section().unwrap().unwrap();
        assert_eq!(
            h,
            SectionHeader {
                kind: SectionKind::Start,
                section_id: 2,
                idstr: "ram".into(),
                instance_id: 0,
                version_id: 4,
                offset: qf.offset() - 17,
            }
        );
        assert_eq!(qf.payload().read_be64().unwrap(), 0x10);
        qf.finish_section(&h).unwrap();

        // The command is visible through next_record.
        match qf.next_record().unwrap() {
            Record::Command { cmd, data, .. } => {
                assert_eq!(cmd, 2);
                assert_eq!(data, 0xdead_beef_u32.to_be_bytes());
            }
            other => panic!("expected a command, got {other:?}"),
        }
        let h = qf.next_section().unwrap().unwrap();
        assert_eq!(h.kind, SectionKind::Part);
        assert_eq!(
            (h.idstr.as_str(), h.instance_id, h.version_id),
            ("ram", 0, 4)
        );
        qf.payload().read_be64().unwrap();
        qf.finish_section(&h).unwrap();
        assert_eq!(qf.section_info(2), Some(("ram", 0, 4)));
        assert_eq!(qf.section_info(9), None);

        let (seen, desc) = walk_synthetic(b.reader()).unwrap();
        let kinds: Vec<_> = seen.iter().map(|h| (h.kind, h.idstr.as_str())).collect();
        assert_eq!(
            kinds,
            vec![
                (SectionKind::Start, "ram"),
                (SectionKind::Part, "ram"),
                (SectionKind::End, "ram"),
                (SectionKind::Full, "timer"),
            ]
        );
        assert!(seen.iter().all(|h| h.kind.has_full_header()
            == matches!(h.kind, SectionKind::Start | SectionKind::Full)));
        assert_eq!(desc.as_deref(), Some("{}"));
    }

    #[test]
    fn eof_is_sticky_and_vmdesc_optional() {
        let mut b = B::header();
        b.config("pc-i440fx-7.2").u8(QEMU_VM_EOF);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        assert_eq!(qf.next_section().unwrap(), None);
        assert_eq!(qf.next_record().unwrap(), Record::Eof);
        assert_eq!(qf.read_vmdesc().unwrap(), None);
        assert_eq!(qf.read_vmdesc().unwrap(), None);
        assert_eq!(qf.offset(), b.0.len() as u64);
    }

    #[test]
    fn configuration_is_optional() {
        let mut b = B::header();
        b.start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
            .bytes(&[0u8; 24])
            .footer(0)
            .u8(QEMU_VM_EOF);
        let (seen, desc) = walk_synthetic(b.reader()).unwrap();
        assert_eq!(seen.len(), 1);
        assert_eq!(desc, None);
        assert!(QemuFileReader::new(b.reader())
            .unwrap()
            .configuration()
            .is_none());
    }

    #[test]
    fn bad_magic() {
        let mut b = B::default();
        b.bytes(b"QEVX").be32(3);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(matches!(e, QemuFileError::BadMagic { offset: 0, found } if found == 0x5145_5658));
        assert!(e.to_string().contains("bad magic"));
    }

    #[test]
    fn unsupported_version() {
        let mut b = B::default();
        b.be32(QEMU_VM_FILE_MAGIC).be32(2).config("none").u8(0);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(matches!(
            e,
            QemuFileError::UnsupportedVersion {
                offset: 4,
                found: 2
            }
        ));
    }

    #[test]
    fn truncated_at_every_position() {
        let b = good_stream();
        // Everything up to and including the EOF record must be present;
        // every shorter prefix is a Truncated error, never a panic.
        let eof_pos = b.0.len() - 8; // EOF byte, then 0x06 + be32 + "{}"
        assert_eq!(b.0[eof_pos], QEMU_VM_EOF);
        for cut in 0..=eof_pos {
            let r = Cursor::new(b.0[..cut].to_vec());
            match walk_synthetic(r) {
                Err(QemuFileError::Truncated {
                    offset,
                    needed,
                    got,
                }) => {
                    assert!(offset <= cut as u64, "cut {cut}: offset {offset}");
                    assert!(got < needed, "cut {cut}");
                }
                other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
            }
        }
        // A stream cut inside the vmdesc is truncated too.
        for cut in eof_pos + 2..b.0.len() {
            let r = Cursor::new(b.0[..cut].to_vec());
            assert!(
                matches!(walk_synthetic(r), Err(QemuFileError::Truncated { .. })),
                "cut at {cut}"
            );
        }
        // Cut right after EOF: no vmdesc, which is fine.
        let (_, desc) = walk_synthetic(Cursor::new(b.0[..=eof_pos].to_vec())).unwrap();
        assert_eq!(desc, None);
    }

    #[test]
    fn unknown_record_type() {
        // (A 0x05 right after the configuration would be a configuration
        // subsection, so put a complete section first.)
        for byte in [QEMU_VM_SUBSECTION, QEMU_VM_VMDESCRIPTION, 0x09, 0x7e, 0xff] {
            let mut b = B::header();
            b.config("none")
                .start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
                .bytes(&[0u8; 24])
                .footer(0)
                .u8(byte)
                .be32(0);
            let e = walk_synthetic(b.reader()).unwrap_err();
            match e {
                QemuFileError::UnknownRecordType { offset, byte: got } => {
                    assert_eq!(offset, 17 + 19 + 24 + 5);
                    assert_eq!(got, byte);
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn footer_errors() {
        // Wrong marker byte.
        let mut b = B::header();
        b.config("none")
            .start(QEMU_VM_SECTION_FULL, 3, "timer", 0, 2)
            .bytes(&[0u8; 24])
            .u8(0x7f)
            .be32(3);
        let e = walk_synthetic(b.reader()).unwrap_err();
        match e {
            QemuFileError::MissingFooter {
                section_id: 3,
                found: 0x7f,
                offset,
            } => assert_eq!(offset, 17 + 19 + 24),
            other => panic!("{other:?}"),
        }

        // Footer for another section.
        let mut b = B::header();
        b.config("none")
            .start(QEMU_VM_SECTION_FULL, 3, "timer", 0, 2)
            .bytes(&[0u8; 24])
            .footer(4);
        let e = walk_synthetic(b.reader()).unwrap_err();
        match e {
            QemuFileError::FooterMismatch {
                expected: 3,
                found: 4,
                offset,
            } => assert_eq!(offset, 17 + 19 + 24 + 1),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn part_or_end_for_unknown_section() {
        for kind in [QEMU_VM_SECTION_PART, QEMU_VM_SECTION_END] {
            let mut b = B::header();
            b.config("none")
                .start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
                .be64(0x10)
                .footer(2)
                .part(kind, 5);
            let e = walk_synthetic(b.reader()).unwrap_err();
            assert!(
                matches!(e, QemuFileError::UnknownSectionId { section_id: 5, .. }),
                "{e:?}"
            );
            assert!(e.to_string().contains("section id 5"));
        }
    }

    #[test]
    fn conflicting_section_id() {
        let mut b = B::header();
        b.config("none")
            .start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
            .be64(0x10)
            .footer(2)
            .start(QEMU_VM_SECTION_FULL, 2, "timer", 0, 2);
        let e = walk_synthetic(b.reader()).unwrap_err();
        assert!(
            matches!(e, QemuFileError::ConflictingSectionId { section_id: 2, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn idstr_not_utf8() {
        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_SECTION_START)
            .be32(2)
            .u8(3)
            .bytes(&[b'r', 0xff, b'm'])
            .be32(0)
            .be32(4);
        let e = walk_synthetic(b.reader()).unwrap_err();
        assert!(
            matches!(
                e,
                QemuFileError::InvalidUtf8 {
                    offset: 23,
                    what: "section idstr"
                }
            ),
            "{e:?}"
        );

        let mut b = B::header();
        b.u8(QEMU_VM_CONFIGURATION).be32(2).bytes(&[0xc3, 0x28]);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(
            matches!(e, QemuFileError::InvalidUtf8 { offset: 13, .. }),
            "{e:?}"
        );
    }

    #[test]
    fn configuration_bounds_and_subsections() {
        // Length field larger than the bound: refused before reading.
        let mut b = B::header();
        b.u8(QEMU_VM_CONFIGURATION).be32(u32::MAX);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(
            matches!(
                e,
                QemuFileError::ConfigurationTooLong {
                    offset: 9,
                    len: u32::MAX
                }
            ),
            "{e:?}"
        );

        // Within the bound but truncated: no allocation of `len` up front.
        let mut b = B::header();
        b.u8(QEMU_VM_CONFIGURATION)
            .be32(MAX_CONFIGURATION_NAME_LEN)
            .bytes(b"none");
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(
            matches!(
                e,
                QemuFileError::Truncated {
                    offset: 13,
                    got: 4,
                    ..
                }
            ),
            "{e:?}"
        );

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_SUBSECTION)
            .idstr("configuration/whatever")
            .be32(1);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        match e {
            QemuFileError::UnknownConfigSubsection { offset: 17, name } => {
                assert_eq!(name, "configuration/whatever")
            }
            other => panic!("{other:?}"),
        }

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_SUBSECTION)
            .idstr(SUBSECTION_UUID)
            .be32(2);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(
            matches!(
                e,
                QemuFileError::UnsupportedSubsectionVersion { version: 2, .. }
            ),
            "{e:?}"
        );

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_SUBSECTION)
            .idstr(SUBSECTION_CAPABILITIES)
            .be32(1)
            .be32(MAX_CONFIGURATION_CAPABILITIES + 1);
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        assert!(
            matches!(e, QemuFileError::TooManyCapabilities { .. }),
            "{e:?}"
        );
    }

    #[test]
    fn section_protocol_misuse() {
        let b = good_stream();
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        let h = qf.next_section().unwrap().unwrap();
        // Body not consumed / section not finished.
        let e = qf.next_section().unwrap_err();
        assert!(
            matches!(e, QemuFileError::SectionNotFinished { section_id: 2, .. }),
            "{e:?}"
        );
        // Finishing a different section.
        let mut other = h.clone();
        other.section_id = 7;
        let e = qf.finish_section(&other).unwrap_err();
        assert!(
            matches!(e, QemuFileError::NotOpen { section_id: 7, .. }),
            "{e:?}"
        );
        // vmdesc before EOF.
        assert!(matches!(
            qf.read_vmdesc().unwrap_err(),
            QemuFileError::NotAtEof { .. }
        ));
        qf.payload().read_be64().unwrap();
        qf.finish_section(&h).unwrap();
        // Finishing twice.
        assert!(matches!(
            qf.finish_section(&h).unwrap_err(),
            QemuFileError::NotOpen { section_id: 2, .. }
        ));
    }

    #[test]
    fn commands() {
        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_COMMAND)
            .be16(1)
            .be16(0)
            .u8(QEMU_VM_COMMAND)
            .be16(MIG_CMD_PACKAGED)
            .be16(4)
            .be32(100);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        let e = qf.next_section().unwrap_err();
        assert!(
            matches!(e, QemuFileError::UnsupportedCommand { cmd: 7, offset: 22 }),
            "{e:?}"
        );
    }

    #[test]
    fn trailing_data_and_vmdesc_bounds() {
        let mut b = B::header();
        b.config("none").u8(QEMU_VM_EOF).u8(0x42);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        assert!(matches!(
            qf.read_vmdesc().unwrap_err(),
            QemuFileError::TrailingData {
                offset: 18,
                byte: 0x42
            }
        ));

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_EOF)
            .u8(QEMU_VM_VMDESCRIPTION)
            .be32(2)
            .bytes(b"{}")
            .u8(0);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        assert!(matches!(
            qf.read_vmdesc().unwrap_err(),
            QemuFileError::TrailingData {
                offset: 25,
                byte: 0
            }
        ));

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_EOF)
            .u8(QEMU_VM_VMDESCRIPTION)
            .be32(MAX_VMDESC_LEN + 1);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        assert!(matches!(
            qf.read_vmdesc().unwrap_err(),
            QemuFileError::VmdescTooLong { offset: 19, .. }
        ));

        let mut b = B::header();
        b.config("none")
            .u8(QEMU_VM_EOF)
            .u8(QEMU_VM_VMDESCRIPTION)
            .be32(1)
            .u8(0xff);
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        assert!(matches!(
            qf.read_vmdesc().unwrap_err(),
            QemuFileError::InvalidUtf8 { offset: 23, .. }
        ));
    }

    /// A reader that yields its data one byte at a time, interleaved with
    /// `Interrupted` errors, then fails with a hard error.
    struct Flaky {
        data: Vec<u8>,
        pos: usize,
        interrupt: bool,
    }

    impl Read for Flaky {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
            }
            if self.pos == self.data.len() {
                return Err(io::Error::other("disk on fire"));
            }
            buf[0] = self.data[self.pos];
            self.pos += 1;
            Ok(1)
        }
    }

    #[test]
    fn io_errors_and_interrupts() {
        let mut data = good_stream().0;
        // Whole stream via a 1-byte, interrupt-happy reader: works, except
        // that the hard error at the very end surfaces from read_vmdesc's
        // final peek.
        let mut qf = QemuFileReader::new(Flaky {
            data: data.clone(),
            pos: 0,
            interrupt: false,
        })
        .unwrap();
        let mut n = 0;
        while let Some(h) = qf.next_section().unwrap() {
            if h.idstr == "ram" {
                qf.payload().read_be64().unwrap();
            } else {
                qf.payload().skip(24).unwrap();
            }
            qf.finish_section(&h).unwrap();
            n += 1;
        }
        assert_eq!(n, 4);
        let e = qf.read_vmdesc().unwrap_err();
        assert!(matches!(e, QemuFileError::Io { .. }), "{e:?}");
        assert!(e.source().is_some());
        assert_eq!(e.offset(), data.len() as u64);

        // Hard error in the middle of a configuration subsection.
        data.truncate(30);
        let e = walk_synthetic(Flaky {
            data,
            pos: 0,
            interrupt: false,
        })
        .unwrap_err();
        assert!(matches!(e, QemuFileError::Io { offset: 30, .. }), "{e:?}");
        assert!(e.to_string().contains("disk on fire"));
    }

    #[test]
    fn counting_reader_helpers() {
        let mut b = B::default();
        b.u8(1)
            .be16(0x0203)
            .be32(0x0405_0607)
            .be64(0x0809_0a0b_0c0d_0e0f);
        b.idstr("ab").bytes(&[9; 10]);
        let mut r = CountingReader::new(b.reader());
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
        assert!(matches!(
            e,
            QemuFileError::Truncated {
                offset: 23,
                needed: 10,
                got: 5
            }
        ));
        assert_eq!(r.peek_u8().unwrap(), None);
        let e = QemuFileError::invalid(5, "bad RAM flags 0x1");
        assert_eq!(e.offset(), 5);
        assert!(e.to_string().ends_with("bad RAM flags 0x1"));
    }

    // ---------------------------------------------------------------
    // Real QEMU fixtures (tests/fixtures/*.qemu, see README.md there)
    // ---------------------------------------------------------------

    const PAGE: usize = 4096;
    const FLAG_ZERO: u64 = 0x02;
    const FLAG_MEM_SIZE: u64 = 0x04;
    const FLAG_PAGE: u64 = 0x08;
    const FLAG_EOS: u64 = 0x10;
    const FLAG_CONTINUE: u64 = 0x20;
    const FIXTURE_TEXT: &[u8] = b"Hello from guest RAM page 256! ram-list QEMU migration fixture.";

    fn fixture(name: &str) -> BufReader<std::fs::File> {
        let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        BufReader::new(std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}")))
    }

    /// The deterministic contents of the fixtures' "ram0" block (rule in
    /// tests/fixtures/README.md and make_fixtures.sh).
    fn expected_ram(size: usize) -> Vec<u8> {
        let npages = size / PAGE;
        let mut ram = vec![0u8; size];
        let (mut a, mut b) = (1usize, 2usize);
        while a < npages {
            ram[a * PAGE..(a + 1) * PAGE].fill((a % 256) as u8);
            (a, b) = (b, a + b);
        }
        ram[256 * PAGE..256 * PAGE + FIXTURE_TEXT.len()].copy_from_slice(FIXTURE_TEXT);
        ram[400 * PAGE + PAGE - 1] = 0x5a;
        ram[(npages - 1) * PAGE..].fill(0xff);
        ram
    }

    /// Destination RAM as rebuilt by the minimal test loader.
    #[derive(Default)]
    struct Ram {
        blocks: Vec<(String, Vec<u8>)>,
        /// Per block, how many times each page was received.
        received: Vec<Vec<u32>>,
        /// Index of the block of the last page (for RAM_SAVE_FLAG_CONTINUE).
        current: Option<usize>,
    }

    /// Minimal, test-only parser of one "ram" section body (QEMU 7.2 precopy,
    /// no multifd/xbzrle/compression).  Returns the number of pages read.
    fn parse_ram_body<R: Read>(
        r: &mut CountingReader<R>,
        ram: &mut Ram,
        ignore_shared: bool,
    ) -> Result<usize, QemuFileError> {
        let mut pages = 0;
        loop {
            let at = r.offset();
            let header = r.read_be64()?;
            let flags = header & (PAGE as u64 - 1);
            let addr = header & !(PAGE as u64 - 1);
            if flags & FLAG_MEM_SIZE != 0 {
                assert_eq!(flags, FLAG_MEM_SIZE, "at {at}");
                let mut total = addr;
                while total > 0 {
                    let name = r.read_idstr("ramblock idstr")?;
                    let used = r.read_be64()?;
                    if ignore_shared {
                        let _guest_addr = r.read_be64()?;
                    }
                    assert!(
                        used <= 64 << 20 && used % PAGE as u64 == 0,
                        "{name}: {used}"
                    );
                    total = total
                        .checked_sub(used)
                        .ok_or_else(|| QemuFileError::invalid(at, "MEM_SIZE total too small"))?;
                    ram.received.push(vec![0; used as usize / PAGE]);
                    ram.blocks.push((name, vec![0xee; used as usize]));
                }
            } else if flags == FLAG_EOS {
                return Ok(pages);
            } else if flags & !FLAG_CONTINUE == FLAG_ZERO || flags & !FLAG_CONTINUE == FLAG_PAGE {
                let idx = if flags & FLAG_CONTINUE == 0 {
                    let name = r.read_idstr("ramblock idstr")?;
                    ram.blocks
                        .iter()
                        .position(|(n, _)| *n == name)
                        .ok_or_else(|| {
                            QemuFileError::invalid(at, format!("unknown block {name}"))
                        })?
                } else {
                    ram.current
                        .ok_or_else(|| QemuFileError::invalid(at, "CONTINUE without block"))?
                };
                ram.current = Some(idx);
                let block = &mut ram.blocks[idx].1;
                let start = addr as usize;
                if start + PAGE > block.len() {
                    return Err(QemuFileError::invalid(at, "page beyond block"));
                }
                if flags & FLAG_ZERO != 0 {
                    let fill = r.read_u8()?;
                    block[start..start + PAGE].fill(fill);
                } else {
                    r.read_bytes(&mut block[start..start + PAGE])?;
                }
                ram.received[idx][start / PAGE] += 1;
                pages += 1;
            } else {
                return Err(QemuFileError::invalid(at, format!("RAM flags {flags:#x}")));
            }
        }
    }

    /// Per-section summary of a fixture walk.
    struct Walk {
        cfg: Configuration,
        ram: Ram,
        /// (kind, idstr, pages read) for every section.
        sections: Vec<(SectionKind, String, usize)>,
        vmdesc: Option<String>,
    }

    /// Walks a fixture.  Sections after the "ram" END are parsed only for
    /// the `-M none` streams (timer + globalstate); with `stop_after_ram`
    /// the walk ends at the "ram" END.
    fn walk_fixture(name: &str, stop_after_ram: bool) -> Walk {
        let mut qf = QemuFileReader::new(fixture(name)).unwrap();
        let cfg = qf.configuration().cloned().expect("configuration record");
        let ignore_shared = cfg.has_capability("x-ignore-shared");
        let mut ram = Ram::default();
        let mut sections = Vec::new();
        while let Some(h) = qf.next_section().unwrap() {
            let pages = match h.idstr.as_str() {
                "ram" => {
                    assert_eq!((h.instance_id, h.version_id), (0, 4));
                    parse_ram_body(qf.payload(), &mut ram, ignore_shared)
                        .unwrap_or_else(|e| panic!("{name}: {e}"))
                }
                "timer" => {
                    assert_eq!(h.kind, SectionKind::Full);
                    qf.payload().skip(24).unwrap();
                    0
                }
                "globalstate" => {
                    let p = qf.payload();
                    let len = p.read_be32().unwrap();
                    let mut state = [0u8; 100];
                    p.read_bytes(&mut state).unwrap();
                    assert_eq!(&state[..len as usize], b"prelaunch\0");
                    0
                }
                other => panic!("{name}: unexpected section {other}"),
            };
            qf.finish_section(&h).unwrap();
            let done = h.idstr == "ram" && h.kind == SectionKind::End;
            sections.push((h.kind, h.idstr, pages));
            if done && stop_after_ram {
                return Walk {
                    cfg,
                    ram,
                    sections,
                    vmdesc: None,
                };
            }
        }
        let vmdesc = qf.read_vmdesc().unwrap();
        Walk {
            cfg,
            ram,
            sections,
            vmdesc,
        }
    }

    fn check_ram0(walk: &Walk, size: usize) {
        let (name, data) = &walk.ram.blocks[0];
        assert_eq!(name, "ram0");
        assert_eq!(data.len(), size);
        assert!(walk.ram.received[0].iter().all(|&n| n == 1));
        let expected = expected_ram(size);
        for (i, (got, want)) in data.chunks(PAGE).zip(expected.chunks(PAGE)).enumerate() {
            assert!(got == want, "page {i} of ram0 differs");
        }
    }

    fn kinds(walk: &Walk) -> Vec<(SectionKind, &str)> {
        walk.sections
            .iter()
            .map(|(k, n, _)| (*k, n.as_str()))
            .collect()
    }

    #[test]
    fn fixture_none_2m() {
        let w = walk_fixture("none-2m.qemu", false);
        assert_eq!(w.cfg.machine_type, "none");
        assert_eq!(w.cfg.capabilities, Vec::<String>::new());
        assert_eq!(w.cfg.uuid, None);
        assert_eq!(
            kinds(&w),
            vec![
                (SectionKind::Start, "ram"),
                (SectionKind::Part, "ram"),
                (SectionKind::End, "ram"),
                (SectionKind::Full, "timer"),
                (SectionKind::Full, "globalstate"),
            ]
        );
        assert_eq!(w.ram.blocks.len(), 1);
        check_ram0(&w, 2 << 20);
        assert_eq!(w.sections[1].2, 512);
        assert!(w.vmdesc.unwrap().starts_with("{\"page_size\": 4096,"));
    }

    #[test]
    fn fixture_none_4m_ratelimited() {
        let w = walk_fixture("none-4m-ratelimited.qemu", false);
        let ram_sections: Vec<_> = w.sections.iter().filter(|s| s.1 == "ram").collect();
        let parts = ram_sections
            .iter()
            .filter(|s| s.0 == SectionKind::Part)
            .count();
        assert!(parts > 1, "expected several PART sections, got {parts}");
        let end = ram_sections.last().unwrap();
        assert_eq!(end.0, SectionKind::End);
        assert!(end.2 > 0, "expected pages in the END section");
        let total: usize = ram_sections.iter().map(|s| s.2).sum();
        assert_eq!(total, 1024);
        check_ram0(&w, 4 << 20);
        assert!(w.vmdesc.is_some());
    }

    #[test]
    fn fixture_none_2m_ignore_shared() {
        let w = walk_fixture("none-2m-ignore-shared.qemu", false);
        assert_eq!(w.cfg.capabilities, vec!["x-ignore-shared".to_string()]);
        assert_eq!(
            w.cfg.uuid,
            Some([
                0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
                0xde, 0xf0
            ])
        );
        assert_eq!(w.cfg.target_page_bits, None);
        check_ram0(&w, 2 << 20);
    }

    #[test]
    fn fixture_microvm_2m() {
        let w = walk_fixture("microvm-2m.qemu", true);
        assert_eq!(w.cfg.machine_type, "microvm");
        let blocks: Vec<_> = w
            .ram
            .blocks
            .iter()
            .map(|(n, d)| (n.as_str(), d.len()))
            .collect();
        assert_eq!(
            blocks,
            vec![
                ("ram0", 2 << 20),
                ("/rom@etc/acpi/tables", 4096),
                ("pc.bios", 65536),
                ("/rom@etc/table-loader", 4096),
                ("/rom@etc/acpi/rsdp", 4096),
            ]
        );
        for (i, rx) in w.ram.received.iter().enumerate() {
            assert!(rx.iter().all(|&n| n == 1), "block {i}");
        }
        check_ram0(&w, 2 << 20);
        assert!(w.ram.blocks[4].1.starts_with(b"RSD PTR "));
        assert!(w.ram.blocks[1].1.starts_with(b"DSDT"));
        assert!(w.ram.blocks[2].1.iter().any(|&b| b != 0));
    }

    #[test]
    fn fixture_truncations_are_errors() {
        // Prefixes of a real stream that end before the "ram" END footer
        // (every one of the first 300 bytes, then sampled) fail cleanly with
        // Truncated, wherever the cut falls.
        let mut data = Vec::new();
        fixture("none-2m-ignore-shared.qemu")
            .read_to_end(&mut data)
            .unwrap();
        let mut cut = 0;
        let mut checked = 0;
        while cut < data.len() {
            let err = truncated_walk(&data[..cut]);
            match err {
                Some(e) => assert!(matches!(e, QemuFileError::Truncated { .. }), "{cut}: {e:?}"),
                // The prefix held the whole "ram" section.
                None => break,
            }
            checked += 1;
            cut += if cut < 300 { 1 } else { 997 };
        }
        assert!(checked > 300, "{checked}");
    }

    /// Walks the "ram" sections of a (possibly truncated) stream; returns the
    /// error, or `None` once a non-"ram" section header was read in full.
    fn truncated_walk(data: &[u8]) -> Option<QemuFileError> {
        let mut qf = match QemuFileReader::new(Cursor::new(data)) {
            Ok(qf) => qf,
            Err(e) => return Some(e),
        };
        let mut ram = Ram::default();
        loop {
            let h = match qf.next_section() {
                Ok(Some(h)) => h,
                Ok(None) => panic!("EOF record in a truncated stream"),
                Err(e) => return Some(e),
            };
            if h.idstr != "ram" {
                return None;
            }
            if let Err(e) = parse_ram_body(qf.payload(), &mut ram, true) {
                return Some(e);
            }
            if let Err(e) = qf.finish_section(&h) {
                return Some(e);
            }
        }
    }
}
