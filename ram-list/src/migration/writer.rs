//! [`MigrationWriter`]: a whole migration stream in QEMU's outer format around a
//! [`RamSaver`].

use std::io::{self, Write};

use rcu_core::{Flavor, ReadGuard};

use super::error::SaveError;
use super::format::{RAM_SECTION_ID, RAM_SECTION_NAME, RAM_SECTION_VERSION};
use super::options::SaveOptions;
use super::save::RamSaver;
use super::stats::IterateStatus;
use crate::stream::{
    Configuration, SectionHeader, SectionKind, QEMU_VM_EOF, QEMU_VM_FILE_MAGIC,
    QEMU_VM_FILE_VERSION,
};
use crate::RamList;

/// Writes a whole migration stream in QEMU's outer format: the `QEVM` header, a
/// configuration record, the "ram" section as START (setup), PART (each iteration) and
/// END (complete) records with their footers, and the EOF record.
#[derive(Debug)]
pub struct MigrationWriter<W: Write> {
    w: W,
    saver: RamSaver,
    /// Section headers and footers are built here.
    buf: Vec<u8>,
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
        })
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
        self.w.write_all(&[QEMU_VM_EOF])?;
        self.w.flush()?;
        Ok(st)
    }
}
