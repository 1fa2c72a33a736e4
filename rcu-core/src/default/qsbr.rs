//! The QSBR default domain: the same free functions as the crate root, plus quiescent
//! states and offline/online. A thread that uses it must announce quiescent states
//! regularly (or go offline) or it stalls every grace period.
//!
//! ```
//! use rcu_core::qsbr;
//! use rcu_core::RcuBox;
//!
//! let value = RcuBox::new_in(1u32, qsbr::default_domain());
//! qsbr::rcu_register_thread();
//! {
//!     let guard = qsbr::rcu_read_lock(); // one load and a never-taken branch
//!     assert_eq!(*value.load(&guard), 1);
//! }
//! qsbr::rcu_quiescent_state();
//! qsbr::synchronize_rcu(); // goes offline for the wait, like liburcu
//! qsbr::rcu_unregister_thread();
//! ```
//!
//! # Rules the functions enforce
//!
//! - A read-side critical section needs the thread online: `rcu_read_lock` on an offline
//!   thread panics (the guard would protect nothing).
//! - `rcu_quiescent_state`, `rcu_thread_offline`, `rcu_thread_online`, `synchronize_rcu`,
//!   `rcu_barrier` and `rcu_unregister_thread` panic inside a critical section (each would
//!   end it early, or deadlock).
//! - Thread exit with a critical section still open (a leaked guard, or one held by a
//!   thread-local destroyed after this crate's) keeps the thread registered and online until
//!   that guard is dropped: grace periods wait for it and report the stall. During thread
//!   teardown a registration lasts only as long as its outermost critical section, so a
//!   late thread-local destructor that reads never leaves the thread registered online.

use core::cell::{Cell, RefCell};
use core::mem::ManuallyDrop;
use core::ptr;

use super::slot::{DefaultDomain, Owner, Slot, Teardown};
use crate::domain::Domain;
use crate::flavor::{self, Qsbr};
use crate::guard::ReadGuard;
use crate::qsbr_thread::{sections, NESTING, REC, TEARDOWN};
use crate::reader::Reader;

static DEFAULT_QSBR: DefaultDomain<Qsbr> = DefaultDomain::new();

std::thread_local! {
    static OWNER: Owner<Qsbr> = const {
        Owner { reader: RefCell::new(None), slot: &SLOT }
    };
    /// A registration kept beyond the `Owner` (thread teardown), freed when the outermost
    /// critical section ends. No destructor: usable in every destructor.
    static KEPT: Cell<*mut Reader<Qsbr>> = const { Cell::new(ptr::null_mut()) };
}

static SLOT: Slot<Qsbr> = Slot {
    rec: &REC,
    owner: &OWNER,
    domain: &DEFAULT_QSBR,
    teardown: Teardown {
        in_section: |_| sections() != 0,
        keep,
        owner_gone: || NESTING.with(|n| n.set(n.get() | TEARDOWN)),
    },
};

/// Keep `reader` registered after the `Owner` is gone, until the outermost critical section
/// ends ([`release_kept`]); forever if its guard is leaked.
fn keep(reader: Reader<Qsbr>) {
    let old = KEPT.with(|k| k.replace(Box::into_raw(Box::new(reader))));
    debug_assert!(old.is_null(), "one kept registration at a time");
}

/// The outermost critical section of a thread in teardown ended: unregister.
#[cold]
#[inline(never)]
fn release_kept() {
    let kept = KEPT.with(|k| k.replace(ptr::null_mut()));
    REC.with(|r| r.set(ptr::null()));
    if !kept.is_null() {
        // SAFETY: `kept` came from `Box::into_raw` in `keep` and was taken out of the cell
        // above, so it is freed once; no guard of it is left (its sections are all closed).
        drop(unsafe { Box::from_raw(kept) });
    }
}

/// The process-wide QSBR domain.
pub fn default_domain() -> &'static Domain<Qsbr> {
    DEFAULT_QSBR.get()
}

/// A read-side critical section of the QSBR default domain. Derefs to a [`ReadGuard`], so
/// RCU pointers load through it. Keeps a thread-local nesting count (in every build) so
/// that [`rcu_quiescent_state`], [`rcu_thread_offline`], [`rcu_thread_online`] and
/// [`synchronize_rcu`] can refuse to run inside it and thread exit cannot free what it
/// protects (the `Reader` API checks the former at compile time instead).
pub struct RcuReadGuard {
    inner: ManuallyDrop<ReadGuard<'static, Qsbr>>,
}

impl core::ops::Deref for RcuReadGuard {
    type Target = ReadGuard<'static, Qsbr>;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Drop for RcuReadGuard {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here, before the record can be released below.
        unsafe { ManuallyDrop::drop(&mut self.inner) };
        // The common case (the outermost section ends) stores a constant, so the count does
        // not form a chain of store-to-load forwardings from one section to the next: the
        // load only feeds a predicted branch.
        let n = NESTING.with(Cell::get);
        if n == 1 {
            NESTING.with(|c| c.set(0));
        } else {
            close_nested(n);
        }
    }
}

/// Closing a nested section, or one during thread teardown.
#[cold]
#[inline(never)]
fn close_nested(n: usize) {
    let n = n - 1;
    NESTING.with(|c| c.set(n));
    if n == TEARDOWN {
        release_kept();
    }
}

/// Opening a nested section, or one during thread teardown.
#[cold]
#[inline(never)]
fn open_nested(n: usize) {
    NESTING.with(|c| c.set(n + 1));
}

impl core::fmt::Debug for RcuReadGuard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("qsbr::RcuReadGuard")
    }
}

/// Enter a read-side critical section (`rcu_read_lock`); registers (online) on first use.
///
/// # Panics
///
/// If the thread is offline ([`rcu_thread_offline`]): grace periods ignore offline
/// threads, so the guard would protect nothing.
#[inline(always)]
pub fn rcu_read_lock() -> RcuReadGuard {
    let rec = super::slot::current_record(&REC, &SLOT);
    // SAFETY: this thread's record in the (never dropped) QSBR default domain; it stays
    // registered while a critical section is open (`NESTING`, counted below, keeps it so
    // at thread exit). Panics, before counting, if the thread is offline.
    let inner = unsafe { ReadGuard::enter(rec) };
    // A constant in the common case (see `RcuReadGuard::drop`).
    let n = NESTING.with(Cell::get);
    if n == 0 {
        NESTING.with(|c| c.set(1));
    } else {
        open_nested(n);
    }
    RcuReadGuard {
        inner: ManuallyDrop::new(inner),
    }
}

#[track_caller]
fn assert_outside(what: &str) {
    assert!(
        sections() == 0,
        "rcu: qsbr::{what}() inside a read-side critical section"
    );
}

/// Announce a quiescent state (`rcu_quiescent_state`).
///
/// # Panics
///
/// Inside a read-side critical section.
#[inline]
pub fn rcu_quiescent_state() {
    assert_outside("rcu_quiescent_state");
    if let Some(rec) = SLOT.registered() {
        flavor::qsbr_quiescent(rec);
    }
}

/// Go offline (`rcu_thread_offline`): grace periods stop waiting for this thread, so it may
/// block for a long time. A thread that is not registered is offline already.
///
/// # Panics
///
/// Inside a read-side critical section.
pub fn rcu_thread_offline() {
    assert_outside("rcu_thread_offline");
    if let Some(rec) = SLOT.registered() {
        flavor::qsbr_offline(rec);
    }
}

/// Come back online (`rcu_thread_online`), registering on first use.
///
/// # Panics
///
/// Inside a read-side critical section: coming online stores the current grace period,
/// which would act as a quiescent state and end the critical section early.
pub fn rcu_thread_online() {
    assert_outside("rcu_thread_online");
    if SLOT.in_teardown() && SLOT.registered().is_none() {
        // During thread teardown a registration lasts only for a critical section.
        return;
    }
    flavor::qsbr_online(SLOT.record());
}

/// Run `f` (a wait) with this thread offline if it was online; online again afterwards,
/// also when `f` panics (a wait refused because it would deadlock).
fn offline_around<R>(f: impl FnOnce() -> R) -> R {
    let _offline = flavor::OfflineWhile::new(SLOT.registered());
    f()
}

/// Wait for a grace period (`synchronize_rcu`); an online caller goes offline for the
/// wait, as in liburcu.
///
/// # Panics
///
/// Inside a read-side critical section or a callback of this domain.
pub fn synchronize_rcu() {
    assert_outside("synchronize_rcu");
    offline_around(|| DEFAULT_QSBR.get().synchronize());
}

/// Run `f` after a grace period (`call_rcu`). Never blocks.
#[inline]
pub fn call_rcu<C: FnOnce() + Send + 'static>(f: C) {
    DEFAULT_QSBR.get().call(f);
}

/// Wait for every callback queued so far (`rcu_barrier`); an online caller goes offline
/// for the wait.
///
/// # Panics
///
/// Inside a read-side critical section or a callback of this domain.
pub fn rcu_barrier() {
    assert_outside("rcu_barrier");
    offline_around(|| DEFAULT_QSBR.get().barrier());
}

/// Register the calling thread, online (`rcu_register_thread`). Idempotent. During thread
/// teardown (after this crate's thread-local is destroyed) it does nothing: a registration
/// there lasts only for a critical section.
pub fn rcu_register_thread() {
    if !SLOT.in_teardown() {
        let _ = SLOT.record();
    }
}

/// Unregister the calling thread (`rcu_unregister_thread`).
///
/// # Panics
///
/// Inside a read-side critical section.
pub fn rcu_unregister_thread() {
    assert_outside("rcu_unregister_thread");
    SLOT.unregister("rcu_unregister_thread");
}
