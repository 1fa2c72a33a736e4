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
//!   borrow the [`RamListWriter`](crate::RamListWriter).
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

use core::fmt;
use core::ops::ControlFlow;
use core::ptr;

use rcu_core::{Domain, Flavor, Memb, ReadGuard};
use rcu_queue::QList;

use crate::block::RamBlock;
use crate::dirty::{DirtyMask, DirtyMemory};
use crate::guest_range::GuestRange;
use crate::index::BlockIndex;
use crate::sync::{unmodelled, Arc, AtomicPtr, AtomicU64, CachePadded, Mutex, Ordering};
use crate::RamError;

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
    pub(crate) domain: Domain<F>,
    pub(crate) blocks: QList<RamBlock, F>,
    /// The `mru_block` hint: null or a block of this list (or one unlinked less than two
    /// grace periods ago; see the module docs). Shared with the reclamation callbacks.
    pub(crate) mru: Arc<CachePadded<AtomicPtr<RamBlock>>>,
    /// `ram_list.version`: bumped (Release) after every change of the block set, of an
    /// idstr or of a length.
    pub(crate) version: CachePadded<AtomicU64>,
    /// The writer lock (QEMU's BQL / `ram_list.mutex`).
    pub(crate) writer: Mutex<BlockIndex>,
    pub(crate) dirty: DirtyMemory<F>,
    /// Bytes of anonymous host memory mapped for the list's blocks, removed blocks
    /// included until they are reclaimed.
    pub(crate) mapped: unmodelled::Arc<unmodelled::AtomicU64>,
}

#[cfg(not(loom))]
impl RamList<Memb> {
    /// An empty list in the process-wide default domain: read it under
    /// [`rcu_core::rcu_read_lock`].
    pub fn new() -> Self {
        Self::new_in(rcu_core::default_domain())
    }
}

#[cfg(not(loom))]
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
            writer: Mutex::new(BlockIndex::default()),
            dirty: DirtyMemory::new(domain),
            mapped: unmodelled::Arc::new(unmodelled::AtomicU64::new(0)),
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

    /// Bytes of host memory mapped for this list's blocks: every block's `max_length` of
    /// anonymous memory (caller memory is not counted), including removed blocks until
    /// they are reclaimed (two grace periods after [`RamListWriter::free`](crate::RamListWriter::free)). What
    /// [`BlockPolicy::Mirror`](crate::migration::BlockPolicy::Mirror) bounds.
    pub fn mapped_bytes(&self) -> u64 {
        // Acquire: pairs with the Release decrement of a reclaimed block.
        self.mapped.load(Ordering::Acquire)
    }

    /// `ram_list.version`: changes after every change of the block set, of an idstr, or
    /// of a block's length.
    #[inline]
    pub fn version(&self) -> u64 {
        // Acquire: pairs with the writers' Release bump, so a reader that sees a version
        // sees the list changes made before it.
        self.version.load(Ordering::Acquire)
    }

    /// The `mru_block` hint as it stands (tests only).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn mru_hint(&self) -> *mut RamBlock {
        // Relaxed: tests read it after the operations they check have returned.
        self.mru.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(crate) fn check_guard(&self, guard: &ReadGuard<'_, F>) {
        if !guard.is_of(&self.domain) {
            wrong_domain();
        }
    }

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
    ///
    /// As in QEMU, a block contains the whole range it reserves, up to its `max_length`
    /// ([`RamBlock::contains`]): the block found for an address agrees with
    /// [`block_from_host`](Self::block_from_host) and
    /// [`ram_addr_from_host`](Self::ram_addr_from_host). Reads and writes stop at the used
    /// length ([`RamError::OutOfRange`] past it).
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
            #[cfg(all(test, not(loom)))]
            tests::before_mru_store();
            self.mru
                .store(ptr::from_ref(b).cast_mut(), Ordering::Release);
        }
        Some(b)
    }

    /// The block containing `addr` and the offset of `addr` in it, or
    /// [`RamError::NoBlock`] (QEMU's `qemu_get_ram_block` without the abort).
    pub fn translate<'g>(&'g self, addr: u64, guard: &'g ReadGuard<'_, F>) -> Translated<'g> {
        with_offset(addr, self.lookup(addr, guard))
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

    /// The block named `name` (`qemu_ram_block_by_name`). An empty name names no block
    /// (unnamed blocks are not migratable).
    pub fn block_by_name<'g>(
        &'g self,
        name: &str,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<&'g RamBlock> {
        if name.is_empty() {
            return None;
        }
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

/// What [`RamList::translate`] and [`Translator::translate`](crate::Translator::translate) return: the block containing
/// a ram address and the offset of the address in it, or [`RamError::NoBlock`].
pub type Translated<'g> = Result<(&'g RamBlock, u64), RamError>;

/// `translate`'s result from a lookup's: the block and the offset of `addr` in it.
#[inline]
pub(crate) fn with_offset(addr: u64, block: Option<&RamBlock>) -> Translated<'_> {
    block
        .map(|b| (b, addr - b.offset()))
        .ok_or(RamError::NoBlock { addr })
}

#[cold]
#[inline(never)]
fn wrong_domain() -> ! {
    panic!("ram-list: the read guard belongs to another domain than this RamList")
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::dirty::DirtyClient;
    use crate::testing::{setup, KIB, MIB};
    use crate::PAGE_SIZE;
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
    fn guest_access_through_the_list_marks_dirty() {
        let (d, l) = setup();
        let r = d.register();
        let a = l.alloc_named("ram", MIB).unwrap();
        let g = r.read_lock();
        l.dirty()
            .test_and_clear(DirtyClient::Migration, a, 256 * PAGE_SIZE, &g);
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

    /// `unplug_sync` returns only after the block is reclaimed: after every reader that
    /// could hold it has left its critical section, with its memory unmapped.
    #[test]
    fn unplug_sync_reclaims_before_returning() {
        use std::sync::atomic::AtomicBool;
        let (d, l) = setup();
        let x = l.alloc_named("x", MIB).unwrap();
        l.alloc_named("y", MIB).unwrap();
        assert_eq!(l.mapped_bytes(), 2 * MIB);
        let done = AtomicBool::new(false);
        let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
        std::thread::scope(|s| {
            s.spawn(|| {
                let r = d.register();
                let g = r.read_lock();
                let b = l.lookup(x, &g).unwrap();
                held_tx.send(()).unwrap();
                std::thread::sleep(std::time::Duration::from_millis(50));
                assert!(
                    matches!(b.idstr(), "x" | ""),
                    "cleared by the unplug, or not yet"
                );
                b.write_u64(0, 1).unwrap(); // still mapped
                                            // Relaxed: the grace period orders this before `unplug_sync` returns.
                done.store(true, Ordering::Relaxed);
                drop(g);
            });
            held_rx.recv().unwrap();
            l.unplug_sync(x).unwrap();
            // Relaxed: see above.
            assert!(
                done.load(Ordering::Relaxed),
                "returned before the reader left"
            );
            assert_eq!(l.mapped_bytes(), MIB, "unmapped before returning");
        });
        assert_eq!(l.unplug_sync(x), Err(RamError::NoBlock { addr: x }));
        let r = d.register();
        assert!(l.lookup(x, &r.read_lock()).is_none());
        assert!(l.block_by_name("x", &r.read_lock()).is_none());
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
