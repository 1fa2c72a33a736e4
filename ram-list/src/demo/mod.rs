//! The live-migration demo: a simulated VM (RAM blocks in a [`RamList`]) whose vCPU threads
//! translate guest addresses through RCU lookups and write memory, a hotplug thread that
//! adds and removes DIMMs, and a migration that streams the RAM to a destination
//! [`RamList`] in iterative dirty passes until it converges.
//!
//! # Hotplug during migration
//!
//! QEMU refuses `device_add`/`device_del` while migrating. Here the hotplug thread keeps
//! running during the migration, and both ends stay coherent:
//!
//! * the source's [`RamSaver`](ram_list::migration::RamSaver) notices a new `ram_list.version` at the start of every
//!   iteration (it keeps no block pointer between iterations, only idstrs and offsets),
//!   restarts its round, and sends a fresh `MEM_SIZE` record before any page of a new
//!   block; a new block is born all-dirty, so all its pages follow;
//! * the destination loads with [`BlockPolicy::Mirror`]: each `MEM_SIZE` record is the
//!   complete block set, so it creates the blocks it lacks and frees those that are gone.
//!
//! With `--freeze-hotplug` the demo follows QEMU's rule instead: the hotplug thread pauses
//! for the whole migration (it still races the vCPUs' RCU lookups before), and the saver
//! runs in strict mode, where a block-set change would be an error.
//!
//! [`BlockPolicy::Mirror`]: ram_list::migration::BlockPolicy::Mirror

pub mod inspect;

use std::error::Error;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ram_list::migration::{
    load, LoadError, LoadOptions, LoadReport, MigrationWriter, SaveOptions, SaveStats,
};
use ram_list::{RamList, PAGE_SIZE};
use rcu_core::{Domain, Memb, Stats};

use crate::{DemoArgs, Transport};

/// The demo's error type.
pub type DemoError = Box<dyn Error + Send + Sync>;

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;
/// Guest writes per read-side critical section of a vCPU.
const BATCH: usize = 256;

/// xorshift64*: the demo's seeded random numbers.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform below `n` (0 for `n == 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }
}

/// Adds to a statistics counter. Relaxed: counters are only summed for reports; the one
/// ordering that matters (the guest is stopped) goes through `Vm::active`.
fn count(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Reads a statistics counter (Relaxed: see [`count`]).
fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Shared state of the running VM.
struct Vm {
    src: RamList<Memb>,
    domain: Domain<Memb>,
    /// vCPUs run while this is false.
    stop_vcpus: AtomicBool,
    /// The hotplug thread runs while this is false.
    stop_hotplug: AtomicBool,
    /// Held by the migration for its whole duration with `--freeze-hotplug` (QEMU's rule);
    /// the hotplug thread holds it around each operation, so no operation straddles the
    /// start of the migration.
    hotplug_gate: Mutex<()>,
    /// Auto-converge: percentage of time each vCPU sleeps.
    throttle_pct: AtomicU32,
    translations: AtomicU64,
    misses: AtomicU64,
    plugged: AtomicU64,
    unplugged: AtomicU64,
    plugged_during_migration: AtomicU64,
    unplugged_during_migration: AtomicU64,
    migrating: AtomicBool,
    /// vCPU threads still running; each decrements it (Release) when it has made its
    /// last access, so that a zero seen with Acquire means the guest is stopped.
    active: AtomicU64,
    /// The same for the hotplug thread (0 or 1).
    hotplug_active: AtomicU64,
    /// ram addresses of pc.ram and vga.vram.
    pc_ram: u64,
    vga: u64,
    bios: u64,
}

/// Build the source machine: pc.ram, vga.vram, firmware and option ROMs, an ACPI blob.
fn build_machine(args: &DemoArgs, domain: &Domain<Memb>) -> Result<Vm, DemoError> {
    let src = RamList::new_in(domain);
    let pc_ram = src.alloc_named("pc.ram", args.ram_mib * MIB)?;
    let vga = src.alloc_named("vga.vram", args.vga_mib * MIB)?;
    let bios = src.alloc_named("pc.bios", 256 * KIB)?;
    let rom = src.alloc_named("pc.rom", 128 * KIB)?;
    let acpi = src.alloc_resizeable_named("/rom@etc/acpi/tables", 64 * KIB, 2 * MIB)?;
    let reader = domain.register();
    let g = reader.read_lock();
    // "Firmware": fully written pages.
    for (base, len, seed) in [
        (bios, 256 * KIB, 1u64),
        (rom, 128 * KIB, 2),
        (acpi, 64 * KIB, 3),
    ] {
        let b = src.lookup(base, &g).ok_or("ROM block vanished")?;
        let mut rng = Rng::new(seed);
        for off in (0..len).step_by(8) {
            b.write_u64(off, rng.next_u64())?;
        }
    }
    // "Boot": a kernel image (the first 1/8 of RAM, every word written) and a page cache
    // (one word in every third page); the rest stays zero.
    let ram = src.lookup(pc_ram, &g).ok_or("pc.ram vanished")?;
    let kernel = args.ram_mib * MIB / 8;
    let mut rng = Rng::new(args.seed);
    for off in (0..kernel).step_by(8) {
        ram.write_u64(off, rng.next_u64() | 1)?;
    }
    for page in (kernel / PAGE_SIZE..args.ram_mib * MIB / PAGE_SIZE).step_by(3) {
        ram.write_u64(page * PAGE_SIZE + 64, page)?;
    }
    drop(g);
    drop(reader);
    Ok(Vm {
        src,
        domain: domain.clone(),
        stop_vcpus: AtomicBool::new(false),
        stop_hotplug: AtomicBool::new(false),
        hotplug_gate: Mutex::new(()),
        throttle_pct: AtomicU32::new(0),
        translations: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        plugged: AtomicU64::new(0),
        unplugged: AtomicU64::new(0),
        plugged_during_migration: AtomicU64::new(0),
        unplugged_during_migration: AtomicU64::new(0),
        migrating: AtomicBool::new(false),
        active: AtomicU64::new(0),
        hotplug_active: AtomicU64::new(0),
        pc_ram,
        vga,
        bios,
    })
}

/// A vCPU: batches of guest accesses, each translated through the RamList under one RCU
/// read-side critical section, writes marking pages dirty. Translation goes through the
/// vCPU's own [`ram_list::Translator`] (its one-entry TLB, revalidated by the list's
/// version), so vCPUs write nothing shared to translate, not even QEMU's `mru_block`.
fn vcpu(vm: &Vm, id: u64, args: &DemoArgs) {
    let reader = vm.domain.register();
    let tlb = vm.src.translator();
    let mut rng = Rng::new(args.seed ^ (id + 1).wrapping_mul(0x1234_5678_9abc));
    let ram_pages = args.ram_mib * MIB / PAGE_SIZE;
    let vga_pages = (args.vga_mib * MIB / PAGE_SIZE).min(512);
    // Each vCPU has a working set of 1024 pages (4 MiB) that drifts through RAM, and
    // draws into a 2 MiB framebuffer at the start of the VGA memory.
    let ws_pages = 1024.min(ram_pages);
    let mut ws_base = rng.below(ram_pages - ws_pages + 1);
    let (mut translations, mut misses, mut seq) = (0u64, 0u64, 0u64);
    // Relaxed: a polled stop flag; our last access is ordered by the `active` decrement.
    while !vm.stop_vcpus.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        {
            let g = reader.read_lock();
            let end = vm.src.last_ram_offset(&g);
            for _ in 0..BATCH {
                seq += 1;
                let value = (id << 56) | seq;
                // Per mille: 550 working-set writes, 250 working-set reads, 100 firmware
                // reads, 90 framebuffer writes, 5 writes anywhere in RAM, 5 accesses
                // anywhere in the address space (DIMMs, ROMs, holes).
                let r = rng.below(1000);
                let addr = match r {
                    0..=549 => vm.pc_ram + (ws_base + rng.below(ws_pages)) * PAGE_SIZE,
                    550..=899 => {
                        // A read: translate, load.
                        translations += 1;
                        let addr = if r < 800 {
                            vm.pc_ram + (ws_base + rng.below(ws_pages)) * PAGE_SIZE
                        } else {
                            vm.bios + rng.below(256 * KIB / 8) * 8
                        };
                        match tlb.lookup(addr, &g) {
                            Some(b) => {
                                let _ = b.read_u64((addr - b.offset()) & !7);
                            }
                            None => misses += 1,
                        }
                        continue;
                    }
                    900..=989 => vm.vga + rng.below(vga_pages) * PAGE_SIZE,
                    990..=994 => vm.pc_ram + rng.below(ram_pages) * PAGE_SIZE,
                    _ => rng.below(end / 8) * 8,
                };
                let addr = addr + rng.below(PAGE_SIZE / 8) * 8;
                translations += 1;
                let Some(b) = tlb.lookup(addr, &g) else {
                    misses += 1; // unplugged DIMM or a hole: unassigned memory
                    continue;
                };
                let idstr = b.idstr();
                if idstr.starts_with("pc.") && idstr != "pc.ram" {
                    let _ = b.read_u64(addr - b.offset()); // ROM: reads only
                    continue;
                }
                if b.write_u64(addr - b.offset(), value).is_ok() {
                    vm.src.dirty().set_page(addr, ram_list::DirtyMask::ALL, &g);
                }
            }
        }
        if rng.below(64) == 0 {
            ws_base = (ws_base + 16) % (ram_pages - ws_pages + 1);
        }
        // Relaxed: a hint set by the migration thread; any recent value will do.
        let pct = vm.throttle_pct.load(Ordering::Relaxed);
        if pct > 0 {
            // QEMU's cpu-throttle: sleep pct/(100-pct) of the time spent running.
            let ran = t0.elapsed();
            thread::sleep(ran * pct / (100 - pct).max(1));
        }
        if translations >= 1 << 16 {
            count(&vm.translations, translations);
            count(&vm.misses, misses);
            (translations, misses) = (0, 0);
        }
    }
    count(&vm.translations, translations);
    count(&vm.misses, misses);
    // Release: our guest writes and dirty bits happen-before the migration's final sync.
    vm.active.fetch_sub(1, Ordering::Release);
}

/// The hotplug thread: adds and removes DIMMs (writer side of the RamList).
fn hotplug(vm: &Vm, args: &DemoArgs) {
    let mut rng = Rng::new(args.seed ^ 0xd1aa);
    let mut dimms: Vec<u64> = Vec::new();
    let mut n = 0u64;
    // Relaxed: a polled stop flag (the migration waits for `active` to order the end).
    while !vm.stop_hotplug.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(args.hotplug_ms));
        // Frozen (the migration holds the gate): skip, but keep checking for stop.
        let Ok(_gate) = vm.hotplug_gate.try_lock() else {
            continue;
        };
        // Relaxed: only decides which statistics counter to bump.
        let during = vm.migrating.load(Ordering::Relaxed);
        let add = dimms.is_empty() || (dimms.len() < args.max_dimms && rng.below(2) == 0);
        if add && args.max_dimms > 0 {
            let size = (1 + rng.below(args.dimm_mib.max(1))) * MIB;
            let mut w = vm.src.lock();
            let Ok(a) = w.alloc(size) else {
                continue;
            };
            // The guest finds a pattern in the first page of its new memory.
            if let Some(b) = w.block(a) {
                for off in (0..PAGE_SIZE).step_by(8) {
                    let _ = b.write_u64(off, n << 32 | off);
                }
            }
            if w.set_idstr(a, Some(&format!("/machine/peripheral/dimm{n}")), "memdev")
                .is_err()
            {
                let _ = w.free(a);
                continue;
            }
            drop(w);
            dimms.push(a);
            n += 1;
            count(&vm.plugged, 1);
            if during {
                count(&vm.plugged_during_migration, 1);
            }
        } else if !dimms.is_empty() {
            let a = dimms.swap_remove(rng.below(dimms.len() as u64) as usize);
            if vm.src.unplug(a).is_ok() {
                count(&vm.unplugged, 1);
                if during {
                    count(&vm.unplugged_during_migration, 1);
                }
            }
        }
    }
    // Release: as for the vCPUs.
    vm.hotplug_active.fetch_sub(1, Ordering::Release);
}

/// Either end of the transport.
enum Sink {
    Unix(UnixStream),
    Tcp(TcpStream),
    File(std::fs::File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Unix(s) => s.write(buf),
            Sink::Tcp(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Unix(s) => s.flush(),
            Sink::Tcp(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

/// The destination end of a transport: streamed live, or a file read after the source
/// completes.
enum Source {
    Live(Box<dyn Read + Send>),
    File(std::fs::File),
}

/// Source and destination ends.
fn transport(t: Transport) -> Result<(Sink, Source), DemoError> {
    Ok(match t {
        Transport::Unix => {
            let (a, b) = UnixStream::pair()?;
            (Sink::Unix(a), Source::Live(Box::new(b)))
        }
        Transport::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let a = TcpStream::connect(l.local_addr()?)?;
            let (b, _) = l.accept()?;
            a.set_nodelay(true)?;
            (Sink::Tcp(a), Source::Live(Box::new(b)))
        }
        Transport::File => {
            let path =
                std::env::temp_dir().join(format!("ram-list-demo-{}.mig", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            let r = f.try_clone()?;
            (Sink::File(f), Source::File(r))
        }
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// What the migration thread measured.
struct MigrationResult {
    stats: SaveStats,
    passes: u32,
    converged: bool,
    total: Duration,
    downtime: Duration,
    final_pages: u64,
    report: LoadReport,
    max_throttle: u32,
}

/// Run the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    if args.ram_mib == 0 || args.vga_mib == 0 {
        return Err("--ram-mib and --vga-mib must be at least 1".into());
    }
    let started = Instant::now();
    let src_domain: Domain<Memb> = Domain::new();
    let dst_domain: Domain<Memb> = Domain::new();
    println!(
        "ram-list demo: {} MiB pc.ram + {} MiB vga.vram + ROMs, {} vCPUs, DIMM hotplug {} (rcu: {} protocol)",
        args.ram_mib,
        args.vga_mib,
        args.vcpus,
        if args.freeze_hotplug {
            "frozen during migration (QEMU's rule)"
        } else {
            "racing the migration (mirrored)"
        },
        src_domain.protocol()
    );
    let vm = Arc::new(build_machine(args, &src_domain)?);
    let dst = Arc::new(RamList::new_in(&dst_domain));
    println!("machine built in {:.2?}", started.elapsed());

    let vcpu_start = Instant::now();
    // Relaxed: set before the threads are spawned (spawn orders it).
    vm.active.store(args.vcpus as u64, Ordering::Relaxed);
    // Relaxed: as above.
    vm.hotplug_active.store(1, Ordering::Relaxed);
    let vcpus: Vec<_> = (0..args.vcpus)
        .map(|i| {
            let (vm, args) = (vm.clone(), args.clone());
            thread::Builder::new()
                .name(format!("vcpu{i}"))
                .spawn(move || vcpu(&vm, i as u64, &args))
        })
        .collect::<Result<_, _>>()?;
    let hot = {
        let (vm, args) = (vm.clone(), args.clone());
        thread::Builder::new()
            .name("hotplug".into())
            .spawn(move || hotplug(&vm, &args))?
    };

    // Warm-up: vCPUs and hotplug race each other (RCU readers vs. the list's writer).
    thread::sleep(Duration::from_millis(args.warmup_ms));
    {
        let r = src_domain.register();
        let g = r.read_lock();
        println!(
            "warm-up {:.1?}: {} blocks, {} plugged / {} unplugged, {:.1} M translations/s",
            vcpu_start.elapsed(),
            vm.src.len(&g),
            get(&vm.plugged),
            get(&vm.unplugged),
            get(&vm.translations) as f64 / vcpu_start.elapsed().as_secs_f64() / 1e6
        );
    }

    let res = migrate(args, &vm, &dst, &dst_domain);
    // Whatever happened, stop the threads (Relaxed: polled flags; joined below).
    vm.stop_vcpus.store(true, Ordering::Relaxed);
    vm.stop_hotplug.store(true, Ordering::Relaxed);
    let mut vcpu_time = vcpu_start.elapsed();
    for v in vcpus {
        let _ = v.join();
    }
    let _ = hot.join();
    let res = res?;
    vcpu_time = vcpu_time.min(vcpu_start.elapsed());

    // Compare byte for byte.
    let t_cmp = Instant::now();
    let rs = src_domain.register();
    let rd = dst_domain.register();
    let (blocks, bytes) = {
        let gs = rs.read_lock();
        let gd = rd.read_lock();
        let mut blocks = 0;
        let mut bytes = 0;
        for b in vm.src.iter(&gs).filter(|b| !b.idstr().is_empty()) {
            let Some(d) = dst.block_by_name(b.idstr(), &gd) else {
                return Err(format!("destination lacks block \"{}\"", b.idstr()).into());
            };
            if let Some(off) = b.first_difference(d) {
                return Err(format!(
                    "block \"{}\" differs at offset {off:#x} (source {:#x} bytes, destination {:#x})",
                    b.idstr(),
                    b.used_length(),
                    d.used_length()
                )
                .into());
            }
            blocks += 1;
            bytes += b.used_length();
        }
        let extra: Vec<String> = dst
            .iter(&gd)
            .filter(|d| vm.src.block_by_name(d.idstr(), &gs).is_none())
            .map(|d| d.idstr().to_owned())
            .collect();
        if !extra.is_empty() {
            return Err(format!("destination has blocks the source does not: {extra:?}").into());
        }
        (blocks, bytes)
    };
    let cmp_time = t_cmp.elapsed();
    drop((rs, rd));
    src_domain.barrier();
    dst_domain.barrier();
    summary(
        args,
        &vm,
        &res,
        vcpu_time,
        &src_domain.stats(),
        &dst_domain.stats(),
    );
    println!(
        "destination matches source: {blocks} blocks, {:.1} MiB compared byte for byte in {cmp_time:.1?} (total run {:.1?})",
        mib(bytes),
        started.elapsed()
    );
    Ok(())
}

fn migrate(
    args: &DemoArgs,
    vm: &Arc<Vm>,
    dst: &Arc<RamList<Memb>>,
    dst_domain: &Domain<Memb>,
) -> Result<MigrationResult, DemoError> {
    let (sink, source) = transport(args.transport)?;
    let (loader, file_rx) = match source {
        Source::Live(rx) => {
            let (dst, dd) = (dst.clone(), dst_domain.clone());
            let h = thread::Builder::new().name("destination".into()).spawn(
                move || -> Result<(LoadReport, Instant), LoadError> {
                    let r = dd.register();
                    let rx = BufReader::with_capacity(1 << 20, rx);
                    let rep = load(&dst, rx, &LoadOptions::mirror(1 << 40), &r)?;
                    Ok((rep, Instant::now()))
                },
            )?;
            (Some(h), None)
        }
        Source::File(f) => (None, Some(f)),
    };
    // With --freeze-hotplug, no hotplug operation runs from here to the end.
    let _frozen = args
        .freeze_hotplug
        .then(|| vm.hotplug_gate.lock().unwrap_or_else(|p| p.into_inner()));
    // Relaxed: a statistics flag (counts hotplug during migration).
    vm.migrating.store(true, Ordering::Relaxed);
    let opts = SaveOptions {
        mirror_block_changes: !args.freeze_hotplug,
        ignore_shared: false,
        parallel: args.parallel,
    };
    let reader = vm.domain.register();
    let t0 = Instant::now();
    let mut w = MigrationWriter::new(
        BufWriter::with_capacity(1 << 20, sink),
        "pc-ram-list-demo",
        opts,
    )?;
    let st = w.setup(&vm.src, &reader.read_lock())?;
    println!(
        "migration: setup sent {} blocks ({} pages to send in the bulk pass)",
        w.saver().blocks().len(),
        st.remaining
    );
    let budget = args.budget_mib.max(1) * MIB;
    let target = Duration::from_millis(args.downtime_ms);
    let mut passes = 1u32;
    let mut pass_start = Instant::now();
    let mut pass_bytes = 0u64;
    let mut converged = false;
    let mut max_throttle = 0;
    let mut last_mem_size = w.saver().stats().mem_size_records;
    loop {
        let st = w.iterate(&vm.src, budget, &reader.read_lock())?;
        pass_bytes += st.bytes;
        if st.remaining > 0 {
            continue;
        }
        // A pass is done: sync the dirty log and decide (QEMU's migration_iteration_run).
        let secs = pass_start.elapsed().as_secs_f64().max(1e-6);
        let bandwidth = (pass_bytes as f64 / secs).max(1e6); // bytes/s of this pass
        let dirty = w.saver_mut().sync(&vm.src, &reader.read_lock())?;
        let stats = w.saver().stats();
        let expected = Duration::from_secs_f64(dirty as f64 * (PAGE_SIZE + 9) as f64 / bandwidth);
        let g = reader.read_lock();
        let nblocks = vm.src.len(&g);
        drop(g);
        println!(
            "pass {passes:>2}: sent {:>7.1} MiB in {:>7.1?} ({:>6.0} MiB/s), now dirty {:>6} pages -> expected downtime {:>6.1?}, {} blocks{}{}",
            mib(pass_bytes),
            pass_start.elapsed(),
            bandwidth / MIB as f64,
            dirty,
            expected,
            nblocks,
            if stats.mem_size_records > last_mem_size {
                format!(", {} MEM_SIZE resync(s)", stats.mem_size_records - last_mem_size)
            } else {
                String::new()
            },
            // Relaxed: only this thread stores it.
            match vm.throttle_pct.load(Ordering::Relaxed) {
                0 => String::new(),
                p => format!(", vCPUs throttled {p}%"),
            }
        );
        last_mem_size = stats.mem_size_records;
        passes += 1;
        pass_start = Instant::now();
        pass_bytes = 0;
        if expected <= target {
            converged = true;
            break;
        }
        if passes > args.max_passes {
            println!(
                "not converged after {} passes: stopping the vCPUs anyway",
                args.max_passes
            );
            break;
        }
        if passes >= 4 {
            // Auto-converge (QEMU's cpu-throttle-initial 20, increment 10). Relaxed: a
            // hint only this thread writes.
            let p = (vm.throttle_pct.load(Ordering::Relaxed) + if passes == 4 { 20 } else { 10 })
                .min(99);
            vm.throttle_pct.store(p, Ordering::Relaxed);
            max_throttle = max_throttle.max(p);
        }
    }
    // Freeze the device set first (the hotplug thread may be asleep between operations;
    // that wait is not downtime), then stop-and-copy: the vCPUs stop and the last dirty
    // pages go in the END section.
    // Relaxed: polled flags; `hotplug_active`/`active` (below) order the last accesses.
    vm.stop_hotplug.store(true, Ordering::Relaxed);
    // Acquire: pairs with the hotplug thread's Release decrement.
    while vm.hotplug_active.load(Ordering::Acquire) > 0 {
        thread::sleep(Duration::from_micros(200));
    }
    // Relaxed: as above.
    vm.stop_vcpus.store(true, Ordering::Relaxed);
    let t_stop = Instant::now();
    // Wait until every vCPU has made its last write (they finish their batch first).
    // Acquire: pairs with their Release decrement.
    while vm.active.load(Ordering::Acquire) > 0 {
        thread::sleep(Duration::from_micros(50));
    }
    let final_pages = {
        let g = reader.read_lock();
        w.saver_mut().sync(&vm.src, &g)?
    };
    w.complete_in_place(&vm.src, &reader.read_lock())?;
    let stats = w.saver().stats();
    drop(w);
    let (report, t_done) = match (loader, file_rx) {
        (Some(h), _) => h.join().map_err(|_| "destination thread panicked")??,
        (None, Some(mut f)) => {
            f.rewind()?;
            let r = dst_domain.register();
            let rep = load(
                dst,
                BufReader::with_capacity(1 << 20, f),
                &LoadOptions::mirror(1 << 40),
                &r,
            )?;
            (rep, Instant::now())
        }
        (None, None) => return Err("no destination".into()),
    };
    // Relaxed: a statistics flag (counts hotplug during migration).
    vm.migrating.store(false, Ordering::Relaxed);
    Ok(MigrationResult {
        stats,
        passes: passes - 1,
        converged,
        total: t_done.duration_since(t0),
        downtime: t_done.duration_since(t_stop),
        final_pages,
        report,
        max_throttle,
    })
}

fn summary(
    args: &DemoArgs,
    vm: &Vm,
    m: &MigrationResult,
    vcpu_time: Duration,
    src: &Stats,
    dst: &Stats,
) {
    let s = &m.stats;
    let t = get(&vm.translations);
    println!("---------------------------------------------------------------- summary");
    println!(
        "migration:   {} in {:.2?}, {} passes{}, {} MEM_SIZE records, {} round restarts",
        if m.converged { "converged" } else { "forced" },
        m.total,
        m.passes,
        if m.max_throttle > 0 {
            format!(" (auto-converge up to {}%)", m.max_throttle)
        } else {
            String::new()
        },
        s.mem_size_records,
        s.round_restarts
    );
    println!(
        "sent:        {:.1} MiB, {} pages: {} data + {} zero; {} pages re-dirtied by the vCPUs",
        mib(s.bytes),
        s.data_pages + s.zero_pages,
        s.data_pages,
        s.zero_pages,
        s.dirtied_pages
    );
    println!(
        "received:    {} data + {} zero pages in {} sections, {} destination block changes",
        m.report.stats.data_pages,
        m.report.stats.zero_pages,
        m.report.stats.sections,
        m.report.stats.block_changes
    );
    println!(
        "downtime:    {:.1?} (final pass: {} dirty pages; target {} ms)",
        m.downtime, m.final_pages, args.downtime_ms
    );
    println!(
        "vCPUs:       {} threads, {} address translations ({:.1} M/s), {} misses (holes, unplugged DIMMs)",
        args.vcpus,
        t,
        t as f64 / vcpu_time.as_secs_f64() / 1e6,
        get(&vm.misses)
    );
    println!(
        "hotplug:     {} DIMMs plugged, {} unplugged ({} / {} during the migration)",
        get(&vm.plugged),
        get(&vm.unplugged),
        get(&vm.plugged_during_migration),
        get(&vm.unplugged_during_migration)
    );
    println!(
        "RCU source:  {} grace periods, {} callbacks run (peak backlog {}); destination: {} grace periods, {} callbacks run",
        src.grace_periods, src.callbacks_run, src.peak_backlog, dst.grace_periods, dst.callbacks_run
    );
}
