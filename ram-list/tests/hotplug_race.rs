//! Lookups racing hotplug: reader threads translate addresses (one through
//! `RamList::lookup` and its shared `mru_block`, one through a `Translator` that keeps its
//! block across critical sections), follow host pointers, read idstrs and guest memory
//! while a writer adds, removes, resizes and renames blocks.
//! A block freed too early (or a stale `mru_block`) shows up as a wrong tag, a crash, or,
//! under AddressSanitizer, a use-after-free report:
//!
//! ```text
//! RUSTC_BOOTSTRAP=1 RUSTFLAGS="-Zsanitizer=address --cfg rcu_sanitize" \
//!     cargo test -p ram-list --target x86_64-unknown-linux-gnu --test hotplug_race
//! ```

mod common;

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use common::Rng;
use ram_list::RamList;
use rcu_core::{Domain, Memb};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// Sizes shrink under sanitizers (`--cfg rcu_sanitize`).
mod cfg {
    #[cfg(rcu_sanitize)]
    pub const WRITER_OPS: u64 = 1500;
    #[cfg(not(rcu_sanitize))]
    pub const WRITER_OPS: u64 = 2500;
}

/// The tag of DIMM generation `gen`: its first word, written before it is named.
fn tag(gen: u64) -> u64 {
    gen.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1
}

#[test]
fn lookups_race_hotplug() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let base = l.alloc_named("pc.ram", 4 * MIB).unwrap();
    let rom = l
        .alloc_resizeable_named("rom", 64 * KIB, 256 * KIB)
        .unwrap();
    {
        let r = d.register();
        let g = r.read_lock();
        l.lookup(base, &g).unwrap().write_u64(0, tag(0)).unwrap();
    }
    let done = AtomicBool::new(false);
    let hits = AtomicU64::new(0);
    let misses = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..2u64 {
            let (l, done, hits, misses, d) = (&l, &done, &hits, &misses, &d);
            s.spawn(move || {
                let r = d.register();
                let tlb = l.translator();
                let mut rng = Rng::new(100 + t);
                let (mut h, mut m) = (0u64, 0u64);
                while !done.load(Ordering::Relaxed) {
                    let g = r.read_lock();
                    let end = l.last_ram_offset(&g);
                    for _ in 0..64 {
                        // Mostly addresses of recently seen blocks, sometimes anywhere.
                        let addr = rng.below(end.max(1));
                        let found = if t == 0 {
                            l.lookup(addr, &g)
                        } else {
                            tlb.lookup(addr, &g)
                        };
                        let Some(b) = found else {
                            m += 1;
                            continue;
                        };
                        h += 1;
                        // (A resize may have shrunk it since: only the start is stable.)
                        assert!(b.offset() <= addr);
                        let name = b.idstr();
                        if let Some(gen) = name.strip_prefix("dimm") {
                            let gen: u64 = gen.parse().unwrap();
                            assert_eq!(b.read_u64(0).unwrap(), tag(gen), "{name}");
                        } else if name == "pc.ram" {
                            assert_eq!(b.read_u64(0).unwrap(), tag(0));
                            if addr >= 8 {
                                l.write_u64(addr & !7, addr, &g).unwrap();
                            }
                        }
                        // Host pointer round trip.
                        let host = b.host().wrapping_add(((addr - b.offset()) & !7) as usize);
                        // (None if the block was unplugged since the lookup.)
                        if let Some((hb, off)) = l.block_from_host(host, &g) {
                            assert!(std::ptr::eq(hb, b));
                            assert_eq!(b.offset() + off, addr & !7);
                        }
                        if let Some(rg) = l.ptr_length(addr, 3 * MIB, &g) {
                            assert!(rg.offset + rg.len <= rg.block.max_length());
                        }
                    }
                    let mut n = 0;
                    let _ = l.foreach_block::<()>(&g, |b| {
                        n += 1;
                        assert!(b.used_length() <= b.max_length());
                        ControlFlow::Continue(())
                    });
                    assert!(n >= 2);
                    assert!(l.block_by_name("pc.ram", &g).is_some());
                    assert!(l.bytes_total(&g) >= 4 * MIB);
                }
                hits.fetch_add(h, Ordering::Relaxed);
                misses.fetch_add(m, Ordering::Relaxed);
            });
        }
        // The writer: hotplug.
        let r = d.register();
        let mut rng = Rng::new(7);
        let mut dimms: Vec<u64> = Vec::new();
        let mut gen = 0u64;
        for _ in 0..cfg::WRITER_OPS {
            match rng.below(10) {
                0..=3 if dimms.len() < 6 => {
                    gen += 1;
                    let size = (1 + rng.below(16)) * 64 * KIB;
                    let mut w = l.lock();
                    let a = w.alloc(size).unwrap();
                    // Tag, then name: a reader that sees the name sees the tag.
                    w.block(a).unwrap().write_u64(0, tag(gen)).unwrap();
                    w.set_idstr(a, None, &format!("dimm{gen}")).unwrap();
                    drop(w);
                    dimms.push(a);
                }
                0..=6 if !dimms.is_empty() => {
                    let a = dimms.swap_remove(rng.below(dimms.len() as u64) as usize);
                    l.unplug(a).unwrap();
                }
                7 => l.resize(rom, (1 + rng.below(64)) * 4 * KIB).unwrap(),
                8 => {
                    let mut w = l.lock();
                    w.unset_idstr(rom).unwrap();
                    w.set_idstr(rom, Some("/rom@etc"), "tables").unwrap();
                    w.unset_idstr(rom).unwrap();
                    w.set_idstr(rom, None, "rom").unwrap();
                }
                _ => {
                    // A lookup from the writer's thread too.
                    let g = r.read_lock();
                    assert!(l.lookup(base + 8, &g).is_some());
                }
            }
            if rng.chance(5) {
                std::thread::yield_now();
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    d.barrier();
    d.barrier();
    let st = d.stats();
    assert!(hits.load(Ordering::Relaxed) > 0);
    assert!(st.callbacks_run > 0, "{st:?}");
    eprintln!(
        "hits {} misses {} grace periods {} callbacks {}",
        hits.load(Ordering::Relaxed),
        misses.load(Ordering::Relaxed),
        st.grace_periods,
        st.callbacks_run
    );
}

/// The interleaving QEMU's `mru_block` comment misses: readers that found a block in the
/// list keep re-storing it into the hint while it is being removed. Many short-lived
/// blocks, readers hammering exactly their addresses.
#[test]
fn stale_mru_store_after_removal_is_harmless() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("pc.ram", MIB).unwrap();
    let current = AtomicU64::new(u64::MAX);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for t in 0..2 {
            let (l, d, current, done) = (&l, &d, &current, &done);
            s.spawn(move || {
                let r = d.register();
                let mut rng = Rng::new(t);
                while !done.load(Ordering::Relaxed) {
                    let g = r.read_lock();
                    let a = current.load(Ordering::Relaxed);
                    if a == u64::MAX {
                        continue;
                    }
                    // Alternate between the dimm and pc.ram so the hint keeps moving.
                    for i in 0..8 {
                        let addr = if i % 2 == 0 {
                            a + rng.below(64 * KIB)
                        } else {
                            8
                        };
                        if let Some(b) = l.lookup(addr, &g) {
                            assert!(b.read_u64(0).is_ok());
                            let _ = b.idstr().len();
                        }
                    }
                }
            });
        }
        let ops = if cfg!(rcu_sanitize) { 300 } else { 600 };
        for i in 0..ops {
            let a = l.alloc_named(&format!("d{i}"), 64 * KIB).unwrap();
            current.store(a, Ordering::Relaxed);
            std::thread::yield_now();
            l.unplug(a).unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    d.barrier();
    d.barrier();
}

/// A translator keeps its block across critical sections: when that block is unplugged
/// and reclaimed between two of them, the next lookup must not touch it. Each round the
/// translator caches a fresh DIMM, which is then unplugged and freed (two barriers: the
/// two-stage reclaim) before the translator looks its address up again. A
/// translator that trusted its cache without the version check would read the freed
/// block (a use-after-free under AddressSanitizer, a wrong idstr without it).
#[test]
fn translator_never_uses_a_reclaimed_block() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("pc.ram", 4 * MIB).unwrap();
    let r = d.register();
    let tlb = l.translator();
    for gen in 0..200u64 {
        let a = l.alloc_named(&format!("dimm{gen}"), 64 * KIB).unwrap();
        {
            let g = r.read_lock();
            assert_eq!(tlb.lookup(a + 8, &g).unwrap().idstr(), format!("dimm{gen}"));
        }
        l.unplug(a).unwrap();
        d.barrier();
        d.barrier();
        let g = r.read_lock();
        assert!(tlb.lookup(a + 8, &g).is_none(), "round {gen}");
    }
    assert!(d.stats().callbacks_run >= 200);
}

/// `ptr_length` racing `resize`: a block's used length can shrink between the lookup that
/// found `addr` inside it and the clamp of the range. The range must then be `None` or lie
/// inside the used length read once, never an underflowed length.
#[test]
fn ptr_length_races_resize() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let _base = l.alloc_named("pc.ram", MIB).unwrap();
    let rom = l
        .alloc_resizeable_named("rom", 256 * KIB, 256 * KIB)
        .unwrap();
    let flips = AtomicU64::new(0);
    let reader_done = AtomicBool::new(false);
    let (mut found, mut gone) = (0u64, 0u64);
    std::thread::scope(|s| {
        let (l, flips, reader_done) = (&l, &flips, &reader_done);
        s.spawn(move || {
            // Flip between a small and the full length until the reader is done.
            let mut i = 0u64;
            while !reader_done.load(Ordering::Relaxed) {
                let len = if i % 2 == 0 { 4 * KIB } else { 256 * KIB };
                l.resize(rom, len).unwrap();
                i += 1;
                flips.store(i, Ordering::Relaxed);
            }
        });
        // Stops the writer however the reader leaves (an assertion failing included).
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _done = Done(reader_done);
        let r = d.register();
        let mut rng = Rng::new(11);
        while flips.load(Ordering::Relaxed) < 2 {
            std::thread::yield_now();
        }
        // At least WRITER_OPS batches, and on until both outcomes were seen (the writer may
        // get no CPU for a while when other tests run beside this one); 30 s at most.
        let t0 = std::time::Instant::now();
        let mut batches = 0;
        while batches < cfg::WRITER_OPS
            || ((found == 0 || gone == 0) && t0.elapsed() < std::time::Duration::from_secs(30))
        {
            batches += 1;
            let g = r.read_lock();
            for _ in 0..256 {
                // Addresses in the part of the block that comes and goes.
                let addr = rom + 4 * KIB + rng.below(252 * KIB);
                match l.ptr_length(addr, 64 * KIB, &g) {
                    Some(rg) => {
                        found += 1;
                        assert!(rg.len > 0);
                        assert!(rg.offset + rg.len <= rg.block.max_length(), "{rg:?}");
                    }
                    None => gone += 1,
                }
            }
        }
    });
    eprintln!("ptr_length: {found} ranges, {gone} misses");
    assert!(
        found > 0 && gone > 0,
        "the race was not exercised: {found} / {gone}"
    );
}
