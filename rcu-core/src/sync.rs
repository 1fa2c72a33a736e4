//! The one place that decides where atomics, fences, cells and thread primitives come from.
//!
//! Under `--cfg loom` everything comes from loom so that the models in `loom-tests` explore
//! every interleaving of the real algorithm; otherwise from `std`. No other module imports
//! `std::sync::atomic` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread::yield_now;

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread::yield_now;

/// A compiler-only fence. Loom does not model compiler fences, so under loom it is a real
/// `SeqCst` fence (the membarrier pairing is modelled as fences on both sides).
#[inline(always)]
pub(crate) fn light_fence() {
    #[cfg(loom)]
    fence(Ordering::SeqCst);
    #[cfg(not(loom))]
    std::sync::atomic::compiler_fence(Ordering::SeqCst);
}

/// Lock a mutex, ignoring poisoning: every critical section in this crate leaves the
/// protected data consistent before anything that can panic runs.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Wait on a condition variable, ignoring poisoning (see [`lock`]).
#[inline]
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    match cv.wait(g) {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// A park/unpark token for loom. loom's own `thread::park`/`unpark` cannot be used: its
/// `unpark` also wakes a thread blocked on a mutex, condition variable or `join` (and loom
/// then fails an internal assertion), whereas std's only ends a `park`.
#[cfg(loom)]
pub(crate) struct Parker {
    token: Mutex<bool>,
    cv: Condvar,
}

// Leaked, so that the thread-local has no destructor: loom destroys a thread's
// thread-locals in a random order, and a destructor with a loom operation (an `Arc`
// decrement) would make the models non-deterministic. One small leak per loom thread.
#[cfg(loom)]
loom::thread_local! {
    static PARKER: &'static Parker = Box::leak(Box::new(Parker {
        token: Mutex::new(false),
        cv: Condvar::new(),
    }));
}

/// A handle that wakes one thread from [`park_timeout`]. Waking is wait-free outside loom
/// (`Thread::unpark`: an atomic swap, plus a futex wake if the thread is parked).
#[derive(Clone)]
pub(crate) struct Unparker {
    #[cfg(not(loom))]
    thread: std::thread::Thread,
    #[cfg(loom)]
    parker: &'static Parker,
}

impl Unparker {
    /// The calling thread's handle.
    pub(crate) fn current() -> Self {
        Unparker {
            #[cfg(not(loom))]
            thread: std::thread::current(),
            #[cfg(loom)]
            parker: PARKER.with(|p| *p),
        }
    }

    /// Make the token available and wake the thread if it is parked.
    pub(crate) fn unpark(&self) {
        #[cfg(not(loom))]
        self.thread.unpark();
        #[cfg(loom)]
        {
            *lock(&self.parker.token) = true;
            self.parker.cv.notify_one();
        }
    }
}

/// Park the current thread for at most `d` (under loom: until unparked, loom has no timed
/// park; a wake-up that never comes is then reported as a deadlock).
#[inline]
pub(crate) fn park_timeout(d: std::time::Duration) {
    #[cfg(loom)]
    {
        let _ = d;
        let p = PARKER.with(|p| *p);
        let mut t = lock(&p.token);
        while !*t {
            t = wait(&p.cv, t);
        }
        *t = false;
    }
    #[cfg(not(loom))]
    std::thread::park_timeout(d);
}

/// Spin-wait hint (under loom: a yield so the model makes progress).
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

#[cfg(loom)]
pub(crate) use loom::thread::LocalKey;
#[cfg(loom)]
pub(crate) use loom::thread_local as tls;
#[cfg(not(loom))]
pub(crate) use std::thread::LocalKey;
#[cfg(not(loom))]
pub(crate) use std::thread_local as tls;

/// Spawn a named thread (a loom thread under loom).
pub(crate) fn spawn<T: Send + 'static>(
    name: String,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<()> {
    #[cfg(loom)]
    {
        let _ = name;
        loom::thread::spawn(f);
        Ok(())
    }
    #[cfg(not(loom))]
    {
        std::thread::Builder::new().name(name).spawn(f).map(drop)
    }
}
