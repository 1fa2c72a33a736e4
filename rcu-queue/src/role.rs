//! Who owns a list's elements: [`Owner`] (the list owns them, as `Box<T>`) or [`Index`]
//! (the list links elements that an owning list owns), and what an owning list needs to
//! know about its indexes.

use core::any::TypeId;
use core::cell::UnsafeCell;
use core::ptr::NonNull;

use rcu_core::{Domain, Flavor, Retired};

use crate::sync::{AtomicUsize, Mutex};

/// What a list does with its elements: a parameter of [`RcuList`](crate::RcuList),
/// either [`Owner`] or [`Index`]. Sealed.
pub trait Role: sealed::Sealed + 'static {
    /// What an insertion takes: `Box<T>` for an owning list, `&T` (an element of the
    /// owning list) for an index.
    type Elem<'e, T: 'e>;
    /// What a removal hands back: [`Retired<T, F>`] for an owning list (free it after a
    /// grace period), `()` for an index (the owning list still owns the element).
    type Removed<T: Send + Sync + 'static, F: Flavor>;

    #[doc(hidden)]
    /// Whether the list owns (and frees) its elements.
    const OWNS: bool;

    #[doc(hidden)]
    /// The element's pointer: a box's, with its provenance (the list takes it over), or
    /// the borrowed element's.
    fn into_ptr<T>(e: Self::Elem<'_, T>, _: sealed::Token) -> NonNull<T>;

    #[doc(hidden)]
    /// What the list hands back for an element it just unlinked.
    ///
    /// # Safety
    ///
    /// As for [`Retired::from_raw_with_reset`] (owning lists): `p` came from
    /// [`Role::into_ptr`] of a box, is unlinked from every list, and only readers of
    /// `domain` may still use it; `reset` may run on it once it is private.
    unsafe fn removed<T: Send + Sync + 'static, F: Flavor>(
        p: NonNull<T>,
        domain: &Domain<F>,
        reset: unsafe fn(NonNull<T>),
        _: sealed::Token,
    ) -> Self::Removed<T, F>;
}

/// The role of a list that owns its elements: insertion takes a `Box<T>`, removal hands
/// back a [`Retired`], and dropping the list (its last handle, see
/// [`RcuIndex`](crate::RcuIndex)) frees what it still holds. The default.
#[derive(Debug)]
pub enum Owner {}

/// The role of an index ([`RcuIndex`](crate::RcuIndex)): a list of elements owned by
/// another list, linked through a link of their own. Insertion takes a `&T`, removal
/// gives nothing back, and dropping the index unlinks what it still holds.
#[derive(Debug)]
pub enum Index {}

pub(crate) mod sealed {
    pub trait Sealed {}
    /// Makes the hidden [`Role`](super::Role) methods uncallable outside this crate.
    #[derive(Clone, Copy)]
    pub struct Token;
}
pub(crate) use sealed::Token;

impl sealed::Sealed for Owner {}
impl sealed::Sealed for Index {}

impl Role for Owner {
    type Elem<'e, T: 'e> = Box<T>;
    type Removed<T: Send + Sync + 'static, F: Flavor> = Retired<T, F>;
    const OWNS: bool = true;

    #[inline]
    fn into_ptr<T>(e: Box<T>, _: Token) -> NonNull<T> {
        // SAFETY: `Box::into_raw` never returns null.
        unsafe { NonNull::new_unchecked(Box::into_raw(e)) }
    }

    unsafe fn removed<T: Send + Sync + 'static, F: Flavor>(
        p: NonNull<T>,
        domain: &Domain<F>,
        reset: unsafe fn(NonNull<T>),
        _: Token,
    ) -> Retired<T, F> {
        // SAFETY: the caller's contract is `Retired::from_raw_with_reset`'s (the list's
        // `reset` may run once the element is private, and leaves a valid `T`).
        unsafe { Retired::from_raw_with_reset(p, domain.clone(), reset) }
    }
}

impl Role for Index {
    type Elem<'e, T: 'e> = &'e T;
    type Removed<T: Send + Sync + 'static, F: Flavor> = ();
    const OWNS: bool = false;

    #[inline]
    fn into_ptr<T>(e: &T, _: Token) -> NonNull<T> {
        NonNull::from(e)
    }

    unsafe fn removed<T: Send + Sync + 'static, F: Flavor>(
        _: NonNull<T>,
        _: &Domain<F>,
        _: unsafe fn(NonNull<T>),
        _: Token,
    ) {
    }
}

/// What an index needs from its owning list, whatever the owner's link type: the shared
/// writer lock, the registry of index link types, and the ownership test.
pub(crate) trait OwnerCore<T>: Send + Sync {
    /// The writer lock shared by the owner and all its indexes.
    fn writer_lock(&self) -> &Mutex<()>;
    /// The link types of the owner's indexes.
    fn registry(&self) -> &Registry<T>;
    /// Whether `e` is linked into the owning list now.
    fn owns(&self, e: &T) -> bool;
    /// The number of live indexes of the owner: incremented by `RcuIndex::of`,
    /// decremented (`Release`) at the very end of an index's drop.
    fn indexes(&self) -> &AtomicUsize;
}

/// The link types through which an owning list's elements have been linked into its
/// indexes: before the owner retires an element it checks that none of them is linked.
///
/// Invariant: only read or written under the owner's writer exclusion (its lock, shared
/// with its indexes, or the promise of `lock_unchecked`).
pub(crate) struct Registry<T> {
    checks: UnsafeCell<Vec<IndexCheck<T>>>,
}

/// An index link type and the test of whether an element is linked through it.
type IndexCheck<T> = (TypeId, fn(&T) -> bool);

// SAFETY: the only shared access is through `add` and `indexed`, whose contracts require
// the owner's writer exclusion, so no two threads touch the vector at once. `fn(&T)`
// pointers are `Send + Sync`.
unsafe impl<T> Sync for Registry<T> {}

impl<T> Registry<T> {
    pub(crate) fn new() -> Self {
        Registry {
            checks: UnsafeCell::new(Vec::new()),
        }
    }

    /// Register an index link type (`id`) with the test of whether an element is linked
    /// through it; a no-op if it is already there.
    ///
    /// # Safety
    ///
    /// The caller holds the owner's writer exclusion.
    pub(crate) unsafe fn add(&self, id: TypeId, linked: fn(&T) -> bool) {
        // SAFETY: exclusive by the contract (type invariant).
        let checks = unsafe { &mut *self.checks.get() };
        if !checks.iter().any(|(t, _)| *t == id) {
            checks.push((id, linked));
        }
    }

    /// Whether `e` is linked into an index of the owner.
    ///
    /// # Safety
    ///
    /// As for [`Registry::add`].
    #[inline]
    pub(crate) unsafe fn indexed(&self, e: &T) -> bool {
        // SAFETY: exclusive by the contract (type invariant).
        let checks = unsafe { &*self.checks.get() };
        checks.iter().any(|(_, linked)| linked(e))
    }
}
