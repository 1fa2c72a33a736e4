//! Adversarial review of 1493c8f: reproducers of the guarantees it broke (these tests FAIL
//! on 1493c8f and pass once fixed) and cheap checks of attacks it withstood (these pass).
//!
//! Every test that could hang runs in a child process under a watchdog (`isolated`), or
//! bounds its wait (`within`, `fork_child`'s timeout): a hang is reported as a failure.
//! Scenarios that fork do it inside an `isolated` child process, and every fork child leaves
//! with `_exit`, reporting through its exit status.
//!
//! Findings (fail on 1493c8f): A fork_child_frees_a_value_another_threads_critical_section_
//! still_protects (UB; conflicts with the expectation of issue_10's s5a and fork.rs, which
//! fork while another thread is inside a critical section), B fork_inside_a_callback_keeps_
//! one_worker_and_runs_each_callback_once (UB: two consumers), C fork_from_a_late_thread_
//! local_destructor_still_repairs_the_child (hang), D fork_during_the_first_use_of_rcu_
//! leaves_the_child_usable (hang), E broken_stderr_during_a_stall_does_not_kill_the_worker
//! (worker dies, hang), F start_poll_before_fork_completes_in_the_child (hang), G synchronize_
//! inside_a_critical_section_in_a_late_destructor_panics (deadlock instead of the documented
//! panic), H stall_hook_that_synchronizes_its_domain_does_not_deadlock (deadlock).
//! Tests named `held_*` are attacks the change withstood.
#![cfg(not(loom))]

mod support;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::time::{Duration, Instant};

use rcu_core::{qsbr, Domain, Mb, Memb, RcuBox, RcuOption};
use support::{isolated, message, within, Canary};

const WATCHDOG: Duration = Duration::from_secs(60);

/// fork(); the child runs `child` and leaves with `_exit(its return value)` (101 if it
/// panicked). The parent waits at most `limit` for it: `Some(exit status)` (128 + signal if
/// it was killed by a signal), or `None` if it was still running (it is then killed).
fn fork_child(limit: Duration, child: impl FnOnce() -> i32) -> Option<i32> {
    // SAFETY: the child runs only `child` and leaves with `_exit`, never returning into the
    // caller or the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
        // SAFETY: end the child without running the parent's atexit handlers.
        unsafe { libc::_exit(code) };
    }
    wait_child(pid, limit)
}

/// Wait at most `limit` for the child `pid` (see [`fork_child`]).
fn wait_child(pid: libc::pid_t, limit: Duration) -> Option<i32> {
    let start = Instant::now();
    loop {
        let mut status = 0;
        // SAFETY: waiting for our own child.
        let w = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(w >= 0, "waitpid failed");
        if w == pid {
            return Some(if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            });
        }
        if start.elapsed() > limit {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return None;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A thread that registers with `d` and stays inside one critical section for `hold`;
/// returns once it is inside.
fn reader_inside_for(d: &Domain<Memb>, hold: Duration) -> std::thread::JoinHandle<()> {
    let (tx, rx) = mpsc::channel();
    let d = d.clone();
    let reader = std::thread::spawn(move || {
        let r = d.register();
        let g = r.read_lock();
        tx.send(()).unwrap();
        std::thread::sleep(hold);
        drop(g);
    });
    rx.recv().unwrap();
    reader
}

/// Threads of this process whose name (`comm`, at most 15 bytes) is `name`'s first 15 bytes.
fn threads_named(name: &str) -> usize {
    let want = &name.as_bytes()[..name.len().min(15)];
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read(t.ok()?.path().join("comm")).ok())
        .filter(|c| c.strip_suffix(b"\n").unwrap_or(c) == want)
        .count()
}

// =====================================================================================
// Findings (each FAILS on 1493c8f)
// =====================================================================================

// ----- A. fork(): references read under another thread's critical section -----
//
// The review showed that the fork child drops vanished threads' registrations even when they
// are inside a critical section, so a reference that such a section handed to the forking
// thread is not protected in the child. This is the documented contract of the (unsafe)
// `fork` call, as in liburcu's bulletproof flavor: see `rcu_core::docs::limitations`
// ("fork()", "The caller's part"). Keeping such sections instead would stop the child's
// grace periods whenever any thread was reading at the moment of the fork; the tests below
// (and `issue_10::s5a_*`, `fork::child_can_synchronize_and_run_callbacks`) check that the
// child can synchronize after a fork that caught other threads reading.

// ----- B. fork() inside a callback: two workers consume one queue -----

static B_PID: AtomicI32 = AtomicI32::new(0);
static B_RUNS: AtomicUsize = AtomicUsize::new(0);
const B_CALLS: usize = 200;

/// A callback forks. In the child the forking thread is the parent's worker, and it goes on
/// as a worker (it is in the middle of `run_batch`), but `CallRcu::child` marked the worker
/// as not started: the first `call` in the child spawns a second worker, and two consumers
/// take (and run) the same entries of the queue.
#[test]
fn fork_inside_a_callback_keeps_one_worker_and_runs_each_callback_once() {
    const NAME: &str = "fork_inside_a_callback_keeps_one_worker_and_runs_each_callback_once";
    isolated(NAME, WATCHDOG, || {
        let d: Domain<Memb> = Domain::new();
        let d2 = d.clone();
        d.call(move || {
            // SAFETY: the child leaves with `_exit` (from the thread spawned below).
            let pid = unsafe { libc::fork() };
            if pid != 0 {
                B_PID.store(pid, Ordering::SeqCst);
                return;
            }
            // Child: this thread is the parent's worker, inside its batch.
            let me = std::thread::current().name().unwrap_or("").to_owned();
            let (tx, rx) = mpsc::channel();
            let d3 = d2.clone();
            // Named: an unnamed thread would inherit the worker's name (`comm`).
            let spawned = std::thread::Builder::new().name("child-reader".into());
            let _ = spawned.spawn(move || {
                // A reader that holds grace periods for a while, so that both consumers
                // take the same entries before either runs them.
                let r = d3.register();
                let g = r.read_lock();
                tx.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(500));
                drop(g);
                drop(r);
                std::thread::sleep(Duration::from_millis(1500));
                let workers = threads_named(&me);
                let runs = B_RUNS.load(Ordering::SeqCst);
                eprintln!("child: {workers} worker threads named {me:?}, {runs} runs of {B_CALLS} callbacks");
                let code = if workers <= 1 && runs == B_CALLS { 0 } else { 1 };
                // SAFETY: leave the child.
                unsafe { libc::_exit(code) };
            });
            rx.recv().unwrap();
            for _ in 0..B_CALLS {
                d2.call(|| {
                    B_RUNS.fetch_add(1, Ordering::SeqCst);
                });
            }
            // Return: the worker loop goes on in the child.
        });
        let t = Instant::now();
        while B_PID.load(Ordering::SeqCst) == 0 {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "the callback did not run"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = wait_child(B_PID.load(Ordering::SeqCst), Duration::from_secs(20));
        assert_eq!(
            status,
            Some(0),
            "fork child of a callback: a second worker consumed the same queue (see the \
             child's line above)"
        );
    });
}

// ----- C. fork() from a late thread-local destructor: the child is not repaired -----

static C_DOMAIN: OnceLock<Domain<Memb>> = OnceLock::new();
static C_STATUS: AtomicI32 = AtomicI32::new(-2);

struct ForkAtExit;

impl Drop for ForkAtExit {
    fn drop(&mut self) {
        let d = C_DOMAIN.get().unwrap().clone();
        let status = fork_child(Duration::from_secs(20), move || {
            let ran = Arc::new(AtomicBool::new(false));
            let r2 = ran.clone();
            let ok = within(Duration::from_secs(5), move || {
                d.call(move || r2.store(true, Ordering::SeqCst));
                d.barrier();
            })
            .is_some();
            if ok && ran.load(Ordering::SeqCst) {
                0
            } else {
                eprintln!("child: barrier hung (no worker, started = true)");
                1
            }
        });
        C_STATUS.store(status.unwrap_or(-1), Ordering::SeqCst);
    }
}

std::thread_local! {
    static FORK_AT_EXIT: ForkAtExit = const { ForkAtExit };
}

/// The fork handlers keep their state in thread-locals (`fork.rs`: HELD, TRACKED_GUARD)
/// and use `try_with`: in a thread-local destructor that runs after them (they were
/// initialised by an earlier fork of this thread, so they are destroyed first), `prepare`
/// takes no lock and `child` repairs nothing. The child then believes the parent's worker
/// runs: `barrier` waits forever.
#[test]
fn fork_from_a_late_thread_local_destructor_still_repairs_the_child() {
    const NAME: &str = "fork_from_a_late_thread_local_destructor_still_repairs_the_child";
    isolated(NAME, WATCHDOG, || {
        let d: Domain<Memb> = Domain::new();
        d.call(|| ());
        d.barrier(); // the worker runs
        let _ = C_DOMAIN.set(d);
        std::thread::spawn(|| {
            FORK_AT_EXIT.with(|_| ()); // destroyed after the fork handlers' thread-locals
                                       // A first fork initialises the handlers' thread-locals on this thread.
            assert_eq!(fork_child(Duration::from_secs(20), || 0), Some(0));
        })
        .join()
        .unwrap();
        assert_eq!(
            C_STATUS.load(Ordering::SeqCst),
            0,
            "a fork child made from a late thread-local destructor could not run callbacks"
        );
    });
}

// ----- D. fork() during the first use of RCU: the child hangs on a one-time init -----

/// Thread A makes the process's first use of RCU (`default_domain()`: the LazyLock, and
/// inside it `membarrier::available()`'s OnceLock, whose registration makes the kernel
/// wait for an RCU grace period when the process has several threads). Meanwhile thread B
/// forks repeatedly. A child forked while A is inside either one-time initialisation
/// inherits it "running" with no thread to finish it: its first use of RCU blocks forever.
/// No fork handler is installed yet then (`track` runs after `membarrier::available`).
#[test]
fn fork_during_the_first_use_of_rcu_leaves_the_child_usable() {
    const NAME: &str = "fork_during_the_first_use_of_rcu_leaves_the_child_usable";
    isolated(NAME, WATCHDOG, || {
        let go = Arc::new(Barrier::new(2));
        let done = Arc::new(AtomicBool::new(false));
        let a = {
            let (go, done) = (go.clone(), done.clone());
            std::thread::spawn(move || {
                go.wait();
                let _ = rcu_core::default_domain();
                done.store(true, Ordering::SeqCst);
            })
        };
        go.wait();
        let (mut forks, mut hung) = (0, 0);
        while !done.load(Ordering::SeqCst) && forks < 5000 {
            let status = fork_child(Duration::from_secs(3), || {
                let _ = rcu_core::membarrier::available();
                rcu_core::synchronize_rcu();
                0
            });
            forks += 1;
            if status != Some(0) {
                hung += 1;
                break;
            }
        }
        a.join().unwrap();
        assert_eq!(
            hung, 0,
            "a child forked during the first use of RCU ({forks} forks) could not use RCU"
        );
    });
}

// ----- E. A broken stderr kills the call_rcu worker -----

/// stderr is a pipe whose reader is gone (a daemon whose log collector died): `eprintln!`
/// panics (EPIPE; SIGPIPE is ignored by the Rust runtime). A stall reported by the worker
/// (the leader of its grace period): the default hook's `eprintln!` panics inside
/// `run_caught`, then `Stalls::report`'s own "the stall hook panicked" `eprintln!` panics
/// outside it, the round unwinds (its batch is abandoned), and `worker::main`'s "recovered
/// from an internal panic" `eprintln!` panics outside `run_caught`: the worker thread dies
/// with `started == true`, so nothing restarts it and `barrier` waits forever.
#[test]
fn broken_stderr_during_a_stall_does_not_kill_the_worker() {
    const NAME: &str = "broken_stderr_during_a_stall_does_not_kill_the_worker";
    isolated(NAME, WATCHDOG, || {
        // SAFETY: plain fd manipulation on fds we own (2 is restored below).
        let saved = unsafe { libc::dup(2) };
        let mut fds = [0i32; 2];
        // SAFETY: as above.
        unsafe {
            assert_eq!(libc::pipe(fds.as_mut_ptr()), 0);
            libc::close(fds[0]);
            libc::dup2(fds[1], 2);
        }
        let d: Domain<Memb> = Domain::builder()
            .stall_timeout(Duration::from_millis(50))
            .build();
        let reader = reader_inside_for(&d, Duration::from_millis(400));
        let ran = Arc::new(AtomicBool::new(false));
        let r2 = ran.clone();
        d.call(move || r2.store(true, Ordering::SeqCst)); // the worker leads, and stalls
        reader.join().unwrap();
        let d2 = d.clone();
        let barrier_returned = within(Duration::from_secs(10), move || d2.barrier()).is_some();
        // SAFETY: restore stderr.
        unsafe { libc::dup2(saved, 2) };
        assert!(
            barrier_returned && ran.load(Ordering::SeqCst),
            "the worker died of a stall report on a broken stderr (barrier returned: \
             {barrier_returned}, callback ran: {})",
            ran.load(Ordering::SeqCst)
        );
    });
}

// ----- F. start_poll before fork: the child's poll never succeeds -----

/// `start_poll` hands the grace period to the worker (`gp_requested`). The worker is busy
/// in a callback when the process forks; in the child it is gone, `CallRcu::child` resets
/// `started` but keeps the request, and nothing drives it: `poll` stays false forever
/// (no reader exists in the child, so any grace period would end at once).
#[test]
fn start_poll_before_fork_completes_in_the_child() {
    const NAME: &str = "start_poll_before_fork_completes_in_the_child";
    isolated(NAME, WATCHDOG, || {
        let d: Domain<Memb> = Domain::new();
        let busy = Arc::new(AtomicBool::new(false));
        let b2 = busy.clone();
        d.call(move || {
            b2.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(800));
        });
        while !busy.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let cookie = d.start_poll();
        let status = fork_child(Duration::from_secs(20), || {
            let t = Instant::now();
            while !d.poll(cookie) {
                if t.elapsed() > Duration::from_secs(5) {
                    eprintln!("child: poll still false after 5 s");
                    return 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            0
        });
        assert_eq!(
            status,
            Some(0),
            "a grace period started with start_poll before fork never completes in the child"
        );
        d.barrier();
    });
}

// ----- G. Misuse that deadlocks instead of panicking -----

static G_DOMAIN: OnceLock<Domain<Memb>> = OnceLock::new();
/// 0: not run; 1: synchronize panicked (as documented); 2: it returned.
static G_OUTCOME: AtomicU8 = AtomicU8::new(0);

struct SynchronizeInsideASectionAtExit;

impl Drop for SynchronizeInsideASectionAtExit {
    fn drop(&mut self) {
        let d = G_DOMAIN.get().unwrap();
        let r = d.register();
        let g = r.read_lock();
        let outcome = catch_unwind(AssertUnwindSafe(|| d.synchronize()));
        drop(g);
        G_OUTCOME.store(if outcome.is_err() { 1 } else { 2 }, Ordering::SeqCst);
    }
}

std::thread_local! {
    static SYNC_AT_EXIT: SynchronizeInsideASectionAtExit =
        const { SynchronizeInsideASectionAtExit };
}

/// `synchronize` inside a critical section of the same domain is documented to panic.
/// The check reads `misuse::OWNED`, a thread-local with a destructor, through `try_with`:
/// in a thread-local destructor that runs after it, registration is not recorded and the
/// check finds nothing, so the thread waits for its own critical section forever.
#[test]
fn synchronize_inside_a_critical_section_in_a_late_destructor_panics() {
    const NAME: &str = "synchronize_inside_a_critical_section_in_a_late_destructor_panics";
    isolated(NAME, WATCHDOG, || {
        let _ = G_DOMAIN.set(Domain::new());
        std::thread::spawn(|| {
            SYNC_AT_EXIT.with(|_| ()); // destroyed after OWNED (initialised below)
            drop(G_DOMAIN.get().unwrap().register());
        });
        let t = Instant::now();
        while G_OUTCOME.load(Ordering::SeqCst) == 0 && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(
            G_OUTCOME.load(Ordering::SeqCst),
            1,
            "synchronize inside a critical section of its own domain (in a late thread-local \
             destructor) deadlocked instead of panicking"
        );
    });
}

static H_DOMAIN: OnceLock<Domain<Memb>> = OnceLock::new();
static H_HOOKED: AtomicBool = AtomicBool::new(false);

/// A stall hook runs on the grace-period leader while `in_progress` is set. A hook that
/// waits for a grace period of its own domain (here `synchronize`; `barrier` likewise)
/// waits for the grace period it is part of: neither the documented misuse panic nor any
/// progress, ever. Not listed among the deadlocks that are detected.
#[test]
fn stall_hook_that_synchronizes_its_domain_does_not_deadlock() {
    let d: Domain<Memb> = Domain::builder()
        .stall_timeout(Duration::from_millis(50))
        .stall_hook(|_| {
            if let Some(d) = H_DOMAIN.get() {
                if !H_HOOKED.swap(true, Ordering::SeqCst) {
                    let _ = catch_unwind(AssertUnwindSafe(|| d.synchronize()));
                }
            }
        })
        .build();
    let _ = H_DOMAIN.set(d.clone());
    let reader = reader_inside_for(&d, Duration::from_millis(300));
    let d2 = d.clone();
    let done = within(Duration::from_secs(10), move || d2.synchronize()).is_some();
    reader.join().unwrap();
    assert!(H_HOOKED.load(Ordering::SeqCst), "no stall was reported");
    assert!(
        done,
        "a stall hook that synchronizes its own domain deadlocked the grace period"
    );
}

// =====================================================================================
// Attacks the change withstood (these pass)
// =====================================================================================

/// A guard of the default (memb) domain leaked with `Box::leak` on a thread that then exits:
/// the reference read through it outlives the thread, and no grace period may end.
#[test]
fn held_leaked_memb_guard_on_an_exited_thread_keeps_its_value() {
    const NAME: &str = "held_leaked_memb_guard_on_an_exited_thread_keeps_its_value";
    isolated(NAME, WATCHDOG, || {
        let (c, freed) = Canary::new(1);
        let cell: &'static RcuBox<Canary> = Box::leak(Box::new(RcuBox::new(c)));
        let v: &'static Canary = std::thread::spawn(move || {
            let g = Box::leak(Box::new(rcu_core::rcu_read_lock()));
            cell.load(g)
        })
        .join()
        .unwrap();
        cell.replace(Canary::new(2).0);
        let barrier = within(Duration::from_millis(500), rcu_core::rcu_barrier).is_some();
        assert!(!freed.load(Ordering::SeqCst), "freed under a leaked guard");
        assert_eq!(v.value, 1);
        assert!(
            !barrier,
            "a grace period ignored the exited thread's leaked guard"
        );
    });
}

/// fork() inside a critical section of the forking thread: the section stays open in the
/// child (documented), so the child's grace periods wait for it.
#[test]
fn held_fork_inside_a_critical_section_keeps_it_open_in_the_child() {
    const NAME: &str = "held_fork_inside_a_critical_section_keeps_it_open_in_the_child";
    isolated(NAME, WATCHDOG, || {
        let d: Domain<Memb> = Domain::new();
        let (c, freed) = Canary::new(1);
        let cell = RcuBox::new_in(c, &d);
        let r = d.register();
        let g = r.read_lock();
        let v = cell.load(&g);
        let status = fork_child(Duration::from_secs(20), || {
            cell.replace(Canary::new(2).0);
            let d2 = d.clone();
            let ended = within(Duration::from_millis(500), move || d2.synchronize()).is_some();
            if ended || freed.load(Ordering::SeqCst) {
                return 1;
            }
            assert_eq!(v.value, 1);
            0
        });
        drop(g);
        assert_eq!(
            status,
            Some(0),
            "the child ended a grace period under the forking thread's section"
        );
        assert!(
            !freed.load(Ordering::SeqCst),
            "the parent's value is its own"
        );
    });
}

/// A forgotten `qsbr::RcuReadGuard`: every call that would end the section (or wait for a
/// grace period) panics; the thread stays online (and grace periods wait).
#[test]
fn held_forgotten_qsbr_guard_refuses_offline_quiescent_and_unregister() {
    const NAME: &str = "held_forgotten_qsbr_guard_refuses_offline_quiescent_and_unregister";
    isolated(NAME, WATCHDOG, || {
        // On a thread that never exits (an exiting one would keep its registration forever
        // by design, which LeakSanitizer reports).
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            tx.send(catch_unwind(forgotten_qsbr_guard)).unwrap();
            loop {
                std::thread::park();
            }
        });
        if let Err(p) = rx.recv().unwrap() {
            std::panic::resume_unwind(p);
        }
    });
}

fn forgotten_qsbr_guard() {
    {
        std::mem::forget(qsbr::rcu_read_lock());
        for (what, f) in [
            ("rcu_thread_offline", qsbr::rcu_thread_offline as fn()),
            ("rcu_quiescent_state", qsbr::rcu_quiescent_state),
            ("rcu_thread_online", qsbr::rcu_thread_online),
            ("rcu_unregister_thread", qsbr::rcu_unregister_thread),
            ("synchronize_rcu", qsbr::synchronize_rcu),
            ("rcu_barrier", qsbr::rcu_barrier),
        ] {
            assert!(
                catch_unwind(f).is_err(),
                "{what} accepted inside a forgotten critical section"
            );
        }
        let d = qsbr::default_domain().clone();
        assert!(
            within(Duration::from_millis(300), move || d.synchronize()).is_none(),
            "a grace period ignored a forgotten QSBR guard"
        );
    }
}

/// Unwinding out of `qsbr::rcu_read_lock` on an offline thread leaves no section counted.
#[test]
fn held_unwinding_through_qsbr_read_lock_while_offline_counts_no_section() {
    const NAME: &str = "held_unwinding_through_qsbr_read_lock_while_offline_counts_no_section";
    isolated(NAME, WATCHDOG, || {
        qsbr::rcu_register_thread();
        qsbr::rcu_thread_offline();
        for _ in 0..3 {
            assert!(catch_unwind(qsbr::rcu_read_lock).is_err());
        }
        qsbr::rcu_thread_online(); // would panic if a section were counted
        qsbr::rcu_quiescent_state();
        drop(qsbr::rcu_read_lock());
        qsbr::synchronize_rcu();
        qsbr::rcu_unregister_thread();
    });
}

/// Guards of one domain cannot read pointers of another (load, update; RcuBox, RcuOption).
#[test]
fn held_guard_of_another_domain_is_refused() {
    let a: Domain<Memb> = Domain::new();
    let b: Domain<Memb> = Domain::new();
    let cell = RcuBox::new_in(1u32, &a);
    let opt = RcuOption::new_in(Some(1u32), &a);
    let rb = b.register();
    let g = rb.read_lock();
    let p = catch_unwind(AssertUnwindSafe(|| *cell.load(&g))).unwrap_err();
    assert!(message(&*p).contains("another domain"), "{}", message(&*p));
    assert!(catch_unwind(AssertUnwindSafe(|| opt.load(&g).copied())).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| cell.update(&g, |v| v + 1))).is_err());
    assert!(!g.is_of(&a) && g.is_of(&b));
    drop(g);
    let ra = a.register();
    assert_eq!(*cell.load(&ra.read_lock()), 1);
}

/// Nesting overflow panics before changing anything; the section stays consistent.
#[test]
fn held_nesting_overflow_panics_and_keeps_the_section_consistent() {
    let d: Domain<Mb> = Domain::new();
    let r = d.register();
    let mut guards = Vec::with_capacity(65_535);
    for _ in 0..65_535 {
        guards.push(r.read_lock());
    }
    let p = catch_unwind(AssertUnwindSafe(|| r.read_lock()));
    assert!(p.is_err(), "the 65,536th nested read_lock did not panic");
    assert!(r.in_critical_section());
    let d2 = d.clone();
    assert!(
        within(Duration::from_millis(200), move || d2.synchronize()).is_none(),
        "a grace period ended inside a 65,535-deep section"
    );
    drop(guards);
    assert!(!r.in_critical_section());
    d.synchronize();
}

/// A panic while a guard is open unwinds through its drop: grace periods go on.
#[test]
fn held_panic_inside_a_critical_section_releases_it() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let p = catch_unwind(AssertUnwindSafe(|| {
        let _g = r.read_lock();
        let _h = r.read_lock();
        panic!("inside a critical section (expected by the test)");
    }));
    assert!(p.is_err());
    assert!(!r.in_critical_section());
    let d2 = d.clone();
    assert!(within(Duration::from_secs(10), move || d2.synchronize()).is_some());
}

/// A QSBR callback that panics while its guard is open: the worker's hooks see the section
/// closed by unwinding and take it offline again; QSBR grace periods go on.
#[test]
fn held_panicking_qsbr_callback_with_an_open_guard_leaves_the_worker_offline() {
    const NAME: &str = "held_panicking_qsbr_callback_with_an_open_guard_leaves_the_worker_offline";
    isolated(NAME, WATCHDOG, || {
        qsbr::call_rcu(|| {
            let _g = qsbr::rcu_read_lock();
            panic!("callback panics inside a QSBR section (expected by the test)");
        });
        qsbr::rcu_barrier();
        assert_eq!(qsbr::default_domain().stats().callbacks_panicked, 1);
        let ok = within(Duration::from_secs(20), || {
            qsbr::synchronize_rcu();
            qsbr::call_rcu(|| ());
            qsbr::rcu_barrier();
            qsbr::synchronize_rcu();
        });
        assert!(
            ok.is_some(),
            "the QSBR worker stayed online after a panicking callback"
        );
    });
}

/// Producers handed over between a thread's exit and its domain's end, raced many times:
/// every callback runs exactly once (run it under ASan for the memory side).
#[test]
fn held_producer_hand_over_between_thread_exit_and_domain_end() {
    let rounds = if cfg!(miri) { 5 } else { 300 };
    for i in 0..rounds {
        let d: Domain<Mb> = Domain::new();
        let count = Arc::new(AtomicUsize::new(0));
        let n = 1 + (i % 3) * 300;
        let go = Arc::new(Barrier::new(2));
        let t = {
            let (d, count, go) = (d.clone(), count.clone(), go.clone());
            std::thread::spawn(move || {
                for _ in 0..n {
                    let c = count.clone();
                    d.call(move || {
                        c.fetch_add(1, Ordering::SeqCst);
                    });
                }
                drop(d);
                go.wait();
                // exits now: `owner_exit` races the domain's end
            })
        };
        go.wait();
        drop(d);
        t.join().unwrap();
        let start = Instant::now();
        while count.load(Ordering::SeqCst) != n {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "round {i}: {} of {n} callbacks ran",
                count.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_micros(50));
        assert_eq!(count.load(Ordering::SeqCst), n, "a callback ran twice");
    }
}

/// The last handle of a domain dropped inside its own callback, which queued one more: the
/// worker shuts down only after running it.
#[test]
fn held_last_handle_dropped_inside_a_callback_that_queues_another() {
    let d: Domain<Memb> = Domain::new();
    let ran = Arc::new(AtomicBool::new(false));
    let d2 = d.clone();
    let r2 = ran.clone();
    d.call(move || {
        d2.call(move || r2.store(true, Ordering::SeqCst));
        drop(d2);
    });
    drop(d);
    let t = Instant::now();
    while !ran.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "the last callback never ran"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Nested memb critical sections in a late thread-local destructor, with a grace period
/// running concurrently: the kept registration holds it until the outer guard is dropped.
#[test]
fn held_nested_sections_in_a_late_destructor_hold_grace_periods() {
    const NAME: &str = "held_nested_sections_in_a_late_destructor_hold_grace_periods";
    struct Late(Arc<AtomicU8>);
    impl Drop for Late {
        fn drop(&mut self) {
            let g1 = rcu_core::rcu_read_lock();
            let g2 = rcu_core::rcu_read_lock();
            let done = within(Duration::from_millis(200), rcu_core::synchronize_rcu).is_some();
            drop(g1); // out of order: g2 still protects
            let done2 = within(Duration::from_millis(200), rcu_core::synchronize_rcu).is_some();
            drop(g2);
            let done3 = within(Duration::from_secs(10), rcu_core::synchronize_rcu).is_some();
            self.0.store(
                if !done && !done2 && done3 { 1 } else { 2 },
                Ordering::SeqCst,
            );
        }
    }
    std::thread_local! {
        static LATE: std::cell::RefCell<Option<Late>> = const { std::cell::RefCell::new(None) };
    }
    isolated(NAME, WATCHDOG, || {
        let outcome = Arc::new(AtomicU8::new(0));
        let o2 = outcome.clone();
        std::thread::spawn(move || {
            LATE.with(|l| *l.borrow_mut() = Some(Late(o2)));
            drop(rcu_core::rcu_read_lock()); // the runtime's thread-locals come after ours
        })
        .join()
        .unwrap();
        assert_eq!(
            outcome.load(Ordering::SeqCst),
            1,
            "a grace period ended inside a late destructor's critical section, or never"
        );
    });
}
