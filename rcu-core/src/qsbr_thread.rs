//! This thread's registration with the default QSBR domain: the thread-local cells that the
//! `qsbr` free functions and the call_rcu worker share.
//!
//! `REC` is the thread's record (null: not registered); `NESTING` counts the critical
//! sections opened with `qsbr::rcu_read_lock` and not yet closed, in every build, plus the
//! [`TEARDOWN`] bit once the thread's registration owner has been destroyed (the thread is
//! exiting). Neither cell has a destructor, so both stay usable in every thread-local
//! destructor.
//!
//! The worker hooks make the call_rcu worker (of any domain) behave as liburcu's call_rcu
//! thread does for QSBR: if a callback registered the worker thread, it is online while it
//! runs callbacks, announces a quiescent state after each one, and is offline whenever it
//! waits. A callback that leaked a guard (`mem::forget`) keeps its critical section open:
//! the hooks then leave the thread as it is, so grace periods wait (and report the stall)
//! rather than end under that guard.

use core::cell::Cell;
use core::ptr;

use crate::flavor;
use crate::record::Record;
use crate::sync::Ordering;

/// Set in `NESTING` once the thread's registration owner is gone (thread teardown): a
/// registration then lasts only as long as its outermost critical section.
pub(crate) const TEARDOWN: usize = 1 << (usize::BITS - 1);

std::thread_local! {
    pub(crate) static REC: Cell<*const Record> = const { Cell::new(ptr::null()) };
    pub(crate) static NESTING: Cell<usize> = const { Cell::new(0) };
}

/// Open critical sections of the free functions on this thread.
#[inline]
pub(crate) fn sections() -> usize {
    NESTING.with(Cell::get) & !TEARDOWN
}

/// This thread's record, if it is registered and outside every critical section.
fn idle_record() -> Option<&'static Record> {
    let rec = REC.with(Cell::get);
    if rec.is_null() || sections() != 0 {
        return None;
    }
    // SAFETY: a non-null REC is this thread's live record (cleared before it is freed).
    Some(unsafe { &*rec })
}

/// Whether `rec` is online. Relaxed: our own record, written only by this thread.
fn online(rec: &Record) -> bool {
    rec.ctr.load(Ordering::Relaxed) != 0
}

/// The worker is about to run callbacks: come online if registered (a callback may read).
pub(crate) fn worker_online() {
    if let Some(rec) = idle_record().filter(|r| !online(r)) {
        flavor::qsbr_online(rec);
    }
}

/// The worker ran a callback: announce a quiescent state if registered and online.
pub(crate) fn worker_quiescent() {
    if let Some(rec) = idle_record().filter(|r| online(r)) {
        flavor::qsbr_quiescent(rec);
    }
}

/// The worker is about to wait: go offline if registered.
pub(crate) fn worker_offline() {
    if let Some(rec) = idle_record().filter(|r| online(r)) {
        flavor::qsbr_offline(rec);
    }
}
