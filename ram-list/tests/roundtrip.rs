//! save -> load round trips: random dirtying between passes, budgets, parallel encoding,
//! hotplug mirrored to the destination, and a live migration over a socket with
//! concurrent writers.

mod common;

use std::io::BufReader;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use common::*;
use ram_list::migration::{load, LoadOptions, MigrationWriter, RamSaver, SaveError, SaveOptions};
use ram_list::RamList;
use rcu_core::{Domain, Memb, Reader};

const P: u64 = PAGE as u64;
const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// The destination's migratable blocks equal the source's, byte for byte.
fn assert_same(src: &RamList<Memb>, dst: &RamList<Memb>, rs: &Reader<Memb>, rd: &Reader<Memb>) {
    let gs = rs.read_lock();
    let gd = rd.read_lock();
    let named = |l: &RamList<Memb>, g| {
        let mut v: Vec<(String, u64)> = l
            .iter(g)
            .filter(|b| !b.idstr().is_empty())
            .map(|b| (b.idstr().to_owned(), b.used_length()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(named(src, &gs), named(dst, &gd));
    for b in src.iter(&gs).filter(|b| !b.idstr().is_empty()) {
        let d = dst.block_by_name(b.idstr(), &gd).unwrap();
        assert_eq!(b.first_difference(d), None, "block {}", b.idstr());
    }
}

/// Writes `n` random words (some whole zero pages); returns how many addresses had no block
/// any more (a DIMM unplugged meanwhile).
fn dirty_randomly(l: &RamList<Memb>, r: &Reader<Memb>, rng: &mut Rng, n: usize) -> usize {
    let mut misses = 0;
    let g = r.read_lock();
    let blocks: Vec<(u64, u64)> = l.iter(&g).map(|b| (b.offset(), b.used_length())).collect();
    for _ in 0..n {
        let (off, len) = blocks[rng.below(blocks.len() as u64) as usize];
        let addr = off + rng.below(len / 8) * 8;
        let v = if rng.chance(20) { 0 } else { rng.next() };
        if rng.chance(10) {
            // Zero a whole page: it must arrive as a zero page.
            let page = addr & !(P - 1);
            misses += usize::from(l.write(page, &[0u8; PAGE], &g).is_err());
        } else {
            misses += usize::from(l.write_u64(addr, v, &g).is_err());
        }
    }
    misses
}

fn make_source(d: &Domain<Memb>) -> RamList<Memb> {
    let l = RamList::new_in(d);
    l.alloc_named("pc.ram", 2 * MIB).unwrap();
    l.alloc_named("vga.vram", 256 * KIB).unwrap();
    l.alloc_resizeable_named("/rom@etc/acpi/tables", 16 * KIB, 64 * KIB)
        .unwrap();
    l.alloc_named("pc.bios", 64 * KIB).unwrap();
    l
}

fn make_dest(d: &Domain<Memb>) -> RamList<Memb> {
    let l = RamList::new_in(d);
    l.alloc_named("pc.ram", 2 * MIB).unwrap();
    l.alloc_named("vga.vram", 256 * KIB).unwrap();
    l.alloc_resizeable_named("/rom@etc/acpi/tables", 8 * KIB, 64 * KIB)
        .unwrap();
    l.alloc_named("pc.bios", 64 * KIB).unwrap();
    l
}

fn round_trip(seed: u64, opts: SaveOptions, budget: u64) {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = make_source(&d);
    let mut rng = Rng::new(seed);
    dirty_randomly(&src, &r, &mut rng, 300);
    let mut w = MigrationWriter::new(Vec::new(), "pc", opts).unwrap();
    w.setup(&src, &r.read_lock()).unwrap();
    let mut passes = 0;
    for _ in 0..40 {
        let st = w.iterate(&src, budget, &r.read_lock()).unwrap();
        assert!(st.bytes <= budget + 2 * (P + 300), "{st:?}");
        if st.remaining == 0 {
            passes += 1;
        }
        dirty_randomly(&src, &r, &mut rng, 50);
    }
    let st = w.complete_in_place(&src, &r.read_lock()).unwrap();
    assert_eq!(st.remaining, 0);
    let stats = w.saver().stats();
    assert!(stats.syncs >= 2 && passes >= 1, "{stats:?}");
    assert!(stats.zero_pages > 0 && stats.data_pages > 0);
    let stream = w.get_mut().clone();
    let dst = make_dest(&d);
    let rd = d.register();
    let rep = load(&dst, &stream[..], &LoadOptions::default(), &rd).unwrap();
    assert_eq!(rep.stats.data_pages, stats.data_pages);
    assert_eq!(rep.stats.zero_pages, stats.zero_pages);
    assert_same(&src, &dst, &r, &rd);
}

#[test]
fn random_dirtying_serial() {
    for seed in 1..4 {
        round_trip(seed, SaveOptions::default(), 64 * KIB);
    }
}

#[test]
#[cfg(feature = "rayon")]
fn random_dirtying_parallel_and_ignore_shared() {
    for seed in 10..13 {
        round_trip(
            seed,
            SaveOptions {
                parallel: true,
                ignore_shared: true,
                ..SaveOptions::default()
            },
            256 * KIB,
        );
    }
}

#[test]
fn unbounded_iterate_sends_everything_once() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = make_source(&d);
    let mut w = RamSaver::new(SaveOptions::default());
    let mut out = Vec::new();
    assert!(matches!(
        w.iterate(&src, &mut out, u64::MAX, &r.read_lock()),
        Err(SaveError::NotSetUp)
    ));
    let st = w.setup(&src, &mut out, &r.read_lock()).unwrap();
    let total_pages = (2 * MIB + 256 * KIB + 16 * KIB + 64 * KIB) / P;
    assert_eq!(st.remaining, total_pages);
    let st = w.iterate(&src, &mut out, u64::MAX, &r.read_lock()).unwrap();
    assert_eq!((st.pages, st.remaining), (total_pages, 0));
    // Nothing dirty: the next iteration syncs, finds nothing, sends only EOS.
    let st = w.iterate(&src, &mut out, u64::MAX, &r.read_lock()).unwrap();
    assert_eq!((st.pages, st.bytes), (0, 8));
    // One write: one page.
    src.write_u64(P * 7, 1, &r.read_lock()).unwrap();
    assert_eq!(w.sync(&src, &r.read_lock()).unwrap(), 1);
    let st = w.iterate(&src, &mut out, u64::MAX, &r.read_lock()).unwrap();
    assert_eq!(st.pages, 1);
    assert_eq!(w.stats().zero_pages + w.stats().data_pages, total_pages + 1);
    assert_eq!(w.blocks().len(), 4);
}

#[test]
fn strict_mode_rejects_hotplug_during_migration() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = make_source(&d);
    let mut w = MigrationWriter::new(Vec::new(), "pc", SaveOptions::default()).unwrap();
    w.setup(&src, &r.read_lock()).unwrap();
    // An unnamed block is not migratable: no change for the stream.
    let a = src.lock().alloc(MIB).unwrap();
    w.iterate(&src, 64 * KIB, &r.read_lock()).unwrap();
    src.lock().set_idstr(a, None, "dimm0").unwrap();
    let e = w.iterate(&src, 64 * KIB, &r.read_lock()).unwrap_err();
    assert!(
        matches!(&e, SaveError::BlockSetChanged { idstr } if idstr == "dimm0"),
        "{e:?}"
    );
    assert!(e.to_string().contains("dimm0"));
    // The failure is sticky: the migration must be abandoned.
    let e = w.complete_in_place(&src, &r.read_lock()).unwrap_err();
    assert!(matches!(e, SaveError::BlockSetChanged { .. }), "{e:?}");
}

#[test]
fn hotplug_between_iterations_is_mirrored() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = make_source(&d);
    let mut rng = Rng::new(77);
    let opts = SaveOptions {
        mirror_block_changes: true,
        ..SaveOptions::default()
    };
    let mut w = MigrationWriter::new(Vec::new(), "pc", opts).unwrap();
    w.setup(&src, &r.read_lock()).unwrap();
    let mut dimms: Vec<u64> = Vec::new();
    for i in 0..30 {
        dirty_randomly(&src, &r, &mut rng, 40);
        match rng.below(4) {
            0 => {
                let size = (1 + rng.below(8)) * 64 * KIB;
                let a = src.alloc_named(&format!("dimm{i}"), size).unwrap();
                src.write_u64(a + 8, i, &r.read_lock()).unwrap();
                dimms.push(a);
            }
            1 if !dimms.is_empty() => {
                let a = dimms.swap_remove(rng.below(dimms.len() as u64) as usize);
                src.unplug(a).unwrap();
            }
            2 => {
                let g = r.read_lock();
                let rom = src
                    .block_by_name("/rom@etc/acpi/tables", &g)
                    .unwrap()
                    .offset();
                drop(g);
                src.resize(rom, (1 + rng.below(16)) * 4 * KIB).unwrap();
            }
            _ => {}
        }
        w.iterate(&src, 128 * KIB, &r.read_lock()).unwrap();
    }
    w.complete_in_place(&src, &r.read_lock()).unwrap();
    let stats = w.saver().stats();
    assert!(stats.mem_size_records > 5, "{stats:?}");
    let stream = w.get_mut().clone();
    let dst = RamList::new_in(&d);
    dst.alloc_named("stale", MIB).unwrap();
    let rd = d.register();
    let rep = load(&dst, &stream[..], &LoadOptions::mirror(1 << 30), &rd).unwrap();
    assert_eq!(rep.stats.mem_size_records, stats.mem_size_records);
    assert_same(&src, &dst, &r, &rd);
}

/// A small live migration: a writer thread and a hotplug thread run while the saver sends
/// passes through a socket to a loading thread; then everything stops and completes.
#[test]
fn live_migration_over_a_socket_with_concurrent_writers_and_hotplug() {
    let d: Domain<Memb> = Domain::new();
    let src = make_source(&d);
    let dst = RamList::new_in(&d);
    let stop = AtomicBool::new(false);
    // Set once the vCPU has written guest memory: the migration starts only then, so it
    // always runs against a writer and always has data pages to send, however the threads
    // are scheduled.
    let vcpu_running = AtomicBool::new(false);
    let (tx, rx) = UnixStream::pair().unwrap();
    std::thread::scope(|s| {
        let loader = s.spawn(|| {
            let r = d.register();
            load(&dst, BufReader::new(rx), &LoadOptions::mirror(1 << 30), &r).unwrap()
        });
        let vcpu = s.spawn(|| {
            let r = d.register();
            let mut rng = Rng::new(5);
            while !stop.load(Ordering::Relaxed) {
                dirty_randomly(&src, &r, &mut rng, 20);
                // Release: pairs with the Acquire below, so the first writes are visible
                // to the saver's first pass (the dirty log would carry them anyway).
                vcpu_running.store(true, Ordering::Release);
                std::thread::yield_now();
            }
        });
        let hotplug = s.spawn(|| {
            let mut rng = Rng::new(6);
            let mut dimms = Vec::new();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                if dimms.len() < 3 && rng.chance(60) {
                    dimms.push(src.alloc_named(&format!("dimm{i}"), 256 * KIB).unwrap());
                    i += 1;
                } else if let Some(a) = dimms.pop() {
                    src.unplug(a).unwrap();
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        });
        let r = d.register();
        let opts = SaveOptions {
            mirror_block_changes: true,
            ..SaveOptions::default()
        };
        let mut w = MigrationWriter::new(std::io::BufWriter::new(tx), "pc", opts).unwrap();
        // Acquire: pairs with the vCPU's Release store.
        while !vcpu_running.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        w.setup(&src, &r.read_lock()).unwrap();
        for _ in 0..30 {
            w.iterate(&src, 256 * KIB, &r.read_lock()).unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        vcpu.join().unwrap();
        hotplug.join().unwrap();
        w.complete(&src, &r.read_lock()).unwrap();
        let rep = loader.join().unwrap();
        assert!(rep.stats.data_pages > 0);
        let rd = d.register();
        assert_same(&src, &dst, &r, &rd);
    });
}
