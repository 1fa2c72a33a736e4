//! QSLIST (`QSLIST_*_RCU`): a singly linked list. Its link, its aliases, the operation of
//! the singly linked kinds (QSIMPLEQ and QSLIST: remove the head), and the raw functions.

use rcu_core::{Flavor, Memb};

use crate::cursor::Cursor;
use crate::link::{link_type, Linked, SinglyLinked};
use crate::rcu_list::RcuList;
use crate::role::Role;
use crate::writer::Writer;

link_type! {
    /// The link of a [`QSList`] element (`QSLIST_ENTRY`): singly linked.
    QSListLink {
        list: "QSList",
        tail: false,
        marks: [SinglyLinked]
    }
}

/// An RCU-protected singly linked list, QEMU's `QSLIST` with the `*_RCU` macros: an
/// [`RcuList`] linked through [`QSListLink<Tag>`](QSListLink). Removing a given element
/// walks from the head, as in C; a cursor removes at its position in O(1).
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
pub type QSList<T, F = Memb, Tag = ()> = RcuList<T, QSListLink<Tag>, F>;

/// The writer of a [`QSList`].
pub type QSListWriter<'a, T, F = Memb, Tag = ()> = Writer<'a, T, QSListLink<Tag>, F>;

/// A writer's cursor in a [`QSList`].
pub type QSListCursor<'w, T, F = Memb, Tag = ()> = Cursor<'w, T, QSListLink<Tag>, F>;

/// The operation of the singly linked kinds (QSIMPLEQ, QSLIST).
impl<T, K, F, R> Writer<'_, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: SinglyLinked,
    F: Flavor,
    R: Role,
{
    /// Unlink the first element (`QSLIST_REMOVE_HEAD_RCU`, `QSIMPLEQ_REMOVE_HEAD_RCU`)
    /// and hand it back as [`remove`](Writer::remove) does; `None` when empty.
    ///
    /// # Panics
    ///
    /// As for [`remove`](Writer::remove).
    pub fn remove_head(&mut self) -> Option<R::Removed<T, F>> {
        let list = self.list();
        // SAFETY: W1 (writer proof); the front is a position.
        unsafe { list.remove_at(list.head().front()) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E, MANY};
    use core::ptr::NonNull;
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
        for v in (0..MANY).rev() {
            w.insert_head(m.e(v));
        }
        assert_eq!(vals(l.iter(&r.read_lock())), (0..MANY).collect::<Vec<_>>());
        assert_eq!(w.len(), MANY as usize);
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
    fn cursor_replace() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in [2, 1, 0] {
            w.insert_head(m.e(v));
        }
        let g = r.read_lock();
        let one = l.next(l.first(&g).unwrap(), &g).unwrap();
        let mut c = w.cursor();
        c.move_next();
        c.replace_current(m.e(10)).defer();
        // a reader standing on the old element moves on to its successor
        assert_eq!(l.next(one, &g).unwrap().v, 2);
        assert_eq!(vals(l.iter(&g)), [0, 10, 2]);
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 1);
    }

    #[test]
    fn raw_functions_with_the_c_names() {
        let (d, l, m) = setup();
        let p = |v| NonNull::new(Box::into_raw(m.e(v))).unwrap();
        let (a, b, c) = (p(1), p(2), p(0));
        // SAFETY: only writer (W1); fresh boxes (W2); `a` linked when named (W3); the
        // removed elements are in no index and freed after a grace period.
        let (head, mid) = unsafe {
            crate::raw::qslist_insert_head_rcu(&l, a);
            crate::raw::qslist_insert_after_rcu(&l, a, b);
            crate::raw::qslist_insert_head_rcu(&l, c);
            (
                crate::raw::qslist_remove_head_rcu(&l).unwrap(),
                crate::raw::qslist_remove_rcu(&l, b),
            )
        };
        assert_eq!((head, mid), (c, b));
        assert_eq!(vals(l.lock().iter()), [1]);
        d.synchronize();
        // SAFETY: a grace period has passed since the removals; we own both.
        unsafe { drop((Box::from_raw(head.as_ptr()), Box::from_raw(mid.as_ptr()))) };
        assert_eq!(m.count(), 2);
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
