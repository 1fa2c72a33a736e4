//! QLIST (`QLIST_*_RCU`): a doubly linked list whose back pointer (`le_prev`) is the
//! element's position. Its link, its aliases, the operations of the kinds with a back
//! pointer (QLIST and QTAILQ: insert before, replace), and the raw functions.

use rcu_core::{Flavor, Memb};

use crate::cursor::Cursor;
use crate::link::{link_type, DoublyLinked, Linked};
use crate::rcu_list::RcuList;
use crate::role::Role;
use crate::writer::Writer;

link_type! {
    /// The link of a [`QList`] element (`QLIST_ENTRY`): doubly linked, with `prev`
    /// pointing at the link (the previous element's, or the head's) whose `next` points
    /// here, as C's `le_prev` points at the previous `le_next`.
    QListLink {
        list: "QList",
        tail: false,
        marks: [DoublyLinked],
        prev
    }
}

/// An RCU-protected doubly linked list, QEMU's `QLIST` with the `*_RCU` macros: an
/// [`RcuList`] linked through [`QListLink<Tag>`](QListLink).
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
pub type QList<T, F = Memb, Tag = ()> = RcuList<T, QListLink<Tag>, F>;

/// The writer of a [`QList`].
pub type QListWriter<'a, T, F = Memb, Tag = ()> = Writer<'a, T, QListLink<Tag>, F>;

/// A writer's cursor in a [`QList`].
pub type QListCursor<'w, T, F = Memb, Tag = ()> = Cursor<'w, T, QListLink<Tag>, F>;

/// The operations of the kinds whose elements know their position (QLIST, QTAILQ).
impl<T, K, F, R> Writer<'_, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: DoublyLinked,
    F: Flavor,
    R: Role,
{
    /// Insert `e` before `before` (`QLIST_INSERT_BEFORE_RCU`,
    /// `QTAILQ_INSERT_BEFORE_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `before` is not linked into this list, or as for
    /// [`insert_head`](Writer::insert_head).
    pub fn insert_before(&mut self, before: &T, e: R::Elem<'_, T>) -> &T {
        let list = self.list();
        // SAFETY: W1 (writer proof); the position of a linked element is a position.
        unsafe { list.insert_at(list.pos_of(before), e) }
    }

    /// Put `new` in place of `old` (Linux's `list_replace_rcu`, O(1)): readers see the
    /// old element or the new one, never both and never neither; readers standing on the
    /// old one move on to its successor. Hands the old one back as
    /// [`remove`](Writer::remove) does.
    ///
    /// # Panics
    ///
    /// If `old` is not linked into this list, as for [`insert_head`](Writer::insert_head)
    /// for `new`, or as for [`remove`](Writer::remove) for `old`, before anything changes.
    pub fn replace(&mut self, old: &T, new: R::Elem<'_, T>) -> R::Removed<T, F> {
        let list = self.list();
        // SAFETY: W1 (writer proof); the position of a linked element is a position.
        unsafe { list.replace_at(list.pos_of(old), new) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{vals, Drops, E, MANY};
    use core::ptr::NonNull;
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
        // `le_prev` of the old first element now points at the new one: removing the new
        // head keeps the list intact.
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
        for v in (0..MANY).rev() {
            w.insert_head(m.e(v));
        }
        assert_eq!(vals(l.iter(&r.read_lock())), (0..MANY).collect::<Vec<_>>());
        assert_eq!(w.len(), MANY as usize);
        let g = r.read_lock();
        let mut n = 0;
        for e in l.iter(&g) {
            assert_eq!(e.v, n);
            n += 1;
        }
        assert_eq!(n, MANY);
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
    fn qlist_replace_rcu() {
        let (d, l, m) = setup();
        let r = d.register();
        let mut w = l.lock();
        for v in [3, 2, 1] {
            w.insert_head(m.e(v));
        }
        let g = r.read_lock();
        let two = l.next(l.first(&g).unwrap(), &g).unwrap();
        let old = w.replace(two, m.e(20)); // middle
        assert_eq!(vals(l.iter(&g)), [1, 20, 3]);
        // a reader standing on the old element moves on to its successor
        assert!(!two.ql.is_linked());
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        old.defer();
        w.replace(l.first(&g).unwrap(), m.e(10)).defer(); // head
        w.replace(l.iter(&g).last().unwrap(), m.e(30)).defer(); // tail
        assert_eq!(vals(w.iter()), [10, 20, 30]);
        // the back pointers are right: insert before and remove each one
        let twenty = l.next(l.first(&g).unwrap(), &g).unwrap();
        w.insert_before(twenty, m.e(15));
        let mut c = w.cursor();
        c.move_next();
        c.move_next();
        c.replace_current(m.e(21)).defer(); // 20, through a cursor
        assert_eq!(c.current().unwrap().v, 21);
        assert_eq!(vals(w.iter()), [10, 15, 21, 30]);
        for e in l.iter(&g) {
            w.remove(e).defer();
        }
        assert!(w.is_empty());
        drop(g);
        drop(w);
        d.barrier();
        assert_eq!(m.count(), 4 + 4);
    }

    #[test]
    fn raw_functions_with_the_c_names() {
        let (d, l, m) = setup();
        let p = |v| NonNull::new(Box::into_raw(m.e(v))).unwrap();
        let (a, b, c) = (p(1), p(3), p(2));
        // SAFETY: this thread is the only writer (W1); fresh boxes (W2); `a` and `b` are
        // linked when named as positions (W3) and in no index.
        unsafe {
            crate::raw::qlist_insert_head_rcu(&l, a);
            crate::raw::qlist_insert_after_rcu(a, b);
            crate::raw::qlist_insert_before_rcu(b, c);
        }
        assert_eq!(vals(l.lock().iter()), [1, 2, 3]);
        // SAFETY: as above.
        let removed = unsafe { crate::raw::qlist_remove_rcu(c) };
        assert_eq!(removed, c);
        assert_eq!(vals(l.lock().iter()), [1, 3]);
        d.synchronize();
        // SAFETY: a grace period has elapsed since the removal; we own the pointer.
        drop(unsafe { Box::from_raw(removed.as_ptr()) });
        assert_eq!(m.count(), 1);
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
