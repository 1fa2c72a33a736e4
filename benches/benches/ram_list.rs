//! ram-list: address translation and migration throughput.
//!
//! * `ram_list/translate/{rcu,rcu-translator,mutex,vm-memory}/{1,2}`: guest address ->
//!   host address translations per second, aggregate over 1 or 2 reader threads, while a
//!   hotplug thread keeps adding and removing a 1 MiB DIMM. `rcu` is
//!   [`ram_list::RamList::lookup`] (one read-side critical section per translation, the
//!   shared `mru_block` first, as QEMU's `qemu_get_ram_block`); `rcu-translator` is a
//!   per-thread [`ram_list::Translator`] (the same critical sections, but the last block
//!   found is cached per thread and validated by `version`, so readers write nothing
//!   shared; a mutex-protected list cannot do that); `mutex` is the same
//!   list design before the RCU patch (every lookup under the ramlist mutex); `vm-memory`
//!   is rust-vmm's `GuestMemoryAtomic<GuestMemoryMmap>` (an ArcSwap load + `to_region_addr`).
//! * `ram_list/migrate/{memcpy,save,save-parallel,load,save+load-pipelined,save|load-threads}`:
//!   256 MiB of RAM, 90% data pages: a plain copy of the same bytes vs `RamSaver` setup +
//!   one unbounded iteration into a `Vec`, `load` of that stream into a (pre-faulted)
//!   destination, save and load interleaved section by section (256 KiB) on one thread,
//!   and save and load on two threads connected by a channel of 256 KiB sections (the
//!   shape of a real migration: the source and the destination run at the same time).
//!
//! After the criterion groups, the bench prints the two ratios the issue asks for, each
//! measured in one run on this machine: RCU vs mutex aggregate translation throughput with
//! 2 readers and the hotplug writer, and memcpy bandwidth vs save + load.
//! (`RAM_LIST_BENCH_NO_RATIOS=1` skips them.)

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use ram_list::migration::{load, LoadOptions, MigrationWriter, RamLoader, RamSaver, SaveOptions};
use ram_list::stream::CountingReader;
use ram_list::RamList;
use rcu_core::{Domain, Memb};
use vm_memory::{
    GuestAddress, GuestAddressSpace, GuestMemory, GuestMemoryAtomic, GuestMemoryMmap,
    GuestMemoryRegion, GuestRegionMmap,
};

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;
/// Pause of the hotplug writer between operations: about 2,000 plug/unplug pairs a
/// second, far more than any guest does, but not a writer that saturates a core (on 2
/// cores that would only measure the scheduler).
const HOTPLUG_PAUSE: Duration = Duration::from_micros(200);

/// xorshift64* for the address mix.
fn rng(seed: &mut u64) -> u64 {
    let mut x = *seed;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *seed = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// The guest layout shared by the three implementations: (name, ram address, size).
struct Layout {
    blocks: Vec<(String, u64, u64)>,
    /// Where the hotplugged DIMM goes.
    dimm: u64,
    /// 4096 addresses: 90% pc.ram, 6% vga, 4% ROMs.
    addrs: Vec<u64>,
}

fn layout(rcu: &RamList<Memb>) -> Layout {
    let pc = rcu.alloc_named("pc.ram", 256 * MIB).unwrap();
    let vga = rcu.alloc_named("vga.vram", 16 * MIB).unwrap();
    let bios = rcu.alloc_named("pc.bios", 256 * KIB).unwrap();
    let rom = rcu.alloc_named("pc.rom", 128 * KIB).unwrap();
    let acpi = rcu.alloc_named("/rom@etc/acpi/tables", 128 * KIB).unwrap();
    let blocks = vec![
        ("pc.ram".to_owned(), pc, 256 * MIB),
        ("vga.vram".to_owned(), vga, 16 * MIB),
        ("pc.bios".to_owned(), bios, 256 * KIB),
        ("pc.rom".to_owned(), rom, 128 * KIB),
        ("/rom@etc/acpi/tables".to_owned(), acpi, 128 * KIB),
    ];
    let mut seed = 0x1234_5678u64;
    let addrs = (0..4096)
        .map(|_| {
            let r = rng(&mut seed) % 100;
            let (base, size) = match r {
                0..=89 => (pc, 256 * MIB),
                90..=95 => (vga, 16 * MIB),
                96..=97 => (bios, 256 * KIB),
                98 => (rom, 128 * KIB),
                _ => (acpi, 128 * KIB),
            };
            (base + rng(&mut seed) % size) & !7
        })
        .collect();
    let dimm = blocks
        .iter()
        .map(|b| b.1 + b.2)
        .max()
        .unwrap()
        .next_multiple_of(MIB);
    Layout {
        blocks,
        dimm,
        addrs,
    }
}

// ----- the mutex twin: the list before the RCU patch -----

/// A block of the twin: what a lookup needs, plus real memory (allocated and freed under
/// the lock, as `qemu_ram_alloc`/`qemu_ram_free` did before the patch).
struct TwinBlock {
    offset: u64,
    length: u64,
    host: Box<[u64]>,
    #[allow(dead_code)]
    idstr: String,
}

/// `ram_list` before the patch: blocks sorted biggest first and the `mru_block` hint, all
/// under the ramlist mutex.
struct MutexRamList {
    inner: Mutex<(Vec<TwinBlock>, usize)>,
}

impl MutexRamList {
    fn new(l: &Layout) -> Self {
        let blocks = l
            .blocks
            .iter()
            .map(|(n, o, s)| TwinBlock {
                offset: *o,
                length: *s,
                host: vec![0u64; 8].into_boxed_slice(),
                idstr: n.clone(),
            })
            .collect();
        MutexRamList {
            inner: Mutex::new((blocks, 0)),
        }
    }

    /// `qemu_get_ram_block` + host address, under the lock.
    #[inline]
    fn translate(&self, addr: u64) -> Option<usize> {
        let mut g = self.inner.lock().unwrap();
        let (blocks, mru) = &mut *g;
        if let Some(b) = blocks.get(*mru) {
            if addr.wrapping_sub(b.offset) < b.length {
                return Some(b.host.as_ptr() as usize + (addr - b.offset) as usize);
            }
        }
        let i = blocks
            .iter()
            .position(|b| addr.wrapping_sub(b.offset) < b.length)?;
        *mru = i;
        let b = &blocks[i];
        Some(b.host.as_ptr() as usize + (addr - b.offset) as usize)
    }

    fn add(&self, offset: u64, length: u64) {
        let mut g = self.inner.lock().unwrap();
        let host = vec![0u64; (length / 8) as usize].into_boxed_slice();
        let pos =
            g.0.iter()
                .position(|b| b.length < length)
                .unwrap_or(g.0.len());
        g.0.insert(
            pos,
            TwinBlock {
                offset,
                length,
                host,
                idstr: "dimm".into(),
            },
        );
        g.1 = 0;
    }

    fn remove(&self, offset: u64) {
        let mut g = self.inner.lock().unwrap();
        if let Some(i) = g.0.iter().position(|b| b.offset == offset) {
            g.0.remove(i);
        }
        g.1 = 0;
    }
}

// ----- the three implementations behind one interface -----

#[derive(Clone, Copy, Debug)]
enum Imp {
    Rcu,
    RcuTranslator,
    Mutex,
    VmMemory,
}

impl Imp {
    fn name(self) -> &'static str {
        match self {
            Imp::Rcu => "rcu",
            Imp::RcuTranslator => "rcu-translator",
            Imp::Mutex => "mutex",
            Imp::VmMemory => "vm-memory",
        }
    }
}

struct Subject {
    domain: Domain<Memb>,
    rcu: RamList<Memb>,
    layout: Layout,
    twin: MutexRamList,
    vmm: GuestMemoryAtomic<GuestMemoryMmap>,
}

impl Subject {
    fn new() -> Self {
        let domain: Domain<Memb> = Domain::new();
        let rcu = RamList::new_in(&domain);
        let layout = layout(&rcu);
        let twin = MutexRamList::new(&layout);
        let ranges: Vec<(GuestAddress, usize)> = layout
            .blocks
            .iter()
            .map(|b| (GuestAddress(b.1), b.2 as usize))
            .collect();
        let vmm = GuestMemoryAtomic::new(GuestMemoryMmap::from_ranges(&ranges).unwrap());
        Subject {
            domain,
            rcu,
            layout,
            twin,
            vmm,
        }
    }

    /// One hotplug operation pair for `imp`: plug a 1 MiB DIMM, unplug it.
    fn hotplug_once(&self, imp: Imp) {
        let dimm = self.layout.dimm;
        match imp {
            Imp::Rcu | Imp::RcuTranslator => {
                let a = self.rcu.alloc_named("dimm0", MIB).unwrap();
                thread::sleep(HOTPLUG_PAUSE);
                self.rcu.unplug(a).unwrap();
            }
            Imp::Mutex => {
                self.twin.add(dimm, MIB);
                thread::sleep(HOTPLUG_PAUSE);
                self.twin.remove(dimm);
            }
            Imp::VmMemory => {
                let region = Arc::new(
                    GuestRegionMmap::from_range(GuestAddress(dimm), MIB as usize, None).unwrap(),
                );
                {
                    let g = self.vmm.lock().unwrap();
                    let new = self.vmm.memory().insert_region(region).unwrap();
                    g.replace(new);
                }
                thread::sleep(HOTPLUG_PAUSE);
                let g = self.vmm.lock().unwrap();
                let (new, _old) = self
                    .vmm
                    .memory()
                    .remove_region(GuestAddress(dimm), MIB)
                    .unwrap();
                g.replace(new);
            }
        }
        thread::sleep(HOTPLUG_PAUSE);
    }

    /// `iters` translations of the address mix, from the calling thread.
    fn translate_loop(&self, imp: Imp, iters: u64, start: usize) -> usize {
        let addrs = &self.layout.addrs;
        let mut acc = 0usize;
        let mut i = start;
        match imp {
            Imp::Rcu => {
                let reader = self.domain.register();
                for _ in 0..iters {
                    let a = addrs[i & 4095];
                    i += 1;
                    let g = reader.read_lock();
                    if let Some(b) = self.rcu.lookup(a, &g) {
                        acc ^= b.host() as usize + (a - b.offset()) as usize;
                    }
                }
            }
            Imp::RcuTranslator => {
                let reader = self.domain.register();
                let tlb = self.rcu.translator();
                for _ in 0..iters {
                    let a = addrs[i & 4095];
                    i += 1;
                    let g = reader.read_lock();
                    if let Some(b) = tlb.lookup(a, &g) {
                        acc ^= b.host() as usize + (a - b.offset()) as usize;
                    }
                }
            }
            Imp::Mutex => {
                for _ in 0..iters {
                    let a = addrs[i & 4095];
                    i += 1;
                    acc ^= self.twin.translate(a).unwrap_or(0);
                }
            }
            Imp::VmMemory => {
                for _ in 0..iters {
                    let a = addrs[i & 4095];
                    i += 1;
                    let m = self.vmm.memory();
                    if let Some((r, off)) = m.to_region_addr(GuestAddress(a)) {
                        acc ^= r.get_host_address(off).map_or(0, |p| p as usize);
                    }
                }
            }
        }
        black_box(acc)
    }

    /// Run `readers` threads doing `iters` translations each while the hotplug writer runs;
    /// returns the wall time from the common start to the last reader's end.
    fn run(&self, imp: Imp, readers: usize, iters: u64) -> Duration {
        let stop = AtomicBool::new(false);
        let barrier = Barrier::new(readers + 1);
        thread::scope(|s| {
            let writer = s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    self.hotplug_once(imp);
                }
            });
            let hs: Vec<_> = (0..readers)
                .map(|t| {
                    let barrier = &barrier;
                    s.spawn(move || {
                        barrier.wait();
                        self.translate_loop(imp, iters, t * 977)
                    })
                })
                .collect();
            barrier.wait();
            let t0 = Instant::now();
            for h in hs {
                h.join().unwrap();
            }
            let el = t0.elapsed();
            stop.store(true, Ordering::Relaxed);
            writer.join().unwrap();
            el
        })
    }

    /// Run `readers` threads for `d` while the hotplug writer runs; returns each reader's
    /// translations per second (so that an unfair lock shows as a starved reader).
    fn run_for(&self, imp: Imp, readers: usize, d: Duration) -> Vec<f64> {
        let stop_readers = AtomicBool::new(false);
        let stop_writer = AtomicBool::new(false);
        let barrier = Barrier::new(readers + 1);
        thread::scope(|s| {
            let writer = s.spawn(|| {
                while !stop_writer.load(Ordering::Relaxed) {
                    self.hotplug_once(imp);
                }
            });
            let hs: Vec<_> = (0..readers)
                .map(|t| {
                    let (barrier, stop) = (&barrier, &stop_readers);
                    s.spawn(move || {
                        barrier.wait();
                        let mut n = 0u64;
                        while !stop.load(Ordering::Relaxed) {
                            self.translate_loop(imp, 1024, t * 977 + n as usize);
                            n += 1024;
                        }
                        n
                    })
                })
                .collect();
            barrier.wait();
            let t0 = Instant::now();
            thread::sleep(d);
            stop_readers.store(true, Ordering::Relaxed);
            let counts: Vec<u64> = hs.into_iter().map(|h| h.join().unwrap()).collect();
            let el = t0.elapsed().as_secs_f64();
            stop_writer.store(true, Ordering::Relaxed);
            writer.join().unwrap();
            counts.into_iter().map(|n| n as f64 / el).collect()
        })
    }
}

fn translate(c: &mut Criterion) {
    let s = Subject::new();
    let mut g = c.benchmark_group("ram_list/translate");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    for readers in [1usize, 2] {
        g.throughput(Throughput::Elements(readers as u64));
        for imp in [Imp::Rcu, Imp::RcuTranslator, Imp::Mutex, Imp::VmMemory] {
            g.bench_function(BenchmarkId::new(imp.name(), readers), |b| {
                b.iter_custom(|iters| s.run(imp, readers, iters))
            });
        }
    }
    g.finish();
}

// ----- migration throughput -----

const RAM: u64 = 256 * MIB;

/// A 256 MiB pc.ram with 90% data pages (fully written) and 10% zero pages.
fn migration_source(domain: &Domain<Memb>) -> RamList<Memb> {
    let l = RamList::new_in(domain);
    let a = l.alloc_named("pc.ram", RAM).unwrap();
    let r = domain.register();
    let g = r.read_lock();
    let b = l.lookup(a, &g).unwrap();
    let mut seed = 99u64;
    let mut page = vec![0u8; 4096];
    for p in 0..RAM / 4096 {
        if p % 10 == 9 {
            continue;
        }
        for w in page.chunks_exact_mut(8) {
            w.copy_from_slice(&(rng(&mut seed) | 1).to_ne_bytes());
        }
        b.write(p * 4096, &page).unwrap();
    }
    drop(g);
    l
}

fn save(src: &RamList<Memb>, domain: &Domain<Memb>, out: Vec<u8>, parallel: bool) -> Vec<u8> {
    let r = domain.register();
    let opts = SaveOptions {
        parallel,
        ..SaveOptions::default()
    };
    let mut w = MigrationWriter::new(out, "bench", opts).unwrap();
    w.setup(src, &r.read_lock()).unwrap();
    w.iterate(src, u64::MAX, &r.read_lock()).unwrap();
    let g = r.read_lock();
    let out = w.complete(src, &g).unwrap();
    drop(g);
    out
}

fn load_into(dst: &RamList<Memb>, domain: &Domain<Memb>, stream: &[u8]) {
    let r = domain.register();
    load(dst, stream, &LoadOptions::default(), &r).unwrap();
}

struct MigrationBench {
    domain: Domain<Memb>,
    src: RamList<Memb>,
    dst: RamList<Memb>,
    stream: Vec<u8>,
    pipe: Vec<u8>,
    a: Vec<u8>,
    b: Vec<u8>,
}

impl MigrationBench {
    fn new() -> Self {
        let domain: Domain<Memb> = Domain::new();
        let src = migration_source(&domain);
        let dst = RamList::new_in(&domain);
        dst.alloc_named("pc.ram", RAM).unwrap();
        let stream = save(
            &src,
            &domain,
            Vec::with_capacity((RAM + RAM / 32) as usize),
            false,
        );
        load_into(&dst, &domain, &stream); // fault the destination in
        let a: Vec<u8> = (0..RAM as usize).map(|i| (i % 251) as u8).collect();
        let b = vec![1u8; RAM as usize];
        MigrationBench {
            domain,
            src,
            dst,
            stream,
            pipe: Vec::with_capacity(512 * KIB as usize),
            a,
            b,
        }
    }

    fn memcpy(&mut self) {
        self.b.copy_from_slice(black_box(&self.a));
        black_box(&self.b);
    }

    fn save(&mut self, parallel: bool) {
        let mut out = std::mem::take(&mut self.stream);
        out.clear();
        self.stream = save(&self.src, &self.domain, out, parallel);
    }

    fn load(&self) {
        load_into(&self.dst, &self.domain, &self.stream);
    }

    /// Save and load interleaved in 256 KiB sections, as a migration streams them: the
    /// stream stays in the cache instead of making a round trip through memory.
    fn pipelined(&mut self) {
        const SECTION: u64 = 256 * KIB;
        let r = self.domain.register();
        let mut saver = RamSaver::new(SaveOptions::default());
        let mut loader = RamLoader::new(&self.dst, LoadOptions::default());
        let mut buf = std::mem::take(&mut self.pipe);
        buf.clear();
        saver.setup(&self.src, &mut buf, &r.read_lock()).unwrap();
        loader
            .load_section(&mut CountingReader::new(&buf[..]), &r)
            .unwrap();
        loop {
            buf.clear();
            let st = saver
                .iterate(&self.src, &mut buf, SECTION, &r.read_lock())
                .unwrap();
            loader
                .load_section(&mut CountingReader::new(&buf[..]), &r)
                .unwrap();
            if st.remaining == 0 {
                break;
            }
        }
        assert_eq!(
            loader.stats().data_pages + loader.stats().zero_pages,
            RAM / 4096
        );
        self.pipe = buf;
    }

    /// Save on one thread and load on another, sections of 256 KiB passed through a
    /// bounded channel (and their buffers handed back), as the two ends of a migration.
    fn threaded(&mut self) {
        const SECTION: u64 = 256 * KIB;
        let (full_tx, full_rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let (empty_tx, empty_rx) = std::sync::mpsc::channel::<Vec<u8>>();
        for _ in 0..4 {
            empty_tx
                .send(Vec::with_capacity(512 * KIB as usize))
                .unwrap();
        }
        let (domain, src, dst) = (&self.domain, &self.src, &self.dst);
        thread::scope(|s| {
            s.spawn(move || {
                let r = domain.register();
                let mut saver = RamSaver::new(SaveOptions::default());
                let mut first = true;
                loop {
                    let mut buf = empty_rx.recv().unwrap();
                    buf.clear();
                    let g = r.read_lock();
                    let remaining = if first {
                        first = false;
                        saver.setup(src, &mut buf, &g).unwrap();
                        u64::MAX
                    } else {
                        saver.iterate(src, &mut buf, SECTION, &g).unwrap().remaining
                    };
                    drop(g);
                    full_tx.send(buf).unwrap();
                    if remaining == 0 {
                        break;
                    }
                }
            });
            let r = domain.register();
            let mut loader = RamLoader::new(dst, LoadOptions::default());
            for buf in full_rx {
                loader
                    .load_section(&mut CountingReader::new(&buf[..]), &r)
                    .unwrap();
                // The saver may have finished and dropped its end.
                let _ = empty_tx.send(buf);
            }
            assert_eq!(
                loader.stats().data_pages + loader.stats().zero_pages,
                RAM / 4096
            );
        });
    }
}

fn migrate(c: &mut Criterion) {
    let mut m = MigrationBench::new();
    let mut g = c.benchmark_group("ram_list/migrate");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes(RAM));
    g.bench_function("memcpy", |b| b.iter(|| m.memcpy()));
    g.bench_function("save", |b| b.iter(|| m.save(false)));
    g.bench_function("save-parallel", |b| b.iter(|| m.save(true)));
    g.bench_function("load", |b| b.iter(|| m.load()));
    g.bench_function("save+load-pipelined", |b| b.iter(|| m.pipelined()));
    g.bench_function("save|load-threads", |b| b.iter(|| m.threaded()));
    g.finish();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The two ratios of the issue, measured directly in this run.
fn ratios() {
    println!("\n== ram_list ratios (this machine, one run) ==");
    let s = Subject::new();
    let d = Duration::from_millis(500);
    // (aggregate, slowest reader) per implementation and reader count: the median of 3
    // runs, interleaved so that background load hits every implementation alike.
    type Runs = Vec<(f64, f64)>;
    let mut results: Vec<(Imp, usize, Runs)> = Vec::new();
    for readers in [2usize, 1] {
        for imp in [Imp::Rcu, Imp::RcuTranslator, Imp::Mutex, Imp::VmMemory] {
            results.push((imp, readers, Vec::new()));
        }
    }
    for _ in 0..3 {
        for (imp, readers, runs) in results.iter_mut() {
            let per = s.run_for(*imp, *readers, d);
            let total: f64 = per.iter().sum();
            let min = per.iter().cloned().fold(f64::INFINITY, f64::min);
            runs.push((total, min));
        }
    }
    let get = |imp: Imp, readers: usize| -> (f64, f64) {
        let (_, _, runs) = results
            .iter()
            .find(|(i, r, _)| i.name() == imp.name() && *r == readers)
            .unwrap();
        (
            median(runs.iter().map(|r| r.0).collect()),
            median(runs.iter().map(|r| r.1).collect()),
        )
    };
    for (imp, readers, _) in &results {
        let (total, min) = get(*imp, *readers);
        println!(
            "translate {:<9} {} reader(s) + hotplug writer: {:>7.1} M translations/s aggregate, slowest reader {:>6.1} M/s",
            imp.name(),
            readers,
            total / 1e6,
            min / 1e6
        );
    }
    let (mutex2, mutex2_min) = get(Imp::Mutex, 2);
    let (vmm2, _) = get(Imp::VmMemory, 2);
    let (mutex1, _) = get(Imp::Mutex, 1);
    for imp in [Imp::Rcu, Imp::RcuTranslator] {
        let (rcu2, rcu2_min) = get(imp, 2);
        let (rcu1, _) = get(imp, 1);
        println!(
            "RATIO translate {}/mutex, 2 readers + hotplug writer: {:.1}x aggregate, {:.1}x slowest reader \
             (1 reader: {:.1}x; {}/vm-memory with 2 readers: {:.1}x; 2 readers / 1 reader: {:.2}x)",
            imp.name(),
            rcu2 / mutex2,
            rcu2_min / mutex2_min.max(1.0),
            rcu1 / mutex1,
            imp.name(),
            rcu2 / vmm2,
            rcu2 / rcu1
        );
    }
    drop(s);

    let mut m = MigrationBench::new();
    let time = |f: &mut dyn FnMut()| {
        median(
            (0..5)
                .map(|_| {
                    let t = Instant::now();
                    f();
                    t.elapsed().as_secs_f64()
                })
                .collect(),
        )
    };
    let t_memcpy = time(&mut || m.memcpy());
    let t_save = time(&mut || m.save(false));
    let t_save_par = time(&mut || m.save(true));
    let t_load = time(&mut || m.load());
    let t_pipe = time(&mut || m.pipelined());
    let t_threads = time(&mut || m.threaded());
    let bw = |t: f64| RAM as f64 / t / MIB as f64;
    println!(
        "256 MiB (90% data pages): memcpy {:.1} ms ({:.0} MiB/s), save {:.1} ms ({:.0} MiB/s), \
         save parallel {:.1} ms ({:.0} MiB/s), load {:.1} ms ({:.0} MiB/s); stream {:.1} MiB",
        t_memcpy * 1e3,
        bw(t_memcpy),
        t_save * 1e3,
        bw(t_save),
        t_save_par * 1e3,
        bw(t_save_par),
        t_load * 1e3,
        bw(t_load),
        m.stream.len() as f64 / MIB as f64
    );
    println!(
        "RATIO save+load bandwidth / memcpy bandwidth: {:.0}% sequential (with parallel save: {:.0}%), \
         {:.0}% pipelined in 256 KiB sections on one thread ({:.1} ms), \
         {:.0}% with save and load on two threads ({:.1} ms)",
        100.0 * t_memcpy / (t_save + t_load),
        100.0 * t_memcpy / (t_save_par + t_load),
        100.0 * t_memcpy / t_pipe,
        t_pipe * 1e3,
        100.0 * t_memcpy / t_threads,
        t_threads * 1e3
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    translate(&mut c);
    migrate(&mut c);
    c.final_summary();
    let test_mode = std::env::args().any(|a| a == "--test" || a == "--list");
    if !test_mode && std::env::var_os("RAM_LIST_BENCH_NO_RATIOS").is_none() {
        ratios();
    }
}
