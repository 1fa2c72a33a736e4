//! [`Configuration`]: the `QEMU_VM_CONFIGURATION` record (vmstate "configuration",
//! version 1), read and written.

use std::io::Read;

use super::error::{StreamError, StreamErrorKind};
use super::input::CountingReader;
use super::record::put_idstr;
use super::{
    MAX_CONFIGURATION_CAPABILITIES, MAX_CONFIGURATION_NAME_LEN, QEMU_VM_CONFIGURATION,
    QEMU_VM_SUBSECTION,
};

/// Subsection of the configuration record carrying `TARGET_PAGE_BITS`.
const SUBSECTION_TARGET_PAGE_BITS: &str = "configuration/target-page-bits";
/// Subsection of the configuration record listing migration capabilities.
const SUBSECTION_CAPABILITIES: &str = "configuration/capabilities";
/// Subsection of the configuration record carrying the source VM's UUID.
const SUBSECTION_UUID: &str = "configuration/uuid";

/// The contents of the `QEMU_VM_CONFIGURATION` record.
///
/// ```
/// use ram_list::stream::{Configuration, QemuFileReader};
///
/// let cfg = Configuration {
///     machine_type: "none".into(),
///     target_page_bits: Some(12),
///     capabilities: vec!["x-ignore-shared".into()],
///     uuid: None,
/// };
/// let mut s = b"QEVM\0\0\0\x03".to_vec();
/// cfg.encode(&mut s);
/// s.push(0x00); // EOF
/// assert_eq!(QemuFileReader::new(&s[..]).unwrap().configuration(), Some(&cfg));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    /// Machine type name of the source, e.g. `"none"`, `"microvm"` or `"pc-i440fx-7.2"`
    /// (the `pc` alias is resolved by QEMU).
    pub machine_type: String,
    /// `TARGET_PAGE_BITS` from the `configuration/target-page-bits` subsection; QEMU only
    /// sends it for targets with a variable page size.
    pub target_page_bits: Option<u32>,
    /// Capabilities from the `configuration/capabilities` subsection (QEMU 7.2 only lists
    /// `x-ignore-shared` there, and only when enabled).
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

    /// Append the record as QEMU writes it: the type byte, the machine type, and a
    /// subsection for each field that is set (a capabilities list only if it is not
    /// empty). Names longer than 255 bytes are truncated.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(QEMU_VM_CONFIGURATION);
        out.extend_from_slice(&(self.machine_type.len() as u32).to_be_bytes());
        out.extend_from_slice(self.machine_type.as_bytes());
        let sub = |out: &mut Vec<u8>, name: &str| {
            out.push(QEMU_VM_SUBSECTION);
            put_idstr(out, name);
            out.extend_from_slice(&1u32.to_be_bytes());
        };
        if let Some(bits) = self.target_page_bits {
            sub(out, SUBSECTION_TARGET_PAGE_BITS);
            out.extend_from_slice(&bits.to_be_bytes());
        }
        if !self.capabilities.is_empty() {
            sub(out, SUBSECTION_CAPABILITIES);
            out.extend_from_slice(&(self.capabilities.len() as u32).to_be_bytes());
            for c in &self.capabilities {
                put_idstr(out, c);
            }
        }
        if let Some(uuid) = &self.uuid {
            sub(out, SUBSECTION_UUID);
            out.extend_from_slice(uuid);
        }
    }

    /// Parses the body of the configuration record (the type byte is consumed):
    /// be32 len + name, then optional subsections.
    pub(crate) fn read<R: Read>(reader: &mut CountingReader<R>) -> Result<Self, StreamError> {
        let len_offset = reader.offset();
        let len = reader.read_be32()?;
        if len > MAX_CONFIGURATION_NAME_LEN {
            return Err(StreamError::new(
                len_offset,
                StreamErrorKind::ConfigurationTooLong { len },
            ));
        }
        let name_offset = reader.offset();
        let name = reader.read_vec(len as usize)?;
        let machine_type = String::from_utf8(name).map_err(|_| {
            StreamError::new(
                name_offset,
                StreamErrorKind::InvalidUtf8 {
                    what: "configuration machine type",
                },
            )
        })?;
        let mut cfg = Configuration {
            machine_type,
            target_page_bits: None,
            capabilities: Vec::new(),
            uuid: None,
        };
        // Subsections: QEMU's loader peeks for QEMU_VM_SUBSECTION; that byte is never a
        // top-level record type, so the peek is unambiguous.
        while reader.peek_u8()? == Some(QEMU_VM_SUBSECTION) {
            cfg.read_subsection(reader)?;
        }
        Ok(cfg)
    }

    fn read_subsection<R: Read>(
        &mut self,
        reader: &mut CountingReader<R>,
    ) -> Result<(), StreamError> {
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
            return Err(StreamError::new(
                sub_offset,
                StreamErrorKind::UnknownConfigSubsection { name },
            ));
        }
        if version != 1 {
            return Err(StreamError::new(
                version_offset,
                StreamErrorKind::UnsupportedSubsectionVersion { name, version },
            ));
        }
        match name.as_str() {
            SUBSECTION_TARGET_PAGE_BITS => self.target_page_bits = Some(reader.read_be32()?),
            SUBSECTION_CAPABILITIES => {
                let count_offset = reader.offset();
                let count = reader.read_be32()?;
                if count > MAX_CONFIGURATION_CAPABILITIES {
                    return Err(StreamError::new(
                        count_offset,
                        StreamErrorKind::TooManyCapabilities { count },
                    ));
                }
                for _ in 0..count {
                    self.capabilities
                        .push(reader.read_idstr("capability name")?);
                }
            }
            _ => {
                let mut uuid = [0u8; 16];
                reader.read_bytes(&mut uuid)?;
                self.uuid = Some(uuid);
            }
        }
        Ok(())
    }
}
