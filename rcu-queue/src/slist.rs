//! `QSList`: QEMU's `QSLIST_*_RCU`, a singly linked list.
//!
//! # How it works
//!
//! The head holds `first`. Readers only follow `first`
//! and `next`, with `Acquire` loads (`qatomic_rcu_read`); a writer publishes a new
//! element with one `Release` store (`qatomic_rcu_set`) after setting its `next`. Removal
//! stores the successor into the previous `next` field (QEMU: `qatomic_set`; we use
//! `Release`, see [the QLIST notes](crate::QList)) and leaves the removed element's `next`
//! for readers standing on it. Removing a given element walks from the head, as in C; a
//! [`QSListCursor`] removes at its position in O(1).

use core::ptr::{self, NonNull};

use rcu_core::{Flavor, Memb};

use crate::link::{adopt, already_linked, Linked, LINKED};
use crate::list_core::{CursorCore, LinkKind, ListCore, WriterCore};
use crate::retired::Retired;
use crate::sync::{AtomicPtr, Ordering};
use crate::QSListLink;

/// The list head (`QSLIST_HEAD`), heap-allocated so that a cursor may point at `first`
/// while the `QSList` moves.
pub(crate) struct QSListHead {
    first: AtomicPtr<QSListLink>,
}

/// An RCU-protected singly linked list of `Box<T>` elements: QEMU's `QSLIST` with the
/// `*_RCU` macros.
///
/// ```
/// use rcu_queue::{rcu_link, QSList, QSListLink};
/// use rcu_core::rcu_read_lock;
///
/// struct Job { n: u32, link: QSListLink }
/// rcu_link!(Job, link: QSListLink);
/// let job = |n| Box::new(Job { n, link: QSListLink::new() });
///
/// let q: QSList<Job> = QSList::new();
/// let mut w = q.lock();
/// let three = w.insert_head(job(3)) as *const Job;
/// w.insert_head(job(1));
/// w.insert_head(job(0));
/// w.remove_head().unwrap().defer();
/// let mut c = w.cursor();
/// c.insert_after(job(2)); // after 1
/// drop(w);
/// let guard = rcu_read_lock();
/// assert_eq!(q.iter(&guard).map(|j| j.n).collect::<Vec<_>>(), [1, 2, 3]);
/// assert!(std::ptr::eq(q.iter(&guard).last().unwrap(), three));
/// ```
///
/// Invariants: `head` is a live box owned by this list; every element reachable from
/// `head.first` is a `Box<T>` owned by the list, linked with owner word `id() | LINKED`;
/// removed elements are freed only after a grace period of `domain`, or when the list is
/// dropped.
pub struct QSList<T, F = Memb>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    core: ListCore<T, QSListLink, F>,
}

crate::list_core::list_wrappers! {
    list: QSList,
    writer: QSListWriter { q },
    link: QSListLink,
    c: "QSLIST",
    noun: "list",
    get: list,
    cursor: QSListCursor { q },
    insert_before: "Insert `e` in front of the current element, or at the end when the cursor \
        is at the end. The cursor stays on the same element.",
}

/// Proof of writer exclusion for a [`QSList`] (see [`QListWriter`](crate::QListWriter)
/// for how to name elements). Not `Send`.
pub struct QSListWriter<'a, T, F = Memb>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'a QSList<T, F>,
    w: WriterCore<'a, T, QSListLink, F>,
}

impl<'a, T, F> QSListWriter<'a, T, F>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` at the front (`QSLIST_INSERT_HEAD_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_head(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qslist_insert_head_rcu(self.q, e)) }
    }

    /// Insert `e` after `after` (`QSLIST_INSERT_AFTER_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `after` is not linked into this list, or `e` is already linked.
    pub fn insert_after(&mut self, after: &T, e: Box<T>) -> &T {
        self.w.check_in(after);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w.insert(e, |e| {
                qslist_insert_after_rcu(self.q, NonNull::from(after), e)
            })
        }
    }

    /// Unlink the first element (`QSLIST_REMOVE_HEAD_RCU`); `None` when empty.
    pub fn remove_head(&mut self) -> Option<Retired<T, F>> {
        // SAFETY: W1 (writer proof).
        let p = unsafe { qslist_remove_head_rcu(self.q) }?;
        // SAFETY: `p` was just unlinked from this list by this writer.
        Some(unsafe { self.w.retire(p) })
    }

    /// Unlink `e` (`QSLIST_REMOVE_RCU`, a walk from the head) and hand it back, to be
    /// freed after a grace period.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this list.
    pub fn remove(&mut self, e: &T) -> Retired<T, F> {
        // SAFETY: W1 (writer proof), W3 (`remove` checks that `e` is linked here first).
        unsafe { self.w.remove(e, |e| qslist_remove_rcu(self.q, e)) }
    }
}

/// A writer's cursor in a [`QSList`]: an element, or the end. It is the `next` field
/// (or head) that points at the current element, so removal here is O(1).
pub struct QSListCursor<'w, T, F = Memb>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'w QSList<T, F>,
    c: CursorCore<'w, T, QSListLink, F>,
}

impl<T, F> QSListCursor<'_, T, F>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` after the current element (`QSLIST_INSERT_AFTER_RCU`).
    ///
    /// # Panics
    ///
    /// At the end of the list, or if `e` is already linked.
    pub fn insert_after(&mut self, e: Box<T>) {
        let Some(after) = self.c.current_ptr() else {
            panic!("rcu-queue: QSListCursor::insert_after at the end of the list");
        };
        let e = adopt::<T, QSListLink>(e);
        // SAFETY: W1 (we borrow the writer), W2 (fresh box), W3 (linked here).
        unsafe { qslist_insert_after_rcu(self.q, after, e) };
    }
}

// ----- the raw layer (C names) -----

impl LinkKind for QSListLink {
    type Head = QSListHead;
    /// The `next` field (or the head's `first`) that points at the current element.
    type Pos = AtomicPtr<QSListLink>;

    fn new_head() -> QSListHead {
        QSListHead {
            first: AtomicPtr::new(ptr::null_mut()),
        }
    }

    #[inline(always)]
    fn first(head: &QSListHead) -> &AtomicPtr<QSListLink> {
        &head.first
    }

    #[inline(always)]
    fn front(head: &QSListHead, _this: NonNull<QSListHead>) -> NonNull<AtomicPtr<QSListLink>> {
        NonNull::from(&head.first)
    }

    #[inline(always)]
    fn pos_next(pos: &AtomicPtr<QSListLink>) -> &AtomicPtr<QSListLink> {
        pos
    }

    /// # Safety
    ///
    /// As for `LinkKind::after`.
    #[inline(always)]
    unsafe fn after(link: NonNull<QSListLink>) -> NonNull<AtomicPtr<QSListLink>> {
        // SAFETY: `link` is a live link (contract); this takes its field's address.
        unsafe { NonNull::new_unchecked(ptr::addr_of_mut!((*link.as_ptr()).next)) }
    }

    /// # Safety
    ///
    /// As for `LinkKind::insert_at`.
    unsafe fn insert_at<T, F>(
        list: &ListCore<T, QSListLink, F>,
        pos: NonNull<AtomicPtr<QSListLink>>,
        elm: NonNull<T>,
    ) -> NonNull<AtomicPtr<QSListLink>>
    where
        T: Linked<QSListLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `elm` is live (W2).
        let el = unsafe { T::link(elm) };
        // SAFETY: as above; private until published.
        let new = unsafe { el.as_ref() };
        if new.is_linked() {
            already_linked();
        }
        // SAFETY: `pos` is live (contract).
        let pos_ref = unsafe { pos.as_ref() };
        // Relaxed: writer-side read (W1).
        let next = pos_ref.load(Ordering::Relaxed);
        // Relaxed: private until published.
        new.next.store(next, Ordering::Relaxed);
        new.owner.store(list.id() | LINKED, Ordering::Relaxed);
        let new_next = NonNull::from(&new.next);
        // Release (`qatomic_rcu_set`): publishes the element.
        pos_ref.store(el.as_ptr(), Ordering::Release);
        new_next
    }

    /// # Safety
    ///
    /// As for `LinkKind::remove_at`.
    unsafe fn remove_at<T, F>(
        _list: &ListCore<T, QSListLink, F>,
        pos: NonNull<AtomicPtr<QSListLink>>,
    ) -> Option<NonNull<T>>
    where
        T: Linked<QSListLink> + Send + Sync + 'static,
        F: Flavor,
    {
        // SAFETY: `pos` is live (contract).
        let pos_ref = unsafe { pos.as_ref() };
        // Relaxed: writer-side read (W1).
        let cur = NonNull::new(pos_ref.load(Ordering::Relaxed))?;
        // SAFETY: `cur` is a linked element's link.
        let old = unsafe { cur.as_ref() };
        // Relaxed: writer-side read.
        let next = old.next.load(Ordering::Relaxed);
        // Release (QEMU: `qatomic_set`): see the module docs.
        pos_ref.store(next, Ordering::Release);
        // Relaxed: writer-only field; the id stays for readers standing on the element.
        let owner = old.owner.load(Ordering::Relaxed);
        old.owner.store(owner & !LINKED, Ordering::Relaxed);
        // SAFETY: `cur` is the link the list stored (contract 2 of `Linked`).
        Some(unsafe { T::from_link(cur) })
    }
}

/// `QSLIST_INSERT_HEAD_RCU(head, elm, field)`.
///
/// # Safety
///
/// 1. (W1) The caller is the list's only writer during the call, and every earlier writer
///    operation on it happens-before the call.
/// 2. (W2) `elm` came from `Box::into_raw`, is live and not linked into any list; the list
///    takes ownership.
pub unsafe fn qslist_insert_head_rcu<T, F>(q: &QSList<T, F>, elm: NonNull<T>)
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2), and the head's `first` is a valid position.
    unsafe { QSListLink::insert_at(&q.core, q.core.front(), elm) };
}

/// `QSLIST_INSERT_AFTER_RCU(head, listelm, elm, field)`.
///
/// # Safety
///
/// 1. and 2. as for [`qslist_insert_head_rcu`];
/// 3. (W3) `listelm` points to an element linked into `q`.
pub unsafe fn qslist_insert_after_rcu<T, F>(q: &QSList<T, F>, listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: `listelm` is live (3); this takes the address of its link's `next`.
    let pos = unsafe { NonNull::from(&T::link(listelm).as_ref().next) };
    // SAFETY: (1), (2), and `pos` is a linked element's `next` (3).
    unsafe { QSListLink::insert_at(&q.core, pos, elm) };
}

/// `QSLIST_REMOVE_HEAD_RCU(head, field)`: unlinks the first element and returns it (as
/// the list stored it), or `None` when empty.
///
/// # Safety
///
/// 1. (W1) as for [`qslist_insert_head_rcu`];
/// 2. afterwards the caller owns the element and frees it only after a grace period of
///    `q`'s domain.
pub unsafe fn qslist_remove_head_rcu<T, F>(q: &QSList<T, F>) -> Option<NonNull<T>>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2); the head's `first` is a valid position.
    unsafe { QSListLink::remove_at(&q.core, q.core.front()) }
}

/// `QSLIST_REMOVE_RCU(head, elm, type, field)`: walks from the head to `elm`, unlinks
/// it and returns it (as the list stored it).
///
/// # Safety
///
/// 1. (W1) as for [`qslist_insert_head_rcu`];
/// 2. (W3) `elm` points to an element linked into `q`;
/// 3. afterwards the caller owns the element and frees it only after a grace period of
///    `q`'s domain.
pub unsafe fn qslist_remove_rcu<T, F>(q: &QSList<T, F>, elm: NonNull<T>) -> NonNull<T>
where
    T: Linked<QSListLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2).
    let pos = unsafe { q.core.pos_of(elm) };
    // SAFETY: (1), (3); `pos` points at `elm`, so the result is `Some`.
    unsafe { QSListLink::remove_at(&q.core, pos).unwrap_unchecked() }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E};
    use rcu_core::{Domain, Mb};

    fn setup() -> (Domain<Mb>, QSList<E, Mb>, Drops) {
        let d = Domain::new();
        let l = QSList::new_in(&d);
        (d, l, Drops::default())
    }

    #[test]
    fn qslist_empty_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        assert!(l.is_empty(&r.read_lock()));
        assert!(l.lock().is_empty());
        l.lock().insert_head(m.e(1));
        assert!(!l.is_empty(&r.read_lock()));
        l.lock().remove_head().unwrap().defer();
        assert!(l.is_empty(&r.read_lock()));
    }

    #[test]
    fn qslist_first_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        assert!(l.first(&r.read_lock()).is_none());
        l.lock().insert_head(m.e(2));
        l.lock().insert_head(m.e(1));
        assert_eq!(l.first(&r.read_lock()).unwrap().v, 1);
        assert_eq!(l.lock().first().unwrap().v, 1);
    }

    #[test]
    fn qslist_next_rcu() {
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
        assert!(l.next(three, &g).is_none());
        assert_eq!(w.next(one).unwrap().v, 2);
        w.remove(two).defer();
        w.remove(three).defer();
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        assert_eq!(vals(l.iter(&g)), [1]);
        drop(g);
        d.barrier();
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn qslist_insert_head_rcu() {
        let (_d, l, m) = setup();
        let mut w = l.lock();
        assert_eq!(w.insert_head(m.e(2)).v, 2);
        w.insert_head(m.e(1));
        assert_eq!(vals(w.iter()), [1, 2]);
    }

    #[test]
    fn qslist_insert_after_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(1));
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        w.insert_after(one, m.e(3)); // after the last
        w.insert_after(one, m.e(2)); // middle
        assert_eq!(vals(w.iter()), [1, 2, 3]);
        let mut c = w.cursor();
        c.move_next();
        c.move_next();
        c.insert_after(m.e(4));
        c.insert_before(m.e(25));
        assert_eq!(vals(w.iter()), [1, 2, 25, 3, 4]);
    }

    #[test]
    fn qslist_remove_head_rcu() {
        let (d, l, m) = setup();
        let mut w = l.lock();
        assert!(w.remove_head().is_none());
        w.insert_head(m.e(2));
        w.insert_head(m.e(1));
        assert_eq!(w.remove_head().unwrap().synchronize().v, 1);
        assert_eq!(vals(w.iter()), [2]);
        w.remove_head().unwrap().defer();
        assert!(w.is_empty());
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn qslist_remove_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in (0..4).rev() {
            w.insert_head(m.e(v));
        }
        let g = r.read_lock();
        w.remove(l.iter(&g).last().unwrap()).defer(); // last
        assert_eq!(vals(w.iter()), [0, 1, 2]);
        w.remove(l.next(l.first(&g).unwrap(), &g).unwrap()).defer(); // middle
        assert_eq!(vals(w.iter()), [0, 2]);
        w.remove(l.first(&g).unwrap()).defer(); // head
        let only = l.first(&g).unwrap();
        w.remove(only).defer(); // single
        assert!(!only.sl.is_linked());
        assert!(w.is_empty());
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4);
    }

    #[test]
    fn qslist_foreach_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in (0..100).rev() {
            w.insert_head(m.e(v));
        }
        assert_eq!(vals(l.iter(&r.read_lock())), (0..100).collect::<Vec<_>>());
        assert_eq!(w.len(), 100);
    }

    #[test]
    fn qslist_foreach_safe_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in (0..10).rev() {
            w.insert_head(m.e(v));
        }
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
        assert_eq!(w.retain(|e| e.v % 2 == 1), 3);
        assert_eq!(vals(w.iter()), [1, 5, 7]);
        assert_eq!(w.clear(), 3);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 10);
    }

    #[test]
    fn drop_frees_what_the_list_holds() {
        let (_d, l, m) = setup();
        for v in 0..5 {
            l.lock().insert_head(m.e(v));
        }
        drop(l);
        assert_eq!(m.count(), 5);
    }

    #[test]
    #[should_panic(expected = "not linked into this list")]
    fn inserting_after_an_element_of_another_list_panics() {
        let (d, a, m) = setup();
        let b = QSList::new_in(&d);
        b.lock().insert_head(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        a.lock().insert_after(b.first(&g).unwrap(), m.e(3));
    }
}
