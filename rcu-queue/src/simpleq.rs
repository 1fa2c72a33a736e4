//! QSIMPLEQ (`QSIMPLEQ_*_RCU`): a singly linked queue whose head keeps the last position
//! (`sqh_last`). Its link, its aliases, the operation of the kinds with a tail (QSIMPLEQ
//! and QTAILQ: insert at the tail), and the raw functions.

use rcu_core::{Flavor, Memb};

use crate::cursor::Cursor;
use crate::link::{link_type, Linked, WithTail};
use crate::rcu_list::RcuList;
use crate::role::Role;
use crate::writer::Writer;

link_type! {
    /// The link of a [`QSimpleQ`] element (`QSIMPLEQ_ENTRY`): singly linked; the queue
    /// head keeps the last element's link (`sqh_last`).
    QSimpleQLink {
        list: "QSimpleQ",
        tail: true,
        marks: [SinglyLinked, WithTail]
    }
}

/// An RCU-protected singly linked queue with a tail pointer, QEMU's `QSIMPLEQ` with the
/// `*_RCU` macros: an [`RcuList`] linked through [`QSimpleQLink<Tag>`](QSimpleQLink).
/// Removing a given element walks from the head, as in C; a cursor removes at its
/// position in O(1).
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
pub type QSimpleQ<T, F = Memb, Tag = ()> = RcuList<T, QSimpleQLink<Tag>, F>;

/// The writer of a [`QSimpleQ`].
pub type QSimpleQWriter<'a, T, F = Memb, Tag = ()> = Writer<'a, T, QSimpleQLink<Tag>, F>;

/// A writer's cursor in a [`QSimpleQ`].
pub type QSimpleQCursor<'w, T, F = Memb, Tag = ()> = Cursor<'w, T, QSimpleQLink<Tag>, F>;

/// The operation of the kinds whose head keeps the last position (QSIMPLEQ, QTAILQ).
impl<T, K, F, R> Writer<'_, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: WithTail,
    F: Flavor,
    R: Role,
{
    /// Insert `e` at the back (`QSIMPLEQ_INSERT_TAIL_RCU`, `QTAILQ_INSERT_TAIL_RCU`);
    /// returns it.
    ///
    /// # Panics
    ///
    /// As for [`insert_head`](Writer::insert_head).
    pub fn insert_tail(&mut self, e: R::Elem<'_, T>) -> &T {
        let list = self.list();
        // SAFETY: W1 (writer proof); the tail is a position.
        unsafe { list.insert_at(list.head().tail(), e) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E, MANY};
    use core::ptr::NonNull;
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
        for v in 0..MANY {
            w.insert_tail(m.e(v));
        }
        assert_eq!(vals(q.iter(&r.read_lock())), (0..MANY).collect::<Vec<_>>());
        assert_eq!(w.len(), MANY as usize);
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
    fn cursor_replace_keeps_the_tail() {
        let (d, q, m) = setup();
        let mut w = q.lock();
        for v in 0..3 {
            w.insert_tail(m.e(v));
        }
        let mut c = w.cursor();
        c.move_next();
        c.move_next();
        c.replace_current(m.e(20)).defer(); // the tail
        assert_eq!(check_tail(&mut w, &m), [0, 1, 20]);
        w.cursor().replace_current(m.e(10)).defer(); // the head
        assert_eq!(check_tail(&mut w, &m), [10, 1, 20]);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 2 + 2);
    }

    #[test]
    fn raw_functions_with_the_c_names() {
        let (d, q, m) = setup();
        let p = |v| NonNull::new(Box::into_raw(m.e(v))).unwrap();
        let (a, b, c) = (p(1), p(2), p(0));
        // SAFETY: only writer (W1); fresh boxes (W2); `a` linked when named (W3); the
        // removed elements are in no index and freed after a grace period.
        let (head, mid) = unsafe {
            crate::raw::qsimpleq_insert_tail_rcu(&q, a);
            crate::raw::qsimpleq_insert_after_rcu(&q, a, b);
            crate::raw::qsimpleq_insert_head_rcu(&q, c);
            (
                crate::raw::qsimpleq_remove_head_rcu(&q).unwrap(),
                crate::raw::qsimpleq_remove_rcu(&q, b),
            )
        };
        assert_eq!((head, mid), (c, b));
        assert_eq!(vals(q.lock().iter()), [1]);
        d.synchronize();
        // SAFETY: a grace period has passed since the removals; we own both.
        unsafe { drop((Box::from_raw(head.as_ptr()), Box::from_raw(mid.as_ptr()))) };
        assert_eq!(m.count(), 2);
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
