//! The process-wide default domains and the C-named free functions.
//!
//! The hot path of [`rcu_read_lock`] is a const-initialised thread-local (`REC`, a raw
//! pointer with no destructor, so no lazy-init state check) plus one predictable
//! "registered yet?" branch. Registration (first use) and unregistration (thread exit, via a
//! second thread-local that does have a destructor) stay off the hot path.

use core::cell::{Cell, RefCell};
use core::ptr;
use std::sync::LazyLock;

use crate::domain::Domain;
use crate::flavor::{Flavor, Memb};
use crate::reader::{ReadGuard, Reader, Record};

/// Per-thread registration with one default domain.
pub(crate) struct Slot<F: Flavor> {
    pub(crate) rec: &'static std::thread::LocalKey<Cell<*const Record>>,
    pub(crate) owner: &'static std::thread::LocalKey<Owner<F>>,
    pub(crate) domain: &'static LazyLock<Domain<F>>,
}

/// Owns the thread's `Reader`; unregisters it at thread exit.
pub(crate) struct Owner<F: Flavor> {
    pub(crate) reader: RefCell<Option<Reader<F>>>,
    pub(crate) rec: &'static std::thread::LocalKey<Cell<*const Record>>,
}

impl<F: Flavor> Drop for Owner<F> {
    fn drop(&mut self) {
        let _ = self.rec.try_with(|r| r.set(ptr::null()));
        if let Some(reader) = self.reader.get_mut().take() {
            if reader.in_critical_section() {
                // A guard is still alive (leaked, or held by a later TLS destructor): keep
                // the registration so grace periods keep waiting (and report the stall)
                // rather than freeing what that guard protects.
                core::mem::forget(reader);
            }
        }
    }
}

impl<F: Flavor> Slot<F> {
    /// This thread's record, registering on first use.
    #[inline(always)]
    pub(crate) fn record(&self) -> &'static Record {
        let rec = self.rec.with(Cell::get);
        let rec = if rec.is_null() {
            self.register_slow()
        } else {
            rec
        };
        // SAFETY: non-null `REC` = the record of this thread's `Owner` reader (or a leaked
        // one), cleared before that reader drops; 'static holds since guards are `!Send`
        // and unregistration never frees a record that has a live guard.
        unsafe { &*rec }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn register_slow(&self) -> *const Record {
        let reader = self.domain.register();
        let p: *const Record = &**reader.rec;
        let mut reader = Some(reader);
        let _ = self
            .owner
            .try_with(|o| *o.reader.borrow_mut() = reader.take());
        if let Some(reader) = reader {
            // The owner thread-local is already destroyed (we are in a late TLS
            // destructor): keep this registration for the rest of the thread's life.
            core::mem::forget(reader);
        }
        self.rec.with(|r| r.set(p));
        p
    }

    pub(crate) fn registered(&self) -> Option<&'static Record> {
        let rec = self.rec.with(Cell::get);
        // SAFETY: as in `record`.
        (!rec.is_null()).then(|| unsafe { &*rec })
    }

    pub(crate) fn unregister(&self, what: &str) {
        if let Some(rec) = self.registered() {
            assert!(
                !F::in_critical_section(rec),
                "rcu: {what}() inside a read-side critical section"
            );
        }
        self.rec.with(|r| r.set(ptr::null()));
        let reader = self.owner.with(|o| o.reader.borrow_mut().take());
        drop(reader);
    }
}

static DEFAULT: LazyLock<Domain<Memb>> = LazyLock::new(Domain::new);

std::thread_local! {
    static REC: Cell<*const Record> = const { Cell::new(ptr::null()) };
    static OWNER: Owner<Memb> = const {
        Owner { reader: RefCell::new(None), rec: &REC }
    };
}

static SLOT: Slot<Memb> = Slot {
    rec: &REC,
    owner: &OWNER,
    domain: &DEFAULT,
};

/// The process-wide default (memb) domain.
pub fn default_domain() -> &'static Domain<Memb> {
    &DEFAULT
}

/// Enter a read-side critical section of the default domain (`rcu_read_lock`); dropping
/// the guard is `rcu_read_unlock`. Registers the thread on first use.
///
/// ```
/// use rcu_core::{rcu_read_lock, RcuBox};
/// let b = RcuBox::new(3);
/// let guard = rcu_read_lock();
/// let nested = rcu_read_lock(); // nesting is allowed
/// assert_eq!(*b.load(&nested), 3);
/// drop(nested);
/// drop(guard); // rcu_read_unlock
/// ```
#[inline(always)]
pub fn rcu_read_lock() -> ReadGuard<'static, Memb> {
    // Direct access to the const thread-local (not through `SLOT`'s `&LocalKey`, which
    // the optimiser does not always see through).
    let rec = REC.with(Cell::get);
    let rec = if rec.is_null() {
        SLOT.register_slow()
    } else {
        rec
    };
    // SAFETY: as in `Slot::record`: a non-null `REC` is this thread's live record.
    let rec = unsafe { &*rec };
    // SAFETY: `rec` is this thread's record in the (never dropped) default domain.
    unsafe { ReadGuard::enter(rec) }
}

/// Leave a read-side critical section (`rcu_read_unlock`): the same as dropping the guard.
#[inline(always)]
pub fn rcu_read_unlock<F: Flavor>(guard: ReadGuard<'_, F>) {
    drop(guard);
}

/// Wait for a grace period of the default domain (`synchronize_rcu`).
///
/// # Panics
///
/// Inside a read-side critical section or a callback of the default domain (deadlock).
pub fn synchronize_rcu() {
    DEFAULT.synchronize();
}

/// Run `f` after a grace period of the default domain, on its worker thread (`call_rcu`).
#[inline]
pub fn call_rcu<C: FnOnce() + Send + 'static>(f: C) {
    DEFAULT.call(f);
}

/// Drop `value` after a grace period of the default domain (`defer_rcu`/`kfree_rcu`).
#[inline]
pub fn defer_drop<T: Send + 'static>(value: T) {
    DEFAULT.defer_drop(value);
}

/// Wait until every callback queued on the default domain so far has run (`rcu_barrier`).
///
/// # Panics
///
/// Inside a read-side critical section or a callback of the default domain (deadlock).
pub fn rcu_barrier() {
    DEFAULT.barrier();
}

/// Register the calling thread with the default domain (`rcu_register_thread`). Optional:
/// [`rcu_read_lock`] registers on first use. Idempotent.
pub fn rcu_register_thread() {
    let _ = SLOT.record();
}

/// Unregister the calling thread (`rcu_unregister_thread`). Also done at thread exit.
///
/// # Panics
///
/// Inside a read-side critical section.
pub fn rcu_unregister_thread() {
    SLOT.unregister("rcu_unregister_thread");
}

/// The QSBR default domain: the same free functions as the crate root, plus quiescent
/// states and offline/online. A thread that uses it must announce quiescent states
/// regularly (or go offline) or it stalls every grace period.
///
/// ```
/// use rcu_core::qsbr;
/// use rcu_core::RcuBox;
///
/// let value = RcuBox::new_in(1u32, qsbr::default_domain());
/// qsbr::rcu_register_thread();
/// {
///     let guard = qsbr::rcu_read_lock(); // free: no instruction at all in release builds
///     assert_eq!(*value.load(&guard), 1);
/// }
/// qsbr::rcu_quiescent_state();
/// qsbr::synchronize_rcu(); // goes offline for the wait, like liburcu
/// qsbr::rcu_unregister_thread();
/// ```
pub mod qsbr {
    use super::*;
    use crate::flavor::{self, Qsbr};

    static DEFAULT_QSBR: LazyLock<Domain<Qsbr>> = LazyLock::new(Domain::new);

    std::thread_local! {
        static REC: Cell<*const Record> = const { Cell::new(ptr::null()) };
        static NESTING: Cell<usize> = const { Cell::new(0) };
        static OWNER: Owner<Qsbr> = const {
            Owner { reader: RefCell::new(None), rec: &REC }
        };
    }

    static SLOT: Slot<Qsbr> = Slot {
        rec: &REC,
        owner: &OWNER,
        domain: &DEFAULT_QSBR,
    };

    /// The process-wide QSBR domain.
    pub fn default_domain() -> &'static Domain<Qsbr> {
        &DEFAULT_QSBR
    }

    /// A read-side critical section of the QSBR default domain. Derefs to a
    /// [`ReadGuard`], so RCU pointers load through it. Keeps a thread-local nesting count
    /// so that [`rcu_quiescent_state`], [`rcu_thread_offline`] and [`synchronize_rcu`]
    /// can refuse to run inside it (the `Reader` API checks this at compile time instead).
    pub struct RcuReadGuard {
        inner: ReadGuard<'static, Qsbr>,
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
            NESTING.with(|n| n.set(n.get() - 1));
        }
    }

    impl core::fmt::Debug for RcuReadGuard {
        fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
            f.write_str("qsbr::RcuReadGuard")
        }
    }

    /// Enter a read-side critical section (`rcu_read_lock`); registers (online) on first use.
    #[inline(always)]
    pub fn rcu_read_lock() -> RcuReadGuard {
        let rec = REC.with(Cell::get);
        let rec = if rec.is_null() {
            SLOT.register_slow()
        } else {
            rec
        };
        // SAFETY: as in `Slot::record`: a non-null `REC` is this thread's live record.
        let rec = unsafe { &*rec };
        NESTING.with(|n| n.set(n.get() + 1));
        RcuReadGuard {
            // SAFETY: this thread's record in the (never dropped) QSBR default domain.
            inner: unsafe { ReadGuard::enter(rec) },
        }
    }

    fn assert_outside(what: &str) {
        assert!(
            NESTING.with(Cell::get) == 0,
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

    /// Go offline (`rcu_thread_offline`).
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section.
    pub fn rcu_thread_offline() {
        assert_outside("rcu_thread_offline");
        flavor::qsbr_offline(SLOT.record());
    }

    /// Come back online (`rcu_thread_online`).
    pub fn rcu_thread_online() {
        flavor::qsbr_online(SLOT.record());
    }

    fn offline_around<R>(f: impl FnOnce() -> R) -> R {
        let rec = SLOT.registered();
        let online = rec.is_some_and(|r| r.ctr.load(crate::sync::Ordering::Relaxed) != 0);
        if let (true, Some(rec)) = (online, rec) {
            flavor::qsbr_offline(rec);
        }
        let r = f();
        if let (true, Some(rec)) = (online, rec) {
            flavor::qsbr_online(rec);
        }
        r
    }

    /// Wait for a grace period (`synchronize_rcu`); an online caller goes offline for the
    /// wait, as in liburcu.
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section or a callback of this domain.
    pub fn synchronize_rcu() {
        assert_outside("synchronize_rcu");
        offline_around(|| DEFAULT_QSBR.synchronize());
    }

    /// Run `f` after a grace period (`call_rcu`).
    #[inline]
    pub fn call_rcu<C: FnOnce() + Send + 'static>(f: C) {
        DEFAULT_QSBR.call(f);
    }

    /// Wait for every callback queued so far (`rcu_barrier`); an online caller goes
    /// offline for the wait.
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section or a callback of this domain.
    pub fn rcu_barrier() {
        assert_outside("rcu_barrier");
        offline_around(|| DEFAULT_QSBR.barrier());
    }

    /// Register the calling thread, online (`rcu_register_thread`). Idempotent.
    pub fn rcu_register_thread() {
        let _ = SLOT.record();
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
}
