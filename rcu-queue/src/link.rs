//! Intrusive links: the [`Linked`] trait that maps an element to its link, the
//! [`rcu_link!`](crate::rcu_link) macro that implements it for a direct field, the sealed
//! [`LinkKind`] trait of the four link types, and the readers' [`Iter`].
//!
//! # The links
//!
//! Each list kind has its own link type, embedded in the element as an ordinary field:
//!
//! | link | C counterpart | fields |
//! |---|---|---|
//! | [`QListLink`](crate::QListLink) | `QLIST_ENTRY` | `next` (`le_next`), `prev` (`le_prev`: the link, element's or head's, whose `next` points here) |
//! | [`QSimpleQLink`](crate::QSimpleQLink) | `QSIMPLEQ_ENTRY` | `next` (`sqe_next`) |
//! | [`QTailQLink`](crate::QTailQLink) | `QTAILQ_ENTRY` (`tqe_next` + `tqe_circ.tql_prev`) | `next`, `prev` (as for QLIST) |
//! | [`QSListLink`](crate::QSListLink) | `QSLIST_ENTRY` | `next` (`sle_next`) |
//!
//! Unlike C, `next` points at the next element's *link*, not at the element; the
//! [`Linked`] implementation turns one into the other by a constant offset. Every link
//! also carries an `owner` word: the address of the head of the list it is in, plus a
//! "linked" bit. It gives [`is_linked`](crate::QListLink::is_linked), lets the safe
//! writer API check in O(1) that an element handed to it really is in *this* list, and
//! lets the raw functions find an element's list from the element alone, as C's
//! `QLIST_INSERT_AFTER_RCU(listelm, elm, field)` does.
//!
//! All link fields are atomics (from this crate's `sync` shim, so that loom sees them).
//! Readers only ever load `next`, with `Acquire` (QEMU's `qatomic_rcu_read`), and the
//! owner word in `next(elem)`; writers publish with `Release` stores (`qatomic_rcu_set`).
//! `prev` is writer-only and `Relaxed`. The detailed argument is in the `splice` module.
//!
//! # Several links per element: tags
//!
//! Every link type takes a *tag* type parameter (default `()`): `QListLink<ById>` and
//! `QListLink<ByName>` are different types, so one element type implements
//! [`Linked`] for both and sits in two QLIST lists at once. The tag exists only in the
//! type (`PhantomData<fn() -> Tag>`): a tagged link has the size and code of an untagged
//! one. Who owns such an element, and the rules that keep that sound, are described at
//! [`RcuIndex`](crate::RcuIndex).
//!
//! # Interior mutability
//!
//! Readers get `&T` to elements that the writer keeps relinking. That is sound because
//! every field the writer changes is an atomic inside a link: the lists never create a
//! `&mut T` to a linked element, and never move it. An element's own data is immutable
//! while it is in a list (readers share it), unless the element uses interior mutability
//! itself (atomics, locks), exactly as with intrusive-collections.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, Ordering};

/// Maps an element type to one of its embedded links of type `L`.
///
/// Implement it with [`rcu_link!`](crate::rcu_link) for a direct field; by hand only for
/// unusual layouts.
///
/// # Safety
///
/// An implementation promises:
///
/// 1. `link(p)` returns a pointer to a field of type `L` inside the `Self` that `p` points
///    to, derived from `p` (so it keeps `p`'s provenance), and reads nothing through `p`.
/// 2. `from_link(link(p)) == p` for every such `p`, again with `p`'s provenance.
/// 3. That field is used for nothing else: while the element is linked, only the list
///    touches it (it is never replaced, moved or reset by the element's own code).
///
/// An element type has one `Linked<L>` per link type `L`; to sit in two lists of the same
/// kind it needs two links with different tags (`QListLink<A>`, `QListLink<B>`).
pub unsafe trait Linked<L>: Sized {
    /// The address of the link inside the element at `this`.
    ///
    /// # Safety
    ///
    /// `this` points to a live `Self` (the offset must stay inside its allocation).
    unsafe fn link(this: NonNull<Self>) -> NonNull<L>;

    /// The element that contains the link at `link`.
    ///
    /// # Safety
    ///
    /// `link` was returned by [`Linked::link`] for a live `Self` (or has its provenance).
    unsafe fn from_link(link: NonNull<L>) -> NonNull<Self>;
}

/// Implement [`Linked`] for a link stored in a direct field, with `core::mem::offset_of!`.
///
/// ```
/// use rcu_queue::{rcu_link, QListLink, QTailQLink};
///
/// struct Block {
///     offset: u64,
///     next: QListLink,
///     lru: QTailQLink,
/// }
/// rcu_link!(Block, next: QListLink);
/// rcu_link!(Block, lru: QTailQLink);
///
/// // Two links of the same kind: tell them apart with tags.
/// struct ById;
/// struct ByName;
/// struct Route {
///     id: u32,
///     by_id: QListLink<ById>,
///     by_name: QListLink<ByName>,
/// }
/// rcu_link!(Route, by_id: QListLink<ById>);
/// rcu_link!(Route, by_name: QListLink<ByName>);
///
/// // Generic element types list their parameters after `impl`:
/// struct Node<V> {
///     value: V,
///     link: QListLink,
/// }
/// rcu_link!(impl<V> Node<V>, link: QListLink);
/// # let _ = (Block { offset: 0, next: QListLink::new(), lru: QTailQLink::new() }.offset,
/// #          Route { id: 0, by_id: QListLink::new(), by_name: QListLink::new() }.id,
/// #          Node { value: 1u8, link: QListLink::new() }.value);
/// ```
///
/// The field must have the named link type, or the expansion does not compile. Two
/// links of one type cannot both be implemented (`E0119`): that is what tags are for.
///
/// ```compile_fail
/// use rcu_queue::{rcu_link, QListLink};
/// struct Route { by_id: QListLink, by_name: QListLink }
/// rcu_link!(Route, by_id: QListLink);
/// rcu_link!(Route, by_name: QListLink); // error[E0119]: conflicting implementations
/// ```
#[macro_export]
macro_rules! rcu_link {
    (impl<$($g:ident),* $(,)?> $ty:ty, $field:ident : $link:ty) => {
        // SAFETY: `link` and `from_link` add and subtract the offset of the field `$field`
        // (`offset_of!`), whose type is checked to be `$link` by the closure in `link`;
        // `byte_add`/`byte_sub` keep the provenance of their argument (contracts 1 and 2),
        // and the field is private to the list by the user's choice of this macro
        // (contract 3).
        unsafe impl<$($g),*> $crate::Linked<$link> for $ty {
            #[inline(always)]
            unsafe fn link(this: ::core::ptr::NonNull<Self>) -> ::core::ptr::NonNull<$link> {
                let _field_has_link_type: fn(&Self) -> &$link = |e| &e.$field;
                // SAFETY: the caller guarantees that `this` points to a live `Self`, so the
                // field at this offset is inside the same allocation.
                unsafe { this.byte_add(::core::mem::offset_of!(Self, $field)).cast::<$link>() }
            }
            #[inline(always)]
            unsafe fn from_link(
                link: ::core::ptr::NonNull<$link>,
            ) -> ::core::ptr::NonNull<Self> {
                // SAFETY: the caller guarantees that `link` points to the `$field` of a
                // live `Self`, so stepping back by its offset stays in that allocation.
                unsafe { link.byte_sub(::core::mem::offset_of!(Self, $field)).cast::<Self>() }
            }
        }
    };
    ($ty:ty, $field:ident : $link:ty) => {
        $crate::rcu_link!(impl<> $ty, $field: $link);
    };
}

/// The "linked" bit of a link's owner word (heads are pointer-aligned, so bit 0 of their
/// address is free).
pub(crate) const LINKED: usize = 1;

pub(crate) mod sealed {
    use crate::sync::AtomicPtr;

    /// What the list algorithms need from a link type; private to this crate.
    pub trait Sealed: Sized + Send + Sync + 'static {
        /// The C family's list type name, for `Debug` (`"QList"`).
        const LIST: &'static str;
        /// Whether the head keeps the position of the last element (QSIMPLEQ's
        /// `sqh_last`, QTAILQ's `tqh_circ.tql_prev`).
        const TAIL: bool;
        /// A fresh link (not `const`: for list heads, also under loom).
        fn fresh() -> Self;
        /// The forward pointer, the only pointer readers follow.
        fn next(&self) -> &AtomicPtr<Self>;
        /// The back pointer (QLIST, QTAILQ): the position of this element, i.e. the link
        /// (previous element's or the head's) whose `next` points here. Writer-only.
        fn prev(&self) -> Option<&AtomicPtr<Self>>;
        /// Null (never inserted, or reset), the owning list's head (removed from an
        /// owning list; readers may still stand on it), or that address with
        /// [`LINKED`](super::LINKED) set.
        fn owner(&self) -> &AtomicPtr<()>;
    }
}

/// A link type of this crate: [`QListLink`](crate::QListLink),
/// [`QSimpleQLink`](crate::QSimpleQLink), [`QTailQLink`](crate::QTailQLink) or
/// [`QSListLink`](crate::QSListLink), with any tag. It names the list kind of an
/// [`RcuList`](crate::RcuList). Sealed: the algorithms rely on its exact layout.
///
/// What sets the kinds apart is said by three marker traits, which gate the operations
/// that only some kinds have in O(1):
///
/// | | [`DoublyLinked`] | [`SinglyLinked`] | [`WithTail`] |
/// |---|---|---|---|
/// | QLIST | yes | | |
/// | QSIMPLEQ | | yes | yes |
/// | QTAILQ | yes | | yes |
/// | QSLIST | | yes | |
pub trait LinkKind: sealed::Sealed {
    /// Whether the element is linked into a list through this link right now (as each
    /// link type's own `is_linked`, for generic code).
    fn is_linked(&self) -> bool {
        owner_is_linked(self.owner())
    }
}

/// The kinds whose elements know their position (a back pointer): QLIST and QTAILQ.
/// Their writers insert before, remove and replace a given element in O(1).
pub trait DoublyLinked: LinkKind {}

/// The kinds without a back pointer: QSIMPLEQ and QSLIST. Removing a given element walks
/// from the head (a cursor removes in O(1)); they have `remove_head`, as in C.
pub trait SinglyLinked: LinkKind {}

/// The kinds whose head keeps the last position: QSIMPLEQ and QTAILQ (`insert_tail`).
pub trait WithTail: LinkKind {}

/// Defines a link type, public, with its constructor, `Default`, `Clone` (a fresh link),
/// `Debug` (`linked`/`unlinked`), `is_linked`, its [`LinkKind`] implementation and the
/// marker traits in `marks`. `prev` names the back pointer field of the doubly linked
/// kinds; `tail` says whether the list head keeps the last position (and must agree
/// with `marks`: `WithTail`).
macro_rules! link_type {
    (
        $(#[$meta:meta])*
        $name:ident {
            list: $list:literal,
            tail: $tail:literal,
            marks: [$($mark:ident),*]
            $(, $prev:ident)?
        }
    ) => {
        $(#[$meta])*
        ///
        /// `Tag` (default `()`) tells several links of this kind in one element apart; it
        /// costs nothing at run time (see [`Linked`](crate::Linked)).
        ///
        /// Invariants: `next` is null or the link of an element linked into the same list
        /// (or of one removed from it less than a grace period ago); `owner` is null (in
        /// no list), the address of the head of the list the element is linked into with
        /// bit 0 set, or that of the owning list it was removed from less than a grace
        /// period ago. A link is only written by the writer of the list that holds it, or
        /// by whoever owns the element while it is in no list.
        pub struct $name<Tag = ()> {
            pub(crate) next: $crate::sync::AtomicPtr<Self>,
            $(pub(crate) $prev: $crate::sync::AtomicPtr<Self>,)?
            pub(crate) owner: $crate::sync::AtomicPtr<()>,
            _tag: ::core::marker::PhantomData<fn() -> Tag>,
        }

        impl<Tag> $name<Tag> {
            /// A fresh, unlinked link.
            #[cfg(not(loom))]
            pub const fn new() -> Self {
                link_type!(@new $($prev)?)
            }

            /// A fresh, unlinked link (not `const` under loom).
            #[cfg(loom)]
            pub fn new() -> Self {
                link_type!(@new $($prev)?)
            }

            /// Whether the element is linked into a list through this link right now.
            ///
            /// From the list's writer this is exact; from any other thread it is a
            /// snapshot that may already be stale.
            #[inline]
            pub fn is_linked(&self) -> bool {
                $crate::link::owner_is_linked(&self.owner)
            }
        }

        impl<Tag> Default for $name<Tag> {
            fn default() -> Self {
                Self::new()
            }
        }

        /// Cloning gives a fresh, unlinked link: a copy of an element is in no list.
        impl<Tag> Clone for $name<Tag> {
            fn clone(&self) -> Self {
                Self::new()
            }
        }

        impl<Tag> ::core::fmt::Debug for $name<Tag> {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(if self.is_linked() { "linked" } else { "unlinked" })
            }
        }

        impl<Tag: 'static> $crate::link::sealed::Sealed for $name<Tag> {
            const LIST: &'static str = $list;
            const TAIL: bool = $tail;
            fn fresh() -> Self {
                link_type!(@new $($prev)?)
            }
            #[inline(always)]
            fn next(&self) -> &$crate::sync::AtomicPtr<Self> {
                &self.next
            }
            #[inline(always)]
            fn prev(&self) -> Option<&$crate::sync::AtomicPtr<Self>> {
                link_type!(@prev self $($prev)?)
            }
            #[inline(always)]
            fn owner(&self) -> &$crate::sync::AtomicPtr<()> {
                &self.owner
            }
        }

        impl<Tag: 'static> $crate::LinkKind for $name<Tag> {}
        $(impl<Tag: 'static> $crate::$mark for $name<Tag> {})*
    };
    (@new $($prev:ident)?) => {
        Self {
            next: $crate::sync::AtomicPtr::new(::core::ptr::null_mut()),
            $($prev: $crate::sync::AtomicPtr::new(::core::ptr::null_mut()),)?
            owner: $crate::sync::AtomicPtr::new(::core::ptr::null_mut()),
            _tag: ::core::marker::PhantomData,
        }
    };
    (@prev $s:ident) => {
        None
    };
    (@prev $s:ident $prev:ident) => {
        Some(&$s.$prev)
    };
}
pub(crate) use link_type;

/// Whether an owner word says "linked".
#[inline]
pub(crate) fn owner_is_linked(owner: &AtomicPtr<()>) -> bool {
    // Relaxed: from the list's writer exact (writers are serialized, which orders its
    // stores before any later writer's loads); for anyone else advisory, and nothing is
    // dereferenced on the strength of it.
    owner.load(Ordering::Relaxed) as usize & LINKED != 0
}

/// The owner word of a link linked into the list whose head is at `head`.
#[inline(always)]
pub(crate) fn linked_to(head: *const ()) -> *mut () {
    head.cast_mut().wrapping_byte_add(LINKED)
}

/// The link of the element `e`.
#[inline(always)]
pub(crate) fn link_of<T: Linked<L>, L>(e: &T) -> &L {
    // SAFETY: `e` is a live `T` (a reference), so by `Linked` contract 1 the result points
    // to a field of `*e`, valid for as long as `e` is borrowed.
    unsafe { T::link(NonNull::from(e)).as_ref() }
}

/// The element whose link is `l`, or `None` for null.
///
/// # Safety
///
/// `l` is null or the link of a live `T` that stays valid, and is never mutably
/// borrowed, for `'a`.
#[inline(always)]
pub(crate) unsafe fn elem<'a, T: Linked<L>, L>(l: *mut L) -> Option<&'a T> {
    let l = NonNull::new(l)?;
    // SAFETY: by this function's contract `l` is the link of a live `T`, so `from_link`
    // (contract 2) gives that element back, valid and shared for 'a.
    Some(unsafe { T::from_link(l).as_ref() })
}

/// Forget every pointer of the link (the element is in no list, and no reader can reach
/// it through this link: after a grace period, or while its list is being dropped).
pub(crate) fn reset<L: LinkKind>(link: &L) {
    // Relaxed: nobody else reads these fields any more (the caller's condition).
    link.next().store(ptr::null_mut(), Ordering::Relaxed);
    if let Some(prev) = link.prev() {
        prev.store(ptr::null_mut(), Ordering::Relaxed);
    }
    // Release: the last store; pairs with the Acquire loads of writers that check this
    // word before they use the element (`RcuList::adopt`, the owner's index check), so
    // an index dropped without its writer lock is done with the element before anyone
    // relinks or frees it.
    link.owner().store(ptr::null_mut(), Ordering::Release);
}

/// Reset the link `L` of the element at `p` (see [`reset`]); the reset function a
/// [`Retired`](crate::Retired) runs after its grace period.
///
/// # Safety
///
/// `p` points to a live `T` that no other thread can reach.
pub(crate) unsafe fn reset_link<T: Linked<L>, L: LinkKind>(p: NonNull<T>) {
    // SAFETY: `p` is live (contract), so `link` stays in bounds and gives a valid link.
    reset(unsafe { T::link(p).as_ref() });
}

#[cold]
#[inline(never)]
pub(crate) fn already_linked() -> ! {
    panic!("rcu-queue: inserting an element that is already linked into a list")
}

#[cold]
#[inline(never)]
pub(crate) fn not_in_list() -> ! {
    panic!("rcu-queue: the element is not linked into this list")
}

#[cold]
#[inline(never)]
pub(crate) fn wrong_domain() -> ! {
    panic!("rcu-queue: the read guard belongs to another domain than this list")
}

/// An iterator over the elements of a list, front to back (the `FOREACH_RCU` forms).
///
/// Handed out by the lists' `iter` methods, with `'a` bounded by a read guard (readers)
/// or by the writer handle (writers). It loads the next pointer when it hands out an
/// element, so it is also the `FOREACH_SAFE_RCU` form.
pub struct Iter<'a, T, L: LinkKind> {
    cur: *mut L,
    _marker: PhantomData<&'a T>,
}

impl<'a, T: Linked<L> + 'a, L: LinkKind> Iter<'a, T, L> {
    /// # Safety
    ///
    /// Every element reachable from `first` by following `next` pointers (now or as the
    /// links change during `'a`) stays valid and shared for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn new(first: *mut L) -> Self {
        Iter {
            cur: first,
            _marker: PhantomData,
        }
    }
}

impl<'a, T: Linked<L> + 'a, L: LinkKind> Iterator for Iter<'a, T, L> {
    type Item = &'a T;

    #[inline(always)]
    fn next(&mut self) -> Option<&'a T> {
        let l = NonNull::new(self.cur)?;
        // SAFETY: `l` is reachable from the list (or from an element we visited), so by
        // the contract of `Iter::new` it is a live link for 'a.
        let link = unsafe { l.as_ref() };
        // Acquire (`qatomic_rcu_read`): pairs with the Release store that published the
        // next element, so its link and data are initialised when we dereference it.
        self.cur = link.next().load(Ordering::Acquire);
        // SAFETY: as above, `l` is the link of a live `T` for 'a (`from_link`, contract 2).
        Some(unsafe { T::from_link(l).as_ref() })
    }
}

impl<'a, T: Linked<L> + 'a, L: LinkKind> core::iter::FusedIterator for Iter<'a, T, L> {}

impl<T, L: LinkKind> Clone for Iter<'_, T, L> {
    fn clone(&self) -> Self {
        Iter {
            cur: self.cur,
            _marker: PhantomData,
        }
    }
}

impl<T, L: LinkKind> fmt::Debug for Iter<'_, T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{Drops, E};
    use crate::{QListLink, QSListLink, QSimpleQLink, QTailQLink};

    #[test]
    fn links_start_unlinked_clone_fresh_and_debug() {
        let l: QListLink = QListLink::new();
        assert!(!l.is_linked());
        assert_eq!(format!("{l:?}"), "unlinked");
        let list: crate::QList<E> = crate::QList::new();
        let m = Drops::default();
        let e = list.lock().insert_head(m.e(1)) as *const E;
        // SAFETY: the element is linked in `list`, which lives until the end of the test.
        let e = unsafe { &*e };
        assert!(e.ql.is_linked());
        assert_eq!(format!("{:?}", e.ql), "linked");
        // the other links of the same element are independent
        assert!(!e.sq.is_linked() && !e.tq.is_linked() && !e.sl.is_linked());
        let c = e.ql.clone();
        assert!(!c.is_linked());
        assert_eq!(format!("{:?}", QTailQLink::<()>::default()), "unlinked");
        assert!(!QSimpleQLink::<()>::default().clone().is_linked());
        assert!(!QSListLink::<()>::default().is_linked());
    }

    #[test]
    fn tags_cost_nothing() {
        struct A;
        assert_eq!(
            core::mem::size_of::<QListLink<A>>(),
            core::mem::size_of::<QListLink>()
        );
        assert_eq!(
            core::mem::size_of::<QSListLink<A>>(),
            2 * size_of::<usize>()
        );
        assert_eq!(
            core::mem::size_of::<QTailQLink<A>>(),
            3 * size_of::<usize>()
        );
    }

    #[test]
    fn rcu_link_round_trips() {
        let m = Drops::default();
        let b = m.e(7);
        let p = NonNull::from(&*b);
        // SAFETY: `p` points to a live element.
        let l = unsafe { <E as Linked<QTailQLink>>::link(p) };
        assert_eq!(l.as_ptr().cast_const(), ptr::from_ref(&b.tq));
        // SAFETY: `l` came from `link`.
        let back = unsafe { <E as Linked<QTailQLink>>::from_link(l) };
        assert_eq!(back, p);
    }

    #[test]
    fn generic_elements() {
        struct Node<V> {
            value: V,
            link: QListLink,
        }
        crate::rcu_link!(impl<V> Node<V>, link: QListLink);
        let list: crate::QList<Node<String>> = crate::QList::new();
        list.lock().insert_head(Box::new(Node {
            value: "x".to_owned(),
            link: QListLink::new(),
        }));
        let g = rcu_core::rcu_read_lock();
        assert_eq!(list.first(&g).unwrap().value, "x");
    }
}
