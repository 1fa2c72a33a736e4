//! Linking and unlinking at a position: the one insert, one remove and one replace that
//! every list kind shares, and the list head.
//!
//! # Positions
//!
//! A *position* is a link whose `next` points at the element there (null at the end): the
//! head's own link for the front, or the link of the element before. QEMU's back pointers
//! are positions: QLIST's `le_prev` (the previous `next` field), QTAILQ's `tql_prev` (the
//! previous link) and QSIMPLEQ's `sqh_last` (the last `next` field). Every operation of
//! every kind is one of the three functions below at a position chosen by the caller:
//! the front, after an element, before an element (its back pointer, or a walk for the
//! singly linked kinds), or the tail.
//!
//! The kinds differ in two facts only, stated by their link type ([`LinkKind`]): whether
//! elements have a back pointer `prev` (QLIST, QTAILQ), and whether the head keeps the
//! last position (`TAIL`: QSIMPLEQ, QTAILQ). `set_back` keeps both right; readers use
//! neither.
//!
//! # Memory ordering
//!
//! Readers only follow `next`, with `Acquire` loads (`qatomic_rcu_read`). A writer sets up
//! every field of a new element with `Relaxed` stores (it is private until published),
//! the owner word last with `Release` (see `RcuList::next`), and makes it reachable with
//! one `Release` store into the position's `next` (`qatomic_rcu_set`): a reader that loads
//! the new pointer sees the element fully initialised. Back pointers and the head's last
//! position are fixed with `Relaxed` stores; only writers read them, ordered by their
//! mutual exclusion.
//!
//! Removal makes the position's `next` skip the element (one store) and leaves the
//! element's own `next` untouched, so a reader standing on it can still move forward,
//! onto elements that were in the list during its critical section. QEMU uses a relaxed
//! `qatomic_set` for that store, relying on the successor having been published earlier.
//! In the C11/Rust model that is not enough: a reader that reads the new pointer from a
//! relaxed store has no happens-before edge to the successor's initialisation. We use
//! `Release` (a plain `mov` on x86-64, `stlr` on Arm), which makes the argument hold in
//! the language model; the loom model `qlist_insert_then_remove_vs_reader` fails without
//! it.
//!
//! Replacement (Linux's `list_replace_rcu`) gives the new element the old one's successor
//! and publishes it with one `Release` store into the position: a reader loads either the
//! old element (and moves on to the successor, skipping the new one) or the new one, so
//! it sees exactly one of them.

use core::ptr::{self, NonNull};

use crate::link::{already_linked, linked_to, not_in_list, LinkKind, Linked};
use crate::sync::{AtomicPtr, Ordering};

/// A list head (`QLIST_HEAD` and the others): a link whose `next` is the first element,
/// and the last position (QSIMPLEQ's `sqh_last`, QTAILQ's `tqh_circ.tql_prev`; unused by
/// the other kinds). It lives at a fixed address in the list's shared core, so that
/// links and owner words may point at it.
///
/// Invariants: `last` is the last element's link, or `link` when the list is empty (for
/// the kinds with `TAIL`); every element reachable from `link.next` is linked into this
/// list, with owner word [`Head::linked_id`].
pub(crate) struct Head<L> {
    pub(crate) link: L,
    pub(crate) last: AtomicPtr<L>,
}

impl<L: LinkKind> Head<L> {
    /// An empty head, before it is at its final address (see [`Head::init`]).
    pub(crate) fn new() -> Self {
        Head {
            link: L::fresh(),
            last: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Finish an empty head at its final address (`last = &link`).
    pub(crate) fn init(&self) {
        // Relaxed: the head is not shared yet; publishing the list orders this store.
        self.last
            .store(ptr::from_ref(&self.link).cast_mut(), Ordering::Relaxed);
    }

    /// The head's pointer to the first element.
    #[inline(always)]
    pub(crate) fn first(&self) -> &AtomicPtr<L> {
        self.link.next()
    }

    /// The front position.
    #[inline(always)]
    pub(crate) fn front(&self) -> NonNull<L> {
        NonNull::from(&self.link)
    }

    /// The list's identity: the head's address.
    #[inline(always)]
    pub(crate) fn id(&self) -> *const () {
        ptr::from_ref(self).cast()
    }

    /// The owner word of an element linked into this list.
    #[inline(always)]
    pub(crate) fn linked_id(&self) -> *mut () {
        linked_to(self.id())
    }

    /// The last position (only meaningful for kinds with `TAIL`).
    #[inline]
    pub(crate) fn tail(&self) -> NonNull<L> {
        // Relaxed: writer-only field, read by the writer (serialized).
        let last = self.last.load(Ordering::Relaxed);
        // `last` is `&link` or a linked element's link (invariant), never null once
        // `init` ran.
        NonNull::new(last).unwrap_or_else(|| self.front())
    }
}

/// Link `new` at `pos`, in front of the element there (at the end if none), publishing
/// it; returns `new`, which is the position right after it.
///
/// # Safety
///
/// 1. (W1) The caller is the only writer of `head`'s list, and every earlier writer
///    operation on it happens-before this call.
/// 2. `pos` is a position of that list: its front, its tail, or the link of an element
///    linked into it.
/// 3. `new` is the link of a live element that is not linked (checked by the callers)
///    and that nobody else writes; it stays live while linked.
#[inline]
pub(crate) unsafe fn insert<L: LinkKind>(
    head: &Head<L>,
    pos: NonNull<L>,
    new: NonNull<L>,
) -> NonNull<L> {
    // SAFETY: `pos` is live (2). Relaxed: writer-side read (1).
    let next = unsafe { pos.as_ref() }.next().load(Ordering::Relaxed);
    // SAFETY: (1), (2), (3); `next` is what `pos` points at.
    unsafe { link(head, pos, new, next) };
    new
}

/// Unlink the element at `pos` and return its link, or `None` at the end. Its `next`
/// stays for readers standing on it; its `prev` becomes null (QEMU's "not in a list"
/// marker); its owner word keeps the list's head if `keep_owner` (an owning list: readers
/// standing on it may still call `next`), else becomes null (an index).
///
/// # Safety
///
/// (1) and (2) of [`insert`]; the caller frees the element only after a grace period of
/// the list's domain.
#[inline]
pub(crate) unsafe fn remove<L: LinkKind>(
    head: &Head<L>,
    pos: NonNull<L>,
    keep_owner: bool,
) -> Option<NonNull<L>> {
    // SAFETY: `pos` is live (2).
    let pos_ref = unsafe { pos.as_ref() };
    // Relaxed: writer-side reads (1).
    let old = NonNull::new(pos_ref.next().load(Ordering::Relaxed))?;
    // SAFETY: `old` is the link of an element linked into the list, live (invariant).
    let next = unsafe { old.as_ref() }.next().load(Ordering::Relaxed);
    // SAFETY: `next` is null or linked into this list (1).
    unsafe { set_back(head, next, pos) };
    // Release (QEMU: `qatomic_set`): see the module docs.
    pos_ref.next().store(next, Ordering::Release);
    // SAFETY: `old` was just unlinked by us (1).
    unsafe { mark_removed(head, old, keep_owner) };
    Some(old)
}

/// Put `new` in place of the element at `pos` (Linux's `list_replace_rcu`) and return the
/// old element's link, marked as by [`remove`]; `None` (and nothing linked) at the end.
///
/// # Safety
///
/// (1), (2) and (3) of [`insert`]; the caller frees the old element only after a grace
/// period of the list's domain.
#[inline]
pub(crate) unsafe fn replace<L: LinkKind>(
    head: &Head<L>,
    pos: NonNull<L>,
    new: NonNull<L>,
    keep_owner: bool,
) -> Option<NonNull<L>> {
    // SAFETY: `pos` is live (2). Relaxed: writer-side reads (1).
    let old = NonNull::new(unsafe { pos.as_ref() }.next().load(Ordering::Relaxed))?;
    // SAFETY: `old` is linked into the list, live.
    let next = unsafe { old.as_ref() }.next().load(Ordering::Relaxed);
    // SAFETY: (1), (2), (3); `next` follows `old`, so it is what `new` must point at.
    unsafe { link(head, pos, new, next) };
    // SAFETY: `old` is no longer reachable from the head (1).
    unsafe { mark_removed(head, old, keep_owner) };
    Some(old)
}

/// The position of the linked element whose link is `link`: its back pointer, or for
/// the singly linked kinds the link before it, found by walking from the front (as C's
/// `QSIMPLEQ_REMOVE` and `QSLIST_REMOVE` do).
///
/// # Safety
///
/// (1) of [`insert`]; `link` is the link of an element linked into `head`'s list. If it
/// is not there after all, the walk panics at the end of the list.
pub(crate) unsafe fn pos_of<L: LinkKind>(head: &Head<L>, link: NonNull<L>) -> NonNull<L> {
    // SAFETY: `link` is live (contract).
    if let Some(prev) = unsafe { link.as_ref() }.prev() {
        // Relaxed: writer-only field (1). A linked element's `prev` is never null.
        return NonNull::new(prev.load(Ordering::Relaxed)).unwrap_or_else(|| not_in_list());
    }
    let mut pos = head.front();
    loop {
        // SAFETY: `pos` is the front or a linked element's link, live. Relaxed: (1).
        let cur = unsafe { pos.as_ref() }.next().load(Ordering::Relaxed);
        if cur == link.as_ptr() {
            return pos;
        }
        pos = NonNull::new(cur).unwrap_or_else(|| not_in_list());
    }
}

/// The head of the list an element is linked into, from its owner word (the raw
/// functions that, like C, name no list).
///
/// # Safety
///
/// `link` is the link of an element linked into a list of kind `L`, which stays alive for
/// `'a`.
pub(crate) unsafe fn head_of<'a, L: LinkKind>(link: NonNull<L>) -> &'a Head<L> {
    // SAFETY: `link` is live (contract). Relaxed: the caller is the list's writer, whose
    // exclusion orders the store of this word before us.
    let owner = unsafe { link.as_ref() }.owner().load(Ordering::Relaxed);
    if owner as usize & crate::link::LINKED == 0 {
        not_in_list();
    }
    // SAFETY: a linked owner word is the head's address with the linked bit set, with the
    // head's provenance (`Head::linked_id`); the head is alive for 'a (contract).
    unsafe {
        &*owner
            .wrapping_byte_sub(crate::link::LINKED)
            .cast::<Head<L>>()
    }
}

/// The raw layer's insertion: check that `elm` is unlinked (panic otherwise), link it at
/// `pos`.
///
/// # Safety
///
/// (1) and (2) of [`insert`]; `elm` is a live element that came from `Box::into_raw`
/// (the list takes it over) and that nobody else writes.
pub(crate) unsafe fn raw_insert<T: Linked<L>, L: LinkKind>(
    head: &Head<L>,
    pos: NonNull<L>,
    elm: NonNull<T>,
) {
    // SAFETY: `elm` is live (contract), so is its link (contract 1 of `Linked`).
    let link = unsafe { T::link(elm) };
    // SAFETY: as above.
    unsafe { check_unlinked(link) };
    // SAFETY: the caller's (1), (2); `link` is unlinked (checked) and private (3).
    unsafe { insert(head, pos, link) };
}

/// The raw layer's removal: unlink the element at `pos` (an owning list's: the owner word
/// keeps the head) and return it as the list stored it; `None` at the end.
///
/// # Safety
///
/// As for [`remove`].
pub(crate) unsafe fn raw_remove<T: Linked<L>, L: LinkKind>(
    head: &Head<L>,
    pos: NonNull<L>,
) -> Option<NonNull<T>> {
    // SAFETY: the caller's contract.
    let old = unsafe { remove(head, pos, true) }?;
    // SAFETY: `old` is the link of an element (contract 2 of `Linked`).
    Some(unsafe { T::from_link(old) })
}

/// Panic unless the link is free to be inserted.
///
/// # Safety
///
/// `link` points to a live link.
#[inline]
pub(crate) unsafe fn check_unlinked<L: LinkKind>(link: NonNull<L>) {
    // SAFETY: live (contract). Acquire: pairs with the Release store of a lock-free reset
    // (`link::reset`, an index being dropped), so that reset is done with the link before
    // we write it.
    let owner = unsafe { link.as_ref() }.owner().load(Ordering::Acquire);
    if owner as usize & crate::link::LINKED != 0 {
        already_linked();
    }
}

/// Set up `new` in front of `next`, publish it at `pos`, fix `next`'s back pointer.
///
/// # Safety
///
/// As for [`insert`], with `next` the element `pos` points at now.
#[inline(always)]
unsafe fn link<L: LinkKind>(head: &Head<L>, pos: NonNull<L>, new: NonNull<L>, next: *mut L) {
    // SAFETY: `new` is live and private (3).
    let n = unsafe { new.as_ref() };
    // Relaxed: `new` is private until the Release store below publishes it.
    n.next().store(next, Ordering::Relaxed);
    if let Some(prev) = n.prev() {
        prev.store(pos.as_ptr(), Ordering::Relaxed);
    }
    // Release: pairs with the Acquire load in `RcuList::next`, which then sees this
    // `next` (not one from an earlier membership) if it sees this owner word.
    n.owner().store(head.linked_id(), Ordering::Release);
    // Release (`qatomic_rcu_set`): publishes the element with the fields set above.
    // SAFETY: `pos` is live (2).
    unsafe { pos.as_ref() }
        .next()
        .store(new.as_ptr(), Ordering::Release);
    // SAFETY: `next` is null or linked into this list.
    unsafe { set_back(head, next, new) };
}

/// Make `to` the position of `succ`: its back pointer, or the head's last position when
/// `succ` is null (the end). A no-op for what the kind does not keep.
///
/// # Safety
///
/// (1) of [`insert`]; `succ` is null or the link of an element linked into the list.
#[inline(always)]
unsafe fn set_back<L: LinkKind>(head: &Head<L>, succ: *mut L, to: NonNull<L>) {
    // Relaxed (both): writer-only fields.
    match NonNull::new(succ) {
        Some(s) => {
            // SAFETY: linked, so live (contract).
            if let Some(prev) = unsafe { s.as_ref() }.prev() {
                prev.store(to.as_ptr(), Ordering::Relaxed);
            }
        }
        None if L::TAIL => head.last.store(to.as_ptr(), Ordering::Relaxed),
        None => {}
    }
}

/// Mark a just-unlinked element as such (see [`remove`]).
///
/// # Safety
///
/// `old` is the live link of an element the caller (the list's writer) just unlinked.
#[inline(always)]
unsafe fn mark_removed<L: LinkKind>(head: &Head<L>, old: NonNull<L>, keep_owner: bool) {
    // SAFETY: live (contract).
    let old = unsafe { old.as_ref() };
    // Relaxed: writer-only fields; readers that reach the element later than this can
    // only be ones that already stood on it (see `RcuList::next`).
    if let Some(prev) = old.prev() {
        prev.store(ptr::null_mut(), Ordering::Relaxed);
    }
    let owner = if keep_owner {
        head.id().cast_mut()
    } else {
        ptr::null_mut()
    };
    old.owner().store(owner, Ordering::Relaxed);
}
