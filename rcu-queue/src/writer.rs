//! [`Writer`]: the proof of writer exclusion for an [`RcuList`], with the writer-side
//! operations every list kind has, and the checked primitives (on the list, for the
//! writer and its cursors) that all of them, the kind-specific ones included, go through.

use core::any::TypeId;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;

use rcu_core::{Flavor, Memb};

use crate::cursor::{Cursor, ExtractIf};
use crate::link::{elem, link_of, not_in_list, reset_link, Iter, LinkKind, Linked};
use crate::rcu_list::{RcuIndex, RcuList};
use crate::role::{Index, Owner, Role, Token};
use crate::splice::{self, check_unlinked};
use crate::sync::{MutexGuard, Ordering};

/// The writer side of [`RcuList`]: the ways to get a [`Writer`].
impl<T: Linked<K> + Send + Sync + 'static, K: LinkKind, F: Flavor, R: Role> RcuList<T, K, F, R> {
    /// Take the list's writer lock (an index's is its owner's). Writers exclude each
    /// other; readers are never blocked.
    ///
    /// # Blocking
    ///
    /// Waits for the current writer of the list (and of its owner and indexes) to finish.
    /// The lock is not reentrant: taking it again on a thread that holds a writer of the
    /// same list family (an owner and its indexes) deadlocks; get an index's writer from
    /// the owner's with [`Writer::index`] instead.
    pub fn lock(&self) -> Writer<'_, T, K, F, R> {
        Writer::new(self, Some(self.take_writer_lock()))
    }

    /// A writer from exclusive access: no locking when the list stands alone; an owning
    /// list with indexes, or an index, takes the shared lock as [`lock`](Self::lock)
    /// does (the others may be written through other handles).
    pub fn get_mut(&mut self) -> Writer<'_, T, K, F, R> {
        if self.stands_alone() {
            // SAFETY: `&mut self` and no index (no other handle of the core): no other
            // writer can exist while the returned writer borrows `self`, and every earlier
            // access happens-before (through `&mut`, or the Acquire in `stands_alone` for
            // indexes dropped on other threads).
            return unsafe { self.lock_unchecked() };
        }
        self.lock()
    }

    /// A writer without taking the lock, for ports whose writers are already serialized
    /// by something else (QEMU's BQL or `ram_list.mutex`).
    ///
    /// # Safety
    ///
    /// While the returned writer lives, no other writer of this list, of its owner or of
    /// the owner's other indexes (from [`lock`](Self::lock), `lock_unchecked`, or the
    /// [`raw`](crate::raw) functions) runs, and everything earlier writers did
    /// happens-before this writer's operations (they were serialized by a lock or a thread
    /// join).
    pub unsafe fn lock_unchecked(&self) -> Writer<'_, T, K, F, R> {
        Writer::new(self, None)
    }
}

/// Proof of writer exclusion for an [`RcuList`]: from [`RcuList::lock`],
/// [`RcuList::get_mut`], [`RcuList::lock_unchecked`], or (for an index) an owner's
/// [`Writer::index`]. Not `Send` (it may hold a `MutexGuard`).
///
/// Writer-side reads need no guard and borrow the writer, so they end before the next
/// change to the list. Elements to insert around or remove are named by a `&T` obtained
/// under a read guard of the list's domain, or found with a [`Cursor`]:
///
/// ```
/// use rcu_queue::{rcu_link, QList, QListLink};
/// use rcu_core::rcu_read_lock;
///
/// struct E { v: u32, link: QListLink }
/// rcu_link!(E, link: QListLink);
/// let e = |v| Box::new(E { v, link: QListLink::new() });
///
/// let list: QList<E> = QList::new();
/// let mut w = list.lock();
/// w.insert_head(e(3));
/// w.insert_head(e(1));
/// // Name an element through a read guard...
/// let guard = rcu_read_lock();
/// let one = list.iter(&guard).find(|x| x.v == 1).unwrap();
/// w.insert_after(one, e(2));
/// let retired = w.remove(one); // `one` stays readable while `guard` lives
/// assert_eq!(one.v, 1);
/// retired.defer(); // freed by call_rcu after `guard` and every other reader is done
/// drop(guard);
/// // ...or with a cursor, no guard needed.
/// let mut c = w.cursor();
/// c.move_next(); // now at 3
/// c.insert_after(e(4));
/// assert_eq!(w.iter().map(|x| x.v).collect::<Vec<_>>(), [2, 3, 4]);
/// ```
///
/// A writer cannot be made without going through the list's exclusion:
///
/// ```compile_fail
/// use rcu_queue::{rcu_link, QList, QListLink, QListWriter};
/// struct E { link: QListLink }
/// rcu_link!(E, link: QListLink);
/// let list: QList<E> = QList::new();
/// let w = QListWriter { list: &list, _guard: None, _not_send: std::marker::PhantomData };
/// ```
///
/// The compiling twin asks the list for one:
///
/// ```
/// use rcu_queue::{rcu_link, QList, QListLink, QListWriter};
/// struct E { link: QListLink }
/// rcu_link!(E, link: QListLink);
/// let list: QList<E> = QList::new();
/// let w: QListWriter<'_, E> = list.lock();
/// # drop(w);
/// ```
pub struct Writer<'a, T, K, F = Memb, R = Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    list: &'a RcuList<T, K, F, R>,
    _guard: Option<MutexGuard<'a, ()>>,
    _not_send: PhantomData<*mut ()>,
}

impl<'a, T, K, F, R> Writer<'a, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    /// A writer of `list`.
    ///
    /// Callers: `guard` is `list`'s writer lock, held, or the caller has the writer
    /// exclusion otherwise (`RcuList::lock_unchecked`'s contract).
    pub(crate) fn new(list: &'a RcuList<T, K, F, R>, guard: Option<MutexGuard<'a, ()>>) -> Self {
        Writer {
            list,
            _guard: guard,
            _not_send: PhantomData,
        }
    }

    /// The list this writer changes.
    pub fn list(&self) -> &'a RcuList<T, K, F, R> {
        self.list
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        // Relaxed: writers are serialized (writer proof), so we see the latest value.
        self.list.head().first().load(Ordering::Relaxed).is_null()
    }

    /// The first element.
    pub fn first(&self) -> Option<&T> {
        // Relaxed: as in `is_empty`.
        let p = self.list.head().first().load(Ordering::Relaxed);
        // SAFETY: linked elements stay alive until a removal, which needs `&mut self` (or
        // the owner's writer, which an index writer borrows), so not while the result
        // (borrowing `self`) lives.
        unsafe { elem(p) }
    }

    /// The element after `e`.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this list.
    pub fn next(&self, e: &T) -> Option<&T> {
        self.list.check_in(e);
        // Relaxed: as in `is_empty`.
        let p = link_of::<T, K>(e).next().load(Ordering::Relaxed);
        // SAFETY: `e` is linked, so its successor is too: as in `first`.
        unsafe { elem(p) }
    }

    /// Iterate front to back (writer side: no guard).
    pub fn iter(&self) -> Iter<'_, T, K> {
        // Relaxed: as in `is_empty` (the iterator itself uses Acquire, which is no weaker).
        let first = self.list.head().first().load(Ordering::Relaxed);
        // SAFETY: every reachable element is linked and, as in `first`, stays valid while
        // `self` is borrowed.
        unsafe { Iter::new(first) }
    }

    /// The number of elements (a walk).
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// Insert `e` at the front (`*_INSERT_HEAD_RCU`); returns it. An owning list takes a
    /// `Box<T>`, an index a `&T` (an element of its owner).
    ///
    /// # Panics
    ///
    /// If `e` is already linked through this link, or (index) is not in the owner.
    pub fn insert_head(&mut self, e: R::Elem<'_, T>) -> &T {
        let front = self.list.head().front();
        // SAFETY: W1 (writer proof); the front is a position of the list.
        unsafe { self.list.insert_at(front, e) }
    }

    /// Insert `e` after `after` (`*_INSERT_AFTER_RCU`); returns it.
    ///
    /// # Panics
    ///
    /// If `after` is not linked into this list, or as for
    /// [`insert_head`](Self::insert_head).
    pub fn insert_after(&mut self, after: &T, e: R::Elem<'_, T>) -> &T {
        let pos = self.list.pos_after(after);
        // SAFETY: W1 (writer proof); `pos` is the link of a linked element.
        unsafe { self.list.insert_at(pos, e) }
    }

    /// Unlink `e` (`*_REMOVE_RCU`): O(1) for QLIST and QTAILQ, a walk from the head for
    /// QSIMPLEQ and QSLIST (as in C). An owning list hands the element back as a
    /// [`Retired`](crate::Retired), to be freed after a grace period; readers standing on
    /// it can still move on.
    ///
    /// # Panics
    ///
    /// If `e` is not linked into this list, or (owning list) is still linked into one of
    /// its indexes (rule 1 of [`RcuIndex`]).
    pub fn remove(&mut self, e: &T) -> R::Removed<T, F> {
        // SAFETY: W1 (writer proof).
        let pos = unsafe { self.list.pos_of(e) };
        // SAFETY: W1; `pos` points at `e`, so there is an element to remove.
        unsafe { self.list.remove_at(pos) }.unwrap_or_else(|| not_in_list())
    }

    /// Remove every element for which `keep` returns `false` (the writer's
    /// `*_FOREACH_SAFE_RCU` + `*_REMOVE_RCU`); an owning list retires each through the
    /// domain's call_rcu worker. Returns how many were removed.
    ///
    /// # Panics
    ///
    /// As for [`remove`](Self::remove), for an element it removes; those removed before
    /// stay removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        // Dropping a `Retired` defers its free through call_rcu.
        self.extract_if(|e| !keep(e)).count()
    }

    /// Remove every element, as [`retain`](Self::retain) does. Returns how many.
    pub fn clear(&mut self) -> usize {
        self.retain(|_| false)
    }

    /// An iterator that removes each element for which `pred` returns `true` and yields
    /// what the removal gives back (an owning list's [`Retired`](crate::Retired) values,
    /// to free after a grace period, or give back with `synchronize`). Elements it has not
    /// reached when dropped stay in the list.
    ///
    /// ```
    /// use rcu_queue::{rcu_link, QList, QListLink};
    ///
    /// struct E { v: u32, link: QListLink }
    /// rcu_link!(E, link: QListLink);
    /// let list: QList<E> = QList::new();
    /// let mut w = list.lock();
    /// for v in 0..6 {
    ///     w.insert_head(Box::new(E { v, link: QListLink::new() }));
    /// }
    /// let odd: Vec<_> = w.extract_if(|e| e.v % 2 == 1).collect();
    /// drop(w);
    /// // After a grace period the boxes are ours again.
    /// let odd: Vec<u32> = odd.into_iter().map(|r| r.synchronize().v).collect();
    /// assert_eq!(odd, [5, 3, 1]);
    /// ```
    ///
    /// # Panics
    ///
    /// As for [`remove`](Self::remove), for an element it removes.
    pub fn extract_if<P: FnMut(&T) -> bool>(&mut self, pred: P) -> ExtractIf<'_, T, K, F, R, P> {
        ExtractIf::new(self.cursor(), pred)
    }

    /// A cursor at the first element, for finding a position and changing the list there.
    pub fn cursor(&mut self) -> Cursor<'_, T, K, F, R> {
        // SAFETY: the cursor borrows the writer mutably (W1 while it lives); the front is
        // a position of the list.
        unsafe { Cursor::new(self.list, self.list.head().front()) }
    }
}

impl<'a, T, K, F> Writer<'a, T, K, F, Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    /// A writer of `index`, one of this list's indexes, under this writer's exclusion
    /// (the lock they share is held once).
    ///
    /// # Panics
    ///
    /// If `index` is not an index of this list.
    pub fn index<'w, K2>(&'w mut self, index: &'w RcuIndex<T, K2, F>) -> Writer<'w, T, K2, F, Index>
    where
        T: Linked<K2>,
        K2: LinkKind,
    {
        if !index.is_index_of(self.list) {
            panic!("rcu-queue: Writer::index with a list that is not an index of this list");
        }
        // This writer holds the exclusion of the whole family and is borrowed mutably
        // while the index writer lives.
        Writer::new(index, None)
    }
}

impl<T, K, F, R> fmt::Debug for Writer<'_, T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Writer")
            .field("list", self.list)
            .finish_non_exhaustive()
    }
}

/// The checked writer primitives. Each needs the writer exclusion (W1: the caller is the
/// only writer of the list, its owner and the owner's indexes, and every earlier writer
/// operation happens-before); the safe writer and cursor methods hold it.
impl<T, K, F, R> RcuList<T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    /// Panic unless `e` is linked into this list.
    #[inline]
    pub(crate) fn check_in(&self, e: &T) {
        // Relaxed: the caller is a writer of the list (serialized with the writer that
        // stored the word).
        if link_of::<T, K>(e).owner().load(Ordering::Relaxed) != self.head().linked_id() {
            not_in_list();
        }
    }

    /// The position right after `e` (its link); panics unless `e` is linked here.
    #[inline]
    pub(crate) fn pos_after(&self, e: &T) -> NonNull<K> {
        self.check_in(e);
        NonNull::from(link_of::<T, K>(e))
    }

    /// The position of `e` (O(1) for the kinds with a back pointer, else a walk); panics
    /// unless `e` is linked here.
    ///
    /// # Safety
    ///
    /// W1.
    #[inline]
    pub(crate) unsafe fn pos_of(&self, e: &T) -> NonNull<K> {
        self.check_in(e);
        // SAFETY: W1; `e` is linked into this list (checked).
        unsafe { splice::pos_of(self.head(), NonNull::from(link_of::<T, K>(e))) }
    }

    /// Take `e` for this list: panics if its link is linked, or (index) if the owner does
    /// not hold it. A box that fails the check is leaked, not freed: only unsafe misuse
    /// (the raw functions) can link a box the caller still holds, and then another list may
    /// point at it.
    ///
    /// # Safety
    ///
    /// W1.
    unsafe fn adopt(&self, e: R::Elem<'_, T>) -> NonNull<T> {
        let p = R::into_ptr(e, Token);
        // SAFETY: `p` is a live element (a box we now hold, or a borrowed element).
        unsafe { check_unlinked(T::link(p)) };
        if let Some(owner) = &self.core.owner {
            // SAFETY: as above.
            if !owner.owns(unsafe { p.as_ref() }) {
                panic!("rcu-queue: an index takes only elements linked into its owner");
            }
            // SAFETY: W1 covers the owner (shared lock or `lock_unchecked`'s promise).
            unsafe {
                owner
                    .registry()
                    .add(TypeId::of::<K>(), is_linked_via::<T, K>)
            };
        }
        p
    }

    /// Link `e` at `pos`; returns it.
    ///
    /// # Safety
    ///
    /// W1; `pos` is a position of this list (its front or tail, or the link of an
    /// element linked into it).
    pub(crate) unsafe fn insert_at(&self, pos: NonNull<K>, e: R::Elem<'_, T>) -> &T {
        // SAFETY: W1.
        let p = unsafe { self.adopt(e) };
        // SAFETY: W1 and `pos` (contract); `p` is live, unlinked and checked (`adopt`):
        // an owned box, or an element its owner keeps alive while it is linked here.
        unsafe { splice::insert(self.head(), pos, T::link(p)) };
        // SAFETY: linked now, so alive while the writer (and so the caller's borrow of
        // it) lives, as in `Writer::first`.
        unsafe { p.as_ref() }
    }

    /// Unlink the element at `pos` and hand it back; `None` at the end.
    ///
    /// # Safety
    ///
    /// As for [`insert_at`](Self::insert_at).
    pub(crate) unsafe fn remove_at(&self, pos: NonNull<K>) -> Option<R::Removed<T, F>> {
        // SAFETY: `pos` is live (contract). Relaxed: writer-side read (W1).
        let cur = NonNull::new(unsafe { pos.as_ref() }.next().load(Ordering::Relaxed))?;
        // SAFETY: W1; `cur` is linked into this list.
        unsafe { self.check_retirable(cur) };
        // SAFETY: W1 and `pos` (contract).
        let old = unsafe { splice::remove(self.head(), pos, R::OWNS) };
        // SAFETY: `old` (== `cur`) was just unlinked by this writer.
        old.map(|old| unsafe { self.removed(old) })
    }

    /// Put `e` in place of the element at `pos` and hand the old one back.
    ///
    /// # Panics
    ///
    /// At the end of the list, or as for `adopt` and `check_retirable`, before anything
    /// changes.
    ///
    /// # Safety
    ///
    /// As for [`insert_at`](Self::insert_at).
    pub(crate) unsafe fn replace_at(&self, pos: NonNull<K>, e: R::Elem<'_, T>) -> R::Removed<T, F> {
        // SAFETY: `pos` is live (contract). Relaxed: writer-side read (W1).
        let Some(cur) = NonNull::new(unsafe { pos.as_ref() }.next().load(Ordering::Relaxed)) else {
            panic!("rcu-queue: replace at the end of the list");
        };
        // SAFETY: W1; `cur` is linked into this list.
        unsafe { self.check_retirable(cur) };
        // SAFETY: W1.
        let p = unsafe { self.adopt(e) };
        // SAFETY: W1, `pos` (contract), `p` as in `insert_at`; there is an element at `pos`.
        let old = unsafe { splice::replace(self.head(), pos, T::link(p), R::OWNS) };
        // SAFETY: `old` (== `cur`, not null) was just unlinked by this writer.
        unsafe { self.removed(old.unwrap_or(cur)) }
    }

    /// Panic if this is an owning list and the element whose link is `cur` is still
    /// linked into one of its indexes.
    ///
    /// # Safety
    ///
    /// W1; `cur` is the link of an element linked into this list.
    #[inline]
    unsafe fn check_retirable(&self, cur: NonNull<K>) {
        if R::OWNS {
            // SAFETY: linked here, so live (contract 2 of `Linked`); W1 covers the
            // registry.
            if unsafe { self.core.registry.indexed(T::from_link(cur).as_ref()) } {
                panic!(
                    "rcu-queue: removing an element from its owning list while it is still \
                     linked into an index; unlink it from the index first"
                );
            }
        }
    }

    /// What this list hands back for the element whose link `old` it just unlinked.
    ///
    /// # Safety
    ///
    /// W1; `old` was just unlinked from this list.
    unsafe fn removed(&self, old: NonNull<K>) -> R::Removed<T, F> {
        // SAFETY: `old` is the link of the element as the list stored it (contract 2 of
        // `Linked`): for an owning list the box it owned, now unlinked from every list
        // (`check_retirable`); only readers of the list's domain (the domain of its
        // indexes too) may still see it; `reset_link` matches its link type.
        unsafe { R::removed(T::from_link(old), self.domain(), reset_link::<T, K>, Token) }
    }
}

/// Whether `e` is linked through its `K` link (for the owner's index checks).
fn is_linked_via<T: Linked<K>, K: LinkKind>(e: &T) -> bool {
    // Acquire: pairs with the Release reset of an index dropped without the writer lock
    // (`link::reset`), so that drop is done with the element before the owner frees it.
    link_of::<T, K>(e).owner().load(Ordering::Acquire) as usize & crate::link::LINKED != 0
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::test_support::{check, fill, kind_tests, setup, vals, Drops, E, L, X};
    use crate::{LinkKind, Linked, QList, QListLink, QSListLink, QSimpleQLink, QTailQ};
    use crate::{QTailQLink, RcuIndex};
    use rcu_core::{Domain, Mb};

    kind_tests! {
        insert_head: qlist_insert_head_rcu(QListLink), qsimpleq_insert_head_rcu(QSimpleQLink),
            qtailq_insert_head_rcu(QTailQLink), qslist_insert_head_rcu(QSListLink);
        insert_after: qlist_insert_after_rcu(QListLink), qsimpleq_insert_after_rcu(QSimpleQLink),
            qtailq_insert_after_rcu(QTailQLink), qslist_insert_after_rcu(QSListLink);
        remove: qlist_remove_rcu(QListLink), qsimpleq_remove_rcu(QSimpleQLink),
            qtailq_remove_rcu(QTailQLink), qslist_remove_rcu(QSListLink);
        foreach_safe: qlist_foreach_safe_rcu(QListLink), qsimpleq_foreach_safe_rcu(QSimpleQLink),
            qtailq_foreach_safe_rcu(QTailQLink), qslist_foreach_safe_rcu(QSListLink);
        #[should_panic(expected = "not linked into this list")]
        other_list: qlist_other_list_panics(QListLink), qsimpleq_other_list_panics(QSimpleQLink),
            qtailq_other_list_panics(QTailQLink), qslist_other_list_panics(QSListLink);
    }

    /// `*_INSERT_HEAD_RCU`: into an empty list (which also sets a tail) and in front.
    fn insert_head<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (_d, l, m) = setup::<K>();
        let mut w = l.lock();
        assert_eq!(w.insert_head(m.e(2)).v, 2);
        assert_eq!(check(&w), [2]);
        w.insert_head(m.e(1));
        w.insert_head(m.e(0));
        assert_eq!(check(&w), [0, 1, 2]);
        // the second element's position is the new head's link now: removing the head
        // keeps the list intact
        w.cursor().remove_current().unwrap().defer();
        assert_eq!(check(&w), [1, 2]);
    }

    /// `*_INSERT_AFTER_RCU`: after the tail, in the middle, through a cursor.
    fn insert_after<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(1));
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        w.insert_after(one, m.e(3)); // after the only (last) element
        assert_eq!(check(&w), [1, 3]);
        w.insert_after(one, m.e(2)); // in the middle
        assert_eq!(vals(l.iter(&g)), [1, 2, 3]);
        w.remove(l.next(one, &g).unwrap()).defer();
        assert_eq!(check(&w), [1, 3]);
        let mut c = w.cursor();
        c.insert_after(m.e(10)); // cursor form, after 1
        c.move_next();
        c.move_next();
        c.insert_after(m.e(4)); // after the last
        assert_eq!(check(&w), [1, 10, 3, 4]);
        w.remove(one).defer();
        assert_eq!(check(&w), [10, 3, 4]);
    }

    /// `*_REMOVE_RCU`: the only element, the last, the first, the one a reader stands on;
    /// a removed element is marked unlinked at once and comes back, reusable, after a grace
    /// period.
    fn remove<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        w.insert_head(m.e(1));
        let only = w.cursor().remove_current().unwrap().synchronize();
        assert!(!crate::link::link_of::<E, K>(&only).is_linked());
        assert_eq!(check(&w), []);
        w.insert_head(only); // the same box, after the grace period
        fill(&mut w, &m, [2, 3]);
        w.insert_head(m.e(0));
        let g = r.read_lock();
        let last = l.iter(&g).last().unwrap();
        let retired = w.remove(last);
        let link = crate::link::link_of::<E, K>(last);
        assert!(!link.is_linked());
        // QEMU's not-in-list marker for the kinds with a back pointer: `prev == NULL`
        assert!(crate::link::sealed::Sealed::prev(link)
            .is_none_or(|p| p.load(crate::sync::Ordering::Relaxed).is_null()));
        retired.defer();
        assert_eq!(check(&w), [0, 1, 2]);
        w.remove(l.first(&g).unwrap()).defer(); // the first
        assert_eq!(check(&w), [1, 2]);
        let one = l.first(&g).unwrap();
        w.remove(one).defer(); // the one `g` stands on
        assert_eq!(l.next(one, &g).unwrap().v, 2);
        assert_eq!(check(&w), [2]);
        drop(g);
        let two = w.cursor().remove_current().unwrap();
        assert!(w.cursor().remove_current().is_none());
        drop(two); // dropping a Retired defers the free too
        drop(w);
        assert_eq!(m.freed(&d), 4);
    }

    /// `*_FOREACH_SAFE_RCU`: a reader's iterator has loaded `next` before it yields, so
    /// removing the element it yielded does not stop it; writers remove while walking.
    fn foreach_safe<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        fill(&mut w, &m, 0..10);
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
        assert_eq!(w.retain(|e| e.v % 2 == 1), 3); // 2, 4, 8
        assert_eq!(check(&w), [1, 5, 7]);
        assert_eq!(w.retain(|e| e.v != 7), 1); // the last
        assert_eq!(check(&w), [1, 5]);
        assert_eq!(w.clear(), 2);
        assert_eq!(check(&w), []);
        drop(w);
        assert_eq!(m.freed(&d), 10);
    }

    /// Naming an element of another list of the same kind panics.
    fn other_list<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, a, m) = setup::<K>();
        let b: L<K> = L::new_in(&d);
        a.lock().insert_head(m.e(1));
        b.lock().insert_head(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let _ = a.lock().remove(b.first(&g).unwrap());
    }

    #[test]
    fn extract_if_hands_back_retired_elements() {
        let d: Domain<Mb> = Domain::new();
        let q: QTailQ<E, Mb> = QTailQ::new_in(&d);
        let m = Drops::default();
        let mut w = q.lock();
        for v in 0..8 {
            w.insert_tail(m.e(v));
        }
        // Stopped early (the iterator is dropped after one item): 3 and 6 stay.
        let first = {
            let mut it = w.extract_if(|e| e.v % 3 == 0);
            assert!(format!("{it:?}").starts_with("ExtractIf"));
            it.next().unwrap()
        };
        assert_eq!(vals(w.iter()), [1, 2, 3, 4, 5, 6, 7]);
        let rest: Vec<_> = w.extract_if(|e| e.v % 3 == 0).collect();
        assert_eq!(rest.len(), 2);
        assert_eq!(vals(w.iter()), [1, 2, 4, 5, 7]);
        drop(w);
        // the boxes come back after a grace period, unlinked, and can go in again
        let mut back: Vec<_> = rest.into_iter().map(|r| r.synchronize()).collect();
        back.push(first.synchronize());
        assert!(back.iter().all(|b| !b.tq.is_linked()));
        let mut w = q.lock();
        for b in back {
            w.insert_head(b);
        }
        assert_eq!(vals(w.iter()), [0, 6, 3, 1, 2, 4, 5, 7]);
        assert_eq!(w.len(), 8);
        assert_eq!(m.count(), 0);
    }

    #[test]
    fn extract_if_on_an_index_only_unlinks() {
        let d: Domain<Mb> = Domain::new();
        let owner: QList<X, Mb> = QList::new_in(&d);
        let lru: RcuIndex<X, QTailQLink, Mb> = RcuIndex::of(&owner);
        let m = Drops::default();
        let r = d.register();
        let g = r.read_lock();
        let mut w = owner.lock();
        for v in 0..4 {
            w.insert_head(m.x(v));
        }
        for x in owner.iter(&g) {
            w.index(&lru).insert_tail(x);
        }
        assert_eq!(w.index(&lru).extract_if(|x| x.v < 2).count(), 2);
        assert_eq!(vals(lru.iter(&g)), [3, 2]);
        assert_eq!(vals(w.iter()), [3, 2, 1, 0]);
        assert!(format!("{w:?}").starts_with("Writer"));
        drop((w, g));
        d.barrier();
        assert_eq!(m.count(), 0);
    }
}
