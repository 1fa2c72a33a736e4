//! fork(): a child of a process that uses RCU (with a busy reader thread, a running
//! call_rcu worker and pending callbacks) can still synchronize and run callbacks.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use rcu_core::{call_rcu, rcu_barrier, rcu_read_lock, synchronize_rcu, Domain, Memb, RcuBox};

#[test]
fn child_can_synchronize_and_run_callbacks() {
    // Parent state: the default domain's worker is running, another thread is a busy
    // registered reader, and a private domain has a registered reader too.
    let stop = Arc::new(AtomicBool::new(false));
    let value = Arc::new(RcuBox::new(1u64));
    let busy = {
        let (stop, value) = (stop.clone(), value.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let g = rcu_read_lock();
                assert!(*value.load(&g) >= 1);
            }
        })
    };
    let private: Domain<Memb> = Domain::new();
    let _other_reader = private.register();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    call_rcu(move || {
        r.fetch_add(1, Ordering::Relaxed);
    });
    rcu_barrier();
    value.replace(2);

    // SAFETY: fork() in a test binary: the child only uses async-signal-safe-enough paths
    // of our own library (locks released by our atfork handlers) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: only this thread exists. The busy reader of the parent must not block us.
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            synchronize_rcu();
            let flag = Arc::new(AtomicBool::new(false));
            let f = flag.clone();
            call_rcu(move || f.store(true, Ordering::Release));
            rcu_barrier();
            assert!(
                flag.load(Ordering::Acquire),
                "callback did not run in the child"
            );
            value.replace(3);
            assert_eq!(*value.load(&rcu_read_lock()), 3);
            private.synchronize();
            let f2 = Arc::new(AtomicBool::new(false));
            let f = f2.clone();
            private.call(move || f.store(true, Ordering::Release));
            private.barrier();
            assert!(f2.load(Ordering::Acquire));
        }))
        .map_or(1, |()| 0);
        // SAFETY: terminate the child without running the parent's atexit handlers or
        // test-harness machinery.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    let w = unsafe { libc::waitpid(pid, &mut status, 0) };
    assert_eq!(w, pid);
    stop.store(true, Ordering::Relaxed);
    busy.join().unwrap();
    assert!(
        libc::WIFEXITED(status),
        "child did not exit normally: {status}"
    );
    assert_eq!(libc::WEXITSTATUS(status), 0, "child failed");
    // The parent is unaffected.
    synchronize_rcu();
    assert_eq!(*value.load(&rcu_read_lock()), 2);
}
