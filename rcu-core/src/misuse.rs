//! Misuse detection: what this thread is doing that would make waiting for a grace period
//! (or a barrier) deadlock.
//!
//! Three thread-local facts: the records this thread registered (with their domain), the
//! domain whose callbacks this thread is running, and the domain whose stall hook it is
//! running. `synchronize`, `barrier` and their kin check them and panic with a message
//! instead of waiting forever. The record list has a destructor; once it is destroyed
//! (late thread-local destructors), the caller's registry is asked instead.

use core::cell::{Cell, RefCell};
use core::ptr::NonNull;

use crate::flavor::Flavor;
use crate::record::Record;
use crate::sync::{self, Ordering};

#[cfg(not(loom))]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = const { RefCell::new(Vec::new()) };
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
    /// The domain whose stall hook this thread is running (0: none).
    static IN_STALL_HOOK: Cell<u64> = const { Cell::new(0) };
}

// loom's `thread_local!` has no `const` initialisers.
#[cfg(loom)]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = RefCell::new(Vec::new());
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = Cell::new(0);
    /// The domain whose stall hook this thread is running (0: none).
    static IN_STALL_HOOK: Cell<u64> = Cell::new(0);
}

/// This thread registered `rec` with domain `domain`.
pub(crate) fn registered(domain: u64, rec: *const Record) {
    let _ = OWNED.try_with(|o| o.borrow_mut().push((domain, rec)));
}

/// This thread's record `rec` of domain `domain` is about to be freed, or its domain has
/// ended (freeing it). Matched by domain as well: the address of a record of an ended
/// domain may already belong to a record of another.
pub(crate) fn unregistered(domain: u64, rec: *const Record) {
    let _ = OWNED.try_with(|o| o.borrow_mut().retain(|&(id, p)| (id, p) != (domain, rec)));
}

/// How many records this thread has registered and not yet unregistered.
#[cfg(all(test, not(loom)))]
pub(crate) fn owned() -> usize {
    OWNED.with(|o| o.borrow().len())
}

/// Whether this thread is running a callback of `domain`.
pub(crate) fn in_callback_of(domain: u64) -> bool {
    IN_CALLBACK.try_with(Cell::get).unwrap_or(0) == domain
}

/// Marks this thread as running user code of a domain (its callbacks, or its stall hook)
/// until dropped.
pub(crate) struct Running {
    what: &'static crate::sync::LocalKey<Cell<u64>>,
    prev: u64,
}

impl Running {
    /// Callbacks of `domain`.
    pub(crate) fn callbacks(domain: u64) -> Self {
        Self::enter(&IN_CALLBACK, domain)
    }

    /// The stall hook of `domain`.
    pub(crate) fn stall_hook(domain: u64) -> Self {
        Self::enter(&IN_STALL_HOOK, domain)
    }

    fn enter(what: &'static crate::sync::LocalKey<Cell<u64>>, domain: u64) -> Self {
        let prev = what.try_with(|c| c.replace(domain)).unwrap_or(0);
        Running { what, prev }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.what.try_with(|c| c.set(self.prev));
    }
}

/// Why waiting for a grace period of `domain` (a domain of flavor `F`) here would
/// deadlock, if it would. `this_threads` lists this thread's records of `domain` from the
/// domain's registry: asked only when this thread's own list is already destroyed.
pub(crate) fn blocking_hazard<F: Flavor>(
    domain: u64,
    this_threads: impl FnOnce() -> Vec<NonNull<Record>>,
) -> Option<&'static str> {
    if in_callback_of(domain) {
        return Some(
            "from a call_rcu callback of the same domain: the callback worker would wait for \
             itself (deadlock)",
        );
    }
    if IN_STALL_HOOK.try_with(Cell::get).unwrap_or(0) == domain {
        return Some(
            "from the stall hook of the same domain: the hook runs inside the stalled grace \
             period, which would wait for itself (deadlock)",
        );
    }
    let owned = OWNED.try_with(|o| {
        o.borrow()
            .iter()
            .filter(|&&(id, _)| id == domain)
            // SAFETY: records in OWNED are removed (`unregistered`) before their `Reader`
            // frees them, and the list is thread-local, so `rec` is live.
            .find_map(|&(_, rec)| record_hazard::<F>(unsafe { &*rec }))
    });
    match owned {
        Ok(hazard) => hazard,
        // SAFETY: the registry's records stay valid while the domain lives (the caller's).
        Err(_) => this_threads()
            .into_iter()
            .find_map(|rec| record_hazard::<F>(unsafe { rec.as_ref() })),
    }
}

/// Why this thread's record `rec` forbids waiting for its domain's grace period.
fn record_hazard<F: Flavor>(rec: &Record) -> Option<&'static str> {
    if F::in_critical_section(rec) {
        return Some(
            "inside a read-side critical section of the same domain: the grace period would \
             wait for this thread (deadlock)",
        );
    }
    // Relaxed: our own record, written only by this thread.
    if F::STARTS_ONLINE && rec.ctr.load(Ordering::Relaxed) != 0 {
        return Some(
            "by an online QSBR reader of the same domain: the grace period would wait for \
             this thread (deadlock); use Reader::synchronize, or go offline first",
        );
    }
    None
}
