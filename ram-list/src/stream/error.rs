//! [`StreamError`]: what went wrong reading the outer stream, and where.

use std::error::Error;
use std::fmt;
use std::io;

use super::record::SectionKind;
use super::{
    MAX_CONFIGURATION_CAPABILITIES, MAX_CONFIGURATION_NAME_LEN, MAX_VMDESC_LEN, QEMU_VM_FILE_MAGIC,
    QEMU_VM_FILE_VERSION,
};

/// An error reading a QEMU migration stream, shaped like [`io::Error`]: the byte offset
/// (from the start of the stream) of the field that could not be read or was invalid,
/// once, a [`StreamErrorKind`] saying what was wrong, and for
/// [`StreamErrorKind::Io`] the underlying [`io::Error`] as the [`source`](Error::source).
///
/// `Display` prints the offset and the kind, never the source (error reporters that walk
/// the `source()` chain print it once):
///
/// ```
/// use ram_list::stream::{QemuFileReader, StreamErrorKind};
///
/// let e = QemuFileReader::new(&b"QEVM\0\0"[..]).unwrap_err();
/// assert_eq!(e.offset(), 4);
/// assert_eq!(e.kind(), &StreamErrorKind::Truncated { needed: 4, got: 2 });
/// assert_eq!(
///     e.to_string(),
///     "migration stream, byte offset 4: stream truncated: field needs 4 bytes, only 2 available"
/// );
/// ```
#[derive(Debug)]
pub struct StreamError {
    offset: u64,
    kind: StreamErrorKind,
    source: Option<io::Error>,
}

/// What was wrong with a stream (see [`StreamError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamErrorKind {
    /// The underlying reader failed with something other than end of file; the
    /// [`io::Error`] is the error's [`source`](Error::source).
    Io,
    /// The stream ended in the middle of a field or before the EOF record.
    Truncated {
        /// Number of bytes the field needs.
        needed: u64,
        /// Number of bytes that were available.
        got: u64,
    },
    /// The stream does not start with `QEVM`.
    BadMagic {
        /// The value found instead.
        found: u32,
    },
    /// The stream version is not [`QEMU_VM_FILE_VERSION`].
    UnsupportedVersion {
        /// The version found.
        found: u32,
    },
    /// The configuration record's machine name is longer than
    /// [`MAX_CONFIGURATION_NAME_LEN`].
    ConfigurationTooLong {
        /// The length found.
        len: u32,
    },
    /// The `configuration/capabilities` count exceeds [`MAX_CONFIGURATION_CAPABILITIES`].
    TooManyCapabilities {
        /// The count found.
        count: u32,
    },
    /// A configuration subsection this reader does not know how to skip.
    UnknownConfigSubsection {
        /// The subsection's name.
        name: String,
    },
    /// A known configuration subsection with an unexpected version.
    UnsupportedSubsectionVersion {
        /// The subsection's name.
        name: String,
        /// The version found (only 1 is known).
        version: u32,
    },
    /// A record type byte that is not a valid top-level record.
    UnknownRecordType {
        /// The byte found.
        byte: u8,
    },
    /// A string field (idstr, machine name, capability, vmdesc) is not UTF-8.
    InvalidUtf8 {
        /// What the string was.
        what: &'static str,
    },
    /// A PART or END record names a section id no START/FULL introduced.
    UnknownSectionId {
        /// The record kind.
        kind: SectionKind,
        /// The unknown section id.
        section_id: u32,
    },
    /// A START/FULL record reuses a section id for a different idstr/instance.
    ConflictingSectionId {
        /// The reused section id.
        section_id: u32,
        /// Name previously bound to the id.
        previous: String,
        /// Name in this record.
        idstr: String,
    },
    /// After a section body, the byte found is not the footer marker 0x7e.
    MissingFooter {
        /// The section being finished.
        section_id: u32,
        /// The byte found instead of 0x7e.
        found: u8,
    },
    /// The footer names a different section id than its section.
    FooterMismatch {
        /// The id of the section being finished.
        expected: u32,
        /// The id found in the footer.
        found: u32,
    },
    /// A new record was requested while a section body was still open.
    SectionNotFinished {
        /// The open section.
        section_id: u32,
    },
    /// [`QemuFileReader::finish_section`](super::QemuFileReader::finish_section) was
    /// called for a section that is not the open one (or with no section open).
    NotOpen {
        /// The section the caller tried to finish.
        section_id: u32,
    },
    /// A `QEMU_VM_COMMAND` this reader cannot step over.
    UnsupportedCommand {
        /// The command number.
        cmd: u16,
    },
    /// The vmstate description after EOF is longer than [`MAX_VMDESC_LEN`].
    VmdescTooLong {
        /// The length found.
        len: u32,
    },
    /// Bytes after the EOF record that are not a vmstate description.
    TrailingData {
        /// The byte found.
        byte: u8,
    },
    /// [`QemuFileReader::read_vmdesc`](super::QemuFileReader::read_vmdesc) was called
    /// before the EOF record.
    NotAtEof,
    /// The device sections after the RAM section exceed the reader's limit.
    DeviceStateTooLong {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The stream ended inside a device section: no footer (followed by another section
    /// or the EOF record) closes it.
    UnterminatedSection {
        /// The section's id.
        section_id: u32,
        /// Its idstr.
        idstr: String,
    },
    /// The vmstate description does not list this device section where the stream has
    /// it: the sections were not delimited as the source wrote them.
    DeviceSectionUnlisted {
        /// The section's idstr.
        idstr: String,
        /// Its instance id.
        instance_id: u32,
    },
    /// A return-path message whose length does not fit its type.
    BadReturnPathMessage {
        /// The message type.
        kind: u16,
        /// Its length.
        len: u16,
    },
}

impl StreamError {
    /// An error of `kind` at byte `offset`.
    pub fn new(offset: u64, kind: StreamErrorKind) -> Self {
        StreamError {
            offset,
            kind,
            source: None,
        }
    }

    /// A [`StreamErrorKind::Io`] error at byte `offset`, caused by `source`.
    pub fn io(offset: u64, source: io::Error) -> Self {
        StreamError {
            offset,
            kind: StreamErrorKind::Io,
            source: Some(source),
        }
    }

    /// Byte offset in the stream at which the error was detected.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &StreamErrorKind {
        &self.kind
    }

    /// The parts: offset, kind, and the I/O error of a [`StreamErrorKind::Io`].
    pub fn into_parts(self) -> (u64, StreamErrorKind, Option<io::Error>) {
        (self.offset, self.kind, self.source)
    }
}

impl fmt::Display for StreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migration stream, byte offset {}: {}",
            self.offset, self.kind
        )
    }
}

impl Error for StreamError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_ref().map(|e| e as &(dyn Error + 'static))
    }
}

/// `n` and the noun, in the singular for one.
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

impl fmt::Display for StreamErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The I/O error itself is the `source()`.
            StreamErrorKind::Io => f.write_str("reading the stream failed"),
            StreamErrorKind::Truncated { needed, got } => write!(
                f,
                "stream truncated: field needs {}, only {got} available",
                plural(*needed, "byte")
            ),
            StreamErrorKind::BadMagic { found } => write!(
                f,
                "bad magic {found:#010x}, expected {QEMU_VM_FILE_MAGIC:#010x} (\"QEVM\")"
            ),
            StreamErrorKind::UnsupportedVersion { found } => write!(
                f,
                "unsupported stream version {found}, expected {QEMU_VM_FILE_VERSION}"
            ),
            StreamErrorKind::ConfigurationTooLong { len } => write!(
                f,
                "configuration machine name of {len} bytes exceeds {MAX_CONFIGURATION_NAME_LEN}"
            ),
            StreamErrorKind::TooManyCapabilities { count } => write!(
                f,
                "{count} configuration capabilities exceed {MAX_CONFIGURATION_CAPABILITIES}"
            ),
            StreamErrorKind::UnknownConfigSubsection { name } => {
                write!(f, "unknown configuration subsection {name:?}")
            }
            StreamErrorKind::UnsupportedSubsectionVersion { name, version } => {
                write!(f, "unsupported version {version} of subsection {name:?}")
            }
            StreamErrorKind::UnknownRecordType { byte } => {
                write!(f, "unknown record type {byte:#04x}")
            }
            StreamErrorKind::InvalidUtf8 { what } => write!(f, "{what} is not valid UTF-8"),
            StreamErrorKind::UnknownSectionId { kind, section_id } => write!(
                f,
                "{kind} record for section id {section_id} that no START/FULL introduced"
            ),
            StreamErrorKind::ConflictingSectionId {
                section_id,
                previous,
                idstr,
            } => write!(
                f,
                "section id {section_id} reused for {idstr:?} (was {previous:?})"
            ),
            StreamErrorKind::MissingFooter { section_id, found } => write!(
                f,
                "expected section footer 0x7e after section {section_id}, found {found:#04x}"
            ),
            StreamErrorKind::FooterMismatch { expected, found } => write!(
                f,
                "section footer names section {found}, expected {expected}"
            ),
            StreamErrorKind::SectionNotFinished { section_id } => write!(
                f,
                "section {section_id} is still open; call finish_section first"
            ),
            StreamErrorKind::NotOpen { section_id } => {
                write!(f, "section {section_id} is not the open section")
            }
            StreamErrorKind::UnsupportedCommand { cmd } => {
                write!(f, "unsupported migration command {cmd}")
            }
            StreamErrorKind::VmdescTooLong { len } => write!(
                f,
                "vmstate description of {len} bytes exceeds {MAX_VMDESC_LEN}"
            ),
            StreamErrorKind::TrailingData { byte } => {
                write!(f, "unexpected byte {byte:#04x} after the EOF record")
            }
            StreamErrorKind::NotAtEof => {
                f.write_str("the vmstate description follows the EOF record")
            }
            StreamErrorKind::DeviceStateTooLong { limit } => write!(
                f,
                "the device sections after the RAM section exceed {}",
                plural(*limit, "byte")
            ),
            StreamErrorKind::UnterminatedSection { section_id, idstr } => write!(
                f,
                "the stream ends inside device section {section_id} (\"{idstr}\"): no footer closes it"
            ),
            StreamErrorKind::DeviceSectionUnlisted { idstr, instance_id } => write!(
                f,
                "device section \"{idstr}\" instance {instance_id} is not where the vmstate description lists it"
            ),
            StreamErrorKind::BadReturnPathMessage { kind, len } => write!(
                f,
                "return-path message {kind} of {} does not fit its type",
                plural(u64::from(*len), "byte")
            ),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn io_cause_is_the_source_and_printed_once() {
        let e = StreamError::io(7, io::Error::other("disk on fire"));
        assert_eq!(e.kind(), &StreamErrorKind::Io);
        let shown = e.to_string();
        assert!(!shown.contains("disk on fire"), "{shown}");
        assert_eq!(e.source().unwrap().to_string(), "disk on fire");
        let (offset, kind, source) = e.into_parts();
        assert_eq!((offset, kind), (7, StreamErrorKind::Io));
        assert!(source.is_some());
    }

    #[test]
    fn one_byte_is_singular() {
        let t = |needed| StreamErrorKind::Truncated { needed, got: 0 }.to_string();
        assert!(t(1).contains("needs 1 byte,"), "{}", t(1));
        assert!(t(2).contains("needs 2 bytes,"), "{}", t(2));
    }
}
