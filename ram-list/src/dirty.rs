//! Per-page dirty bitmaps (QEMU's `ram_list.dirty_memory[]`), one per client.
//!
//! Every page of the ram address space has one bit per client ([`DirtyClient`]): VGA
//! (display refresh), CODE (translated-code invalidation) and MIGRATION. Writers of guest
//! memory set bits after their store ([`DirtyMemory::set_range`], QEMU's
//! `cpu_physical_memory_set_dirty_range`); consumers test-and-clear ranges
//! ([`DirtyMemory::test_and_clear`], [`DirtyMemory::sync_range`]).
//!
//! # Growth by RCU copy (`dirty_memory_extend`)
//!
//! The bitmap of a client is an array of pointers to fixed-size chunks of
//! [`DIRTY_CHUNK_PAGES`] bits. When a block is added past the current end of the address
//! space the writer (holding the list's writer lock) builds a *new pointer array* that
//! shares every existing chunk and appends fresh zeroed ones, publishes it, and retires the
//! old array through `call_rcu`. Chunks are reference-counted, so the old array's chunks
//! stay alive in the new one. Setting a dirty bit therefore never takes a lock: load the
//! array under the caller's read guard, index the chunk, `fetch_or` the bit. The array only
//! grows (as in QEMU), and it is extended *before* the new block is linked into the list,
//! so every block a reader can find is covered.
//!
//! # Ordering: page contents vs. dirty bit
//!
//! A writer stores guest data (relaxed atomics, see `memory.rs`) and then sets the bit with
//! a `Release` RMW; the migration clears bits with an `Acquire` RMW and only then copies
//! the page. If the clearing RMW reads the bit as set, it synchronizes with the setting RMW
//! (RMWs extend release sequences), so the copy sees at least the data written before
//! that bit was set. If the writer's RMW comes later in the word's modification order, the
//! bit stays set and the page is sent again in the next pass. Either way no write is lost
//! (the argument of QEMU's `migration_bitmap_sync`).

use std::fmt;

use rcu_core::{Domain, Flavor, RcuBox, ReadGuard};

use crate::bitmap::PageBitmap;
use crate::memory::PAGE_SIZE;
use crate::sync::unmodelled::{Arc, AtomicU64};
use crate::sync::{lock, Mutex, Ordering};

/// Pages per bitmap chunk (QEMU's `DIRTY_MEMORY_BLOCK_SIZE`, smaller here: 128 MiB of
/// address space per 4 KiB chunk).
pub const DIRTY_CHUNK_PAGES: u64 = 32 * 1024;
const CHUNK_WORDS: usize = (DIRTY_CHUNK_PAGES / 64) as usize;

/// A consumer of dirty information (QEMU's `DIRTY_MEMORY_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DirtyClient {
    /// Display emulation: which framebuffer pages to redraw (`DIRTY_MEMORY_VGA`).
    Vga = 0,
    /// Translated code: which pages may hold stale TBs (`DIRTY_MEMORY_CODE`).
    Code = 1,
    /// Live migration: which pages to send again (`DIRTY_MEMORY_MIGRATION`).
    Migration = 2,
}

/// Number of dirty clients (`DIRTY_MEMORY_NUM`).
pub const DIRTY_CLIENTS: usize = 3;

impl DirtyClient {
    /// All clients, in index order.
    pub const ALL: [DirtyClient; DIRTY_CLIENTS] =
        [DirtyClient::Vga, DirtyClient::Code, DirtyClient::Migration];

    /// The client's bit in a [`DirtyMask`].
    pub const fn mask(self) -> DirtyMask {
        DirtyMask(1 << self as u8)
    }
}

/// A set of [`DirtyClient`]s (QEMU's `DIRTY_CLIENTS_*` masks).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DirtyMask(u8);

impl DirtyMask {
    /// Every client (`DIRTY_CLIENTS_ALL`): what a write by the guest sets.
    pub const ALL: DirtyMask = DirtyMask(0b111);
    /// Every client except CODE (`DIRTY_CLIENTS_NOCODE`).
    pub const NOCODE: DirtyMask = DirtyMask(0b101);
    /// No client.
    pub const NONE: DirtyMask = DirtyMask(0);

    /// Whether `client` is in the set.
    pub const fn contains(self, client: DirtyClient) -> bool {
        self.0 & (1 << client as u8) != 0
    }

    /// The union of two sets.
    pub const fn union(self, other: DirtyMask) -> DirtyMask {
        DirtyMask(self.0 | other.0)
    }
}

impl fmt::Debug for DirtyMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(DirtyClient::ALL.iter().filter(|c| self.contains(**c)))
            .finish()
    }
}

type Chunk = Arc<[AtomicU64]>;

fn new_chunk() -> Chunk {
    (0..CHUNK_WORDS).map(|_| AtomicU64::new(0)).collect()
}

/// One published version of the pointer arrays (QEMU's `DirtyMemoryBlocks`, one per
/// client). Retired versions are dropped after a grace period; their chunks live on in the
/// newer version.
#[derive(Clone)]
struct Arrays {
    clients: [Box<[Chunk]>; DIRTY_CLIENTS],
}

/// The part of one bitmap word that a range covers.
#[derive(Debug, Clone, Copy)]
struct WordPart {
    /// The range's bits in the word.
    mask: u64,
    /// The first of them.
    shift: u32,
    /// How many.
    pages: u64,
    /// Index in the range of the first.
    pos: u64,
}

impl Arrays {
    fn pages(&self) -> u64 {
        self.clients[0].len() as u64 * DIRTY_CHUNK_PAGES
    }

    /// Calls `f(word, part)` for each of `client`'s bitmap words that covers part of the
    /// `npages` pages from page `first` (clamped to the bitmaps' end).
    fn for_each_word(
        &self,
        client: DirtyClient,
        first: u64,
        npages: u64,
        mut f: impl FnMut(&AtomicU64, WordPart),
    ) {
        if first >= self.pages() {
            return;
        }
        let n = npages.min(self.pages() - first);
        let chunks = &self.clients[client as usize];
        let mut pos = 0u64;
        for_each_run(first, n, |c, mut w, mut bit, mut left| {
            while left > 0 {
                let take = (64 - u64::from(bit)).min(left);
                let part = WordPart {
                    mask: bits(bit, take),
                    shift: bit,
                    pages: take,
                    pos,
                };
                f(&chunks[c][w], part);
                pos += take;
                left -= take;
                w += 1;
                bit = 0;
            }
        });
    }

    fn set_range(&self, start: u64, length: u64, mask: DirtyMask) {
        if length == 0 {
            return;
        }
        let first = start / PAGE_SIZE;
        let Some(last) = start.checked_add(length - 1).map(|e| e / PAGE_SIZE) else {
            return;
        };
        for client in DirtyClient::ALL.into_iter().filter(|c| mask.contains(*c)) {
            self.for_each_word(client, first, last - first + 1, |word, part| {
                // Release: publishes the guest stores made before this call to the
                // consumer's Acquire clear (module docs).
                word.fetch_or(part.mask, Ordering::Release);
            });
        }
    }

    fn sync_range(
        &self,
        client: DirtyClient,
        start: u64,
        npages: u64,
        mut into: Option<&mut PageBitmap>,
    ) -> u64 {
        let mut count = 0u64;
        self.for_each_word(client, start / PAGE_SIZE, npages, |word, part| {
            // Acquire: pairs with the writers' Release `fetch_or` (module docs); the caller
            // copies pages only after this clear.
            let old = if part.mask == u64::MAX {
                word.swap(0, Ordering::Acquire)
            } else {
                word.fetch_and(!part.mask, Ordering::Acquire)
            };
            let got = (old & part.mask) >> part.shift;
            if got != 0 {
                count += u64::from(got.count_ones());
                if let Some(dst) = into.as_deref_mut() {
                    dst.or_bits(part.pos, got, part.pages);
                }
            }
        });
        count
    }

    fn count(&self, client: DirtyClient, start: u64, npages: u64) -> u64 {
        let mut count = 0u64;
        self.for_each_word(client, start / PAGE_SIZE, npages, |word, part| {
            // Relaxed: a statistic.
            count += u64::from((word.load(Ordering::Relaxed) & part.mask).count_ones());
        });
        count
    }
}

/// The dirty bitmaps of a [`RamList`](crate::RamList): reached through
/// [`RamList::dirty`](crate::RamList::dirty).
pub struct DirtyMemory<F: Flavor> {
    arrays: RcuBox<Arrays, F>,
    /// The writer's copy of the current arrays (same chunks): lets the list's writer
    /// extend, set and clear without a read guard. Locked only under the writer lock.
    shadow: Mutex<Arrays>,
}

impl<F: Flavor> fmt::Debug for DirtyMemory<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DirtyMemory").finish_non_exhaustive()
    }
}

/// Splits the page range `[first, first + n)` into per-chunk word runs and calls
/// `f(chunk index, first word in chunk, first bit in that word, number of pages)`.
fn for_each_run(first: u64, n: u64, mut f: impl FnMut(usize, usize, u32, u64)) {
    let mut page = first;
    let end = first + n;
    while page < end {
        let chunk = (page / DIRTY_CHUNK_PAGES) as usize;
        let in_chunk = page % DIRTY_CHUNK_PAGES;
        let run = (DIRTY_CHUNK_PAGES - in_chunk).min(end - page);
        f(chunk, (in_chunk / 64) as usize, (in_chunk % 64) as u32, run);
        page += run;
    }
}

/// Bit mask of `count` bits starting at `bit` (count <= 64 - bit).
#[inline]
fn bits(bit: u32, count: u64) -> u64 {
    if count >= 64 {
        u64::MAX
    } else {
        ((1u64 << count) - 1) << bit
    }
}

impl<F: Flavor> DirtyMemory<F> {
    /// Bitmaps covering the first chunk of the address space ([`DIRTY_CHUNK_PAGES`]
    /// pages, 128 MiB): every list gets blocks, and its first ones then cost no RCU copy
    /// of the arrays (nor a callback to free the old ones).
    pub(crate) fn new(domain: &Domain<F>) -> Self {
        let first = Arrays {
            clients: [
                Box::new([new_chunk()]),
                Box::new([new_chunk()]),
                Box::new([new_chunk()]),
            ],
        };
        DirtyMemory {
            arrays: RcuBox::new_in(first.clone(), domain),
            shadow: Mutex::new(first),
        }
    }

    #[inline(always)]
    fn load<'g>(&'g self, guard: &'g ReadGuard<'_, F>) -> &'g Arrays {
        self.arrays.load(guard)
    }

    /// Pages covered by the bitmaps (a multiple of [`DIRTY_CHUNK_PAGES`]).
    pub fn pages(&self, guard: &ReadGuard<'_, F>) -> u64 {
        self.load(guard).pages()
    }

    /// `dirty_memory_extend`: make the bitmaps cover `end` bytes of ram address space.
    /// Writer side (the caller holds the list's writer lock).
    pub(crate) fn extend(&self, end: u64) {
        let mut shadow = lock(&self.shadow);
        let want_chunks = end.div_ceil(PAGE_SIZE).div_ceil(DIRTY_CHUNK_PAGES) as usize;
        if want_chunks <= shadow.clients[0].len() {
            return;
        }
        let grow = |old: &[Chunk]| -> Box<[Chunk]> {
            let mut v: Vec<Chunk> = Vec::with_capacity(want_chunks);
            v.extend(old.iter().cloned());
            v.resize_with(want_chunks, new_chunk);
            v.into_boxed_slice()
        };
        let new = Arrays {
            clients: [
                grow(&shadow.clients[0]),
                grow(&shadow.clients[1]),
                grow(&shadow.clients[2]),
            ],
        };
        *shadow = new.clone();
        // Publishes with Release (inside `replace`); the old arrays are dropped after a
        // grace period, which only decrements the shared chunks' counts.
        self.arrays.replace(new);
    }

    /// Writer-side `set_range` (no guard: the writer lock keeps the arrays alive).
    pub(crate) fn set_range_locked(&self, start: u64, length: u64, mask: DirtyMask) {
        lock(&self.shadow).set_range(start, length, mask);
    }

    /// Writer-side clear of every client's bits (`cpu_physical_memory_clear_dirty_range`).
    pub(crate) fn clear_range_locked(&self, start: u64, length: u64) {
        let shadow = lock(&self.shadow);
        let first = start / PAGE_SIZE;
        let n = (start + length).div_ceil(PAGE_SIZE).saturating_sub(first);
        for client in DirtyClient::ALL {
            shadow.sync_range(client, first * PAGE_SIZE, n, None);
        }
    }

    /// Sets the bits of every page overlapping `[start, start + length)` for the clients in
    /// `mask` (`cpu_physical_memory_set_dirty_range`). Lock-free: a few atomic `fetch_or`s.
    /// Call it *after* writing the memory. Pages past the bitmaps' end are ignored.
    #[inline]
    pub fn set_range(&self, start: u64, length: u64, mask: DirtyMask, guard: &ReadGuard<'_, F>) {
        self.load(guard).set_range(start, length, mask);
    }

    /// Sets one page's bit for the clients in `mask`: the vCPU fast path.
    #[inline(always)]
    pub fn set_page(&self, addr: u64, mask: DirtyMask, guard: &ReadGuard<'_, F>) {
        let a = self.load(guard);
        let page = addr / PAGE_SIZE;
        let c = (page / DIRTY_CHUNK_PAGES) as usize;
        let i = page % DIRTY_CHUNK_PAGES;
        for client in DirtyClient::ALL {
            if mask.contains(client) {
                if let Some(chunk) = a.clients[client as usize].get(c) {
                    // Release: as in `set_range`.
                    chunk[(i / 64) as usize].fetch_or(1 << (i % 64), Ordering::Release);
                }
            }
        }
    }

    /// Whether the page containing `addr` is dirty for `client`
    /// (`cpu_physical_memory_get_dirty_flag`).
    pub fn get(&self, client: DirtyClient, addr: u64, guard: &ReadGuard<'_, F>) -> bool {
        let a = self.load(guard);
        let page = addr / PAGE_SIZE;
        let c = (page / DIRTY_CHUNK_PAGES) as usize;
        let i = page % DIRTY_CHUNK_PAGES;
        a.clients[client as usize].get(c).is_some_and(|chunk| {
            // Acquire: a set bit makes the data written before it visible.
            chunk[(i / 64) as usize].load(Ordering::Acquire) & (1 << (i % 64)) != 0
        })
    }

    /// Clears `client`'s bits for the pages overlapping `[start, start + length)` and
    /// returns whether any was set (`cpu_physical_memory_test_and_clear_dirty`).
    pub fn test_and_clear(
        &self,
        client: DirtyClient,
        start: u64,
        length: u64,
        guard: &ReadGuard<'_, F>,
    ) -> bool {
        if length == 0 {
            return false;
        }
        let first = start / PAGE_SIZE;
        let last = start.saturating_add(length - 1) / PAGE_SIZE;
        self.load(guard)
            .sync_range(client, first * PAGE_SIZE, last - first + 1, None)
            > 0
    }

    /// Moves `client`'s dirty bits of the `into.pages()` pages starting at page-aligned ram
    /// address `start` into `into` (bit `i` for page `i` of the range, OR-ed in), clearing
    /// them, and returns how many of those pages were dirty. QEMU's
    /// `cpu_physical_memory_sync_dirty_bitmap`: whole words are taken with one atomic swap
    /// when the range is word aligned (blocks are 256 KiB aligned, so theirs are). The
    /// bitmap sets the range, so no bit is ever cleared that the caller has no room for.
    pub fn sync_range(
        &self,
        client: DirtyClient,
        start: u64,
        into: &mut PageBitmap,
        guard: &ReadGuard<'_, F>,
    ) -> u64 {
        let pages = into.pages();
        self.load(guard)
            .sync_range(client, start, pages, Some(into))
    }

    /// Number of dirty pages for `client` in `[start, start + npages pages)`, without
    /// clearing.
    pub fn count(
        &self,
        client: DirtyClient,
        start: u64,
        npages: u64,
        guard: &ReadGuard<'_, F>,
    ) -> u64 {
        self.load(guard).count(client, start, npages)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use rcu_core::Memb;

    #[test]
    fn set_get_clear_and_grow() {
        let d: Domain<Memb> = Domain::new();
        let r = d.register();
        let dm = DirtyMemory::new(&d);
        let g = r.read_lock();
        assert_eq!(dm.pages(&g), DIRTY_CHUNK_PAGES);
        dm.set_page(DIRTY_CHUNK_PAGES * PAGE_SIZE, DirtyMask::ALL, &g); // beyond the end: ignored
        dm.set_range(DIRTY_CHUNK_PAGES * PAGE_SIZE, 10, DirtyMask::ALL, &g);
        dm.extend(PAGE_SIZE * 10); // covered already
        drop(g);
        let g = r.read_lock();
        assert_eq!(dm.pages(&g), DIRTY_CHUNK_PAGES);
        assert_eq!(dm.count(DirtyClient::Vga, 0, DIRTY_CHUNK_PAGES, &g), 0);
        dm.set_range(PAGE_SIZE * 3 + 5, PAGE_SIZE, DirtyMask::NOCODE, &g);
        assert!(dm.get(DirtyClient::Vga, PAGE_SIZE * 3, &g));
        assert!(dm.get(DirtyClient::Migration, PAGE_SIZE * 4, &g));
        assert!(!dm.get(DirtyClient::Code, PAGE_SIZE * 4, &g));
        assert!(!dm.get(DirtyClient::Vga, PAGE_SIZE * 5, &g));
        assert_eq!(dm.count(DirtyClient::Vga, 0, 100, &g), 2);
        assert!(dm.test_and_clear(DirtyClient::Vga, PAGE_SIZE * 4, 1, &g));
        assert!(!dm.test_and_clear(DirtyClient::Vga, PAGE_SIZE * 4, 1, &g));
        assert_eq!(dm.count(DirtyClient::Vga, 0, 100, &g), 1);
        // Grow: existing bits survive (chunks are shared).
        dm.extend(PAGE_SIZE * (DIRTY_CHUNK_PAGES * 2 + 1));
        dm.clear_range_locked(PAGE_SIZE * 3 + 1, 1);
        assert!(!dm.get(DirtyClient::Migration, PAGE_SIZE * 3, &g));
        dm.set_range_locked(PAGE_SIZE * 3, 1, DirtyMask::ALL);
        drop(g);
        let g = r.read_lock();
        assert_eq!(dm.pages(&g), DIRTY_CHUNK_PAGES * 3);
        assert!(dm.get(DirtyClient::Migration, PAGE_SIZE * 3, &g));
        // A range across a chunk boundary, unaligned.
        let s = (DIRTY_CHUNK_PAGES - 70) * PAGE_SIZE;
        dm.set_range(s, 140 * PAGE_SIZE, DirtyMask::ALL, &g);
        let mut out = PageBitmap::new(140);
        let n = dm.sync_range(DirtyClient::Code, s, &mut out, &g);
        assert_eq!(n, 140);
        assert_eq!(out.words(), [u64::MAX, u64::MAX, (1 << 12) - 1]);
        assert_eq!(dm.count(DirtyClient::Code, 0, DIRTY_CHUNK_PAGES * 3, &g), 1); // page 3
        assert_eq!(dm.count(DirtyClient::Vga, s, 140, &g), 140);
        drop(g);
        d.barrier();
    }

    #[test]
    fn mask_debug() {
        assert_eq!(format!("{:?}", DirtyMask::NOCODE), "{Vga, Migration}");
        assert!(DirtyMask::NONE
            .union(DirtyClient::Code.mask())
            .contains(DirtyClient::Code));
    }

    /// Issue 11, item 6: a sync never clears a dirty bit it cannot hand over. 256 dirty
    /// pages synced in two steps through bitmaps of 64 and 256 pages: 64, then the other
    /// 192 (with `&mut [u64]` of one word, QEMU-style, the 192 were cleared and lost).
    #[test]
    fn sync_range_loses_no_dirty_bit() {
        let d: Domain<Memb> = Domain::new();
        let r = d.register();
        let dm = DirtyMemory::new(&d);
        dm.extend(PAGE_SIZE * 1024);
        let g = r.read_lock();
        let start = PAGE_SIZE * 64;
        dm.set_range(start, 256 * PAGE_SIZE, DirtyMask::ALL, &g);
        let mut small = PageBitmap::new(64);
        assert_eq!(
            dm.sync_range(DirtyClient::Migration, start, &mut small, &g),
            64
        );
        assert_eq!(small.count(), 64);
        assert_eq!(dm.count(DirtyClient::Migration, start, 256, &g), 192);
        let mut all = PageBitmap::new(256);
        assert_eq!(
            dm.sync_range(DirtyClient::Migration, start, &mut all, &g),
            192
        );
        assert_eq!((all.count(), all.next_set(0)), (192, Some(64)));
        assert_eq!(small.count() + all.count(), 256);
        assert!(dm.test_and_clear(DirtyClient::Vga, start, 256 * PAGE_SIZE, &g));
        assert_eq!(dm.count(DirtyClient::Vga, 0, 1024, &g), 0);
        drop(g);
        d.barrier();
    }
}
