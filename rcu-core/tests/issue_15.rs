//! Issue 15's everyday API under attack: per-domain readers (`Domain::read_lock`), QSBR in
//! thread pools (`register_offline`, `Reader::online`), snapshots, and the cell writers
//! (`swap`, `compare_exchange`, `rcu`, `Retired`).
//!
//! Every test that could hang bounds its wait ([`support::within`]) or runs in a child
//! process under a watchdog ([`support::isolated`], for the ones that leak and stall a
//! domain on purpose). Use-after-free scenarios read the value they hold and check its
//! [`Canary`]; the stress test is run under AddressSanitizer by `.ci/run`.
#![cfg(not(loom))]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rcu_core::{Domain, Flavor, Mb, Memb, Qsbr, RcuBox, RcuOption, Retired};
use support::{isolated, message, within, Canary};

const WATCHDOG: Duration = Duration::from_secs(60);
/// Long enough for a grace period that is not held up to end, many times over.
const ENDS: Duration = Duration::from_secs(10);
/// How long a wait that must not end is given to end anyway.
const HELD: Duration = Duration::from_millis(200);

/// A domain no stall report will interrupt (the tests hold grace periods up on purpose).
fn quiet_domain<F: Flavor>() -> Domain<F> {
    Domain::builder()
        .stall_timeout(Duration::from_secs(3600))
        .build()
}

/// `wait` (a grace period or a barrier, on a thread of its own) must not end while
/// `holder` lives (`while_held` checks what else must hold meanwhile), and must end once
/// `holder` is dropped.
fn ends_only_after_drop<H>(
    holder: H,
    wait: impl FnOnce() + Send + 'static,
    while_held: impl FnOnce(&H),
    what: &str,
) {
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        wait();
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(HELD).is_err(),
        "ended while {what} was held"
    );
    while_held(&holder);
    drop(holder);
    assert!(
        rx.recv_timeout(ENDS).is_ok(),
        "never ended after {what} was dropped"
    );
    waiter.join().unwrap();
}

// ----- Domain::read_lock -----

/// A guard of `Domain::read_lock`, leaked on a thread that then exits: the reference read
/// through it outlives the thread, so no grace period may end (each flavor).
fn leaked_guard_keeps_its_value<F: Flavor>() {
    let d: &'static Domain<F> = Box::leak(Box::new(quiet_domain()));
    let (c, freed) = Canary::new(1);
    let cell: &'static RcuBox<Canary, F> = Box::leak(Box::new(RcuBox::new_in(c, d)));
    let v: &'static Canary =
        std::thread::spawn(move || cell.load(Box::leak(Box::new(d.read_lock()))))
            .join()
            .unwrap();
    cell.store(Canary::new(2).0);
    let barrier_ended = within(HELD, move || d.barrier()).is_some();
    assert!(!freed.load(Ordering::SeqCst), "freed under a leaked guard");
    assert_eq!(v.value, 1);
    assert!(
        !barrier_ended,
        "a grace period ignored the exited thread's leaked guard"
    );
}

#[test]
fn leaked_domain_guard_on_an_exited_thread_keeps_its_value() {
    const NAME: &str = "leaked_domain_guard_on_an_exited_thread_keeps_its_value";
    isolated(NAME, WATCHDOG, || {
        leaked_guard_keeps_its_value::<Memb>();
        leaked_guard_keeps_its_value::<Mb>();
        leaked_guard_keeps_its_value::<Qsbr>();
    });
}

/// The rayon report of issue 15: a QSBR thread that read once and then idles (a pool
/// thread waiting for work) must not stall grace periods. `Domain::read_lock` is online
/// only inside its critical sections.
#[test]
fn qsbr_thread_that_read_once_then_idles_does_not_stall() {
    let d: Domain<Qsbr> = quiet_domain();
    let cell = Arc::new(RcuBox::new_in(1u64, &d));
    let (idle_tx, idle_rx) = mpsc::channel::<()>();
    let (read_tx, read_rx) = mpsc::channel();
    let (d2, c2) = (d.clone(), cell.clone());
    let idler = std::thread::spawn(move || {
        read_tx.send(*c2.load(&d2.read_lock())).unwrap();
        idle_rx.recv().unwrap(); // idle, registered, alive
    });
    assert_eq!(read_rx.recv().unwrap(), 1);
    for v in 2..5 {
        cell.store(v);
        let d3 = d.clone();
        assert!(
            within(ENDS, move || d3.synchronize()).is_some(),
            "an idle thread that once read stalled a grace period"
        );
    }
    idle_tx.send(()).unwrap();
    idler.join().unwrap();
}

/// A QSBR guard of `Domain::read_lock` holds grace periods up while it lives (the entry is
/// online), and only then.
#[test]
fn qsbr_domain_guard_holds_grace_periods_while_it_lives() {
    let d: Domain<Qsbr> = quiet_domain();
    let d2 = d.clone();
    ends_only_after_drop(d.read_lock(), move || d2.synchronize(), |_| (), "a guard");
}

/// Waiting for a grace period inside a critical section of `Domain::read_lock` would
/// deadlock: it panics, as with every other guard, and `Retired::synchronize` then frees
/// the value through call_rcu instead of losing it.
fn synchronize_inside_panics<F: Flavor>() {
    let d: Domain<F> = quiet_domain();
    let (c, freed) = Canary::new(1);
    let cell = RcuBox::new_in(c, &d);
    let g = d.read_lock();
    let p = catch_unwind(AssertUnwindSafe(|| d.synchronize())).unwrap_err();
    // "inside a read-side critical section", or for QSBR in release builds (which count
    // nesting in debug builds only) "by an online QSBR reader".
    assert!(message(&*p).contains("deadlock"), "{}", message(&*p));
    let old = cell.swap(Canary::new(2).0);
    let p = catch_unwind(AssertUnwindSafe(|| drop(old.synchronize()))).unwrap_err();
    assert!(
        message(&*p).contains("Retired::synchronize"),
        "{}",
        message(&*p)
    );
    assert!(!freed.load(Ordering::SeqCst), "freed inside the section");
    drop(g);
    d.barrier();
    assert!(
        freed.load(Ordering::SeqCst),
        "the panicking synchronize lost the value"
    );
}

#[test]
fn synchronize_inside_a_domain_guard_panics() {
    synchronize_inside_panics::<Memb>();
    synchronize_inside_panics::<Mb>();
    synchronize_inside_panics::<Qsbr>();
}

/// A callback of a QSBR domain may read that domain: the worker's entry is online only
/// inside the callback's critical section, so it holds up no later grace period.
#[test]
fn a_qsbr_callback_that_reads_its_domain_does_not_stall_it() {
    let d: Domain<Qsbr> = quiet_domain();
    let cell = Arc::new(RcuBox::new_in(7u32, &d));
    let (tx, rx) = mpsc::channel();
    let (d2, c2) = (d.clone(), cell.clone());
    d.call(move || tx.send(*c2.load(&d2.read_lock())).unwrap());
    assert_eq!(rx.recv_timeout(ENDS).unwrap(), 7);
    cell.store(8);
    let d3 = d.clone();
    assert!(within(ENDS, move || d3.synchronize()).is_some());
}

// ----- QSBR in thread pools -----

/// A std worker pool of QSBR readers registered offline: each job comes online, reads,
/// announces quiescent states, and goes offline; idle workers never stall the writer.
#[test]
fn pool_threads_registered_offline_never_stall() {
    let d: Domain<Qsbr> = quiet_domain();
    let cell = Arc::new(RcuBox::new_in(0u64, &d));
    let (job_tx, job_rx) = mpsc::channel::<u64>();
    let job_rx = Arc::new(std::sync::Mutex::new(job_rx));
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let workers: Vec<_> = (0..3)
        .map(|_| {
            let (d, cell, job_rx, done_tx) =
                (d.clone(), cell.clone(), job_rx.clone(), done_tx.clone());
            std::thread::spawn(move || {
                let mut reader = d.register_offline();
                loop {
                    // Offline while waiting for work.
                    let Ok(job) = job_rx.lock().unwrap().recv() else {
                        return;
                    };
                    let mut online = reader.online();
                    let mut seen = 0;
                    for _ in 0..job {
                        seen = seen.max(*cell.load(&online.read_lock()));
                        online.quiescent_state();
                    }
                    drop(online);
                    done_tx.send(seen).unwrap();
                }
            })
        })
        .collect();
    for round in 1..=20u64 {
        job_tx.send(100).unwrap();
        cell.store(round);
        let d2 = d.clone();
        assert!(
            within(ENDS, move || d2.synchronize()).is_some(),
            "a pool of offline-registered readers stalled a grace period"
        );
        assert!(done_rx.recv_timeout(ENDS).unwrap() <= round);
    }
    drop(job_tx);
    for w in workers {
        w.join().unwrap();
    }
}

/// An `OnlineGuard` keeps its reader online (grace periods wait) and goes offline when
/// dropped; a forgotten one leaves the reader online: a stall, never a free under a reader.
#[test]
fn online_guard_holds_grace_periods_until_dropped() {
    let d: Domain<Qsbr> = quiet_domain();
    let mut reader = d.register_offline();
    let d2 = d.clone();
    let wait = move || d2.synchronize();
    ends_only_after_drop(reader.online(), wait, |_| (), "an online guard");
    std::mem::forget(reader.online());
    assert!(reader.is_online());
    let d3 = d.clone();
    assert!(within(HELD, move || d3.synchronize()).is_none());
    reader.thread_offline(); // lets the blocked synchronize end
}

// ----- Snapshot -----

/// A snapshot keeps its value alive across stores and grace periods (each flavor), and
/// only until it is dropped.
fn snapshot_keeps_its_value<F: Flavor>() {
    let d: Domain<F> = quiet_domain();
    let (c, freed) = Canary::new(1);
    let cell = Arc::new(RcuBox::new_in(c, &d));
    let snap = cell.snapshot();
    cell.store(Canary::new(2).0);
    let d2 = d.clone();
    let still_there = |snap: &rcu_core::Snapshot<'_, Canary, F>| {
        assert!(!freed.load(Ordering::SeqCst), "freed under a snapshot");
        assert_eq!(snap.value, 1);
    };
    ends_only_after_drop(snap, move || d2.barrier(), still_there, "a snapshot");
    assert!(freed.load(Ordering::SeqCst));
    assert_eq!(cell.snapshot().value, 2);
}

#[test]
fn snapshot_keeps_its_value_until_dropped() {
    snapshot_keeps_its_value::<Memb>();
    snapshot_keeps_its_value::<Mb>();
    snapshot_keeps_its_value::<Qsbr>();
}

/// A forgotten snapshot leaks its critical section: grace periods stall, the value stays.
#[test]
fn forgotten_snapshot_stalls_instead_of_freeing() {
    const NAME: &str = "forgotten_snapshot_stalls_instead_of_freeing";
    isolated(NAME, WATCHDOG, || {
        let d: &'static Domain<Memb> = Box::leak(Box::new(quiet_domain()));
        let (c, freed) = Canary::new(1);
        let cell: &'static RcuBox<Canary> = Box::leak(Box::new(RcuBox::new_in(c, d)));
        let snap = cell.snapshot();
        let v: &Canary = &snap;
        let v: *const Canary = v;
        std::mem::forget(snap);
        cell.store(Canary::new(2).0);
        assert!(within(HELD, move || d.barrier()).is_none());
        assert!(!freed.load(Ordering::SeqCst));
        // SAFETY: the forgotten snapshot's critical section never ends, so the value it
        // read is never freed.
        assert_eq!(unsafe { &*v }.value, 1);
    });
}

// ----- swap, compare_exchange, rcu -----

/// Concurrent `compare_exchange` loops and `rcu` updates lose no increment.
fn counters_are_exact<F: Flavor>() {
    const THREADS: u64 = 4;
    let iters: u64 = if cfg!(rcu_sanitize) { 200 } else { 2_000 };
    let d: Domain<F> = quiet_domain();
    let cas = RcuBox::new_in(0u64, &d);
    let rcu = RcuOption::new_in(None, &d);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                for _ in 0..iters {
                    let g = d.read_lock();
                    let mut cur = cas.load(&g);
                    loop {
                        match cas.compare_exchange(cur, cur + 1, &g) {
                            Ok(old) => break old.defer(),
                            Err(e) => cur = e.current,
                        }
                    }
                    drop(g);
                    drop(rcu.rcu(|v: Option<&u64>| Some(v.copied().unwrap_or(0) + 1)));
                }
            });
        }
    });
    assert_eq!(*cas.snapshot(), THREADS * iters);
    assert_eq!(rcu.snapshot().map(|v| *v), Some(THREADS * iters));
    d.barrier();
}

#[test]
fn compare_exchange_and_rcu_lose_no_update() {
    counters_are_exact::<Memb>();
    counters_are_exact::<Qsbr>();
}

/// A guard of another domain is refused by `compare_exchange` and `update` before anything
/// changes; a closure that panics in `rcu` leaves the cell as it was and ends its section.
#[test]
fn foreign_guards_and_panicking_closures_change_nothing() {
    let (a, b): (Domain<Mb>, Domain<Mb>) = (quiet_domain(), quiet_domain());
    let cell = RcuBox::new_in(1u32, &a);
    let opt = RcuOption::new_in(Some(1u32), &a);
    let g = b.read_lock();
    let cur = *cell.snapshot();
    assert!(catch_unwind(AssertUnwindSafe(|| drop(
        cell.compare_exchange(&cur, 2, &g)
    )))
    .is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| drop(
        opt.compare_exchange(None, None, &g)
    )))
    .is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| cell.update(&g, |v| v + 1))).is_err());
    drop(g);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(cell.rcu(|_| panic!("in rcu"))))).is_err());
    assert_eq!((*cell.snapshot(), opt.snapshot().map(|v| *v)), (1, Some(1)));
    // The panicking `rcu` closed its critical section: a grace period can end.
    let a2 = a.clone();
    assert!(within(ENDS, move || a2.synchronize()).is_some());
}

/// The stress test (run under AddressSanitizer by `.ci/run`): readers take snapshots and
/// read through `Domain::read_lock` while writers `swap` (retiring with `defer`, `call`,
/// `synchronize`), `compare_exchange`, `rcu`, `store` and `take`. Every value is a vector
/// of one repeated number: a reader that sees a mixed or freed vector caught a grace
/// period that ended too early.
fn stress<F: Flavor>() {
    let secs = if cfg!(rcu_sanitize) { 0.3 } else { 1.0 };
    let d: Domain<F> = quiet_domain();
    let boxed = RcuBox::new_in(vec![0u64; 16], &d);
    let opt: RcuOption<Vec<u64>, F> = RcuOption::new_in(None, &d);
    let stop = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let check = |v: &[u64]| assert!(v.iter().all(|&x| x == v[0]), "torn or freed: {v:?}");
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let snap = boxed.snapshot();
                    check(&snap);
                    let g = d.read_lock();
                    if let Some(v) = opt.load(&g) {
                        check(v);
                    }
                    check(boxed.load(&g));
                    drop(g);
                    check(&snap);
                    if let Some(s) = opt.snapshot() {
                        check(&s);
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        for w in 0..2u64 {
            let (boxed, opt, d, stop) = (&boxed, &opt, &d, &stop);
            s.spawn(move || {
                let mut n = w << 32;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let retired: Retired<Vec<u64>, F> = boxed.swap(vec![n; 16]);
                    match n % 3 {
                        0 => retired.defer(),
                        1 => retired.call(|b| assert!(b.iter().all(|&x| x == b[0]))),
                        _ => {
                            let b = retired.synchronize();
                            assert!(b.iter().all(|&x| x == b[0]));
                        }
                    }
                    let g = d.read_lock();
                    let cur = boxed.load(&g);
                    if let Ok(old) = boxed.compare_exchange(cur, vec![n + 1; 16], &g) {
                        drop(old);
                    }
                    drop(g);
                    drop(boxed.rcu(|v| vec![v[0] + 1; 16]));
                    match n % 4 {
                        0 => opt.store(Some(vec![n; 8])),
                        1 => drop(opt.take()),
                        2 => drop(opt.swap(Some(vec![n; 4]))),
                        _ => drop(opt.rcu(|v| v.map(|v| vec![v[0] + 1; v.len()]))),
                    }
                }
            });
        }
        let start = Instant::now();
        while start.elapsed().as_secs_f64() < secs {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    d.barrier();
    assert!(reads.load(Ordering::Relaxed) > 0);
}

#[test]
fn stress_readers_vs_swap_compare_exchange_rcu() {
    stress::<Memb>();
    stress::<Mb>();
    stress::<Qsbr>();
}
