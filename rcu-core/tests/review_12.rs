//! Review of the QSBR free functions' one-word fast path (`NESTING == 0`) and of the grace
//! period's wake-up and spin budget: attacks from safe code that try to open a critical
//! section of the default QSBR domain on a thread that is offline, or to leave a leader
//! parked while its reader has gone.
//!
//! Every test that could hang runs in a child process under a watchdog ([`support::isolated`])
//! or waits under one ([`support::within`]).
#![cfg(not(loom))]

mod support;

use std::panic::catch_unwind;
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use rcu_core::{qsbr, Domain, Mb};
use support::{isolated, message, within};

const WATCHDOG: Duration = Duration::from_secs(60);
/// Long enough for a grace period that is not held up to end, many times over.
const ENDS: Duration = Duration::from_secs(2);

/// What a stall hook saw when it tried to read the default QSBR domain.
#[derive(Debug, PartialEq)]
enum Read {
    /// `qsbr::rcu_read_lock` panicked, with this message.
    Refused(String),
    /// It returned a guard; whether a grace period of the domain ended while it was held.
    Guard { grace_period_ended: bool },
}

/// The call_rcu worker goes offline in the default QSBR domain before it waits for a grace
/// period (`worker_offline`), and a stall hook runs on it while it leads that wait. If a
/// callback had read the QSBR domain (which registers the worker and arms the fast path), a
/// read in the hook must still see that the thread is offline: otherwise it gets a guard
/// that grace periods ignore.
#[test]
fn a_stall_hook_on_the_offline_worker_cannot_read_the_qsbr_domain() {
    const NAME: &str = "a_stall_hook_on_the_offline_worker_cannot_read_the_qsbr_domain";
    isolated(NAME, WATCHDOG, || {
        let (tx, rx) = mpsc::channel::<Read>();
        let tx = Mutex::new(Some(tx));
        let d: &'static Domain<Mb> = Box::leak(Box::new(
            Domain::builder()
                .stall_timeout(Duration::from_millis(20))
                .stall_hook(move |_| {
                    let Some(tx) = tx.lock().unwrap().take() else {
                        return;
                    };
                    let read = match catch_unwind(qsbr::rcu_read_lock) {
                        Err(p) => Read::Refused(message(&*p)),
                        Ok(g) => {
                            // A grace period of the QSBR domain must wait for `g`.
                            let ended = within(ENDS, qsbr::synchronize_rcu).is_some();
                            drop(g);
                            Read::Guard {
                                grace_period_ended: ended,
                            }
                        }
                    };
                    tx.send(read).unwrap();
                })
                .build(),
        ));
        // A callback reads the QSBR domain: the worker registers there, online while it
        // runs callbacks, offline whenever it waits.
        let (read_tx, read_rx) = mpsc::channel::<()>();
        d.call(move || {
            drop(qsbr::rcu_read_lock());
            read_tx.send(()).unwrap();
        });
        read_rx.recv_timeout(WATCHDOG).expect("the callback ran");
        d.barrier();
        // Hold up the worker's next grace period: it leads it and calls the hook.
        let g = d.read_lock();
        d.call(|| {});
        let read = rx.recv_timeout(WATCHDOG).expect("the stall hook ran");
        drop(g);
        // A debug build trips the assertion of `enter_online` instead; a release build
        // hands out a guard that the QSBR domain's grace periods ignore.
        match read {
            Read::Refused(m) => assert!(m.contains("offline QSBR reader"), "{m}"),
            guard => panic!("a read on an offline thread was not refused: {guard:?}"),
        }
        d.barrier();
    });
}

/// Whether a grace period of the QSBR default domain ends within `wait` while `f` runs on
/// this thread; the waiting thread is left to finish after `f` and must then end within the
/// watchdog (a grace period that never ends is a failure too).
fn grace_period_ends_during(wait: Duration, f: impl FnOnce()) -> bool {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        qsbr::synchronize_rcu();
        let _ = tx.send(());
    });
    let ended = rx.recv_timeout(wait).is_ok();
    f();
    assert!(
        ended || rx.recv_timeout(WATCHDOG).is_ok(),
        "the grace period never ended"
    );
    ended
}

/// What the late destructor saw, checked by the test once the thread has exited.
static LATE_SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// A thread-local destroyed after the crate's registration owner: it calls every free
/// function of the QSBR domain there, and reads.
struct LateQsbr;

impl Drop for LateQsbr {
    fn drop(&mut self) {
        let mut seen = Vec::new();
        // Registration and online do nothing in teardown: no registration outlives a section.
        qsbr::rcu_thread_online();
        qsbr::rcu_register_thread();
        for round in 0..2 {
            let g = qsbr::rcu_read_lock();
            let inner = qsbr::rcu_read_lock();
            // Out of order: the inner guard ends the last section.
            let ended = grace_period_ends_during(Duration::from_millis(200), || {
                drop(g);
                drop(inner);
            });
            if ended {
                seen.push(format!(
                    "round {round}: a grace period ended under the guards"
                ));
            }
            // Outside every section: these must work (and find nothing to end).
            qsbr::rcu_quiescent_state();
            qsbr::rcu_thread_offline();
            qsbr::rcu_unregister_thread();
            qsbr::synchronize_rcu();
        }
        *LATE_SEEN.lock().unwrap() = seen;
    }
}

std::thread_local! {
    static LATE: core::cell::Cell<Option<LateQsbr>> = const { core::cell::Cell::new(None) };
}

/// Reads in a thread-local destructor that runs after the crate's own (each outermost
/// section gets a registration of its own, online) are protected: a grace period waits for
/// them, and the calls that would end a section early or leave the thread registered do
/// nothing there.
#[test]
fn late_destructor_reads_are_protected_and_leave_nothing_registered() {
    const NAME: &str = "late_destructor_reads_are_protected_and_leave_nothing_registered";
    isolated(NAME, WATCHDOG, || {
        let before = qsbr::default_domain().stats().readers;
        std::thread::spawn(|| {
            // First use before the crate's, so destroyed after it.
            LATE.with(|l| l.set(Some(LateQsbr)));
            drop(qsbr::rcu_read_lock());
            qsbr::rcu_quiescent_state();
        })
        .join()
        .unwrap();
        let seen = std::mem::take(&mut *LATE_SEEN.lock().unwrap());
        assert!(seen.is_empty(), "{seen:?}");
        assert_eq!(qsbr::default_domain().stats().readers, before);
    });
}
