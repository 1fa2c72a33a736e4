//! Misuse detection: what this thread is doing that would make waiting for a grace period
//! (or a barrier) deadlock.
//!
//! Two thread-local facts: the records this thread registered (with their domain), and the
//! domain whose callbacks this thread is running. `synchronize`, `barrier` and their kin
//! check them and panic with a message instead of waiting forever.

use core::cell::{Cell, RefCell};

use crate::flavor::Flavor;
use crate::record::Record;
use crate::sync::{self, Ordering};

#[cfg(not(loom))]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = const { RefCell::new(Vec::new()) };
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
}

// loom's `thread_local!` has no `const` initialisers.
#[cfg(loom)]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = RefCell::new(Vec::new());
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = Cell::new(0);
}

/// This thread registered `rec` with domain `domain`.
pub(crate) fn registered(domain: u64, rec: *const Record) {
    let _ = OWNED.try_with(|o| o.borrow_mut().push((domain, rec)));
}

/// This thread's record `rec` is about to be freed.
pub(crate) fn unregistered(rec: *const Record) {
    let _ = OWNED.try_with(|o| o.borrow_mut().retain(|&(_, p)| p != rec));
}

/// Whether this thread is running a callback of `domain`.
pub(crate) fn in_callback_of(domain: u64) -> bool {
    IN_CALLBACK.try_with(Cell::get).unwrap_or(0) == domain
}

/// Marks this thread as running callbacks of a domain until dropped.
pub(crate) struct RunningCallbacks(u64);

impl RunningCallbacks {
    pub(crate) fn enter(domain: u64) -> Self {
        RunningCallbacks(IN_CALLBACK.try_with(|c| c.replace(domain)).unwrap_or(0))
    }
}

impl Drop for RunningCallbacks {
    fn drop(&mut self) {
        let _ = IN_CALLBACK.try_with(|c| c.set(self.0));
    }
}

/// Why waiting for a grace period of `domain` (a domain of flavor `F`) here would
/// deadlock, if it would.
pub(crate) fn blocking_hazard<F: Flavor>(domain: u64) -> Option<&'static str> {
    if in_callback_of(domain) {
        return Some(
            "from a call_rcu callback of the same domain: the callback worker would wait for \
             itself (deadlock)",
        );
    }
    OWNED
        .try_with(|o| {
            for &(id, rec) in o.borrow().iter() {
                if id != domain {
                    continue;
                }
                // SAFETY: records in OWNED are removed (`unregistered`) before their `Reader`
                // frees them, and the list is thread-local, so `rec` is live.
                let rec = unsafe { &*rec };
                if F::in_critical_section(rec) {
                    return Some(
                        "inside a read-side critical section of the same domain: the grace \
                         period would wait for this thread (deadlock)",
                    );
                }
                // Relaxed: our own record, written only by this thread.
                if F::STARTS_ONLINE && rec.ctr.load(Ordering::Relaxed) != 0 {
                    return Some(
                        "by an online QSBR reader of the same domain: the grace period would \
                         wait for this thread (deadlock); use Reader::synchronize, or go \
                         offline first",
                    );
                }
            }
            None
        })
        .unwrap_or(None)
}

/// Panic if waiting for a grace period of `domain` here would deadlock.
#[track_caller]
pub(crate) fn check_may_block<F: Flavor>(domain: u64, what: &str) {
    if let Some(hazard) = blocking_hazard::<F>(domain) {
        panic!("rcu: {what}() called {hazard}");
    }
}
