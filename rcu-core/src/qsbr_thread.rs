//! This thread's registration with the default QSBR domain: the thread-local cells that the
//! `qsbr` free functions and the call_rcu worker share.
//!
//! `REC` is the thread's record (null: not registered); `NESTING` counts the critical
//! sections opened with `qsbr::rcu_read_lock` and not yet closed, in every build, plus two
//! flags: [`TEARDOWN`] once the thread's registration owner has been destroyed (the thread
//! is exiting), and [`OFF`], which keeps `rcu_read_lock` off its fast path. Neither cell
//! has a destructor, so both stay usable in every thread-local destructor.
//!
//! # The fast path
//!
//! `NESTING == 0` is the one state in which `rcu_read_lock` skips every check (one load, a
//! never-taken branch, a store of 1). Its invariant: **`NESTING == 0` only while `REC` is
//! non-null and its record is online**. Only the slow path of `rcu_read_lock` clears
//! [`OFF`], right after it has checked both on the record itself; every change that takes
//! the record offline or unregisters it sets [`OFF`] first ([`leave_fast_path`], or
//! [`go_offline`] which does both), the worker hooks included: user code runs on an
//! offline worker too (a stall hook, while the worker leads a grace period). Those changes
//! refuse to run inside a critical section (the free functions) or skip the thread while
//! one is open (the worker hooks), so they only ever find the count at 0; thread teardown,
//! which may find it above 0, sets [`TEARDOWN`] with [`OFF`]. A change that brings the
//! record online leaves [`OFF`] set: the next `rcu_read_lock` takes the slow path once and
//! re-checks.
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
/// Set in `NESTING` whenever the thread may be unregistered or offline (and from start-up,
/// before it registers): `rcu_read_lock` then takes its slow path, which checks.
pub(crate) const OFF: usize = 1 << (usize::BITS - 2);

std::thread_local! {
    pub(crate) static REC: Cell<*const Record> = const { Cell::new(ptr::null()) };
    pub(crate) static NESTING: Cell<usize> = const { Cell::new(OFF) };
}

/// Open critical sections of the free functions on this thread.
#[inline]
pub(crate) fn sections() -> usize {
    NESTING.with(Cell::get) & !(TEARDOWN | OFF)
}

/// About to take this thread's record offline or unregister it: keep `rcu_read_lock` off
/// its fast path until its slow path has checked the record again (the module's invariant).
#[inline]
pub(crate) fn leave_fast_path() {
    NESTING.with(|n| n.set(n.get() | OFF));
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

/// Take this thread's record `rec` offline, off the fast path first (the module's
/// invariant): the one way the free functions and the worker hooks go offline.
#[inline]
pub(crate) fn go_offline(rec: &Record) {
    leave_fast_path();
    flavor::qsbr_offline(rec);
}

/// The worker is about to wait: go offline if registered. User code can still run on this
/// thread while it is offline (a stall hook, when the worker leads the grace period), so
/// the fast path is left as for every other way offline.
pub(crate) fn worker_offline() {
    if let Some(rec) = idle_record().filter(|r| online(r)) {
        go_offline(rec);
    }
}
