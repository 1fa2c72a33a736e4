//! Review of issue 15's everyday API: attacks a hostile safe-code user would try on the
//! per-domain readers, the QSBR pool guards, snapshots and the cell writers.
//!
//! Every test that could hang runs its wait under a watchdog ([`support::within`]) or in a
//! child process ([`support::isolated`]) when it may stall a process-wide default domain.
#![cfg(not(loom))]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::time::Duration;

use rcu_core::{qsbr, Domain, Flavor, Mb, Memb, Qsbr, RcuBox, RcuOption};
use support::{isolated, message, within, Canary};

const WATCHDOG: Duration = Duration::from_secs(60);
/// Long enough for a grace period that is not held up to end, many times over.
const ENDS: Duration = Duration::from_secs(10);

/// A domain no stall report will interrupt.
fn quiet_domain<F: Flavor>() -> Domain<F> {
    Domain::builder()
        .stall_timeout(Duration::from_secs(3600))
        .build()
}

/// `f` must panic (not hang) with a message that names the deadlock.
fn panics_with_deadlock(what: &str, f: impl FnOnce()) {
    let p = catch_unwind(AssertUnwindSafe(f)).expect_err(what);
    assert!(
        message(&*p).contains("deadlock"),
        "{what}: {}",
        message(&*p)
    );
}

/// Waiting for the default domains inside a snapshot of one of their cells (the snapshot's
/// critical section is on the per-domain registration, not on the free functions' one)
/// panics instead of waiting for itself.
#[test]
fn default_domain_waits_inside_a_snapshot_panic() {
    const NAME: &str = "default_domain_waits_inside_a_snapshot_panic";
    isolated(NAME, WATCHDOG, || {
        let cell = RcuBox::new(1u32);
        let snap = cell.snapshot();
        panics_with_deadlock("synchronize_rcu", rcu_core::synchronize_rcu);
        panics_with_deadlock("rcu_barrier", rcu_core::rcu_barrier);
        let old = cell.swap(2);
        panics_with_deadlock("Retired::synchronize", || drop(old.synchronize()));
        assert_eq!(*snap, 1);
        drop(snap);
        rcu_core::synchronize_rcu();
        rcu_core::rcu_barrier();
    });
}

/// The same in the default QSBR domain, whose `synchronize_rcu` takes an online caller
/// offline for the wait: when the wait is refused (a snapshot is open), the caller must be
/// left as it was, online, so its own critical sections still work afterwards.
#[test]
fn qsbr_synchronize_refused_inside_a_snapshot_leaves_the_thread_online() {
    const NAME: &str = "qsbr_synchronize_refused_inside_a_snapshot_leaves_the_thread_online";
    isolated(NAME, WATCHDOG, || {
        qsbr::rcu_register_thread();
        let cell = RcuBox::new_in(1u32, qsbr::default_domain());
        let snap = cell.snapshot();
        panics_with_deadlock("qsbr::synchronize_rcu", qsbr::synchronize_rcu);
        drop(snap);
        // Still online: a critical section of the free functions is allowed.
        let g = catch_unwind(qsbr::rcu_read_lock).expect("left offline by the refused wait");
        assert_eq!(*cell.load(&g), 1);
        drop(g);
        qsbr::synchronize_rcu();
    });
}

/// The same for an explicit QSBR reader's `synchronize` (which also goes offline for the
/// wait) inside a critical section of the domain taken through `Domain::read_lock`.
#[test]
fn reader_synchronize_refused_leaves_the_reader_online() {
    let d: Domain<Qsbr> = quiet_domain();
    let mut reader = d.register();
    let g = d.read_lock();
    panics_with_deadlock("Reader::synchronize", || reader.synchronize());
    drop(g);
    assert!(reader.is_online(), "left offline by the refused wait");
    drop(reader.read_lock());
}

/// An `rcu` closure that waits for its own domain panics (the loop holds a critical
/// section), and nothing is lost.
#[test]
fn rcu_closure_that_waits_panics() {
    fn run<F: Flavor>() {
        let d: Domain<F> = quiet_domain();
        let (c, freed) = Canary::new(1);
        let cell = RcuBox::new_in(c, &d);
        let d2 = d.clone();
        let p = within(ENDS, move || {
            catch_unwind(AssertUnwindSafe(|| {
                drop(cell.rcu(|v| {
                    d2.synchronize();
                    Canary::new(v.value + 1).0
                }))
            }))
            .map_err(|p| message(&*p))
        })
        .expect("hung inside rcu");
        assert!(p.expect_err("no panic").contains("deadlock"));
        d.barrier();
        assert!(freed.load(Ordering::SeqCst), "the cell's value was lost");
    }
    run::<Memb>();
    run::<Mb>();
    run::<Qsbr>();
}

/// A pool thread registered offline that goes offline again around a blocking call (the
/// `offline()` pattern of a thread that was online) must stay offline when the guard
/// drops: otherwise it idles online and stalls every grace period.
#[test]
fn offline_guard_of_an_offline_reader_leaves_it_offline() {
    let d: Domain<Qsbr> = quiet_domain();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<bool>();
    let d2 = d.clone();
    let t = std::thread::spawn(move || {
        let mut reader = d2.register_offline();
        drop(reader.offline()); // e.g. a helper that goes offline around a wait
        ready_tx.send(reader.is_online()).unwrap();
        stop_rx.recv().unwrap(); // idles
    });
    let online = ready_rx.recv().unwrap();
    let d3 = d.clone();
    let synced = within(ENDS, move || d3.synchronize()).is_some();
    stop_tx.send(()).unwrap();
    t.join().unwrap();
    assert!(
        !online,
        "the offline guard brought an offline reader online"
    );
    assert!(synced, "an idle pool thread stalled the grace period");
}

/// Nested online guards: the inner one must not take the reader offline under the outer.
#[test]
fn nested_online_guards_keep_the_outer_one_online() {
    let d: Domain<Qsbr> = quiet_domain();
    let cell = RcuBox::new_in(1u32, &d);
    let mut reader = d.register_offline();
    let mut outer = reader.online();
    drop(outer.online());
    assert!(outer.is_online(), "the inner guard took the reader offline");
    let r = catch_unwind(AssertUnwindSafe(|| *cell.load(&outer.read_lock())));
    assert_eq!(r.ok(), Some(1));
    drop(outer);
    assert!(!reader.is_online());
}

/// A forgotten snapshot whose domain then ends: the thread goes on reading other domains
/// (created and dropped in a loop) and exits without touching the freed registry.
#[test]
fn forgotten_snapshot_of_an_ended_domain() {
    const NAME: &str = "forgotten_snapshot_of_an_ended_domain";
    isolated(NAME, WATCHDOG, || {
        std::thread::spawn(|| {
            let d: Domain<Qsbr> = quiet_domain();
            let cell = RcuOption::new_in(Some(1u32), &d);
            std::mem::forget(cell.snapshot());
            drop(cell);
            drop(d);
            for i in 0..200u32 {
                let d: Domain<Memb> = Domain::new();
                let cell = RcuBox::new_in(i, &d);
                assert_eq!(*cell.snapshot(), i);
            }
        })
        .join()
        .unwrap();
    });
}
