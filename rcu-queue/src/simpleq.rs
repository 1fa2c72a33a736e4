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
    use crate::test_support::{check, kind_tests, setup, E};
    use crate::QTailQLink;

    kind_tests! {
        insert_tail: qsimpleq_insert_tail_rcu(QSimpleQLink), qtailq_insert_tail_rcu(QTailQLink);
    }

    /// `*_INSERT_TAIL_RCU`: into an empty list, after head insertions, after the last
    /// element was removed (the last position moves back), and a cursor's insertion at the
    /// end, which is the same thing.
    fn insert_tail<K: WithTail>()
    where
        E: Linked<K>,
    {
        let (_d, l, m) = setup::<K>();
        let mut w = l.lock();
        assert_eq!(w.insert_tail(m.e(1)).v, 1);
        w.insert_tail(m.e(2));
        w.insert_head(m.e(0));
        w.insert_tail(m.e(3));
        assert_eq!(check(&w), [0, 1, 2, 3]);
        assert_eq!(w.retain(|e| e.v != 3), 1);
        w.insert_tail(m.e(4));
        assert_eq!(check(&w), [0, 1, 2, 4]);
        let mut c = w.cursor();
        while c.move_next() {}
        c.insert_before(m.e(5));
        assert_eq!(check(&w), [0, 1, 2, 4, 5]);
        assert_eq!(w.clear(), 5);
        w.insert_tail(m.e(6)); // emptied: the last position is the head's again
        assert_eq!(check(&w), [6]);
    }
}
