//! Device sections: [`DeviceState`], a non-iterable section to write (with the fields its
//! vmstate description lists), and [`DeviceSection`], one received and delimited by
//! [`QemuFileReader::read_device_sections`](super::QemuFileReader::read_device_sections).

use super::record::{SectionHeader, SectionKind};

/// One field of a [`DeviceState`]: its bytes on the wire, and its name and vmstate type
/// for the description (`"int64"`, `"uint32"`, `"buffer"`, `"unused_buffer"`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceField {
    /// The field's name.
    pub name: String,
    /// Its vmstate type name.
    pub kind: String,
    /// Its bytes, as they go on the wire.
    pub data: Vec<u8>,
}

impl DeviceField {
    /// A field named `name` of vmstate type `kind` holding `data`.
    pub fn new(name: &str, kind: &str, data: impl Into<Vec<u8>>) -> Self {
        DeviceField {
            name: name.to_owned(),
            kind: kind.to_owned(),
            data: data.into(),
        }
    }
}

/// The state of one device, to be sent as a FULL section after the RAM section (QEMU's
/// `vmstate_save` of one `SaveStateEntry`).
///
/// ```
/// use ram_list::stream::{DeviceField, DeviceState};
///
/// let timer = DeviceState {
///     idstr: "timer".into(),
///     instance_id: 0,
///     version_id: 2,
///     fields: vec![DeviceField::new("cpu_ticks_offset", "int64", [0; 8])],
/// };
/// let mut out = Vec::new();
/// timer.encode(0, &mut out);
/// assert_eq!(out[0], 0x04); // SECTION_FULL
/// assert_eq!(&out[out.len() - 5..], &[0x7e, 0, 0, 0, 0]); // footer
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The section's idstr (QEMU's `SaveStateEntry` idstr, e.g. `"globalstate"`).
    pub idstr: String,
    /// Its instance id.
    pub instance_id: u32,
    /// The version of its format.
    pub version_id: u32,
    /// Its fields, in wire order.
    pub fields: Vec<DeviceField>,
}

impl DeviceState {
    /// The section header this state is sent under, with `section_id`.
    pub fn header(&self, section_id: u32) -> SectionHeader {
        SectionHeader {
            kind: SectionKind::Full,
            section_id,
            idstr: self.idstr.clone(),
            instance_id: self.instance_id,
            version_id: self.version_id,
            offset: 0,
        }
    }

    /// Append the whole FULL record: header, fields, footer.
    pub fn encode(&self, section_id: u32, out: &mut Vec<u8>) {
        let header = self.header(section_id);
        header.encode(out);
        for f in &self.fields {
            out.extend_from_slice(&f.data);
        }
        header.encode_footer(out);
    }
}

/// A device section received after the RAM section: its header and its body, which this
/// crate does not interpret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSection {
    /// The FULL record's header (`offset` is where it starts in the stream).
    pub header: SectionHeader,
    /// The body, between the header and the footer.
    pub body: Vec<u8>,
}
