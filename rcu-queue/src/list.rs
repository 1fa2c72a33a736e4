//! `QList`: QEMU's `QLIST_*_RCU`, a doubly linked list whose back pointer (`le_prev`) is
//! the address of the previous `next` field (or of the head's `first`).
//!
//! # How it works
//!
//! Readers only follow `first` and `next`, with `Acquire` loads (`qatomic_rcu_read`).
//! A writer prepares every field of a new element with plain (`Relaxed`) stores, then
//! makes it reachable with one `Release` store into the `next` field (or head) that will
//! point at it (`qatomic_rcu_set`): a reader that loads the new pointer sees the element
//! fully initialised. `le_prev` is fixed up after publication; readers never look at it.
//!
//! Removal makes the previous `next` field skip the element (one store) and leaves the
//! element's own `next` untouched, so a reader standing on it can still move forward,
//! onto elements that were in the list during its critical section. The element then
//! belongs to the caller as a [`Retired`] value, freed only after a grace period.
//!
//! QEMU uses a relaxed `qatomic_set` for the removal store, relying on the fact that the
//! successor was published earlier. In the C11/Rust model that is not enough: a reader
//! that reads the new pointer from a relaxed store has no happens-before edge to the
//! successor's initialisation. We use `Release` there (a plain `mov` on x86-64, `stlr` on
//! Arm), which makes the argument hold in the language model (and under loom).
//!
//! Writers exclude each other: the safe API hands out a [`QListWriter`] only from the
//! list's own mutex ([`QList::lock`]), from `&mut QList` ([`QList::get_mut`]), or from an
//! `unsafe` promise ([`QList::lock_unchecked`], for ports where exclusion comes from
//! elsewhere, such as QEMU's BQL). The [`raw`](crate::raw) functions with the C names are
//! the same operations without any check.

use core::ptr::{self, NonNull};

use rcu_core::{Flavor, Memb};

use crate::link::{adopt, already_linked, Linked, LINKED};
use crate::list_core::{CursorCore, LinkKind, ListCore, WriterCore};
use crate::retired::Retired;
use crate::sync::{AtomicPtr, Ordering};
use crate::QListLink;

/// The list head (`QLIST_HEAD`), heap-allocated so that `le_prev` of the first element
/// can point at `first` while the `QList` itself moves.
pub(crate) struct QListHead {
    first: AtomicPtr<QListLink>,
}

/// An RCU-protected doubly linked list of `Box<T>` elements, QEMU's `QLIST` with the
/// `*_RCU` macros.
///
/// Readers traverse it under a read guard of its domain ([`QList::iter`],
/// [`QList::first`], [`QList::next`]); a writer obtains a [`QListWriter`] and inserts
/// (taking ownership of a `Box<T>`) or removes (getting back a [`Retired`]).
///
/// ```
/// use rcu_queue::{rcu_link, QList, QListLink};
/// use rcu_core::rcu_read_lock;
///
/// struct Block {
///     size: u64,
///     next: QListLink,
/// }
/// rcu_link!(Block, next: QListLink);
/// let block = |size| Box::new(Block { size, next: QListLink::new() });
///
/// let list: QList<Block> = QList::new();
/// {
///     let mut w = list.lock();
///     w.insert_head(block(1));
///     // Keep the list sorted, biggest first: walk with a cursor, insert in front of
///     // the first smaller block (or at the end).
///     let mut c = w.cursor();
///     while let Some(b) = c.current() {
///         if b.size < 4 {
///             break;
///         }
///         c.move_next();
///     }
///     c.insert_before(block(4));
/// }
/// let guard = rcu_read_lock();
/// let sizes: Vec<u64> = list.iter(&guard).map(|b| b.size).collect();
/// assert_eq!(sizes, [4, 1]);
/// ```
///
/// Invariants: `head` is a live `Box<QListHead>` owned by this list; every element
/// reachable from `head.first` is a `Box<T>` owned by the list and linked with owner word
/// `id() | LINKED`; an element removed from it is freed only after a grace period of
/// `domain` (through [`Retired`]), or when the list is dropped (then nobody can reach it).
pub struct QList<T, F = Memb>
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    core: ListCore<T, QListLink, F>,
}

crate::list_core::list_wrappers! {
    list: QList,
    writer: QListWriter { list },
    link: QListLink,
    c: "QLIST",
    noun: "list",
    get: list,
    cursor: QListCursor {},
    new: "An empty list in the default (memb) domain: read it under \
        [`rcu_read_lock`](rcu_core::rcu_read_lock); removed elements are freed by the default \
        domain's call_rcu worker.",
    first: "The first element (`QLIST_FIRST_RCU`), borrowed from the guard.",
    next: "The element after `elem` (`QLIST_NEXT_RCU`). `elem` may have been removed during \
        this critical section: a reader standing on a removed element can still move on.",
    iter: "Iterate over the elements (`QLIST_FOREACH_RCU`; it reads each `next` pointer before \
        yielding, so it is also `QLIST_FOREACH_SAFE_RCU`).",
    lock: "Take the list's writer lock. Writers exclude each other; readers are never blocked.",
    get_mut: "A writer from exclusive access (no locking needed).",
    lock_unchecked: "A writer without taking the lock, for ports whose writers are already \
        serialized by something else (QEMU's BQL or `ram_list.mutex`).",
    lock_unchecked_safety: "While the returned writer lives, no other writer of this list (from \
        [`QList::lock`], [`QList::lock_unchecked`], or the [`raw`](crate::raw) functions) runs, \
        and everything earlier writers did happens-before this writer's operations (they were \
        serialized by a lock or a thread join).",
    writer_iter: "Iterate over the elements (writer side: no guard).",
    retain: "Remove every element for which `keep` returns `false`, retiring each through the \
        domain's call_rcu worker (the writer's use of `QLIST_FOREACH_SAFE_RCU` + \
        `QLIST_REMOVE_RCU` + `call_rcu`). Returns how many were removed.",
    cursor_new: "A cursor at the first element, for finding a position and changing the list \
        there.",
    insert_before: "Insert `e` in front of the current element, or at the end of the list when \
        the cursor is at the end (at the head of an empty list). The cursor stays on the same \
        element. Generalises `QLIST_INSERT_BEFORE_RCU` and `QLIST_INSERT_HEAD_RCU`.",
    remove_current: "Remove the current element (`QLIST_REMOVE_RCU`); the cursor moves to the \
        next one. `None` at the end.",
}

/// Proof of writer exclusion for a [`QList`]: obtained from [`QList::lock`],
/// [`QList::get_mut`] or [`QList::lock_unchecked`]. Not `Send`.
///
/// Writer-side reads need no guard and borrow the writer, so they end before the next
/// change to the list. Elements to insert around or remove are named by a `&T` obtained
/// under a read guard of the list's domain, or found with a [`QListCursor`]:
///
/// ```
/// use rcu_queue::{rcu_link, QList, QListLink};
/// use rcu_core::rcu_read_lock;
///
/// struct E { v: u32, link: QListLink }
/// rcu_link!(E, link: QListLink);
/// let e = |v| Box::new(E { v, link: QListLink::new() });
///
/// let list: QList<E> = QList::new();
/// let mut w = list.lock();
/// w.insert_head(e(3));
/// w.insert_head(e(1));
/// // Name an element through a read guard...
/// let guard = rcu_read_lock();
/// let one = list.iter(&guard).find(|x| x.v == 1).unwrap();
/// w.insert_after(one, e(2));
/// let retired = w.remove(one); // `one` stays readable while `guard` lives
/// assert_eq!(one.v, 1);
/// retired.defer(); // freed by call_rcu after `guard` and every other reader is done
/// drop(guard);
/// // ...or with a cursor, no guard needed.
/// let mut c = w.cursor();
/// c.move_next(); // now at 3
/// c.insert_after(e(4));
/// assert_eq!(w.iter().map(|x| x.v).collect::<Vec<_>>(), [2, 3, 4]);
/// ```
///
/// A writer cannot be made without going through the list's exclusion:
///
/// ```compile_fail
/// use rcu_queue::{rcu_link, QList, QListLink, QListWriter};
/// struct E { link: QListLink }
/// rcu_link!(E, link: QListLink);
/// let list: QList<E> = QList::new();
/// let w = QListWriter { list: &list, _guard: None, _not_send: std::marker::PhantomData };
/// ```
pub struct QListWriter<'a, T, F = Memb>
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    list: &'a QList<T, F>,
    w: WriterCore<'a, T, QListLink, F>,
}

impl<'a, T, F> QListWriter<'a, T, F>
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` at the front (`QLIST_INSERT_HEAD_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_head(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qlist_insert_head_rcu(self.list, e)) }
    }

    /// Insert `e` after `after` (`QLIST_INSERT_AFTER_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `after` is not linked into this list, or `e` is already linked.
    pub fn insert_after(&mut self, after: &T, e: Box<T>) -> &T {
        self.w.check_in(after);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w
                .insert(e, |e| qlist_insert_after_rcu(NonNull::from(after), e))
        }
    }

    /// Insert `e` before `before` (`QLIST_INSERT_BEFORE_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `before` is not linked into this list, or `e` is already linked.
    pub fn insert_before(&mut self, before: &T, e: Box<T>) -> &T {
        self.w.check_in(before);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w
                .insert(e, |e| qlist_insert_before_rcu(NonNull::from(before), e))
        }
    }

    /// Unlink `e` (`QLIST_REMOVE_RCU`) and hand it back, to be freed after a grace period.
    /// Readers standing on `e` can still move forward.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this list.
    pub fn remove(&mut self, e: &T) -> Retired<T, F> {
        // SAFETY: W1 (writer proof), W3 (`remove` checks that `e` is linked here first).
        unsafe { self.w.remove(e, |e| qlist_remove_rcu(e)) }
    }
}

/// A writer's cursor: a position in a [`QList`] (an element, or the end), where elements
/// can be inserted and removed. Like C's `le_prev`, it is the `next` field (or head) that
/// points at the current element.
pub struct QListCursor<'w, T, F = Memb>
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    c: CursorCore<'w, T, QListLink, F>,
}

impl<T, F> QListCursor<'_, T, F>
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` after the current element (`QLIST_INSERT_AFTER_RCU`); the cursor stays
    /// where it is.
    ///
    /// # Panics
    ///
    /// At the end of the list (use [`QListCursor::insert_before`] there), or if `e` is
    /// already linked.
    pub fn insert_after(&mut self, e: Box<T>) {
        let Some(after) = self.c.current_ptr() else {
            panic!("rcu-queue: QListCursor::insert_after at the end of the list");
        };
        let e = adopt::<T, QListLink>(e);
        // SAFETY: W1 (we borrow the writer), W2 (fresh box), W3 (`after` is linked here).
        unsafe { qlist_insert_after_rcu(after, e) };
    }
}

// ----- the raw layer (C names) -----

impl LinkKind for QListLink {
    type Head = QListHead;
    /// Like C's `le_prev`, the `next` field (or the head's `first`) that points at the
    /// current element.
    type Pos = AtomicPtr<QListLink>;

    fn new_head() -> QListHead {
        QListHead {
            first: AtomicPtr::new(ptr::null_mut()),
        }
    }

    #[inline(always)]
    fn first(head: &QListHead) -> &AtomicPtr<QListLink> {
        &head.first
    }

    #[inline(always)]
    fn front(head: &QListHead, _this: NonNull<QListHead>) -> NonNull<AtomicPtr<QListLink>> {
        NonNull::from(&head.first)
    }

    #[inline(always)]
    fn pos_next(pos: &AtomicPtr<QListLink>) -> &AtomicPtr<QListLink> {
        pos
    }

    /// # Safety
    ///
    /// As for `LinkKind::after`.
    #[inline(always)]
    unsafe fn after(link: NonNull<QListLink>) -> NonNull<AtomicPtr<QListLink>> {
        // SAFETY: `link` is a live link (contract); taking the address of its `next` field
        // reads nothing.
        unsafe { NonNull::new_unchecked(ptr::addr_of_mut!((*link.as_ptr()).next)) }
    }

    /// # Safety
    ///
    /// As for `LinkKind::insert_at`.
    unsafe fn insert_at<T, F>(
        list: &ListCore<T, QListLink, F>,
        pos: NonNull<AtomicPtr<QListLink>>,
        elm: NonNull<T>,
    ) -> NonNull<AtomicPtr<QListLink>>
    where
        T: Linked<QListLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `elm` is a live box (W2).
        let el = unsafe { T::link(elm) };
        // SAFETY: as above; nobody else can see `elm` yet.
        let new = unsafe { el.as_ref() };
        // SAFETY: `pos` is the head's `first` or the `next` field of a linked element of
        // the list (contract), live while it is linked.
        let pos_ref = unsafe { pos.as_ref() };
        // Relaxed: writer-side read (the writer is serialized).
        let cur = pos_ref.load(Ordering::Relaxed);
        // Relaxed: `elm` is private until the Release store below publishes it.
        new.next.store(cur, Ordering::Relaxed);
        new.prev.store(pos.as_ptr(), Ordering::Relaxed);
        new.owner.store(list.id() | LINKED, Ordering::Relaxed);
        // Release (`qatomic_rcu_set`): publishes `elm` with the fields set above.
        pos_ref.store(el.as_ptr(), Ordering::Release);
        if let Some(c) = NonNull::new(cur) {
            // SAFETY: `c` is a linked element of the list.
            let c = unsafe { c.as_ref() };
            // Relaxed: `prev` is writer-only.
            c.prev
                .store(ptr::addr_of!(new.next).cast_mut(), Ordering::Relaxed);
        }
        // SAFETY: `el` is the link of the element we just linked.
        unsafe { Self::after(el) }
    }

    /// # Safety
    ///
    /// As for `LinkKind::remove_at`.
    unsafe fn remove_at<T, F>(
        _list: &ListCore<T, QListLink, F>,
        pos: NonNull<AtomicPtr<QListLink>>,
    ) -> Option<NonNull<T>>
    where
        T: Linked<QListLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `pos` is live (contract).
        // Relaxed: writer-side read (W1).
        let cur = NonNull::new(unsafe { pos.as_ref() }.load(Ordering::Relaxed))?;
        // SAFETY: `cur` is the link of a linked element.
        let e = unsafe { T::from_link(cur) };
        // SAFETY: W1 (contract), W3 (`e` is linked in this list). `pos` stays valid: it
        // belongs to the previous element or the head, not to `e`.
        Some(unsafe { qlist_remove_rcu(e) })
    }
}

/// `QLIST_INSERT_HEAD_RCU(head, elm, field)`.
///
/// # Safety
///
/// 1. (W1) The caller is the list's only writer during the call, and every earlier writer
///    operation on the list happens-before it.
/// 2. (W2) `elm` came from `Box::into_raw`, is live and not linked into any list; the list
///    takes ownership (it frees it when dropped).
pub unsafe fn qlist_insert_head_rcu<T, F>(list: &QList<T, F>, elm: NonNull<T>)
where
    T: Linked<QListLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: `elm` is live (2).
    let el = unsafe { T::link(elm) };
    // SAFETY: as above; `elm` is still private.
    let new = unsafe { el.as_ref() };
    if new.is_linked() {
        already_linked();
    }
    let head = &list.core.head().first;
    // Relaxed: writer-side read; earlier writes happen-before us (1).
    let first = head.load(Ordering::Relaxed);
    // Relaxed: the element is private until the Release store below.
    new.prev
        .store(ptr::from_ref(head).cast_mut(), Ordering::Relaxed);
    new.next.store(first, Ordering::Relaxed);
    new.owner.store(list.core.id() | LINKED, Ordering::Relaxed);
    // Release (`qatomic_rcu_set(&head->lh_first, elm)`): publishes the element.
    head.store(el.as_ptr(), Ordering::Release);
    if let Some(f) = NonNull::new(first) {
        // SAFETY: `f` is the link of a linked element, owned by the list.
        let f = unsafe { f.as_ref() };
        // Relaxed: `le_prev` is writer-only.
        f.prev
            .store(ptr::addr_of!(new.next).cast_mut(), Ordering::Relaxed);
    }
}

/// `QLIST_INSERT_AFTER_RCU(listelm, elm, field)`.
///
/// # Safety
///
/// 1. (W1) and 2. (W2) as for [`qlist_insert_head_rcu`], for the list that holds
///    `listelm`.
/// 3. (W3) `listelm` points to an element linked into that list.
pub unsafe fn qlist_insert_after_rcu<T>(listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<QListLink>,
{
    // SAFETY: `listelm` is a live linked element (3).
    let prev = unsafe { T::link(listelm).as_ref() };
    // SAFETY: `elm` is live (2).
    let el = unsafe { T::link(elm) };
    // SAFETY: as above; `elm` is still private.
    let new = unsafe { el.as_ref() };
    if new.is_linked() {
        already_linked();
    }
    // Relaxed: writer-side reads (1).
    let next = prev.next.load(Ordering::Relaxed);
    let owner = prev.owner.load(Ordering::Relaxed);
    // Relaxed: private until published.
    new.next.store(next, Ordering::Relaxed);
    new.prev
        .store(ptr::addr_of!(prev.next).cast_mut(), Ordering::Relaxed);
    new.owner.store(owner, Ordering::Relaxed);
    // Release (`qatomic_rcu_set(&listelm->le_next, elm)`): publishes the element.
    prev.next.store(el.as_ptr(), Ordering::Release);
    if let Some(n) = NonNull::new(next) {
        // SAFETY: `n` is the link of a linked element.
        let n = unsafe { n.as_ref() };
        // Relaxed: `le_prev` is writer-only.
        n.prev
            .store(ptr::addr_of!(new.next).cast_mut(), Ordering::Relaxed);
    }
}

/// `QLIST_INSERT_BEFORE_RCU(listelm, elm, field)`.
///
/// # Safety
///
/// As for [`qlist_insert_after_rcu`].
pub unsafe fn qlist_insert_before_rcu<T>(listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<QListLink>,
{
    // SAFETY: `listelm` is a live linked element (3).
    let next = unsafe { T::link(listelm).as_ref() };
    // SAFETY: `elm` is live (2).
    let el = unsafe { T::link(elm) };
    // SAFETY: as above; `elm` is still private.
    let new = unsafe { el.as_ref() };
    if new.is_linked() {
        already_linked();
    }
    // Relaxed: writer-side reads (1).
    let le_prev = next.prev.load(Ordering::Relaxed);
    // SAFETY: `le_prev` of a linked element is the head's `first` or the previous
    // element's `next`, both live while the element is linked.
    let le_prev_ref = unsafe { &*le_prev };
    // The canonical pointer to `listelm`'s link (the one the list stored, with the box's
    // provenance), rather than one derived from the caller's pointer.
    let next_link = le_prev_ref.load(Ordering::Relaxed);
    debug_assert_eq!(next_link, ptr::from_ref(next).cast_mut());
    let owner = next.owner.load(Ordering::Relaxed);
    // Relaxed: private until published.
    new.prev.store(le_prev, Ordering::Relaxed);
    new.next.store(next_link, Ordering::Relaxed);
    new.owner.store(owner, Ordering::Relaxed);
    // Release (`qatomic_rcu_set(listelm->le_prev, elm)`): publishes the element.
    le_prev_ref.store(el.as_ptr(), Ordering::Release);
    // Relaxed: `le_prev` is writer-only.
    next.prev
        .store(ptr::addr_of!(new.next).cast_mut(), Ordering::Relaxed);
}

/// `QLIST_REMOVE_RCU(elm, field)`. Returns the element's pointer as the list stored it
/// (the one to free, after a grace period). The element's `next` is left intact so that
/// readers standing on it can move on.
///
/// # Safety
///
/// 1. (W1) as for [`qlist_insert_head_rcu`], for the list that holds `elm`.
/// 2. (W3) `elm` points to an element linked into that list.
/// 3. Afterwards the caller owns the element and frees it only after a grace period of
///    the list's domain has elapsed (for example with [`Retired`]).
pub unsafe fn qlist_remove_rcu<T>(elm: NonNull<T>) -> NonNull<T>
where
    T: Linked<QListLink>,
{
    // SAFETY: `elm` is a live linked element (2).
    let old = unsafe { T::link(elm).as_ref() };
    // Relaxed: writer-side reads (1).
    let next = old.next.load(Ordering::Relaxed);
    let le_prev = old.prev.load(Ordering::Relaxed);
    // SAFETY: as in `qlist_insert_before_rcu`: `le_prev` is live while `elm` is linked.
    let le_prev_ref = unsafe { &*le_prev };
    let canonical = le_prev_ref.load(Ordering::Relaxed);
    debug_assert_eq!(canonical, ptr::from_ref(old).cast_mut());
    if let Some(n) = NonNull::new(next) {
        // SAFETY: `n` is the link of a linked element.
        let n = unsafe { n.as_ref() };
        // Relaxed: `le_prev` is writer-only.
        n.prev.store(le_prev, Ordering::Relaxed);
    }
    // Release (QEMU: `qatomic_set`): readers that now skip `elm` reach `next`, published
    // earlier; Release carries that earlier publication's happens-before to them in the
    // C11 model (see the module docs). Readers already on `elm` keep its `next`.
    le_prev_ref.store(next, Ordering::Release);
    // Relaxed: writer-only fields. `prev = null` and clearing LINKED mark "not in list";
    // the owner id stays so that readers standing on it may still call `next`.
    old.prev.store(ptr::null_mut(), Ordering::Relaxed);
    let owner = old.owner.load(Ordering::Relaxed);
    old.owner.store(owner & !LINKED, Ordering::Relaxed);
    // SAFETY: `canonical` is non-null (it pointed at `elm`'s link) and is that link
    // (contract 2 of `Linked`).
    unsafe { T::from_link(NonNull::new_unchecked(canonical)) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E};
    use rcu_core::{Domain, Mb};

    fn setup() -> (Domain<Mb>, QList<E, Mb>, Drops) {
        let d = Domain::new();
        let l = QList::new_in(&d);
        (d, l, Drops::default())
    }

    #[test]
    fn qlist_empty_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        assert!(l.is_empty(&r.read_lock()));
        assert!(l.lock().is_empty());
        l.lock().insert_head(m.e(1));
        assert!(!l.is_empty(&r.read_lock()));
        assert!(!l.lock().is_empty());
        l.lock().clear();
        assert!(l.is_empty(&r.read_lock()));
    }

    #[test]
    fn qlist_first_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        assert!(l.first(&r.read_lock()).is_none());
        assert!(l.lock().first().is_none());
        l.lock().insert_head(m.e(2));
        l.lock().insert_head(m.e(1));
        assert_eq!(l.first(&r.read_lock()).unwrap().v, 1);
        assert_eq!(l.lock().first().unwrap().v, 1);
    }

    #[test]
    fn qlist_next_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in [3, 2, 1] {
            w.insert_head(m.e(v));
        }
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        let two = l.next(one, &g).unwrap();
        let three = l.next(two, &g).unwrap();
        assert_eq!((two.v, three.v), (2, 3));
        assert!(l.next(three, &g).is_none());
        assert_eq!(w.next(w.first().unwrap()).unwrap().v, 2);
        // A reader standing on a removed element can still move forward, even when the
        // next element is removed too; nothing is freed while the guard is held.
        w.remove(two).defer();
        w.remove(three).defer();
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        assert!(l.next(l.next(two, &g).unwrap(), &g).is_none());
        assert_eq!(vals(l.iter(&g)), [1]);
        drop(g);
        d.barrier();
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn qlist_insert_head_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        assert_eq!(w.insert_head(m.e(2)).v, 2);
        w.insert_head(m.e(1));
        w.insert_head(m.e(0));
        assert_eq!(vals(w.iter()), [0, 1, 2]);
        // `le_prev` of the old first element now points at the new one's `next`:
        // removing the new head keeps the list intact.
        w.cursor().remove_current().unwrap().defer();
        assert_eq!(vals(l.iter(&r.read_lock())), [1, 2]);
    }

    #[test]
    fn qlist_insert_after_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(1));
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        w.insert_after(one, m.e(3)); // after the only (tail) element
        w.insert_after(one, m.e(2)); // in the middle
        assert_eq!(vals(l.iter(&g)), [1, 2, 3]);
        // the back pointers are right: removing each element in turn keeps the order
        let two = l.next(one, &g).unwrap();
        w.remove(two).defer();
        assert_eq!(vals(w.iter()), [1, 3]);
        let mut c = w.cursor();
        c.insert_after(m.e(10)); // cursor form, after 1
        c.move_next();
        c.move_next();
        c.insert_after(m.e(4)); // after the tail
        assert_eq!(vals(w.iter()), [1, 10, 3, 4]);
        w.remove(one).defer();
        assert_eq!(vals(w.iter()), [10, 3, 4]);
    }

    #[test]
    fn qlist_insert_before_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(3));
        let g = r.read_lock();
        let three = l.first(&g).unwrap();
        w.insert_before(three, m.e(1)); // before the head: becomes the head
        assert_eq!(l.first(&g).unwrap().v, 1);
        w.insert_before(three, m.e(2)); // in the middle
        assert_eq!(vals(l.iter(&g)), [1, 2, 3]);
        let one = l.first(&g).unwrap();
        w.remove(one).defer();
        w.insert_before(three, m.e(25));
        assert_eq!(vals(w.iter()), [2, 25, 3]);
        // cursor form: insert before the current element, and at the end
        let mut c = w.cursor();
        c.insert_before(m.e(0));
        assert_eq!(c.current().unwrap().v, 2);
        while c.move_next() {}
        c.insert_before(m.e(9));
        assert!(c.current().is_none());
        assert_eq!(vals(w.iter()), [0, 2, 25, 3, 9]);
        drop(g);
        // into an empty list through a cursor
        let (_d2, l2, _) = setup();
        l2.lock().cursor().insert_before(m.e(7));
        assert_eq!(vals(l2.lock().iter()), [7]);
    }

    #[test]
    fn qlist_remove_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        // single element
        w.insert_head(m.e(1));
        let only = w.cursor().remove_current().unwrap().synchronize();
        assert!(!only.ql.is_linked());
        assert!(w.is_empty());
        // reinsert the same box after the grace period, then head, tail, middle
        w.insert_head(only);
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        w.insert_after(one, m.e(3));
        w.insert_after(one, m.e(2));
        w.insert_before(one, m.e(0));
        let tail = l.iter(&g).last().unwrap();
        assert_eq!(tail.v, 3);
        w.remove(tail).defer(); // remove the tail
        assert_eq!(vals(w.iter()), [0, 1, 2]);
        w.remove(l.first(&g).unwrap()).defer(); // the head
        assert_eq!(vals(w.iter()), [1, 2]);
        w.remove(one).defer(); // the head again, the one `g` stands on
        assert_eq!(vals(l.iter(&g)), [2]);
        assert_eq!(l.next(one, &g).unwrap().v, 2);
        assert!(!one.ql.is_linked());
        drop(g);
        let two = w.cursor().remove_current().unwrap();
        assert!(w.is_empty());
        assert!(w.cursor().remove_current().is_none());
        drop(two); // dropping a Retired defers the free too
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4);
    }

    #[test]
    fn qlist_foreach_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in (0..100).rev() {
            w.insert_head(m.e(v));
        }
        assert_eq!(vals(l.iter(&r.read_lock())), (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 100);
        let g = r.read_lock();
        let mut n = 0;
        for e in l.iter(&g) {
            assert_eq!(e.v, n);
            n += 1;
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn qlist_foreach_safe_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in (0..10).rev() {
            w.insert_head(m.e(v));
        }
        // Reader: the iterator has loaded `next` before yielding, so removing the element
        // it just yielded does not stop it.
        let g = r.read_lock();
        let mut seen = vec![];
        for e in l.iter(&g) {
            seen.push(e.v);
            if e.v % 3 == 0 {
                w.remove(e).defer();
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        drop(g);
        // Writer: remove while walking.
        assert_eq!(w.retain(|e| e.v % 2 == 1), 3); // 2, 4, 8
        assert_eq!(vals(w.iter()), [1, 5, 7]);
        assert_eq!(w.clear(), 3);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 10);
    }

    #[test]
    fn drop_frees_what_the_list_holds() {
        let (d, l, m) = setup();
        for v in 0..5 {
            l.lock().insert_head(m.e(v));
        }
        let kept = l.lock().cursor().remove_current().unwrap();
        drop(l);
        assert_eq!(m.count(), 4);
        let b = kept.synchronize();
        drop(b);
        assert_eq!(m.count(), 5);
        drop(d);
    }

    #[test]
    fn get_mut_and_lock_unchecked() {
        let (_d, mut l, m) = setup();
        l.get_mut().insert_head(m.e(1));
        // SAFETY: this thread is the only writer.
        let mut w = unsafe { l.lock_unchecked() };
        w.insert_head(m.e(0));
        assert_eq!(vals(w.iter()), [0, 1]);
        assert!(std::ptr::eq(w.list(), &l));
    }

    #[test]
    #[should_panic(expected = "already linked")]
    fn inserting_a_linked_element_panics() {
        let (_d, l, m) = setup();
        let p = NonNull::new(Box::into_raw(m.e(1))).unwrap();
        // SAFETY: only writer; `p` is a fresh box the first time. The second call breaks
        // W2 on purpose: the check catches it before touching anything.
        unsafe {
            crate::raw::qlist_insert_head_rcu(&l, p);
            crate::raw::qlist_insert_head_rcu(&l, p);
        }
    }

    #[test]
    #[should_panic(expected = "not linked into this list")]
    fn removing_an_element_of_another_list_panics() {
        let (d, a, m) = setup();
        let b = QList::new_in(&d);
        a.lock().insert_head(m.e(1));
        b.lock().insert_head(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let in_b = b.first(&g).unwrap();
        let _ = a.lock().remove(in_b);
    }

    #[test]
    #[should_panic(expected = "not linked into this list")]
    fn reader_next_on_an_element_of_another_list_panics() {
        let (d, a, m) = setup();
        let b = QList::new_in(&d);
        b.lock().insert_head(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let _ = a.next(b.first(&g).unwrap(), &g);
    }

    #[test]
    #[should_panic(expected = "another domain")]
    fn guard_of_another_domain_panics() {
        let (_d, l, _m) = setup();
        let other: Domain<Mb> = Domain::new();
        let r = other.register();
        let _ = l.first(&r.read_lock());
    }

    #[test]
    #[should_panic(expected = "at the end")]
    fn cursor_insert_after_at_end_panics() {
        let (_d, l, m) = setup();
        l.lock().cursor().insert_after(m.e(1));
    }

    #[test]
    fn default_domain_and_qsbr_guards() {
        let m = Drops::default();
        let l: QList<E> = QList::default();
        l.lock().insert_head(m.e(1));
        assert_eq!(l.first(&rcu_core::rcu_read_lock()).unwrap().v, 1);
        let q: QList<E, rcu_core::Qsbr> = QList::new_in(rcu_core::qsbr::default_domain());
        q.lock().insert_head(m.e(2));
        {
            let g = rcu_core::qsbr::rcu_read_lock();
            assert_eq!(vals(q.iter(&g)), [2]);
        }
        q.lock().clear();
        rcu_core::qsbr::rcu_unregister_thread();
        assert!(format!("{l:?}").starts_with("QList"));
    }
}
