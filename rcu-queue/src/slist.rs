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
    use crate::test_support::{check, fill, kind_tests, setup, E};
    use crate::QSimpleQLink;

    kind_tests! {
        remove_head: qsimpleq_remove_head_rcu(QSimpleQLink), qslist_remove_head_rcu(QSListLink);
    }

    /// `*_REMOVE_HEAD_RCU`: on an empty list, then down to empty (a tail comes back to the
    /// head).
    fn remove_head<K: SinglyLinked>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let mut w = l.lock();
        assert!(w.remove_head().is_none());
        fill(&mut w, &m, [1, 2]);
        assert_eq!(w.remove_head().unwrap().synchronize().v, 1);
        assert_eq!(check(&w), [2]);
        w.remove_head().unwrap().defer();
        assert_eq!(check(&w), []);
        fill(&mut w, &m, [3]);
        assert_eq!(check(&w), [3]);
        drop(w);
        assert_eq!(m.freed(&d), 2);
    }
}
