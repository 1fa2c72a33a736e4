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
//!     let guard = qsbr::rcu_read_lock(); // a thread-local load, a branch and a store
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
use crate::qsbr_thread::{go_offline, leave_fast_path, sections, NESTING, OFF, REC, TEARDOWN};
use crate::reader::Reader;
use crate::record::Record;

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
        owner_gone: || NESTING.with(|n| n.set(n.get() | TEARDOWN | OFF)),
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
    leave_fast_path();
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
/// protects (the `Reader` API checks the former at compile time instead). The same
/// thread-local word marks a thread that is offline or unregistered, so opening and closing
/// an outermost section each cost one load, a never-taken branch and a store.
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
    if n & !OFF == TEARDOWN {
        release_kept();
    }
}

/// Opening a section off the fast path: the first one after registering or coming online
/// (which returns to the fast path), a nested one, or one during thread teardown.
#[cold]
#[inline(never)]
fn open_slow(n: usize) -> ReadGuard<'static, Qsbr> {
    let rec = super::slot::current_record(&REC, &SLOT);
    // SAFETY: this thread's record in the (never dropped) QSBR default domain; it stays
    // registered while a critical section is open (`NESTING`, counted below, keeps it so
    // at thread exit). Panics, before counting, if the thread is offline.
    let guard = unsafe { ReadGuard::enter(rec) };
    let count = n & !(TEARDOWN | OFF);
    // Back to the fast path (`NESTING == 0` between sections) only from the outermost
    // section outside teardown, and only now that `enter` has checked the record is online
    // and `current_record` that `REC` holds it: the invariant in `qsbr_thread`.
    let flags = if n == OFF { 0 } else { n - count };
    NESTING.with(|c| c.set(flags | (count + 1)));
    guard
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
    let n = NESTING.with(Cell::get);
    let inner = if n == 0 {
        let rec = REC.with(Cell::get);
        debug_assert!(!rec.is_null(), "NESTING == 0 while unregistered");
        // SAFETY: `NESTING == 0` only while `REC` holds this thread's registered, online
        // record (the invariant in `qsbr_thread`), which stays registered while a critical
        // section is open (`NESTING`, set below, keeps it so at thread exit); the record
        // lives in the (never dropped) QSBR default domain.
        let rec: &'static Record = unsafe { &*rec };
        // SAFETY: as above: this thread's online record, whose key is `rec.gp`.
        let guard = unsafe { ReadGuard::enter_online(rec, rec.gp_ptr()) };
        // A constant (see `RcuReadGuard::drop`).
        NESTING.with(|c| c.set(1));
        guard
    } else {
        open_slow(n)
    };
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
        go_offline(rec);
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
    leave_fast_path();
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
    leave_fast_path();
    SLOT.unregister("rcu_unregister_thread");
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::Ordering;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    /// The fast-path invariant of `qsbr_thread`: `NESTING == 0` only while `REC` holds this
    /// thread's online record.
    fn assert_invariant(step: usize) {
        if NESTING.with(Cell::get) == 0 {
            let rec = SLOT.registered();
            assert!(rec.is_some(), "step {step}: fast path while unregistered");
            assert!(
                online() == Some(true),
                "step {step}: fast path while offline"
            );
        }
    }

    /// `None`: unregistered; otherwise whether this thread's record is online.
    fn online() -> Option<bool> {
        // Relaxed: our own record.
        SLOT.registered()
            .map(|r| r.ctr.load(Ordering::Relaxed) != 0)
    }

    fn panics(f: impl FnOnce()) -> bool {
        catch_unwind(AssertUnwindSafe(f)).is_err()
    }

    /// A pseudo-random walk through a thread's transitions, with the guards it holds.
    struct Walk {
        x: u64,
        guards: Vec<RcuReadGuard>,
        opened: usize,
        refused: usize,
    }

    impl Walk {
        /// The next pseudo-random number (xorshift64).
        fn next(&mut self) -> u64 {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            self.x
        }

        /// `rcu_read_lock`: a guard only from an online (or unregistered) thread, a panic
        /// only from an offline one.
        fn read(&mut self, step: usize, before: Option<bool>) {
            match catch_unwind(rcu_read_lock) {
                Ok(g) => {
                    assert_ne!(before, Some(false), "step {step}: guard while offline");
                    assert_eq!(online(), Some(true));
                    self.guards.push(g);
                    self.opened += 1;
                }
                Err(_) => {
                    assert_eq!(before, Some(false), "step {step}: refused while online");
                    self.refused += 1;
                }
            }
        }

        /// Drop one of the guards held, in any order.
        fn drop_one(&mut self) {
            if !self.guards.is_empty() {
                let i = (self.x >> 16) as usize % self.guards.len();
                drop(self.guards.swap_remove(i));
            }
        }

        /// On a thread of its own, `steps` times: draw a number, call `op` with it and
        /// whether the thread was online, then check the fast-path invariant. At the end,
        /// both kinds of read happened often enough (`min` opened and refused); the thread
        /// leaves unregistered.
        fn run(
            seed: u64,
            steps: usize,
            min: (usize, usize),
            op: impl Fn(&mut Walk, usize, u64, Option<bool>) + Send + 'static,
        ) {
            std::thread::spawn(move || {
                let mut walk = Walk {
                    x: seed,
                    guards: Vec::new(),
                    opened: 0,
                    refused: 0,
                };
                for step in 0..steps {
                    let x = walk.next();
                    op(&mut walk, step, x, online());
                    assert_invariant(step);
                }
                let (opened, refused) = (walk.opened, walk.refused);
                assert!(
                    opened > min.0 && refused >= min.1,
                    "{opened} opened, {refused} refused"
                );
                drop(walk.guards);
                rcu_unregister_thread();
            })
            .join()
            .unwrap();
        }
    }

    /// Every transition of the free functions, in a long pseudo-random sequence, with
    /// guards dropped in any order: a guard only ever comes from an online thread, every
    /// call that would end a section refuses to run inside one, and `NESTING == 0` (the
    /// unchecked fast path) only ever holds while registered and online.
    #[test]
    fn random_transitions_keep_the_fast_path_invariant() {
        // Miri runs the same sequence, shorter.
        let steps = if cfg!(miri) { 1000 } else { 4000 };
        Walk::run(
            0x9E37_79B9_7F4A_7C15,
            steps,
            (steps / 8, steps / 200),
            |walk, step, x, before| match x % 12 {
                0..=2 => walk.read(step, before),
                3..=6 => walk.drop_one(),
                op => {
                    let call: fn() = match op {
                        7 => rcu_thread_offline,
                        8 => rcu_thread_online,
                        9 => rcu_unregister_thread,
                        10 => synchronize_rcu,
                        _ => rcu_quiescent_state,
                    };
                    let inside = !walk.guards.is_empty();
                    assert_eq!(panics(call), inside, "step {step}: op {op}");
                    let after = online();
                    match op {
                        _ if inside => assert_eq!(after, before, "step {step}: refused op {op}"),
                        7 => assert_ne!(after, Some(true)),
                        8 => assert_eq!(after, Some(true)),
                        9 => assert_eq!(after, None),
                        10 => assert_eq!(after, before, "synchronize restores the state"),
                        _ => {}
                    }
                }
            },
        );
    }

    /// The call_rcu worker's hooks on a thread that reads, in a pseudo-random sequence: a
    /// hook never ends an open section, and going offline through them leaves the fast
    /// path like every other way offline (user code runs on an offline worker: a stall
    /// hook, when it leads a grace period), so a read there is refused.
    #[test]
    fn worker_hooks_keep_the_fast_path_invariant() {
        use crate::qsbr_thread::{worker_offline, worker_online, worker_quiescent};
        let steps = if cfg!(miri) { 500 } else { 2000 };
        Walk::run(
            0x2545_F491_4F6C_DD1D,
            steps,
            (steps / 8, steps / 50),
            |walk, step, x, before| {
                match x % 8 {
                    0 | 1 => walk.read(step, before),
                    2..=4 => walk.drop_one(),
                    5 => worker_offline(),
                    6 => worker_online(),
                    _ => worker_quiescent(),
                }
                if !walk.guards.is_empty() {
                    assert_eq!(online(), Some(true), "step {step}: a hook ended a section");
                }
            },
        );
    }

    /// The call_rcu worker goes offline when it waits and online to run callbacks: a
    /// callback that reads gets a guard of an online thread each time.
    #[test]
    fn worker_transitions_keep_the_fast_path_invariant() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        let checked = Arc::new(AtomicUsize::new(0));
        for round in 0..20 {
            for _ in 0..3 {
                let checked = checked.clone();
                call_rcu(move || {
                    let outer = rcu_read_lock();
                    let inner = rcu_read_lock();
                    assert_eq!(online(), Some(true), "round {round}");
                    drop(outer);
                    drop(inner);
                    assert_invariant(round);
                    checked.fetch_add(1, Ordering::Relaxed);
                });
            }
            rcu_barrier();
        }
        assert_eq!(checked.load(Ordering::Relaxed), 60);
    }
}
