//! The code the four list kinds share.
//!
//! [`ListCore`] is the list itself minus its kind: the heap-allocated head, the domain,
//! the writer mutex, the reader operations, and `Drop`. [`WriterCore`] is the writer
//! proof with the writer-side reads, insertion and removal shells and `retain`;
//! [`CursorCore`] is a writer's position. Each public list (`QList`, `QSimpleQ`,
//! `QTailQ`, `QSList`), writer and cursor wraps one of these, and supplies the few
//! primitives in which the kinds really differ through [`LinkKind`], implemented by its
//! link type in the list's module (next to the raw functions with the C names).

use core::marker::PhantomData;
use core::ptr::NonNull;

use rcu_core::{Domain, Flavor, ReadGuard};

use crate::link::{
    adopt, belongs_to, elem, is_in, link_of, not_in_list, reset_link, wrong_domain, Iter, Link,
    Linked,
};
use crate::retired::Retired;
use crate::sync::{self, AtomicPtr, Mutex, MutexGuard, Ordering};

/// A list kind, implemented by its link type: the layout of the head, what a cursor
/// stands on, and linking and unlinking at a cursor's position.
pub(crate) trait LinkKind: Link {
    /// The list head (`QLIST_HEAD` and the others), heap-allocated so that links may
    /// point into it while the list moves.
    type Head;

    /// What a writer's cursor stands on: the field that points at the current element
    /// (the head's or the previous element's), or the link that holds it.
    type Pos;

    /// An empty head, before it is at its final address.
    fn new_head() -> Self::Head;

    /// Finish an empty head at its final address `this`; `head` is `*this`, still private
    /// to the list being built.
    fn init_head(_head: &Self::Head, _this: NonNull<Self::Head>) {}

    /// The head's pointer to the first element.
    fn first(head: &Self::Head) -> &AtomicPtr<Self>;

    /// The position at the front of the list; `head` is `*this`.
    fn front(head: &Self::Head, this: NonNull<Self::Head>) -> NonNull<Self::Pos>;

    /// The pointer at `pos` to the element there (null at the end).
    fn pos_next(pos: &Self::Pos) -> &AtomicPtr<Self>;

    /// The position right after the element whose link is `link`.
    ///
    /// # Safety
    ///
    /// `link` points to a live link.
    unsafe fn after(link: NonNull<Self>) -> NonNull<Self::Pos>;

    /// Link `elm` in front of the element at `pos` (at the end when there is none), and
    /// return the position right after it.
    ///
    /// # Safety
    ///
    /// W1 and W2 of the raw functions, for `list`; `pos` is a position of `list` (its
    /// front, or right after one of its linked elements).
    unsafe fn insert_at<T, F>(
        list: &ListCore<T, Self, F>,
        pos: NonNull<Self::Pos>,
        elm: NonNull<T>,
    ) -> NonNull<Self::Pos>
    where
        T: Linked<Self> + Send + Sync + 'static,
        F: Flavor;

    /// Unlink the element at `pos`, if any, and return it as the list stored it.
    ///
    /// # Safety
    ///
    /// W1 of the raw functions, for `list`; `pos` is a position of `list`, as for
    /// `insert_at`; the caller frees the result only after a grace period of its domain.
    unsafe fn remove_at<T, F>(
        list: &ListCore<T, Self, F>,
        pos: NonNull<Self::Pos>,
    ) -> Option<NonNull<T>>
    where
        T: Linked<Self> + Send + Sync + 'static,
        F: Flavor;
}

/// A list of `Box<T>` elements linked through their `L` link, in `F`'s domain: what every
/// public list type wraps.
///
/// Invariants: `head` is a live `Box<L::Head>` owned by this list; every element reachable
/// from the head's first pointer is a `Box<T>` owned by the list and linked with owner
/// word `id() | LINKED`; an element removed from it is freed only after a grace period of
/// `domain` (through [`Retired`]), or when the list is dropped (then nobody can reach it).
pub(crate) struct ListCore<T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    head: NonNull<L::Head>,
    domain: Domain<F>,
    lock: Mutex<()>,
    _owns: PhantomData<Box<T>>,
}

// SAFETY: the list owns its head (like a `Box`) and its elements (`Box<T>`, `T: Send`), so
// moving it to another thread moves only owned data; all of it is reached through atomics.
unsafe impl<T, L, F> Send for ListCore<T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
}

// SAFETY: through `&ListCore` readers on any thread get `&T` (needs `T: Sync`) and writers
// on any thread unlink elements and hand them to other threads as `Retired`/`Box<T>`
// (needs `T: Send`); every shared field is an atomic or the mutex, and writers are
// serialized by the writer proof.
unsafe impl<T, L, F> Sync for ListCore<T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
}

impl<T, L, F> ListCore<T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    /// An empty list whose readers use `domain`'s guards and whose removed elements wait
    /// for `domain`'s grace periods.
    pub(crate) fn new_in(domain: &Domain<F>) -> Self {
        let head = Box::into_raw(Box::new(L::new_head()));
        // SAFETY: `Box::into_raw` never returns null.
        let head = unsafe { NonNull::new_unchecked(head) };
        // SAFETY: `head` is live and private.
        L::init_head(unsafe { head.as_ref() }, head);
        ListCore {
            head,
            domain: domain.clone(),
            lock: Mutex::new(()),
            _owns: PhantomData,
        }
    }

    /// The domain whose guards protect readers and whose grace periods free removed
    /// elements.
    #[inline(always)]
    pub(crate) fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// The head.
    #[inline(always)]
    pub(crate) fn head(&self) -> &L::Head {
        // SAFETY: `head` is the live box allocated in `new_in`, freed only in `drop`.
        unsafe { self.head.as_ref() }
    }

    /// The head's address, with the provenance of its box.
    #[inline(always)]
    pub(crate) fn head_ptr(&self) -> NonNull<L::Head> {
        self.head
    }

    /// The list's identity in link owner words (the head's address; even, as the head is
    /// pointer-aligned).
    #[inline(always)]
    pub(crate) fn id(&self) -> usize {
        self.head.as_ptr() as usize
    }

    /// The head's pointer to the first element.
    #[inline(always)]
    pub(crate) fn first_ptr(&self) -> &AtomicPtr<L> {
        L::first(self.head())
    }

    /// The cursor position at the front of the list.
    #[inline(always)]
    pub(crate) fn front(&self) -> NonNull<L::Pos> {
        L::front(self.head(), self.head)
    }

    #[inline(always)]
    fn check_guard(&self, guard: &ReadGuard<'_, F>) {
        if !guard.is_of(&self.domain) {
            wrong_domain();
        }
    }

    // ----- reader side -----

    /// Whether the list is empty (`*_EMPTY_RCU`).
    #[inline(always)]
    pub(crate) fn is_empty(&self, guard: &ReadGuard<'_, F>) -> bool {
        self.check_guard(guard);
        // Relaxed (QEMU uses `qatomic_read` too): nothing is dereferenced.
        self.first_ptr().load(Ordering::Relaxed).is_null()
    }

    /// The first element (`*_FIRST_RCU`), borrowed from the guard.
    #[inline(always)]
    pub(crate) fn first<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> Option<&'g T> {
        self.check_guard(guard);
        // Acquire (`qatomic_rcu_read`): pairs with the Release store that published the
        // element, so its contents are visible.
        let p = self.first_ptr().load(Ordering::Acquire);
        // SAFETY: the element is owned by the list (borrowed for 'g, so not dropped) or was
        // removed during the critical section and is then freed only after a grace period
        // of our domain, which `guard` (checked above) holds off for 'g. Nobody holds a
        // `&mut T` to a published element.
        unsafe { elem(p) }
    }

    /// The element after `elem` (`*_NEXT_RCU`), which may have been removed during this
    /// critical section.
    #[inline(always)]
    pub(crate) fn next<'g>(&'g self, elem: &'g T, guard: &'g ReadGuard<'_, F>) -> Option<&'g T> {
        self.check_guard(guard);
        let link = link_of(elem);
        if !belongs_to(link, self.id()) {
            not_in_list();
        }
        // Acquire (`qatomic_rcu_read`): as in `first`.
        let p = link.next_field().load(Ordering::Acquire);
        // `elem` is in this list or was removed while a guard of our domain outliving 'g
        // was held (`&T`s come only from guards or the writer; `Retired` hides its element).
        // SAFETY: so `next` is null or an element that was in the list during that critical
        // section, freed (as in `first`) only after a grace period the guard holds off.
        unsafe { crate::link::elem(p) }
    }

    /// Iterate over the elements (`*_FOREACH_RCU`, also `*_FOREACH_SAFE_RCU`).
    #[inline(always)]
    pub(crate) fn iter<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> Iter<'g, T, L> {
        self.check_guard(guard);
        // Acquire (`qatomic_rcu_read`): as in `first`.
        let first = self.first_ptr().load(Ordering::Acquire);
        // SAFETY: every element reachable from `first` was in the list during this
        // critical section, so (as in `first`) it stays valid while `guard` is held.
        unsafe { Iter::new(first) }
    }

    // ----- writer side -----

    /// Take the list's writer lock.
    pub(crate) fn lock(&self) -> WriterCore<'_, T, L, F> {
        WriterCore {
            list: self,
            _guard: Some(sync::lock(&self.lock)),
            _not_send: PhantomData,
        }
    }

    /// A writer without taking the lock.
    ///
    /// # Safety
    ///
    /// While the returned writer lives, no other writer of this list runs, and everything
    /// earlier writers did happens-before this writer's operations.
    pub(crate) unsafe fn lock_unchecked(&self) -> WriterCore<'_, T, L, F> {
        WriterCore {
            list: self,
            _guard: None,
            _not_send: PhantomData,
        }
    }

    /// The position that points at `elm`, found by walking from the front (for the kinds
    /// without a back pointer, as C's `QSIMPLEQ_REMOVE` and `QSLIST_REMOVE` do).
    ///
    /// # Safety
    ///
    /// W1 of the raw functions, for this list; `elm` points to an element linked into it
    /// (W3). If it is not in the list, this panics at the end of the walk.
    pub(crate) unsafe fn pos_of(&self, elm: NonNull<T>) -> NonNull<L::Pos> {
        // SAFETY: `elm` is live (contract).
        let target = unsafe { T::link(elm) }.as_ptr();
        let mut pos = self.front();
        loop {
            // SAFETY: `pos` is the front or right after a linked element, so it is live.
            // Relaxed: writer-side read (W1).
            let cur = L::pos_next(unsafe { pos.as_ref() }).load(Ordering::Relaxed);
            if cur == target {
                return pos;
            }
            let Some(cur) = NonNull::new(cur) else {
                // Unreachable under the contract; the safe API checks it first.
                not_in_list();
            };
            // SAFETY: `cur` is a linked element's link.
            pos = unsafe { L::after(cur) };
        }
    }

    /// Hand an element just unlinked from this list to the caller, to be freed after a
    /// grace period of the list's domain.
    ///
    /// # Safety
    ///
    /// `p` is the pointer the list stored for an element (the `Box` it owned) that this
    /// list's writer has just unlinked.
    pub(crate) unsafe fn retire(&self, p: NonNull<T>) -> Retired<T, F> {
        // SAFETY: `p` is the box the list owned, now unlinked (1); only readers of the
        // list's domain may still see it (2); `reset_link` matches its link type (3).
        unsafe { Retired::new(p, self.domain.clone(), reset_link::<T, L>) }
    }
}

impl<T, L, F> Drop for ListCore<T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    fn drop(&mut self) {
        // No reader can hold a reference into the list (they all borrow it) and no writer
        // exists (`&mut self`): every element may be freed right away.
        // Relaxed: `&mut self` means every other access to the list happens-before this.
        let mut p = self.first_ptr().load(Ordering::Relaxed);
        while let Some(l) = NonNull::new(p) {
            // SAFETY: `l` is the link of an element owned by the list (invariant).
            p = unsafe { l.as_ref() }.next_field().load(Ordering::Relaxed);
            // SAFETY: `l` is the link of a live element (invariant), contract 2 of `Linked`.
            let e = unsafe { T::from_link(l) };
            // SAFETY: nobody else can reach the element (see above).
            unsafe { reset_link::<T, L>(e) };
            // SAFETY: the element came from `Box::into_raw` and the list owned it.
            drop(unsafe { Box::from_raw(e.as_ptr()) });
        }
        // SAFETY: the head came from `Box::into_raw` in `new_in` and is freed only here.
        drop(unsafe { Box::from_raw(self.head.as_ptr()) });
    }
}

/// Proof of writer exclusion for a [`ListCore`], with the writer-side operations that are
/// the same for every list kind. Each public writer handle wraps one. Not `Send` (it may
/// hold a `MutexGuard`).
///
/// Writer-side reads need no guard and borrow the writer: an element is freed only after
/// a removal, which takes `&mut self`, so not while such a borrow lives.
pub(crate) struct WriterCore<'a, T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    list: &'a ListCore<T, L, F>,
    _guard: Option<MutexGuard<'a, ()>>,
    _not_send: PhantomData<*mut ()>,
}

impl<T, L, F> WriterCore<'_, T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    /// Whether the list is empty.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        // Relaxed: writers are serialized (writer proof), so we see the latest value.
        self.list.first_ptr().load(Ordering::Relaxed).is_null()
    }

    /// The first element.
    #[inline]
    pub(crate) fn first(&self) -> Option<&T> {
        // Relaxed: as in `is_empty`.
        let p = self.list.first_ptr().load(Ordering::Relaxed);
        // SAFETY: linked elements are owned by the list and only freed after a removal,
        // which needs `&mut self`, so not while the result (borrowing `self`) lives.
        unsafe { elem(p) }
    }

    /// Panic unless `e` is linked into this list.
    #[inline]
    pub(crate) fn check_in(&self, e: &T) {
        if !is_in(link_of(e), self.list.id()) {
            not_in_list();
        }
    }

    /// The element after `e`; panics if `e` is not linked into this list.
    #[inline]
    pub(crate) fn next(&self, e: &T) -> Option<&T> {
        self.check_in(e);
        // Relaxed: as in `is_empty`.
        let p = link_of(e).next_field().load(Ordering::Relaxed);
        // SAFETY: `e` is linked, so its successor is too: as in `first`.
        unsafe { elem(p) }
    }

    /// Iterate over the elements (writer side: no guard).
    #[inline]
    pub(crate) fn iter(&self) -> Iter<'_, T, L> {
        // Relaxed: as in `is_empty` (the iterator itself uses Acquire, which is no weaker).
        let first = self.list.first_ptr().load(Ordering::Relaxed);
        // SAFETY: every reachable element is linked and, as in `first`, stays valid while
        // `self` is borrowed.
        unsafe { Iter::new(first) }
    }

    /// The number of elements (a walk).
    pub(crate) fn len(&self) -> usize {
        self.iter().count()
    }

    /// Take ownership of `e` (panics if it is already linked), link it with `link`, and
    /// return it.
    ///
    /// # Safety
    ///
    /// `link`, given the element (a fresh unlinked box, with this writer's exclusion),
    /// links it into this list, which then owns it.
    #[inline]
    pub(crate) unsafe fn insert(&mut self, e: Box<T>, link: impl FnOnce(NonNull<T>)) -> &T {
        let e = adopt::<T, L>(e);
        link(e);
        // SAFETY: `e` is now owned by the list (contract) and stays linked while `self` is
        // borrowed, as in `first`.
        unsafe { e.as_ref() }
    }

    /// Unlink `e` with `unlink` (panics first if `e` is not linked into this list) and hand
    /// it back, to be freed after a grace period.
    ///
    /// # Safety
    ///
    /// `unlink`, given `e` (linked into this list, with this writer's exclusion), unlinks
    /// it and returns its pointer as the list stored it.
    #[inline]
    pub(crate) unsafe fn remove(
        &mut self,
        e: &T,
        unlink: impl FnOnce(NonNull<T>) -> NonNull<T>,
    ) -> Retired<T, F> {
        self.check_in(e);
        let p = unlink(NonNull::from(e));
        // SAFETY: `p` is the box the list owned, just unlinked by this writer (contract).
        unsafe { self.list.retire(p) }
    }

    /// Remove every element for which `keep` returns `false`, retiring each through the
    /// domain's call_rcu worker. Returns how many were removed.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let mut removed = 0;
        let mut c = self.cursor();
        while let Some(e) = c.current() {
            if keep(e) {
                c.move_next();
            } else if let Some(r) = c.remove_current() {
                r.defer();
                removed += 1;
            }
        }
        removed
    }

    /// A cursor at the first element.
    pub(crate) fn cursor(&mut self) -> CursorCore<'_, T, L, F> {
        CursorCore {
            list: self.list,
            pos: self.list.front(),
            _writer: PhantomData,
        }
    }

    /// Hand an element just unlinked by this writer back, to be freed after a grace period.
    ///
    /// # Safety
    ///
    /// As for [`ListCore::retire`].
    #[inline]
    pub(crate) unsafe fn retire(&self, p: NonNull<T>) -> Retired<T, F> {
        // SAFETY: the caller's contract.
        unsafe { self.list.retire(p) }
    }
}

/// A writer's cursor in a [`ListCore`]: a position (an element, or the end) where elements
/// can be inserted and removed. It stands on the [`LinkKind::Pos`] that points at the
/// current element. Each public cursor wraps one.
pub(crate) struct CursorCore<'w, T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    list: &'w ListCore<T, L, F>,
    /// What points at the current element: the list's front, or right after one of its
    /// linked elements.
    pos: NonNull<L::Pos>,
    _writer: PhantomData<&'w mut ()>,
}

impl<T, L, F> CursorCore<'_, T, L, F>
where
    T: Linked<L> + Send + Sync + 'static,
    L: LinkKind,
    F: Flavor,
{
    #[inline]
    fn pos(&self) -> &L::Pos {
        // SAFETY: `pos` is in the head or in a linked element of the list; neither can be
        // freed while the cursor (borrowing the writer) lives, since only the cursor's own
        // methods change the list, and `remove_current` keeps `pos` on an element that
        // stays linked.
        unsafe { self.pos.as_ref() }
    }

    /// The link of the current element, null at the end.
    #[inline]
    fn current_link(&self) -> *mut L {
        // Relaxed: the cursor belongs to the writer (serialized, see `WriterCore`).
        L::pos_next(self.pos()).load(Ordering::Relaxed)
    }

    /// The current element, or `None` at the end.
    #[inline]
    pub(crate) fn current(&self) -> Option<&T> {
        let p = self.current_link();
        // SAFETY: a linked element, freed only after a removal through this cursor, which
        // takes `&mut self` and so ends the returned borrow first.
        unsafe { elem(p) }
    }

    /// The current element as the list stored it, or `None` at the end.
    #[inline]
    pub(crate) fn current_ptr(&self) -> Option<NonNull<T>> {
        let cur = NonNull::new(self.current_link())?;
        // SAFETY: `cur` is the link of a linked element (contract 2 of `Linked`).
        Some(unsafe { T::from_link(cur) })
    }

    /// Move to the next element (or the end). Returns `false` if already at the end.
    #[inline]
    pub(crate) fn move_next(&mut self) -> bool {
        match NonNull::new(self.current_link()) {
            Some(l) => {
                // SAFETY: `l` is the link of a linked element (see `pos`).
                self.pos = unsafe { L::after(l) };
                true
            }
            None => false,
        }
    }

    /// Insert `e` in front of the current element, or at the end of the list when the
    /// cursor is at the end. The cursor stays on the same element.
    pub(crate) fn insert_before(&mut self, e: Box<T>) {
        let e = adopt::<T, L>(e);
        // SAFETY: W1 (we borrow the writer), W2 (fresh box); `pos` is a position of this
        // list (see `pos`).
        self.pos = unsafe { L::insert_at(self.list, self.pos, e) };
    }

    /// Remove the current element; the cursor moves to the next one. `None` at the end.
    pub(crate) fn remove_current(&mut self) -> Option<Retired<T, F>> {
        // SAFETY: W1 (we borrow the writer); `pos` is a position of this list, and stays
        // one: it belongs to the previous element or the head, not to the removed one.
        let p = unsafe { L::remove_at(self.list, self.pos) }?;
        // SAFETY: `p` was just unlinked from the list by its writer.
        Some(unsafe { self.list.retire(p) })
    }
}
