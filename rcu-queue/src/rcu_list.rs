//! [`RcuList`]: the one generic RCU list. A link kind (`K`) says how elements are linked,
//! a flavor (`F`) whose domain protects readers, and a role (`R`) whether the list owns
//! its elements or indexes those of another list ([`RcuIndex`]). The four QEMU families
//! are aliases of it ([`QList`](crate::QList), [`QSimpleQ`](crate::QSimpleQ),
//! [`QTailQ`](crate::QTailQ), [`QSList`](crate::QSList)).

use core::any::TypeId;
use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use std::sync::Arc;

use rcu_core::{Domain, Flavor, Memb, ReadGuard};

use crate::link::{
    elem, link_of, not_in_list, reset, wrong_domain, Iter, LinkKind, Linked, LINKED,
};
use crate::role::{Index, Owner, OwnerCore, Registry, Role};
use crate::splice::Head;
use crate::sync::{self, AtomicUsize, Mutex, Ordering};

/// An RCU-protected intrusive list of `T`s linked through their `K` link (one of
/// [`QListLink`](crate::QListLink), [`QSimpleQLink`](crate::QSimpleQLink),
/// [`QTailQLink`](crate::QTailQLink), [`QSListLink`](crate::QSListLink), with any tag),
/// read under guards of `F`'s domain. With the default role [`Owner`] the list owns its
/// elements as `Box<T>`; [`RcuIndex`] is the same list with the role [`Index`].
///
/// Use it through the aliases named after QEMU's macros ([`QList`](crate::QList) and the
/// others); the operations every kind has are documented here, the kind-specific ones
/// (`insert_tail`, `insert_before`, `replace`, `remove_head`, `last`, ...) on the
/// writer's impl blocks for each link kind.
///
/// - **Readers** ([`first`](Self::first), [`next`](Self::next), [`iter`](Self::iter),
///   [`is_empty`](Self::is_empty)) run under a read guard of the list's domain; every
///   `&T` they get borrows the guard. They never block and never write shared memory.
/// - **Writers** hold a [`Writer`](crate::Writer): from [`lock`](Self::lock) (the list's mutex; an
///   index shares its owner's), [`get_mut`](Self::get_mut) or the `unsafe`
///   [`lock_unchecked`](Self::lock_unchecked).
///
/// Invariants: `core` is the list's shared core (one allocation, kept alive by this handle
/// and, for an owning list, by each of its indexes); every element reachable from its
/// head is linked with the head's owner word; an owning list's elements are `Box<T>`s it
/// owns, freed only after a grace period of the domain once removed (through
/// [`Retired`](crate::Retired)), or when the core is dropped (then nobody can reach them);
/// an index's elements are elements of its owner.
pub struct RcuList<T, K, F = Memb, R = Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    pub(crate) core: Arc<Core<T, K, R>>,
    /// `&core.head`, kept in the handle so that readers reach the head in one load, as
    /// they did a boxed head.
    head: HeadRef<K>,
    /// The domain, kept in the handle for the same reason (an index has its owner's).
    domain: Domain<F>,
}

/// The address of a list's head inside the core that the same handle keeps alive.
struct HeadRef<K>(NonNull<Head<K>>);

// SAFETY: a `HeadRef` only stands for `&core.head` of the handle's own core (alive as long
// as the handle), and `Head<K>` is made of atomics, `Send + Sync` for every link kind.
unsafe impl<K: LinkKind> Send for HeadRef<K> {}
// SAFETY: as above.
unsafe impl<K: LinkKind> Sync for HeadRef<K> {}

impl<K: LinkKind> HeadRef<K> {
    fn of<T, R>(core: &Arc<Core<T, K, R>>) -> Self
    where
        T: Linked<K> + Send + Sync + 'static,
        R: Role,
    {
        HeadRef(NonNull::from(&core.head))
    }
}

/// An index: a list of elements owned by another list (its *owner*), linked through a
/// link of their own. Readers use it like any list; it owns nothing.
///
/// # Ownership rules
///
/// One element sits in one owning list and in any number of indexes of that list, one
/// per link (tag) of its type, for example a table of routes owned by a list by id, and
/// hash chains by name. What keeps that sound:
///
/// 1. **The owner retires an element only when it is in no index**: removing it from
///    the owner (`remove`, a cursor's `remove_current`, `retain`, `replace`, ...) panics
///    if it is still linked into an index, before anything changes. Unlink it from its
///    indexes first. Otherwise the owner would free it after a grace period while readers
///    of the index can still reach it.
/// 2. **An index takes only elements of its owner**: inserting an element that is not
///    linked into the owner (of another list, or already removed) panics.
/// 3. **One lock, one domain**: an index shares its owner's writer lock and domain
///    ([`RcuIndex::of`]). Its writers come from [`RcuList::lock`] on the index, or from
///    the owner's writer with [`Writer::index`](crate::Writer::index); so removals from the owner and changes
///    to its indexes never run at once, and one grace period covers readers of both.
/// 4. **The owner's elements live as long as any index**: an index keeps its owner's
///    core alive; dropping the owner's handle first frees nothing, and the elements go
///    when the last handle goes. Dropping an index unlinks what it still holds (no lock
///    needed). A leaked (`mem::forget`) index leaks its owner's elements, never frees
///    them early.
/// 5. **An index needs a link of its own**: an index whose link type is the owner's
///    panics at creation.
///
/// Readers of an index may see an element moved from one index to another (a hash
/// chain to another chain) as they walk: they continue in the list it moved to, always
/// onto live elements. [`next`](RcuList::next) on an element that has left the index
/// returns `None` (the walk ends early); [`iter`](RcuList::iter) continues.
///
/// ```
/// use rcu_core::rcu_read_lock;
/// use rcu_queue::{rcu_link, QList, QListLink, RcuIndex};
///
/// struct ById;
/// struct ByName;
/// struct Route {
///     id: u32,
///     name: &'static str,
///     by_id: QListLink<ById>,
///     by_name: QListLink<ByName>,
/// }
/// rcu_link!(Route, by_id: QListLink<ById>);
/// rcu_link!(Route, by_name: QListLink<ByName>);
/// let route = |id, name| {
///     Box::new(Route { id, name, by_id: QListLink::new(), by_name: QListLink::new() })
/// };
///
/// let routes: QList<Route, rcu_core::Memb, ById> = QList::new(); // owns the routes
/// let names: RcuIndex<Route, QListLink<ByName>> = RcuIndex::of(&routes); // owns nothing
/// let mut w = routes.lock();
/// w.insert_head(route(2, "b"));
/// w.insert_head(route(1, "a"));
/// let guard = rcu_read_lock();
/// for r in routes.iter(&guard) {
///     w.index(&names).insert_head(r); // link it into the index too
/// }
/// assert_eq!(names.iter(&guard).map(|r| r.name).collect::<String>(), "ba");
/// // Retire route 1: leave the index first, then the owner.
/// let one = routes.first(&guard).unwrap();
/// w.index(&names).remove(one);
/// w.remove(one).defer();
/// assert_eq!(names.iter(&guard).map(|r| r.id).collect::<Vec<_>>(), [2]);
/// ```
///
/// The owner takes boxes and an index takes references, so neither can be handed the
/// other's kind of element:
///
/// ```compile_fail
/// # use rcu_queue::{rcu_link, QList, QListLink, RcuIndex};
/// # struct A; struct B;
/// # struct E { a: QListLink<A>, b: QListLink<B> }
/// # rcu_link!(E, a: QListLink<A>);
/// # rcu_link!(E, b: QListLink<B>);
/// let owner: QList<E, rcu_core::Memb, A> = QList::new();
/// let index: RcuIndex<E, QListLink<B>> = RcuIndex::of(&owner);
/// let e = Box::new(E { a: QListLink::new(), b: QListLink::new() });
/// index.lock().insert_head(e); // error: expected `&E`, found `Box<E>`
/// ```
///
/// The compiling twin gives the box to the owner and a reference to the index:
///
/// ```
/// # use rcu_queue::{rcu_link, QList, QListLink, RcuIndex};
/// # struct A; struct B;
/// # struct E { a: QListLink<A>, b: QListLink<B> }
/// # rcu_link!(E, a: QListLink<A>);
/// # rcu_link!(E, b: QListLink<B>);
/// let owner: QList<E, rcu_core::Memb, A> = QList::new();
/// let index: RcuIndex<E, QListLink<B>> = RcuIndex::of(&owner);
/// let e = Box::new(E { a: QListLink::new(), b: QListLink::new() });
/// let mut w = owner.lock();
/// let guard = rcu_core::rcu_read_lock();
/// w.insert_head(e);
/// w.index(&index).insert_head(owner.first(&guard).unwrap());
/// ```
///
/// An index of an index does not type-check: only an owning list has indexes.
///
/// ```compile_fail
/// # use rcu_queue::{rcu_link, QList, QListLink, QTailQLink, RcuIndex};
/// # struct A; struct B;
/// # struct E { a: QListLink<A>, b: QListLink<B>, c: QTailQLink }
/// # rcu_link!(E, a: QListLink<A>);
/// # rcu_link!(E, b: QListLink<B>);
/// # rcu_link!(E, c: QTailQLink);
/// let owner: QList<E, rcu_core::Memb, A> = QList::new();
/// let index: RcuIndex<E, QListLink<B>> = RcuIndex::of(&owner);
/// let nested: RcuIndex<E, QTailQLink> = RcuIndex::of(&index); // error: expected `Owner`
/// ```
///
/// The compiling twin makes both indexes of the owner:
///
/// ```
/// # use rcu_queue::{rcu_link, QList, QListLink, QTailQLink, RcuIndex};
/// # struct A; struct B;
/// # struct E { a: QListLink<A>, b: QListLink<B>, c: QTailQLink }
/// # rcu_link!(E, a: QListLink<A>);
/// # rcu_link!(E, b: QListLink<B>);
/// # rcu_link!(E, c: QTailQLink);
/// let owner: QList<E, rcu_core::Memb, A> = QList::new();
/// let index: RcuIndex<E, QListLink<B>> = RcuIndex::of(&owner);
/// let lru: RcuIndex<E, QTailQLink> = RcuIndex::of(&owner);
/// # let _ = (index, lru);
/// ```
pub type RcuIndex<T, K, F = Memb> = RcuList<T, K, F, Index>;

/// What a list handle points at: the head and what writers share.
pub(crate) struct Core<T, K, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    R: Role,
{
    pub(crate) head: Head<K>,
    /// The writer lock (an index uses its owner's instead).
    lock: Mutex<()>,
    /// Owning lists: the link types of their indexes.
    pub(crate) registry: Registry<T>,
    /// Owning lists: how many indexes are alive (see `OwnerCore::indexes`).
    indexes: AtomicUsize,
    /// Indexes: their owning list.
    pub(crate) owner: Option<Arc<dyn OwnerCore<T>>>,
    _owns: PhantomData<(Box<T>, R)>,
}

impl<T, K, R> Core<T, K, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    R: Role,
{
    fn new(owner: Option<Arc<dyn OwnerCore<T>>>) -> Arc<Self> {
        let core = Arc::new(Core {
            head: Head::new(),
            lock: Mutex::new(()),
            registry: Registry::new(),
            indexes: AtomicUsize::new(0),
            owner,
            _owns: PhantomData,
        });
        core.head.init();
        core
    }

    /// The lock that serializes the writers of this list (shared with the owner's).
    pub(crate) fn writer_lock(&self) -> &Mutex<()> {
        match &self.owner {
            Some(owner) => owner.writer_lock(),
            None => &self.lock,
        }
    }
}

impl<T, K> OwnerCore<T> for Core<T, K, Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
{
    fn writer_lock(&self) -> &Mutex<()> {
        &self.lock
    }

    fn registry(&self) -> &Registry<T> {
        &self.registry
    }

    fn owns(&self, e: &T) -> bool {
        // Relaxed: the caller is a writer of this list (shared lock), which orders the
        // stores of the owner word before it.
        link_of::<T, K>(e).owner().load(Ordering::Relaxed) == self.head.linked_id()
    }

    fn indexes(&self) -> &AtomicUsize {
        &self.indexes
    }
}

impl<T, K, R> Drop for Core<T, K, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    R: Role,
{
    fn drop(&mut self) {
        // No reader or writer can use the list (they all borrow a handle, and this is the
        // last one); an owning list's indexes are all gone (each holds the core). Only an
        // index's owner may still touch its elements, and it only reads their owner words
        // in this link (Acquire, paired with the Release in `reset`).
        // Relaxed: nobody else writes these links any more, and every writer of this list
        // happens-before this (the last handle is being dropped).
        let mut p = self.head.link.next().load(Ordering::Relaxed);
        while let Some(l) = NonNull::new(p) {
            // SAFETY: `l` is the link of an element linked into the list (invariant),
            // alive: an owning list owns it, an index's owner is kept alive by `owner`,
            // dropped only after this function.
            let link = unsafe { l.as_ref() };
            p = link.next().load(Ordering::Relaxed);
            // Also for owned elements: their `Drop` may look at their links.
            reset(link);
            if R::OWNS {
                // SAFETY: the element came from `Box::into_raw` and the list owns it;
                // nobody else can reach it (see above).
                drop(unsafe { Box::from_raw(T::from_link(l).as_ptr()) });
            }
        }
        if let Some(owner) = &self.owner {
            // Release: pairs with the Acquire load in the owner's `get_mut`, which then
            // writes without the lock only after this index is done with every link.
            owner.indexes().fetch_sub(1, Ordering::Release);
        }
    }
}

#[cfg(not(loom))]
impl<T, K> RcuList<T, K, Memb, Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
{
    /// An empty list in the default (memb) domain: read it under
    /// [`rcu_read_lock`](rcu_core::rcu_read_lock); removed elements are freed by the
    /// default domain's call_rcu worker.
    pub fn new() -> Self {
        Self::new_in(rcu_core::default_domain())
    }
}

#[cfg(not(loom))]
impl<T, K> Default for RcuList<T, K, Memb, Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
{
    fn default() -> Self {
        Self::new()
    }
}

impl<T, K, F> RcuList<T, K, F, Owner>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    /// An empty list whose readers use `domain`'s guards and whose removed elements wait
    /// for `domain`'s grace periods.
    pub fn new_in(domain: &Domain<F>) -> Self {
        let core = Core::new(None);
        RcuList {
            head: HeadRef::of(&core),
            core,
            domain: domain.clone(),
        }
    }
}

impl<T, K, F> RcuList<T, K, F, Index>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    /// An empty index of `owner`: in its domain, sharing its writer lock, keeping its
    /// elements alive (see the [ownership rules](RcuIndex#ownership-rules)).
    ///
    /// # Panics
    ///
    /// If `K` is the owner's own link type (an element's link can be in one list only).
    pub fn of<K1>(owner: &RcuList<T, K1, F, Owner>) -> Self
    where
        T: Linked<K1>,
        K1: LinkKind,
    {
        if TypeId::of::<K1>() == TypeId::of::<K>() {
            panic!("rcu-queue: an index needs a link of its own, not its owner's");
        }
        let core: Arc<dyn OwnerCore<T>> = owner.core.clone();
        // Relaxed: only `get_mut` on the owner reads it, through `&mut` to the owner's
        // handle, which happens-after this `&` borrow ends.
        core.indexes().fetch_add(1, Ordering::Relaxed);
        let core = Core::new(Some(core));
        RcuList {
            head: HeadRef::of(&core),
            core,
            domain: owner.domain.clone(),
        }
    }
}

impl<T, K, F, R> RcuList<T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    /// The domain whose guards protect readers and whose grace periods free removed
    /// elements.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    #[inline(always)]
    fn check_guard(&self, guard: &ReadGuard<'_, F>) {
        if !guard.is_of(&self.domain) {
            wrong_domain();
        }
    }

    /// Whether the list is empty (`*_EMPTY_RCU`).
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline(always)]
    pub fn is_empty(&self, guard: &ReadGuard<'_, F>) -> bool {
        self.check_guard(guard);
        // Relaxed (QEMU uses `qatomic_read` too): nothing is dereferenced.
        self.head().first().load(Ordering::Relaxed).is_null()
    }

    /// The first element (`*_FIRST_RCU`), borrowed from the guard.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline(always)]
    pub fn first<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> Option<&'g T> {
        self.check_guard(guard);
        // Acquire (`qatomic_rcu_read`): pairs with the Release store that published the
        // element, so its contents are visible.
        let p = self.head().first().load(Ordering::Acquire);
        // SAFETY: the element is linked into the list now, so it is freed (if ever) only
        // after it leaves the list (an index's too: rule 1 of `RcuIndex`) and a grace
        // period of our domain passes, which `guard` (checked above) holds off for 'g.
        // Nobody holds a `&mut T` to a published element.
        unsafe { elem(p) }
    }

    /// The element after `elem` (`*_NEXT_RCU`).
    ///
    /// On an owning list `elem` may have been removed during this critical section: a
    /// reader standing on a removed element can still move on. On an index, an element
    /// that is no longer in the index has no next element here (`None`); use
    /// [`iter`](Self::iter) to walk on regardless.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain, or (owning lists) `elem` is not, and was
    /// not recently, an element of this list.
    #[inline(always)]
    pub fn next<'g>(&'g self, elem: &'g T, guard: &'g ReadGuard<'_, F>) -> Option<&'g T> {
        self.check_guard(guard);
        let link = link_of::<T, K>(elem);
        // Acquire: pairs with the Release store of the owner word when the element was
        // linked (`splice::link`), so the `next` we load below is from that membership or
        // later, never from an earlier one.
        let owner = link.owner().load(Ordering::Acquire);
        let head = self.head();
        // An owning list keeps its head in the owner word of a removed element until a
        // grace period has passed (`Retired`), so it accepts the word with or without the
        // linked bit; an index clears the word at once and accepts only a linked element.
        if R::OWNS {
            if owner as usize & !LINKED != head.id() as usize {
                not_in_list();
            }
        } else if owner != head.linked_id() {
            return None;
        }
        // Acquire (`qatomic_rcu_read`): as in `first`.
        let p = link.next().load(Ordering::Acquire);
        // `elem` is in this list or was removed from it while a critical section of our
        // domain that outlives 'g was running: an owning list's elements leave it only for
        // a `Retired` (which hides them) once they are in no index, so every `&T` to one
        // comes from a guard or a writer of this list or its indexes, all in this domain.
        // For an index, `elem` is linked here now (checked above).
        // SAFETY: so `p` is null or an element linked here during that section, freed (as
        // in `first`) only after a grace period the section holds off.
        unsafe { crate::link::elem(p) }
    }

    /// Iterate front to back (`*_FOREACH_RCU`; it reads each `next` pointer before
    /// yielding, so it is also `*_FOREACH_SAFE_RCU`).
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline(always)]
    pub fn iter<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> Iter<'g, T, K> {
        self.check_guard(guard);
        // Acquire (`qatomic_rcu_read`): as in `first`.
        let first = self.head().first().load(Ordering::Acquire);
        // SAFETY: every element reachable from `first` (following `next`, also from
        // elements removed or moved meanwhile) was linked into this list, or into another
        // index of the same owner, at some time during this critical section, so (as in
        // `first`) it is freed only after a grace period that `guard` holds off.
        unsafe { Iter::new(first) }
    }

    /// Take the list's writer lock (an index's is its owner's).
    pub(crate) fn take_writer_lock(&self) -> sync::MutexGuard<'_, ()> {
        sync::lock(self.core.writer_lock())
    }

    /// Whether no other handle can reach this list's elements: an owning list with no
    /// index. Acquire: pairs with the Release decrement at the end of an index's drop, so
    /// everything that index did happens-before the caller's next accesses.
    pub(crate) fn stands_alone(&self) -> bool {
        R::OWNS && self.core.indexes.load(Ordering::Acquire) == 0
    }

    /// The head.
    #[inline(always)]
    pub(crate) fn head(&self) -> &Head<K> {
        // SAFETY: `head` is `&self.core.head`, alive as long as `self.core` (type
        // invariant of `HeadRef`).
        unsafe { self.head.0.as_ref() }
    }

    /// Whether this list is an index of `owner`.
    pub(crate) fn is_index_of<K1, R1>(&self, owner: &RcuList<T, K1, F, R1>) -> bool
    where
        T: Linked<K1>,
        K1: LinkKind,
        R1: Role,
    {
        self.core
            .owner
            .as_ref()
            .is_some_and(|o| Arc::as_ptr(o).cast::<()>() == Arc::as_ptr(&owner.core).cast::<()>())
    }
}

impl<T, K, F, R> fmt::Debug for RcuList<T, K, F, R>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
    R: Role,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(K::LIST)
            .field("flavor", &F::NAME)
            .field("index", &!R::OWNS)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{
        check, fill, kind_tests, panics_with, setup, vals, Drops, B, E, MANY, X,
    };
    use crate::{QList, QListLink, QSListLink, QSimpleQLink, QTailQLink};
    use rcu_core::Mb;

    kind_tests! {
        empty: qlist_empty_rcu(QListLink), qsimpleq_empty_rcu(QSimpleQLink),
            qtailq_empty_rcu(QTailQLink), qslist_empty_rcu(QSListLink);
        first: qlist_first_rcu(QListLink), qsimpleq_first_rcu(QSimpleQLink),
            qtailq_first_rcu(QTailQLink), qslist_first_rcu(QSListLink);
        next: qlist_next_rcu(QListLink), qsimpleq_next_rcu(QSimpleQLink),
            qtailq_next_rcu(QTailQLink), qslist_next_rcu(QSListLink);
        foreach: qlist_foreach_rcu(QListLink), qsimpleq_foreach_rcu(QSimpleQLink),
            qtailq_foreach_rcu(QTailQLink), qslist_foreach_rcu(QSListLink);
        drop_frees: qlist_drop_frees(QListLink), qsimpleq_drop_frees(QSimpleQLink),
            qtailq_drop_frees(QTailQLink), qslist_drop_frees(QSListLink);
    }

    /// `*_EMPTY_RCU`, reader and writer side.
    fn empty<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        assert!(l.is_empty(&r.read_lock()));
        assert!(l.lock().is_empty());
        l.lock().insert_head(m.e(1));
        assert!(!l.is_empty(&r.read_lock()));
        assert!(!l.lock().is_empty());
        assert_eq!(l.lock().clear(), 1);
        assert!(l.is_empty(&r.read_lock()));
        assert_eq!(check(&l.lock()), []);
    }

    /// `*_FIRST_RCU`, reader and writer side.
    fn first<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        assert!(l.first(&r.read_lock()).is_none());
        assert!(l.lock().first().is_none());
        fill(&mut l.lock(), &m, [1, 2]);
        assert_eq!(l.first(&r.read_lock()).unwrap().v, 1);
        assert_eq!(l.lock().first().unwrap().v, 1);
    }

    /// `*_NEXT_RCU`: a reader standing on a removed element can still move forward, even
    /// when the next element is removed too; nothing is freed while its guard is held.
    fn next<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        fill(&mut w, &m, 1..=3);
        let g = r.read_lock();
        let one = l.first(&g).unwrap();
        let two = l.next(one, &g).unwrap();
        let three = l.next(two, &g).unwrap();
        assert_eq!((two.v, three.v), (2, 3));
        assert!(l.next(three, &g).is_none());
        assert_eq!(w.next(one).unwrap().v, 2);
        w.remove(two).defer();
        w.remove(three).defer();
        assert_eq!(l.next(two, &g).unwrap().v, 3);
        assert!(l.next(l.next(two, &g).unwrap(), &g).is_none());
        assert_eq!(vals(l.iter(&g)), [1]);
        assert_eq!(check(&w), [1]);
        drop(g);
        assert_eq!(m.freed(&d), 2);
    }

    /// `*_FOREACH_RCU`, reader and writer side.
    fn foreach<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        let r = d.register();
        let mut w = l.lock();
        fill(&mut w, &m, 0..MANY);
        assert_eq!(vals(l.iter(&r.read_lock())), (0..MANY).collect::<Vec<_>>());
        assert_eq!(w.len(), MANY as usize);
        assert_eq!(check(&w), (0..MANY).collect::<Vec<_>>());
        let g = r.read_lock();
        let mut n = 0;
        for e in l.iter(&g) {
            assert_eq!(e.v, n);
            n += 1;
        }
        assert_eq!(n, MANY);
    }

    /// Dropping a list frees what it holds; a removed element waits for its grace period.
    fn drop_frees<K: LinkKind>()
    where
        E: Linked<K>,
    {
        let (d, l, m) = setup::<K>();
        fill(&mut l.lock(), &m, 0..5);
        let kept = l.lock().cursor().remove_current().unwrap();
        drop(l);
        assert_eq!(m.count(), 4);
        drop(kept.synchronize());
        assert_eq!(m.count(), 5);
        drop(d);
    }

    #[test]
    #[should_panic(expected = "not linked into this list")]
    fn reader_next_on_an_element_of_another_list_panics() {
        let (d, a, m) = setup::<QListLink>();
        let b: crate::test_support::L<QListLink> = RcuList::new_in(&d);
        b.lock().insert_head(m.e(2));
        let r = d.register();
        let g = r.read_lock();
        let _ = a.next(b.first(&g).unwrap(), &g);
    }

    #[test]
    #[should_panic(expected = "another domain")]
    fn guard_of_another_domain_panics() {
        let (_d, l, _m) = setup::<QTailQLink>();
        let other: Domain<Mb> = Domain::new();
        let r = other.register();
        let _ = l.first(&r.read_lock());
    }

    #[test]
    fn get_mut_and_lock_unchecked() {
        let (_d, mut l, m) = setup::<QSListLink>();
        l.get_mut().insert_head(m.e(1));
        // SAFETY: this thread is the only writer.
        let mut w = unsafe { l.lock_unchecked() };
        w.insert_head(m.e(0));
        assert_eq!(vals(w.iter()), [0, 1]);
        assert!(std::ptr::eq(w.list(), &l));
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

    type Owner_ = QList<X, Mb>;
    type ByB = RcuIndex<X, QListLink<B>, Mb>;

    /// An owner with elements `0..n` (front to back) and an index of the same kind (QLIST,
    /// other tag) holding them in reverse order.
    fn indexed(n: u32) -> (Domain<Mb>, Owner_, ByB, Drops) {
        let d = Domain::new();
        let owner = QList::new_in(&d);
        let index = RcuIndex::of(&owner);
        let m = Drops::default();
        {
            let mut w = owner.lock();
            for v in (0..n).rev() {
                w.insert_head(m.x(v));
            }
            let r = d.register();
            let g = r.read_lock();
            for e in owner.iter(&g) {
                w.index(&index).insert_head(e);
            }
        }
        (d, owner, index, m)
    }

    #[test]
    fn an_element_in_two_lists_of_the_same_kind() {
        let (d, owner, index, m) = indexed(4);
        let r = d.register();
        let g = r.read_lock();
        assert_eq!(vals(owner.iter(&g)), [0, 1, 2, 3]);
        assert_eq!(vals(index.iter(&g)), [3, 2, 1, 0]);
        // reader-side first/next through either link
        let three = index.first(&g).unwrap();
        assert_eq!(index.next(three, &g).unwrap().v, 2);
        assert!(owner.next(three, &g).is_none());
        assert!(std::ptr::eq(three, owner.iter(&g).last().unwrap()));
        // an index writer from the index's own lock (the owner's, shared)
        let mut iw = index.lock();
        iw.remove(three);
        iw.insert_after(index.first(&g).unwrap(), three); // moved after 2
        assert_eq!(vals(iw.iter()), [2, 3, 1, 0]);
        assert_eq!(iw.retain(|e| e.v != 1), 1); // unlinks, frees nothing
        drop(iw);
        assert_eq!(vals(index.iter(&g)), [2, 3, 0]);
        assert_eq!(vals(owner.iter(&g)), [0, 1, 2, 3]);
        // 1 is in no index now: the owner may retire it
        let one = owner.next(owner.first(&g).unwrap(), &g).unwrap();
        owner.lock().remove(one).defer();
        drop(g);
        assert_eq!(m.freed(&d), 1);
        assert!(format!("{index:?}").contains("index: true"));
    }

    #[test]
    fn indexes_of_other_kinds_and_the_registry() {
        let (d, owner, index, m) = indexed(3);
        let lru: RcuIndex<X, QTailQLink, Mb> = RcuIndex::of(&owner);
        let stack: RcuIndex<X, QSListLink, Mb> = RcuIndex::of(&owner);
        let r = d.register();
        let g = r.read_lock();
        let mut w = owner.lock();
        for e in owner.iter(&g) {
            w.index(&lru).insert_tail(e);
            w.index(&stack).insert_head(e);
        }
        let last = owner.iter(&g).last().unwrap();
        assert_eq!(w.index(&lru).last().unwrap().v, 2);
        // every index that holds it stops its retirement
        w.index(&index).remove(last);
        panics_with("still linked into an index", || drop(w.remove(last)));
        w.index(&lru).remove(last);
        panics_with("still linked into an index", || drop(w.remove(last)));
        assert!(w.index(&stack).remove_head().is_some()); // 2 was the head
        w.remove(last).defer();
        assert_eq!(vals(w.iter()), [0, 1]);
        drop(w);
        assert_eq!(vals(lru.iter(&g)), [0, 1]);
        assert_eq!(vals(stack.iter(&g)), [1, 0]);
        drop(g);
        assert_eq!(m.freed(&d), 1);
    }

    #[test]
    fn retiring_an_indexed_element_panics_and_changes_nothing() {
        let (d, owner, index, m) = indexed(3);
        let r = d.register();
        let g = r.read_lock();
        let zero = owner.first(&g).unwrap();
        let mut w = owner.lock();
        let msg = "still linked into an index";
        panics_with(msg, || drop(w.remove(zero)));
        panics_with(msg, || drop(w.cursor().remove_current()));
        panics_with(msg, || drop(w.replace(zero, m.x(9))));
        panics_with(msg, || drop(w.cursor().replace_current(m.x(9))));
        panics_with(msg, || {
            w.retain(|_| false);
        });
        panics_with(msg, || drop(w.extract_if(|_| true).next()));
        assert_eq!(vals(w.iter()), [0, 1, 2]);
        assert_eq!(vals(w.index(&index).iter()), [2, 1, 0]);
        drop(w);
        // the elements that came to replace were dropped, the others are all there
        drop(g);
        assert_eq!(m.freed(&d), 2);
        drop((owner, index));
        assert_eq!(m.count(), 5);
    }

    #[test]
    fn an_index_takes_only_elements_of_its_owner() {
        let (d, owner, index, m) = indexed(1);
        let other: Owner_ = QList::new_in(&d);
        other.lock().insert_head(m.x(7));
        let r = d.register();
        let g = r.read_lock();
        let foreign = other.first(&g).unwrap();
        let msg = "only elements linked into its owner";
        panics_with(msg, || {
            index.lock().insert_head(foreign);
        });
        // an element already removed from the owner (still readable under `g`)
        let zero = owner.first(&g).unwrap();
        let mut w = owner.lock();
        w.index(&index).remove(zero);
        w.remove(zero).defer();
        panics_with(msg, || {
            w.index(&index).insert_head(zero);
        });
        assert!(w.index(&index).is_empty());
    }

    #[test]
    fn an_element_sits_in_one_index_per_link() {
        let (d, owner, index, _m) = indexed(1);
        let chain2: ByB = RcuIndex::of(&owner);
        let r = d.register();
        let g = r.read_lock();
        let zero = owner.first(&g).unwrap();
        let mut w = owner.lock();
        panics_with("already linked", || {
            w.index(&chain2).insert_head(zero);
        });
        w.index(&index).remove(zero);
        w.index(&chain2).insert_head(zero); // moved from one chain to the other
        assert_eq!(vals(chain2.iter(&g)), [0]);
        assert!(index.iter(&g).next().is_none());
        // a reader of the first chain standing on it: the end of its walk, not a panic
        assert!(index.next(zero, &g).is_none());
    }

    #[test]
    #[should_panic(expected = "a link of its own")]
    fn an_index_with_the_owners_link_panics() {
        let d: Domain<Mb> = Domain::new();
        let owner: Owner_ = QList::new_in(&d);
        let _: RcuIndex<X, QListLink, Mb> = RcuIndex::of(&owner);
    }

    #[test]
    #[should_panic(expected = "not an index of this list")]
    fn writing_the_index_of_another_list_panics() {
        let (d, _owner, index, _m) = indexed(1);
        let other: Owner_ = QList::new_in(&d);
        let _ = other.lock().index(&index);
    }

    /// The owner's handle may go first: its elements live on for the index's readers and
    /// go with the last handle; an index drops its links without taking the lock.
    #[test]
    fn dropping_the_owner_first_frees_nothing_early() {
        let (d, owner, index, m) = indexed(3);
        drop(owner);
        assert_eq!(m.count(), 0);
        let r = d.register();
        assert_eq!(vals(index.iter(&r.read_lock())), [2, 1, 0]);
        let mut w = index.lock(); // still writable: the lock lives in the shared core
        assert!(w.cursor().remove_current().is_some());
        assert_eq!(vals(w.iter()), [1, 0]);
        drop(w);
        drop(index);
        assert_eq!(m.count(), 3);
    }

    #[test]
    fn dropping_an_index_unlinks_its_elements() {
        let (d, owner, index, m) = indexed(3);
        let w = owner.lock();
        drop(index); // with the owner's writer held: no lock taken, no deadlock
        drop(w);
        let r = d.register();
        let g = r.read_lock();
        assert!(owner.iter(&g).all(|e| !e.b.is_linked()));
        drop(g);
        assert_eq!(owner.lock().clear(), 3);
        d.barrier();
        assert_eq!(m.count(), 3);
    }

    /// A leaked index keeps its owner's elements: leaked, never freed early.
    #[test]
    #[cfg_attr(miri, ignore = "leaks on purpose")]
    fn a_forgotten_index_leaks_its_owners_elements() {
        let (_d, owner, index, m) = indexed(2);
        std::mem::forget(index);
        drop(owner);
        assert_eq!(m.count(), 0);
    }

    /// After an element leaves an index, `next` on that index ends the walk instead of
    /// following the stale link: its old successor may be freed by then, while the
    /// element itself is still reachable through its owner with a fresh guard.
    #[test]
    fn index_next_on_an_element_that_left_ends_the_walk() {
        let (d, owner, index, m) = indexed(3);
        let r = d.register();
        {
            let g = r.read_lock();
            let mut w = owner.lock();
            let two = index.first(&g).unwrap();
            let one = index.next(two, &g).unwrap();
            w.index(&index).remove(two); // two.qb.next still points at one
            assert!(index.next(two, &g).is_none());
            w.index(&index).remove(one);
            w.remove(one).defer(); // one is freed after `g`
        }
        d.barrier();
        assert_eq!(m.count(), 1);
        let g = r.read_lock();
        let two = owner.iter(&g).last().unwrap();
        assert_eq!(two.v, 2);
        assert!(index.next(two, &g).is_none());
        assert_eq!(vals(index.iter(&g)), [0]);
    }

    #[test]
    fn get_mut_locks_when_indexes_share_the_list() {
        let (_d, mut owner, index, m) = indexed(1);
        owner.get_mut().insert_head(m.x(5)); // takes the shared lock: `index` exists
        drop(index);
        owner.get_mut().insert_head(m.x(6)); // alone again: no lock
        assert_eq!(vals(owner.get_mut().iter()), [6, 5, 0]);
    }
}
