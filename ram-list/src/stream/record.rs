//! The top-level records of the stream: section headers ([`SectionHeader`], of a
//! [`SectionKind`]), commands and EOF ([`Record`]).

use core::fmt;

use super::{
    QEMU_VM_COMMAND, QEMU_VM_SECTION_END, QEMU_VM_SECTION_FOOTER, QEMU_VM_SECTION_FULL,
    QEMU_VM_SECTION_PART, QEMU_VM_SECTION_START,
};

/// Kind of a section record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SectionKind {
    /// `QEMU_VM_SECTION_START` (0x01): first part of an iterable section (e.g. "ram");
    /// carries the full header.
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

    /// The kind of a record type byte, if it is a section record.
    pub fn from_record_type(byte: u8) -> Option<Self> {
        match byte {
            QEMU_VM_SECTION_START => Some(SectionKind::Start),
            QEMU_VM_SECTION_PART => Some(SectionKind::Part),
            QEMU_VM_SECTION_END => Some(SectionKind::End),
            QEMU_VM_SECTION_FULL => Some(SectionKind::Full),
            _ => None,
        }
    }

    /// Whether the record carries idstr, instance id and version id on the wire (START
    /// and FULL do, PART and END do not).
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

/// Header of a section record. For PART and END records, which only carry the section id
/// on the wire, `idstr`, `instance_id` and `version_id` are resolved from the START/FULL
/// record that introduced the id.
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

impl SectionHeader {
    /// Append the record as QEMU writes it (`offset` is not written): the type byte, the
    /// section id and, for START and FULL, the idstr, instance id and version id. The
    /// idstr is truncated to 255 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.kind.record_type());
        out.extend_from_slice(&self.section_id.to_be_bytes());
        if self.kind.has_full_header() {
            put_idstr(out, &self.idstr);
            out.extend_from_slice(&self.instance_id.to_be_bytes());
            out.extend_from_slice(&self.version_id.to_be_bytes());
        }
    }

    /// Append the footer that ends this section's body (0x7e, be32 section id).
    pub fn encode_footer(&self, out: &mut Vec<u8>) {
        out.push(QEMU_VM_SECTION_FOOTER);
        out.extend_from_slice(&self.section_id.to_be_bytes());
    }
}

/// The bytes of `s` that fit a QEMU idstr: at most 255, cut at a character boundary.
pub(crate) fn idstr_bytes(s: &str) -> &[u8] {
    let mut len = s.len().min(255);
    while !s.is_char_boundary(len) {
        len -= 1;
    }
    &s.as_bytes()[..len]
}

/// Append a QEMU idstr: a `u8` length and the bytes of [`idstr_bytes`].
pub(crate) fn put_idstr(out: &mut Vec<u8>, s: &str) {
    let b = idstr_bytes(s);
    out.push(b.len() as u8);
    out.extend_from_slice(b);
}

/// Append a `QEMU_VM_COMMAND` record: the type byte, `be16 cmd`, `be16 len`, the data
/// (cut to 65535 bytes), as QEMU's `qemu_savevm_command_send` writes it.
///
/// ```
/// use ram_list::stream::{encode_command, MIG_CMD_PING};
///
/// let mut out = Vec::new();
/// encode_command(MIG_CMD_PING, &1u32.to_be_bytes(), &mut out);
/// assert_eq!(out, [0x08, 0, 2, 0, 4, 0, 0, 0, 1]);
/// ```
pub fn encode_command(cmd: u16, data: &[u8], out: &mut Vec<u8>) {
    let data = &data[..data.len().min(usize::from(u16::MAX))];
    out.push(QEMU_VM_COMMAND);
    out.extend_from_slice(&cmd.to_be_bytes());
    out.extend_from_slice(&(data.len() as u16).to_be_bytes());
    out.extend_from_slice(data);
}

/// One top-level record, as returned by
/// [`QemuFileReader::next_record`](super::QemuFileReader::next_record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A section header; its body follows and must be consumed through
    /// [`QemuFileReader::payload`](super::QemuFileReader::payload) before
    /// [`QemuFileReader::finish_section`](super::QemuFileReader::finish_section).
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
