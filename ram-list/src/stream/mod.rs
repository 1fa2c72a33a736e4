//! The outer framing of QEMU's migration stream (the "QEMU file" format written by
//! `qemu_savevm_state_*` in QEMU's `migration/savevm.c`), read and written.
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
//! * [`QemuFileReader`] handles the header, the [`Configuration`] record, the section
//!   framing (headers and footers, [`SectionHeader`]) and the section-id -> idstr map.
//!   Section *bodies* have no length prefix, so the caller parses each body itself through
//!   [`QemuFileReader::payload`] (a [`CountingReader`]) and then calls
//!   [`QemuFileReader::finish_section`]. The RAM section's body is parsed by
//!   [`crate::migration`].
//! * [`Configuration::encode`] and [`SectionHeader::encode`] write the same records;
//!   [`encode_command`] writes a command record.
//! * After the RAM section a source sends the device sections (FULL records) of its
//!   machine. Their bodies have no length prefix either, but they are the last sections
//!   of the stream: [`QemuFileReader::read_device_sections`] delimits them by their
//!   footers as they arrive, names them, and checks the split against the vmstate
//!   description that ends the stream ([`DeviceTail`]). [`DeviceState`] is a device
//!   section to write, with its entry in that description ([`vmdesc_json`]).
//! * [`ReturnPathMessage`]: what a destination sends back to its source (QEMU's return
//!   path: `SHUT` at the end, `PONG` for each `PING` command).
//!
//! See `tests/fixtures/README.md` for the byte layout observed in real QEMU 7.2 streams.
//!
//! Every malformed input is a [`StreamError`] carrying the byte offset of the offending
//! field; no length field can make the reader allocate more than a small, fixed bound.

mod configuration;
mod device;
mod error;
mod input;
mod reader;
mod record;
mod return_path;
mod tail;
mod vmdesc;

pub use configuration::Configuration;
pub use device::{DeviceField, DeviceSection, DeviceState};
pub use error::{StreamError, StreamErrorKind};
pub use input::CountingReader;
pub use reader::QemuFileReader;
pub use record::{encode_command, Record, SectionHeader, SectionKind};
pub(crate) use record::{idstr_bytes, put_idstr};
pub use return_path::ReturnPathMessage;
pub use tail::DeviceTail;
pub use vmdesc::vmdesc_json;

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

/// `MIG_CMD_OPEN_RETURN_PATH`: the destination opens the return path (no data); it
/// then answers each `PING` with a `PONG` and ends with a `SHUT`.
pub const MIG_CMD_OPEN_RETURN_PATH: u16 = 1;
/// `MIG_CMD_PING`: a `be32` the destination echoes in a `PONG` on the return path.
pub const MIG_CMD_PING: u16 = 2;
/// `MIG_CMD_POSTCOPY_LISTEN`: the destination starts postcopy (not supported).
pub const MIG_CMD_POSTCOPY_LISTEN: u16 = 4;
/// `MIG_CMD_POSTCOPY_RUN`: the destination starts the guest in postcopy (not supported).
pub const MIG_CMD_POSTCOPY_RUN: u16 = 5;
/// `MIG_CMD_POSTCOPY_RAM_DISCARD`: pages to discard before postcopy (not supported).
pub const MIG_CMD_POSTCOPY_RAM_DISCARD: u16 = 6;

/// Return-path message `MIG_RP_MSG_SHUT`: `be32` status, 0 when the destination loaded
/// the whole stream; the destination sends nothing after it.
pub const MIG_RP_MSG_SHUT: u16 = 1;
/// Return-path message `MIG_RP_MSG_PONG`: the `be32` of a `PING` command.
pub const MIG_RP_MSG_PONG: u16 = 2;

/// `MIG_CMD_PACKAGED`: the command's data is the length of a nested stream that follows
/// it; such streams are not supported by this reader.
pub const MIG_CMD_PACKAGED: u16 = 7;

/// Largest accepted machine-type name in the configuration record.
pub const MAX_CONFIGURATION_NAME_LEN: u32 = 64 * 1024;
/// Largest accepted number of entries in the `configuration/capabilities` subsection.
pub const MAX_CONFIGURATION_CAPABILITIES: u32 = 1024;
/// Largest accepted JSON vmstate description after the EOF record.
pub const MAX_VMDESC_LEN: u32 = 16 * 1024 * 1024;

/// Largest device state (all device sections after the RAM section together) that
/// [`QemuFileReader::read_device_sections`] accepts by default: a `pc` machine sends about
/// 120 KiB.
pub const MAX_DEVICE_STATE: usize = 64 * 1024 * 1024;

/// Offset of the configuration record: it follows the 8-byte header.
pub const CONFIGURATION_OFFSET: u64 = 8;
