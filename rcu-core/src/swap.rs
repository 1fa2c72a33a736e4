//! The writers of [`RcuBox`] and [`RcuOption`] (named as arc-swap names them): `swap`,
//! which hands the old value back as a [`Retired`]; `compare_exchange`, by pointer
//! identity; `rcu`, the read-copy-update loop that needs no caller guard.
//!
//! Both cells are an `AtomicPtr` owned by the cell (never null for `RcuBox`), so the
//! algorithms are written once here over the raw pointer, with the domain that retires.

use core::fmt;
use core::ptr::{self, NonNull};

use crate::domain::Domain;
use crate::flavor::Flavor;
use crate::guard::ReadGuard;
use crate::ptr::{check_guard, into_raw, rcu_cmpxchg_pointer, rcu_xchg_pointer, RcuBox, RcuOption};
use crate::retired::{defer_free, no_reset, Retired};
use crate::sync::{AtomicPtr, Ordering};

/// The failure of a `compare_exchange`: the value the cell held instead of the expected
/// one (read under the caller's guard), and the new value, handed back unpublished.
/// (crossbeam-epoch's `CompareExchangeError`.)
pub struct CompareExchangeError<C, N> {
    /// What the cell held: `&T` for [`RcuBox`], `Option<&T>` for [`RcuOption`].
    pub current: C,
    /// The value that was to be stored, never published.
    pub new: N,
}

impl<C: fmt::Debug, N> fmt::Debug for CompareExchangeError<C, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompareExchangeError")
            .field("current", &self.current)
            .finish_non_exhaustive()
    }
}

/// Take back an allocation from [`into_raw`] that was never published.
///
/// # Safety
///
/// `p` came from [`into_raw`] and was never published (or was unpublished with no reader
/// able to see it), and is not used again.
unsafe fn from_unpublished<T>(p: *mut T) -> Option<T> {
    // SAFETY: the contract: a `Box` of ours, or null.
    (!p.is_null()).then(|| *unsafe { Box::from_raw(p) })
}

/// The value `old`, just unpublished from a cell of `domain`, as a [`Retired`] (`None` for
/// null).
///
/// # Safety
///
/// `old` is null or a `Box` allocation the cell owned and has just unpublished: only
/// readers of `domain` can still see it, and the caller gives up ownership.
unsafe fn retire<T: Send + 'static, F: Flavor>(
    old: *mut T,
    domain: &Domain<F>,
) -> Option<Retired<T, F>> {
    // SAFETY: the contract is `Retired::from_raw`'s.
    NonNull::new(old).map(|p| unsafe { Retired::from_raw(p, domain.clone()) })
}

/// What [`compare_exchange_raw`] gives back: the retired old value, or what the cell
/// held and the new value, unpublished.
type Exchanged<T, F> = Result<Option<Retired<T, F>>, (*mut T, Option<T>)>;

/// Publish `new` in place of `current` if the cell still holds `current`.
///
/// `Ok(old)`: published, `old` (== `current`) unpublished and retired. `Err((found, new))`:
/// the cell held `found`; `new` is handed back unpublished.
///
/// # Safety
///
/// `cell` is a cell's pointer (null or a `Box` it owns, unpublished values freed only after
/// a grace period of `domain`); `new` came from [`into_raw`] and is ours.
unsafe fn compare_exchange_raw<T: Send + 'static, F: Flavor>(
    cell: &AtomicPtr<T>,
    current: *const T,
    new: *mut T,
    domain: &Domain<F>,
) -> Exchanged<T, F> {
    // AcqRel on success (the new value's initialisation is published; see
    // `rcu_cmpxchg_pointer`), Acquire on failure (the caller reads what it found).
    let found = rcu_cmpxchg_pointer(cell, current.cast_mut(), new);
    if ptr::eq(found, current) {
        // SAFETY: we just unpublished `found`, the cell's own allocation.
        Ok(unsafe { retire(found, domain) })
    } else {
        // SAFETY: `new` was never published.
        Err((found, unsafe { from_unpublished(new) }))
    }
}

/// The read-copy-update loop: build a new value from the current one (`f` gets the current
/// pointer, loaded under `guard`, and returns a fresh allocation from [`into_raw`]) and
/// publish it if nobody changed the cell meanwhile; retry otherwise. Returns the value it
/// replaced, unpublished.
///
/// # Safety
///
/// `cell` is a cell's pointer of `guard`'s domain (checked by the caller); what `f`
/// returns comes from [`into_raw`].
unsafe fn update_raw<T, F: Flavor>(
    cell: &AtomicPtr<T>,
    guard: &ReadGuard<'_, F>,
    mut f: impl FnMut(*const T) -> *mut T,
) -> *mut T {
    let _ = guard;
    loop {
        // Acquire: the value's initialisation is visible (pairs with the Release of
        // whoever published it).
        let cur = cell.load(Ordering::Acquire);
        let new = f(cur);
        if rcu_cmpxchg_pointer(cell, cur, new) == cur {
            return cur;
        }
        // SAFETY: `new` was never published (the exchange failed).
        drop(unsafe { from_unpublished(new) });
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuBox<T, F> {
    /// Publish `value` and hand the old value back as a [`Retired`]: free it after a grace
    /// period (drop it, or [`Retired::defer`]), run a callback on it
    /// ([`Retired::call`]), or wait and get it back ([`Retired::synchronize`])
    /// (`rcu_xchg_pointer`; arc-swap's `swap`). Never blocks.
    ///
    /// ```
    /// use rcu_core::{rcu_read_lock, RcuBox};
    ///
    /// let cell = RcuBox::new(1u32);
    /// let guard = rcu_read_lock();
    /// let before = cell.load(&guard);
    /// let old = cell.swap(2);
    /// assert_eq!((*before, *cell.load(&guard)), (1, 2)); // `before` is still alive
    /// drop(guard);
    /// assert_eq!(*old.synchronize(), 1);
    /// ```
    pub fn swap(&self, value: T) -> Retired<T, F> {
        let old = rcu_xchg_pointer(&self.ptr, into_raw(Some(value)));
        // SAFETY: `old` is the cell's own allocation (never null), just unpublished.
        let old = unsafe { retire(old, &self.domain) };
        // SAFETY: an `RcuBox` never holds null (type invariant).
        unsafe { old.unwrap_unchecked() }
    }

    /// Publish `new` if the cell still holds `current` (compared by address: the value the
    /// caller loaded, not an equal one), and hand the old value back as a [`Retired`]
    /// (`rcu_cmpxchg_pointer`; arc-swap's `compare_and_swap`). Otherwise return what the
    /// cell holds, read under `guard`, and `new`, unpublished. Never blocks.
    ///
    /// No ABA: `current` is borrowed from a critical section (`guard`'s, typically), and a
    /// value a critical section can see is not freed, so its address is not reused, before
    /// the section ends. The exception is a zero-sized `T`: every value of it has the same
    /// address, so any `current` matches (still sound: the value replaced is the one
    /// handed back, retired).
    ///
    /// ```
    /// use rcu_core::{rcu_read_lock, RcuBox};
    ///
    /// let cell = RcuBox::new(10u32);
    /// let guard = rcu_read_lock();
    /// let seen = cell.load(&guard);
    /// cell.store(11); // someone else got there first
    /// let err = cell.compare_exchange(seen, 12, &guard).unwrap_err();
    /// assert_eq!((*err.current, err.new), (11, 12));
    /// let old = cell.compare_exchange(err.current, 13, &guard).unwrap();
    /// assert_eq!(*cell.load(&guard), 13);
    /// drop(guard);
    /// assert_eq!(*old.synchronize(), 11);
    /// ```
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain.
    pub fn compare_exchange<'g>(
        &'g self,
        current: &T,
        new: T,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<Retired<T, F>, CompareExchangeError<&'g T, T>> {
        check_guard(self.key, guard);
        // SAFETY: our own pointer and domain; `new` is a fresh allocation.
        let r =
            unsafe { compare_exchange_raw(&self.ptr, current, into_raw(Some(new)), &self.domain) };
        match r {
            // SAFETY: never null (type invariant).
            Ok(old) => Ok(unsafe { old.unwrap_unchecked() }),
            Err((found, new)) => Err(CompareExchangeError {
                // SAFETY: `found` is the cell's current value (never null), read with
                // Acquire; it is freed only after a grace period, which `guard` (same
                // domain, checked) holds off for 'g.
                current: unsafe { &*found },
                // SAFETY: `into_raw(Some(..))` is never null, so neither is what comes back.
                new: unsafe { new.unwrap_unchecked() },
            }),
        }
    }

    /// Read-copy-update without a guard of the caller's: build a new value from the current
    /// one and publish it, retrying if another writer got there first; returns the value it
    /// replaced, retired (arc-swap's `rcu`). `f` may run more than once, and must not
    /// write this cell itself (each of its writes would make the loop retry, for ever).
    /// Takes a critical section of the cell's domain for the duration
    /// ([`Domain::read_lock`]); never waits for a grace period or another writer. A
    /// thread's first use of a domain registers it, which takes the domain's registry lock
    /// briefly (as [`Domain::read_lock`] says).
    ///
    /// ```
    /// use rcu_core::{rcu_barrier, RcuBox};
    /// use std::sync::Arc;
    ///
    /// let counter = Arc::new(RcuBox::new(0u64));
    /// std::thread::scope(|s| {
    ///     for _ in 0..4 {
    ///         let counter = &counter;
    ///         s.spawn(move || {
    ///             for _ in 0..100 {
    ///                 drop(counter.rcu(|n| n + 1)); // the old value is freed later
    ///             }
    ///         });
    ///     }
    /// });
    /// assert_eq!(*counter.snapshot(), 400);
    /// rcu_barrier();
    /// ```
    #[cfg(not(loom))]
    pub fn rcu(&self, f: impl FnMut(&T) -> T) -> Retired<T, F> {
        let guard = self.domain.read_lock();
        let old = self.update_in(&guard, f);
        // SAFETY: `old` is the cell's own allocation (never null), just unpublished.
        unsafe { retire(old, &self.domain).unwrap_unchecked() }
    }

    /// Read-copy-update under the caller's guard: build a new value from the current one
    /// and publish it, retrying if another writer got there first. The old value is
    /// retired through `call_rcu`. `f` may run more than once. [`rcu`](Self::rcu) needs no
    /// guard and hands the old value back.
    ///
    /// ```
    /// use rcu_core::{rcu_read_lock, RcuBox};
    /// let cell = RcuBox::new(1u32);
    /// let guard = rcu_read_lock();
    /// cell.update(&guard, |v| v * 10);
    /// assert_eq!(*cell.load(&guard), 10);
    /// ```
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain.
    pub fn update(&self, guard: &ReadGuard<'_, F>, f: impl FnMut(&T) -> T) {
        let old = self.update_in(guard, f);
        // SAFETY: we unpublished `old` (a `Box` per the invariant, never null); it is freed
        // after a grace period.
        unsafe { defer_free(&self.domain, NonNull::new_unchecked(old), no_reset) };
    }

    /// The loop of [`update`](Self::update) and [`rcu`](Self::rcu); returns the replaced
    /// value, unpublished.
    fn update_in(&self, guard: &ReadGuard<'_, F>, mut f: impl FnMut(&T) -> T) -> *mut T {
        check_guard(self.key, guard);
        // SAFETY: our own pointer, `guard` of our domain (checked); each new value comes
        // from `into_raw`. The current pointer is never null and stays valid while `guard`
        // is held, as in `load`.
        unsafe { update_raw(&self.ptr, guard, |cur| into_raw(Some(f(&*cur)))) }
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuOption<T, F> {
    /// Publish `value` and hand the old value (if any) back as a [`Retired`] (see
    /// [`RcuBox::swap`]). Never blocks.
    ///
    /// ```
    /// use rcu_core::RcuOption;
    ///
    /// let slot = RcuOption::new(None);
    /// assert!(slot.swap(Some(1u8)).is_none());
    /// let old = slot.swap(Some(2)).unwrap();
    /// assert_eq!(*old.synchronize(), 1);
    /// ```
    pub fn swap(&self, value: Option<T>) -> Option<Retired<T, F>> {
        let old = rcu_xchg_pointer(&self.ptr, into_raw(value));
        // SAFETY: `old` is null or the cell's own allocation, just unpublished.
        unsafe { retire(old, &self.domain) }
    }

    /// Empty the cell and hand the old value (if any) back as a [`Retired`] (`Option::take`).
    /// Never blocks.
    ///
    /// ```
    /// use rcu_core::RcuOption;
    ///
    /// let slot = RcuOption::new(Some(String::from("x")));
    /// let old = slot.take().expect("it was full");
    /// assert!(slot.take().is_none());
    /// assert_eq!(*old.synchronize(), "x");
    /// ```
    pub fn take(&self) -> Option<Retired<T, F>> {
        self.swap(None)
    }

    /// Publish `new` if the cell still holds `current` (`None`: empty; otherwise compared
    /// by address), and hand the old value (if any) back as a [`Retired`]; otherwise return
    /// what the cell holds, read under `guard`, and `new`, unpublished (see
    /// [`RcuBox::compare_exchange`]). Never blocks.
    ///
    /// ```
    /// use rcu_core::{rcu_read_lock, RcuOption};
    ///
    /// let slot = RcuOption::new(None);
    /// let guard = rcu_read_lock();
    /// assert!(slot.compare_exchange(None, Some(1u32), &guard).unwrap().is_none());
    /// let err = slot.compare_exchange(None, Some(2), &guard).unwrap_err();
    /// assert_eq!((err.current, err.new), (Some(&1), Some(2)));
    /// let one = slot.load(&guard);
    /// assert!(slot.compare_exchange(one, None, &guard).unwrap().is_some());
    /// ```
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain.
    #[allow(clippy::type_complexity)]
    pub fn compare_exchange<'g>(
        &'g self,
        current: Option<&T>,
        new: Option<T>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<Option<Retired<T, F>>, CompareExchangeError<Option<&'g T>, Option<T>>> {
        check_guard(self.key, guard);
        let current = current.map_or(ptr::null(), |c| c as *const T);
        // SAFETY: our own pointer and domain; `new` is a fresh allocation (or null).
        let r = unsafe { compare_exchange_raw(&self.ptr, current, into_raw(new), &self.domain) };
        r.map_err(|(found, new)| CompareExchangeError {
            // SAFETY: `found` is null or the cell's current value, read with Acquire and
            // freed only after a grace period, which `guard` (same domain) holds off.
            current: unsafe { found.as_ref() },
            new,
        })
    }

    /// Read-copy-update without a guard of the caller's: `f` maps the current value (or
    /// `None`) to the new one (or `None`); retried if another writer got there first; the
    /// replaced value (if any) is handed back retired. `f` may run more than once and must
    /// not write this cell (see [`RcuBox::rcu`]).
    ///
    /// ```
    /// use rcu_core::RcuOption;
    ///
    /// let slot: RcuOption<Vec<u32>> = RcuOption::new(None);
    /// for i in 0..3 {
    ///     let old = slot.rcu(|v| {
    ///         let mut v = v.cloned().unwrap_or_default();
    ///         v.push(i);
    ///         Some(v)
    ///     });
    ///     drop(old); // freed after a grace period
    /// }
    /// assert_eq!(*slot.snapshot().unwrap(), [0, 1, 2]);
    /// ```
    #[cfg(not(loom))]
    pub fn rcu(&self, mut f: impl FnMut(Option<&T>) -> Option<T>) -> Option<Retired<T, F>> {
        let guard = self.domain.read_lock();
        // SAFETY: our own pointer, `guard` of our domain (just taken); each new value comes
        // from `into_raw`; the current pointer is null or valid while `guard` is held.
        let old = unsafe { update_raw(&self.ptr, &guard, |cur| into_raw(f(cur.as_ref()))) };
        drop(guard);
        // SAFETY: `old` is null or the cell's own allocation, just unpublished.
        unsafe { retire(old, &self.domain) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Domain, Mb, Qsbr, RcuBox, RcuOption};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// Counts its drops, so a test sees each value freed exactly once.
    struct Counted(u32, Arc<AtomicUsize>);

    impl Drop for Counted {
        fn drop(&mut self) {
            self.1.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn every_retired_value_is_freed_exactly_once() {
        let d: Domain<Mb> = Domain::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let c = |v| Counted(v, drops.clone());
        let cell = RcuBox::new_in(c(0), &d);
        cell.swap(c(1)).defer();
        drop(cell.swap(c(2)));
        cell.swap(c(3)).call(|b| assert_eq!(b.0, 2));
        let back = cell.swap(c(4)).synchronize();
        assert_eq!(back.0, 3);
        drop(back);
        let g = d.read_lock();
        let cur = cell.load(&g);
        let err = cell.compare_exchange(&Counted(9, drops.clone()), c(5), &g);
        let err = err.map(drop).unwrap_err();
        assert!(core::ptr::eq(err.current, cur));
        assert_eq!(err.new.0, 5);
        drop(err); // the unpublished new value, and the `Counted(9)` above
        let old = cell.compare_exchange(cur, c(6), &g).map_err(drop).unwrap();
        drop(g);
        assert_eq!(old.synchronize().0, 4);
        drop(cell.rcu(|v| c(v.0 + 1)));
        let g = d.read_lock();
        cell.update(&g, |v| c(v.0 + 1));
        assert_eq!(cell.load(&g).0, 8);
        drop(g);
        d.barrier();
        // Published and replaced: 0, 1, 2, 3, 4, 6, 7; never published: 5; the stand-in 9.
        assert_eq!(drops.load(Ordering::Relaxed), 9);
        assert_eq!(cell.into_inner().0, 8);
    }

    #[test]
    fn option_cells_retire_and_hand_back() {
        let d: Domain<Qsbr> = Domain::new();
        let drops = Arc::new(AtomicUsize::new(0));
        let c = |v| Counted(v, drops.clone());
        let mut slot = RcuOption::new_in(None, &d);
        assert!(slot.take().is_none());
        assert!(slot.swap(Some(c(1))).is_none());
        let g = d.read_lock();
        let err = slot
            .compare_exchange(None, Some(c(2)), &g)
            .map(drop)
            .unwrap_err();
        assert_eq!(err.current.map(|v| v.0), Some(1));
        drop(err);
        let one = slot.load(&g);
        let old = slot.compare_exchange(one, None, &g).map_err(drop).unwrap();
        drop(g);
        assert_eq!(old.unwrap().synchronize().0, 1);
        assert!(slot.rcu(|v| v.map(|v| c(v.0))).is_none(), "stays empty");
        drop(slot.rcu(|_| Some(c(3))));
        assert_eq!(slot.get_mut().map(|v| v.0), Some(3));
        d.barrier();
        assert_eq!(drops.load(Ordering::Relaxed), 2); // the unpublished 2 and the 1
        assert_eq!(slot.into_inner().map(|v| v.0), Some(3));
        assert_eq!(drops.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn concurrent_rcu_and_compare_exchange_lose_nothing() {
        let d: Domain<Mb> = Domain::new();
        let cell = RcuBox::new_in(0u32, &d);
        let n = if cfg!(miri) { 20 } else { 1000 };
        std::thread::scope(|s| {
            for t in 0..2 {
                let (cell, d) = (&cell, &d);
                s.spawn(move || {
                    for _ in 0..n {
                        if t == 0 {
                            drop(cell.rcu(|v| v + 1));
                        } else {
                            let g = d.read_lock();
                            let mut cur = cell.load(&g);
                            while let Err(e) = cell.compare_exchange(cur, cur + 1, &g) {
                                cur = e.current;
                            }
                        }
                    }
                });
            }
        });
        assert_eq!(*cell.snapshot(), 2 * n);
        d.barrier();
    }
}
