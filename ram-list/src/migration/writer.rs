//! [`MigrationWriter`]: a whole migration stream in QEMU's outer format around a
//! [`RamSaver`]: header, configuration, commands, the RAM section, the device sections,
//! EOF and the vmstate description.

use std::io::{self, Write};

use rcu_core::{Flavor, ReadGuard};

use super::error::SaveError;
use super::format::{RAM_SECTION_ID, RAM_SECTION_NAME, RAM_SECTION_VERSION};
use super::options::SaveOptions;
use super::save::RamSaver;
use super::stats::IterateStatus;
use crate::memory::PAGE_SIZE;
use crate::stream::{
    encode_command, vmdesc_json, Configuration, DeviceState, SectionHeader, SectionKind,
    MIG_CMD_OPEN_RETURN_PATH, QEMU_VM_EOF, QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION,
    QEMU_VM_VMDESCRIPTION,
};
use crate::RamList;

/// Writes a whole migration stream in QEMU's outer format: the `QEVM` header, a
/// configuration record, the "ram" section as START (setup), PART (each iteration) and
/// END (complete) records with their footers, the device sections given to
/// [`MigrationWriter::set_devices`], the EOF record, and the vmstate description of the
/// device sections (as QEMU writes it; a QEMU destination warns without one).
#[derive(Debug)]
pub struct MigrationWriter<W: Write> {
    w: W,
    saver: RamSaver,
    /// Section headers and footers are built here.
    buf: Vec<u8>,
    /// Device sections sent after the RAM section.
    devices: Vec<DeviceState>,
}

impl<W: Write> MigrationWriter<W> {
    /// Write the header and a configuration record naming `machine` (with the
    /// `configuration/capabilities` subsection listing `x-ignore-shared` when
    /// [`SaveOptions::ignore_shared`] is set, so that the destination knows `MEM_SIZE`
    /// entries carry the extra `be64 addr`).
    pub fn new(mut w: W, machine: &str, opts: SaveOptions) -> io::Result<Self> {
        let mut head = Vec::with_capacity(64 + machine.len());
        head.extend_from_slice(&QEMU_VM_FILE_MAGIC.to_be_bytes());
        head.extend_from_slice(&QEMU_VM_FILE_VERSION.to_be_bytes());
        let capabilities = if opts.ignore_shared {
            vec!["x-ignore-shared".to_owned()]
        } else {
            Vec::new()
        };
        Configuration {
            machine_type: machine.to_owned(),
            target_page_bits: None,
            capabilities,
            uuid: None,
        }
        .encode(&mut head);
        w.write_all(&head)?;
        Ok(MigrationWriter {
            w,
            saver: RamSaver::new(opts),
            buf: Vec::with_capacity(32),
            devices: Vec::new(),
        })
    }

    /// Write the `OPEN_RETURN_PATH` command: the destination will answer on the
    /// connection's other direction (a QEMU destination ends with a `SHUT` message,
    /// status 0, once it has loaded the whole stream; see
    /// [`ReturnPathMessage`](crate::stream::ReturnPathMessage)). Call it before
    /// [`MigrationWriter::setup`], on a transport that has another direction.
    pub fn open_return_path(&mut self) -> io::Result<()> {
        self.buf.clear();
        encode_command(MIG_CMD_OPEN_RETURN_PATH, &[], &mut self.buf);
        self.w.write_all(&self.buf)
    }

    /// The device sections to send after the RAM section, in order (for a QEMU
    /// destination: [`QemuMachine::device_states`](super::QemuMachine::device_states)).
    /// Their section ids follow the RAM section's.
    pub fn set_devices(&mut self, devices: Vec<DeviceState>) {
        self.devices = devices;
    }

    /// The RAM saver (statistics, remaining pages).
    pub fn saver(&self) -> &RamSaver {
        &self.saver
    }

    /// The RAM saver, for [`RamSaver::sync`].
    pub fn saver_mut(&mut self) -> &mut RamSaver {
        &mut self.saver
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    /// Write one section of the RAM: its header, the body `body` writes, its footer.
    fn section(
        &mut self,
        kind: SectionKind,
        body: impl FnOnce(&mut RamSaver, &mut W) -> Result<IterateStatus, SaveError>,
    ) -> Result<IterateStatus, SaveError> {
        let header = SectionHeader {
            kind,
            section_id: RAM_SECTION_ID,
            idstr: RAM_SECTION_NAME.to_owned(),
            instance_id: 0,
            version_id: RAM_SECTION_VERSION,
            offset: 0,
        };
        self.buf.clear();
        header.encode(&mut self.buf);
        self.w.write_all(&self.buf)?;
        let st = body(&mut self.saver, &mut self.w)?;
        self.buf.clear();
        header.encode_footer(&mut self.buf);
        self.w.write_all(&self.buf)?;
        Ok(st)
    }

    /// The START section: [`RamSaver::setup`].
    pub fn setup<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        self.section(SectionKind::Start, |s, w| s.setup(list, w, guard))
    }

    /// One PART section: [`RamSaver::iterate`].
    pub fn iterate<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        max_bytes: u64,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        let st = self.section(SectionKind::Part, |s, w| {
            s.iterate(list, w, max_bytes, guard)
        })?;
        self.w.flush()?;
        Ok(st)
    }

    /// The END section ([`RamSaver::complete`]) and the EOF record; returns the writer.
    pub fn complete<F: Flavor>(
        mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<W, SaveError> {
        self.complete_in_place(list, guard)?;
        Ok(self.w)
    }

    /// Like [`MigrationWriter::complete`], keeping the writer (and the statistics).
    pub fn complete_in_place<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        let st = self.section(SectionKind::End, |s, w| s.complete(list, w, guard))?;
        self.buf.clear();
        for (i, d) in self.devices.iter().enumerate() {
            d.encode(RAM_SECTION_ID + 1 + i as u32, &mut self.buf);
        }
        self.buf.push(QEMU_VM_EOF);
        let desc = vmdesc_json(PAGE_SIZE, &self.devices);
        self.buf.push(QEMU_VM_VMDESCRIPTION);
        self.buf
            .extend_from_slice(&(desc.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(desc.as_bytes());
        self.w.write_all(&self.buf)?;
        self.w.flush()?;
        Ok(st)
    }
}
