//! `ram-list migrate URI`: the source of a live migration into a real QEMU started with
//! `-incoming`: a guest with the RAM layout of the destination's machine, files preloaded
//! at guest addresses, vCPU threads dirtying memory during the precopy passes, the
//! final pass once they stop, and the destination's confirmation on the return path.

mod error;
mod guest;

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::thread;
use std::time::{Duration, Instant};

use ram_list::migration::{MigrationWriter, QemuMachine, SaveError, SaveOptions, SaveStats};
use ram_list::stream::{CountingReader, ReturnPathMessage, StreamErrorKind};
use ram_list::{RamBlock, RamList, PAGE_SIZE};
use rcu_core::{Domain, Memb};

use crate::blocks::write_block;
use crate::cli::MigrateArgs;
use crate::error::{DemoError, FileError};
use crate::precopy::{converge, Outcome, Policy};
use crate::uri::{MigrationUri, OutgoingStream};
pub use error::SourceError;
use guest::{Guest, StopOnDrop};

const MIB: u64 = 1 << 20;

/// A file to preload at a guest physical address: `FILE@ADDR`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preload {
    /// The file.
    pub path: PathBuf,
    /// Its guest physical address (decimal, or hexadecimal with `0x`).
    pub addr: u64,
}

impl FromStr for Preload {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (path, addr) = s
            .rsplit_once('@')
            .ok_or_else(|| format!("--load {s}: expected FILE@ADDR"))?;
        let addr = match addr.strip_prefix("0x").or_else(|| addr.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => addr.parse(),
        }
        .map_err(|_| format!("--load {s}: the address {addr:?} is not a number"))?;
        if path.is_empty() {
            return Err(format!("--load {s}: no file"));
        }
        Ok(Preload {
            path: path.into(),
            addr,
        })
    }
}

/// What to migrate, and how.
#[derive(Debug, Clone)]
pub struct Params {
    /// The destination's machine type.
    pub machine: QemuMachine,
    /// Its RAM (`-m`), in bytes.
    pub ram_bytes: u64,
    /// Files to preload.
    pub preload: Vec<Preload>,
    /// vCPU threads.
    pub vcpus: usize,
    /// When the passes stop.
    pub policy: Policy,
    /// Seed of the vCPUs' writes.
    pub seed: u64,
    /// How long the destination may take nothing (or confirm nothing).
    pub timeout: Duration,
}

/// A completed migration.
pub struct Sent {
    /// The guest's RAM as the final pass sent it (the vCPUs are stopped).
    pub list: RamList<Memb>,
    /// The saver's counters.
    pub stats: SaveStats,
    /// How the precopy passes ended.
    pub precopy: Outcome,
    /// Pages in the final pass.
    pub final_pages: u64,
    /// Stream bytes sent.
    pub bytes: u64,
    /// From the connection to the destination's confirmation.
    pub total: Duration,
    /// From stopping the vCPUs to the destination's confirmation.
    pub downtime: Duration,
    /// Whether the destination confirmed on the return path (only connections have one).
    pub confirmed: bool,
    /// Guest writes the vCPUs made.
    pub vcpu_writes: u64,
}

impl Sent {
    /// The guest's RAM block.
    pub fn with_ram<T>(&self, p: &Params, f: impl FnOnce(&RamBlock) -> T) -> T {
        let r = self.list.domain().register();
        let g = r.read_lock();
        let b = self
            .list
            .block_by_name(p.machine.ram_block, &g)
            .expect("the RAM block is never unplugged");
        f(b)
    }
}

/// A writer that counts the bytes it passes on.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `ram-list migrate`: migrate, print the summary, write `--dump`.
pub fn run(args: &MigrateArgs) -> Result<(), DemoError> {
    let uri: MigrationUri = args.uri.parse()?;
    let machine = QemuMachine::by_name(&args.machine).ok_or_else(|| {
        let known: Vec<&str> = QemuMachine::ALL.iter().map(|m| m.name).collect();
        format!(
            "no RAM layout for machine \"{}\" (known: {})",
            args.machine,
            known.join(", ")
        )
    })?;
    let ram_bytes = args
        .ram_mib
        .checked_mul(MIB)
        .filter(|&b| b > 0)
        .ok_or("-m/--ram-mib must be at least 1 and fit in 64 bits of bytes")?;
    let params = Params {
        machine,
        ram_bytes,
        preload: args
            .load
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()?,
        vcpus: args.vcpus,
        policy: Policy::new(args.budget_mib, args.downtime_ms, args.max_passes),
        seed: args.seed,
        timeout: Duration::from_secs(args.timeout_s.max(1)),
    };
    let domain: Domain<Memb> = Domain::new();
    let sent = migrate(&domain, &params, &uri)?;
    summary(&sent);
    if let Some(out) = &args.dump {
        sent.with_ram(&params, |b| write_block(b, out))
            .map_err(|e| FileError::new(out, e))?;
        println!(
            "wrote the {} bytes of \"{}\" as sent to {}",
            params.ram_bytes,
            machine.ram_block,
            out.display()
        );
    }
    Ok(())
}

/// Build the guest, migrate it to `uri`, and wait for the destination's confirmation.
pub fn migrate(domain: &Domain<Memb>, p: &Params, uri: &MigrationUri) -> Result<Sent, DemoError> {
    let list = RamList::new_in(domain);
    let base = list.alloc_named(p.machine.ram_block, p.ram_bytes)?;
    let taken = preload(&list, base, p)?;
    let t0 = Instant::now();
    let mut out =
        OutgoingStream::connect(uri, p.timeout).map_err(|source| SourceError::Connect {
            peer: uri.to_string(),
            source,
        })?;
    println!(
        "migrate: to {} as machine \"{}\": {} MiB in block \"{}\", {} file(s) preloaded, {} vCPU(s)",
        out.peer,
        p.machine.name,
        p.ram_bytes / MIB,
        p.machine.ram_block,
        p.preload.len(),
        p.vcpus
    );
    let guest = Guest::new(&list, base, p.ram_bytes / PAGE_SIZE, &taken);
    let writer = std::mem::replace(&mut out.writer, Box::new(io::sink()));
    let has_rp = out.return_path.is_some();
    let peer = out.peer.clone();
    let sending = thread::scope(|s| {
        guest.start(s, p.vcpus, p.seed);
        let stop = StopOnDrop(&guest);
        let res = send(&list, &guest, p, writer, has_rp);
        drop(stop);
        res
    });
    let (precopy, stats, final_pages, bytes, vcpu_writes, t_stop) =
        sending.map_err(|(bytes, source)| SourceError::Send {
            peer: peer.clone(),
            bytes,
            source,
        })?;
    let rp = out.return_path.take();
    out.finish()
        .map_err(|e| crate::error::Hint::new(format!("finishing {peer}"), e))?;
    let confirmed = match rp {
        Some(rp) => {
            confirm(rp, &peer)?;
            true
        }
        None => false,
    };
    let done = Instant::now();
    Ok(Sent {
        list,
        stats,
        precopy,
        final_pages,
        bytes,
        total: done - t0,
        downtime: done - t_stop,
        confirmed,
        vcpu_writes,
    })
}

/// What [`send`] measured.
type Sending = (Outcome, SaveStats, u64, u64, u64, Instant);

/// The stream: header, return path, setup, the passes, the vCPUs stopped, the final
/// pass with the device sections. Errors come with the bytes sent before them.
fn send(
    list: &RamList<Memb>,
    guest: &Guest<'_>,
    p: &Params,
    writer: Box<dyn Write + Send>,
    return_path: bool,
) -> Result<Sending, (u64, SaveError)> {
    let counting = Counting {
        inner: writer,
        bytes: 0,
    };
    let reader = list.domain().register();
    let mut w = MigrationWriter::new(
        BufWriter::with_capacity(1 << 20, counting),
        p.machine.name,
        SaveOptions::default(),
    )
    .map_err(|e| (0, SaveError::Io(e)))?;
    let sent = |w: &mut MigrationWriter<BufWriter<Counting<_>>>| w.get_mut().get_ref().bytes;
    let res = (|| {
        if return_path {
            w.open_return_path()?;
        }
        w.set_devices(p.machine.device_states("running"));
        let st = w.setup(list, &reader.read_lock())?;
        println!("setup: {} pages to send in the bulk pass", st.remaining);
        let outcome = converge(&mut w, list, &reader, &p.policy, &guest.throttle, |pass| {
            println!(
                "pass {:>2}: sent {:>7.1} MiB in {:>7.1?} ({:>6.0} MiB/s), re-dirtied {:>6} pages -> expected downtime {:>6.1?}{}",
                pass.number,
                pass.bytes as f64 / MIB as f64,
                pass.elapsed,
                pass.bandwidth / MIB as f64,
                pass.dirty,
                pass.expected,
                match pass.throttle {
                    0 => String::new(),
                    t => format!(", vCPUs throttled {t}%"),
                }
            );
        })?;
        if !outcome.converged {
            println!(
                "not converged after {} passes: stopping the vCPUs anyway",
                outcome.passes
            );
        }
        let t_stop = Instant::now();
        let vcpu_writes = guest.stop();
        let st = w.complete_in_place(list, &reader.read_lock())?;
        w.get_mut().flush()?;
        println!(
            "final pass: {} pages with the vCPUs stopped ({} guest writes in all)",
            st.pages, vcpu_writes
        );
        Ok((outcome, st.pages, vcpu_writes, t_stop))
    })();
    let bytes = sent(&mut w);
    let (outcome, final_pages, vcpu_writes, t_stop) = res.map_err(|e| (bytes, e))?;
    Ok((
        outcome,
        w.saver().stats(),
        final_pages,
        bytes,
        vcpu_writes,
        t_stop,
    ))
}

/// Messages a destination may send before its `SHUT` (a `PONG` per `PING`; this source
/// sends no `PING`): more is a destination that will not confirm.
const MAX_RETURN_PATH_MESSAGES: usize = 1024;

/// Wait on the return path for the destination's `SHUT` (each read fails after the
/// connection's timeout).
fn confirm(rp: Box<dyn Read + Send>, peer: &str) -> Result<(), SourceError> {
    let mut r = CountingReader::new(BufReader::new(rp));
    for _ in 0..MAX_RETURN_PATH_MESSAGES {
        match ReturnPathMessage::read(&mut r) {
            Ok(ReturnPathMessage::Shut { status: 0 }) => return Ok(()),
            Ok(ReturnPathMessage::Shut { status }) => {
                return Err(SourceError::DestinationFailed {
                    peer: peer.to_owned(),
                    status,
                })
            }
            Ok(_) => {}
            Err(e) => {
                let closed = matches!(e.kind(), StreamErrorKind::Truncated { .. })
                    || std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .is_some_and(|io| io.kind() == io::ErrorKind::ConnectionReset);
                return Err(if closed {
                    SourceError::NotConfirmed {
                        peer: peer.to_owned(),
                    }
                } else {
                    SourceError::ReturnPath {
                        peer: peer.to_owned(),
                        source: e,
                    }
                });
            }
        }
    }
    Err(SourceError::NoShut {
        peer: peer.to_owned(),
        messages: MAX_RETURN_PATH_MESSAGES,
    })
}

/// Write the preloaded files into the guest's RAM; the page ranges they cover.
fn preload(list: &RamList<Memb>, base: u64, p: &Params) -> Result<Vec<(u64, u64)>, DemoError> {
    let reader = list.domain().register();
    let mut taken = Vec::new();
    for f in &p.preload {
        let data = read_file(&f.path, p.ram_bytes)?;
        let len = data.len() as u64;
        if f.addr.checked_add(len).is_none_or(|end| end > p.ram_bytes) {
            return Err(format!(
                "--load {}@{:#x}: {len} bytes do not fit in the guest's {} MiB of RAM",
                f.path.display(),
                f.addr,
                p.ram_bytes / MIB
            )
            .into());
        }
        list.write(base + f.addr, &data, &reader.read_lock())?;
        if len > 0 {
            taken.push((f.addr / PAGE_SIZE, (f.addr + len).div_ceil(PAGE_SIZE)));
        }
    }
    Ok(taken)
}

/// The contents of `path`, refused (before reading) when longer than `limit`.
fn read_file(path: &Path, limit: u64) -> Result<Vec<u8>, DemoError> {
    let f = File::open(path).map_err(|e| FileError::new(path, e))?;
    let len = f.metadata().map_err(|e| FileError::new(path, e))?.len();
    if len > limit {
        return Err(format!(
            "--load {}: {len} bytes do not fit in the guest's {} MiB of RAM",
            path.display(),
            limit / MIB
        )
        .into());
    }
    let mut data = Vec::with_capacity(len as usize);
    f.take(limit)
        .read_to_end(&mut data)
        .map_err(|e| FileError::new(path, e))?;
    Ok(data)
}

/// The source's summary.
pub fn summary(s: &Sent) {
    let st = &s.stats;
    println!("---------------------------------------------------------------- summary");
    println!(
        "migration:   {} in {:.2?}, {} passes before the final one, {} bytes sent",
        if s.precopy.converged {
            "converged"
        } else {
            "forced"
        },
        s.total,
        s.precopy.passes,
        s.bytes
    );
    println!(
        "pages:       {} data + {} zero; {} pages re-dirtied by the vCPUs ({} guest writes)",
        st.data_pages, st.zero_pages, st.dirtied_pages, s.vcpu_writes
    );
    println!(
        "downtime:    {:.1?} (final pass: {} pages)",
        s.downtime, s.final_pages
    );
    println!(
        "destination: {}",
        if s.confirmed {
            "confirmed the load on the return path (SHUT, status 0)"
        } else {
            "no return path on this transport: not confirmed"
        }
    );
}

/// Compare the guest's RAM block with the file `path` (a destination's `pmemsave`), byte
/// for byte; the first difference is an error.
pub fn compare_with_file(block: &RamBlock, path: &Path) -> Result<(), DemoError> {
    let mut f = BufReader::new(File::open(path).map_err(|e| FileError::new(path, e))?);
    let len = block.used_length();
    let file_len = std::fs::metadata(path)
        .map_err(|e| FileError::new(path, e))?
        .len();
    if file_len != len {
        return Err(format!(
            "{} has {file_len} bytes, the source's RAM {len}",
            path.display()
        )
        .into());
    }
    let mut a = vec![0u8; 1 << 20];
    let mut b = vec![0u8; 1 << 20];
    let mut off = 0;
    while off < len {
        let n = (len - off).min(a.len() as u64) as usize;
        block.read(off, &mut a[..n])?;
        f.read_exact(&mut b[..n])
            .map_err(|e| FileError::new(path, e))?;
        if let Some(i) = a[..n].iter().zip(&b[..n]).position(|(x, y)| x != y) {
            return Err(format!(
                "the destination's memory differs from the source's at guest address {:#x}",
                off + i as u64
            )
            .into());
        }
        off += n as u64;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preload_specs_parse() {
        let p: Preload = "k@ernel.bin@0x100000".parse().unwrap();
        assert_eq!(p.path, PathBuf::from("k@ernel.bin"));
        assert_eq!(p.addr, 0x10_0000);
        assert_eq!("a@4096".parse::<Preload>().unwrap().addr, 4096);
        for bad in ["a", "@12", "a@x", "a@0xzz"] {
            assert!(bad.parse::<Preload>().is_err(), "{bad}");
        }
    }
}
