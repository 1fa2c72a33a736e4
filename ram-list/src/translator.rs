//! [`Translator`]: a per-thread translation cache whose block survives across read-side
//! critical sections, and the [`Sighting`] it is built on (also used by the migration
//! loader to keep blocks between records).

use core::cell::Cell;
use core::fmt;
use core::ptr;

use rcu_core::{Flavor, Memb, ReadGuard};

use crate::block::RamBlock;
use crate::ram_list::{with_offset, RamList, Translated};
use crate::sync::Ordering;

/// A block found in a list, together with the list's `version` read *before* the walk that
/// found it: usable in any later critical section that still reads that version (the
/// argument is in the [`Translator`] docs).
#[derive(Clone, Copy)]
pub(crate) struct Sighting {
    /// The list the block was found in (compared, never dereferenced).
    list: *const (),
    version: u64,
    block: *const RamBlock,
}

// SAFETY: the pointers are dereferenced only by `get`, under a read guard of the list's
// domain and after the version check, in whatever thread that is; carrying them to another
// thread carries no access with it.
unsafe impl Send for Sighting {}

impl Sighting {
    /// # Safety
    ///
    /// 1. `block` was found by walking `list` in a read-side critical section of the list's
    ///    domain, and `version` is the value of [`RamList::version`] read in that same
    ///    section *before* the walk.
    /// 2. The sighting is only used while `list` is alive.
    pub(crate) unsafe fn new<F: Flavor>(list: &RamList<F>, version: u64, block: &RamBlock) -> Self {
        Sighting {
            list: ptr::from_ref(list).cast(),
            version,
            block: ptr::from_ref(block),
        }
    }

    /// The block, if `list` is the list it was found in and the list's version is still
    /// the one read before it was found. Never writes shared memory.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline]
    pub(crate) fn get<'g, F: Flavor>(
        self,
        list: &'g RamList<F>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<&'g RamBlock> {
        list.check_guard(guard);
        if !ptr::eq(self.list, ptr::from_ref(list).cast()) {
            return None;
        }
        // Acquire: pairs with the writers' Release bump (see `RamList::version`).
        if list.version.load(Ordering::Acquire) != self.version {
            return None;
        }
        // The block was found in this list in a critical section that read `version`
        // before its walk, and this one reads the same version: the grace period after any
        // removal of the block waits for this section (argument in the `Translator` docs).
        // SAFETY: so the block lives while `guard` (the list's domain, checked above) is
        // held, for 'g (contract 1 of `new`); contract 2 keeps the list alive.
        Some(unsafe { &*self.block })
    }

    /// The version the block was found under.
    pub(crate) fn version(&self) -> u64 {
        self.version
    }
}

impl fmt::Debug for Sighting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sighting")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// The list's version, and a walk of `list` in the critical section of `guard` yielding
/// each block with its [`Sighting`] under that version (read before the walk).
pub(crate) fn sightings<'g, F: Flavor>(
    list: &'g RamList<F>,
    guard: &'g ReadGuard<'_, F>,
) -> (u64, impl Iterator<Item = (&'g RamBlock, Sighting)> + 'g) {
    list.check_guard(guard);
    // Acquire, and before the walk: pairs with the writers' Release bump (the order is what
    // makes a sighting sound, see the `Translator` docs).
    let version = list.version.load(Ordering::Acquire);
    let walk = list.iter(guard).map(move |b| {
        crate::index::count_step();
        // SAFETY: `b` was found by walking `list` in the critical section of `guard` (of
        // the list's domain, checked above) after reading `version` (contract 1); the
        // sighting's users keep it no longer than they borrow the list (contract 2).
        let s = unsafe { Sighting::new(list, version, b) };
        (b, s)
    });
    (version, walk)
}

/// The translation cache of [`RamList`].
impl<F: Flavor> RamList<F> {
    /// A per-thread translation cache over this list, for a thread that translates many
    /// addresses (a vCPU): see [`Translator`].
    pub fn translator(&self) -> Translator<'_, F> {
        Translator::new(self)
    }
}

/// A per-thread address-translation cache over a [`RamList`]: the last block this
/// translator found, kept *across* read-side critical sections and validated by the
/// list's `version`, like a vCPU's own TLB entry.
///
/// [`RamList::lookup`] is QEMU's `qemu_get_ram_block`: its `mru_block` hint is shared by
/// every thread, and a miss *writes* it, so two threads translating addresses of
/// different blocks keep stealing that cache line from each other. A translator's hint is
/// private: a hit reads only the list's `version` (written by hotplug, not by readers)
/// and the block itself, and a miss walks the list without writing anything shared. Only
/// RCU makes this possible: a mutex-protected list could not let a thread keep a block
/// pointer between two lock sections, since the block may be freed in between.
///
/// ```
/// use rcu_core::rcu_read_lock;
/// use ram_list::RamList;
///
/// let ram = RamList::new();
/// let pc_ram = ram.alloc_named("pc.ram", 1 << 20).unwrap();
/// let tlb = ram.translator(); // one per vCPU thread
/// for i in 0..4u64 {
///     let guard = rcu_read_lock();
///     let (block, offset) = tlb.translate(pc_ram + i * 4096, &guard).unwrap();
///     assert_eq!((block.idstr(), offset), ("pc.ram", i * 4096));
/// }
/// ram.unplug(pc_ram).unwrap(); // bumps the version: the cached block is dropped
/// assert!(tlb.lookup(pc_ram, &rcu_read_lock()).is_none());
/// ```
///
/// # Why a cached pointer is safe to use
///
/// The cache holds `(v, b)`: `b` was found in the list in a critical section that had
/// read `version == v` *before* walking the list. A writer that removes `b` bumps the
/// version (Release) after unlinking it and before handing it to `call_rcu`, so `b` is
/// freed only after a grace period that starts after that bump. A later critical section
/// that still reads `version == v` did not see the bump, so it began before that grace
/// period started (a section that begins after it sees every store made before it), and
/// the grace period waits for it: `b` is alive for the whole section. Any other list
/// change also bumps the version, which just empties the cache. The loom models in
/// `loom-tests/tests/loom_translator.rs` drive this type against a concurrent unplug.
///
/// A translator is `Send` (it may move to the thread that uses it) but not `Sync`: one
/// thread uses it at a time.
pub struct Translator<'l, F: Flavor = Memb> {
    list: &'l RamList<F>,
    cached: Cell<Option<Sighting>>,
}

impl<'l, F: Flavor> Translator<'l, F> {
    pub(crate) fn new(list: &'l RamList<F>) -> Self {
        Translator {
            list,
            cached: Cell::new(None),
        }
    }

    /// The block containing ram address `addr`: the cached block if the list has not
    /// changed since it was found and it contains `addr`, else a walk of the list (whose
    /// result is cached). `None` for an address in no block. Never writes shared memory.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline]
    pub fn lookup<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Option<&'g RamBlock> {
        if let Some(b) = self.cached.get().and_then(|s| s.get(self.list, guard)) {
            if b.contains(addr) {
                return Some(b);
            }
        }
        self.walk(addr, guard)
    }

    #[inline(never)]
    fn walk<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Option<&'g RamBlock> {
        let (b, s) = sightings(self.list, guard)
            .1
            .find(|(b, _)| b.contains(addr))?;
        // Relaxed `retired`: advisory, as in `RamList::lookup`; a block being removed is
        // not worth caching (the version check would reject it soon anyway).
        if !b.retired.load(Ordering::Relaxed) {
            self.cached.set(Some(s));
        }
        Some(b)
    }

    /// The block containing `addr` and the offset of `addr` in it, or
    /// [`RamError::NoBlock`](crate::RamError::NoBlock); as [`RamList::translate`], through
    /// the cache.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline]
    pub fn translate<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Translated<'g> {
        with_offset(addr, self.lookup(addr, guard))
    }

    /// The list this translator reads.
    pub fn list(&self) -> &'l RamList<F> {
        self.list
    }
}

impl<F: Flavor> fmt::Debug for Translator<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Translator")
            .field("cached_version", &self.cached.get().map(|s| s.version()))
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::migration::RamLoader;
    use crate::testing::{setup, KIB, MIB};
    use crate::Translator;
    use rcu_core::Memb;

    /// A translator and a loader can be handed to the thread that uses them.
    #[test]
    fn translators_and_loaders_are_send() {
        fn send<T: Send>() {}
        send::<Translator<'static, Memb>>();
        send::<RamLoader<'static, Memb>>();
    }

    /// A translator hits its cached block across critical sections without touching the
    /// shared hint, and drops the cache on any list change: a block unplugged and another
    /// allocated at the same ram address is found anew.
    #[test]
    fn translator_caches_across_sections_and_revalidates_on_version() {
        let (d, l) = setup();
        let r = d.register();
        let pc = l.alloc_named("pc.ram", MIB).unwrap();
        let x = l.alloc_named("x", 256 * KIB).unwrap();
        let tlb = l.translator();
        {
            let g = r.read_lock();
            assert_eq!(tlb.lookup(pc + 5, &g).unwrap().idstr(), "pc.ram");
            assert_eq!(tlb.translate(x + 4096, &g).unwrap().1, 4096);
            assert!(tlb.lookup(l.last_ram_offset(&g) + MIB, &g).is_none());
        }
        // Walks never store the shared `mru_block` hint.
        assert!(l.mru_hint().is_null());
        let v = l.version();
        {
            let g = r.read_lock();
            let b = tlb.lookup(x + 8, &g).unwrap();
            let s = tlb.cached.get().unwrap();
            assert_eq!(s.version(), v);
            assert!(core::ptr::eq(s.get(&l, &g).unwrap(), b));
        }
        l.unplug(x).unwrap();
        let y = l.alloc_named("y", 256 * KIB).unwrap();
        assert_eq!(y, x, "best fit reuses the hole");
        let g = r.read_lock();
        assert_eq!(tlb.lookup(x + 8, &g).unwrap().idstr(), "y");
        assert_eq!(tlb.cached.get().unwrap().version(), l.version());
        // A sighting is only good for the list it was made in, even where another list
        // of the same domain happens to be at the same version.
        let s = tlb.cached.get().unwrap();
        let other = crate::RamList::new_in(&d);
        let mut n = 0;
        while other.version() < l.version() {
            other.alloc_named(&format!("z{n}"), 4096).unwrap();
            n += 1;
        }
        if other.version() == l.version() {
            assert!(s.get(&other, &g).is_none());
        }
        assert!(s.get(&l, &g).is_some());
        drop(g);
        d.barrier();
        d.barrier();
    }
}
