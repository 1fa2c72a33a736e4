//! QTAILQ (`QTAILQ_*_RCU`): a doubly linked tail queue. Its link, its aliases, its own
//! operations (the writer-only reverse walk: `QTAILQ_LAST`, `QTAILQ_PREV`,
//! `QTAILQ_FOREACH_REVERSE`), and the raw functions. Its other operations are those of
//! the doubly linked kinds (in `list.rs`) and of the kinds with a tail (`simpleq.rs`).

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use rcu_core::{Flavor, Memb};

use crate::cursor::Cursor;
use crate::link::{elem, link_of, link_type, not_in_list, Linked};
use crate::rcu_list::RcuList;
use crate::role::Role;
use crate::sync::Ordering;
use crate::writer::Writer;

link_type! {
    /// The link of a [`QTailQ`] element (`QTAILQ_ENTRY`): doubly linked, with `prev`
    /// pointing at the previous element's link (or the head's), as QEMU's
    /// `tqe_circ.tql_prev` does. Removal clears `prev` (QEMU's "not in list" marker).
    QTailQLink {
        list: "QTailQ",
        tail: true,
        marks: [DoublyLinked, WithTail],
        prev
    }
}

/// An RCU-protected tail queue, QEMU's `QTAILQ` with the `*_RCU` macros: an [`RcuList`]
/// linked through [`QTailQLink<Tag>`](QTailQLink). Reverse traversal is writer-only.
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
pub type QTailQ<T, F = Memb, Tag = ()> = RcuList<T, QTailQLink<Tag>, F>;

/// The writer of a [`QTailQ`].
pub type QTailQWriter<'a, T, F = Memb, Tag = ()> = Writer<'a, T, QTailQLink<Tag>, F>;

/// A writer's cursor in a [`QTailQ`].
pub type QTailQCursor<'w, T, F = Memb, Tag = ()> = Cursor<'w, T, QTailQLink<Tag>, F>;

/// QTAILQ's own operations: the reverse walk, writer only (readers never follow `prev`).
impl<T, F, R, Tag> Writer<'_, T, QTailQLink<Tag>, F, R>
where
    T: Linked<QTailQLink<Tag>> + Send + Sync + 'static,
    F: Flavor,
    R: Role,
    Tag: 'static,
{
    /// The last element (`QTAILQ_LAST`; writer only).
    pub fn last(&self) -> Option<&T> {
        self.before(self.list().head().tail())
    }

    /// The element before `e` (`QTAILQ_PREV`; writer only).
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this queue.
    pub fn prev(&self, e: &T) -> Option<&T> {
        self.list().check_in(e);
        // Relaxed: writer-only field, read by the writer (serialized).
        let prev = link_of::<T, QTailQLink<Tag>>(e)
            .prev
            .load(Ordering::Relaxed);
        self.before(NonNull::new(prev).unwrap_or_else(|| not_in_list()))
    }

    /// Iterate back to front (`QTAILQ_FOREACH_REVERSE`; writer only).
    pub fn iter_rev(&self) -> RevIter<'_, T, Tag> {
        RevIter {
            cur: self.list().head().tail().as_ptr(),
            head: self.list().head().front().as_ptr(),
            _marker: PhantomData,
        }
    }

    /// The element whose link is the position `pos`, or `None` for the head's.
    fn before(&self, pos: NonNull<QTailQLink<Tag>>) -> Option<&T> {
        if pos == self.list().head().front() {
            return None;
        }
        // SAFETY: a position other than the head's is a linked element's link; it stays
        // linked while `self` is borrowed (as in `Writer::first`).
        unsafe { elem(pos.as_ptr()) }
    }
}

/// A writer's back-to-front iterator over a [`QTailQ`] ([`Writer::iter_rev`]).
pub struct RevIter<'a, T, Tag = ()> {
    cur: *mut QTailQLink<Tag>,
    head: *mut QTailQLink<Tag>,
    _marker: PhantomData<&'a T>,
}

impl<'a, T: Linked<QTailQLink<Tag>> + 'a, Tag: 'static> Iterator for RevIter<'a, T, Tag> {
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

impl<T, Tag> fmt::Debug for RevIter<'_, T, Tag> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RevIter").finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E, MANY};
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

    fn prev_is_null(l: &QTailQLink) -> bool {
        l.prev.load(Ordering::Relaxed).is_null()
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
        assert!(prev_is_null(&only.tq));
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
        assert!(prev_is_null(&tail.tq));
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
        for v in 0..MANY {
            w.insert_tail(m.e(v));
        }
        assert_eq!(vals(q.iter(&r.read_lock())), (0..MANY).collect::<Vec<_>>());
        assert_eq!(w.len(), MANY as usize);
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
    fn qtailq_replace_keeps_both_directions() {
        let (d, q, m) = setup();
        let r = d.register();
        let mut w = q.lock();
        for v in 0..3 {
            w.insert_tail(m.e(v));
        }
        let g = r.read_lock();
        let tail = q.iter(&g).last().unwrap();
        w.replace(tail, m.e(20)).defer(); // tail: the head's last position moves
        assert!(prev_is_null(&tail.tq));
        assert_eq!(check(&w), [0, 1, 20]);
        w.replace(q.first(&g).unwrap(), m.e(10)).defer(); // head
        let one = q.next(q.first(&g).unwrap(), &g).unwrap();
        w.replace(one, m.e(11)).defer(); // middle
        assert_eq!(check(&w), [10, 11, 20]);
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 3);
    }

    #[test]
    fn raw_functions_with_the_c_names() {
        let (d, q, m) = setup();
        let p = |v| NonNull::new(Box::into_raw(m.e(v))).unwrap();
        let (a, b, c, z) = (p(1), p(3), p(2), p(0));
        // SAFETY: only writer (W1); fresh boxes (W2); `a`, `b` linked when named (W3); the
        // removed element is in no index and freed after a grace period.
        let removed = unsafe {
            crate::raw::qtailq_insert_tail_rcu(&q, a);
            crate::raw::qtailq_insert_after_rcu(&q, a, b);
            crate::raw::qtailq_insert_before_rcu(b, c);
            crate::raw::qtailq_insert_head_rcu(&q, z);
            crate::raw::qtailq_remove_rcu(&q, a)
        };
        assert_eq!(removed, a);
        assert_eq!(check(&q.lock()), [0, 2, 3]);
        d.synchronize();
        // SAFETY: a grace period has passed since the removal; we own it.
        drop(unsafe { Box::from_raw(removed.as_ptr()) });
        assert_eq!(m.count(), 1);
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
