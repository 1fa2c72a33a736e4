//! [`RamListWriter`]: the writer side of a [`RamList`] (alloc, free, resize, set/unset
//! idstr, `find_ram_offset`), holding the list's writer lock (QEMU's BQL / ramlist mutex).
//!
//! A removed block is reclaimed in two stages (the [`RamList`] module docs say why): after a
//! first grace period a callback clears a stale `mru_block` hint that may still name it,
//! and hands it to a second grace period, after which it is unmapped.
//!
//! Every operation costs `O(log n)` in the number of blocks: the writer keeps indexes by
//! offset, by idstr, by list position and of the free gaps (see `index.rs`), and walks the
//! list only when asked to ([`RamListWriter::iter`]).

use core::fmt;
use core::ptr::{self, NonNull};

use rcu_core::Flavor;
use rcu_queue::{QListWriter, Retired};

use crate::block::{OldIdstr, RamBlock, RamBlockFlags, MAX_IDSTR_LEN};
use crate::dirty::DirtyMask;
use crate::index::{count_step, BlockIndex};
use crate::memory::{HostMemory, PAGE_SIZE};
use crate::ram_list::RamList;
use crate::sync::{lock, AtomicPtr, MutexGuard, Ordering};
use crate::RamError;

/// Rounds `size` up to a page; `None` on overflow.
fn page_align(size: u64) -> Option<u64> {
    size.checked_add(PAGE_SIZE - 1)
        .map(|s| s & !(PAGE_SIZE - 1))
}

/// The writer side of a [`RamList`]: holds the writer lock. Writer-side reads need no
/// guard and borrow the writer.
pub struct RamListWriter<'a, F: Flavor> {
    list: &'a RamList<F>,
    q: QListWriter<'a, RamBlock, F>,
    /// The writer lock, and the indexes it protects.
    pub(crate) index: MutexGuard<'a, BlockIndex>,
}

impl<F: Flavor> fmt::Debug for RamListWriter<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamListWriter").finish_non_exhaustive()
    }
}

impl<'a, F: Flavor> RamListWriter<'a, F> {
    pub(crate) fn new(list: &'a RamList<F>, index: MutexGuard<'a, BlockIndex>) -> Self {
        RamListWriter {
            list,
            q: list.blocks.lock(),
            index,
        }
    }

    /// An indexed block, borrowed from the writer.
    fn indexed(&self, block: Option<NonNull<RamBlock>>) -> Option<&RamBlock> {
        // SAFETY: the index holds only blocks linked into the list (its invariant), and
        // only this writer, which holds the writer lock, can unlink one, through `&mut
        // self`: the block lives for as long as the returned borrow of `self`.
        block.map(|p| unsafe { p.as_ref() })
    }

    /// The blocks, biggest first (writer side; a walk of the list).
    pub fn iter(&self) -> impl Iterator<Item = &RamBlock> + '_ {
        self.q.iter().inspect(|_| count_step())
    }

    /// The block that starts at ram address `addr`.
    pub fn block(&self, addr: u64) -> Option<&RamBlock> {
        self.indexed(self.index.get(addr))
    }

    /// The block named `name` (writer side). An empty name names no block.
    pub fn block_by_name(&self, name: &str) -> Option<&RamBlock> {
        self.indexed(self.index.by_name(name))
    }

    /// End of the highest block (`last_ram_offset`).
    pub fn last_ram_offset(&self) -> u64 {
        self.index.end()
    }

    /// The best-fitting gap of `size` bytes in the ram address space
    /// (`find_ram_offset`): candidates are the ends of existing blocks rounded up to
    /// [`RAM_OFFSET_ALIGN`](crate::RAM_OFFSET_ALIGN); the smallest gap that fits wins (ties:
    /// the lowest offset); an empty list gives 0.
    pub fn find_ram_offset(&self, size: u64) -> Result<u64, RamError> {
        if size == 0 {
            return Err(RamError::InvalidSize { size });
        }
        self.index.best_fit(size).ok_or(RamError::NoGap { size })
    }

    /// Allocate an anonymous block of `size` bytes (rounded up to a page); returns its
    /// ram address (`qemu_ram_alloc`). The block has no idstr until
    /// [`set_idstr`](Self::set_idstr).
    pub fn alloc(&mut self, size: u64) -> Result<u64, RamError> {
        self.alloc_with(size, size, RamBlockFlags::NONE)
    }

    /// Allocate an anonymous block of `size` bytes named `name` (alloc + `set_idstr`); a
    /// block that cannot take the name is freed again. Returns its ram address.
    pub fn alloc_named(&mut self, name: &str, size: u64) -> Result<u64, RamError> {
        let addr = self.alloc(size)?;
        self.name_new(addr, name)
    }

    /// Name the block just allocated at `addr`, or free it again if it cannot take the
    /// name.
    pub(crate) fn name_new(&mut self, addr: u64, name: &str) -> Result<u64, RamError> {
        if let Err(e) = self.set_idstr(addr, None, name) {
            self.free(addr)?;
            return Err(e);
        }
        Ok(addr)
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
        let mem = HostMemory::anonymous(max, flags.contains(RamBlockFlags::SHARED))?
            .counted(&self.list.mapped);
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
        let after = self.index.insert_after(max);
        let linked = match self.indexed(after) {
            Some(after) => {
                // SAFETY: as in `indexed`: `after` is linked, and only this writer unlinks.
                let after = unsafe { &*ptr::from_ref(after) };
                self.q.insert_after(after, Box::new(block))
            }
            None => self.q.insert_head(Box::new(block)),
        };
        let linked = NonNull::from(linked);
        self.index.insert(linked, offset, max);
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
        if self.index.has_name(&idstr) {
            return Err(RamError::DuplicateIdstr { idstr });
        }
        block.set_idstr_locked(idstr.clone(), &self.list.domain);
        self.index.name(idstr, addr);
        self.bump();
        Ok(())
    }

    /// Clear the idstr of the block at `addr` (`qemu_ram_unset_idstr`, on unplug).
    pub fn unset_idstr(&mut self, addr: u64) -> Result<(), RamError> {
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        if block.idstr().is_empty() {
            return Ok(());
        }
        let name = block.idstr().to_owned();
        block.set_idstr_locked(String::new(), &self.list.domain);
        self.index.unname(&name);
        self.bump();
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
    /// Never blocks; [`RamList::unplug_sync`] reclaims before returning instead.
    pub fn free(&mut self, addr: u64) -> Result<(), RamError> {
        let retired = self.unlink(addr)?;
        let mru = self.list.mru.clone();
        let domain = self.list.domain.clone();
        retired.call(move |block: Box<RamBlock>| {
            // First grace period over: no reader can find the block in the list any more,
            // so none can store it into the hint again. Clear a stale copy...
            clear_stale_hint(&mru, &block);
            // ...and wait for the readers that may have loaded it before that.
            domain.defer_drop(block);
        });
        Ok(())
    }

    /// Unlink the block at `addr`: mark it retired, unlink it, clear the hint, bump the
    /// version. The caller reclaims it in two stages (module docs).
    fn unlink(&mut self, addr: u64) -> Result<Retired<RamBlock, F>, RamError> {
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        // Relaxed: advisory for readers (they still see a live block).
        block.retired.store(true, Ordering::Relaxed);
        let name = block.idstr().to_owned();
        // SAFETY: as in `indexed`: the block is linked, and only this writer unlinks it.
        let block = unsafe { &*ptr::from_ref(block) };
        let retired = self.q.remove(block);
        self.index.remove(addr, &name);
        // Clear the hint before the grace periods (the rule from the patch review). Release,
        // as every store of the hint; the grace period that follows orders it for the
        // reclaimer.
        self.list.mru.store(ptr::null_mut(), Ordering::Release);
        self.bump();
        Ok(retired)
    }

    /// Unplug the block at `addr` for a reclaim by the caller: clear its idstr, keeping the
    /// old string (readers may still hold it), and unlink it.
    ///
    /// # Safety
    ///
    /// 1. The returned string is dropped only after a grace period of the list's domain
    ///    that began after this call.
    pub(crate) unsafe fn unplug_detached(
        &mut self,
        addr: u64,
    ) -> Result<(Retired<RamBlock, F>, OldIdstr), RamError> {
        let block = self.block(addr).ok_or(RamError::NoBlock { addr })?;
        let name = block.idstr().to_owned();
        // SAFETY: contract 1 is this function's own.
        let old = unsafe { block.take_idstr_locked() };
        self.index.unname(&name);
        self.bump();
        Ok((self.unlink(addr)?, old))
    }
}

/// The writer side of [`RamList`]: the writer lock and the one-call conveniences built on
/// it.
impl<F: Flavor> RamList<F> {
    /// Take the writer lock (QEMU's `qemu_mutex_lock_ramlist` / the BQL). Readers are
    /// never blocked by it.
    pub fn lock(&self) -> RamListWriter<'_, F> {
        RamListWriter::new(self, lock(&self.writer))
    }

    /// Allocate an anonymous block of `size` bytes named `name` (alloc + `set_idstr`
    /// under one writer lock); returns its ram address.
    pub fn alloc_named(&self, name: &str, size: u64) -> Result<u64, RamError> {
        self.lock().alloc_named(name, size)
    }

    /// Allocate a resizeable block named `name` (`qemu_ram_alloc_resizeable` +
    /// `set_idstr`).
    pub fn alloc_resizeable_named(
        &self,
        name: &str,
        size: u64,
        max_size: u64,
    ) -> Result<u64, RamError> {
        self.alloc_then_name(name, |w| w.alloc_resizeable(size, max_size))
    }

    /// `alloc` then `set_idstr` under one writer lock; a block that cannot take the name
    /// is freed again.
    fn alloc_then_name(
        &self,
        name: &str,
        alloc: impl FnOnce(&mut RamListWriter<'_, F>) -> Result<u64, RamError>,
    ) -> Result<u64, RamError> {
        let mut w = self.lock();
        let addr = alloc(&mut w)?;
        w.name_new(addr, name)
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

    /// Unplug the block at `addr` (clear its idstr and free it) and reclaim it before
    /// returning: the two grace periods of the reclamation (see the module docs) are
    /// waited for here, without holding the writer lock, and the block's memory is
    /// unmapped when this returns (QEMU's `qemu_ram_free` before it used `call_rcu`).
    /// [`unplug`](Self::unplug) never blocks instead.
    ///
    /// # Blocking
    ///
    /// Waits for two grace periods of the list's domain.
    ///
    /// # Panics
    ///
    /// Where [`Domain::synchronize`](rcu_core::Domain::synchronize) panics: inside a read-side critical section of the
    /// list's domain, by an online QSBR reader of it, or from one of its callbacks.
    pub fn unplug_sync(&self, addr: u64) -> Result<(), RamError> {
        // SAFETY: contract 1: `name` is dropped below, after two grace periods that begin
        // after the call.
        let (retired, name) = unsafe { self.lock().unplug_detached(addr) }?;
        let block = retired.synchronize();
        clear_stale_hint(&self.mru, &block);
        self.domain.synchronize();
        drop((block, name));
        Ok(())
    }

    /// Resize the block at `addr` (`qemu_ram_resize`).
    pub fn resize(&self, addr: u64, new_size: u64) -> Result<(), RamError> {
        self.lock().resize(addr, new_size)
    }
}

/// Stage one of a block's reclamation, after the first grace period that follows its
/// unlinking: no reader can find the block in the list any more, so none can store it
/// into the hint again; clear a copy stored before. (The block is freed only after a
/// second grace period, which waits for the readers that may have loaded that copy.)
pub(crate) fn clear_stale_hint(mru: &AtomicPtr<RamBlock>, block: &RamBlock) {
    let p = ptr::from_ref(block).cast_mut();
    // Relaxed on both outcomes: the grace period ordered every earlier store of the hint
    // before us; the block itself is freed only after another one.
    let _ = mru.compare_exchange(p, ptr::null_mut(), Ordering::Relaxed, Ordering::Relaxed);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::dirty::DirtyClient;
    use crate::testing::{setup, KIB, MIB};
    use crate::RAM_OFFSET_ALIGN;
    use rcu_core::Memb;

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
            .test_and_clear(DirtyClient::Migration, rs, 512 * PAGE_SIZE, &g);
        let v = l.version();
        l.resize(rs, 300 * KIB).unwrap(); // rounded up to a page
        assert!(l.version() > v);
        let b = l.block_by_name("/rom@etc/acpi/tables", &g).unwrap();
        assert_eq!(b.used_length(), 300 * KIB);
        assert_eq!(b.max_length(), 2 * MIB);
        // Lookups cover the reserved range (as QEMU's); accesses the used part.
        assert!(b.contains(rs + 2 * MIB - 1) && !b.contains(rs + 2 * MIB));
        assert!(b.read_u64(300 * KIB - 8).is_ok() && b.read_u64(300 * KIB).is_err());
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

    /// `find_ram_offset` as QEMU writes it (two walks of the list per block), with ties
    /// going to the lowest candidate: the reference for the index.
    fn naive_find_ram_offset(w: &RamListWriter<'_, Memb>, size: u64) -> Option<u64> {
        let blocks: Vec<(u64, u64)> = w.iter().map(|b| (b.offset(), b.max_length())).collect();
        if blocks.is_empty() {
            return Some(0);
        }
        let mut best: Option<(u64, u64)> = None; // (gap, offset)
        for &(o, m) in &blocks {
            let Some(c) = (o + m).checked_add(RAM_OFFSET_ALIGN - 1) else {
                continue;
            };
            let c = c & !(RAM_OFFSET_ALIGN - 1);
            if blocks.iter().any(|&(bo, bm)| bo < c && bo + bm > c) {
                continue;
            }
            let next = blocks
                .iter()
                .map(|b| b.0)
                .filter(|&bo| bo >= c)
                .min()
                .unwrap_or(u64::MAX);
            let gap = next - c;
            if gap >= size && best.is_none_or(|b| (gap, c) < b) {
                best = Some((gap, c));
            }
        }
        best.map(|b| b.1)
    }

    /// Random allocs, frees and renames: after each, the index equals what it would be
    /// rebuilt from scratch, `find_ram_offset` agrees with QEMU's algorithm, the list is
    /// sorted biggest first with ties in insertion order, and lookups by offset and name
    /// agree with a walk.
    #[test]
    fn index_agrees_with_walks_under_random_changes() {
        let (d, l) = setup();
        let mut rng = 0x1234_5678_u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut live: Vec<(u64, u64)> = Vec::new(); // (offset, insertion number)
        for step in 0..600u64 {
            let mut w = l.lock();
            if live.is_empty() || (live.len() < 40 && next() % 3 != 0) {
                let size = [4 * KIB, 64 * KIB, 256 * KIB, MIB, 3 * MIB][(next() % 5) as usize];
                let a = if next() % 4 == 0 {
                    w.alloc_resizeable(size, 2 * size).unwrap()
                } else {
                    w.alloc(size).unwrap()
                };
                if next() % 2 == 0 {
                    w.set_idstr(a, None, &format!("b{step}")).unwrap();
                }
                live.push((a, step));
            } else {
                let (a, _) = live.swap_remove((next() % live.len() as u64) as usize);
                if next() % 2 == 0 {
                    w.unset_idstr(a).unwrap();
                }
                w.free(a).unwrap();
            }
            w.index.check();
            for size in [4 * KIB, 200 * KIB, MIB, 5 * MIB] {
                assert_eq!(
                    w.find_ram_offset(size).ok(),
                    naive_find_ram_offset(&w, size),
                    "step {step}, size {size:#x}"
                );
            }
            let order: Vec<u64> = w.iter().map(|b| b.max_length()).collect();
            assert!(order.windows(2).all(|p| p[0] >= p[1]), "{order:?}");
            let by_offset: std::collections::HashMap<u64, u64> = live.iter().copied().collect();
            let seqs: Vec<(u64, u64)> = w
                .iter()
                .map(|b| (b.max_length(), by_offset[&b.offset()]))
                .collect();
            for p in seqs.windows(2) {
                assert!(
                    p[0].0 > p[1].0 || p[0].1 < p[1].1,
                    "ties in insertion order"
                );
            }
            for b in w.iter() {
                assert!(core::ptr::eq(w.block(b.offset()).unwrap(), b));
                if !b.idstr().is_empty() {
                    assert!(core::ptr::eq(w.block_by_name(b.idstr()).unwrap(), b));
                }
            }
            assert!(w.block_by_name("").is_none());
            let end = w
                .iter()
                .map(|b| b.offset() + b.max_length())
                .max()
                .unwrap_or(0);
            assert_eq!(w.last_ram_offset(), end);
        }
        d.barrier();
        d.barrier();
    }
}
