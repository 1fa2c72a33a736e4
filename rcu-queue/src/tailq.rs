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
    use crate::test_support::{check, setup, vals};

    /// `QTAILQ_LAST`, `QTAILQ_PREV`, `QTAILQ_FOREACH_REVERSE`: writer only, and they agree
    /// with the forward walk through insertions and removals at both ends.
    #[test]
    fn qtailq_reverse_is_writer_only() {
        let (d, q, m) = setup::<QTailQLink>();
        let r = d.register();
        let mut w = q.lock();
        assert!(w.last().is_none() && w.iter_rev().next().is_none());
        for v in 0..5 {
            w.insert_tail(m.e(v));
        }
        assert_eq!(w.last().unwrap().v, 4);
        assert_eq!(w.prev(w.last().unwrap()).unwrap().v, 3);
        assert!(w.prev(w.first().unwrap()).is_none());
        assert_eq!(vals(w.iter_rev()), [4, 3, 2, 1, 0]);
        let g = r.read_lock();
        w.remove(q.iter(&g).last().unwrap()).defer();
        w.remove(q.first(&g).unwrap()).defer();
        w.insert_head(m.e(9));
        let mut back = vals(w.iter_rev());
        back.reverse();
        assert_eq!(back, check(&w));
        assert_eq!(back, [9, 1, 2, 3]);
        assert!(format!("{:?}", w.iter_rev()).starts_with("RevIter"));
    }
}
