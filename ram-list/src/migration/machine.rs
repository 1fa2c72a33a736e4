//! [`QemuMachine`]: what a source must send for QEMU to accept its stream as a machine
//! of a given type: the RAM block its memory is, and the device sections QEMU's own
//! source sends for it.

use crate::stream::{DeviceField, DeviceSection, DeviceState};

/// Name of QEMU's global-state section: the run state the source was in.
pub const GLOBALSTATE: &str = "globalstate";
/// Size of the run-state buffer of the global-state section (QEMU's `runstate[100]`).
const RUNSTATE_LEN: usize = 100;

/// A QEMU machine type as a migration source sees it.
///
/// ```
/// use ram_list::migration::QemuMachine;
///
/// let m = QemuMachine::by_name("none").unwrap();
/// assert_eq!(m.ram_block, "ram"); // `-M none -m 16M` has one block, "ram", of 16 MiB
/// let devices = m.device_states("running");
/// assert_eq!(devices.iter().map(|d| d.idstr.as_str()).collect::<Vec<_>>(), ["timer", "globalstate"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QemuMachine {
    /// The machine type name, as the configuration record carries it (what QEMU's
    /// `-M` resolves to: `none`, not an alias).
    pub name: &'static str,
    /// The idstr of the RAM block that `-m` sizes, mapped at guest physical address 0.
    pub ram_block: &'static str,
}

/// QEMU's `-M none`: no CPU, no device; `-m N` makes one RAM block, "ram" (the machine's
/// `default_ram_id`), at guest address 0.
pub const MACHINE_NONE: QemuMachine = QemuMachine {
    name: "none",
    ram_block: "ram",
};

impl QemuMachine {
    /// The machines a source can be built for.
    pub const ALL: &'static [QemuMachine] = &[MACHINE_NONE];

    /// The machine called `name`, if a source can be built for it.
    pub fn by_name(name: &str) -> Option<QemuMachine> {
        Self::ALL.iter().copied().find(|m| m.name == name)
    }

    /// The device sections QEMU 7.2's own source sends for this machine, for a guest
    /// in run state `runstate` (`"running"`, `"paused"`, ...): `timer` (version 2: the
    /// tick and clock offsets, zero as in a guest that never ran) and `globalstate`
    /// (version 1: the run state, which decides whether the destination resumes the
    /// guest).
    pub fn device_states(&self, runstate: &str) -> Vec<DeviceState> {
        let mut state = [0u8; RUNSTATE_LEN];
        let name = &runstate.as_bytes()[..runstate.len().min(RUNSTATE_LEN - 1)];
        state[..name.len()].copy_from_slice(name);
        // QEMU counts the terminating NUL.
        let size = name.len() as u32 + 1;
        vec![
            DeviceState {
                idstr: "timer".to_owned(),
                instance_id: 0,
                version_id: 2,
                fields: vec![
                    DeviceField::new("cpu_ticks_offset", "int64", [0; 8]),
                    DeviceField::new("unused", "unused_buffer", [0; 8]),
                    DeviceField::new("cpu_clock_offset", "int64", [0; 8]),
                ],
            },
            DeviceState {
                idstr: GLOBALSTATE.to_owned(),
                instance_id: 0,
                version_id: 1,
                fields: vec![
                    DeviceField::new("size", "uint32", size.to_be_bytes()),
                    DeviceField::new("runstate", "buffer", state),
                ],
            },
        ]
    }
}

/// The run state a source reported in its `globalstate` section, if it sent one that
/// reads as one (QEMU's `global_state_get_runstate`).
///
/// ```
/// use ram_list::migration::{runstate, QemuMachine};
/// use ram_list::stream::DeviceSection;
///
/// let sections: Vec<DeviceSection> = QemuMachine::by_name("none")
///     .unwrap()
///     .device_states("paused")
///     .iter()
///     .map(|d| DeviceSection {
///         header: d.header(0),
///         body: d.fields.iter().flat_map(|f| f.data.clone()).collect(),
///     })
///     .collect();
/// assert_eq!(runstate(&sections).as_deref(), Some("paused"));
/// ```
pub fn runstate(sections: &[DeviceSection]) -> Option<String> {
    let gs = sections.iter().find(|s| s.header.idstr == GLOBALSTATE)?;
    let buf = gs.body.get(4..4 + RUNSTATE_LEN)?;
    let end = buf.iter().position(|&b| b == 0)?;
    let name = std::str::from_utf8(&buf[..end]).ok()?;
    (!name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic())).then(|| name.to_owned())
}
