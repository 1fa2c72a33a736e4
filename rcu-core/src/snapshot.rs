//! [`Snapshot`]: the current value of an RCU cell together with the critical section that
//! keeps it alive, in one value that can leave the function that took it (arc-swap's
//! `Guard`); and `load_full` for cells of `Arc`s.

use core::fmt;
use core::ops::Deref;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::flavor::Flavor;
use crate::guard::ReadGuard;
use crate::local_reader::DomainReadGuard;
use crate::ptr::{RcuBox, RcuOption};

/// A value read from an [`RcuBox`] or [`RcuOption`], with the read-side critical section
/// that keeps it alive: derefs to the value, and can be returned from the function that
/// took it (a getter), unlike a `&T` that borrows a guard on the caller's stack.
///
/// The critical section lasts as long as the snapshot: drop it soon (a snapshot held for a
/// long time holds up every grace period of the domain, and with it every `call_rcu`).
/// Neither `Send` nor `Sync`: it stays on the thread that took it.
///
/// ```
/// use rcu_core::{RcuBox, Snapshot};
///
/// struct Config {
///     name: String,
/// }
///
/// struct Service {
///     config: RcuBox<Config>,
/// }
///
/// impl Service {
///     // A getter: the snapshot carries its own critical section.
///     fn config(&self) -> Snapshot<'_, Config> {
///         self.config.snapshot()
///     }
/// }
///
/// let service = Service { config: RcuBox::new(Config { name: "v1".into() }) };
/// let current = service.config();
/// service.config.store(Config { name: "v2".into() }); // "v1" stays alive for `current`
/// assert_eq!(current.name, "v1");
/// drop(current);
/// assert_eq!(service.config().name, "v2");
/// ```
///
/// A snapshot cannot be sent to another thread:
///
/// ```compile_fail,E0277
/// use rcu_core::RcuBox;
/// let cell = RcuBox::new(1u32);
/// let snap = cell.snapshot();
/// std::thread::scope(|s| {
///     s.spawn(move || assert_eq!(*snap, 1)); // error: cannot be sent between threads
/// });
/// ```
///
/// The compiling twin sends the value it read:
///
/// ```
/// use rcu_core::RcuBox;
/// let cell = RcuBox::new(1u32);
/// let value = *cell.snapshot();
/// std::thread::scope(|s| {
///     s.spawn(move || assert_eq!(value, 1));
/// });
/// ```
///
/// Nor can it outlive its cell:
///
/// ```compile_fail,E0597
/// use rcu_core::RcuBox;
/// let snap = {
///     let cell = RcuBox::new(1u32);
///     cell.snapshot() // error: `cell` does not live long enough
/// };
/// assert_eq!(*snap, 1);
/// ```
///
/// The compiling twin keeps the cell alive longer:
///
/// ```
/// use rcu_core::RcuBox;
/// let cell = RcuBox::new(1u32);
/// let snap = { cell.snapshot() };
/// assert_eq!(*snap, 1);
/// ```
#[must_use = "a snapshot holds a read-side critical section until dropped"]
pub struct Snapshot<'a, T, F: Flavor = crate::Memb> {
    /// The critical section in which `value` was loaded.
    guard: DomainReadGuard<'a, F>,
    /// The value loaded under `guard`, from a cell borrowed for `'a`.
    value: NonNull<T>,
}

impl<'a, T, F: Flavor> Snapshot<'a, T, F> {
    /// A snapshot of the value `value`, loaded under `guard` from a cell borrowed for `'a`.
    ///
    /// # Safety
    ///
    /// `value` stays valid while `guard` is held (it was read under `guard` from an RCU
    /// cell of `guard`'s domain that lives for `'a` and frees unpublished values only
    /// after a grace period), and no `&mut T` to it exists meanwhile.
    pub(crate) unsafe fn new(guard: DomainReadGuard<'a, F>, value: &T) -> Self {
        Snapshot {
            guard,
            value: NonNull::from(value),
        }
    }

    /// The read-side critical section of the snapshot, to read other RCU pointers of the
    /// same domain in it. An associated function (`Snapshot::guard(&snap)`), so that it does
    /// not hide a method of `T`.
    ///
    /// ```
    /// use rcu_core::{RcuBox, Snapshot};
    ///
    /// let a = RcuBox::new(1u32);
    /// let b = RcuBox::new(2u32);
    /// let snap = a.snapshot();
    /// let other = b.load(Snapshot::guard(&snap)); // same critical section
    /// assert_eq!(*snap + *other, 3);
    /// ```
    pub fn guard(this: &Self) -> &ReadGuard<'a, F> {
        &this.guard
    }
}

impl<T, F: Flavor> Deref for Snapshot<'_, T, F> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: loaded under `self.guard`, which we hold; see `Snapshot::new`.
        unsafe { self.value.as_ref() }
    }
}

impl<T: fmt::Debug, F: Flavor> fmt::Debug for Snapshot<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Snapshot").field(&**self).finish()
    }
}

impl<T: fmt::Display, F: Flavor> fmt::Display for Snapshot<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuBox<T, F> {
    /// The current value, with the critical section that keeps it alive: a [`Snapshot`]
    /// that can be returned from a getter (arc-swap's `load`). Registers the thread with
    /// the cell's domain on first use ([`Domain::read_lock`](crate::Domain::read_lock)).
    ///
    /// ```
    /// use rcu_core::RcuBox;
    /// let cell = RcuBox::new(String::from("v1"));
    /// let snap = cell.snapshot();
    /// assert_eq!(*snap, "v1");
    /// ```
    #[inline]
    pub fn snapshot(&self) -> Snapshot<'_, T, F> {
        let guard = self.domain().read_lock();
        let value: *const T = self.load(&guard);
        // SAFETY: loaded under `guard` from this cell (same domain, borrowed for '_); the
        // cell frees an unpublished value only after a grace period, and hands out `&mut T`
        // only through `&mut self`, which the snapshot's borrow excludes.
        unsafe { Snapshot::new(guard, &*value) }
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuOption<T, F> {
    /// The current value, if any, with the critical section that keeps it alive (see
    /// [`RcuBox::snapshot`]).
    ///
    /// ```
    /// use rcu_core::RcuOption;
    /// let slot = RcuOption::new(Some(3u8));
    /// assert_eq!(slot.snapshot().as_deref(), Some(&3));
    /// slot.store(None);
    /// assert!(slot.snapshot().is_none());
    /// ```
    #[inline]
    pub fn snapshot(&self) -> Option<Snapshot<'_, T, F>> {
        let guard = self.domain().read_lock();
        let value: *const T = self.load(&guard)?;
        // SAFETY: as in `RcuBox::snapshot`.
        Some(unsafe { Snapshot::new(guard, &*value) })
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuBox<Arc<T>, F> {
    /// A clone of the current `Arc`, which outlives any critical section (arc-swap's
    /// `load_full`): one short critical section and a reference-count increment.
    ///
    /// ```
    /// use rcu_core::RcuBox;
    /// use std::sync::Arc;
    ///
    /// let cell = RcuBox::new(Arc::new(vec![1, 2]));
    /// let kept: Arc<Vec<i32>> = cell.load_full();
    /// cell.store(Arc::new(vec![3]));
    /// assert_eq!(*kept, [1, 2]); // ours, whatever the cell holds now
    /// ```
    pub fn load_full(&self) -> Arc<T> {
        Arc::clone(&self.snapshot())
    }
}

impl<T: Send + Sync + 'static, F: Flavor> RcuOption<Arc<T>, F> {
    /// A clone of the current `Arc`, if any (see [`RcuBox::load_full`]).
    ///
    /// ```
    /// use rcu_core::RcuOption;
    /// use std::sync::Arc;
    ///
    /// let slot = RcuOption::new(Some(Arc::new(5u32)));
    /// let kept = slot.load_full();
    /// slot.store(None);
    /// assert_eq!(kept.as_deref(), Some(&5));
    /// ```
    pub fn load_full(&self) -> Option<Arc<T>> {
        self.snapshot().map(|s| Arc::clone(&s))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::{Domain, Qsbr, RcuBox, RcuOption, Snapshot};
    use std::sync::Arc;

    /// A snapshot's value stays readable while another thread replaces it and the worker
    /// frees what it can.
    #[test]
    fn a_snapshot_outlives_the_stores_that_replace_its_value() {
        let d: Domain<Qsbr> = Domain::new();
        let cell = RcuBox::new_in(Arc::new(String::from("v0")), &d);
        let slot = RcuOption::new_in(Some(1u8), &d);
        let snap = cell.snapshot();
        let kept = cell.load_full();
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..4 {
                    cell.store(Arc::new(format!("v{i}")));
                }
                slot.store(None);
            });
        });
        assert_eq!(**snap, "v0");
        assert_eq!(slot.load(Snapshot::guard(&snap)), None);
        assert_eq!(format!("{snap}"), "v0");
        drop(snap);
        d.barrier();
        assert_eq!(*kept, "v0");
        assert_eq!(*cell.load_full(), "v3");
        assert!(slot.snapshot().is_none());
    }
}
