//! Reader registration: the `Reader` handle of a thread registered with a domain, and
//! QSBR's offline/online states.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use crate::domain::Domain;
use crate::flavor::{self, Flavor, Qsbr};
use crate::guard::ReadGuard;
use crate::record::Record;
use crate::sync::AtomicU64;

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
    /// This thread's record: in a slot of the domain's registry, which `domain` keeps
    /// alive.
    rec: NonNull<Record>,
    /// `rec.gp`, the domain's key, copied here: a `Reader` has no interior mutability, so a
    /// loop of `read_lock`s keeps this in a register instead of reloading it from the
    /// record (whose atomics forbid that) on every entry. Null exactly while a QSBR reader
    /// is offline: every change of a `Reader`'s online state goes through
    /// [`set_online`](Reader::set_online) / [`set_offline`](Reader::set_offline) (which
    /// take `&mut self`, so no guard is alive), and `read_lock` tests this register instead
    /// of loading the record's state. (The readers that the default domains' thread-locals
    /// own are registration handles only: the `qsbr` free functions change their records'
    /// state directly and enter through `ReadGuard::enter`, which loads and checks it.)
    key: *const AtomicU64,
    pub(crate) domain: Domain<F>,
    _not_send: PhantomData<*mut ()>,
}

impl<F: Flavor> Reader<F> {
    pub(crate) fn new(domain: Domain<F>, rec: NonNull<Record>) -> Self {
        Reader {
            // SAFETY: `rec` came from the domain's registry, which `domain` keeps alive.
            key: unsafe { rec.as_ref() }.gp_ptr(),
            rec,
            domain,
            _not_send: PhantomData,
        }
    }

    /// Enter a read-side critical section (`rcu_read_lock`). Dropping the guard leaves it
    /// (`rcu_read_unlock`). Critical sections nest.
    ///
    /// # Panics
    ///
    /// (QSBR) If this reader is offline: grace periods ignore offline readers, so the guard
    /// would protect nothing. Come back online first:
    ///
    /// ```should_panic
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register();
    /// std::mem::forget(reader.offline()); // offline, and the guard that restores it is gone
    /// let _guard = reader.read_lock(); // panics: "read_lock() on an offline QSBR reader"
    /// ```
    #[inline(always)]
    pub fn read_lock(&self) -> ReadGuard<'_, F> {
        let key = self.key;
        if key.is_null() {
            // Only a QSBR reader's key is ever null: it is offline. Relaxed: our own record.
            debug_assert_eq!(self.rec().ctr.load(crate::sync::Ordering::Relaxed), 0);
            flavor::read_lock_while_offline();
        }
        // SAFETY: the record is ours (this handle is `!Send`, so we are its thread) and
        // registered with a live domain for as long as `self` is borrowed; `key` is not
        // null, so it is the record's `gp` and (qsbr) the record is online, and stays so
        // while the guard borrows `self` (only `&mut self` methods change it).
        unsafe { ReadGuard::enter_online(self.rec(), key) }
    }

    /// This reader's record.
    #[inline(always)]
    pub(crate) fn rec(&self) -> &Record {
        // SAFETY: the record lives in a registry slot that is never freed while the domain
        // (kept alive by `self.domain`) lives, and it is ours until we unregister in `Drop`.
        unsafe { self.rec.as_ref() }
    }

    /// The domain this reader is registered with.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Whether this thread is inside a read-side critical section of this reader.
    ///
    /// (For QSBR this is only tracked in debug builds; release builds return `false`.)
    pub fn in_critical_section(&self) -> bool {
        F::in_critical_section(self.rec())
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
    ///
    /// On an offline reader it does nothing: an offline reader is quiescent already, and
    /// stays offline (liburcu's `rcu_quiescent_state` would bring the thread online; here
    /// that takes [`thread_online`](Self::thread_online) or [`online`](Self::online)). A
    /// pool thread can announce a quiescent state after every job, online or not, without
    /// ever idling online.
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register_offline();
    /// reader.quiescent_state();
    /// assert!(!reader.is_online());
    /// domain.synchronize(); // not held up by the idle reader
    /// ```
    #[inline]
    pub fn quiescent_state(&mut self) {
        // A register test: the key is null exactly while the reader is offline.
        if !self.key.is_null() {
            flavor::qsbr_quiescent(self.rec());
        }
    }

    /// Go offline (`rcu_thread_offline`) until the returned guard is dropped: grace periods
    /// stop waiting for this thread, so it may block for a long time. The guard restores
    /// the earlier state: a reader that was offline already (registered with
    /// [`Domain::register_offline`], say) stays offline, so it never idles online.
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register_offline();
    /// drop(reader.offline()); // around a wait, in code that may run online or not
    /// assert!(!reader.is_online());
    /// domain.synchronize(); // not held up by the idle reader
    /// ```
    pub fn offline(&mut self) -> OfflineGuard<'_> {
        let was_online = self.is_online();
        if was_online {
            self.set_offline();
        }
        OfflineGuard {
            reader: self,
            was_online,
        }
    }

    /// Go offline without a guard (`rcu_thread_offline`); see [`Reader::thread_online`].
    pub fn thread_offline(&mut self) {
        self.set_offline();
    }

    /// Come back online (`rcu_thread_online`).
    pub fn thread_online(&mut self) {
        self.set_online();
    }

    /// Whether this reader is online.
    pub fn is_online(&self) -> bool {
        !self.key.is_null()
    }

    /// Go offline, and clear the key so that `read_lock` refuses to enter.
    pub(crate) fn set_offline(&mut self) {
        // The key first: were anything between the two writes ever to unwind, the reader
        // would be left refusing to read (harmless), never reading while offline.
        self.key = core::ptr::null();
        flavor::qsbr_offline(self.rec());
    }

    /// Come online, and set the key again.
    pub(crate) fn set_online(&mut self) {
        flavor::qsbr_online(self.rec());
        self.key = self.rec().gp_ptr();
    }

    /// Wait for a grace period from an online QSBR thread: goes offline for the wait (as
    /// liburcu's `synchronize_rcu` does for QSBR), then comes back online.
    ///
    /// # Panics
    ///
    /// As [`Domain::synchronize`]; the reader is then online again if it was.
    pub fn synchronize(&mut self) {
        let _offline = flavor::OfflineWhile::new(Some(self.rec()));
        self.domain.synchronize();
    }
}

impl<F: Flavor> Domain<F> {
    /// Register the calling thread as a reader (`rcu_register_thread`). The handle is
    /// `!Send` and unregisters when dropped. QSBR readers start online.
    pub fn register(&self) -> Reader<F> {
        let rec = self.gp.register();
        Reader::new(self.clone(), rec)
    }
}

impl<F: Flavor> Drop for Reader<F> {
    fn drop(&mut self) {
        self.domain.gp.unregister(self.rec);
    }
}

impl<F: Flavor> fmt::Debug for Reader<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("flavor", &F::NAME)
            .field("record", self.rec())
            .finish()
    }
}

/// A QSBR reader taken offline by [`Reader::offline`]; back online when dropped, if it was
/// online before.
pub struct OfflineGuard<'r> {
    reader: &'r mut Reader<Qsbr>,
    /// The reader was online before: come back online on drop.
    was_online: bool,
}

impl Drop for OfflineGuard<'_> {
    fn drop(&mut self) {
        if self.was_online {
            self.reader.set_online();
        }
    }
}

impl fmt::Debug for OfflineGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OfflineGuard")
    }
}
