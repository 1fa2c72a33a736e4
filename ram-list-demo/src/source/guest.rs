//! [`Guest`]: the source's guest for `migrate`: vCPU threads that keep writing its RAM
//! (never the pages of preloaded files) while the migration runs, until it stops them for
//! the final pass; each then writes its final state, which only that pass can carry.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use ram_list::{RamList, PAGE_SIZE};
use rcu_core::Memb;

use crate::rng::Rng;

/// Guest writes per read-side critical section of a vCPU.
const BATCH: usize = 256;
/// Pages in a vCPU's working set.
const WORKING_SET: u64 = 256;

/// The guest: its RAM block, the pages vCPUs may write, and the flags they obey.
pub struct Guest<'a> {
    list: &'a RamList<Memb>,
    /// Ram address of the block's first byte.
    base: u64,
    /// Page ranges `[start, end)` of the block the vCPUs may write.
    free: Vec<(u64, u64)>,
    free_pages: u64,
    /// The vCPUs run while this is false.
    stop: AtomicBool,
    /// vCPUs still running; each decrements it (Release) after its last write.
    active: AtomicU64,
    /// vCPUs that have made their first batch of writes (the guest is up).
    booted: AtomicU64,
    /// Auto-converge: the percentage of time each vCPU sleeps.
    pub throttle: AtomicU32,
    /// Guest writes made, summed when the vCPUs stop.
    writes: AtomicU64,
}

impl<'a> Guest<'a> {
    /// A guest of `pages` pages at ram address `base` in `list`, whose vCPUs never write
    /// the page ranges in `taken`.
    pub fn new(list: &'a RamList<Memb>, base: u64, pages: u64, taken: &[(u64, u64)]) -> Self {
        let mut taken = taken.to_vec();
        taken.sort_unstable();
        let mut free = Vec::new();
        let mut at = 0;
        for &(s, e) in &taken {
            if s > at {
                free.push((at, s.min(pages)));
            }
            at = at.max(e);
        }
        if at < pages {
            free.push((at, pages));
        }
        free.retain(|(s, e)| s < e);
        let free_pages = free.iter().map(|(s, e)| e - s).sum();
        Guest {
            list,
            base,
            free,
            free_pages,
            stop: AtomicBool::new(false),
            active: AtomicU64::new(0),
            booted: AtomicU64::new(0),
            throttle: AtomicU32::new(0),
            writes: AtomicU64::new(0),
        }
    }

    /// The `k`-th page the vCPUs may write.
    fn page(&self, mut k: u64) -> u64 {
        for &(s, e) in &self.free {
            if k < e - s {
                return s + k;
            }
            k -= e - s;
        }
        unreachable!("page index past the free pages")
    }

    /// Run `n` vCPUs on `scope` until [`Guest::stop`]; returns once each has made its
    /// first batch of writes (a guest runs before it is migrated), or has ended.
    pub fn start<'s>(&'s self, scope: &'s thread::Scope<'s, '_>, n: usize, seed: u64) {
        if self.free_pages == 0 || n == 0 {
            return;
        }
        // Relaxed: set before the threads are spawned (spawn orders it).
        self.active.store(n as u64, Ordering::Relaxed);
        for id in 0..n as u64 {
            scope.spawn(move || self.vcpu(id, seed));
        }
        // Relaxed: a progress count; a vCPU that ended early (it would have panicked)
        // is no longer active, which ends the wait too.
        while self.booted.load(Ordering::Relaxed) < n as u64
            && self.active.load(Ordering::Relaxed) == n as u64
        {
            thread::sleep(Duration::from_micros(100));
        }
    }

    /// One vCPU: batches of 8-byte writes into a drifting working set (and now and then
    /// anywhere), each batch under one read-side critical section; then its final state.
    fn vcpu(&self, id: u64, seed: u64) {
        // Whatever happens (even a panic), this vCPU stops counting as active.
        let _exit = Exit(&self.active);
        let reader = self.list.domain().register();
        let mut rng = Rng::new(seed ^ (id + 1).wrapping_mul(0x1234_5678_9abc));
        let n = self.free_pages;
        let ws = WORKING_SET.min(n);
        let mut ws_base = rng.below(n - ws + 1);
        let mut seq = 0u64;
        // Relaxed: a polled stop flag; the last write is ordered by `active`.
        while !self.stop.load(Ordering::Relaxed) {
            let t0 = Instant::now();
            {
                let g = reader.read_lock();
                for _ in 0..BATCH {
                    seq += 1;
                    let k = if rng.below(100) < 95 {
                        ws_base + rng.below(ws)
                    } else {
                        rng.below(n)
                    };
                    let addr = self.base + self.page(k) * PAGE_SIZE + rng.below(PAGE_SIZE / 8) * 8;
                    // Marks the page dirty for the migration.
                    let _ = self.list.write_u64(addr, (id << 56) | seq, &g);
                }
            }
            if seq == BATCH as u64 {
                // Relaxed: see `start`.
                self.booted.fetch_add(1, Ordering::Relaxed);
            }
            if rng.below(64) == 0 {
                ws_base = (ws_base + 16) % (n - ws + 1);
            }
            // Relaxed: a hint set by the migration thread.
            let pct = self.throttle.load(Ordering::Relaxed);
            if pct > 0 {
                thread::sleep(t0.elapsed() * pct / (100 - pct).max(1));
            }
        }
        // After the last pass before the stop: this vCPU's final state, at the start of
        // its own page.
        let state = self.base + self.page(id % n) * PAGE_SIZE + (id / n) * 16 % PAGE_SIZE;
        let g = reader.read_lock();
        let _ = self.list.write_u64(state, id + 1, &g);
        let _ = self.list.write_u64(state + 8, seq, &g);
        drop(g);
        // Relaxed: a statistic, read after `active` is seen at zero (`_exit` below).
        self.writes.fetch_add(seq, Ordering::Relaxed);
    }

    /// Stop the vCPUs and wait until each has made its last write; the writes they made.
    pub fn stop(&self) -> u64 {
        // Relaxed: a polled flag; `active` (below) orders the last writes.
        self.stop.store(true, Ordering::Relaxed);
        // Acquire: pairs with each vCPU's Release decrement.
        while self.active.load(Ordering::Acquire) > 0 {
            thread::sleep(Duration::from_micros(50));
        }
        // Relaxed: every vCPU added its count before its Release decrement.
        self.writes.load(Ordering::Relaxed)
    }
}

/// Decrements a vCPU count when dropped: at the end of a vCPU, or on its unwind.
struct Exit<'a>(&'a AtomicU64);

impl Drop for Exit<'_> {
    fn drop(&mut self) {
        // Release: the vCPU's writes and dirty bits happen-before the final pass's sync
        // (pairs with the Acquire load in `Guest::stop`).
        self.0.fetch_sub(1, Ordering::Release);
    }
}

/// Stops the vCPUs when dropped, so that no exit path of the migration leaves them
/// running (a scope would wait for them forever).
pub struct StopOnDrop<'g, 'a>(pub &'g Guest<'a>);

impl Drop for StopOnDrop<'_, '_> {
    fn drop(&mut self) {
        self.0.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcu_core::Domain;

    #[test]
    fn vcpus_never_write_the_taken_pages() {
        let d: Domain<Memb> = Domain::new();
        let l = RamList::new_in(&d);
        let base = l.alloc_named("ram", 64 * PAGE_SIZE).unwrap();
        let g = Guest::new(&l, base, 64, &[(0, 10), (20, 30), (60, 70)]);
        assert_eq!(g.free, [(10, 20), (30, 60)]);
        assert_eq!(g.free_pages, 40);
        thread::scope(|s| {
            g.start(s, 2, 1);
            thread::sleep(Duration::from_millis(20));
            assert!(g.stop() > 0);
        });
        let r = d.register();
        let guard = r.read_lock();
        let b = l.lookup(base, &guard).unwrap();
        for p in (0..10).chain(20..30).chain(60..64) {
            assert!(
                b.is_zero(p * PAGE_SIZE, PAGE_SIZE).unwrap(),
                "page {p} written"
            );
        }
    }
}
