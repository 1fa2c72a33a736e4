//! Intrusive links, the [`Linked`] trait that maps an element to its link, and the
//! [`rcu_link!`](crate::rcu_link) macro that implements it for a direct field.
//!
//! # The links
//!
//! Each list kind has its own link type, embedded in the element as an ordinary field:
//!
//! | link | C counterpart | fields |
//! |---|---|---|
//! | [`QListLink`] | `QLIST_ENTRY` | `next` (`le_next`), `prev` (`le_prev`: the address of the previous `next` field, or of the head's `first`) |
//! | [`QSimpleQLink`] | `QSIMPLEQ_ENTRY` | `next` (`sqe_next`) |
//! | [`QTailQLink`] | `QTAILQ_ENTRY` (`tqe_next` + `tqe_circ.tql_prev`) | `next`, `prev` (the previous element's link, or the head's link) |
//! | [`QSListLink`] | `QSLIST_ENTRY` | `next` (`sle_next`) |
//!
//! Unlike C, `next` points at the next element's *link*, not at the element; the
//! [`Linked`] implementation turns one into the other by a constant offset. Every link
//! also carries an `owner` word (the identity of the list it belongs to plus a "linked"
//! bit), which gives [`QListLink::is_linked`] and lets the safe writer API check in O(1)
//! that an element handed to it really is in *this* list.
//!
//! All link fields are atomics (from this crate's `sync` shim, so that loom sees them).
//! Readers only ever load `next`, with `Acquire` (QEMU's `qatomic_rcu_read`); writers
//! publish with `Release` stores (`qatomic_rcu_set`). `prev` and `owner` are writer-side
//! fields: only a writer (which holds the list's writer exclusion) stores them, so they
//! use `Relaxed`. The detailed argument is next to each atomic operation in the list
//! modules.
//!
//! # Interior mutability
//!
//! Readers get `&T` to elements that the writer keeps relinking. That is sound because
//! every field the writer changes is an atomic inside the link: the list never creates a
//! `&mut T` to a linked element, and never moves it. An element's own data is immutable
//! while it is in a list (readers share it), unless the element uses interior mutability
//! itself (atomics, locks), exactly as with intrusive-collections.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use crate::sync::{AtomicPtr, AtomicUsize, Ordering};

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
/// One element type can sit in one list of each kind at a time (one `Linked<L>` per link
/// type `L`); a type with two [`QListLink`] fields can implement `Linked` for only one of
/// them.
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
///     lru: QTailQLink, // the same element may sit in one list of each kind
/// }
/// rcu_link!(Block, next: QListLink);
/// rcu_link!(Block, lru: QTailQLink);
///
/// // Generic element types list their parameters after `impl`:
/// struct Node<V> {
///     value: V,
///     link: QListLink,
/// }
/// rcu_link!(impl<V> Node<V>, link: QListLink);
/// # let _ = (Block { offset: 0, next: QListLink::new(), lru: QTailQLink::new() }.offset,
/// #          Node { value: 1u8, link: QListLink::new() }.value);
/// ```
///
/// The field must have the named link type, or the expansion does not compile.
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

/// The "linked" bit of a link's `owner` word.
pub(crate) const LINKED: usize = 1;

mod sealed {
    use crate::sync::{AtomicPtr, AtomicUsize};

    pub trait Sealed: Sized {
        /// The forward pointer, the only field readers load.
        fn next_field(&self) -> &AtomicPtr<Self>;
        /// `0` (never inserted, or reset after a grace period), `id` (removed from list
        /// `id`; readers of that list may still stand on it), or `id | LINKED`.
        fn owner_field(&self) -> &AtomicUsize;
        /// Forget every pointer (the element is unreachable by anyone: after a grace
        /// period, or while the list is being dropped).
        fn reset(&self);
    }
}

/// A link type of this crate ([`QListLink`], [`QSimpleQLink`], [`QTailQLink`],
/// [`QSListLink`]). Sealed.
pub trait Link: sealed::Sealed {}

macro_rules! link_type {
    (
        $(#[$meta:meta])*
        $name:ident { $($(#[$fmeta:meta])* $field:ident : $fty:ty),* $(,)? }
    ) => {
        $(#[$meta])*
        ///
        /// Invariants: `next` is null or the link of an element owned by the same list (or
        /// of one removed from it less than a grace period ago); `owner` is `0`, `id`, or
        /// `id | 1` where `id` is the address of the owning list's head. A link is only
        /// written by the writer of the list that owns it (or by whoever owns the element
        /// while it is in no list).
        pub struct $name {
            pub(crate) next: AtomicPtr<$name>,
            $($(#[$fmeta])* pub(crate) $field: $fty,)*
            pub(crate) owner: AtomicUsize,
        }

        impl $name {
            /// A fresh, unlinked link.
            #[cfg(not(loom))]
            pub const fn new() -> Self {
                $name {
                    next: AtomicPtr::new(ptr::null_mut()),
                    $($field: AtomicPtr::new(ptr::null_mut()),)*
                    owner: AtomicUsize::new(0),
                }
            }

            /// A fresh, unlinked link (not `const` under loom).
            #[cfg(loom)]
            pub fn new() -> Self {
                $name {
                    next: AtomicPtr::new(ptr::null_mut()),
                    $($field: AtomicPtr::new(ptr::null_mut()),)*
                    owner: AtomicUsize::new(0),
                }
            }

            /// Whether the element is linked into a list right now.
            ///
            /// From the list's writer this is exact; from any other thread it is a
            /// snapshot that may already be stale.
            #[inline]
            pub fn is_linked(&self) -> bool {
                // Relaxed: the writer that stores `owner` holds the list's writer exclusion,
                // which orders its stores before any later writer's loads; for anyone else
                // the answer is advisory and dereferences nothing.
                self.owner.load(Ordering::Relaxed) & LINKED != 0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        /// Cloning gives a fresh, unlinked link: a copy of an element is in no list.
        impl Clone for $name {
            fn clone(&self) -> Self {
                Self::new()
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(if self.is_linked() { "linked" } else { "unlinked" })
            }
        }

        impl sealed::Sealed for $name {
            #[inline(always)]
            fn next_field(&self) -> &AtomicPtr<Self> {
                &self.next
            }
            #[inline(always)]
            fn owner_field(&self) -> &AtomicUsize {
                &self.owner
            }
            fn reset(&self) {
                // Relaxed: the element is unreachable by every other thread (see the
                // trait method's contract), and handing it over later synchronizes.
                self.next.store(ptr::null_mut(), Ordering::Relaxed);
                $(self.$field.store(ptr::null_mut(), Ordering::Relaxed);)*
                self.owner.store(0, Ordering::Relaxed);
            }
        }

        impl Link for $name {}
    };
}

link_type! {
    /// The link of a [`QList`](crate::QList) element (`QLIST_ENTRY`): doubly linked, with
    /// `prev` pointing at the previous element's `next` field (or the head's `first`), as
    /// C's `le_prev` does.
    QListLink {
        /// `le_prev`: the `next` field that points at this element (writer-only).
        prev: AtomicPtr<AtomicPtr<QListLink>>,
    }
}

link_type! {
    /// The link of a [`QSimpleQ`](crate::QSimpleQ) element (`QSIMPLEQ_ENTRY`): singly
    /// linked; the queue head keeps a pointer to the last `next` field.
    QSimpleQLink {}
}

link_type! {
    /// The link of a [`QTailQ`](crate::QTailQ) element (`QTAILQ_ENTRY`): doubly linked with
    /// `prev` pointing at the previous element's link (or the head's), as QEMU's
    /// `tqe_circ.tql_prev` does. Removal clears `prev` (QEMU's "not in list" marker).
    QTailQLink {
        /// `tqe_circ.tql_prev`: the previous link, or the head link (writer-only).
        prev: AtomicPtr<QTailQLink>,
    }
}

link_type! {
    /// The link of a [`QSList`](crate::QSList) element (`QSLIST_ENTRY`): singly linked.
    QSListLink {}
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

/// Whether `e` is linked into the list whose identity is `id`.
#[inline(always)]
pub(crate) fn is_in<L: Link>(link: &L, id: usize) -> bool {
    // Relaxed: see `is_linked`; the caller is that list's writer.
    link.owner_field().load(Ordering::Relaxed) == id | LINKED
}

/// Whether `e` is, or was during the current critical section, in the list `id`.
#[inline(always)]
pub(crate) fn belongs_to<L: Link>(link: &L, id: usize) -> bool {
    // Relaxed: the caller reached this element in a critical section, through an Acquire
    // load that made the owner store (done before publication) visible; the owner changes
    // to another list only after the element was freed and reused, which needs a grace
    // period that this critical section holds off.
    link.owner_field().load(Ordering::Relaxed) & !LINKED == id
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

/// Take ownership of `e` for a list: checks that it is unlinked (panics otherwise) and
/// returns its canonical pointer (with the `Box`'s provenance).
#[inline]
pub(crate) fn adopt<T: Linked<L>, L: Link>(e: Box<T>) -> NonNull<T> {
    if link_of(&*e).owner_field().load(Ordering::Relaxed) & LINKED != 0 {
        // Leak rather than free: another list may point at it (only possible after
        // unsafe misuse, but then freeing would turn it into a use-after-free).
        let _ = Box::into_raw(e);
        already_linked();
    }
    // SAFETY: `Box::into_raw` never returns null.
    unsafe { NonNull::new_unchecked(Box::into_raw(e)) }
}

/// Reset the link `L` of the element at `p` (see `LinkOps::reset`).
///
/// # Safety
///
/// `p` points to a live `T` that no other thread can reach.
pub(crate) unsafe fn reset_link<T: Linked<L>, L: Link>(p: NonNull<T>) {
    // SAFETY: `p` is live (contract), so `link` stays in bounds and gives a valid link.
    unsafe { T::link(p).as_ref() }.reset();
}

/// An iterator over the elements of a list, front to back (the `FOREACH_RCU` forms).
///
/// Handed out by the lists' `iter` methods, with `'a` bounded by a read guard (readers)
/// or by the writer handle (writers). It loads the next pointer when it hands out an
/// element, so it is also the `FOREACH_SAFE_RCU` form.
pub struct Iter<'a, T, L: Link> {
    cur: *mut L,
    _marker: PhantomData<&'a T>,
}

impl<'a, T: Linked<L> + 'a, L: Link> Iter<'a, T, L> {
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

impl<'a, T: Linked<L> + 'a, L: Link> Iterator for Iter<'a, T, L> {
    type Item = &'a T;

    #[inline(always)]
    fn next(&mut self) -> Option<&'a T> {
        let l = NonNull::new(self.cur)?;
        // SAFETY: `l` is reachable from the list (or from an element we visited), so by
        // the contract of `Iter::new` it is a live link for 'a.
        let link = unsafe { l.as_ref() };
        // Acquire (`qatomic_rcu_read`): pairs with the Release store that published the
        // next element, so its link and data are initialised when we dereference it.
        self.cur = link.next_field().load(Ordering::Acquire);
        // SAFETY: as above, `l` is the link of a live `T` for 'a (`from_link`, contract 2).
        Some(unsafe { T::from_link(l).as_ref() })
    }
}

impl<'a, T: Linked<L> + 'a, L: Link> core::iter::FusedIterator for Iter<'a, T, L> {}

impl<T, L: Link> Clone for Iter<'_, T, L> {
    fn clone(&self) -> Self {
        Iter {
            cur: self.cur,
            _marker: PhantomData,
        }
    }
}

impl<T, L: Link> fmt::Debug for Iter<'_, T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::Drops;

    #[test]
    fn links_start_unlinked_clone_fresh_and_debug() {
        let l = QListLink::new();
        assert!(!l.is_linked());
        assert_eq!(format!("{l:?}"), "unlinked");
        let list: crate::QList<crate::test_support::E> = crate::QList::new();
        let m = Drops::default();
        let e = list.lock().insert_head(m.e(1)) as *const crate::test_support::E;
        // SAFETY: the element is linked in `list`, which lives until the end of the test.
        let e = unsafe { &*e };
        assert!(e.ql.is_linked());
        assert_eq!(format!("{:?}", e.ql), "linked");
        // the other links of the same element are independent
        assert!(!e.sq.is_linked() && !e.tq.is_linked() && !e.sl.is_linked());
        let c = e.ql.clone();
        assert!(!c.is_linked());
        assert_eq!(format!("{:?}", QTailQLink::default()), "unlinked");
        assert!(!QSimpleQLink::default().clone().is_linked());
        assert!(!QSListLink::default().is_linked());
    }

    #[test]
    fn rcu_link_round_trips() {
        let m = Drops::default();
        let b = m.e(7);
        let p = NonNull::from(&*b);
        // SAFETY: `p` points to a live element.
        let l = unsafe { <crate::test_support::E as Linked<QTailQLink>>::link(p) };
        assert_eq!(l.as_ptr().cast_const(), ptr::from_ref(&b.tq));
        // SAFETY: `l` came from `link`.
        let back = unsafe { <crate::test_support::E as Linked<QTailQLink>>::from_link(l) };
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
