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
