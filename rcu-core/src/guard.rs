//! `ReadGuard`: a read-side critical section, whose lifetime bounds every reference read
//! through it.

use core::fmt;
use core::marker::PhantomData;

use crate::domain::Domain;
use crate::flavor::Flavor;
use crate::record::Record;
use crate::sync::AtomicU64;

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
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) unsafe fn enter(rec: &'r Record) -> Self {
        // Contract 2: `rec.gp()` points into the live domain core; `lock` checks (qsbr) that
        // the record is online.
        F::lock(rec, rec.gp());
        ReadGuard {
            rec,
            key: rec.gp_ptr(),
            _flavor: PhantomData,
        }
    }

    /// [`enter`](Self::enter) for a reader known to be online, with the record's key
    /// supplied by the caller (a [`Reader`](crate::Reader)'s, held in a register).
    ///
    /// # Safety
    ///
    /// 1. and 2. as for [`enter`](Self::enter).
    /// 3. `key == rec.gp`.
    /// 4. (qsbr) `rec` is online, and stays so while the guard lives.
    #[inline(always)]
    pub(crate) unsafe fn enter_online(rec: &'r Record, key: *const AtomicU64) -> Self {
        debug_assert_eq!(key, rec.gp_ptr());
        // Relaxed: our own record (contract 1).
        debug_assert!(!F::STARTS_ONLINE || rec.ctr.load(crate::sync::Ordering::Relaxed) != 0);
        // SAFETY: `key` is `rec.gp` (contract 3), which points into the live domain core
        // (contract 2 and the record's type invariant). Contract 4 is what lets qsbr's
        // `lock_online` skip the online check.
        F::lock_online(rec, unsafe { &*key });
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
