//! The destination of a stream, as it arrives: [`receive`] (a live migration from a real
//! QEMU: configuration, commands and return path, the RAM section, the device sections),
//! [`load`] (the RAM section alone), and the session they share (the configuration checks
//! and the RAM sections, fed to a [`RamLoader`]).

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use rcu_core::{Flavor, Reader};

use super::error::{LoadError, LoadErrorKind};
use super::format::{RAM_SECTION_NAME, RAM_SECTION_VERSION};
use super::load::RamLoader;
use super::options::LoadOptions;
use super::stats::{LoadReport, LoadStats};
use crate::stream::{
    Configuration, DeviceSection, QemuFileReader, Record, ReturnPathMessage, SectionHeader,
    SectionKind, StreamError, StreamErrorKind, CONFIGURATION_OFFSET, MAX_DEVICE_STATE,
    MIG_CMD_OPEN_RETURN_PATH, MIG_CMD_PACKAGED, MIG_CMD_PING, MIG_CMD_POSTCOPY_LISTEN,
    MIG_CMD_POSTCOPY_RAM_DISCARD, MIG_CMD_POSTCOPY_RUN,
};
use crate::{RamList, PAGE_BITS};

/// What [`receive`] is asked to do.
#[derive(Debug, Clone)]
pub struct IncomingOptions {
    /// How the RAM is loaded (usually [`LoadOptions::mirror`]: the destination takes the
    /// source's blocks).
    pub load: LoadOptions,
    /// The machine type the destination emulates: a stream of another one is
    /// [`LoadErrorKind::MachineMismatch`] (QEMU's check). `None` accepts any.
    pub machine: Option<String>,
    /// Most bytes of device sections accepted after the RAM section.
    pub max_device_state: usize,
}

impl IncomingOptions {
    /// Mirror the source's blocks, up to `max_total_bytes` of guest RAM; any machine type.
    pub fn mirror(max_total_bytes: u64) -> Self {
        IncomingOptions {
            load: LoadOptions::mirror(max_total_bytes),
            machine: None,
            max_device_state: MAX_DEVICE_STATE,
        }
    }
}

/// What [`receive`] tells its caller while the stream arrives.
#[derive(Debug)]
#[non_exhaustive]
pub enum IncomingEvent<'a> {
    /// The configuration record (machine type, capabilities).
    Configuration(&'a Configuration),
    /// The source opened the return path; the destination will answer on it.
    ReturnPath,
    /// A RAM section body was loaded: `kind` is START (setup), PART (an iteration) or
    /// END (completion).
    RamSection {
        /// Which part.
        kind: SectionKind,
        /// Stream offset after its footer.
        offset: u64,
        /// The load's counters so far.
        stats: &'a LoadStats,
    },
}

/// What [`receive`] read.
#[derive(Debug, Clone)]
pub struct IncomingReport {
    /// The configuration record, if any.
    pub configuration: Option<Configuration>,
    /// RAM counters.
    pub stats: LoadStats,
    /// The device sections after the RAM section, in order: not modelled, delimited and
    /// named (see [`QemuFileReader::read_device_sections`]).
    pub devices: Vec<DeviceSection>,
    /// The vmstate description, if the source sent one.
    pub vmdesc: Option<String>,
    /// Whether the source opened the return path (it got a `SHUT`, unless writing on
    /// the return path had failed).
    pub return_path: bool,
    /// Bytes read: the length of the stream.
    pub bytes: u64,
    /// From the first byte to the last.
    pub elapsed: Duration,
}

/// The stream side shared by [`load`](super::load) and [`receive`]: the outer reader, the
/// RAM loader, and the return path.
pub(super) struct Session<'l, 'w, F: Flavor, R> {
    pub(super) qf: QemuFileReader<R>,
    pub(super) loader: RamLoader<'l, F>,
    return_path: Option<&'w mut dyn Write>,
    /// The source asked for the return path and there is one to answer on (until a
    /// write on it fails).
    rp_open: bool,
    /// The source asked for the return path and there was one.
    rp_opened: bool,
}

impl<'l, 'w, F: Flavor, R: Read> Session<'l, 'w, F, R> {
    /// Read the header and configuration, check them against `machine`, and make a
    /// loader into `list` (`x-ignore-shared` in the configuration turns on
    /// [`LoadOptions::ignore_shared`]).
    pub(super) fn open(
        list: &'l RamList<F>,
        r: R,
        opts: &LoadOptions,
        machine: Option<&str>,
        return_path: Option<&'w mut dyn Write>,
    ) -> Result<Self, LoadError> {
        let qf = QemuFileReader::new(r)?;
        let mut opts = opts.clone();
        let configuration = qf.configuration();
        if let Some(expected) = machine {
            let found = configuration.map(|c| c.machine_type.as_str());
            if found != Some(expected) {
                return Err(LoadError::new(
                    CONFIGURATION_OFFSET,
                    LoadErrorKind::MachineMismatch {
                        expected: expected.to_owned(),
                        found: found.map(str::to_owned),
                    },
                ));
            }
        }
        if let Some(c) = configuration {
            // QEMU's configuration post_load: a source with other pages cannot be loaded.
            if let Some(bits) = c.target_page_bits.filter(|&b| b != PAGE_BITS) {
                return Err(LoadError::new(
                    CONFIGURATION_OFFSET,
                    LoadErrorKind::PageSizeMismatch {
                        target_page_bits: bits,
                    },
                ));
            }
            opts.ignore_shared |= c.has_capability("x-ignore-shared");
        }
        Ok(Session {
            qf,
            loader: RamLoader::new(list, opts),
            return_path,
            rp_open: false,
            rp_opened: false,
        })
    }

    /// Read records up to and including the RAM section's END, loading its bodies and
    /// answering commands; `on` hears of each.
    pub(super) fn ram(
        &mut self,
        reader: &Reader<F>,
        on: &mut dyn FnMut(IncomingEvent<'_>),
    ) -> Result<(), LoadError> {
        loop {
            let at = self.qf.offset();
            let h = match self.qf.next_record()? {
                Record::Eof => return Err(LoadError::new(at, LoadErrorKind::MissingRamEnd)),
                Record::Command { cmd, data, offset } => {
                    self.command(cmd, &data, offset, on)?;
                    continue;
                }
                Record::Section(h) => h,
            };
            check_ram_header(&h)?;
            self.loader.load_section(self.qf.payload(), reader)?;
            self.qf.finish_section(&h)?;
            on(IncomingEvent::RamSection {
                kind: h.kind,
                offset: self.qf.offset(),
                stats: self.loader.stats(),
            });
            if h.kind == SectionKind::End {
                return Ok(());
            }
        }
    }

    /// A command record: open the return path, answer a ping, step over the rest
    /// (postcopy advice), refuse what needs postcopy or a nested stream.
    fn command(
        &mut self,
        cmd: u16,
        data: &[u8],
        offset: u64,
        on: &mut dyn FnMut(IncomingEvent<'_>),
    ) -> Result<(), LoadError> {
        match cmd {
            MIG_CMD_OPEN_RETURN_PATH if self.return_path.is_some() && !self.rp_opened => {
                self.rp_open = true;
                self.rp_opened = true;
                on(IncomingEvent::ReturnPath);
            }
            MIG_CMD_PING if self.rp_open => {
                let value = data
                    .get(..4)
                    .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
                self.reply(&ReturnPathMessage::Pong { value });
            }
            MIG_CMD_PACKAGED
            | MIG_CMD_POSTCOPY_LISTEN
            | MIG_CMD_POSTCOPY_RUN
            | MIG_CMD_POSTCOPY_RAM_DISCARD => {
                return Err(LoadError::from(StreamError::new(
                    offset,
                    StreamErrorKind::UnsupportedCommand { cmd },
                )))
            }
            _ => {}
        }
        Ok(())
    }

    /// Send `msg` on the return path, if it is open. Best effort, as QEMU's destination
    /// does: the stream is what matters, so a return path that fails (the source stopped
    /// reading it, or closed it) is closed and the load goes on.
    fn reply(&mut self, msg: &ReturnPathMessage) {
        let (true, Some(w)) = (self.rp_open, self.return_path.as_mut()) else {
            return;
        };
        let mut out = Vec::with_capacity(8);
        msg.encode(&mut out);
        if w.write_all(&out).and_then(|()| w.flush()).is_err() {
            self.rp_open = false;
        }
    }
}

/// A RAM section header after which the loader can read the body: the "ram" section, in
/// version 4, as START, PART or END.
fn check_ram_header(h: &SectionHeader) -> Result<(), LoadError> {
    if h.idstr != RAM_SECTION_NAME || h.kind == SectionKind::Full {
        return Err(LoadError::new(
            h.offset,
            LoadErrorKind::UnexpectedSection {
                idstr: h.idstr.clone(),
            },
        ));
    }
    if h.version_id != RAM_SECTION_VERSION {
        return Err(LoadError::new(
            h.offset,
            LoadErrorKind::UnsupportedVersion {
                version: h.version_id,
            },
        ));
    }
    Ok(())
}

/// Receive a whole migration stream from a live source (a real QEMU's `migrate`, or
/// [`MigrationWriter`](super::MigrationWriter)) into `list`, as QEMU's `-incoming` does:
///
/// * the configuration record, checked against [`IncomingOptions::machine`];
/// * commands: `OPEN_RETURN_PATH` (when `return_path` is given: the connection's other
///   direction) and `PING`, answered with `PONG`; postcopy and packaged streams are
///   [`StreamErrorKind::UnsupportedCommand`];
/// * the RAM section, loaded body by body as it arrives (setup, every iteration,
///   completion), each reported to `on`;
/// * the device sections after it, which this crate does not model: delimited and named
///   ([`IncomingReport::devices`]), then the EOF record and the vmstate description.
///
/// With the return path open, the destination ends with `SHUT`: status 0 after a
/// complete stream, 1 after an error (QEMU's source then fails the migration instead of
/// reporting it completed). Writing on the return path is best effort, as in QEMU: if it
/// fails (give a connection a write timeout, so that a source that does not read it
/// cannot block the destination), the return path is closed and the load goes on.
///
/// ```
/// use rcu_core::{Domain, Memb};
/// use ram_list::migration::{receive, IncomingOptions, MigrationWriter, SaveOptions};
/// use ram_list::RamList;
///
/// let domain: Domain<Memb> = Domain::new();
/// let reader = domain.register();
/// let src = RamList::new_in(&domain);
/// let a = src.alloc_named("ram", 16 * 4096).unwrap();
/// src.write(a + 8, b"live", &reader.read_lock()).unwrap();
/// let mut w = MigrationWriter::new(Vec::new(), "none", SaveOptions::default()).unwrap();
/// w.setup(&src, &reader.read_lock()).unwrap();
/// let stream = w.complete(&src, &reader.read_lock()).unwrap();
///
/// let dst = RamList::new_in(&domain);
/// let rep = receive(&dst, &stream[..], None, &IncomingOptions::mirror(1 << 30), &reader, |_| {})
///     .unwrap();
/// assert_eq!((rep.stats.data_pages, rep.stats.zero_pages), (1, 15));
/// let mut buf = [0u8; 4];
/// dst.block_by_name("ram", &reader.read_lock()).unwrap().read(8, &mut buf).unwrap();
/// assert_eq!(&buf, b"live");
/// ```
///
/// # Blocking
///
/// Blocks on the stream for as long as the source takes, and as
/// [`RamLoader::load_section`] on the list's writer lock; never inside a read-side
/// critical section. It reads no byte the source has not sent, except after the EOF
/// record (see [`QemuFileReader::read_final_vmdesc`]). A source that stalls forever
/// stalls it forever: give the stream a read timeout.
///
/// # Panics
///
/// If `reader` belongs to another domain than the list's.
pub fn receive<F: Flavor, R: Read>(
    list: &RamList<F>,
    r: R,
    return_path: Option<&mut dyn Write>,
    opts: &IncomingOptions,
    reader: &Reader<F>,
    mut on: impl FnMut(IncomingEvent<'_>),
) -> Result<IncomingReport, LoadError> {
    let t0 = Instant::now();
    let mut s = Session::open(list, r, &opts.load, opts.machine.as_deref(), return_path)?;
    if let Some(c) = s.qf.configuration() {
        on(IncomingEvent::Configuration(c));
    }
    let res = receive_rest(&mut s, opts, reader, &mut on);
    let status = u32::from(res.is_err());
    let return_path = s.rp_opened;
    s.reply(&ReturnPathMessage::Shut { status });
    let (devices, vmdesc) = res?;
    Ok(IncomingReport {
        configuration: s.qf.configuration().cloned(),
        stats: s.loader.stats().clone(),
        devices,
        vmdesc,
        return_path,
        bytes: s.qf.offset(),
        elapsed: t0.elapsed(),
    })
}

/// Everything after the configuration: the RAM section, then commands up to the device
/// sections or the EOF record, then the description.
fn receive_rest<F: Flavor, R: Read>(
    s: &mut Session<'_, '_, F, R>,
    opts: &IncomingOptions,
    reader: &Reader<F>,
    on: &mut dyn FnMut(IncomingEvent<'_>),
) -> Result<(Vec<DeviceSection>, Option<String>), LoadError> {
    s.ram(reader, on)?;
    loop {
        match s.qf.next_record()? {
            Record::Command { cmd, data, offset } => s.command(cmd, &data, offset, on)?,
            Record::Eof => return Ok((Vec::new(), s.qf.read_final_vmdesc()?)),
            Record::Section(h) if h.kind == SectionKind::Full && h.idstr != RAM_SECTION_NAME => {
                let tail = s.qf.read_device_sections(&h, opts.max_device_state)?;
                return Ok((tail.sections, tail.vmdesc));
            }
            Record::Section(h) => {
                return Err(LoadError::new(
                    h.offset,
                    LoadErrorKind::UnexpectedSection { idstr: h.idstr },
                ))
            }
        }
    }
}

/// Load the RAM of a whole migration stream (QEMU's outer format, as written by QEMU or by
/// [`MigrationWriter`](super::MigrationWriter)) into `list`: finds the "ram" section by
/// name, loads its START, PART and END bodies with a [`RamLoader`], and stops after its
/// END. Whatever follows (device sections, EOF) is not read: [`receive`](super::receive)
/// reads a whole stream.
///
/// The `x-ignore-shared` capability in the configuration record turns on
/// [`LoadOptions::ignore_shared`]; a `target-page-bits` other than
/// [`PAGE_BITS`](crate::PAGE_BITS) is
/// [`LoadErrorKind::PageSizeMismatch`](super::LoadErrorKind::PageSizeMismatch).
///
/// # Blocking
///
/// As [`RamLoader::load_section`]: blocks on the stream and on the list's writer lock,
/// never inside a read-side critical section.
///
/// # Panics
///
/// If `reader` belongs to another domain than the list's.
pub fn load<F: Flavor, R: Read>(
    list: &RamList<F>,
    r: R,
    opts: &LoadOptions,
    reader: &Reader<F>,
) -> Result<LoadReport, LoadError> {
    let mut s = Session::open(list, r, opts, None, None)?;
    s.ram(reader, &mut |_| {})?;
    Ok(LoadReport {
        configuration: s.qf.configuration().cloned(),
        stats: s.loader.into_stats(),
        end_offset: s.qf.offset(),
    })
}
