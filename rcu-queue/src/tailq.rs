//! `QTailQ`: QEMU's `QTAILQ_*_RCU`, a doubly linked tail queue. Reverse traversal is
//! writer-only.
//!
//! # How it works
//!
//! The head is itself a [`QTailQLink`] (QEMU's `tqh_circ`): its `next` is the first
//! element and its `prev` the last element's link (the head itself when empty). Each
//! element's `prev` is the previous element's link, or the head. Readers only follow
//! `next`, with `Acquire` loads (`qatomic_rcu_read`); writers publish a new element with
//! one `Release` store into the `next` that will point at it (`qatomic_rcu_set`), after
//! setting all of its fields, and fix `prev` pointers, which readers never read, with
//! relaxed stores. Removal makes the previous `next` skip the element with a `Release`
//! store (QEMU: `qatomic_set`; see [the QLIST notes](crate::QList) for why we use
//! Release), keeps the element's own `next` for readers standing on it, and sets its
//! `prev` to null: QEMU's "not in a list" marker.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::{self, NonNull};

use rcu_core::{Flavor, Memb};

use crate::link::{adopt, already_linked, elem, link_of, Linked, LINKED};
use crate::list_core::{CursorCore, LinkKind, ListCore, WriterCore};
use crate::retired::Retired;
use crate::sync::{AtomicPtr, AtomicUsize, Ordering};
use crate::QTailQLink;

/// An RCU-protected tail queue of `Box<T>` elements, QEMU's `QTAILQ` with the `*_RCU`
/// macros.
///
/// ```
/// use rcu_queue::{rcu_link, QTailQ, QTailQLink};
/// use rcu_core::rcu_read_lock;
///
/// struct Req { id: u32, link: QTailQLink }
/// rcu_link!(Req, link: QTailQLink);
/// let req = |id| Box::new(Req { id, link: QTailQLink::new() });
///
/// let q: QTailQ<Req> = QTailQ::new();
/// let mut w = q.lock();
/// w.insert_tail(req(2));
/// w.insert_head(req(1));
/// w.insert_tail(req(3));
/// assert_eq!(w.iter_rev().map(|r| r.id).collect::<Vec<_>>(), [3, 2, 1]); // writer only
/// drop(w);
/// let guard = rcu_read_lock();
/// assert_eq!(q.iter(&guard).map(|r| r.id).collect::<Vec<_>>(), [1, 2, 3]);
/// ```
///
/// Invariants: `head` is a live `Box<QTailQLink>` owned by this queue, whose `next` is
/// the first element's link and whose `prev` is the last element's link (or `head`);
/// every element reachable from it is a `Box<T>` owned by the queue, linked with owner
/// word `id() | LINKED`; removed elements are freed only after a grace period of
/// `domain` (through [`Retired`]), or when the queue is dropped.
pub struct QTailQ<T, F = Memb>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    core: ListCore<T, QTailQLink, F>,
}

crate::list_core::list_wrappers! {
    list: QTailQ,
    writer: QTailQWriter { q },
    link: QTailQLink,
    c: "QTAILQ",
    noun: "queue",
    get: queue,
    cursor: QTailQCursor { q },
    lock_unchecked_safety: "As for [`QList::lock_unchecked`](crate::QList::lock_unchecked): no \
        other writer of this queue runs while the returned writer lives, and earlier writers' \
        operations happen-before its operations.",
    remove_current: "Remove the current element (`QTAILQ_REMOVE_RCU`); the cursor moves to the \
        next. `None` at the end.",
}

/// Proof of writer exclusion for a [`QTailQ`] (see [`QListWriter`](crate::QListWriter)
/// for how to name elements). Not `Send`.
pub struct QTailQWriter<'a, T, F = Memb>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'a QTailQ<T, F>,
    w: WriterCore<'a, T, QTailQLink, F>,
}

impl<'a, T, F> QTailQWriter<'a, T, F>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// The last element (`QTAILQ_LAST`; writer only).
    pub fn last(&self) -> Option<&T> {
        // Relaxed: writer-only field, read by the writer (serialized by the writer proof).
        let p = self.q.core.head().prev.load(Ordering::Relaxed);
        if p == self.q.core.head_ptr().as_ptr() {
            return None;
        }
        // SAFETY: `tqh_circ.tql_prev` is the last element's link when not the head, linked
        // and so freed only after a removal, which needs `&mut self` (as in `first`).
        unsafe { elem(p) }
    }

    /// The element before `e` (`QTAILQ_PREV`; writer only).
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this queue.
    pub fn prev(&self, e: &T) -> Option<&T> {
        self.w.check_in(e);
        // Relaxed: writer-only field.
        let p = link_of(e).prev.load(Ordering::Relaxed);
        if p == self.q.core.head_ptr().as_ptr() {
            return None;
        }
        // SAFETY: the `prev` of a linked element is the previous element's link when it
        // is not the head; as in `first`.
        unsafe { elem(p) }
    }

    /// Iterate back to front (`QTAILQ_FOREACH_REVERSE`; writer only).
    pub fn iter_rev(&self) -> RevIter<'_, T> {
        RevIter {
            // Relaxed: as in `last`.
            cur: self.q.core.head().prev.load(Ordering::Relaxed),
            head: self.q.core.head_ptr().as_ptr(),
            _marker: PhantomData,
        }
    }

    /// Insert `e` at the front (`QTAILQ_INSERT_HEAD_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_head(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qtailq_insert_head_rcu(self.q, e)) }
    }

    /// Insert `e` at the back (`QTAILQ_INSERT_TAIL_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_tail(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qtailq_insert_tail_rcu(self.q, e)) }
    }

    /// Insert `e` after `after` (`QTAILQ_INSERT_AFTER_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `after` is not linked into this queue, or `e` is already linked.
    pub fn insert_after(&mut self, after: &T, e: Box<T>) -> &T {
        self.w.check_in(after);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w.insert(e, |e| {
                qtailq_insert_after_rcu(self.q, NonNull::from(after), e)
            })
        }
    }

    /// Insert `e` before `before` (`QTAILQ_INSERT_BEFORE_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `before` is not linked into this queue, or `e` is already linked.
    pub fn insert_before(&mut self, before: &T, e: Box<T>) -> &T {
        self.w.check_in(before);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w
                .insert(e, |e| qtailq_insert_before_rcu(NonNull::from(before), e))
        }
    }

    /// Unlink `e` (`QTAILQ_REMOVE_RCU`; its `prev` becomes null, "not in a list") and
    /// hand it back, to be freed after a grace period.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this queue.
    pub fn remove(&mut self, e: &T) -> Retired<T, F> {
        // SAFETY: W1 (writer proof), W3 (`remove` checks that `e` is linked here first).
        unsafe { self.w.remove(e, |e| qtailq_remove_rcu(self.q, e)) }
    }
}

/// A writer's back-to-front iterator over a [`QTailQ`] ([`QTailQWriter::iter_rev`]).
pub struct RevIter<'a, T> {
    cur: *mut QTailQLink,
    head: *mut QTailQLink,
    _marker: PhantomData<&'a T>,
}

impl<'a, T: Linked<QTailQLink> + 'a> Iterator for RevIter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        if self.cur == self.head {
            return None;
        }
        let l = NonNull::new(self.cur)?;
        // SAFETY: `l` is the link of an element linked in the queue, which the writer
        // borrowed for 'a keeps linked.
        let link = unsafe { l.as_ref() };
        // Relaxed: writer-only field, read by the writer.
        self.cur = link.prev.load(Ordering::Relaxed);
        // SAFETY: as above (contract 2 of `Linked`).
        Some(unsafe { T::from_link(l).as_ref() })
    }
}

impl<T> fmt::Debug for RevIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevIter").finish_non_exhaustive()
    }
}

/// A writer's cursor in a [`QTailQ`]: an element, or the end. It is the link (head or
/// element) whose `next` points at the current element.
pub struct QTailQCursor<'w, T, F = Memb>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'w QTailQ<T, F>,
    c: CursorCore<'w, T, QTailQLink, F>,
}

impl<T, F> QTailQCursor<'_, T, F>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` after the current element (`QTAILQ_INSERT_AFTER_RCU`).
    ///
    /// # Panics
    ///
    /// At the end of the queue, or if `e` is already linked.
    pub fn insert_after(&mut self, e: Box<T>) {
        let Some(after) = self.c.current_ptr() else {
            panic!("rcu-queue: QTailQCursor::insert_after at the end of the queue");
        };
        let e = adopt::<T, QTailQLink>(e);
        // SAFETY: W1 (we borrow the writer), W2 (fresh box), W3 (linked here).
        unsafe { qtailq_insert_after_rcu(self.q, after, e) };
    }
}

// ----- the raw layer (C names) -----

/// The head is a link: `next` is the first element, `prev` the last element's link (or the
/// head itself when empty), as QEMU's `tqh_circ`.
impl LinkKind for QTailQLink {
    type Head = QTailQLink;
    /// The link (head or element) whose `next` points at the current element.
    type Pos = QTailQLink;

    fn new_head() -> QTailQLink {
        QTailQLink::new()
    }

    fn init_head(h: &QTailQLink, this: NonNull<QTailQLink>) {
        // Relaxed: the queue is not shared yet. Empty: `tqh_circ.tql_prev = &tqh_circ`.
        h.prev.store(this.as_ptr(), Ordering::Relaxed);
    }

    #[inline(always)]
    fn first(head: &QTailQLink) -> &AtomicPtr<QTailQLink> {
        &head.next
    }

    #[inline(always)]
    fn front(_head: &QTailQLink, this: NonNull<QTailQLink>) -> NonNull<QTailQLink> {
        this
    }

    #[inline(always)]
    fn pos_next(pos: &QTailQLink) -> &AtomicPtr<QTailQLink> {
        &pos.next
    }

    /// # Safety
    ///
    /// As for `LinkKind::after`.
    #[inline(always)]
    unsafe fn after(link: NonNull<QTailQLink>) -> NonNull<QTailQLink> {
        link
    }

    /// # Safety
    ///
    /// As for `LinkKind::insert_at`.
    unsafe fn insert_at<T, F>(
        list: &ListCore<T, QTailQLink, F>,
        pos: NonNull<QTailQLink>,
        elm: NonNull<T>,
    ) -> NonNull<QTailQLink>
    where
        T: Linked<QTailQLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `elm` is a live box (W2).
        let el = unsafe { T::link(elm) };
        // SAFETY: as above; still private.
        let new = unsafe { el.as_ref() };
        // SAFETY: `pos` is the head or a linked element's link (contract), live.
        let pos_ref = unsafe { pos.as_ref() };
        // Relaxed: writer-side read.
        let cur = pos_ref.next.load(Ordering::Relaxed);
        // Relaxed: private until published.
        new.next.store(cur, Ordering::Relaxed);
        new.prev.store(pos.as_ptr(), Ordering::Relaxed);
        new.owner.store(list.id() | LINKED, Ordering::Relaxed);
        // Release (`qatomic_rcu_set`): publishes the element.
        pos_ref.next.store(el.as_ptr(), Ordering::Release);
        let fix = match NonNull::new(cur) {
            // SAFETY: `c` is a linked element's link.
            Some(c) => unsafe { &c.as_ref().prev },
            None => &list.head().prev,
        };
        // Relaxed: writer-only field.
        fix.store(el.as_ptr(), Ordering::Relaxed);
        el
    }

    /// # Safety
    ///
    /// As for `LinkKind::remove_at`.
    unsafe fn remove_at<T, F>(
        list: &ListCore<T, QTailQLink, F>,
        pos: NonNull<QTailQLink>,
    ) -> Option<NonNull<T>>
    where
        T: Linked<QTailQLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `pos` is live (contract).
        // Relaxed: writer-side read.
        let cur = NonNull::new(unsafe { pos.as_ref() }.next.load(Ordering::Relaxed))?;
        // SAFETY: `cur` is a linked element's link.
        let e = unsafe { T::from_link(cur) };
        // SAFETY: W1 (contract), W3; `pos` is the previous link, which stays.
        Some(unsafe { unlink(list.head(), e) })
    }
}

/// Prepare a private element's link; panics if it is already linked.
///
/// # Safety
///
/// `elm` is live and private to the caller.
unsafe fn fresh<'e, T: Linked<QTailQLink>>(
    elm: NonNull<T>,
) -> (NonNull<QTailQLink>, &'e QTailQLink) {
    // SAFETY: `elm` is live (contract).
    let el = unsafe { T::link(elm) };
    // SAFETY: as above.
    let new = unsafe { el.as_ref() };
    if new.is_linked() {
        already_linked();
    }
    (el, new)
}

/// Store `owner` (relaxed: the element is still private).
fn set_owner(l: &QTailQLink, owner: &AtomicUsize) {
    // Relaxed: writer-side copy of a writer-only field.
    l.owner
        .store(owner.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// `QTAILQ_INSERT_HEAD_RCU(head, elm, field)`.
///
/// # Safety
///
/// 1. (W1) The caller is the queue's only writer during the call, and every earlier writer
///    operation on it happens-before the call.
/// 2. (W2) `elm` came from `Box::into_raw`, is live and not linked into any list; the queue
///    takes ownership.
pub unsafe fn qtailq_insert_head_rcu<T, F>(q: &QTailQ<T, F>, elm: NonNull<T>)
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (2).
    let (el, new) = unsafe { fresh(elm) };
    let head = q.core.head();
    // Relaxed: writer-side read (1).
    let first = head.next.load(Ordering::Relaxed);
    // Relaxed: private until published.
    new.next.store(first, Ordering::Relaxed);
    new.prev
        .store(q.core.head_ptr().as_ptr(), Ordering::Relaxed);
    new.owner.store(q.core.id() | LINKED, Ordering::Relaxed);
    let fix = match NonNull::new(first) {
        // SAFETY: `f` is the first element's link.
        Some(f) => unsafe { &f.as_ref().prev },
        None => &head.prev,
    };
    // Relaxed: writer-only field.
    fix.store(el.as_ptr(), Ordering::Relaxed);
    // Release (`qatomic_rcu_set(&head->tqh_first, elm)`): publishes the element.
    head.next.store(el.as_ptr(), Ordering::Release);
}

/// `QTAILQ_INSERT_TAIL_RCU(head, elm, field)`.
///
/// # Safety
///
/// As for [`qtailq_insert_head_rcu`].
pub unsafe fn qtailq_insert_tail_rcu<T, F>(q: &QTailQ<T, F>, elm: NonNull<T>)
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (2).
    let (el, new) = unsafe { fresh(elm) };
    let head = q.core.head();
    // Relaxed: writer-side read (1).
    let last = head.prev.load(Ordering::Relaxed);
    // Relaxed: private until published.
    new.next.store(ptr::null_mut(), Ordering::Relaxed);
    new.prev.store(last, Ordering::Relaxed);
    new.owner.store(q.core.id() | LINKED, Ordering::Relaxed);
    // SAFETY: `tql_prev` of the head is the last element's link or the head itself, both
    // live.
    let last = unsafe { &*last };
    // Release (`qatomic_rcu_set(&head->tqh_circ.tql_prev->tql_next, elm)`): publishes it.
    last.next.store(el.as_ptr(), Ordering::Release);
    // Relaxed: writer-only field.
    head.prev.store(el.as_ptr(), Ordering::Relaxed);
}

/// `QTAILQ_INSERT_AFTER_RCU(head, listelm, elm, field)`.
///
/// # Safety
///
/// 1. and 2. as for [`qtailq_insert_head_rcu`];
/// 3. (W3) `listelm` points to an element linked into `q`.
pub unsafe fn qtailq_insert_after_rcu<T, F>(q: &QTailQ<T, F>, listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (3).
    let prev = unsafe { T::link(listelm).as_ref() };
    // SAFETY: (2).
    let (el, new) = unsafe { fresh(elm) };
    // Relaxed: writer-side reads (1).
    let next = prev.next.load(Ordering::Relaxed);
    let prev_prev = prev.prev.load(Ordering::Relaxed);
    // The canonical pointer to `listelm`'s link, as the queue stored it.
    // SAFETY: `prev_prev` of a linked element is the previous link or the head, live.
    let prev_link = unsafe { &*prev_prev }.next.load(Ordering::Relaxed);
    debug_assert_eq!(prev_link, ptr::from_ref(prev).cast_mut());
    // Relaxed: private until published.
    new.next.store(next, Ordering::Relaxed);
    new.prev.store(prev_link, Ordering::Relaxed);
    set_owner(new, &prev.owner);
    let fix = match NonNull::new(next) {
        // SAFETY: `n` is a linked element's link.
        Some(n) => unsafe { &n.as_ref().prev },
        None => &q.core.head().prev,
    };
    // Relaxed: writer-only field.
    fix.store(el.as_ptr(), Ordering::Relaxed);
    // Release (`qatomic_rcu_set(&listelm->field.tqe_next, elm)`): publishes it.
    prev.next.store(el.as_ptr(), Ordering::Release);
}

/// `QTAILQ_INSERT_BEFORE_RCU(listelm, elm, field)`.
///
/// # Safety
///
/// 1. and 2. as for [`qtailq_insert_head_rcu`], for the queue that holds `listelm`;
/// 3. (W3) `listelm` points to an element linked into a queue.
pub unsafe fn qtailq_insert_before_rcu<T>(listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<QTailQLink>,
{
    // SAFETY: (3).
    let next = unsafe { T::link(listelm).as_ref() };
    // SAFETY: (2).
    let (el, new) = unsafe { fresh(elm) };
    // Relaxed: writer-side reads (1).
    let prev = next.prev.load(Ordering::Relaxed);
    // SAFETY: the `prev` of a linked element is the previous link or the head, live.
    let prev_ref = unsafe { &*prev };
    let next_link = prev_ref.next.load(Ordering::Relaxed);
    debug_assert_eq!(next_link, ptr::from_ref(next).cast_mut());
    // Relaxed: private until published.
    new.prev.store(prev, Ordering::Relaxed);
    new.next.store(next_link, Ordering::Relaxed);
    set_owner(new, &next.owner);
    // Release (`qatomic_rcu_set(&listelm->tqe_circ.tql_prev->tql_next, elm)`): publishes.
    prev_ref.next.store(el.as_ptr(), Ordering::Release);
    // Relaxed: writer-only field.
    next.prev.store(el.as_ptr(), Ordering::Relaxed);
}

/// `QTAILQ_REMOVE_RCU(head, elm, field)`: unlinks `elm`, sets its `prev` to null (not in
/// a list), keeps its `next` for readers standing on it, and returns its pointer as the
/// queue stored it.
///
/// # Safety
///
/// 1. (W1) as for [`qtailq_insert_head_rcu`];
/// 2. (W3) `elm` points to an element linked into `q`;
/// 3. afterwards the caller owns the element and frees it only after a grace period of
///    `q`'s domain.
pub unsafe fn qtailq_remove_rcu<T, F>(q: &QTailQ<T, F>, elm: NonNull<T>) -> NonNull<T>
where
    T: Linked<QTailQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: the caller's contract, for `q`'s head.
    unsafe { unlink(q.core.head(), elm) }
}

/// The body of [`qtailq_remove_rcu`], for the queue whose head is `head`.
///
/// # Safety
///
/// As for [`qtailq_remove_rcu`], with `head` the head of the queue that holds `elm`.
unsafe fn unlink<T: Linked<QTailQLink>>(head: &QTailQLink, elm: NonNull<T>) -> NonNull<T> {
    // SAFETY: (2).
    let old = unsafe { T::link(elm).as_ref() };
    // Relaxed: writer-side reads (1).
    let next = old.next.load(Ordering::Relaxed);
    let prev = old.prev.load(Ordering::Relaxed);
    // SAFETY: `prev` of a linked element is live (previous link or head).
    let prev_ref = unsafe { &*prev };
    let canonical = prev_ref.next.load(Ordering::Relaxed);
    debug_assert_eq!(canonical, ptr::from_ref(old).cast_mut());
    let fix = match NonNull::new(next) {
        // SAFETY: `n` is a linked element's link.
        Some(n) => unsafe { &n.as_ref().prev },
        None => &head.prev,
    };
    // Relaxed: writer-only field.
    fix.store(prev, Ordering::Relaxed);
    // Release (QEMU: `qatomic_set`): see the module docs.
    prev_ref.next.store(next, Ordering::Release);
    // Relaxed: writer-only fields; `tql_prev = NULL` is QEMU's not-in-list marker.
    old.prev.store(ptr::null_mut(), Ordering::Relaxed);
    let owner = old.owner.load(Ordering::Relaxed);
    old.owner.store(owner & !LINKED, Ordering::Relaxed);
    // SAFETY: `canonical` pointed at `elm`'s link, so it is non-null (contract 2).
    unsafe { T::from_link(NonNull::new_unchecked(canonical)) }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E};
    use rcu_core::{Domain, Mb};

    fn setup() -> (Domain<Mb>, QTailQ<E, Mb>, Drops) {
        let d = Domain::new();
        let q = QTailQ::new_in(&d);
        (d, q, Drops::default())
    }

    /// Forward and backward walks agree, and `last` is the tail.
    fn check(w: &QTailQWriter<'_, E, Mb>) -> Vec<u32> {
        let fwd = vals(w.iter());
        let mut back = vals(w.iter_rev());
        back.reverse();
        assert_eq!(fwd, back);
        assert_eq!(w.last().map(|e| e.v), fwd.last().copied());
        fwd
    }

    #[test]
    fn qtailq_empty_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        assert!(q.is_empty(&r.read_lock()));
        assert!(q.lock().is_empty());
        q.lock().insert_tail(m.e(1));
        assert!(!q.is_empty(&r.read_lock()));
        assert!(!q.lock().is_empty());
        q.lock().clear();
        assert!(q.is_empty(&r.read_lock()));
        assert!(q.lock().last().is_none());
    }

    #[test]
    fn qtailq_first_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        assert!(q.first(&r.read_lock()).is_none());
        q.lock().insert_tail(m.e(1));
        q.lock().insert_tail(m.e(2));
        assert_eq!(q.first(&r.read_lock()).unwrap().v, 1);
        assert_eq!(q.lock().first().unwrap().v, 1);
    }

    #[test]
    fn qtailq_next_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        for v in 1..=3 {
            w.insert_tail(m.e(v));
        }
        let g = r.read_lock();
        let one = q.first(&g).unwrap();
        let two = q.next(one, &g).unwrap();
        let three = q.next(two, &g).unwrap();
        assert!(q.next(three, &g).is_none());
        assert_eq!(w.next(one).unwrap().v, 2);
        // standing on a removed element, the reader moves on
        w.remove(two).defer();
        w.remove(three).defer();
        assert_eq!(q.next(two, &g).unwrap().v, 3);
        assert_eq!(check(&w), [1]);
        drop(g);
        d.barrier();
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn qtailq_insert_head_rcu() {
        let (_d, q, m) = setup();
        let mut w = q.lock();
        w.insert_head(m.e(3));
        assert_eq!(check(&w), [3]);
        w.insert_head(m.e(2));
        w.insert_head(m.e(1));
        assert_eq!(check(&w), [1, 2, 3]);
    }

    #[test]
    fn qtailq_insert_tail_rcu() {
        let (_d, q, m) = setup();
        let mut w = q.lock();
        w.insert_tail(m.e(1));
        assert_eq!(check(&w), [1]);
        w.insert_tail(m.e(2));
        w.insert_head(m.e(0));
        w.insert_tail(m.e(3));
        assert_eq!(check(&w), [0, 1, 2, 3]);
        // cursor at the end inserts at the tail
        let mut c = w.cursor();
        while c.move_next() {}
        c.insert_before(m.e(4));
        assert_eq!(check(&w), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn qtailq_insert_after_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        w.insert_tail(m.e(1));
        let g = r.read_lock();
        let one = q.first(&g).unwrap();
        w.insert_after(one, m.e(3)); // after the tail: new tail
        assert_eq!(check(&w), [1, 3]);
        w.insert_after(one, m.e(2)); // middle
        assert_eq!(check(&w), [1, 2, 3]);
        let mut c = w.cursor();
        c.move_next();
        c.insert_after(m.e(25));
        assert_eq!(check(&w), [1, 2, 25, 3]);
    }

    #[test]
    fn qtailq_insert_before_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        w.insert_tail(m.e(3));
        let g = r.read_lock();
        let three = q.first(&g).unwrap();
        w.insert_before(three, m.e(1)); // before the head
        assert_eq!(check(&w), [1, 3]);
        w.insert_before(three, m.e(2));
        assert_eq!(check(&w), [1, 2, 3]);
        assert_eq!(w.prev(three).unwrap().v, 2);
        assert!(w.prev(q.first(&g).unwrap()).is_none());
        let mut c = w.cursor();
        c.insert_before(m.e(0));
        assert_eq!(c.current().unwrap().v, 1);
        assert_eq!(check(&w), [0, 1, 2, 3]);
    }

    #[test]
    fn qtailq_remove_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        w.insert_tail(m.e(1));
        let only = w.cursor().remove_current().unwrap().synchronize();
        // QEMU's not-in-list marker: `tql_prev == NULL`
        assert!(only.tq.prev.load(Ordering::Relaxed).is_null());
        assert!(!only.tq.is_linked());
        assert_eq!(check(&w), []);
        w.insert_tail(only);
        w.insert_tail(m.e(2));
        w.insert_tail(m.e(3));
        w.insert_head(m.e(0));
        let g = r.read_lock();
        let tail = q.iter(&g).last().unwrap();
        let retired = w.remove(tail);
        // removal marks the element not-in-list right away (readers may still see it)
        assert!(tail.tq.prev.load(Ordering::Relaxed).is_null());
        assert!(!tail.tq.is_linked());
        retired.defer();
        assert_eq!(check(&w), [0, 1, 2]);
        w.remove(q.first(&g).unwrap()).defer(); // head
        assert_eq!(check(&w), [1, 2]);
        w.remove(q.next(q.first(&g).unwrap(), &g).unwrap()).defer(); // tail again
        assert_eq!(check(&w), [1]);
        w.remove(q.first(&g).unwrap()).defer(); // only
        assert_eq!(check(&w), []);
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4);
    }

    #[test]
    fn qtailq_foreach_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        for v in 0..100 {
            w.insert_tail(m.e(v));
        }
        assert_eq!(vals(q.iter(&r.read_lock())), (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 100);
    }

    #[test]
    fn qtailq_foreach_safe_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        for v in 0..10 {
            w.insert_tail(m.e(v));
        }
        let g = r.read_lock();
        let mut seen = vec![];
        for e in q.iter(&g) {
            seen.push(e.v);
            if e.v % 3 == 0 {
                w.remove(e).defer();
            }
        }
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        drop(g);
        assert_eq!(w.retain(|e| e.v % 2 == 1), 3);
        assert_eq!(check(&w), [1, 5, 7]);
        assert_eq!(w.clear(), 3);
        assert_eq!(check(&w), []);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 10);
    }

    #[test]
    fn qtailq_reverse_is_writer_only() {
        // QTAILQ_LAST / QTAILQ_PREV / QTAILQ_FOREACH_REVERSE exist on the writer only.
        let (_d, q, m) = setup();
        let mut w = q.lock();
        for v in 0..5 {
            w.insert_tail(m.e(v));
        }
        assert_eq!(w.last().unwrap().v, 4);
        assert_eq!(w.prev(w.last().unwrap()).unwrap().v, 3);
        assert_eq!(vals(w.iter_rev()), [4, 3, 2, 1, 0]);
    }

    #[test]
    fn drop_frees_what_the_queue_holds() {
        let (_d, q, m) = setup();
        for v in 0..5 {
            q.lock().insert_tail(m.e(v));
        }
        drop(q);
        assert_eq!(m.count(), 5);
    }

    #[test]
    #[should_panic(expected = "not linked into this list")]
    fn removing_an_element_of_another_queue_panics() {
        let (d, a, m) = setup();
        let b = QTailQ::new_in(&d);
        b.lock().insert_tail(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let _ = a.lock().remove(b.first(&g).unwrap());
    }

    #[test]
    #[should_panic(expected = "already linked")]
    fn inserting_a_linked_element_panics() {
        let (_d, q, m) = setup();
        let p = NonNull::new(Box::into_raw(m.e(1))).unwrap();
        // SAFETY: only writer; the second call breaks W2 on purpose and is caught before
        // anything changes.
        unsafe {
            crate::raw::qtailq_insert_tail_rcu(&q, p);
            crate::raw::qtailq_insert_head_rcu(&q, p);
        }
    }
}
