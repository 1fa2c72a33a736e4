//! call_rcu, defer_drop and barrier: exactly-once execution, ordering against barrier,
//! nested callbacks, panicking callbacks, and callbacks outliving their producer thread.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use rcu_core::{Domain, Mb, Memb, Qsbr};

fn million() -> usize {
    if cfg!(miri) {
        2_000
    } else if cfg!(rcu_sanitize) {
        100_000
    } else {
        1_000_000
    }
}

#[test]
fn a_million_callbacks_each_run_exactly_once() {
    let n = million();
    let d: Domain<Memb> = Domain::new();
    let hits: Arc<Vec<AtomicU8>> = Arc::new((0..n).map(|_| AtomicU8::new(0)).collect());
    for i in 0..n {
        let hits = hits.clone();
        d.call(move || {
            hits[i].fetch_add(1, Ordering::Relaxed);
        });
    }
    d.barrier();
    let wrong = hits
        .iter()
        .filter(|h| h.load(Ordering::Relaxed) != 1)
        .count();
    assert_eq!(wrong, 0, "callbacks not run exactly once");
    let s = d.stats();
    assert_eq!(s.callbacks_queued, n as u64);
    assert_eq!(s.callbacks_run, n as u64);
    assert_eq!(s.backlog, 0);
    assert!(s.grace_periods >= 1);
}

#[test]
fn two_producers_then_barrier() {
    let n = million() / 2;
    let d: Domain<Mb> = Domain::new();
    let count = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (d, count) = (d.clone(), count.clone());
            s.spawn(move || {
                for _ in 0..n {
                    let c = count.clone();
                    d.call(move || {
                        c.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
    });
    d.barrier();
    assert_eq!(count.load(Ordering::Relaxed), 2 * n);
}

#[test]
fn barrier_orders_against_earlier_callbacks() {
    // Every callback queued before `barrier()` has run when it returns, round after round.
    let d: Domain<Memb> = Domain::new();
    let count = Arc::new(AtomicUsize::new(0));
    for round in 1..=50usize {
        for _ in 0..round {
            let c = count.clone();
            d.call(move || {
                c.fetch_add(1, Ordering::Relaxed);
            });
        }
        d.barrier();
        assert_eq!(count.load(Ordering::Relaxed), round * (round + 1) / 2);
    }
}

/// `barrier` waits for callbacks queued before it, not for those they queue (as Linux's
/// `rcu_barrier`): one barrier per level of nesting.
#[test]
fn a_barrier_per_level_covers_callbacks_queued_by_callbacks() {
    let d: Domain<Memb> = Domain::new();
    let depth3_done = Arc::new(AtomicBool::new(false));
    let (d1, flag) = (d.clone(), depth3_done.clone());
    d.call(move || {
        let (d2, flag) = (d1.clone(), flag.clone());
        d1.call(move || {
            d2.call(move || flag.store(true, Ordering::Release));
        });
    });
    for _ in 0..3 {
        d.barrier();
    }
    assert!(depth3_done.load(Ordering::Acquire));
}

#[test]
fn barrier_with_other_threads_callbacks_that_exited() {
    // Callbacks from a thread that exits before they run are not lost.
    let d: Domain<Qsbr> = Domain::new();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..4 {
        let (d, count) = (d.clone(), count.clone());
        std::thread::spawn(move || {
            for _ in 0..1000 {
                let c = count.clone();
                d.call(move || {
                    c.fetch_add(1, Ordering::Relaxed);
                });
            }
        })
        .join()
        .unwrap();
    }
    d.barrier();
    assert_eq!(count.load(Ordering::Relaxed), 4000);
}

#[test]
fn panicking_callback_is_counted_and_the_worker_goes_on() {
    let d: Domain<Memb> = Domain::new();
    let after = Arc::new(AtomicBool::new(false));
    d.call(|| panic!("callback panic (expected by the test)"));
    let a = after.clone();
    d.call(move || a.store(true, Ordering::Release));
    d.barrier();
    assert!(
        after.load(Ordering::Acquire),
        "worker stopped after a panic"
    );
    let s = d.stats();
    assert_eq!(s.callbacks_panicked, 1);
    assert_eq!(s.callbacks_run, 2);
    // And the worker still serves new callbacks.
    let a = after.clone();
    a.store(false, Ordering::Release);
    d.call(move || a.store(true, Ordering::Release));
    d.barrier();
    assert!(after.load(Ordering::Acquire));
}

struct DropCount(Arc<AtomicU64>);
impl Drop for DropCount {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn defer_drop_drops_after_a_grace_period() {
    let d: Domain<Memb> = Domain::new();
    let drops = Arc::new(AtomicU64::new(0));
    let reader = d.register();
    let guard = reader.read_lock();
    for _ in 0..100 {
        d.defer_drop(Box::new(DropCount(drops.clone())));
    }
    // A reader is inside a critical section that began before the defers: nothing may
    // be dropped yet, however long we wait.
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(drops.load(Ordering::Relaxed), 0);
    drop(guard);
    d.barrier();
    assert_eq!(drops.load(Ordering::Relaxed), 100);
}

#[test]
fn dropping_the_domain_runs_what_is_left() {
    let drops = Arc::new(AtomicU64::new(0));
    {
        let d: Domain<Mb> = Domain::new();
        for _ in 0..1000 {
            d.defer_drop(DropCount(drops.clone()));
        }
    }
    // The worker drains the queue after the last handle is gone; wait for it.
    let t = std::time::Instant::now();
    while drops.load(Ordering::Relaxed) < 1000 && t.elapsed().as_secs() < 10 {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert_eq!(
        drops.load(Ordering::Relaxed),
        1000,
        "callbacks lost at domain drop"
    );
}

#[test]
fn large_closures_are_boxed_and_run() {
    let d: Domain<Memb> = Domain::new();
    let sum = Arc::new(AtomicU64::new(0));
    let big = [7u64; 32];
    let s = sum.clone();
    d.call(move || {
        s.fetch_add(big.iter().sum::<u64>(), Ordering::Relaxed);
    });
    d.barrier();
    assert_eq!(sum.load(Ordering::Relaxed), 7 * 32);
}

#[test]
fn opt_in_blocking_limit_bounds_the_backlog() {
    const MAX: u64 = 1024;
    let d: Domain<Memb> = Domain::builder().blocking_backlog_limit(MAX).build();
    // A reader holds up grace periods until the producer has been made to wait, so the
    // backlog reaches the limit whatever the speeds of the threads.
    let entered = Arc::new(std::sync::Barrier::new(2));
    let guard_thread = {
        let (d, entered) = (d.clone(), entered.clone());
        std::thread::spawn(move || {
            let r = d.register();
            let g = r.read_lock();
            entered.wait();
            while d.stats().throttled == 0 {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            drop(g);
        })
    };
    entered.wait();
    let n = if cfg!(miri) { 3_000 } else { 20_000 };
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..n {
        let c = count.clone();
        d.call(move || {
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
    guard_thread.join().unwrap();
    d.barrier();
    let s = d.stats();
    assert_eq!(count.load(Ordering::Relaxed), n);
    assert!(s.throttled >= 1, "the producer was never throttled: {s:?}");
    // One chunk (256) may be queued past the bound before the check.
    assert!(s.peak_backlog <= MAX + 256, "backlog not bounded: {s:?}");
}

#[test]
fn producer_inside_a_critical_section_is_never_throttled() {
    let d: Domain<Memb> = Domain::builder().blocking_backlog_limit(64).build();
    let r = d.register();
    let g = r.read_lock();
    let count = Arc::new(AtomicUsize::new(0));
    for _ in 0..5_000 {
        let c = count.clone();
        d.call(move || {
            c.fetch_add(1, Ordering::Relaxed);
        });
    }
    // Waiting here would have deadlocked: our own critical section blocks the worker.
    assert_eq!(d.stats().throttled, 0);
    drop(g);
    d.barrier();
    assert_eq!(count.load(Ordering::Relaxed), 5_000);
}

#[test]
fn by_default_producers_never_wait() {
    // The reader holds up every grace period: nothing can run, the backlog only grows.
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let g = r.read_lock();
    let n = if cfg!(miri) { 1_000 } else { 3 * 65_536 };
    for _ in 0..n {
        d.call(|| ());
    }
    let s = d.stats();
    assert_eq!((s.throttled, s.callbacks_run), (0, 0));
    assert_eq!(s.backlog, n);
    drop(g);
    d.barrier();
    assert_eq!(d.stats().callbacks_run, n);
}
