//! [`Cursor`]: a writer's position in a list, where elements are inserted, removed and
//! replaced in O(1) for every kind; and [`ExtractIf`], the removing walk built on it.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use rcu_core::{Flavor, Memb};

use crate::link::{elem, LinkKind, Linked};
use crate::rcu_list::RcuList;
use crate::role::{Owner, Role};
use crate::sync::Ordering;

/// A writer's cursor: a position in a list (an element, or the end) where elements can
/// be inserted, removed and replaced in O(1), for every kind. It stands on the link (the
/// head's or the previous element's) whose `next` points at the current element, as C's
/// `le_prev` does. Obtained from [`Writer::cursor`](crate::Writer::cursor), which it
/// borrows mutably.
pub struct Cursor<'w, T, K, F = Memb, R = Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    list: &'w RcuList<T, K, F, R>,
    /// What points at the current element: the list's front, or the link of one of its
    /// linked elements.
    pos: NonNull<K>,
    _writer: PhantomData<&'w mut ()>,
}

impl<'w, T, K, F, R> Cursor<'w, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    /// # Safety
    ///
    /// The caller holds the list's writer exclusion for `'w` (W1) and gives it to the
    /// cursor; `pos` is a position of the list.
    pub(crate) unsafe fn new(list: &'w RcuList<T, K, F, R>, pos: NonNull<K>) -> Self {
        Cursor {
            list,
            pos,
            _writer: PhantomData,
        }
    }

    /// The link of the current element, null at the end.
    #[inline]
    fn current_link(&self) -> *mut K {
        // SAFETY: `pos` is in the head or in a linked element of the list; neither can go
        // while the cursor (borrowing the writer) lives, since only the cursor's own
        // methods change the list, and they keep `pos` on a linked element or the head.
        // Relaxed: the cursor belongs to the writer (serialized).
        unsafe { self.pos.as_ref() }.next().load(Ordering::Relaxed)
    }

    /// The current element, or `None` at the end.
    #[inline]
    pub fn current(&self) -> Option<&T> {
        // SAFETY: a linked element, freed only after a removal through this cursor, which
        // takes `&mut self` and so ends the returned borrow first.
        unsafe { elem(self.current_link()) }
    }

    /// Move to the next element (or the end). Returns `false` if already at the end.
    #[inline]
    pub fn move_next(&mut self) -> bool {
        match NonNull::new(self.current_link()) {
            Some(l) => {
                // The link of a linked element is the position after it.
                self.pos = l;
                true
            }
            None => false,
        }
    }

    /// Insert `e` in front of the current element, or at the end of the list when the
    /// cursor is at the end (into an empty list at the head). The cursor stays on the same
    /// element. Generalises `*_INSERT_BEFORE_RCU`, `*_INSERT_HEAD_RCU` and
    /// `*_INSERT_TAIL_RCU`.
    ///
    /// # Panics
    ///
    /// If `e` is already linked through this link, or (index) is not in the owner.
    pub fn insert_before(&mut self, e: R::Elem<'_, T>) {
        // SAFETY: W1 (the cursor holds it); `pos` is a position of the list.
        let new = unsafe { self.list.insert_at(self.pos, e) };
        // The new element's link is the position of the element we stand on.
        self.pos = NonNull::from(crate::link::link_of::<T, K>(new));
    }

    /// Insert `e` after the current element (`*_INSERT_AFTER_RCU`); the cursor stays
    /// where it is.
    ///
    /// # Panics
    ///
    /// At the end of the list (use [`insert_before`](Self::insert_before) there), or as
    /// for `insert_before`.
    pub fn insert_after(&mut self, e: R::Elem<'_, T>) {
        let Some(cur) = NonNull::new(self.current_link()) else {
            panic!("rcu-queue: Cursor::insert_after at the end of the list");
        };
        // SAFETY: W1; `cur` is the link of a linked element, a position.
        unsafe { self.list.insert_at(cur, e) };
    }

    /// Remove the current element (`*_REMOVE_RCU`, O(1) for every kind) and hand it
    /// back; the cursor moves to the next one. `None` at the end.
    ///
    /// # Panics
    ///
    /// (Owning list) if the element is still linked into one of its indexes.
    pub fn remove_current(&mut self) -> Option<R::Removed<T, F>> {
        // SAFETY: W1; `pos` is a position of the list, and stays one: it belongs to the
        // previous element or the head, not to the removed one.
        unsafe { self.list.remove_at(self.pos) }
    }

    /// Put `e` in place of the current element (Linux's `list_replace_rcu`, O(1) for
    /// every kind): readers see the old element or the new one, never both and never
    /// neither. Hands the old one back; the cursor stands on the new one.
    ///
    /// # Panics
    ///
    /// At the end of the list, as for [`insert_before`](Self::insert_before), or as for
    /// [`remove_current`](Self::remove_current), before anything changes.
    pub fn replace_current(&mut self, e: R::Elem<'_, T>) -> R::Removed<T, F> {
        // SAFETY: W1; `pos` is a position of the list, and stays one.
        unsafe { self.list.replace_at(self.pos, e) }
    }
}

impl<T, K, F, R> fmt::Debug for Cursor<'_, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cursor")
            .field("at_end", &self.current_link().is_null())
            .finish_non_exhaustive()
    }
}

/// The iterator of [`Writer::extract_if`](crate::Writer::extract_if): removes the
/// elements its predicate selects and yields what each removal hands back.
pub struct ExtractIf<'w, T, K, F, R, P>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    cursor: Cursor<'w, T, K, F, R>,
    pred: P,
}

impl<'w, T, K, F, R, P> ExtractIf<'w, T, K, F, R, P>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    pub(crate) fn new(cursor: Cursor<'w, T, K, F, R>, pred: P) -> Self {
        ExtractIf { cursor, pred }
    }
}

impl<T, K, F, R, P> Iterator for ExtractIf<'_, T, K, F, R, P>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
    P: FnMut(&T) -> bool,
{
    type Item = R::Removed<T, F>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let take = (self.pred)(self.cursor.current()?);
            if take {
                return self.cursor.remove_current();
            }
            self.cursor.move_next();
        }
    }
}

impl<T, K, F, R, P> fmt::Debug for ExtractIf<'_, T, K, F, R, P>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExtractIf")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::test_support::{check, fill, kind_tests, setup, vals, E};
    use crate::{LinkKind, Linked, QListLink, QSListLink, QSimpleQLink, QTailQLink};

    kind_tests! {
        cursor_moves_inserts_and_replaces: qlist_cursor(QListLink),
            qsimpleq_cursor(QSimpleQLink), qtailq_cursor(QTailQLink), qslist_cursor(QSListLink);
        #[should_panic(expected = "at the end")]
        insert_after_at_the_end: qlist_cursor_insert_after_at_the_end_panics(QListLink),
            qslist_cursor_insert_after_at_the_end_panics(QSListLink);
        #[should_panic(expected = "at the end")]
        replace_at_the_end: qsimpleq_cursor_replace_at_the_end_panics(QSimpleQLink),
            qtailq_cursor_replace_at_the_end_panics(QTailQLink);
    }

    /// A cursor walks, inserts before (also into an empty list and at the end) and after,
    /// and replaces the first, a middle and the last element in O(1); a reader standing
    /// on a replaced element moves on to its successor.
    fn cursor_moves_inserts_and_replaces<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        let mut c = w.cursor();
        assert!(c.current().is_none() && !c.move_next());
        c.insert_before(m.e(2)); // into an empty list; the cursor stays at the end
        assert!(c.current().is_none());
        let mut c = w.cursor();
        c.insert_before(m.e(0)); // at the front; the cursor stays on 2
        assert_eq!(c.current().unwrap().v, 2);
        c.insert_after(m.e(3));
        assert!(format!("{c:?}").contains("at_end: false"));
        assert_eq!(check(&w), [0, 2, 3]);
        let g = r.read_lock();
        let two = l.next(l.first(&g).unwrap(), &g).unwrap();
        let mut c = w.cursor();
        c.replace_current(m.e(10)).defer(); // the first
        assert_eq!(c.current().unwrap().v, 10);
        c.move_next();
        c.replace_current(m.e(20)).defer(); // the middle, the one `two` is
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        c.move_next();
        c.replace_current(m.e(30)).defer(); // the last
        assert!(c.move_next() && c.current().is_none());
        assert_eq!(vals(l.iter(&g)), [10, 20, 30]);
        assert_eq!(check(&w), [10, 20, 30]);
        fill(&mut w, &m, [40]); // the last position moved with the replacement
        assert_eq!(check(&w), [10, 20, 30, 40]);
        drop((g, w));
        assert_eq!(m.freed(&d), 3);
    }

    fn insert_after_at_the_end<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (_d, l, m) = setup::<K>();
        l.lock().cursor().insert_after(m.e(1));
    }

    fn replace_at_the_end<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (_d, l, m) = setup::<K>();
        let _ = l.lock().cursor().replace_current(m.e(1));
    }
}
