//! Regression tests for issue 10: use-after-free from safe code, deadlocks and a dying worker,
//! each scenario reproduced as the adversarial review found it. Test names start with the
//! scenario's number in the issue.
//!
//! Scenarios that stall or deadlock a process-wide default domain, or fork, run in a child
//! process under a watchdog ([`support::isolated`]); the others use a private domain and a
//! bounded wait ([`support::within`]). A hang is always a test failure, never a stuck run.
//! Use-after-free scenarios also read the value they hold (AddressSanitizer reports the access
//! when a grace period was too short) and check its [`Canary`] (a plain run detects it too).
#![cfg(not(loom))]

mod support;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::Duration;

use rcu_core::{qsbr, Domain, Memb, Qsbr, RcuBox, RcuOption};
use support::{isolated, message, within, Canary};

const WATCHDOG: Duration = Duration::from_secs(60);

// ----- 1. Reading while offline (QSBR) -----

/// A QSBR reader of `d` that is offline tries to read `cell` while a writer replaces and
/// frees the value: `read_lock` must refuse (panic), never hand out a reference that grace
/// periods ignore.
fn offline_reader_cannot_read(go_offline: impl FnOnce(&mut rcu_core::Reader<Qsbr>)) {
    let d: Domain<Qsbr> = Domain::new();
    let (c, freed) = Canary::new(1);
    let cell = Arc::new(RcuBox::new_in(c, &d));
    let mut reader = d.register();
    go_offline(&mut reader);
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let g = reader.read_lock();
        let v = cell.load(&g);
        let cell2 = cell.clone();
        // A grace period does not wait for an offline reader: the old value is freed.
        let replaced = within(Duration::from_secs(5), move || {
            drop(cell2.replace_sync(Canary::new(2).0))
        })
        .is_some();
        (replaced, v.value, freed.load(Ordering::SeqCst))
    }));
    match outcome {
        Ok(r) => {
            panic!("read_lock while offline handed out a guard: (replaced, value, freed) = {r:?}")
        }
        Err(p) => assert!(message(&*p).contains("offline"), "{}", message(&*p)),
    }
    // The reader is still usable once online again.
    reader.thread_online();
    assert_eq!(cell.load(&reader.read_lock()).value, 1);
}

#[test]
fn s1_reader_thread_offline_then_read_lock_panics() {
    offline_reader_cannot_read(|r| r.thread_offline());
}

#[test]
fn s1_forgotten_offline_guard_then_read_lock_panics() {
    offline_reader_cannot_read(|r| std::mem::forget(r.offline()));
}

#[test]
fn s1_offline_again_after_an_online_guard_then_read_lock_panics() {
    offline_reader_cannot_read(|r| {
        r.thread_offline();
        drop(r.online());
    });
}

#[test]
fn s1_offline_guard_of_an_offline_reader_then_read_lock_panics() {
    offline_reader_cannot_read(|r| {
        r.thread_offline();
        drop(r.offline());
    });
}

/// Found by review of the key-in-register check: `quiescent_state` on an offline reader
/// brought its record online behind the key's back, so `offline()` did nothing and a
/// grace period waited for a reader inside `offline()`.
#[test]
fn s1_quiescent_state_of_an_offline_reader_leaves_it_offline() {
    let d: Domain<Qsbr> = Domain::new();
    let mut reader = d.register_offline();
    reader.quiescent_state();
    assert!(!reader.is_online());
    let refused = catch_unwind(AssertUnwindSafe(|| drop(reader.read_lock())));
    assert!(
        refused.is_err(),
        "read_lock on an offline reader handed out a guard"
    );
    let off = reader.offline();
    let (tx, rx) = std::sync::mpsc::channel();
    let d2 = d.clone();
    let t = std::thread::spawn(move || {
        d2.synchronize();
        tx.send(()).unwrap();
    });
    let gp_done = rx.recv_timeout(WATCHDOG).is_ok();
    drop(off);
    reader.thread_offline();
    t.join().unwrap();
    assert!(
        gp_done,
        "a grace period waited for a reader inside offline()"
    );
    // And online again, it reads and announces as before.
    reader.thread_online();
    drop(reader.read_lock());
    reader.quiescent_state();
    assert!(reader.is_online());
}

#[test]
fn s1_a_reader_brought_online_by_a_forgotten_online_guard_is_waited_for() {
    let d: Domain<Qsbr> = Domain::new();
    let (c, freed) = Canary::new(1);
    let cell = Arc::new(RcuBox::new_in(c, &d));
    let mut reader = d.register_offline();
    std::mem::forget(reader.online());
    assert!(reader.is_online());
    let g = reader.read_lock();
    let v = cell.load(&g);
    let cell2 = cell.clone();
    // The grace period waits for this online reader (until it goes offline below).
    let (tx, rx) = std::sync::mpsc::channel();
    let writer = std::thread::spawn(move || {
        drop(cell2.replace_sync(Canary::new(2).0));
        tx.send(()).unwrap();
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(200)).is_err(),
        "a grace period ignored an online reader"
    );
    assert_eq!(v.value, 1);
    assert!(!freed.load(Ordering::SeqCst));
    drop(g);
    reader.thread_offline();
    assert!(
        rx.recv_timeout(WATCHDOG).is_ok(),
        "the grace period did not end once the reader went offline"
    );
    writer.join().unwrap();
}

#[test]
fn s1_qsbr_rcu_thread_offline_then_rcu_read_lock_panics() {
    isolated(
        "s1_qsbr_rcu_thread_offline_then_rcu_read_lock_panics",
        WATCHDOG,
        || {
            let (c, freed) = Canary::new(1);
            let cell: &'static RcuBox<Canary, Qsbr> =
                Box::leak(Box::new(RcuBox::new_in(c, qsbr::default_domain())));
            qsbr::rcu_register_thread();
            qsbr::rcu_thread_offline();
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                let g = qsbr::rcu_read_lock();
                let v = cell.load(&g);
                let replaced = within(Duration::from_secs(5), move || {
                    drop(cell.replace_sync(Canary::new(2).0))
                })
                .is_some();
                (replaced, v.value, freed.load(Ordering::SeqCst))
            }));
            match outcome {
                Ok(r) => panic!("rcu_read_lock while offline handed out a guard: {r:?}"),
                Err(p) => assert!(message(&*p).contains("offline"), "{}", message(&*p)),
            }
            // The failed attempt left no critical section behind.
            qsbr::rcu_thread_online();
            qsbr::rcu_quiescent_state();
            qsbr::synchronize_rcu();
        },
    );
}

// ----- 2. rcu_thread_online() inside a critical section -----

#[test]
fn s2_qsbr_rcu_thread_online_inside_a_critical_section_panics() {
    isolated(
        "s2_qsbr_rcu_thread_online_inside_a_critical_section_panics",
        WATCHDOG,
        || {
            let (c, freed) = Canary::new(1);
            let cell: &'static RcuBox<Canary, Qsbr> =
                Box::leak(Box::new(RcuBox::new_in(c, qsbr::default_domain())));
            qsbr::rcu_register_thread();
            let g = qsbr::rcu_read_lock();
            let v = cell.load(&g);
            // A writer's grace period is now waiting for this (online) thread.
            let writer = std::thread::spawn(move || drop(cell.replace_sync(Canary::new(2).0)));
            std::thread::sleep(Duration::from_millis(50));
            let r = catch_unwind(qsbr::rcu_thread_online);
            // Had it acted as a quiescent state, the writer could have freed `v` by now.
            std::thread::sleep(Duration::from_millis(50));
            assert_eq!(v.value, 1);
            assert!(!freed.load(Ordering::SeqCst), "value freed under a reader");
            assert!(
                r.is_err(),
                "rcu_thread_online inside a critical section did not panic"
            );
            drop(g);
            qsbr::rcu_quiescent_state();
            writer.join().unwrap();
            assert!(freed.load(Ordering::SeqCst));
        },
    );
}

// ----- 3. Thread exit with a live QSBR guard (release builds too) -----

#[test]
fn s3_thread_exit_with_a_leaked_qsbr_guard_stays_registered() {
    isolated(
        "s3_thread_exit_with_a_leaked_qsbr_guard_stays_registered",
        WATCHDOG,
        || {
            let (c, freed) = Canary::new(1);
            let cell: &'static RcuBox<Canary, Qsbr> =
                Box::leak(Box::new(RcuBox::new_in(c, qsbr::default_domain())));
            let v: &'static Canary = std::thread::spawn(move || {
                let g: &'static qsbr::RcuReadGuard = Box::leak(Box::new(qsbr::rcu_read_lock()));
                cell.load(g)
            })
            .join()
            .unwrap();
            // The thread is gone but its guard (and `v`) live on: no grace period may end.
            let replaced = within(Duration::from_millis(500), move || {
                drop(cell.replace_sync(Canary::new(2).0))
            })
            .is_some();
            assert_eq!(v.value, 1, "value freed under a leaked guard");
            assert!(
                !freed.load(Ordering::SeqCst),
                "value freed under a leaked guard"
            );
            assert!(
                !replaced,
                "a grace period ignored an exited thread's live guard"
            );
        },
    );
}

static LATE_CELL: OnceLock<RcuBox<Canary, Qsbr>> = OnceLock::new();
static LATE_FREED: OnceLock<Arc<AtomicBool>> = OnceLock::new();
/// 0: not run; 1: the guard held; 2: a grace period ended under it.
static LATE_OUTCOME: AtomicUsize = AtomicUsize::new(0);

/// Held in a thread-local that is destroyed after the runtime's own (it is initialised
/// first): a QSBR guard and a reference read through it.
struct LateGuard(Option<(qsbr::RcuReadGuard, &'static Canary)>);

impl Drop for LateGuard {
    fn drop(&mut self) {
        let Some((g, v)) = self.0.take() else { return };
        let cell = LATE_CELL.get().unwrap();
        let replaced = within(Duration::from_millis(500), move || {
            drop(cell.replace_sync(Canary::new(2).0))
        })
        .is_some();
        let freed = LATE_FREED.get().unwrap().load(Ordering::SeqCst);
        let ok = !replaced && !freed && v.value == 1;
        LATE_OUTCOME.store(if ok { 1 } else { 2 }, Ordering::SeqCst);
        drop(g);
    }
}

std::thread_local! {
    static LATE_GUARD: RefCell<LateGuard> = const { RefCell::new(LateGuard(None)) };
}

#[test]
fn s3_guard_in_a_thread_local_destroyed_after_the_runtime_keeps_the_reader() {
    isolated(
        "s3_guard_in_a_thread_local_destroyed_after_the_runtime_keeps_the_reader",
        WATCHDOG,
        || {
            let (c, freed) = Canary::new(1);
            let _ = LATE_FREED.set(freed);
            let cell: &'static RcuBox<Canary, Qsbr> =
                LATE_CELL.get_or_init(|| RcuBox::new_in(c, qsbr::default_domain()));
            std::thread::spawn(move || {
                // Initialise ours first, so that it is destroyed after the runtime's.
                LATE_GUARD.with(|_| ());
                let g = qsbr::rcu_read_lock();
                let v: &'static Canary = {
                    // SAFETY: this `'static` borrow of `g` is used only for the call below,
                    // while `g` lives on this stack; the value `v` it returns is only used
                    // while the guard lives (both go into LATE_GUARD together, and
                    // `LateGuard::drop` uses `v` before it drops the guard).
                    let g: &'static qsbr::RcuReadGuard = unsafe { &*(&g as *const _) };
                    cell.load(g)
                };
                LATE_GUARD.with(|l| l.borrow_mut().0 = Some((g, v)));
            })
            .join()
            .unwrap();
            assert_eq!(
                LATE_OUTCOME.load(Ordering::SeqCst),
                1,
                "a grace period ended under a guard held by a late thread-local"
            );
            // Once that guard is gone the domain makes progress again.
            assert!(
                within(Duration::from_secs(20), qsbr::synchronize_rcu).is_some(),
                "grace periods stalled after the late guard was dropped"
            );
        },
    );
}

// ----- 4. call_rcu never blocks -----

/// Callbacks queued by a writer holding `m`, far past any backlog bound.
const FLOOD: usize = 300_000;

#[test]
fn s4_call_rcu_under_a_mutex_a_reader_takes_inside_its_critical_section() {
    let d: Domain<Memb> = Domain::new();
    let m = Arc::new(Mutex::new(()));
    let writer_locked = Arc::new(Barrier::new(2));
    let reader = {
        let (d, m, writer_locked) = (d.clone(), m.clone(), writer_locked.clone());
        std::thread::spawn(move || {
            let r = d.register();
            let g = r.read_lock();
            writer_locked.wait();
            // Inside the critical section: needs the writer's mutex.
            drop(m.lock().unwrap());
            drop(g);
        })
    };
    let done = within(WATCHDOG, {
        let d = d.clone();
        move || {
            let held = m.lock().unwrap();
            writer_locked.wait();
            let cell = RcuBox::new_in(0u64, &d);
            for i in 0..FLOOD {
                d.call(|| ());
                d.defer_drop(Box::new(i));
                cell.replace(i as u64);
            }
            drop(held);
        }
    });
    assert!(
        done.is_some(),
        "call_rcu blocked a writer (deadlock with a reader)"
    );
    reader.join().unwrap();
    d.barrier();
    assert_eq!(d.stats().backlog, 0);
}

#[test]
fn s4_call_rcu_whose_callbacks_need_a_lock_the_producer_holds() {
    let d: Domain<Memb> = Domain::new();
    let m = Arc::new(Mutex::new(0u64));
    let done = within(WATCHDOG, {
        let (d, m) = (d.clone(), m.clone());
        move || {
            let held = m.lock().unwrap();
            for _ in 0..FLOOD {
                let m = m.clone();
                d.call(move || *m.lock().unwrap() += 1);
            }
            drop(held);
        }
    });
    assert!(
        done.is_some(),
        "call_rcu blocked a producer whose callbacks wait for its lock"
    );
    d.barrier();
    assert_eq!(*m.lock().unwrap(), FLOOD as u64);
}

// ----- 5. fork() -----

/// fork(), then run `child` in the child (exit status 0 iff it returns) and return the
/// child's exit status in the parent.
fn fork_and(child: impl FnOnce()) -> i32 {
    // SAFETY: the child runs only `child` (which uses this library, whose atfork handlers
    // left it consistent) and leaves with `_exit`, never returning into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(child)).map_or(1, |()| 0);
        // SAFETY: end the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let w = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(w, pid);
    assert!(libc::WIFEXITED(status), "child died: {status}");
    libc::WEXITSTATUS(status)
}

#[test]
fn s5a_fork_while_a_reader_of_b_synchronizes_a() {
    isolated(
        "s5a_fork_while_a_reader_of_b_synchronizes_a",
        WATCHDOG,
        || {
            let a: Domain<Memb> = Domain::new();
            let b: Domain<Memb> = Domain::new();
            let entered = Arc::new(Barrier::new(2));
            let r = {
                let (a, b, entered) = (a.clone(), b.clone(), entered.clone());
                std::thread::spawn(move || {
                    let rb = b.register();
                    let g = rb.read_lock();
                    entered.wait();
                    // Legal: A is another domain. Meanwhile B's grace period waits for us.
                    std::thread::sleep(Duration::from_millis(100));
                    a.synchronize();
                    drop(g);
                })
            };
            entered.wait();
            // B's worker now runs a grace period that waits for the reader.
            b.call(|| ());
            std::thread::sleep(Duration::from_millis(20));
            let status = fork_and(|| {
                a.synchronize();
                b.synchronize();
                let ran = Arc::new(AtomicBool::new(false));
                let r2 = ran.clone();
                b.call(move || r2.store(true, Ordering::SeqCst));
                b.barrier();
                assert!(ran.load(Ordering::SeqCst));
            });
            assert_eq!(status, 0, "the child could not use RCU");
            r.join().unwrap();
            b.barrier();
        },
    );
}

#[test]
fn s5b_fork_by_an_online_qsbr_thread_while_another_synchronizes() {
    isolated(
        "s5b_fork_by_an_online_qsbr_thread_while_another_synchronizes",
        WATCHDOG,
        || {
            qsbr::rcu_register_thread(); // online, outside any critical section
            let waiter = std::thread::spawn(qsbr::synchronize_rcu); // waits for us
            std::thread::sleep(Duration::from_millis(50));
            let status = fork_and(|| {
                qsbr::synchronize_rcu();
                qsbr::rcu_barrier();
            });
            assert_eq!(status, 0, "the child could not use RCU");
            qsbr::rcu_quiescent_state();
            waiter.join().unwrap();
        },
    );
}

// ----- 6. The QSBR worker registered online by its own callback -----

#[test]
fn s6_qsbr_callback_that_reads_does_not_leave_the_worker_online() {
    isolated(
        "s6_qsbr_callback_that_reads_does_not_leave_the_worker_online",
        WATCHDOG,
        || {
            let cell: &'static RcuBox<u64, Qsbr> =
                Box::leak(Box::new(RcuBox::new_in(7, qsbr::default_domain())));
            qsbr::call_rcu(move || {
                // Registers the worker thread with the QSBR domain, online.
                let g = qsbr::rcu_read_lock();
                assert_eq!(*cell.load(&g), 7);
            });
            qsbr::rcu_barrier();
            let progress = within(Duration::from_secs(20), move || {
                qsbr::synchronize_rcu();
                cell.replace(8);
                qsbr::rcu_barrier();
                qsbr::synchronize_rcu();
            });
            assert!(
                progress.is_some(),
                "QSBR grace periods wait for the call_rcu worker forever"
            );
        },
    );
}

// ----- 7. A QSBR registration made in a late thread-local destructor -----

struct LateReader;

impl Drop for LateReader {
    fn drop(&mut self) {
        // Runs after the runtime's thread-local is gone: this registers anew.
        let g = qsbr::rcu_read_lock();
        drop(g);
    }
}

std::thread_local! {
    static LATE_READER: LateReader = const { LateReader };
}

#[test]
fn s7_qsbr_registration_in_a_late_thread_local_destructor_is_not_leaked_online() {
    isolated(
        "s7_qsbr_registration_in_a_late_thread_local_destructor_is_not_leaked_online",
        WATCHDOG,
        || {
            let readers_before = qsbr::default_domain().stats().readers;
            std::thread::spawn(|| {
                LATE_READER.with(|_| ()); // destroyed after the runtime's thread-local
                qsbr::rcu_register_thread();
                qsbr::rcu_quiescent_state();
            })
            .join()
            .unwrap();
            assert!(
                within(Duration::from_secs(20), qsbr::synchronize_rcu).is_some(),
                "grace periods wait for a thread that no longer exists"
            );
            assert_eq!(qsbr::default_domain().stats().readers, readers_before);
        },
    );
}

// ----- 8. The worker survives a slow stall hook and a payload whose Drop panics -----

#[test]
fn s8_slow_stall_hook_does_not_kill_the_grace_period_leader() {
    let d: Domain<Memb> = Domain::builder()
        .stall_timeout(Duration::from_millis(1))
        .stall_hook(|_| std::thread::sleep(Duration::from_millis(20)))
        .build();
    let entered = Arc::new(Barrier::new(2));
    let reader = {
        let (d, entered) = (d.clone(), entered.clone());
        std::thread::spawn(move || {
            let r = d.register();
            let g = r.read_lock();
            entered.wait();
            std::thread::sleep(Duration::from_millis(150));
            drop(g);
        })
    };
    entered.wait();
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    d.call(move || r2.store(true, Ordering::SeqCst)); // the worker leads this grace period
    let d2 = d.clone();
    assert!(
        within(WATCHDOG, move || d2.barrier()).is_some(),
        "the worker died leading a stalled grace period"
    );
    assert!(ran.load(Ordering::SeqCst));
    assert!(d.stats().stalls >= 2);
    reader.join().unwrap();
    // A synchronizer leading a stalled grace period survives it too.
    let d3 = d.clone();
    let r = d.register();
    let g = r.read_lock();
    let sync = std::thread::spawn(move || d3.synchronize());
    std::thread::sleep(Duration::from_millis(100));
    drop(g);
    sync.join()
        .expect("synchronize panicked in the stall timer");
}

struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("a panic payload whose Drop panics (expected by the test)");
    }
}

#[test]
fn s8_panic_payload_whose_drop_panics_does_not_kill_the_worker() {
    let d: Domain<Memb> = Domain::new();
    d.call(|| std::panic::panic_any(Bomb));
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    d.call(move || r2.store(true, Ordering::SeqCst));
    let d2 = d.clone();
    assert!(
        within(WATCHDOG, move || d2.barrier()).is_some(),
        "the worker died"
    );
    assert!(ran.load(Ordering::SeqCst));
    let s = d.stats();
    assert_eq!((s.callbacks_run, s.callbacks_panicked), (2, 1));
    // And it still serves new callbacks.
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    d.call(move || r2.store(true, Ordering::SeqCst));
    let d2 = d.clone();
    assert!(within(WATCHDOG, move || d2.barrier()).is_some());
    assert!(ran.load(Ordering::SeqCst));
}

// ----- 9. barrier() waits only for callbacks queued before it -----

#[test]
fn s9_barrier_is_not_starved_by_callbacks_that_retire_more() {
    let d: Domain<Memb> = Domain::new();
    let stop = Arc::new(AtomicBool::new(false));
    let produced = Arc::new(AtomicU64::new(0));
    let producer = {
        let (d, stop, produced) = (d.clone(), stop.clone(), produced.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let d2 = d.clone();
                // A callback that retires something itself, as a list writer's would.
                d.call(move || d2.defer_drop(Box::new(1u64)));
                produced.fetch_add(1, Ordering::Relaxed);
                // Steady, faster than one grace period per callback.
                let t = std::time::Instant::now();
                while t.elapsed() < Duration::from_micros(2) {
                    std::hint::spin_loop();
                }
            }
        })
    };
    while produced.load(Ordering::Relaxed) < 100 {
        std::thread::sleep(Duration::from_millis(1));
    }
    let ran = Arc::new(AtomicBool::new(false));
    let r2 = ran.clone();
    d.call(move || r2.store(true, Ordering::SeqCst));
    let d2 = d.clone();
    let waited_for = within(Duration::from_secs(30), move || {
        let before = d2.stats().grace_periods;
        d2.barrier();
        d2.stats().grace_periods - before
    });
    stop.store(true, Ordering::Relaxed);
    producer.join().unwrap();
    let waited_for = waited_for.expect("barrier starved by a steady producer");
    assert!(ran.load(Ordering::SeqCst));
    // The worker's round in progress and the next one: two grace periods (a few more if
    // this thread is descheduled between its reads; a starved barrier waits for hundreds).
    assert!(
        waited_for <= 10,
        "barrier waited for {waited_for} grace periods"
    );
}

// ----- 11. Polled grace-period cookies name their domain -----

#[test]
fn s11_cookie_of_another_domain_is_refused() {
    let d1: Domain<Memb> = Domain::new();
    let d2: Domain<Memb> = Domain::new();
    for _ in 0..10 {
        d1.synchronize();
    }
    let c = d2.start_poll();
    let p = catch_unwind(AssertUnwindSafe(|| d1.poll(c)));
    assert!(
        p.is_err(),
        "poll answered {p:?} for another domain's cookie"
    );
    let p = catch_unwind(AssertUnwindSafe(|| d1.cond_synchronize(c)));
    assert!(p.is_err(), "cond_synchronize took another domain's cookie");
    d2.cond_synchronize(c);
    assert!(d2.poll(c));
}

// ----- 13. replace_sync / swap_sync misuse panics lose nothing -----

struct Counted(u64, Arc<AtomicU64>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn s13_replace_sync_inside_a_critical_section_panics_before_swapping() {
    let d: Domain<Memb> = Domain::new();
    let (old_drops, new_drops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cell = RcuBox::new_in(Counted(1, old_drops.clone()), &d);
    let r = d.register();
    let g = r.read_lock();
    let p = catch_unwind(AssertUnwindSafe(|| {
        cell.replace_sync(Counted(2, new_drops.clone()))
    }));
    assert!(
        p.is_err(),
        "replace_sync inside a critical section did not panic"
    );
    drop(g);
    assert_eq!(
        cell.load(&r.read_lock()).0,
        1,
        "the new value was published"
    );
    assert_eq!(new_drops.load(Ordering::SeqCst), 1, "the new value leaked");
    assert_eq!(old_drops.load(Ordering::SeqCst), 0);
    drop(cell);
    assert_eq!(old_drops.load(Ordering::SeqCst), 1, "the old value leaked");
}

#[test]
fn s13_swap_sync_inside_a_critical_section_panics_before_swapping() {
    let d: Domain<Memb> = Domain::new();
    let (old_drops, new_drops) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let cell = RcuOption::new_in(Some(Counted(1, old_drops.clone())), &d);
    let r = d.register();
    let g = r.read_lock();
    let p = catch_unwind(AssertUnwindSafe(|| {
        cell.swap_sync(Some(Counted(2, new_drops.clone())))
    }));
    assert!(
        p.is_err(),
        "swap_sync inside a critical section did not panic"
    );
    drop(g);
    assert_eq!(
        cell.load(&r.read_lock()).map(|c| c.0),
        Some(1),
        "the new value was published"
    );
    assert_eq!(new_drops.load(Ordering::SeqCst), 1, "the new value leaked");
    drop(cell);
    assert_eq!(old_drops.load(Ordering::SeqCst), 1, "the old value leaked");
}
