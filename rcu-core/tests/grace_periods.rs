//! Grace-period sharing, polled grace periods, misuse detection, registration churn and
//! stall reports.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use rcu_core::{Domain, Mb, Memb, Qsbr, StallReport};

#[test]
fn concurrent_synchronizers_share_grace_periods() {
    const N: usize = 16;
    let d: Domain<Memb> = Domain::new();
    // A reader holds a critical section so that all synchronizers pile up behind it.
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(Barrier::new(2));
    let reader = {
        let (d, release, entered) = (d.clone(), release.clone(), entered.clone());
        std::thread::spawn(move || {
            let r = d.register();
            let g = r.read_lock();
            entered.wait();
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            drop(g);
        })
    };
    entered.wait();
    let before = d.stats().grace_periods;
    let start = Arc::new(Barrier::new(N + 1));
    let syncs: Vec<_> = (0..N)
        .map(|_| {
            let (d, start) = (d.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                d.synchronize();
            })
        })
        .collect();
    start.wait();
    // Give every synchronizer time to queue up behind the blocked grace period.
    std::thread::sleep(Duration::from_millis(300));
    release.store(true, Ordering::Release);
    for s in syncs {
        s.join().unwrap();
    }
    reader.join().unwrap();
    let used = d.stats().grace_periods - before;
    assert!(used >= 1);
    assert!(
        used <= 4,
        "{N} concurrent synchronize() calls used {used} grace periods"
    );
}

#[test]
fn synchronize_waits_for_a_preexisting_reader() {
    for force in [false, true] {
        let d: Domain<Memb> = Domain::builder().force_fallback(force).build();
        let done = Arc::new(AtomicBool::new(false));
        let r = d.register();
        let g = r.read_lock();
        let t = {
            let (d, done) = (d.clone(), done.clone());
            std::thread::spawn(move || {
                d.synchronize();
                done.store(true, Ordering::Release);
            })
        };
        std::thread::sleep(Duration::from_millis(30));
        assert!(
            !done.load(Ordering::Acquire),
            "grace period ended under a reader"
        );
        drop(g);
        t.join().unwrap();
        assert!(done.load(Ordering::Acquire));
    }
}

#[test]
fn qsbr_synchronize_waits_for_online_readers_only() {
    let d: Domain<Qsbr> = Domain::new();
    let done = Arc::new(AtomicBool::new(false));
    let mut r = d.register();
    let t = {
        let (d, done) = (d.clone(), done.clone());
        std::thread::spawn(move || {
            d.synchronize();
            done.store(true, Ordering::Release);
        })
    };
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        !done.load(Ordering::Acquire),
        "grace period ended before a quiescent state"
    );
    // A QSBR reader announces quiescent states again and again, as a real one does: one
    // announcement may read the grace-period counter before the new value reaches it (no
    // fence orders that load, in liburcu either), and Miri's weak-memory emulation does
    // return such stale values for as long as nothing else orders them.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !done.load(Ordering::Acquire) {
        assert!(
            std::time::Instant::now() < deadline,
            "the grace period did not end after quiescent states"
        );
        r.quiescent_state();
        std::thread::yield_now();
    }
    t.join().unwrap();
    // Offline readers are not waited for.
    let off = r.offline();
    d.synchronize();
    drop(off);
    // Reader::synchronize goes offline for the wait itself.
    r.synchronize();
    assert!(r.is_online());
}

#[test]
fn polled_grace_periods() {
    let d: Domain<Mb> = Domain::new();
    let r = d.register();
    let g = r.read_lock();
    let cookie = d.start_poll();
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        !d.poll(cookie),
        "poll says done while a pre-existing reader is inside"
    );
    drop(g);
    let t = std::time::Instant::now();
    while !d.poll(cookie) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "polled grace period never ended"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // A cookie whose grace period already elapsed needs no waiting.
    let before = d.stats().grace_periods;
    d.cond_synchronize(cookie);
    assert_eq!(d.stats().grace_periods, before);
    // get_state does not start anything, but a later synchronize satisfies it.
    let c2 = d.get_state();
    d.synchronize();
    assert!(d.poll(c2));
}

/// Guards may be dropped in any order: dropping the outer guard of a nested pair must not
/// end the critical section while the inner one lives (the nesting depth is counted, not
/// inferred from which guard is dropped).
fn out_of_order_drop_keeps_the_reader_inside<F: rcu_core::Flavor>(d: Domain<F>) {
    let r = d.register();
    let outer = r.read_lock();
    let inner = r.read_lock();
    drop(outer);
    assert!(r.in_critical_section());
    let cookie = d.start_poll();
    std::thread::sleep(Duration::from_millis(30));
    assert!(
        !d.poll(cookie),
        "{}: a grace period ended while the inner guard was live",
        d.flavor_name()
    );
    drop(inner);
    assert!(!r.in_critical_section());
    d.cond_synchronize(cookie);
    assert!(d.poll(cookie));
}

#[test]
fn memb_out_of_order_guard_drop_keeps_the_reader_inside() {
    out_of_order_drop_keeps_the_reader_inside(Domain::<Memb>::new());
    out_of_order_drop_keeps_the_reader_inside(
        Domain::<Memb>::builder().force_fallback(true).build(),
    );
}

#[test]
fn mb_out_of_order_guard_drop_keeps_the_reader_inside() {
    out_of_order_drop_keeps_the_reader_inside(Domain::<Mb>::new());
}

#[test]
#[should_panic(expected = "inside a read-side critical section")]
fn synchronize_inside_critical_section_panics() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let _g = r.read_lock();
    d.synchronize();
}

#[test]
#[should_panic(expected = "inside a read-side critical section")]
fn barrier_inside_critical_section_panics() {
    let d: Domain<Mb> = Domain::new();
    let r = d.register();
    let _g = r.read_lock();
    d.barrier();
}

#[test]
#[should_panic(expected = "online QSBR reader")]
fn qsbr_domain_synchronize_from_online_reader_panics() {
    let d: Domain<Qsbr> = Domain::new();
    let _r = d.register();
    d.synchronize();
}

#[test]
#[should_panic(expected = "inside a read-side critical section")]
fn global_synchronize_rcu_inside_critical_section_panics() {
    let _g = rcu_core::rcu_read_lock();
    rcu_core::synchronize_rcu();
}

#[test]
fn synchronize_inside_a_callback_panics_and_is_counted() {
    let d: Domain<Memb> = Domain::new();
    let d2 = d.clone();
    let msg = Arc::new(Mutex::new(String::new()));
    let m = msg.clone();
    d.call(move || {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| d2.synchronize()));
        let e = r.expect_err("synchronize inside a callback must panic");
        *m.lock().unwrap() = e.downcast_ref::<String>().cloned().unwrap_or_default();
    });
    d.barrier();
    assert!(
        msg.lock().unwrap().contains("deadlock"),
        "{}",
        msg.lock().unwrap()
    );
}

#[test]
fn threads_exiting_while_registered_do_not_block_grace_periods() {
    let d: Domain<Memb> = Domain::new();
    let base = d.stats().readers;
    for _ in 0..8 {
        let d = d.clone();
        std::thread::spawn(move || {
            let r = d.register();
            let _g = r.read_lock();
            // Exits with the guard and the reader dropped in TLS-free order.
        })
        .join()
        .unwrap();
    }
    // Default domain: registration on first use, unregistration at thread exit.
    for _ in 0..8 {
        std::thread::spawn(|| {
            let g = rcu_core::rcu_read_lock();
            drop(g);
        })
        .join()
        .unwrap();
    }
    d.synchronize();
    rcu_core::synchronize_rcu();
    assert_eq!(d.stats().readers, base);
}

#[test]
fn leaked_guard_produces_a_stall_report_naming_the_thread() {
    let reports: Arc<Mutex<Vec<StallReport>>> = Arc::new(Mutex::new(Vec::new()));
    let rep = reports.clone();
    let d: Domain<Memb> = Domain::builder()
        .stall_timeout(Duration::from_millis(50))
        .stall_hook(move |r| rep.lock().unwrap().push(r.clone()))
        .build();
    let leaked = Arc::new(Barrier::new(2));
    let finish = Arc::new(AtomicBool::new(false));
    let leaker = {
        let (d, leaked, finish) = (d.clone(), leaked.clone(), finish.clone());
        std::thread::Builder::new()
            .name("leaky-reader".into())
            .spawn(move || {
                let r = d.register();
                std::mem::forget(r.read_lock());
                leaked.wait();
                while !finish.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(5));
                }
                // Dropping the registration releases the grace period.
                drop(r);
            })
            .unwrap()
    };
    leaked.wait();
    let sync = {
        let d = d.clone();
        std::thread::spawn(move || d.synchronize())
    };
    let t = std::time::Instant::now();
    while reports.lock().unwrap().is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no stall report");
        std::thread::sleep(Duration::from_millis(5));
    }
    finish.store(true, Ordering::Release);
    sync.join().unwrap();
    leaker.join().unwrap();
    let reports = reports.lock().unwrap();
    let r = &reports[0];
    assert!(r.waited >= Duration::from_millis(50));
    assert_eq!(r.readers.len(), 1);
    assert_eq!(r.readers[0].thread_name.as_deref(), Some("leaky-reader"));
    let line = r.to_string();
    assert!(
        line.contains("leaky-reader") && line.contains("stalled"),
        "{line}"
    );
    assert!(d.stats().stalls >= 1);
}

#[test]
fn memb_reports_the_protocol_in_force() {
    let d: Domain<Memb> = Domain::new();
    assert_eq!(d.uses_membarrier(), rcu_core::membarrier::available());
    let f: Domain<Memb> = Domain::builder().force_fallback(true).build();
    assert!(!f.uses_membarrier());
    assert_eq!(f.protocol(), "mb");
    assert_eq!(Domain::<Qsbr>::new().protocol(), "qsbr");
}
