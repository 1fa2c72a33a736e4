//! Reader registration: the per-thread record, the `Reader` handle, and read guards.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use std::thread::ThreadId;

use crossbeam_utils::CachePadded;

use crate::domain::{Core, Domain, Waker};
use crate::flavor::{self, Flavor, Qsbr};
use crate::sync::{Arc, AtomicBool, AtomicU64, Ordering};

/// One registered reader thread's state, shared with the grace-period side.
///
/// Invariants: `ctr`'s only writer is the owning thread (plus unregistration and the
/// post-fork fixup, when the owner cannot be running); `nesting` is only touched by the
/// owning thread; `gp` and `waker` point into the `Core` that the owning [`Reader`] keeps
/// alive with an `Arc` for as long as this record can be used.
#[doc(hidden)]
pub struct Record {
    /// 0: idle/offline; otherwise the grace-period counter snapshot of the current critical
    /// section (memb, mb) or of the last quiescent state (qsbr).
    pub(crate) ctr: AtomicU64,
    /// Set by a waiting synchronizer; checked by the reader when it leaves.
    pub(crate) waiting: AtomicBool,
    /// QSBR in debug builds only: nesting depth of critical sections (owner thread only).
    /// Memb and Mb keep the depth in the low bits of `ctr`.
    pub(crate) nesting: Cell<usize>,
    gp: *const AtomicU64,
    waker: *const Waker,
    pub(crate) owner: ThreadId,
    pub(crate) name: Option<String>,
}

// SAFETY: the atomics are shared by design; `nesting` (a `Cell`) is only ever accessed by the
// owning thread: every access goes through `Reader`/`ReadGuard`/the default-domain
// thread-local, all of which are `!Send` and so stay on that thread. The grace-period side
// only reads `ctr`, `waiting`, `owner` and `name`. The raw pointers point into an `Arc<Core>`
// that outlives every use (see the type invariants).
unsafe impl Sync for Record {}
// SAFETY: see `Sync`: moving the record (in its `Arc`) between threads moves no thread-bound
// state; `nesting` is only used by the owner.
unsafe impl Send for Record {}

impl Record {
    pub(crate) fn new<F: Flavor>(core: &Core<F>, start: u64) -> Self {
        let t = std::thread::current();
        Record {
            ctr: AtomicU64::new(start),
            waiting: AtomicBool::new(false),
            nesting: Cell::new(0),
            gp: &core.gp.ctr,
            waker: &core.waker,
            owner: t.id(),
            name: t.name().map(str::to_owned),
        }
    }

    /// The domain's grace-period counter.
    #[inline(always)]
    pub(crate) fn gp(&self) -> &AtomicU64 {
        // SAFETY: `gp` points into the `Core` kept alive by the owning `Reader` (type
        // invariant), and the record is only used while that reader exists.
        unsafe { &*self.gp }
    }

    /// If a synchronizer is waiting for us, wake it. Called after `ctr` changed, with a
    /// full barrier (or the light half of the membarrier pair) in between.
    #[inline(always)]
    pub(crate) fn wake_if_waiting(&self) {
        // Relaxed: the barrier before this load orders it after our `ctr` store; the
        // writer sets `waiting`, then executes its barrier, then re-reads `ctr`, so either
        // it sees our new `ctr` or we see `waiting == true` here.
        if self.waiting.load(Ordering::Relaxed) {
            self.wake_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_slow(&self) {
        // SAFETY: as in `gp()`: `waker` points into the live `Core`.
        unsafe { &*self.waker }.wake();
    }

    /// Whether this reader is inside a critical section that began before grace-period
    /// counter value `new` (or, for qsbr, has not announced a quiescent state since).
    #[inline]
    pub(crate) fn blocks(ctr: u64, new: u64) -> bool {
        use crate::flavor::NEST_BITS;
        ctr != 0 && (ctr >> NEST_BITS) < (new >> NEST_BITS)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("ctr", &self.ctr.load(Ordering::Relaxed))
            .field("owner", &self.owner)
            .field("name", &self.name)
            .finish()
    }
}

/// A thread's registration with a [`Domain`]: the handle through which it reads.
///
/// Created by [`Domain::register`]; unregisters when dropped. `!Send`: a reader belongs to
/// the thread that registered it.
///
/// ```
/// use rcu_core::{Domain, Memb, RcuBox};
///
/// let domain: Domain<Memb> = Domain::new();
/// let value = RcuBox::new_in(7u32, &domain);
/// let reader = domain.register();
/// {
///     let guard = reader.read_lock();
///     assert_eq!(*value.load(&guard), 7);
/// } // critical section ends here
/// value.replace(8); // the old value is freed after a grace period
/// assert_eq!(*value.load(&reader.read_lock()), 8);
/// ```
pub struct Reader<F: Flavor> {
    pub(crate) rec: Arc<CachePadded<Record>>,
    /// `rec.gp`, the domain's key, copied here: a `Reader` has no interior mutability, so a
    /// loop of `read_lock`s keeps this in a register instead of reloading it from the
    /// record (whose atomics forbid that) on every entry.
    key: *const AtomicU64,
    pub(crate) domain: Domain<F>,
    _not_send: PhantomData<*mut ()>,
}

impl<F: Flavor> Reader<F> {
    pub(crate) fn new(domain: Domain<F>, rec: Arc<CachePadded<Record>>) -> Self {
        Reader {
            key: rec.gp,
            rec,
            domain,
            _not_send: PhantomData,
        }
    }

    /// Enter a read-side critical section (`rcu_read_lock`). Dropping the guard leaves it
    /// (`rcu_read_unlock`). Critical sections nest.
    #[inline(always)]
    pub fn read_lock(&self) -> ReadGuard<'_, F> {
        // SAFETY: the record is ours (this handle is `!Send`, so we are its thread) and
        // registered with a live domain for as long as `self` is borrowed; `key` is the
        // record's `gp`, copied at construction (neither ever changes).
        unsafe { ReadGuard::enter_keyed(&self.rec, self.key) }
    }

    /// The domain this reader is registered with.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Whether this thread is inside a read-side critical section of this reader.
    ///
    /// (For QSBR this is only tracked in debug builds; release builds return `false`.)
    pub fn in_critical_section(&self) -> bool {
        F::in_critical_section(&self.rec)
    }
}

impl Reader<Qsbr> {
    /// Announce a quiescent state (`rcu_quiescent_state`): this thread holds no reference
    /// obtained in an earlier critical section. Taking `&mut self` makes it impossible
    /// while a guard of this reader is alive:
    ///
    /// ```compile_fail
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register();
    /// let guard = reader.read_lock();
    /// reader.quiescent_state(); // error: `reader` is borrowed by `guard`
    /// drop(guard);
    /// ```
    ///
    /// The compiling twin:
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register();
    /// let guard = reader.read_lock();
    /// drop(guard);
    /// reader.quiescent_state();
    /// ```
    #[inline]
    pub fn quiescent_state(&mut self) {
        flavor::qsbr_quiescent(&self.rec);
    }

    /// Go offline (`rcu_thread_offline`) until the returned guard is dropped: grace periods
    /// stop waiting for this thread, so it may block for a long time.
    pub fn offline(&mut self) -> OfflineGuard<'_> {
        flavor::qsbr_offline(&self.rec);
        OfflineGuard { reader: self }
    }

    /// Go offline without a guard (`rcu_thread_offline`); see [`Reader::thread_online`].
    pub fn thread_offline(&mut self) {
        flavor::qsbr_offline(&self.rec);
    }

    /// Come back online (`rcu_thread_online`).
    pub fn thread_online(&mut self) {
        flavor::qsbr_online(&self.rec);
    }

    /// Whether this reader is online.
    pub fn is_online(&self) -> bool {
        self.rec.ctr.load(Ordering::Relaxed) != 0
    }

    /// Wait for a grace period from an online QSBR thread: goes offline for the wait (as
    /// liburcu's `synchronize_rcu` does for QSBR), then comes back online.
    pub fn synchronize(&mut self) {
        let was_online = self.is_online();
        if was_online {
            flavor::qsbr_offline(&self.rec);
        }
        self.domain.synchronize();
        if was_online {
            flavor::qsbr_online(&self.rec);
        }
    }
}

impl<F: Flavor> Drop for Reader<F> {
    fn drop(&mut self) {
        self.domain.core().unregister(&self.rec);
    }
}

impl<F: Flavor> fmt::Debug for Reader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("flavor", &F::NAME)
            .field("record", &**self.rec)
            .finish()
    }
}

/// A QSBR reader taken offline by [`Reader::offline`]; back online when dropped.
pub struct OfflineGuard<'r> {
    reader: &'r mut Reader<Qsbr>,
}

impl Drop for OfflineGuard<'_> {
    fn drop(&mut self) {
        flavor::qsbr_online(&self.reader.rec);
    }
}

impl fmt::Debug for OfflineGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OfflineGuard")
    }
}

/// A read-side critical section. References loaded through it borrow it, so none can
/// outlive the critical section; it is neither `Send` nor `Sync`.
///
/// A reference cannot escape its guard:
///
/// ```compile_fail
/// use rcu_core::{Domain, Memb, RcuBox};
/// let domain: Domain<Memb> = Domain::new();
/// let value = RcuBox::new_in(1u32, &domain);
/// let reader = domain.register();
/// let r: &u32 = {
///     let guard = reader.read_lock();
///     value.load(&guard) // error: `guard` does not live long enough
/// };
/// println!("{r}");
/// ```
///
/// The compiling twin copies the value out instead:
///
/// ```
/// use rcu_core::{Domain, Memb, RcuBox};
/// let domain: Domain<Memb> = Domain::new();
/// let value = RcuBox::new_in(1u32, &domain);
/// let reader = domain.register();
/// let r: u32 = {
///     let guard = reader.read_lock();
///     *value.load(&guard)
/// };
/// assert_eq!(r, 1);
/// ```
///
/// A guard cannot be sent to another thread:
///
/// ```compile_fail
/// use rcu_core::{Domain, Memb};
/// let domain: Domain<Memb> = Domain::new();
/// let reader = domain.register();
/// let guard = reader.read_lock();
/// std::thread::scope(|s| {
///     s.spawn(move || drop(guard)); // error: `*mut ()` cannot be sent between threads
/// });
/// ```
///
/// The compiling twin drops it on its own thread:
///
/// ```
/// use rcu_core::{Domain, Memb};
/// let domain: Domain<Memb> = Domain::new();
/// let reader = domain.register();
/// let guard = reader.read_lock();
/// std::thread::scope(|s| {
///     s.spawn(|| ());
/// });
/// drop(guard);
/// ```
#[must_use = "dropping the guard immediately ends the critical section"]
pub struct ReadGuard<'r, F: Flavor> {
    rec: &'r Record,
    /// The domain's key (`rec.gp`), read once at entry so that domain checks in loads
    /// compare against a register.
    key: *const AtomicU64,
    _flavor: PhantomData<(F, *mut ())>,
}

impl<'r, F: Flavor> ReadGuard<'r, F> {
    /// Enter a critical section on `rec`.
    ///
    /// # Safety
    ///
    /// 1. `rec` belongs to the calling thread (no other thread writes its `ctr`).
    /// 2. `rec` is registered with a live domain for all of `'r`.
    #[inline(always)]
    pub(crate) unsafe fn enter(rec: &'r Record) -> Self {
        // SAFETY: the caller's contract; `rec.gp` is the record's own key.
        unsafe { Self::enter_keyed(rec, rec.gp) }
    }

    /// [`enter`](Self::enter) with the record's key supplied by the caller.
    ///
    /// # Safety
    ///
    /// 1. and 2. as for [`enter`](Self::enter).
    /// 3. `key == rec.gp`.
    #[inline(always)]
    pub(crate) unsafe fn enter_keyed(rec: &'r Record, key: *const AtomicU64) -> Self {
        debug_assert_eq!(key, rec.gp);
        // SAFETY: `key` is `rec.gp` (contract 3), which points into the live domain core
        // (contract 2 and the record's type invariant).
        F::lock(rec, unsafe { &*key });
        ReadGuard {
            rec,
            key,
            _flavor: PhantomData,
        }
    }

    /// Whether this guard is a critical section of `domain` (one pointer comparison).
    /// Data structures that retire through a domain check this before handing out
    /// references, since a guard only protects against its own domain's grace periods.
    #[inline(always)]
    pub fn is_of(&self, domain: &Domain<F>) -> bool {
        self.key == domain.key()
    }

    /// The address of the domain core this guard protects (for domain checks).
    #[inline(always)]
    pub(crate) fn domain_key(&self) -> *const AtomicU64 {
        self.key
    }
}

impl<F: Flavor> Drop for ReadGuard<'_, F> {
    #[inline(always)]
    fn drop(&mut self) {
        F::unlock(self.rec);
    }
}

impl<F: Flavor> fmt::Debug for ReadGuard<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGuard")
            .field("flavor", &F::NAME)
            .finish()
    }
}
