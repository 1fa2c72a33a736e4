//! RCU-protected pointers: the owning cells [`RcuBox`] and [`RcuOption`], and the raw
//! primitives of the C API ([`rcu_dereference`], [`rcu_assign_pointer`],
//! [`rcu_xchg_pointer`]).

use core::fmt;
use core::ptr::{self, NonNull};

use crate::domain::Domain;
use crate::flavor::{Flavor, Memb};
use crate::guard::ReadGuard;
use crate::retired::{defer_free, no_reset};
use crate::sync::{AtomicPtr, Ordering};

/// Load an RCU-protected pointer for reading (`rcu_dereference`).
///
/// `Acquire` (free on x86-64 and a plain load plus ordering elsewhere): the pointee's
/// initialisation, published by [`rcu_assign_pointer`], is visible through the result.
///
/// # Safety
///
/// 1. `p` holds null or a pointer to a valid `T` that, once unpublished, is freed only
///    after a grace period of `guard`'s domain has elapsed.
/// 2. No `&mut T` to the pointee exists while the returned reference lives.
#[inline(always)]
pub unsafe fn rcu_dereference<'g, T, F: Flavor>(
    p: &AtomicPtr<T>,
    guard: &'g ReadGuard<'_, F>,
) -> Option<&'g T> {
    let _ = guard;
    let raw = p.load(Ordering::Acquire);
    // SAFETY: by contract 1 the pointee stays valid until a grace period that cannot end
    // while `guard` (which outlives 'g) is held; contract 2 rules out aliasing `&mut`.
    unsafe { raw.as_ref() }
}

/// Publish `new` (`rcu_assign_pointer`): a `Release` store, so a reader that loads `new`
/// sees it fully initialised. Safe by itself; the obligations are on whoever later frees
/// the value that was replaced.
#[inline]
pub fn rcu_assign_pointer<T>(p: &AtomicPtr<T>, new: *mut T) {
    p.store(new, Ordering::Release);
}

/// Publish `new` and return the previous value (`rcu_xchg_pointer`), `AcqRel`. The old
/// pointer may still be in use by readers until a grace period has elapsed.
#[inline]
pub fn rcu_xchg_pointer<T>(p: &AtomicPtr<T>, new: *mut T) -> *mut T {
    p.swap(new, Ordering::AcqRel)
}

/// Publish `new` if `p` still holds `current` (`rcu_cmpxchg_pointer`); returns the value
/// found. `AcqRel` on success, `Acquire` on failure.
#[inline]
pub fn rcu_cmpxchg_pointer<T>(p: &AtomicPtr<T>, current: *mut T, new: *mut T) -> *mut T {
    match p.compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire) {
        Ok(v) | Err(v) => v,
    }
}

#[cold]
#[inline(never)]
fn wrong_domain() -> ! {
    panic!("rcu: guard belongs to another domain than this RCU pointer")
}

/// Panic unless `guard` is a critical section of the domain whose key is `key`: a guard
/// only holds off its own domain's grace periods.
#[inline(always)]
pub(crate) fn check_guard<F: Flavor>(key: usize, guard: &ReadGuard<'_, F>) {
    if guard.domain_key() as usize != key {
        wrong_domain();
    }
}

/// An RCU-protected, always-present value (arc-swap's `ArcSwap`, for any `T`): readers
/// `load` it under a guard (or take a [`snapshot`](Self::snapshot)), writers
/// [`store`](Self::store) a new one and the old value is dropped after a grace period.
///
/// | arc-swap / crossbeam-epoch | `RcuBox` |
/// |---|---|
/// | `load` (a `Guard`) | [`load`](Self::load) under a guard; [`snapshot`](Self::snapshot) (guard and value in one) |
/// | `load_full` | [`load_full`](Self::load_full) (for `RcuBox<Arc<T>>`) |
/// | `store` | [`store`](Self::store) |
/// | `swap` | [`swap`](Self::swap) (the old value as a [`Retired`](crate::Retired)) |
/// | `compare_and_swap`, `compare_exchange` | [`compare_exchange`](Self::compare_exchange) |
/// | `rcu` | [`rcu`](Self::rcu) (no guard needed), [`update`](Self::update) (under yours) |
///
/// Invariant: `ptr` is always a `Box`-allocated `T` owned by this cell; a value it no longer
/// points to is freed only after a grace period of `domain` (or never, when handed back
/// to the caller by [`RcuBox::swap_sync`] or a [`Retired`](crate::Retired)).
///
/// ```
/// use rcu_core::{rcu_read_lock, RcuBox};
///
/// let config = RcuBox::new(String::from("v1"));
/// {
///     let guard = rcu_read_lock();
///     assert_eq!(config.load(&guard), "v1");
/// }
/// config.store(String::from("v2")); // "v1" is dropped after a grace period
/// assert_eq!(config.load(&rcu_read_lock()), "v2");
/// let old = config.swap_sync(String::from("v3")); // waits, then hands "v2" back
/// assert_eq!(old, "v2");
/// ```
///
/// `Send` and `Sync` (as every cell of this crate): readers on other threads get `&T`, and
/// the old value is dropped on the worker thread, so `T` must be `Send + Sync`:
///
/// ```compile_fail,E0277
/// use rcu_core::RcuBox;
/// let cell = RcuBox::new(std::rc::Rc::new(1)); // error: `Rc` cannot be shared between threads
/// ```
///
/// The compiling twin uses `Arc`:
///
/// ```
/// use rcu_core::RcuBox;
/// let cell = RcuBox::new(std::sync::Arc::new(1));
/// assert_eq!(*cell.load_full(), 1);
/// ```
pub struct RcuBox<T: Send + Sync + 'static, F: Flavor = Memb> {
    pub(crate) ptr: AtomicPtr<T>,
    /// `domain.key()`, cached next to `ptr` for the check in `load`.
    pub(crate) key: usize,
    pub(crate) domain: Domain<F>,
}

#[cfg(not(loom))]
impl<T: Send + Sync + 'static> RcuBox<T, Memb> {
    /// A cell in the default (memb) domain.
    pub fn new(value: T) -> Self {
        Self::new_in(value, crate::default::default_domain())
    }
}

/// A cell in the default (memb) domain.
///
/// ```
/// use rcu_core::RcuBox;
/// let cell: RcuBox<String> = String::from("x").into();
/// assert_eq!(*cell.snapshot(), "x");
/// ```
#[cfg(not(loom))]
impl<T: Send + Sync + 'static> From<T> for RcuBox<T, Memb> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

/// A cell holding `T::default()`, in the default (memb) domain.
///
/// ```
/// use rcu_core::RcuBox;
/// let cell: RcuBox<Vec<u8>> = Default::default();
/// assert!(cell.snapshot().is_empty());
/// ```
#[cfg(not(loom))]
impl<T: Default + Send + Sync + 'static> Default for RcuBox<T, Memb> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuBox<T, F> {
    /// A cell whose retired values are reclaimed through `domain`.
    pub fn new_in(value: T, domain: &Domain<F>) -> Self {
        RcuBox {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(value))),
            key: domain.key() as usize,
            domain: domain.clone(),
        }
    }

    /// Read the current value. The reference lives as long as the guard (and the cell).
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain (its critical section would not protect us).
    #[inline(always)]
    pub fn load<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> &'g T {
        check_guard(self.key, guard);
        // SAFETY: the pointer is never null (type invariant) and a replaced value is only
        // freed after a grace period of our domain, which `guard` (same domain, checked
        // above) holds off for 'g; we never hand out `&mut T` while shared.
        unsafe { rcu_dereference(&self.ptr, guard).unwrap_unchecked() }
    }

    /// Read the current value without a read-side critical section: for writers that are
    /// already serialised among themselves (QEMU's "writers hold the lock, so no
    /// `rcu_read_lock` is needed" rule).
    ///
    /// # Safety
    ///
    /// 1. No thread replaces or retires the current value while the returned reference
    ///    lives (for example: every writer of this cell holds a lock that the caller holds).
    #[inline]
    pub unsafe fn load_unprotected(&self) -> &T {
        // SAFETY: the pointer is a live `Box` (type invariant) and, by contract 1, it is not
        // unpublished, so not freed, while the reference lives.
        unsafe { &*self.ptr.load(Ordering::Acquire) }
    }

    /// Publish `value`; the old one is dropped on the domain's worker after a grace period
    /// (`rcu_xchg_pointer` + `call_rcu`; arc-swap's `store`). Never blocks (see
    /// [`Domain::call`]). [`swap`](Self::swap) hands the old value back instead.
    ///
    /// ```
    /// use rcu_core::{rcu_barrier, RcuBox};
    /// let cell = RcuBox::new(1u8);
    /// cell.store(2);
    /// assert_eq!(*cell.snapshot(), 2);
    /// rcu_barrier(); // the 1 has been dropped
    /// ```
    pub fn store(&self, value: T) {
        let old = rcu_xchg_pointer(&self.ptr, Box::into_raw(Box::new(value)));
        // SAFETY: `old` came from `Box::into_raw` (type invariant, never null) and is now
        // unpublished; readers of our domain may still hold it, and `defer_free` frees it
        // after a grace period.
        unsafe { defer_free(&self.domain, NonNull::new_unchecked(old), no_reset) };
    }

    /// The 0.1 name of [`store`](Self::store) (which it calls). Unlike `mem::replace` it
    /// returns nothing: use [`swap`](Self::swap) for the old value.
    #[inline]
    pub fn replace(&self, value: T) {
        self.store(value);
    }

    /// The 0.1 name of [`swap_sync`](Self::swap_sync) (which it calls).
    ///
    /// # Panics
    ///
    /// As [`swap_sync`](Self::swap_sync).
    #[inline]
    pub fn replace_sync(&self, value: T) -> T {
        self.swap_sync(value)
    }

    /// Publish `value`, wait for a grace period, and return the old value
    /// (`rcu_xchg_pointer` + `synchronize_rcu`; [`RcuOption::swap_sync`]'s twin).
    ///
    /// ```
    /// use rcu_core::RcuBox;
    /// let cell = RcuBox::new(1u8);
    /// assert_eq!(cell.swap_sync(2), 1);
    /// ```
    ///
    /// # Blocking
    ///
    /// As [`Domain::synchronize`].
    ///
    /// # Panics
    ///
    /// As [`Domain::synchronize`] does when it would deadlock; the check comes first, so the
    /// cell keeps its value (and `value` is dropped) when it panics.
    pub fn swap_sync(&self, value: T) -> T {
        // Before anything changes: a panic here leaves the cell as it was.
        self.domain.check_may_block("swap_sync");
        let old = rcu_xchg_pointer(&self.ptr, Box::into_raw(Box::new(value)));
        self.domain.synchronize();
        // SAFETY: `old` came from `Box::into_raw`, is unpublished, and a grace period has
        // elapsed, so no reader still holds a reference to it.
        *unsafe { Box::from_raw(old) }
    }

    /// The domain reclaiming this cell's old values.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Mutable access: `&mut self` proves no reader holds a reference.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: non-null `Box` pointer (invariant); `&mut self` excludes every borrow,
        // including references loaded under guards (they borrow `self`).
        unsafe { &mut *self.ptr.load(Ordering::Relaxed) }
    }

    /// Take the value out.
    pub fn into_inner(self) -> T {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: we own `this` and never use it again (ManuallyDrop); reading the domain
        // out moves it.
        let domain = unsafe { ptr::read(&this.domain) };
        drop(domain);
        // SAFETY: `self` by value: no borrow, so no reader reference, exists.
        *unsafe { Box::from_raw(this.ptr.load(Ordering::Relaxed)) }
    }
}

impl<T: Send + Sync + 'static, F: Flavor> Drop for RcuBox<T, F> {
    fn drop(&mut self) {
        // SAFETY: `&mut self` proves no reader reference remains (they borrow `self`); the
        // pointer is the cell's own `Box`.
        drop(unsafe { Box::from_raw(self.ptr.load(Ordering::Relaxed)) });
    }
}

impl<T: Send + Sync + fmt::Debug + 'static, F: Flavor> fmt::Debug for RcuBox<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuBox").finish_non_exhaustive()
    }
}

/// An RCU-protected optional value: like [`RcuBox`], but may be empty (arc-swap's
/// `ArcSwapOption`). The same names as [`RcuBox`]'s, over `Option<T>`.
///
/// Invariant: `ptr` is null or a `Box`-allocated `T` owned by this cell; unpublished
/// values are freed only after a grace period of `domain`.
///
/// ```
/// use rcu_core::{rcu_read_lock, RcuOption};
///
/// let slot: RcuOption<u64> = RcuOption::new(None);
/// assert!(slot.load(&rcu_read_lock()).is_none());
/// slot.store(Some(5));
/// assert_eq!(slot.load(&rcu_read_lock()), Some(&5));
/// drop(slot.take()); // retired: freed after a grace period
/// assert!(slot.load(&rcu_read_lock()).is_none());
/// ```
pub struct RcuOption<T: Send + Sync + 'static, F: Flavor = Memb> {
    pub(crate) ptr: AtomicPtr<T>,
    /// `domain.key()`, cached next to `ptr` for the check in `load`.
    pub(crate) key: usize,
    pub(crate) domain: Domain<F>,
}

/// A fresh allocation for `value` (null for `None`), not yet published.
pub(crate) fn into_raw<T>(value: Option<T>) -> *mut T {
    value.map_or(ptr::null_mut(), |v| Box::into_raw(Box::new(v)))
}

#[cfg(not(loom))]
impl<T: Send + Sync + 'static> RcuOption<T, Memb> {
    /// A cell in the default (memb) domain.
    pub fn new(value: Option<T>) -> Self {
        Self::new_in(value, crate::default::default_domain())
    }
}

/// A cell in the default (memb) domain.
///
/// ```
/// use rcu_core::RcuOption;
/// let slot: RcuOption<u8> = 7.into();
/// assert_eq!(*slot.snapshot().unwrap(), 7);
/// ```
#[cfg(not(loom))]
impl<T: Send + Sync + 'static> From<T> for RcuOption<T, Memb> {
    fn from(value: T) -> Self {
        Self::new(Some(value))
    }
}

/// An empty cell in the default (memb) domain.
///
/// ```
/// use rcu_core::RcuOption;
/// let slot: RcuOption<String> = Default::default();
/// assert!(slot.snapshot().is_none());
/// ```
#[cfg(not(loom))]
impl<T: Send + Sync + 'static> Default for RcuOption<T, Memb> {
    fn default() -> Self {
        Self::new(None)
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuOption<T, F> {
    /// A cell whose retired values are reclaimed through `domain`.
    pub fn new_in(value: Option<T>, domain: &Domain<F>) -> Self {
        RcuOption {
            ptr: AtomicPtr::new(into_raw(value)),
            key: domain.key() as usize,
            domain: domain.clone(),
        }
    }

    /// Read the current value, if any.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain.
    #[inline(always)]
    pub fn load<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> Option<&'g T> {
        check_guard(self.key, guard);
        // SAFETY: null or a `Box` freed only after a grace period of our domain, held off
        // by `guard` (same domain, checked above); no `&mut T` while shared.
        unsafe { rcu_dereference(&self.ptr, guard) }
    }

    /// Publish `value`; the old value (if any) is dropped after a grace period. Never
    /// blocks.
    pub fn store(&self, value: Option<T>) {
        let old = rcu_xchg_pointer(&self.ptr, into_raw(value));
        if let Some(old) = NonNull::new(old) {
            // SAFETY: an unpublished `Box` of ours, freed after a grace period.
            unsafe { defer_free(&self.domain, old, no_reset) };
        }
    }

    /// Publish `value`, wait for a grace period, and return the old value.
    ///
    /// # Blocking
    ///
    /// As [`Domain::synchronize`], when the cell held a value.
    ///
    /// # Panics
    ///
    /// As [`Domain::synchronize`] does when it would deadlock; the check comes first, so the
    /// cell keeps its value (and `value` is dropped) when it panics.
    pub fn swap_sync(&self, value: Option<T>) -> Option<T> {
        // Before anything changes: a panic here leaves the cell as it was.
        self.domain.check_may_block("swap_sync");
        let old = rcu_xchg_pointer(&self.ptr, into_raw(value));
        if old.is_null() {
            return None;
        }
        self.domain.synchronize();
        // SAFETY: unpublished `Box` pointer and a grace period has elapsed.
        Some(*unsafe { Box::from_raw(old) })
    }

    /// Publish `value` only if the cell is empty; gives `value` back otherwise.
    pub fn set_if_empty(&self, value: T) -> Result<(), T> {
        let new = Box::into_raw(Box::new(value));
        let found = rcu_cmpxchg_pointer(&self.ptr, ptr::null_mut(), new);
        if found.is_null() {
            Ok(())
        } else {
            // SAFETY: `new` was never published; we still own it.
            Err(*unsafe { Box::from_raw(new) })
        }
    }

    /// The domain reclaiming this cell's old values.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Mutable access: `&mut self` proves no reader holds a reference.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        // SAFETY: null or our `Box` (invariant); `&mut self` excludes every borrow,
        // including references loaded under guards (they borrow `self`).
        unsafe { self.ptr.load(Ordering::Relaxed).as_mut() }
    }

    /// Take the value out.
    pub fn into_inner(self) -> Option<T> {
        // Relaxed: `self` by value, no other thread can reach the cell.
        let p = self.ptr.swap(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: null or our `Box`, now out of the cell (whose `Drop` finds null); no
        // reader reference exists (`self` by value).
        (!p.is_null()).then(|| *unsafe { Box::from_raw(p) })
    }
}

impl<T: Send + Sync + 'static, F: Flavor> Drop for RcuOption<T, F> {
    fn drop(&mut self) {
        let p = self.ptr.load(Ordering::Relaxed);
        if !p.is_null() {
            // SAFETY: `&mut self`: no reader reference remains; `p` is our `Box`.
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

impl<T: Send + Sync + 'static, F: Flavor> fmt::Debug for RcuOption<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuOption").finish_non_exhaustive()
    }
}
