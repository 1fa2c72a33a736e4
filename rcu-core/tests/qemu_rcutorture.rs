//! An rcutorture-style stress test (after QEMU's tests/unit/rcutorture.c), for every
//! flavor and three ways of waiting for a grace period.
//!
//! The updater publishes a fresh item each round and retires the previous one into a
//! pipeline of `PIPE` slots; every retired item ages by one per round, and the updater waits
//! one grace period per round. A reader that finds an item of age >= 2 at the end of its
//! critical section was not waited for: a too-short grace period. Retired items leaving the
//! pipeline are poisoned and freed, so under AddressSanitizer a too-short grace period is
//! also a use-after-free report. Five extra threads call `synchronize` in a loop.
//!
//! `RCU_TORTURE_SECS` (default: a fraction of a second) sets the duration per case.
//! `RCU_TORTURE_READERS` (default 2) sets the reader threads per case.
#![cfg(not(loom))]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcu_core::{Domain, Flavor, GpCookie, Mb, Memb, Qsbr, Reader};

const PIPE: usize = 10;
const MAGIC: u64 = 0x5eed_cafe_f00d_d00d;
const POISON: u64 = 0xdead_dead_dead_dead;

struct Item {
    magic: AtomicU64,
    _pad: [u64; 2],
    age: AtomicU64,
    poison: AtomicU64,
}

impl Item {
    fn fresh() -> *mut Item {
        Box::into_raw(Box::new(Item {
            magic: AtomicU64::new(MAGIC),
            _pad: [0; 2],
            age: AtomicU64::new(0),
            poison: AtomicU64::new(0),
        }))
    }

    /// # Safety
    /// `p` came from `fresh`, is unpublished, and no reader can hold it any more.
    unsafe fn reclaim(p: *mut Item) {
        // SAFETY: per the contract we own `p`.
        let b = unsafe { Box::from_raw(p) };
        b.poison.store(POISON, Ordering::Release);
        b.magic.store(POISON, Ordering::Release);
        drop(b);
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Wait {
    Synchronize,
    CallRcu,
    Poll,
    /// No grace period at all: the checker must notice (self-test of the detector).
    Broken,
}

#[derive(Default, Debug)]
struct Outcome {
    reads: u64,
    too_old: u64,
    poisoned: u64,
    updates: u64,
}

fn secs() -> Duration {
    std::env::var("RCU_TORTURE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_millis(if cfg!(rcu_sanitize) {
            300
        } else {
            600
        }))
}

trait Quiesce {
    fn quiesce(&mut self) {}
}
impl Quiesce for Reader<Memb> {}
impl Quiesce for Reader<Mb> {}
impl Quiesce for Reader<Qsbr> {
    fn quiesce(&mut self) {
        self.quiescent_state();
    }
}

fn torture<F: Flavor>(domain: Domain<F>, wait: Wait, readers: usize) -> Outcome
where
    Reader<F>: Quiesce,
{
    let cur = Arc::new(AtomicPtr::new(Item::fresh()));
    let stop = Arc::new(AtomicBool::new(false));
    let totals = Arc::new([AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)]);
    let mut threads = Vec::new();
    for _ in 0..readers {
        let (d, cur, stop, totals) = (domain.clone(), cur.clone(), stop.clone(), totals.clone());
        threads.push(std::thread::spawn(move || {
            let mut reader = d.register();
            let (mut reads, mut too_old, mut poisoned) = (0u64, 0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                for _ in 0..64 {
                    let g = reader.read_lock();
                    let p = cur.load(Ordering::Acquire);
                    // SAFETY: loaded inside the critical section; the updater frees an item
                    // only after a grace period (which is what this test checks).
                    let item = unsafe { &*p };
                    if item.magic.load(Ordering::Acquire) != MAGIC {
                        poisoned += 1;
                    }
                    {
                        let _nested = reader.read_lock();
                        for _ in 0..16 {
                            std::hint::spin_loop();
                        }
                    }
                    let age = item.age.load(Ordering::Acquire);
                    if item.poison.load(Ordering::Acquire) != 0 {
                        poisoned += 1;
                    }
                    if age >= 2 {
                        too_old += 1;
                    }
                    reads += 1;
                    drop(g);
                }
                reader.quiesce();
            }
            totals[0].fetch_add(reads, Ordering::Relaxed);
            totals[1].fetch_add(too_old, Ordering::Relaxed);
            totals[2].fetch_add(poisoned, Ordering::Relaxed);
        }));
    }
    // Five extra threads hammering synchronize.
    if wait != Wait::Broken {
        for _ in 0..5 {
            let (d, stop) = (domain.clone(), stop.clone());
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    d.synchronize();
                    std::thread::yield_now();
                }
            }));
        }
    }
    let deadline = Instant::now() + secs();
    let mut pipeline: VecDeque<(*mut Item, Option<GpCookie>)> = VecDeque::new();
    let mut graveyard = Vec::new();
    let mut updates = 0;
    while Instant::now() < deadline {
        let old = cur.swap(Item::fresh(), Ordering::AcqRel);
        updates += 1;
        match wait {
            Wait::CallRcu => {
                let old = old as usize;
                domain.call(move || {
                    let p = old as *mut Item;
                    // SAFETY: a grace period has elapsed since `p` was unpublished.
                    unsafe {
                        (*p).age.store(2, Ordering::Release);
                        Item::reclaim(p);
                    }
                });
                if updates % 256 == 0 {
                    // Keep the backlog bounded.
                    while domain.stats().backlog > 4096 {
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            }
            Wait::Synchronize | Wait::Broken => {
                pipeline.push_back((old, None));
                for &(p, _) in &pipeline {
                    // SAFETY: retired items stay allocated while in the pipeline.
                    unsafe { (*p).age.fetch_add(1, Ordering::AcqRel) };
                }
                if wait == Wait::Synchronize {
                    domain.synchronize();
                } else {
                    std::thread::yield_now();
                }
                while pipeline.len() > PIPE {
                    let (p, _) = pipeline.pop_front().unwrap();
                    if wait == Wait::Broken {
                        graveyard.push(p as usize); // never free without a grace period
                    } else {
                        // SAFETY: many grace periods have elapsed since `p` was retired.
                        unsafe { Item::reclaim(p) };
                    }
                }
            }
            Wait::Poll => {
                pipeline.push_back((old, Some(domain.start_poll())));
                loop {
                    while let Some(&(p, Some(c))) = pipeline.front() {
                        if !domain.poll(c) {
                            break;
                        }
                        pipeline.pop_front();
                        // SAFETY: the poll says a grace period has elapsed since `p` was
                        // unpublished.
                        unsafe {
                            (*p).age.store(2, Ordering::Release);
                            Item::reclaim(p);
                        }
                    }
                    if pipeline.len() <= PIPE {
                        break;
                    }
                    std::thread::yield_now();
                }
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    domain.synchronize();
    domain.barrier();
    for (p, _) in pipeline {
        // SAFETY: all readers are gone.
        unsafe { Item::reclaim(p) };
    }
    for p in graveyard {
        // SAFETY: all readers are gone.
        unsafe { Item::reclaim(p as *mut Item) };
    }
    // SAFETY: all readers are gone.
    unsafe { Item::reclaim(cur.load(Ordering::Relaxed)) };
    Outcome {
        reads: totals[0].load(Ordering::Relaxed),
        too_old: totals[1].load(Ordering::Relaxed),
        poisoned: totals[2].load(Ordering::Relaxed),
        updates,
    }
}

fn check(o: Outcome) {
    eprintln!("{o:?}");
    assert!(o.reads > 0 && o.updates > 0, "no progress: {o:?}");
    assert_eq!(
        o.too_old, 0,
        "a reader saw age >= 2 (too-short grace period): {o:?}"
    );
    assert_eq!(o.poisoned, 0, "a reader saw a poisoned item: {o:?}");
}

/// Reader threads per test: 2 (this 2-core machine), or `RCU_TORTURE_READERS` to load a
/// many-core machine.
fn readers() -> usize {
    std::env::var("RCU_TORTURE_READERS")
        .ok()
        .and_then(|s| s.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(2)
}

#[test]
fn memb_synchronize() {
    check(torture(Domain::<Memb>::new(), Wait::Synchronize, readers()));
}
#[test]
fn memb_call_rcu() {
    check(torture(Domain::<Memb>::new(), Wait::CallRcu, readers()));
}
#[test]
fn memb_poll() {
    check(torture(Domain::<Memb>::new(), Wait::Poll, readers()));
}
#[test]
fn memb_fallback_synchronize() {
    let d = Domain::<Memb>::builder().force_fallback(true).build();
    assert_eq!(d.protocol(), "mb");
    check(torture(d, Wait::Synchronize, readers()));
}
#[test]
fn memb_fallback_call_rcu() {
    let d = Domain::<Memb>::builder().force_fallback(true).build();
    check(torture(d, Wait::CallRcu, readers()));
}
#[test]
fn memb_fallback_poll() {
    let d = Domain::<Memb>::builder().force_fallback(true).build();
    check(torture(d, Wait::Poll, readers()));
}
#[test]
fn mb_synchronize() {
    check(torture(Domain::<Mb>::new(), Wait::Synchronize, readers()));
}
#[test]
fn mb_call_rcu() {
    check(torture(Domain::<Mb>::new(), Wait::CallRcu, readers()));
}
#[test]
fn mb_poll() {
    check(torture(Domain::<Mb>::new(), Wait::Poll, readers()));
}
#[test]
fn qsbr_synchronize() {
    check(torture(Domain::<Qsbr>::new(), Wait::Synchronize, readers()));
}
#[test]
fn qsbr_call_rcu() {
    check(torture(Domain::<Qsbr>::new(), Wait::CallRcu, readers()));
}
#[test]
fn qsbr_poll() {
    check(torture(Domain::<Qsbr>::new(), Wait::Poll, readers()));
}

/// The detector works: without grace periods, readers do see stale (age >= 2) items.
#[test]
fn detects_missing_grace_period() {
    let o = torture(Domain::<Memb>::new(), Wait::Broken, readers());
    assert!(o.reads > 0);
    assert!(
        o.too_old > 0,
        "no reader noticed the missing grace periods: the checker is blind ({o:?})"
    );
}
