//! `QSimpleQ`: QEMU's `QSIMPLEQ_*_RCU`, a singly linked queue with a tail pointer.
//!
//! # How it works
//!
//! The head holds `first` and `last`, the address of the `next` field (or of `first`)
//! where the next tail insertion goes (QEMU's `sqh_last`). Readers only follow `first`
//! and `next`, with `Acquire` loads (`qatomic_rcu_read`); a writer publishes a new
//! element with one `Release` store (`qatomic_rcu_set`) after setting its `next`. Removal
//! stores the successor into the previous `next` field (QEMU: `qatomic_set`; we use
//! `Release`, see [the QLIST notes](crate::QList)) and leaves the removed element's `next`
//! for readers standing on it. Removing a given element walks from the head, as in C; a
//! [`QSimpleQCursor`] removes at its position in O(1).

use core::ptr::{self, NonNull};

use rcu_core::{Flavor, Memb};

use crate::link::{adopt, already_linked, Linked, LINKED};
use crate::list_core::{CursorCore, LinkKind, ListCore, WriterCore};
use crate::retired::Retired;
use crate::sync::{AtomicPtr, Ordering};
use crate::QSimpleQLink;

/// The queue head (`QSIMPLEQ_HEAD`), heap-allocated so that `last` may point at `first`.
pub(crate) struct QSimpleQHead {
    first: AtomicPtr<QSimpleQLink>,
    /// `sqh_last`: the `next` field of the last element, or `first` (writer-only).
    last: AtomicPtr<AtomicPtr<QSimpleQLink>>,
}

/// An RCU-protected singly linked queue with a tail pointer, of `Box<T>` elements:
/// QEMU's `QSIMPLEQ` with the `*_RCU` macros.
///
/// ```
/// use rcu_queue::{rcu_link, QSimpleQ, QSimpleQLink};
/// use rcu_core::rcu_read_lock;
///
/// struct Job { n: u32, link: QSimpleQLink }
/// rcu_link!(Job, link: QSimpleQLink);
/// let job = |n| Box::new(Job { n, link: QSimpleQLink::new() });
///
/// let q: QSimpleQ<Job> = QSimpleQ::new();
/// let mut w = q.lock();
/// w.insert_tail(job(2));
/// w.insert_head(job(1));
/// w.insert_tail(job(3));
/// w.remove_head().unwrap().defer();
/// drop(w);
/// let guard = rcu_read_lock();
/// assert_eq!(q.iter(&guard).map(|j| j.n).collect::<Vec<_>>(), [2, 3]);
/// ```
///
/// Invariants: `head` is a live box owned by this queue; `head.last` is the `next` field
/// of the last element, or `head.first` when empty; every element reachable from
/// `head.first` is a `Box<T>` owned by the queue, linked with owner word `id() | LINKED`;
/// removed elements are freed only after a grace period of `domain`, or when the queue is
/// dropped.
pub struct QSimpleQ<T, F = Memb>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    core: ListCore<T, QSimpleQLink, F>,
}

crate::list_core::list_wrappers! {
    list: QSimpleQ,
    writer: QSimpleQWriter { q },
    link: QSimpleQLink,
    c: "QSIMPLEQ",
    noun: "queue",
    get: queue,
    cursor: QSimpleQCursor { q },
}

/// Proof of writer exclusion for a [`QSimpleQ`] (see [`QListWriter`](crate::QListWriter)
/// for how to name elements). Not `Send`.
pub struct QSimpleQWriter<'a, T, F = Memb>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'a QSimpleQ<T, F>,
    w: WriterCore<'a, T, QSimpleQLink, F>,
}

impl<'a, T, F> QSimpleQWriter<'a, T, F>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` at the front (`QSIMPLEQ_INSERT_HEAD_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_head(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qsimpleq_insert_head_rcu(self.q, e)) }
    }

    /// Insert `e` at the back (`QSIMPLEQ_INSERT_TAIL_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `e` is already linked.
    pub fn insert_tail(&mut self, e: Box<T>) -> &T {
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box).
        unsafe { self.w.insert(e, |e| qsimpleq_insert_tail_rcu(self.q, e)) }
    }

    /// Insert `e` after `after` (`QSIMPLEQ_INSERT_AFTER_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `after` is not linked into this queue, or `e` is already linked.
    pub fn insert_after(&mut self, after: &T, e: Box<T>) -> &T {
        self.w.check_in(after);
        // SAFETY: W1 (writer proof), W2 (`insert` passes a fresh box), W3 (checked above).
        unsafe {
            self.w.insert(e, |e| {
                qsimpleq_insert_after_rcu(self.q, NonNull::from(after), e)
            })
        }
    }

    /// Unlink the first element (`QSIMPLEQ_REMOVE_HEAD_RCU`); `None` when empty.
    pub fn remove_head(&mut self) -> Option<Retired<T, F>> {
        // SAFETY: W1 (writer proof).
        let p = unsafe { qsimpleq_remove_head_rcu(self.q) }?;
        // SAFETY: `p` was just unlinked from this list by this writer.
        Some(unsafe { self.w.retire(p) })
    }

    /// Unlink `e` (`QSIMPLEQ_REMOVE_RCU`, a walk from the head) and hand it back, to be
    /// freed after a grace period.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this queue.
    pub fn remove(&mut self, e: &T) -> Retired<T, F> {
        // SAFETY: W1 (writer proof), W3 (`remove` checks that `e` is linked here first).
        unsafe { self.w.remove(e, |e| qsimpleq_remove_rcu(self.q, e)) }
    }
}

/// A writer's cursor in a [`QSimpleQ`]: an element, or the end. It is the `next` field
/// (or head) that points at the current element, so removal here is O(1).
pub struct QSimpleQCursor<'w, T, F = Memb>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    q: &'w QSimpleQ<T, F>,
    c: CursorCore<'w, T, QSimpleQLink, F>,
}

impl<T, F> QSimpleQCursor<'_, T, F>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    /// Insert `e` after the current element (`QSIMPLEQ_INSERT_AFTER_RCU`).
    ///
    /// # Panics
    ///
    /// At the end of the queue, or if `e` is already linked.
    pub fn insert_after(&mut self, e: Box<T>) {
        let Some(after) = self.c.current_ptr() else {
            panic!("rcu-queue: QSimpleQCursor::insert_after at the end of the queue");
        };
        let e = adopt::<T, QSimpleQLink>(e);
        // SAFETY: W1 (we borrow the writer), W2 (fresh box), W3 (linked here).
        unsafe { qsimpleq_insert_after_rcu(self.q, after, e) };
    }
}

// ----- the raw layer (C names) -----

impl LinkKind for QSimpleQLink {
    type Head = QSimpleQHead;
    /// The `next` field (or the head's `first`) that points at the current element.
    type Pos = AtomicPtr<QSimpleQLink>;

    fn new_head() -> QSimpleQHead {
        QSimpleQHead {
            first: AtomicPtr::new(ptr::null_mut()),
            last: AtomicPtr::new(ptr::null_mut()),
        }
    }

    fn init_head(h: &QSimpleQHead, _this: NonNull<QSimpleQHead>) {
        // Relaxed: not shared yet. Empty: `sqh_last = &sqh_first`.
        h.last
            .store(ptr::from_ref(&h.first).cast_mut(), Ordering::Relaxed);
    }

    #[inline(always)]
    fn first(head: &QSimpleQHead) -> &AtomicPtr<QSimpleQLink> {
        &head.first
    }

    #[inline(always)]
    fn front(
        head: &QSimpleQHead,
        _this: NonNull<QSimpleQHead>,
    ) -> NonNull<AtomicPtr<QSimpleQLink>> {
        NonNull::from(&head.first)
    }

    #[inline(always)]
    fn pos_next(pos: &AtomicPtr<QSimpleQLink>) -> &AtomicPtr<QSimpleQLink> {
        pos
    }

    /// # Safety
    ///
    /// As for `LinkKind::after`.
    #[inline(always)]
    unsafe fn after(link: NonNull<QSimpleQLink>) -> NonNull<AtomicPtr<QSimpleQLink>> {
        // SAFETY: `link` is a live link (contract); this takes its field's address.
        unsafe { NonNull::new_unchecked(ptr::addr_of_mut!((*link.as_ptr()).next)) }
    }

    /// # Safety
    ///
    /// As for `LinkKind::insert_at`.
    unsafe fn insert_at<T, F>(
        list: &ListCore<T, QSimpleQLink, F>,
        pos: NonNull<AtomicPtr<QSimpleQLink>>,
        elm: NonNull<T>,
    ) -> NonNull<AtomicPtr<QSimpleQLink>>
    where
        T: Linked<QSimpleQLink> + Send + Sync + 'static,
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
        if next.is_null() {
            // Relaxed: writer-only field (`sqh_last = &elm->sqe_next`).
            list.head().last.store(new_next.as_ptr(), Ordering::Relaxed);
        }
        // Release (`qatomic_rcu_set`): publishes the element.
        pos_ref.store(el.as_ptr(), Ordering::Release);
        new_next
    }

    /// # Safety
    ///
    /// As for `LinkKind::remove_at`.
    unsafe fn remove_at<T, F>(
        list: &ListCore<T, QSimpleQLink, F>,
        pos: NonNull<AtomicPtr<QSimpleQLink>>,
    ) -> Option<NonNull<T>>
    where
        T: Linked<QSimpleQLink> + Send + Sync + 'static,
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
        if next.is_null() {
            // Relaxed: writer-only field (`sqh_last = &curr->sqe_next` or `&sqh_first`).
            list.head().last.store(pos.as_ptr(), Ordering::Relaxed);
        }
        // Relaxed: writer-only field; the id stays for readers standing on the element.
        let owner = old.owner.load(Ordering::Relaxed);
        old.owner.store(owner & !LINKED, Ordering::Relaxed);
        // SAFETY: `cur` is the link the queue stored (contract 2 of `Linked`).
        Some(unsafe { T::from_link(cur) })
    }
}

/// `QSIMPLEQ_INSERT_HEAD_RCU(head, elm, field)`.
///
/// # Safety
///
/// 1. (W1) The caller is the queue's only writer during the call, and every earlier writer
///    operation on it happens-before the call.
/// 2. (W2) `elm` came from `Box::into_raw`, is live and not linked into any list; the queue
///    takes ownership.
pub unsafe fn qsimpleq_insert_head_rcu<T, F>(q: &QSimpleQ<T, F>, elm: NonNull<T>)
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2), and the head's `first` is a valid position.
    unsafe { QSimpleQLink::insert_at(&q.core, q.core.front(), elm) };
}

/// `QSIMPLEQ_INSERT_TAIL_RCU(head, elm, field)`.
///
/// # Safety
///
/// As for [`qsimpleq_insert_head_rcu`].
pub unsafe fn qsimpleq_insert_tail_rcu<T, F>(q: &QSimpleQ<T, F>, elm: NonNull<T>)
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // Relaxed: writer-only field (1).
    let last = q.core.head().last.load(Ordering::Relaxed);
    // SAFETY: `sqh_last` is the head's `first` or the last element's `next` (invariant),
    // never null; (1) and (2) are the caller's.
    unsafe { QSimpleQLink::insert_at(&q.core, NonNull::new_unchecked(last), elm) };
}

/// `QSIMPLEQ_INSERT_AFTER_RCU(head, listelm, elm, field)`.
///
/// # Safety
///
/// 1. and 2. as for [`qsimpleq_insert_head_rcu`];
/// 3. (W3) `listelm` points to an element linked into `q`.
pub unsafe fn qsimpleq_insert_after_rcu<T, F>(
    q: &QSimpleQ<T, F>,
    listelm: NonNull<T>,
    elm: NonNull<T>,
) where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: `listelm` is live (3); this takes the address of its link's `next`.
    let pos = unsafe { NonNull::from(&T::link(listelm).as_ref().next) };
    // SAFETY: (1), (2), and `pos` is a linked element's `next` (3).
    unsafe { QSimpleQLink::insert_at(&q.core, pos, elm) };
}

/// `QSIMPLEQ_REMOVE_HEAD_RCU(head, field)`: unlinks the first element and returns it (as
/// the queue stored it), or `None` when empty.
///
/// # Safety
///
/// 1. (W1) as for [`qsimpleq_insert_head_rcu`];
/// 2. afterwards the caller owns the element and frees it only after a grace period of
///    `q`'s domain.
pub unsafe fn qsimpleq_remove_head_rcu<T, F>(q: &QSimpleQ<T, F>) -> Option<NonNull<T>>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2); the head's `first` is a valid position.
    unsafe { QSimpleQLink::remove_at(&q.core, q.core.front()) }
}

/// `QSIMPLEQ_REMOVE_RCU(head, elm, type, field)`: walks from the head to `elm`, unlinks
/// it and returns it (as the queue stored it).
///
/// # Safety
///
/// 1. (W1) as for [`qsimpleq_insert_head_rcu`];
/// 2. (W3) `elm` points to an element linked into `q`;
/// 3. afterwards the caller owns the element and frees it only after a grace period of
///    `q`'s domain.
pub unsafe fn qsimpleq_remove_rcu<T, F>(q: &QSimpleQ<T, F>, elm: NonNull<T>) -> NonNull<T>
where
    T: Linked<QSimpleQLink> + Send + Sync + 'static,
    F: Flavor,
{
    // SAFETY: (1), (2).
    let pos = unsafe { q.core.pos_of(elm) };
    // SAFETY: (1), (3); `pos` points at `elm`, so the result is `Some`.
    unsafe { QSimpleQLink::remove_at(&q.core, pos).unwrap_unchecked() }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E};
    use rcu_core::{Domain, Mb};

    fn setup() -> (Domain<Mb>, QSimpleQ<E, Mb>, Drops) {
        let d = Domain::new();
        let q = QSimpleQ::new_in(&d);
        (d, q, Drops::default())
    }

    /// The tail pointer is right: a tail insertion lands after the last element.
    fn check_tail(w: &mut QSimpleQWriter<'_, E, Mb>, m: &Drops) -> Vec<u32> {
        w.insert_tail(m.e(999));
        let v = vals(w.iter());
        assert_eq!(v.last(), Some(&999));
        let mut c = w.cursor();
        while c.current().is_some_and(|e| e.v != 999) {
            c.move_next();
        }
        c.remove_current().unwrap().defer();
        v[..v.len() - 1].to_vec()
    }

    #[test]
    fn qsimpleq_empty_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        assert!(q.is_empty(&r.read_lock()));
        assert!(q.lock().is_empty());
        q.lock().insert_tail(m.e(1));
        assert!(!q.is_empty(&r.read_lock()));
        q.lock().remove_head().unwrap().defer();
        assert!(q.is_empty(&r.read_lock()));
        assert!(q.lock().is_empty());
    }

    #[test]
    fn qsimpleq_first_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        assert!(q.first(&r.read_lock()).is_none());
        q.lock().insert_tail(m.e(1));
        q.lock().insert_tail(m.e(2));
        assert_eq!(q.first(&r.read_lock()).unwrap().v, 1);
        assert_eq!(q.lock().first().unwrap().v, 1);
    }

    #[test]
    fn qsimpleq_next_rcu() {
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
        w.remove(two).defer();
        w.remove(three).defer();
        assert_eq!(q.next(two, &g).unwrap().v, 3);
        assert_eq!(vals(q.iter(&g)), [1]);
        drop(g);
        d.barrier();
        assert_eq!(m.count(), 2);
    }

    #[test]
    fn qsimpleq_insert_head_rcu() {
        let (_d, q, m) = setup();
        let mut w = q.lock();
        w.insert_head(m.e(2)); // into an empty queue: also sets the tail
        assert_eq!(check_tail(&mut w, &m), [2]);
        w.insert_head(m.e(1));
        assert_eq!(check_tail(&mut w, &m), [1, 2]);
    }

    #[test]
    fn qsimpleq_insert_tail_rcu() {
        let (_d, q, m) = setup();
        let mut w = q.lock();
        w.insert_tail(m.e(1));
        w.insert_tail(m.e(2));
        w.insert_head(m.e(0));
        w.insert_tail(m.e(3));
        assert_eq!(vals(w.iter()), [0, 1, 2, 3]);
        let mut c = w.cursor();
        while c.move_next() {}
        c.insert_before(m.e(4)); // at the end: a tail insertion
        assert_eq!(check_tail(&mut w, &m), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn qsimpleq_insert_after_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        w.insert_tail(m.e(1));
        let g = r.read_lock();
        let one = q.first(&g).unwrap();
        w.insert_after(one, m.e(3)); // after the tail: moves the tail pointer
        assert_eq!(check_tail(&mut w, &m), [1, 3]);
        w.insert_after(one, m.e(2));
        assert_eq!(check_tail(&mut w, &m), [1, 2, 3]);
        let mut c = w.cursor();
        c.move_next();
        c.move_next();
        c.insert_after(m.e(4));
        assert_eq!(check_tail(&mut w, &m), [1, 2, 3, 4]);
    }

    #[test]
    fn qsimpleq_remove_head_rcu() {
        let (d, q, m) = setup();
        let mut w = q.lock();
        assert!(w.remove_head().is_none());
        w.insert_tail(m.e(1));
        w.insert_tail(m.e(2));
        assert_eq!(w.remove_head().unwrap().synchronize().v, 1);
        assert_eq!(check_tail(&mut w, &m), [2]);
        w.remove_head().unwrap().defer(); // the last one: the tail points at the head again
        assert!(w.is_empty());
        assert_eq!(check_tail(&mut w, &m), []);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4); // 1, 2 and two 999 probes
    }

    #[test]
    fn qsimpleq_remove_rcu() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        for v in 0..4 {
            w.insert_tail(m.e(v));
        }
        let g = r.read_lock();
        let tail = q.iter(&g).last().unwrap();
        w.remove(tail).defer(); // the tail: tail pointer moves back
        assert_eq!(check_tail(&mut w, &m), [0, 1, 2]);
        let one = q.next(q.first(&g).unwrap(), &g).unwrap();
        w.remove(one).defer(); // middle
        assert_eq!(check_tail(&mut w, &m), [0, 2]);
        w.remove(q.first(&g).unwrap()).defer(); // head
        assert_eq!(check_tail(&mut w, &m), [2]);
        let only = q.first(&g).unwrap();
        w.remove(only).defer(); // single
        assert!(!only.sq.is_linked());
        assert_eq!(check_tail(&mut w, &m), []);
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4 + 4); // and four 999 probes
    }

    #[test]
    fn qsimpleq_foreach_rcu() {
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
    fn qsimpleq_foreach_safe_rcu() {
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
        assert_eq!(check_tail(&mut w, &m), [1, 5, 7]);
        assert_eq!(w.retain(|e| e.v != 7), 1); // removing the tail keeps the tail pointer right
        assert_eq!(check_tail(&mut w, &m), [1, 5]);
        assert_eq!(w.clear(), 2);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 10 + 2); // and two 999 probes
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
        let b = QSimpleQ::new_in(&d);
        a.lock().insert_tail(m.e(1));
        b.lock().insert_tail(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let _ = a.lock().remove(b.first(&g).unwrap());
    }
}
