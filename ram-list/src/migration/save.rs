//! [`RamSaver`]: the source side of the RAM section (QEMU's `RAMState` with
//! `ram_save_setup`, `ram_save_iterate`, `ram_save_complete` and
//! `migration_bitmap_sync`). Sending the pages is in `send.rs`.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use rcu_core::{Flavor, ReadGuard};

use super::error::SaveError;
use super::format::{BlockEntry, RamRecord};
use super::options::SaveOptions;
use super::stats::{IterateStatus, SaveStats};
use crate::bitmap::PageBitmap;
use crate::block::RamBlock;
use crate::dirty::DirtyClient;
use crate::memory::PAGE_SIZE;
use crate::RamList;

/// One block as the saver (and so the destination) knows it: plain data, no reference.
#[derive(Debug, Clone)]
pub(super) struct SaveBlock {
    pub(super) idstr: String,
    pub(super) offset: u64,
    pub(super) used_length: u64,
    /// Migration bitmap (QEMU's `rb->bmap`): bit `i` = page `i` still to send.
    pub(super) bitmap: PageBitmap,
}

impl SaveBlock {
    fn all_dirty(idstr: String, offset: u64, used_length: u64) -> Self {
        SaveBlock {
            idstr,
            offset,
            used_length,
            bitmap: PageBitmap::full(used_length / PAGE_SIZE),
        }
    }
}

/// The save side of the RAM section: QEMU's `RAMState` with `ram_save_setup`,
/// `ram_save_iterate`, `ram_save_complete` and `migration_bitmap_sync`.
///
/// Each call runs inside the caller's read-side critical section and keeps no block
/// reference across calls (see the [module docs](super)).
///
/// ```
/// use rcu_core::{Domain, Memb};
/// use ram_list::migration::{load, LoadOptions, MigrationWriter, SaveOptions};
/// use ram_list::RamList;
///
/// let domain: Domain<Memb> = Domain::new();
/// let reader = domain.register();
/// let src = RamList::new_in(&domain);
/// let addr = src.alloc_named("pc.ram", 64 * 4096).unwrap();
/// src.write(addr + 4096, b"hello", &reader.read_lock()).unwrap();
///
/// // Source: setup, one iteration, complete, into any `Write`.
/// let mut out = MigrationWriter::new(Vec::new(), "demo", SaveOptions::default()).unwrap();
/// out.setup(&src, &reader.read_lock()).unwrap();
/// out.iterate(&src, u64::MAX, &reader.read_lock()).unwrap();
/// let stream = out.complete(&src, &reader.read_lock()).unwrap();
///
/// // Destination: a list with the same block, loaded from any `Read`.
/// let dst = RamList::new_in(&domain);
/// dst.alloc_named("pc.ram", 64 * 4096).unwrap();
/// let report = load(&dst, &stream[..], &LoadOptions::default(), &reader).unwrap();
/// assert_eq!(report.stats.data_pages, 1);
/// let mut buf = [0u8; 5];
/// let g = reader.read_lock();
/// dst.block_by_name("pc.ram", &g).unwrap().read(4096, &mut buf).unwrap();
/// assert_eq!(&buf, b"hello");
/// ```
#[derive(Debug)]
pub struct RamSaver {
    pub(super) opts: SaveOptions,
    set_up: bool,
    /// `ram_list.version` when `blocks` was built (QEMU's `last_version`).
    last_version: u64,
    pub(super) blocks: Vec<SaveBlock>,
    /// Resume position: (index into `blocks`, page), QEMU's `last_seen_block`/`last_page`
    /// as plain data.
    pub(super) pos: (usize, u64),
    /// A `MEM_SIZE` record is owed to the destination before the next page.
    pub(super) mem_size_owed: bool,
    /// Strict mode saw the block set change: every later call fails the same way.
    failed: Option<String>,
    pub(super) stats: SaveStats,
    /// Small records (MEM_SIZE, EOS) waiting to be written.
    pub(super) buf: Vec<u8>,
    /// The parallel mode's batch buffer, reused between calls.
    #[cfg(feature = "rayon")]
    pub(super) par_buf: Vec<u8>,
}

impl RamSaver {
    /// A saver with `opts`; nothing is written until [`RamSaver::setup`].
    pub fn new(opts: SaveOptions) -> Self {
        RamSaver {
            opts,
            set_up: false,
            last_version: 0,
            blocks: Vec::new(),
            pos: (0, 0),
            mem_size_owed: false,
            failed: None,
            stats: SaveStats::default(),
            buf: Vec::new(),
            #[cfg(feature = "rayon")]
            par_buf: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SaveStats {
        self.stats
    }

    /// Dirty pages waiting to be sent (QEMU's `ram_bytes_remaining() / page size`).
    pub fn remaining(&self) -> u64 {
        self.blocks.iter().map(|b| b.bitmap.count()).sum()
    }

    /// `(idstr, used_length)` of every block the destination has been told about.
    pub fn blocks(&self) -> Vec<(String, u64)> {
        self.blocks
            .iter()
            .map(|b| (b.idstr.clone(), b.used_length))
            .collect()
    }

    /// `ram_save_setup`: write `total | MEM_SIZE`, the block list and EOS; every page of
    /// every block starts dirty (the bulk stage), and the global MIGRATION dirty bits of
    /// the blocks are cleared (they are covered by the bulk stage).
    pub fn setup<F: Flavor, W: Write + ?Sized>(
        &mut self,
        list: &RamList<F>,
        w: &mut W,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        list.check_guard(guard);
        // Acquire, and before the traversal: every list change covered by this version
        // is visible to the traversal below (pairs with the writer's Release bump).
        self.last_version = list.version();
        self.blocks = migratable(list, guard)
            .map(|(b, idstr)| SaveBlock::all_dirty(idstr.to_owned(), b.offset(), b.used_length()))
            .collect();
        for b in &mut self.blocks {
            // Into a full bitmap: the global bits are only cleared.
            list.dirty()
                .sync_range(DirtyClient::Migration, b.offset, &mut b.bitmap, guard);
        }
        self.pos = (0, 0);
        self.set_up = true;
        let start = self.stats.bytes;
        self.write_mem_size();
        RamRecord::Eos.encode(&mut self.buf, false);
        self.flush(w)?;
        Ok(IterateStatus {
            pages: 0,
            bytes: self.stats.bytes - start,
            remaining: self.remaining(),
        })
    }

    /// `migration_bitmap_sync`: move the global MIGRATION dirty bits of every block into
    /// the migration bitmaps; returns the number of pages now waiting. Starts a new pass.
    pub fn sync<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<u64, SaveError> {
        let live = self.live(list, guard)?;
        self.sync_live(list, &live, guard);
        Ok(self.remaining())
    }

    fn sync_live<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        live: &[&RamBlock],
        guard: &ReadGuard<'_, F>,
    ) {
        let before = self.remaining();
        for (b, _) in self.blocks.iter_mut().zip(live) {
            list.dirty()
                .sync_range(DirtyClient::Migration, b.offset, &mut b.bitmap, guard);
        }
        self.stats.syncs += 1;
        self.stats.dirtied_pages += self.remaining().saturating_sub(before);
        // A new pass starts where the last one stopped (QEMU keeps last_seen_block).
    }

    /// `ram_save_iterate`: send dirty pages (syncing first if none is waiting) until about
    /// `max_bytes` have been written, then EOS.
    pub fn iterate<F: Flavor, W: Write + ?Sized>(
        &mut self,
        list: &RamList<F>,
        w: &mut W,
        max_bytes: u64,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        let live = self.live(list, guard)?;
        if self.remaining() == 0 {
            self.sync_live(list, &live, guard);
        }
        self.send(w, &live, max_bytes)
    }

    /// `ram_save_complete`: a final sync, then every dirty page, then EOS. Call it with
    /// the vCPUs stopped.
    pub fn complete<F: Flavor, W: Write + ?Sized>(
        &mut self,
        list: &RamList<F>,
        w: &mut W,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        let live = self.live(list, guard)?;
        self.sync_live(list, &live, guard);
        self.send(w, &live, u64::MAX)
    }

    /// The checks every call after setup starts with, then the live blocks.
    fn live<'g, F: Flavor>(
        &mut self,
        list: &'g RamList<F>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<Vec<&'g RamBlock>, SaveError> {
        list.check_guard(guard);
        if !self.set_up {
            return Err(SaveError::NotSetUp);
        }
        self.refresh(list, guard)
    }

    /// Resolve `blocks` to live blocks by idstr, rebuilding them (and restarting the
    /// round) when the list's version changed.
    fn refresh<'g, F: Flavor>(
        &mut self,
        list: &'g RamList<F>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<Vec<&'g RamBlock>, SaveError> {
        if let Some(idstr) = &self.failed {
            return Err(SaveError::BlockSetChanged {
                idstr: idstr.clone(),
            });
        }
        let mut v = list.version();
        if v == self.last_version {
            if let Some(live) = self.resolve(list, guard) {
                return Ok(live);
            }
            // A change whose version bump we have not seen yet: same as a new version.
        }
        loop {
            self.rebuild(list, guard, v)?;
            if let Some(live) = self.resolve(list, guard) {
                return Ok(live);
            }
            // Changed again while we looked: try with the newer version.
            v = list.version();
        }
    }

    fn resolve<'g, F: Flavor>(
        &self,
        list: &'g RamList<F>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Option<Vec<&'g RamBlock>> {
        let by_name: HashMap<&str, &RamBlock> = migratable(list, guard)
            .map(|(b, idstr)| (idstr, b))
            .collect();
        self.blocks
            .iter()
            .map(|sb| {
                by_name
                    .get(sb.idstr.as_str())
                    .copied()
                    .filter(|b| b.offset() == sb.offset && b.used_length() == sb.used_length)
            })
            .collect()
    }

    fn rebuild<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
        version: u64,
    ) -> Result<(), SaveError> {
        let mut old: HashMap<String, SaveBlock> = self
            .blocks
            .drain(..)
            .map(|b| (b.idstr.clone(), b))
            .collect();
        let mut changed: Option<String> = None;
        let mut new = Vec::new();
        for (b, idstr) in migratable(list, guard) {
            match old.remove(idstr) {
                Some(sb) if sb.offset == b.offset() && sb.used_length == b.used_length() => {
                    new.push(sb)
                }
                _ => {
                    changed.get_or_insert_with(|| idstr.to_owned());
                    new.push(SaveBlock::all_dirty(
                        idstr.to_owned(),
                        b.offset(),
                        b.used_length(),
                    ));
                }
            }
        }
        if let Some(gone) = old.into_keys().next() {
            changed.get_or_insert(gone);
        }
        self.last_version = version;
        self.stats.round_restarts += 1;
        self.pos = (0, 0);
        self.blocks = new;
        if let Some(idstr) = changed {
            if !self.opts.mirror_block_changes {
                self.failed = Some(idstr.clone());
                return Err(SaveError::BlockSetChanged { idstr });
            }
            self.mem_size_owed = true;
        }
        Ok(())
    }

    /// Queue a `MEM_SIZE` record listing `blocks`.
    pub(super) fn write_mem_size(&mut self) {
        let entries = self
            .blocks
            .iter()
            .map(|b| BlockEntry {
                idstr: b.idstr.clone(),
                length: b.used_length,
                offset: 0,
            })
            .collect();
        RamRecord::MemSize(entries).encode(&mut self.buf, self.opts.ignore_shared);
        self.stats.mem_size_records += 1;
        self.mem_size_owed = false;
    }

    /// Write the queued small records.
    pub(super) fn flush<W: Write + ?Sized>(&mut self, w: &mut W) -> Result<(), SaveError> {
        self.stats.bytes += self.buf.len() as u64;
        let r = w.write_all(&self.buf);
        self.buf.clear();
        r.map_err(SaveError::Io)
    }
}

/// The blocks a migration sends, with their idstr (read once: a concurrent unplug may
/// clear it): those with an idstr (QEMU's `RAMBLOCK_FOREACH_MIGRATABLE`; a block gets its
/// idstr when it is registered for migration), each idstr once.
///
/// A traversal can meet one idstr twice: when a block is unplugged and another plugged
/// under its name while the traversal stands between the two in the list (the new block
/// is linked further on). Only the first is kept: the change bumped the version, so the
/// next call rebuilds the block list anyway, and the destination never sees a name twice
/// in a `MEM_SIZE` record.
fn migratable<'g, F: Flavor>(
    list: &'g RamList<F>,
    guard: &'g ReadGuard<'_, F>,
) -> impl Iterator<Item = (&'g RamBlock, &'g str)> + 'g {
    let mut seen: HashSet<&'g str> = HashSet::new();
    list.iter(guard).filter_map(move |b| {
        let idstr = b.idstr();
        let keep = !idstr.is_empty() && seen.insert(idstr);
        #[cfg(all(test, not(loom)))]
        tests::visited(b);
        keep.then_some((b, idstr))
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::cell::RefCell;

    use super::*;
    use crate::migration::{RamRecord, RecordDecoder};
    use crate::stream::CountingReader;
    use crate::testing::{setup, KIB, MIB};

    type VisitHook = Option<Box<dyn FnMut(&RamBlock)>>;

    std::thread_local! {
        /// Runs for each block the saver's traversal has visited (and read the idstr of).
        static VISIT: RefCell<VisitHook> = const { RefCell::new(None) };
    }

    pub(super) fn visited(b: &RamBlock) {
        VISIT.with(|h| {
            if let Some(f) = h.borrow_mut().as_mut() {
                f(b);
            }
        });
    }

    /// Issue 11, item 8, forced: while `setup` stands on block "d", "d" is unplugged and a
    /// smaller block is plugged under the same name (so it is linked after the traversal's
    /// position, and the traversal meets "d" twice). The `MEM_SIZE` record still names each
    /// block once, and the next call resends the block list.
    #[test]
    fn setup_lists_each_idstr_once_when_a_name_is_reused_during_its_traversal() {
        let (d, l) = setup();
        let r = d.register();
        l.alloc_named("a", 4 * MIB).unwrap();
        let x = l.alloc_named("d", MIB).unwrap();
        l.alloc_named("s", 256 * KIB).unwrap();
        let mut fired = false;
        let list = std::sync::Arc::new(l);
        let hooked = list.clone();
        VISIT.with(|h| {
            *h.borrow_mut() = Some(Box::new(move |b: &RamBlock| {
                if b.idstr() == "d" && !fired {
                    fired = true;
                    hooked.unplug(x).unwrap();
                    hooked.alloc_named("d", 64 * KIB).unwrap();
                }
            }))
        });
        let list = &*list;
        let mut saver = RamSaver::new(SaveOptions {
            mirror_block_changes: true,
            ..SaveOptions::default()
        });
        let mut out = Vec::new();
        let g = r.read_lock();
        saver.setup(list, &mut out, &g).unwrap();
        drop(g);
        VISIT.with(|h| h.borrow_mut().take());
        let names: Vec<String> = saver.blocks().into_iter().map(|b| b.0).collect();
        assert_eq!(names, ["a", "d", "s"], "each idstr once");
        let mut dec = RecordDecoder::new(false);
        let mut rd = CountingReader::new(&out[..]);
        match dec.next(&mut rd).unwrap() {
            RamRecord::MemSize(entries) => assert_eq!(entries.len(), 3),
            other => panic!("{other:?}"),
        }
        // The next call sees the new version and sends the block list again.
        let mut out = Vec::new();
        saver.iterate(list, &mut out, 0, &r.read_lock()).unwrap();
        assert_eq!(saver.stats().mem_size_records, 2);
        let sizes: Vec<(String, u64)> = saver.blocks();
        assert!(sizes.contains(&("d".to_owned(), 64 * KIB)), "{sizes:?}");
        drop(r);
        d.barrier();
        d.barrier();
    }
}
