//! [`RamList`]: the RCU list of RAM blocks (QEMU's `ram_list`), with the `mru_block` hint,
//! `version`, the dirty bitmaps, and the writer lock that stands in for the BQL.
//!
//! # Locking policy (the patch review's rules, as types)
//!
//! * **Readers** take no lock: every read-side method takes a [`ReadGuard`] of the list's
//!   domain, and every block reference it returns borrows that guard, so none can outlive
//!   the critical section (QEMU: "read-side without rcu_read_lock, returns RCU-protected
//!   value -> the caller must hold the RCU lock").
//! * **Writers** (alloc, free, resize, set/unset idstr) hold the writer lock
//!   ([`RamList::lock`], QEMU's BQL / ramlist mutex) and need no guard: writer-side reads
//!   borrow the [`RamListWriter`].
//! * A removed block is **reclaimed through `call_rcu`**, never freed in place; its memory
//!   is unmapped by that callback.
//!
//! # `mru_block` and why it cannot outlive a grace period
//!
//! `mru_block` caches the last block a lookup found. A writer that removes a block clears
//! the hint *before* handing the block to `call_rcu`, so a reader that still loads the
//! stale value is inside a critical section that began before the grace period and keeps
//! the block alive.
//!
//! That is not quite enough, and QEMU's comment in `qemu_get_ram_block` does not cover this
//! interleaving: a reader that *found the block in the list* before it was unlinked can
//! store it into `mru_block` *after* the writer cleared the hint. The grace period waits for
//! that reader, but the stale pointer survives it, and a later reader would dereference a
//! freed block. So reclamation has two stages: after the first grace period (all readers
//! that could have seen the block in the list are done, so no new stale store can happen)
//! a callback clears the hint if it still holds the block, and hands the block to a second
//! grace period (which waits for every reader that loaded the stale hint before that
//! clear). Only then is the block unmapped. A removed block also carries a `retired` flag,
//! so a stale hint is not used as a hit even before it is cleared.

use core::cell::Cell;
use core::fmt;
use core::ops::ControlFlow;
use core::ptr::{self, NonNull};

use rcu_core::{Domain, Flavor, Memb, ReadGuard};
use rcu_queue::{QList, QListWriter};

use crate::block::{RamBlock, RamBlockFlags, MAX_IDSTR_LEN};
use crate::dirty::{DirtyMask, DirtyMemory};
use crate::memory::{HostMemory, PAGE_SIZE};
use crate::sync::{lock, Arc, AtomicPtr, AtomicU64, CachePadded, Mutex, MutexGuard, Ordering};
use crate::RamError;

/// `find_ram_offset` aligns candidate offsets to this (QEMU: `ROUND_UP(end, 1 << 18)`).
pub const RAM_OFFSET_ALIGN: u64 = 1 << 18;

/// Rounds `size` up to a page; `None` on overflow.
fn page_align(size: u64) -> Option<u64> {
    size.checked_add(PAGE_SIZE - 1)
        .map(|s| s & !(PAGE_SIZE - 1))
}

/// The list of RAM blocks of one guest (QEMU's `RAMList`).
///
/// Blocks are kept sorted by `max_length`, biggest first, in an RCU
/// [`QList`]; lookups by ram address try the `mru_block` hint first. See the module docs
/// for the locking policy.
///
/// ```
/// use rcu_core::rcu_read_lock;
/// use ram_list::RamList;
///
/// let ram = RamList::new();
/// let pc_ram = ram.alloc_named("pc.ram", 16 << 20).unwrap();
/// let vga = ram.alloc_named("vga.vram", 1 << 20).unwrap();
///
/// let guard = rcu_read_lock();
/// let block = ram.lookup(vga + 4096, &guard).unwrap(); // borrows the guard
/// assert_eq!(block.idstr(), "vga.vram");
/// ram.write(pc_ram + 8, &7u64.to_ne_bytes(), &guard).unwrap(); // marks the page dirty
/// assert_eq!(ram.bytes_total(&guard), 17 << 20);
/// drop(guard);
///
/// ram.free(vga).unwrap(); // unmapped after a grace period
/// assert!(ram.lookup(vga, &rcu_read_lock()).is_none());
/// ```
pub struct RamList<F: Flavor = Memb> {
    domain: Domain<F>,
    blocks: QList<RamBlock, F>,
    /// The `mru_block` hint: null or a block of this list (or one unlinked less than two
    /// grace periods ago; see the module docs). Shared with the reclamation callbacks.
    mru: Arc<CachePadded<AtomicPtr<RamBlock>>>,
    /// `ram_list.version`: bumped (Release) after every change of the block set, of an
    /// idstr or of a length.
    version: CachePadded<AtomicU64>,
    /// The writer lock (QEMU's BQL / `ram_list.mutex`).
    writer: Mutex<()>,
    dirty: DirtyMemory<F>,
}

impl RamList<Memb> {
    /// An empty list in the process-wide default domain: read it under
    /// [`rcu_core::rcu_read_lock`].
    pub fn new() -> Self {
        Self::new_in(rcu_core::default_domain())
    }
}

impl Default for RamList<Memb> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Flavor> RamList<F> {
    /// An empty list whose readers use `domain`'s guards and whose removed blocks wait for
    /// `domain`'s grace periods.
    pub fn new_in(domain: &Domain<F>) -> Self {
        RamList {
            domain: domain.clone(),
            blocks: QList::new_in(domain),
            mru: Arc::new(CachePadded(AtomicPtr::new(ptr::null_mut()))),
            version: CachePadded(AtomicU64::new(0)),
            writer: Mutex::new(()),
            dirty: DirtyMemory::new(domain),
        }
    }

    /// The RCU domain of the list.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// The dirty bitmaps (`ram_list.dirty_memory`).
    pub fn dirty(&self) -> &DirtyMemory<F> {
        &self.dirty
    }

    /// `ram_list.version`: changes after every change of the block set, of an idstr, or
    /// of a block's length.
    #[inline]
    pub fn version(&self) -> u64 {
        // Acquire: pairs with the writers' Release bump, so a reader that sees a version
        // sees the list changes made before it.
        self.version.load(Ordering::Acquire)
    }

    #[inline(always)]
    pub(crate) fn check_guard(&self, guard: &ReadGuard<'_, F>) {
        if !guard.is_of(&self.domain) {
            wrong_domain();
        }
    }

    /// Take the writer lock (QEMU's `qemu_mutex_lock_ramlist` / the BQL). Readers are
    /// never blocked by it.
    pub fn lock(&self) -> RamListWriter<'_, F> {
        let held = lock(&self.writer);
        RamListWriter {
            list: self,
            q: self.blocks.lock(),
            _held: held,
        }
    }

    // ----- read side -----

    /// Iterate over the blocks, biggest first (`RAMBLOCK_FOREACH` / `QLIST_FOREACH_RCU`).
    #[inline]
    pub fn iter<'g>(
        &'g self,
        guard: &'g ReadGuard<'_, F>,
    ) -> impl Iterator<Item = &'g RamBlock> + 'g {
        self.blocks.iter(guard)
    }

    /// The block containing ram address `addr`, trying `mru_block` first, then the list
    /// (a hit there becomes the new `mru_block`), as `qemu_get_ram_block` does. A bad
    /// address is `None`, not an abort.
    #[inline]
    pub fn lookup<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Option<&'g RamBlock> {
        self.check_guard(guard);
        // Acquire (`qatomic_rcu_read`): pairs with the Release store of the reader that
        // cached it, which had acquired the block from the list.
        let mru = self.mru.load(Ordering::Acquire);
        if !mru.is_null() {
            // SAFETY: the hint is null or a block that is freed only after two grace
            // periods that follow the last moment the hint could hold it (module docs);
            // `guard` (of our domain, checked above) holds those off for 'g.
            let b = unsafe { &*mru };
            // Relaxed: `retired` is advisory (a stale hint is still a live block).
            if b.contains(addr) && !b.retired.load(Ordering::Relaxed) {
                return Some(b);
            }
        }
        self.lookup_slow(addr, guard)
    }

    #[inline(never)]
    fn lookup_slow<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Option<&'g RamBlock> {
        let b = self.blocks.iter(guard).find(|b| b.contains(addr))?;
        // Relaxed `retired`: advisory; a block being freed is not worth caching (the
        // two-stage reclaim covers a store that races its removal anyway).
        if !b.retired.load(Ordering::Relaxed) {
            // Release: a reader that loads the hint sees the block as we do (we acquired
            // it from the list); a reader may publish it (module docs).
            #[cfg(test)]
            tests::before_mru_store();
            self.mru
                .store(ptr::from_ref(b).cast_mut(), Ordering::Release);
        }
        Some(b)
    }

    /// The block containing `addr` and the offset of `addr` in it, or
    /// [`RamError::NoBlock`] (QEMU's `qemu_get_ram_block` without the abort).
    pub fn translate<'g>(
        &'g self,
        addr: u64,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<(&'g RamBlock, u64), RamError> {
        with_offset(addr, self.lookup(addr, guard))
    }

    /// A per-thread translation cache over this list, for a thread that translates many
    /// addresses (a vCPU): see [`Translator`].
    pub fn translator(&self) -> Translator<'_, F> {
        Translator {
            list: self,
            cached: Cell::new((0, ptr::null())),
        }
    }

    /// The block whose host memory contains `host`, and the offset in it
    /// (`qemu_ram_block_from_host`; mru first).
    pub fn block_from_host<'g>(
        &'g self,
        host: *const u8,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<(&'g RamBlock, u64)> {
        self.check_guard(guard);
        // Acquire: as in `lookup`.
        let mru = self.mru.load(Ordering::Acquire);
        if !mru.is_null() {
            // SAFETY: as in `lookup`.
            let b = unsafe { &*mru };
            if let Some(off) = b.offset_of_host(host) {
                // Relaxed: advisory, as in `lookup`.
                if !b.retired.load(Ordering::Relaxed) {
                    return Some((b, off));
                }
            }
        }
        self.blocks
            .iter(guard)
            .find_map(|b| b.offset_of_host(host).map(|off| (b, off)))
    }

    /// The ram address of host pointer `host` (`qemu_ram_addr_from_host`).
    pub fn ram_addr_from_host(&self, host: *const u8, guard: &ReadGuard<'_, F>) -> Option<u64> {
        self.block_from_host(host, guard)
            .map(|(b, off)| b.offset() + off)
    }

    /// `len` bytes at `addr`, clamped to the end of the block (`qemu_ram_ptr_length`).
    /// `None` for a bad address or `len == 0`.
    pub fn ptr_length<'g>(
        &'g self,
        addr: u64,
        len: u64,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<GuestRange<'g>> {
        if len == 0 {
            return None;
        }
        let b = self.lookup(addr, guard)?;
        let offset = addr - b.offset();
        // One read of the used length: a concurrent `resize` may have shrunk the block since
        // `lookup` found `addr` inside it, and then the address is no longer guest RAM.
        let room = b.used_length().checked_sub(offset).filter(|&n| n > 0)?;
        let len = len.min(room);
        Some(GuestRange {
            block: b,
            offset,
            len,
        })
    }

    /// Call `f` for every block until it breaks (`qemu_ram_foreach_block`, which stops at
    /// the first non-zero return).
    pub fn foreach_block<B>(
        &self,
        guard: &ReadGuard<'_, F>,
        mut f: impl FnMut(&RamBlock) -> ControlFlow<B>,
    ) -> ControlFlow<B> {
        for b in self.blocks.iter(guard) {
            f(b)?;
        }
        ControlFlow::Continue(())
    }

    /// The block named `name` (`qemu_ram_block_by_name`).
    pub fn block_by_name<'g>(
        &'g self,
        name: &str,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<&'g RamBlock> {
        self.blocks.iter(guard).find(|b| b.idstr() == name)
    }

    /// Sum of the blocks' used lengths (`ram_bytes_total`).
    pub fn bytes_total(&self, guard: &ReadGuard<'_, F>) -> u64 {
        self.blocks.iter(guard).map(|b| b.used_length()).sum()
    }

    /// End of the highest block (`last_ram_offset`).
    pub fn last_ram_offset(&self, guard: &ReadGuard<'_, F>) -> u64 {
        self.blocks
            .iter(guard)
            .map(|b| b.offset() + b.max_length())
            .max()
            .unwrap_or(0)
    }

    /// Number of blocks.
    pub fn len(&self, guard: &ReadGuard<'_, F>) -> usize {
        self.blocks.iter(guard).count()
    }

    /// Whether the list has no block.
    pub fn is_empty(&self, guard: &ReadGuard<'_, F>) -> bool {
        self.blocks.is_empty(guard)
    }

    /// Guest write (`cpu_physical_memory_write` for RAM): translate `addr`, copy `data`
    /// (which must not cross the end of the block), and mark the pages dirty for every
    /// client.
    #[inline]
    pub fn write(&self, addr: u64, data: &[u8], guard: &ReadGuard<'_, F>) -> Result<(), RamError> {
        let (b, off) = self.translate(addr, guard)?;
        b.write(off, data)?;
        self.dirty
            .set_range(addr, data.len() as u64, DirtyMask::ALL, guard);
        Ok(())
    }

    /// Guest write of one aligned `u64`, marking its page dirty: the vCPU fast path.
    #[inline]
    pub fn write_u64(
        &self,
        addr: u64,
        value: u64,
        guard: &ReadGuard<'_, F>,
    ) -> Result<(), RamError> {
        let (b, off) = self.translate(addr, guard)?;
        b.write_u64(off, value)?;
        self.dirty.set_page(addr, DirtyMask::ALL, guard);
        Ok(())
    }

    /// Guest read (`cpu_physical_memory_read` for RAM); must not cross the block's end.
    pub fn read(
        &self,
        addr: u64,
        buf: &mut [u8],
        guard: &ReadGuard<'_, F>,
    ) -> Result<(), RamError> {
        let (b, off) = self.translate(addr, guard)?;
        b.read(off, buf)
    }

    // ----- writer-side conveniences (each takes the writer lock) -----

    /// Allocate an anonymous block of `size` bytes named `name` (alloc + `set_idstr`
    /// under one writer lock); returns its ram address.
    pub fn alloc_named(&self, name: &str, size: u64) -> Result<u64, RamError> {
        let mut w = self.lock();
        let addr = w.alloc(size)?;
        if let Err(e) = w.set_idstr(addr, None, name) {
            w.free(addr)?;
            return Err(e);
        }
        Ok(addr)
    }

    /// Allocate a resizeable block named `name` (`qemu_ram_alloc_resizeable` +
    /// `set_idstr`).
    pub fn alloc_resizeable_named(
        &self,
        name: &str,
        size: u64,
        max_size: u64,
    ) -> Result<u64, RamError> {
        let mut w = self.lock();
        let addr = w.alloc_resizeable(size, max_size)?;
        if let Err(e) = w.set_idstr(addr, None, name) {
            w.free(addr)?;
            return Err(e);
        }
        Ok(addr)
    }

    /// Free the block at `addr` (`qemu_ram_free`).
    pub fn free(&self, addr: u64) -> Result<(), RamError> {
        self.lock().free(addr)
    }

    /// Unplug: clear the idstr and free the block at `addr` (`qemu_ram_unset_idstr` +
    /// `qemu_ram_free` under one writer lock).
    pub fn unplug(&self, addr: u64) -> Result<(), RamError> {
        let mut w = self.lock();
        w.unset_idstr(addr)?;
        w.free(addr)
    }

    /// Resize the block at `addr` (`qemu_ram_resize`).
    pub fn resize(&self, addr: u64, new_size: u64) -> Result<(), RamError> {
        self.lock().resize(addr, new_size)
    }
}

impl<F: Flavor> fmt::Debug for RamList<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RamList");
        d.field("version", &self.version());
        // Only if no writer is active (never deadlock inside a writer section).
        match self.writer.try_lock() {
            Ok(_held) => {
                let q = self.blocks.lock();
                d.field("blocks", &q.iter().collect::<Vec<_>>());
            }
            Err(_) => {
                d.field("blocks", &format_args!("<writer active>"));
            }
        }
        d.finish()
    }
}

/// `translate`'s result from a lookup's: the block and the offset of `addr` in it.
#[inline]
fn with_offset(addr: u64, block: Option<&RamBlock>) -> Result<(&RamBlock, u64), RamError> {
    block
        .map(|b| (b, addr - b.offset()))
        .ok_or(RamError::NoBlock { addr })
}

#[cold]
#[inline(never)]
fn wrong_domain() -> ! {
    panic!("ram-list: the read guard belongs to another domain than this RamList")
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
/// change also bumps the version, which just empties the cache. The loom models
/// `*_version_validated_cache` in `loom-tests` check this argument for every flavor's
/// grace period, and fail when the version check is left out.
pub struct Translator<'l, F: Flavor = Memb> {
    list: &'l RamList<F>,
    /// `(version, block)`: the version read before the walk that found `block`.
    cached: Cell<(u64, *const RamBlock)>,
}

// SAFETY: the cached pointer is only dereferenced after the version check above, in
// whatever thread the translator is used; moving the translator moves no access to the
// block. (`Cell` keeps it `!Sync`: one thread uses it at a time.)
unsafe impl<F: Flavor> Send for Translator<'_, F> where RamList<F>: Sync {}

impl<'l, F: Flavor> Translator<'l, F> {
    /// The block containing ram address `addr`: the cached block if the list has not
    /// changed since it was found and it contains `addr`, else a walk of the list (whose
    /// result is cached). `None` for an address in no block. Never writes shared memory.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline]
    pub fn lookup<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Option<&'g RamBlock> {
        self.list.check_guard(guard);
        let (v, p) = self.cached.get();
        // Acquire: pairs with the writers' Release bump (see `RamList::version`); read
        // before the walk below, which is what makes caching its result sound.
        let now = self.list.version.load(Ordering::Acquire);
        if now == v && !p.is_null() {
            // SAFETY: `p` was found in the list in a critical section that read version
            // `v` before its walk, and this one reads `v` again: the grace period after
            // any removal of the block waits for this section (type docs), and `guard`
            // (of the list's domain, checked above) keeps the section open for 'g.
            let b = unsafe { &*p };
            if b.contains(addr) {
                return Some(b);
            }
        }
        self.walk(addr, now, guard)
    }

    #[inline(never)]
    fn walk<'g>(
        &'g self,
        addr: u64,
        now: u64,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<&'g RamBlock> {
        let b = self.list.blocks.iter(guard).find(|b| b.contains(addr))?;
        // Relaxed `retired`: advisory, as in `lookup_slow`; a block being removed is not
        // worth caching (the version check would reject it soon anyway).
        if !b.retired.load(Ordering::Relaxed) {
            self.cached.set((now, ptr::from_ref(b)));
        }
        Some(b)
    }

    /// The block containing `addr` and the offset of `addr` in it, or
    /// [`RamError::NoBlock`]; as [`RamList::translate`], through the cache.
    ///
    /// # Panics
    ///
    /// If `guard` belongs to another domain than the list's.
    #[inline]
    pub fn translate<'g>(
        &'g self,
        addr: u64,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<(&'g RamBlock, u64), RamError> {
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
            .field("cached_version", &self.cached.get().0)
            .finish_non_exhaustive()
    }
}

/// A range of guest memory inside one block (`qemu_ram_ptr_length`'s result).
#[derive(Debug, Clone, Copy)]
pub struct GuestRange<'g> {
    /// The block.
    pub block: &'g RamBlock,
    /// Offset of the range in the block.
    pub offset: u64,
    /// Length, clamped to the block's used length.
    pub len: u64,
}

impl GuestRange<'_> {
    /// The host address of the range (use it only with 8-byte atomic accesses).
    pub fn host_ptr(&self) -> *mut u8 {
        self.block.host().wrapping_add(self.offset as usize)
    }

    /// Copy the range out.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; self.len as usize];
        // The range was clamped to the block when it was made; a concurrent shrink is
        // reported as an empty copy rather than a panic.
        if self.block.read(self.offset, &mut v).is_err() {
            v.clear();
        }
        v
    }
}

/// The writer side of a [`RamList`]: holds the writer lock. Writer-side reads need no
/// guard and borrow the writer.
pub struct RamListWriter<'a, F: Flavor> {
    list: &'a RamList<F>,
    q: QListWriter<'a, RamBlock, F>,
    _held: MutexGuard<'a, ()>,
}

impl<F: Flavor> fmt::Debug for RamListWriter<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamListWriter").finish_non_exhaustive()
    }
}

impl<'a, F: Flavor> RamListWriter<'a, F> {
    /// The blocks, biggest first (writer side).
    pub fn iter(&self) -> impl Iterator<Item = &RamBlock> + '_ {
        self.q.iter()
    }

    /// The block that starts at ram address `addr`.
    pub fn block(&self, addr: u64) -> Option<&RamBlock> {
        self.q.iter().find(|b| b.offset() == addr)
    }

    /// The block named `name` (writer side).
    pub fn block_by_name(&self, name: &str) -> Option<&RamBlock> {
        self.q.iter().find(|b| b.idstr() == name)
    }

    /// End of the highest block (`last_ram_offset`).
    pub fn last_ram_offset(&self) -> u64 {
        self.q
            .iter()
            .map(|b| b.offset() + b.max_length())
            .max()
            .unwrap_or(0)
    }

    /// The best-fitting gap of `size` bytes in the ram address space
    /// (`find_ram_offset`): candidates are the ends of existing blocks rounded up to
    /// [`RAM_OFFSET_ALIGN`]; the smallest gap that fits wins; an empty list gives 0.
    pub fn find_ram_offset(&self, size: u64) -> Result<u64, RamError> {
        if size == 0 {
            return Err(RamError::InvalidSize { size });
        }
        if self.q.is_empty() {
            return Ok(0);
        }
        let mut best: Option<(u64, u64)> = None; // (offset, gap)
        for block in self.q.iter() {
            let Some(candidate) = block
                .offset()
                .checked_add(block.max_length())
                .and_then(|end| end.checked_add(RAM_OFFSET_ALIGN - 1))
                .map(|e| e & !(RAM_OFFSET_ALIGN - 1))
            else {
                continue;
            };
            // The next block at or after the candidate bounds the gap.
            let next = self
                .q
                .iter()
                .map(|b| b.offset())
                .filter(|&o| o >= candidate)
                .min()
                .unwrap_or(u64::MAX);
            // Blocks overlapping the candidate (start before, end after) rule it out.
            let overlaps = self.q.iter().any(|b| {
                b.offset() < candidate && b.offset().saturating_add(b.max_length()) > candidate
            });
            if overlaps {
                continue;
            }
            let gap = next - candidate;
            if gap >= size && best.is_none_or(|(_, g)| gap < g) {
                best = Some((candidate, gap));
            }
        }
        best.map(|(o, _)| o).ok_or(RamError::NoGap { size })
    }

    /// Allocate an anonymous block of `size` bytes (rounded up to a page); returns its
    /// ram address (`qemu_ram_alloc`). The block has no idstr until
    /// [`set_idstr`](Self::set_idstr).
    pub fn alloc(&mut self, size: u64) -> Result<u64, RamError> {
        self.alloc_with(size, size, RamBlockFlags::NONE)
    }

    /// [`alloc`](Self::alloc) with flags: [`RamBlockFlags::SHARED`] maps the memory
    /// `MAP_SHARED`.
    pub fn alloc_flags(&mut self, size: u64, flags: RamBlockFlags) -> Result<u64, RamError> {
        let flags = RamBlockFlags::NONE.union(if flags.contains(RamBlockFlags::SHARED) {
            RamBlockFlags::SHARED
        } else {
            RamBlockFlags::NONE
        });
        self.alloc_with(size, size, flags)
    }

    /// Allocate a resizeable block: `size` bytes used, address space and host memory
    /// reserved for `max_size` (`qemu_ram_alloc_resizeable`).
    pub fn alloc_resizeable(&mut self, size: u64, max_size: u64) -> Result<u64, RamError> {
        self.alloc_with(size, max_size, RamBlockFlags::RESIZEABLE)
    }

    fn alloc_with(
        &mut self,
        size: u64,
        max_size: u64,
        flags: RamBlockFlags,
    ) -> Result<u64, RamError> {
        let used = page_align(size).ok_or(RamError::InvalidSize { size })?;
        let max = page_align(max_size).ok_or(RamError::InvalidSize { size: max_size })?;
        if used == 0 || used > max {
            return Err(RamError::InvalidSize { size });
        }
        let offset = self.find_ram_offset(max)?;
        let mem = HostMemory::anonymous(max, flags.contains(RamBlockFlags::SHARED))?;
        Ok(self.add(RamBlock::new(offset, used, max, flags, mem)))
    }

    /// Make a block of caller memory (`qemu_ram_alloc_from_ptr`, `RAM_PREALLOC`): the
    /// memory is used in place and never freed or unmapped by the list.
    ///
    /// Returns [`RamError::Unaligned`] unless `host` is 8-byte aligned, and
    /// [`RamError::InvalidSize`] unless `size` is a non-zero multiple of the page size.
    ///
    /// # Safety
    ///
    /// 1. `host` is valid for reads and writes of `size` bytes until the block is
    ///    reclaimed: after [`free`](Self::free) returns *and* every callback queued on the
    ///    list's domain by then has run ([`Domain::barrier`](rcu_core::Domain::barrier)),
    ///    or until the list is dropped.
    /// 2. Until then, the memory is accessed only through the list (or with 8-byte
    ///    atomic operations).
    pub unsafe fn alloc_from_ptr(&mut self, size: u64, host: NonNull<u8>) -> Result<u64, RamError> {
        if size == 0 || size % PAGE_SIZE != 0 {
            return Err(RamError::InvalidSize { size });
        }
        // SAFETY: contracts 1 and 2 are this function's own.
        let mem = unsafe { HostMemory::prealloc(host, size) }?;
        let offset = self.find_ram_offset(size)?;
        Ok(self.add(RamBlock::new(
            offset,
            size,
            size,
            RamBlockFlags::PREALLOC,
            mem,
        )))
    }

    /// Make a block of memory that lives forever (`RAM_PREALLOC` with a `'static` buffer,
    /// e.g. a leaked allocation or a static): the safe form of
    /// [`alloc_from_ptr`](Self::alloc_from_ptr). The memory must be 8-byte aligned and a
    /// non-zero multiple of the page size long.
    pub fn alloc_from_static(&mut self, mem: &'static mut [u8]) -> Result<u64, RamError> {
        let size = mem.len() as u64;
        let host = NonNull::from(mem).cast::<u8>();
        // SAFETY: the buffer lives forever (contract 1) and the exclusive borrow we were
        // given is never used again except through the block (contract 2).
        unsafe { self.alloc_from_ptr(size, host) }
    }

    /// `ram_block_add`: extend the dirty bitmaps, mark the block dirty, insert it sorted,
    /// clear the hint, bump the version.
    fn add(&mut self, block: RamBlock) -> u64 {
        let offset = block.offset();
        let end = offset + block.max_length();
        let used = block.used_length();
        let max = block.max_length();
        self.list.dirty.extend(end);
        // Born dirty for every client (QEMU does it just after linking; before is better:
        // whoever finds the block also finds its dirty bits).
        self.list
            .dirty
            .set_range_locked(offset, used, DirtyMask::ALL);
        // Keep the list sorted from biggest to smallest block; ties go after the
        // existing equals.
        let mut c = self.q.cursor();
        while let Some(b) = c.current() {
            if b.max_length() < max {
                break;
            }
            c.move_next();
        }
        c.insert_before(Box::new(block));
        // Release, as every store of the hint (QEMU clears it on insert too; nothing is
        // retired here, so this is only for the order of the list).
        self.list.mru.store(ptr::null_mut(), Ordering::Release);
        self.bump();
        offset
    }

    fn bump(&self) {
        // Release: the list change above is visible to whoever sees the new version.
        self.list.version.fetch_add(1, Ordering::Release);
    }

    /// Name the block at `addr` "`dev_path`/`name`" or "`name`" (`qemu_ram_set_idstr`).
    /// An idstr another block has is [`RamError::DuplicateIdstr`] (QEMU aborts).
    pub fn set_idstr(
        &mut self,
        addr: u64,
        dev_path: Option<&str>,
        name: &str,
    ) -> Result<(), RamError> {
        if name.is_empty() {
            return Err(RamError::EmptyIdstr);
        }
        let idstr = match dev_path {
            Some(p) if !p.is_empty() => format!("{p}/{name}"),
            _ => name.to_owned(),
        };
        if idstr.len() > MAX_IDSTR_LEN {
            return Err(RamError::IdstrTooLong { len: idstr.len() });
        }
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        if !block.idstr().is_empty() {
            return Err(RamError::IdstrAlreadySet {
                idstr: block.idstr().to_owned(),
            });
        }
        if self.q.iter().any(|b| b.idstr() == idstr) {
            return Err(RamError::DuplicateIdstr { idstr });
        }
        block.set_idstr_locked(idstr, &self.list.domain);
        self.bump();
        Ok(())
    }

    /// Clear the idstr of the block at `addr` (`qemu_ram_unset_idstr`, on unplug).
    pub fn unset_idstr(&mut self, addr: u64) -> Result<(), RamError> {
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        if !block.idstr().is_empty() {
            block.set_idstr_locked(String::new(), &self.list.domain);
            self.bump();
        }
        Ok(())
    }

    /// Change the used length of the resizeable block at `addr` (`qemu_ram_resize`):
    /// [`RamError::SizeMismatch`] for a block that is not resizeable,
    /// [`RamError::SizeTooLarge`] past `max_length`. The whole block is marked dirty.
    pub fn resize(&mut self, addr: u64, new_size: u64) -> Result<(), RamError> {
        let new = page_align(new_size).ok_or(RamError::InvalidSize { size: new_size })?;
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        let used = block.used_length();
        if used == new {
            return Ok(());
        }
        if !block.is_resizeable() {
            return Err(RamError::SizeMismatch {
                idstr: block.idstr().to_owned(),
                used_length: used,
                new_length: new,
            });
        }
        if new > block.max_length() {
            return Err(RamError::SizeTooLarge {
                idstr: block.idstr().to_owned(),
                new_length: new,
                max_length: block.max_length(),
            });
        }
        if new == 0 {
            return Err(RamError::InvalidSize { size: new_size });
        }
        let offset = block.offset();
        self.list.dirty.clear_range_locked(offset, used);
        block.set_used_length(new);
        self.list
            .dirty
            .set_range_locked(offset, new, DirtyMask::ALL);
        self.bump();
        Ok(())
    }

    /// Free the block at `addr` (`qemu_ram_free`): unlink it, clear `mru_block`, bump the
    /// version, and reclaim it through `call_rcu` (the callback unmaps anonymous memory;
    /// caller memory is left alone). Two grace periods pass before that (module docs).
    pub fn free(&mut self, addr: u64) -> Result<(), RamError> {
        let mut c = self.q.cursor();
        loop {
            match c.current() {
                None => return Err(RamError::NoBlock { addr }),
                Some(b) if b.offset() == addr => {
                    // Relaxed: advisory for readers (they still see a live block).
                    b.retired.store(true, crate::sync::Ordering::Relaxed);
                    break;
                }
                Some(_) => {
                    c.move_next();
                }
            }
        }
        let retired = c
            .remove_current()
            .expect("the cursor stands on the block just found");
        // Clear the hint before call_rcu (the rule from the patch review). Release, as every
        // store of the hint; the grace period that follows orders it for the callback.
        self.list.mru.store(ptr::null_mut(), Ordering::Release);
        self.bump();
        let mru = self.list.mru.clone();
        let domain = self.list.domain.clone();
        retired.call(move |block: Box<RamBlock>| {
            // First grace period over: no reader can find the block in the list any more,
            // so none can store it into the hint again. Clear a stale copy...
            let p = ptr::from_ref(&*block).cast_mut();
            // Relaxed on both outcomes: the grace period ordered every earlier store of
            // the hint before us; the block itself is freed only after another one.
            let _ = mru.compare_exchange(p, ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed);
            // ...and wait for the readers that may have loaded it before that.
            domain.defer_drop(block);
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dirty::DirtyClient;
    use std::cell::RefCell;

    std::thread_local! {
        /// Test hook: runs in `lookup_slow` between checking `retired` and caching the
        /// block it found.
        static BEFORE_MRU_STORE: RefCell<Option<Box<dyn FnMut()>>> = const { RefCell::new(None) };
    }

    pub(super) fn before_mru_store() {
        BEFORE_MRU_STORE.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f();
            }
        });
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
        assert!(l.mru.load(Ordering::Relaxed).is_null());
        let v = l.version();
        {
            let g = r.read_lock();
            let b = tlb.lookup(x + 8, &g).unwrap();
            assert_eq!(tlb.cached.get(), (v, ptr::from_ref(b)));
        }
        l.unplug(x).unwrap();
        let y = l.alloc_named("y", 256 * KIB).unwrap();
        assert_eq!(y, x, "best fit reuses the hole");
        let g = r.read_lock();
        assert_eq!(tlb.lookup(x + 8, &g).unwrap().idstr(), "y");
        assert_eq!(tlb.cached.get().0, l.version());
        drop(g);
        d.barrier();
        d.barrier();
    }

    /// The interleaving QEMU's `qemu_get_ram_block` comment misses, forced: a reader finds
    /// the block in the list (not yet retired), the writer unlinks it, clears the hint and
    /// queues it for reclamation, and only then the reader stores it into the hint. The stale pointer
    /// outlives that reader's critical section; the two-stage reclaim clears it before
    /// the block is freed.
    #[test]
    fn stale_mru_store_is_cleared_before_the_block_is_freed() {
        let (d, l) = setup();
        l.alloc_named("pc.ram", MIB).unwrap();
        let x = l.alloc_named("x", 256 * KIB).unwrap();
        let (found_tx, found_rx) = std::sync::mpsc::channel::<()>();
        let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
        // A reader that holds up grace periods until the stale hint has been observed, so
        // the reclaim callbacks cannot run (and clear it) before the check below.
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = {
            let d = d.clone();
            std::thread::spawn(move || {
                let r = d.register();
                let _g = r.read_lock();
                held_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            })
        };
        held_rx.recv().unwrap();
        let x_ptr = std::thread::scope(|s| {
            let h = s.spawn(|| {
                let r = d.register();
                BEFORE_MRU_STORE.with(|h| {
                    *h.borrow_mut() = Some(Box::new(move || {
                        found_tx.send(()).unwrap();
                        go_rx.recv().unwrap();
                    }))
                });
                let g = r.read_lock();
                let b = l.lookup(x + 8, &g).unwrap();
                assert_eq!(b.idstr(), "x"); // still readable: our critical section
                let p = ptr::from_ref(b).cast_mut();
                drop(g);
                BEFORE_MRU_STORE.with(|h| h.borrow_mut().take());
                p as usize
            });
            found_rx.recv().unwrap();
            // The reader stands between "found x in the list" and "store the hint".
            l.free(x).unwrap();
            assert!(l.mru.load(Ordering::Relaxed).is_null());
            go_tx.send(()).unwrap();
            h.join().unwrap()
        });
        // The stale store happened after the writer's clear: the hint names a block
        // that is on its way to being freed, and no critical section protects it now.
        assert_eq!(l.mru.load(Ordering::Relaxed) as usize, x_ptr);
        release_tx.send(()).unwrap();
        blocker.join().unwrap();
        let r = d.register();
        {
            // Not used as a hit meanwhile (retired), and the address is gone.
            let g = r.read_lock();
            assert!(l.lookup(x + 8, &g).is_none());
        }
        // Stage one clears the hint after a grace period, stage two frees the block after
        // another one (barrier waits for callbacks queued by callbacks too).
        d.barrier();
        assert!(l.mru.load(Ordering::Relaxed).is_null());
        let g = r.read_lock();
        assert!(l.lookup(x + 8, &g).is_none());
        assert!(l.lookup(8, &g).is_some());
    }

    const MIB: u64 = 1 << 20;
    const KIB: u64 = 1 << 10;

    fn setup() -> (Domain<Memb>, RamList<Memb>) {
        let d: Domain<Memb> = Domain::new();
        let l = RamList::new_in(&d);
        (d, l)
    }

    fn layout(l: &RamList<Memb>) -> Vec<(String, u64, u64)> {
        let w = l.lock();
        let v = w
            .iter()
            .map(|b| (b.idstr().to_owned(), b.offset(), b.max_length()))
            .collect();
        v
    }

    #[test]
    fn sorted_insert_biggest_first_ties_after_equals() {
        let (_d, l) = setup();
        let a = l.alloc_named("a", MIB).unwrap();
        let b = l.alloc_named("b", 4 * MIB).unwrap();
        let c = l.alloc_named("c", MIB).unwrap();
        let d2 = l.alloc_named("d", 2 * MIB).unwrap();
        let e = l.alloc_named("e", 4 * MIB).unwrap();
        let f = l.alloc_named("f", 64 * KIB).unwrap();
        let names: Vec<_> = layout(&l).into_iter().map(|x| x.0).collect();
        assert_eq!(names, ["b", "e", "d", "a", "c", "f"]);
        // Offsets: best fit from block ends, 256 KiB aligned, no overlaps.
        assert_eq!(a, 0);
        assert_eq!(b, MIB);
        assert_eq!(c, 5 * MIB);
        assert_eq!(d2, 6 * MIB);
        assert_eq!(e, 8 * MIB);
        assert_eq!(f, 12 * MIB);
        assert_eq!(l.lock().last_ram_offset(), 12 * MIB + 64 * KIB);
    }

    #[test]
    fn find_ram_offset_best_fit() {
        let (_d, l) = setup();
        let mut w = l.lock();
        assert_eq!(w.find_ram_offset(0), Err(RamError::InvalidSize { size: 0 }));
        assert_eq!(w.find_ram_offset(12345).unwrap(), 0); // empty list
        let a = w.alloc(MIB).unwrap(); // [0, 1M)
        let b = w.alloc(MIB).unwrap(); // [1M, 2M)
        let c = w.alloc(MIB).unwrap(); // [2M, 3M)
        let d = w.alloc(MIB).unwrap(); // [3M, 4M)
        let e = w.alloc(3 * MIB).unwrap(); // [4M, 7M)
        let _f = w.alloc(MIB).unwrap(); // [7M, 8M)
        assert_eq!((a, b, c, d, e), (0, MIB, 2 * MIB, 3 * MIB, 4 * MIB));
        // Holes: [1M,2M) (1 MiB) and [4M,7M) (3 MiB).
        w.free(b).unwrap();
        w.free(e).unwrap();
        // 768 KiB fits both holes: the smaller one wins (best fit).
        assert_eq!(w.find_ram_offset(768 * KIB).unwrap(), MIB);
        // 2 MiB only fits the bigger hole.
        assert_eq!(w.find_ram_offset(2 * MIB).unwrap(), 4 * MIB);
        // 3 MiB + 1 page: only after the end.
        assert_eq!(w.find_ram_offset(3 * MIB + 4096).unwrap(), 8 * MIB);
        // Candidates are block ends rounded up to 256 KiB.
        let g = w.alloc(100 * KIB).unwrap();
        assert_eq!(g, MIB);
        assert_eq!(w.find_ram_offset(10 * KIB).unwrap(), MIB + 256 * KIB);
        // A gap at offset 0 is never a candidate (as in QEMU).
        w.free(a).unwrap();
        assert_ne!(w.find_ram_offset(MIB).unwrap(), 0);
        // No gap: the address space is full.
        assert_eq!(
            w.find_ram_offset(u64::MAX - 4096),
            Err(RamError::NoGap {
                size: u64::MAX - 4096
            })
        );
    }

    #[test]
    fn lookups_and_mru() {
        let (d, l) = setup();
        let r = d.register();
        let ram = l.alloc_named("pc.ram", 2 * MIB).unwrap();
        let vga = l.alloc_named("vga", MIB).unwrap();
        let g = r.read_lock();
        assert_eq!(l.lookup(ram + 5, &g).unwrap().idstr(), "pc.ram");
        assert_eq!(l.lookup(vga + MIB - 1, &g).unwrap().idstr(), "vga");
        assert_eq!(l.lookup(vga, &g).unwrap().idstr(), "vga"); // mru hit
        assert!(l.lookup(vga + MIB, &g).is_none());
        assert!(l.lookup(u64::MAX, &g).is_none());
        assert_eq!(l.translate(vga + 10, &g).unwrap().1, 10);
        assert_eq!(
            l.translate(99 * MIB, &g).unwrap_err(),
            RamError::NoBlock { addr: 99 * MIB }
        );
        // Host pointer lookups.
        let b = l.lookup(vga, &g).unwrap();
        let host = b.host().wrapping_add(4097);
        let (hb, off) = l.block_from_host(host, &g).unwrap();
        assert_eq!((hb.idstr(), off), ("vga", 4097));
        assert_eq!(l.ram_addr_from_host(host, &g), Some(vga + 4097));
        let pc = l.block_by_name("pc.ram", &g).unwrap();
        assert_eq!(l.ram_addr_from_host(pc.host(), &g), Some(ram));
        assert_eq!(l.ram_addr_from_host(core::ptr::null(), &g), None);
        // Pointer with length, clamped.
        let r1 = l.ptr_length(vga + MIB - 8, 100, &g).unwrap();
        assert_eq!((r1.offset, r1.len), (MIB - 8, 8));
        assert_eq!(r1.host_ptr(), b.host().wrapping_add((MIB - 8) as usize));
        assert_eq!(r1.to_vec(), vec![0u8; 8]);
        assert!(l.ptr_length(vga, 0, &g).is_none());
        assert!(l.ptr_length(50 * MIB, 1, &g).is_none());
        // Totals.
        assert_eq!(l.bytes_total(&g), 3 * MIB);
        assert_eq!(l.last_ram_offset(&g), 3 * MIB);
        assert_eq!(l.len(&g), 2);
        assert!(!l.is_empty(&g));
        assert!(l.block_by_name("nope", &g).is_none());
        drop(g);
        // Freeing the mru block: the hint must not be used for it.
        let g = r.read_lock();
        assert!(l.lookup(vga, &g).is_some()); // vga is now the hint
        drop(g);
        l.free(vga).unwrap();
        let g = r.read_lock();
        assert!(l.lookup(vga, &g).is_none());
        assert!(l.block_from_host(host, &g).is_none());
        drop(g);
        d.barrier();
        d.barrier();
        assert_eq!(l.free(vga), Err(RamError::NoBlock { addr: vga }));
    }

    #[test]
    fn foreach_stops_at_break() {
        let (d, l) = setup();
        let r = d.register();
        for (n, s) in [("x", 3 * MIB), ("y", 2 * MIB), ("z", MIB)] {
            l.alloc_named(n, s).unwrap();
        }
        let g = r.read_lock();
        let mut seen = Vec::new();
        let res = l.foreach_block(&g, |b| {
            seen.push(b.idstr().to_owned());
            if b.idstr() == "y" {
                ControlFlow::Break(b.used_length())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(res, ControlFlow::Break(2 * MIB));
        assert_eq!(seen, ["x", "y"]);
        let mut n = 0;
        assert_eq!(
            l.foreach_block::<()>(&g, |_| {
                n += 1;
                ControlFlow::Continue(())
            }),
            ControlFlow::Continue(())
        );
        assert_eq!(n, 3);
    }

    #[test]
    fn idstr_rules() {
        let (d, l) = setup();
        let r = d.register();
        let mut w = l.lock();
        let a = w.alloc(MIB).unwrap();
        let b = w.alloc(MIB).unwrap();
        let v0 = l.version();
        w.set_idstr(a, Some("/machine/peripheral/dimm0"), "ram")
            .unwrap();
        assert!(l.version() > v0);
        assert_eq!(w.block(a).unwrap().idstr(), "/machine/peripheral/dimm0/ram");
        assert_eq!(
            w.set_idstr(b, Some("/machine/peripheral/dimm0"), "ram"),
            Err(RamError::DuplicateIdstr {
                idstr: "/machine/peripheral/dimm0/ram".into()
            })
        );
        assert_eq!(
            w.set_idstr(a, None, "other"),
            Err(RamError::IdstrAlreadySet {
                idstr: "/machine/peripheral/dimm0/ram".into()
            })
        );
        assert_eq!(w.set_idstr(b, None, ""), Err(RamError::EmptyIdstr));
        let long = "x".repeat(200);
        assert_eq!(
            w.set_idstr(b, Some(&long), &long),
            Err(RamError::IdstrTooLong { len: 401 })
        );
        assert_eq!(
            w.set_idstr(12345, None, "q"),
            Err(RamError::NoBlock { addr: 12345 })
        );
        w.set_idstr(b, Some(""), &"y".repeat(255)).unwrap();
        w.unset_idstr(a).unwrap();
        assert_eq!(w.block(a).unwrap().idstr(), "");
        w.set_idstr(a, None, "again").unwrap();
        assert_eq!(w.unset_idstr(777), Err(RamError::NoBlock { addr: 777 }));
        drop(w);
        let g = r.read_lock();
        assert_eq!(l.block_by_name("again", &g).unwrap().offset(), a);
        // A name change is visible to readers, and the old string outlives the guard.
        let blk = l.lookup(a, &g).unwrap();
        let old = blk.idstr();
        l.lock().unset_idstr(a).unwrap();
        assert_eq!(old, "again");
        assert_eq!(blk.idstr(), "");
        drop(g);
        // alloc_named reports a duplicate without leaking a block.
        assert_eq!(
            l.alloc_named(&"y".repeat(255), MIB),
            Err(RamError::DuplicateIdstr {
                idstr: "y".repeat(255)
            })
        );
        assert_eq!(l.lock().iter().count(), 2);
        d.barrier();
    }

    #[test]
    fn resize_rules() {
        let (d, l) = setup();
        let r = d.register();
        let fixed = l.alloc_named("fixed", MIB).unwrap();
        let rs = l
            .alloc_resizeable_named("/rom@etc/acpi/tables", 128 * KIB, 2 * MIB)
            .unwrap();
        assert_eq!(
            l.resize(fixed, 2 * MIB),
            Err(RamError::SizeMismatch {
                idstr: "fixed".into(),
                used_length: MIB,
                new_length: 2 * MIB
            })
        );
        l.resize(fixed, MIB).unwrap(); // same size: fine
        assert_eq!(
            l.resize(rs, 2 * MIB + 1),
            Err(RamError::SizeTooLarge {
                idstr: "/rom@etc/acpi/tables".into(),
                new_length: 2 * MIB + 4096,
                max_length: 2 * MIB
            })
        );
        assert_eq!(l.resize(rs, 0), Err(RamError::InvalidSize { size: 0 }));
        assert_eq!(l.resize(3, 1), Err(RamError::NoBlock { addr: 3 }));
        let g = r.read_lock();
        l.dirty()
            .sync_range(DirtyClient::Migration, rs, 512, None, &g);
        let v = l.version();
        l.resize(rs, 300 * KIB).unwrap(); // rounded up to a page
        assert!(l.version() > v);
        let b = l.block_by_name("/rom@etc/acpi/tables", &g).unwrap();
        assert_eq!(b.used_length(), 300 * KIB);
        assert_eq!(b.max_length(), 2 * MIB);
        assert!(b.contains(rs + 300 * KIB - 1) && !b.contains(rs + 300 * KIB));
        // The whole new length is dirty.
        assert_eq!(l.dirty().count(DirtyClient::Migration, rs, 512, &g), 75);
        // The resizeable block reserved max_length of address space.
        assert_eq!(l.last_ram_offset(&g), rs + 2 * MIB);
        assert_eq!(l.bytes_total(&g), MIB + 300 * KIB);
        drop(g);
        assert_eq!(
            l.lock().alloc_resizeable(2 * MIB, MIB),
            Err(RamError::InvalidSize { size: 2 * MIB })
        );
    }

    #[test]
    fn caller_memory_is_not_freed() {
        let (d, l) = setup();
        let r = d.register();
        let mem: &'static mut [u64] = Box::leak(vec![0u64; 8192].into_boxed_slice());
        let p = mem.as_mut_ptr();
        // SAFETY: reinterpreting a u64 slice as bytes (same memory, alignment 8).
        let bytes: &'static mut [u8] =
            unsafe { core::slice::from_raw_parts_mut(p.cast::<u8>(), 65536) };
        let addr = {
            let mut w = l.lock();
            let a = w.alloc_from_static(bytes).unwrap();
            w.set_idstr(a, None, "prealloc").unwrap();
            a
        };
        {
            let g = r.read_lock();
            let b = l.lookup(addr, &g).unwrap();
            assert!(b.is_prealloc());
            assert_eq!(b.host(), p.cast::<u8>());
            l.write_u64(addr + 16, 0xdead_beef, &g).unwrap();
            assert!(l.dirty().get(DirtyClient::Vga, addr, &g));
        }
        l.free(addr).unwrap();
        d.barrier();
        d.barrier();
        // Still ours, with the data written through the block.
        // SAFETY: the block was reclaimed (two barriers), nobody else uses the memory.
        assert_eq!(unsafe { *p.add(2) }, 0xdead_beef);
        // Give the "static" memory back to the allocator (for LeakSanitizer).
        // SAFETY: `p` is the start of the leaked 8192-word box; the block that used it was
        // reclaimed and nothing else refers to it.
        drop(unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(p, 8192)) });
        // Bad caller memory.
        let odd: &'static mut [u8] = Box::leak(vec![0u8; 100].into_boxed_slice());
        let odd_ptr = core::ptr::from_mut(odd);
        // SAFETY: reborrows the leaked box for the call, which rejects it unused.
        let odd = unsafe { &mut *odd_ptr };
        assert_eq!(
            l.lock().alloc_from_static(odd),
            Err(RamError::InvalidSize { size: 100 })
        );
        // SAFETY: the call failed, so nothing refers to the box any more.
        drop(unsafe { Box::from_raw(odd_ptr) });
    }

    #[test]
    fn guest_access_through_the_list_marks_dirty() {
        let (d, l) = setup();
        let r = d.register();
        let a = l.alloc_named("ram", MIB).unwrap();
        let g = r.read_lock();
        l.dirty()
            .sync_range(DirtyClient::Migration, a, 256, None, &g);
        l.write(a + 4096 * 3 + 100, b"abc", &g).unwrap();
        assert_eq!(l.dirty().count(DirtyClient::Migration, a, 256, &g), 1);
        let mut buf = [0u8; 3];
        l.read(a + 4096 * 3 + 100, &mut buf, &g).unwrap();
        assert_eq!(&buf, b"abc");
        assert!(matches!(
            l.write(a + MIB - 1, b"ab", &g),
            Err(RamError::OutOfRange { .. })
        ));
        assert_eq!(
            l.write_u64(a + MIB, 1, &g),
            Err(RamError::NoBlock { addr: a + MIB })
        );
        assert_eq!(
            l.write_u64(a + 4, 1, &g),
            Err(RamError::Unaligned { addr: 4 })
        );
        assert!(format!("{l:?}").contains("ram"));
    }

    #[test]
    #[should_panic(expected = "another domain")]
    fn guard_of_another_domain_panics() {
        let (_d, l) = setup();
        let other: Domain<Memb> = Domain::new();
        let r = other.register();
        let g = r.read_lock();
        let _ = l.lookup(0, &g);
    }
}
