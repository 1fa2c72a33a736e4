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
    use crate::test_support::{check, fill, kind_tests, setup, vals, E};
    use crate::QTailQLink;

    kind_tests! {
        insert_before: qlist_insert_before_rcu(QListLink), qtailq_insert_before_rcu(QTailQLink);
        replace: qlist_replace_rcu(QListLink), qtailq_replace_rcu(QTailQLink);
    }

    /// `*_INSERT_BEFORE_RCU`: before the first element (it becomes the first), in the
    /// middle, before an element whose predecessor was removed.
    fn insert_before<K: DoublyLinked>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(3));
        let g = r.read_lock();
        let three = l.first(&g).unwrap();
        assert_eq!(w.insert_before(three, m.e(1)).v, 1);
        assert_eq!(l.first(&g).unwrap().v, 1);
        w.insert_before(three, m.e(2));
        assert_eq!(check(&w), [1, 2, 3]);
        w.remove(l.next(l.first(&g).unwrap(), &g).unwrap()).defer();
        w.insert_before(three, m.e(25));
        assert_eq!(check(&w), [1, 25, 3]);
    }

    /// `list_replace_rcu`: the first, a middle and the last element; a reader standing on
    /// the old one moves on to its successor; back pointers and the tail stay right.
    fn replace<K: DoublyLinked>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        fill(&mut w, &m, 1..=3);
        let g = r.read_lock();
        let two = l.next(l.first(&g).unwrap(), &g).unwrap();
        w.replace(two, m.e(20)).defer();
        assert!(!crate::link::link_of::<E, K>(two).is_linked());
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        w.replace(l.first(&g).unwrap(), m.e(10)).defer();
        w.replace(l.iter(&g).last().unwrap(), m.e(30)).defer();
        assert_eq!(vals(l.iter(&g)), [10, 20, 30]);
        assert_eq!(check(&w), [10, 20, 30]);
        let twenty = l.next(l.first(&g).unwrap(), &g).unwrap();
        w.insert_before(twenty, m.e(15));
        assert_eq!(check(&w), [10, 15, 20, 30]);
        drop((g, w));
        assert_eq!(m.freed(&d), 3);
    }
}
