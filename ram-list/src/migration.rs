//! The RAM section of QEMU's migration stream: [`RamSaver`] (`ram_save_setup`,
//! `ram_save_iterate`, `ram_save_complete`) and [`RamLoader`] (`ram_load`), plus the outer
//! `QEVM` framing for whole streams ([`MigrationWriter`], [`load`]).
//!
//! # Format (section "ram", version 4)
//!
//! Every item starts with a big-endian `be64` whose low 12 bits are flags and whose upper
//! bits are an offset (or, for MEM_SIZE, a byte count):
//!
//! | flag | record after the header |
//! |---|---|
//! | `MEM_SIZE` 0x04 | header value = total bytes; then per block: `u8 len`, idstr, `be64 used_length` (`[be64 addr]` with `x-ignore-shared`), until the total is reached |
//! | `ZERO` 0x02 | `[idstr]`, one fill byte: the page is all that byte |
//! | `PAGE` 0x08 | `[idstr]`, 4096 bytes |
//! | `CONTINUE` 0x20 | OR-ed into ZERO/PAGE: same block as the previous page, no idstr |
//! | `EOS` 0x10 | end of this section body |
//!
//! The offset of a ZERO/PAGE record is the page's offset *inside its block*, found by idstr.
//!
//! # Save side and RCU
//!
//! Each `RamSaver` call runs inside one read-side critical section (the caller's guard) and
//! keeps **no block reference across calls**: it keeps plain data (each block's idstr,
//! ram offset, length and migration bitmap, and the resume position as block index and
//! page), and at the start of every call resolves those entries to live blocks by idstr.
//! When the list's `version` changed since the last call, the round restarts (QEMU's
//! `reset_ram_globals`), exactly the reason QEMU keeps `last_version`.
//!
//! # Hotplug during migration
//!
//! QEMU refuses `device_add`/`device_del` while a migration runs, so its RAM stream never
//! sees the block set change. This crate supports it instead, coherently on both sides,
//! with [`SaveOptions::mirror_block_changes`] and [`BlockPolicy::Mirror`]:
//!
//! * the saver notices a new `version` at the start of a call, re-reads the block list in
//!   its critical section (reading `version` *before* the traversal, so a change it misses
//!   shows up as a different version next time), and emits a new `MEM_SIZE` record in the
//!   current section before any page of a new block;
//! * a block keeps its migration bitmap across such a resync only if its idstr, ram offset
//!   and length are unchanged; a new or changed block starts all-dirty, and a removed
//!   block's pending pages are dropped with it (a new block is also born all-dirty in the
//!   global dirty bitmap, as in QEMU's `ram_block_add`);
//! * a mirroring destination treats every `MEM_SIZE` record as the complete block set:
//!   it creates blocks it lacks, resizes or recreates blocks whose length changed, and
//!   frees blocks no longer listed.
//!
//! In the default strict mode both sides behave as QEMU does: a change of the migratable
//! block set during migration is an error on the save side
//! ([`SaveError::BlockSetChanged`]), and the destination only accepts blocks it already
//! has (resizing resizeable ones).
//!
//! # Load side
//!
//! The stream is untrusted: every malformed input is a [`LoadError`], never a panic, and a
//! page is only ever written after checking that it lies inside its block's used length.

use std::collections::HashMap;
use std::error::Error;
use std::fmt;
use std::io::{self, Read, Write};

use rayon::prelude::*;
use rcu_core::{Flavor, ReadGuard, Reader};

use crate::block::RamBlock;
use crate::dirty::DirtyClient;
use crate::memory::{self, PAGE_SIZE, PAGE_WORDS};
use crate::qemu_file::{
    Configuration, CountingReader, QemuFileError, QemuFileReader, SectionKind,
    QEMU_VM_CONFIGURATION, QEMU_VM_EOF, QEMU_VM_FILE_MAGIC, QEMU_VM_FILE_VERSION,
    QEMU_VM_SECTION_END, QEMU_VM_SECTION_FOOTER, QEMU_VM_SECTION_PART, QEMU_VM_SECTION_START,
    QEMU_VM_SUBSECTION,
};
use crate::{RamError, RamList};

/// `RAM_SAVE_FLAG_FULL` (0x01): obsolete, rejected.
pub const RAM_SAVE_FLAG_FULL: u64 = 0x01;
/// `RAM_SAVE_FLAG_ZERO` (0x02): a page filled with one byte.
pub const RAM_SAVE_FLAG_ZERO: u64 = 0x02;
/// `RAM_SAVE_FLAG_MEM_SIZE` (0x04): the block list.
pub const RAM_SAVE_FLAG_MEM_SIZE: u64 = 0x04;
/// `RAM_SAVE_FLAG_PAGE` (0x08): a full page of data.
pub const RAM_SAVE_FLAG_PAGE: u64 = 0x08;
/// `RAM_SAVE_FLAG_EOS` (0x10): end of the section body.
pub const RAM_SAVE_FLAG_EOS: u64 = 0x10;
/// `RAM_SAVE_FLAG_CONTINUE` (0x20): same block as the previous page.
pub const RAM_SAVE_FLAG_CONTINUE: u64 = 0x20;
/// `RAM_SAVE_FLAG_XBZRLE` (0x40): delta-compressed page (not supported).
pub const RAM_SAVE_FLAG_XBZRLE: u64 = 0x40;
/// `RAM_SAVE_FLAG_HOOK` (0x80): RDMA hook (not supported).
pub const RAM_SAVE_FLAG_HOOK: u64 = 0x80;
/// `RAM_SAVE_FLAG_COMPRESS_PAGE` (0x100): zlib-compressed page (not supported).
pub const RAM_SAVE_FLAG_COMPRESS_PAGE: u64 = 0x100;
/// `RAM_SAVE_FLAG_MULTIFD_FLUSH` (0x200): multifd sync point (not supported).
pub const RAM_SAVE_FLAG_MULTIFD_FLUSH: u64 = 0x200;

/// Name of the RAM section in the outer stream.
pub const RAM_SECTION_NAME: &str = "ram";
/// Version of the RAM section format.
pub const RAM_SECTION_VERSION: u32 = 4;
/// Section id the [`MigrationWriter`] gives the RAM section (QEMU's is 2 for `-M none`).
pub const RAM_SECTION_ID: u32 = 2;
/// Most blocks a `MEM_SIZE` record may list before the loader gives up.
pub const MAX_MEM_SIZE_BLOCKS: usize = 4096;

const FLAG_MASK: u64 = PAGE_SIZE - 1;
/// Pages per parallel work item in [`RamSaver`]'s parallel mode.
const PAR_CHUNK_PAGES: usize = 256;

// =====================================================================================
// Save side
// =====================================================================================

/// Errors of the save side.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing the stream failed.
    Io(io::Error),
    /// `iterate`/`complete`/`sync` before `setup`.
    NotSetUp,
    /// The migratable block set changed during migration and
    /// [`SaveOptions::mirror_block_changes`] is off (QEMU forbids hotplug while migrating).
    BlockSetChanged {
        /// The idstr of a block that appeared, disappeared or changed length.
        idstr: String,
    },
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The I/O error itself is the `source()`.
            SaveError::Io(_) => f.write_str("writing the migration stream failed"),
            SaveError::NotSetUp => f.write_str("RAM save iterate/complete before setup"),
            SaveError::BlockSetChanged { idstr } => write!(
                f,
                "RAM block \"{idstr}\" was added, removed or resized during migration"
            ),
        }
    }
}

impl Error for SaveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SaveError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SaveError {
    fn from(e: io::Error) -> Self {
        SaveError::Io(e)
    }
}

/// Options of a [`RamSaver`].
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Follow block hotplug during migration with new `MEM_SIZE` records (module docs);
    /// off: a changed block set is [`SaveError::BlockSetChanged`].
    pub mirror_block_changes: bool,
    /// Write the `be64 addr` field per block in `MEM_SIZE`, as QEMU does with the
    /// `x-ignore-shared` capability (always 0 here: blocks have no guest address).
    pub ignore_shared: bool,
    /// Encode pages on the rayon pool (each worker copies and zero-checks its share of
    /// the pages; the caller writes the buffers in order).
    pub parallel: bool,
}

/// Counters of a [`RamSaver`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Bytes written (section bodies only).
    pub bytes: u64,
    /// Pages sent as PAGE records.
    pub data_pages: u64,
    /// Pages sent as ZERO records.
    pub zero_pages: u64,
    /// Dirty-bitmap syncs (`migration_bitmap_sync`); each starts a pass.
    pub syncs: u64,
    /// Pages found newly dirty by the syncs after setup.
    pub dirtied_pages: u64,
    /// `MEM_SIZE` records written (1 + one per block-set change).
    pub mem_size_records: u64,
    /// Rounds restarted because the list's version changed.
    pub round_restarts: u64,
}

/// What one `iterate`/`complete` call did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IterateStatus {
    /// Pages sent by this call.
    pub pages: u64,
    /// Bytes written by this call.
    pub bytes: u64,
    /// Dirty pages still waiting in the migration bitmaps.
    pub remaining: u64,
}

/// One block as the saver (and so the destination) knows it: plain data, no reference.
#[derive(Debug, Clone)]
struct SaveBlock {
    idstr: String,
    offset: u64,
    used_length: u64,
    /// Migration bitmap (QEMU's `rb->bmap`): bit `i` = page `i` still to send.
    bitmap: Vec<u64>,
    dirty: u64,
}

impl SaveBlock {
    fn pages(&self) -> u64 {
        self.used_length / PAGE_SIZE
    }

    fn all_dirty(idstr: String, offset: u64, used_length: u64) -> Self {
        let pages = used_length / PAGE_SIZE;
        let mut bitmap = vec![u64::MAX; pages.div_ceil(64) as usize];
        if pages % 64 != 0 {
            if let Some(last) = bitmap.last_mut() {
                *last = (1u64 << (pages % 64)) - 1;
            }
        }
        SaveBlock {
            idstr,
            offset,
            used_length,
            bitmap,
            dirty: pages,
        }
    }

    fn recount(&mut self) {
        self.dirty = self.bitmap.iter().map(|w| u64::from(w.count_ones())).sum();
    }

    /// First dirty page at or after `from`.
    fn next_dirty(&self, from: u64) -> Option<u64> {
        let pages = self.pages();
        let mut w = (from / 64) as usize;
        if from >= pages {
            return None;
        }
        let mut word = self.bitmap[w] & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                let p = w as u64 * 64 + u64::from(word.trailing_zeros());
                return (p < pages).then_some(p);
            }
            w += 1;
            if w >= self.bitmap.len() {
                return None;
            }
            word = self.bitmap[w];
        }
    }

    fn clear(&mut self, page: u64) {
        self.bitmap[(page / 64) as usize] &= !(1u64 << (page % 64));
        self.dirty -= 1;
    }
}

/// The save side of the RAM section: QEMU's `RAMState` with `ram_save_setup`,
/// `ram_save_iterate`, `ram_save_complete` and `migration_bitmap_sync`.
///
/// ```
/// use rcu_core::{Domain, Memb};
/// use ram_list::{load, LoadOptions, MigrationWriter, RamList, SaveOptions};
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
    opts: SaveOptions,
    set_up: bool,
    /// `ram_list.version` when `blocks` was built (QEMU's `last_version`).
    last_version: u64,
    blocks: Vec<SaveBlock>,
    /// Resume position: (index into `blocks`, page), QEMU's `last_seen_block`/`last_page`
    /// as plain data.
    pos: (usize, u64),
    /// A `MEM_SIZE` record is owed to the destination before the next page.
    mem_size_owed: bool,
    /// Strict mode saw the block set change: every later call fails the same way.
    failed: Option<String>,
    stats: SaveStats,
    /// Small records (MEM_SIZE, EOS) waiting to be written.
    buf: Vec<u8>,
    /// The parallel mode's batch buffer, reused between calls.
    par_buf: Vec<u8>,
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
            par_buf: Vec::new(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> SaveStats {
        self.stats
    }

    /// Dirty pages waiting to be sent (QEMU's `ram_bytes_remaining() / page size`).
    pub fn remaining(&self) -> u64 {
        self.blocks.iter().map(|b| b.dirty).sum()
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
            .map(|b| SaveBlock::all_dirty(b.idstr().to_owned(), b.offset(), b.used_length()))
            .collect();
        for b in &self.blocks {
            list.dirty()
                .sync_range(DirtyClient::Migration, b.offset, b.pages(), None, guard);
        }
        self.pos = (0, 0);
        self.set_up = true;
        let start = self.stats.bytes;
        self.write_mem_size();
        self.put_be64(RAM_SAVE_FLAG_EOS);
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
        list.check_guard(guard);
        if !self.set_up {
            return Err(SaveError::NotSetUp);
        }
        let live = self.refresh(list, guard)?;
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
            let pages = b.pages();
            list.dirty().sync_range(
                DirtyClient::Migration,
                b.offset,
                pages,
                Some(&mut b.bitmap),
                guard,
            );
            b.recount();
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
        list.check_guard(guard);
        if !self.set_up {
            return Err(SaveError::NotSetUp);
        }
        let live = self.refresh(list, guard)?;
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
        list.check_guard(guard);
        if !self.set_up {
            return Err(SaveError::NotSetUp);
        }
        let live = self.refresh(list, guard)?;
        self.sync_live(list, &live, guard);
        self.send(w, &live, u64::MAX)
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
        let by_name: HashMap<&str, &RamBlock> =
            migratable(list, guard).map(|b| (b.idstr(), b)).collect();
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
        for b in migratable(list, guard) {
            let idstr = b.idstr();
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
        if let Some(idstr) = changed {
            if !self.opts.mirror_block_changes {
                self.blocks = new;
                self.failed = Some(idstr.clone());
                return Err(SaveError::BlockSetChanged { idstr });
            }
            self.mem_size_owed = true;
        }
        self.blocks = new;
        Ok(())
    }

    fn write_mem_size(&mut self) {
        let total: u64 = self.blocks.iter().map(|b| b.used_length).sum();
        self.put_be64(total | RAM_SAVE_FLAG_MEM_SIZE);
        for i in 0..self.blocks.len() {
            let (idstr, len) = (self.blocks[i].idstr.clone(), self.blocks[i].used_length);
            self.put_idstr(&idstr);
            self.put_be64(len);
            if self.opts.ignore_shared {
                self.put_be64(0);
            }
        }
        self.stats.mem_size_records += 1;
        self.mem_size_owed = false;
    }

    fn put_be64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn put_idstr(&mut self, s: &str) {
        // Blocks' idstrs are at most 255 bytes (`set_idstr` enforces it).
        let len = u8::try_from(s.len()).expect("idstr longer than 255 bytes");
        self.buf.push(len);
        self.buf.extend_from_slice(s.as_bytes());
    }

    fn flush<W: Write + ?Sized>(&mut self, w: &mut W) -> Result<(), SaveError> {
        self.stats.bytes += self.buf.len() as u64;
        let r = w.write_all(&self.buf);
        self.buf.clear();
        r.map_err(SaveError::Io)
    }

    /// Send dirty pages from the resume position, wrapping around, until `max_bytes`.
    fn send<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        live: &[&RamBlock],
        max_bytes: u64,
    ) -> Result<IterateStatus, SaveError> {
        let start_bytes = self.stats.bytes;
        let start_pages = self.stats.data_pages + self.stats.zero_pages;
        if self.mem_size_owed {
            self.write_mem_size();
        }
        if self.opts.parallel {
            self.send_parallel(w, live, max_bytes, start_bytes)?;
        } else {
            self.send_serial(w, live, max_bytes, start_bytes)?;
        }
        self.put_be64(RAM_SAVE_FLAG_EOS);
        self.flush(w)?;
        Ok(IterateStatus {
            pages: self.stats.data_pages + self.stats.zero_pages - start_pages,
            bytes: self.stats.bytes - start_bytes,
            remaining: self.remaining(),
        })
    }

    /// The next dirty page from the resume position (wrapping once), cleared.
    fn take_next(&mut self) -> Option<(usize, u64)> {
        if self.blocks.is_empty() || self.remaining() == 0 {
            return None;
        }
        let n = self.blocks.len();
        let (mut bi, mut page) = self.pos;
        if bi >= n {
            (bi, page) = (0, 0);
        }
        for _ in 0..=n {
            if let Some(p) = self.blocks[bi].next_dirty(page) {
                self.blocks[bi].clear(p);
                self.pos = (bi, p + 1);
                return Some((bi, p));
            }
            bi = (bi + 1) % n;
            page = 0;
        }
        None
    }

    fn send_serial<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        live: &[&RamBlock],
        max_bytes: u64,
        start_bytes: u64,
    ) -> Result<(), SaveError> {
        // Pending small records first, then every page record straight from a stack
        // buffer: one copy of each page into the writer (wrap sockets and files in a
        // `BufWriter`).
        self.flush(w)?;
        let mut rec = [0u8; MAX_RECORD];
        let mut last: Option<usize> = None;
        while self.stats.bytes - start_bytes < max_bytes {
            let Some((bi, page)) = self.take_next() else {
                break;
            };
            let cont = last == Some(bi);
            let Some((len, zero)) =
                encode_page(&mut rec, live[bi], &self.blocks[bi].idstr, page, cont)
            else {
                continue;
            };
            last = Some(bi);
            w.write_all(&rec[..len])?;
            self.stats.bytes += len as u64;
            if zero {
                self.stats.zero_pages += 1;
            } else {
                self.stats.data_pages += 1;
            }
        }
        Ok(())
    }

    fn send_parallel<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        live: &[&RamBlock],
        max_bytes: u64,
        start_bytes: u64,
    ) -> Result<(), SaveError> {
        // Batches of pages: picked serially (cheap bitmap scans), encoded in parallel into
        // disjoint slices of one reused buffer (copy + zero check, the expensive part),
        // written in order.
        const BATCH_PAGES: usize = 4096;
        self.flush(w)?;
        let mut items: Vec<(usize, u64)> = Vec::with_capacity(BATCH_PAGES);
        let mut out = std::mem::take(&mut self.par_buf);
        out.resize(BATCH_PAGES * MAX_RECORD, 0);
        let res = self.send_batches(w, live, max_bytes, start_bytes, &mut items, &mut out);
        self.par_buf = out;
        res
    }

    fn send_batches<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        live: &[&RamBlock],
        max_bytes: u64,
        start_bytes: u64,
        items: &mut Vec<(usize, u64)>,
        out: &mut [u8],
    ) -> Result<(), SaveError> {
        let batch_pages = out.len() / MAX_RECORD;
        loop {
            let sent = self.stats.bytes - start_bytes;
            if sent >= max_bytes {
                return Ok(());
            }
            // Never overshoot the budget by more than a batch of small pages.
            let room = ((max_bytes - sent) / (PAGE_SIZE + 9)).max(1) as usize;
            items.clear();
            while items.len() < batch_pages.min(room) {
                match self.take_next() {
                    Some(it) => items.push(it),
                    None => break,
                }
            }
            if items.is_empty() {
                return Ok(());
            }
            let blocks = &self.blocks;
            // (bytes, zero pages, data pages) per chunk.
            let parts: Vec<(usize, u64, u64)> = items
                .par_chunks(PAR_CHUNK_PAGES)
                .zip(out.par_chunks_mut(PAR_CHUNK_PAGES * MAX_RECORD))
                .map(|(chunk, buf)| {
                    let (mut len, mut zero, mut data) = (0, 0, 0);
                    let mut last = None;
                    for &(bi, page) in chunk {
                        let cont = last == Some(bi);
                        let Some((n, z)) = encode_page(
                            &mut buf[len..len + MAX_RECORD],
                            live[bi],
                            &blocks[bi].idstr,
                            page,
                            cont,
                        ) else {
                            continue;
                        };
                        last = Some(bi);
                        len += n;
                        if z {
                            zero += 1;
                        } else {
                            data += 1;
                        }
                    }
                    (len, zero, data)
                })
                .collect();
            for (i, (len, zero, data)) in parts.into_iter().enumerate() {
                let at = i * PAR_CHUNK_PAGES * MAX_RECORD;
                w.write_all(&out[at..at + len])?;
                self.stats.bytes += len as u64;
                self.stats.zero_pages += zero;
                self.stats.data_pages += data;
            }
        }
    }
}

/// Largest page record: header, idstr, 4096 bytes.
const MAX_RECORD: usize = 8 + 1 + 255 + PAGE_SIZE as usize;

/// Encode one page record into `out` (at least [`MAX_RECORD`] bytes); returns its length
/// and whether it is a zero page. QEMU's `save_zero_page` / `ram_save_page` with
/// `save_page_header`. `None` if the page is no longer inside the block (a concurrent
/// `resize` shrank it: the resize bumped the version, so the next call resyncs the block
/// and sends it again).
#[inline]
fn encode_page(
    out: &mut [u8],
    block: &RamBlock,
    idstr: &str,
    page: u64,
    cont: bool,
) -> Option<(usize, bool)> {
    let offset = page * PAGE_SIZE;
    let words = block.page_words(offset)?;
    let zero = memory::words_are_zero(words);
    let mut header = offset
        | if zero {
            RAM_SAVE_FLAG_ZERO
        } else {
            RAM_SAVE_FLAG_PAGE
        };
    if cont {
        header |= RAM_SAVE_FLAG_CONTINUE;
    }
    out[..8].copy_from_slice(&header.to_be_bytes());
    let mut len = 8;
    if !cont {
        out[8] = idstr.len() as u8;
        out[9..9 + idstr.len()].copy_from_slice(idstr.as_bytes());
        len += 1 + idstr.len();
    }
    if zero {
        out[len] = 0;
        Some((len + 1, true))
    } else {
        memory::load_words(words, &mut out[len..len + PAGE_SIZE as usize]);
        Some((len + PAGE_SIZE as usize, false))
    }
}

/// The blocks a migration sends: those with an idstr (QEMU's `RAMBLOCK_FOREACH_MIGRATABLE`;
/// a block gets its idstr when it is registered for migration).
fn migratable<'g, F: Flavor>(
    list: &'g RamList<F>,
    guard: &'g ReadGuard<'_, F>,
) -> impl Iterator<Item = &'g RamBlock> + 'g {
    list.iter(guard).filter(|b| !b.idstr().is_empty())
}

// =====================================================================================
// Outer stream writer
// =====================================================================================

/// Writes a whole migration stream in QEMU's outer format: the `QEVM` header, a
/// configuration record, the "ram" section as START (setup), PART (each iteration) and
/// END (complete) records with their footers, and the EOF record.
#[derive(Debug)]
pub struct MigrationWriter<W: Write> {
    w: W,
    saver: RamSaver,
}

impl<W: Write> MigrationWriter<W> {
    /// Write the header and a configuration record naming `machine` (with the
    /// `configuration/capabilities` subsection listing `x-ignore-shared` when
    /// [`SaveOptions::ignore_shared`] is set).
    pub fn new(mut w: W, machine: &str, opts: SaveOptions) -> io::Result<Self> {
        let mut head = Vec::with_capacity(16 + machine.len());
        head.extend_from_slice(&QEMU_VM_FILE_MAGIC.to_be_bytes());
        head.extend_from_slice(&QEMU_VM_FILE_VERSION.to_be_bytes());
        head.push(QEMU_VM_CONFIGURATION);
        head.extend_from_slice(&(machine.len() as u32).to_be_bytes());
        head.extend_from_slice(machine.as_bytes());
        if opts.ignore_shared {
            // The `configuration/capabilities` subsection, as QEMU writes it, so that the
            // destination knows MEM_SIZE entries carry the extra `be64 addr`.
            const SUB: &str = "configuration/capabilities";
            const CAP: &str = "x-ignore-shared";
            head.push(QEMU_VM_SUBSECTION);
            head.push(SUB.len() as u8);
            head.extend_from_slice(SUB.as_bytes());
            head.extend_from_slice(&1u32.to_be_bytes());
            head.extend_from_slice(&1u32.to_be_bytes());
            head.push(CAP.len() as u8);
            head.extend_from_slice(CAP.as_bytes());
        }
        w.write_all(&head)?;
        Ok(MigrationWriter {
            w,
            saver: RamSaver::new(opts),
        })
    }

    /// The RAM saver (statistics, remaining pages).
    pub fn saver(&self) -> &RamSaver {
        &self.saver
    }

    /// The RAM saver, for [`RamSaver::sync`].
    pub fn saver_mut(&mut self) -> &mut RamSaver {
        &mut self.saver
    }

    /// The underlying writer.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.w
    }

    fn header(&mut self, kind: u8) -> io::Result<()> {
        let mut h = Vec::with_capacity(24);
        h.push(kind);
        h.extend_from_slice(&RAM_SECTION_ID.to_be_bytes());
        if kind == QEMU_VM_SECTION_START {
            h.push(RAM_SECTION_NAME.len() as u8);
            h.extend_from_slice(RAM_SECTION_NAME.as_bytes());
            h.extend_from_slice(&0u32.to_be_bytes());
            h.extend_from_slice(&RAM_SECTION_VERSION.to_be_bytes());
        }
        self.w.write_all(&h)
    }

    fn footer(&mut self) -> io::Result<()> {
        let mut f = [0u8; 5];
        f[0] = QEMU_VM_SECTION_FOOTER;
        f[1..].copy_from_slice(&RAM_SECTION_ID.to_be_bytes());
        self.w.write_all(&f)
    }

    /// The START section: [`RamSaver::setup`].
    pub fn setup<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        self.header(QEMU_VM_SECTION_START)?;
        let st = self.saver.setup(list, &mut self.w, guard)?;
        self.footer()?;
        Ok(st)
    }

    /// One PART section: [`RamSaver::iterate`].
    pub fn iterate<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        max_bytes: u64,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        self.header(QEMU_VM_SECTION_PART)?;
        let st = self.saver.iterate(list, &mut self.w, max_bytes, guard)?;
        self.footer()?;
        self.w.flush()?;
        Ok(st)
    }

    /// The END section ([`RamSaver::complete`]) and the EOF record; returns the writer.
    pub fn complete<F: Flavor>(
        mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<W, SaveError> {
        self.complete_in_place(list, guard)?;
        Ok(self.w)
    }

    /// Like [`MigrationWriter::complete`], keeping the writer (and the statistics).
    pub fn complete_in_place<F: Flavor>(
        &mut self,
        list: &RamList<F>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<IterateStatus, SaveError> {
        self.header(QEMU_VM_SECTION_END)?;
        let st = self.saver.complete(list, &mut self.w, guard)?;
        self.footer()?;
        self.w.write_all(&[QEMU_VM_EOF])?;
        self.w.flush()?;
        Ok(st)
    }
}

// =====================================================================================
// Load side
// =====================================================================================

/// Errors of the load side: every malformed stream ends in one of these.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// Framing, truncation or I/O error (with the byte offset), from the stream reader.
    Stream(QemuFileError),
    /// The "ram" section has a version other than 4.
    UnsupportedVersion {
        /// Offset of the section header.
        offset: u64,
        /// The version found.
        version: u32,
    },
    /// A section other than "ram" before the end of the RAM section: its body has no
    /// length, so it cannot be skipped.
    UnexpectedSection {
        /// Offset of the section header.
        offset: u64,
        /// The section's idstr.
        idstr: String,
    },
    /// The stream ended (EOF record) before the RAM section's END.
    MissingRamEnd {
        /// Offset of the EOF record.
        offset: u64,
    },
    /// A block name the destination does not have ("Unknown ramblock").
    UnknownBlock {
        /// Offset of the record.
        offset: u64,
        /// The idstr from the stream.
        idstr: String,
    },
    /// A block whose length differs and cannot be resized ("Length mismatch").
    LengthMismatch {
        /// Offset of the record.
        offset: u64,
        /// The block.
        idstr: String,
        /// Length in the stream.
        stream: u64,
        /// Length of the destination block.
        local: u64,
    },
    /// A resizeable block could not take the stream's length (e.g. "Size too large"),
    /// or a mirrored block could not be created.
    Block {
        /// Offset of the record.
        offset: u64,
        /// The block.
        idstr: String,
        /// Why.
        source: RamError,
    },
    /// A page past the block's used length.
    PageOutOfRange {
        /// Offset of the record.
        offset: u64,
        /// The block.
        idstr: String,
        /// The page's offset in the block.
        addr: u64,
        /// The block's used length.
        used_length: u64,
    },
    /// A page with CONTINUE but no previous page ("Ack, bad migration stream!").
    ContinueWithoutBlock {
        /// Offset of the record.
        offset: u64,
    },
    /// A flag combination that is not a RAM record ("Unknown combination of migration
    /// flags").
    UnknownFlags {
        /// Offset of the record.
        offset: u64,
        /// The flags (`header & 0xfff`).
        flags: u64,
    },
    /// A known record type this loader does not implement (XBZRLE, compression, RDMA,
    /// multifd).
    Unsupported {
        /// Offset of the record.
        offset: u64,
        /// The feature.
        feature: &'static str,
    },
    /// A `MEM_SIZE` list whose lengths do not add up to its total (a block longer than
    /// what remains of the total).
    MemSizeMismatch {
        /// Offset of the block entry.
        offset: u64,
        /// The block entry.
        idstr: String,
        /// Its length.
        length: u64,
        /// What remained of the total.
        remaining: u64,
    },
    /// A `MEM_SIZE` entry that is empty, not page aligned, or listed twice.
    BadBlockEntry {
        /// Offset of the block entry.
        offset: u64,
        /// The block entry.
        idstr: String,
        /// Its length.
        length: u64,
    },
    /// More than [`MAX_MEM_SIZE_BLOCKS`] blocks, or more memory than
    /// [`BlockPolicy::Mirror`] allows.
    TooLarge {
        /// Offset of the record.
        offset: u64,
    },
}

impl LoadError {
    /// Byte offset in the stream of the offending record or field.
    pub fn offset(&self) -> u64 {
        match self {
            LoadError::Stream(e) => e.offset(),
            LoadError::UnsupportedVersion { offset, .. }
            | LoadError::UnexpectedSection { offset, .. }
            | LoadError::MissingRamEnd { offset }
            | LoadError::UnknownBlock { offset, .. }
            | LoadError::LengthMismatch { offset, .. }
            | LoadError::Block { offset, .. }
            | LoadError::PageOutOfRange { offset, .. }
            | LoadError::ContinueWithoutBlock { offset }
            | LoadError::UnknownFlags { offset, .. }
            | LoadError::Unsupported { offset, .. }
            | LoadError::MemSizeMismatch { offset, .. }
            | LoadError::BadBlockEntry { offset, .. }
            | LoadError::TooLarge { offset } => *offset,
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let LoadError::Stream(e) = self {
            return e.fmt(f);
        }
        write!(f, "RAM section, byte offset {}: ", self.offset())?;
        match self {
            LoadError::Stream(_) => Ok(()),
            LoadError::UnsupportedVersion { version, .. } => {
                write!(f, "unsupported RAM section version {version} (expected 4)")
            }
            LoadError::UnexpectedSection { idstr, .. } => {
                write!(f, "section \"{idstr}\" before the end of the RAM section")
            }
            LoadError::MissingRamEnd { .. } => {
                f.write_str("stream ended before the RAM section's END")
            }
            LoadError::UnknownBlock { idstr, .. } => {
                write!(f, "Unknown ramblock \"{idstr}\", cannot accept migration")
            }
            LoadError::LengthMismatch {
                idstr,
                stream,
                local,
                ..
            } => write!(f, "Length mismatch: {idstr}: {stream:#x} in != {local:#x}"),
            // The reason is the `source()`.
            LoadError::Block { idstr, .. } => write!(f, "block \"{idstr}\" rejected"),
            LoadError::PageOutOfRange {
                idstr,
                addr,
                used_length,
                ..
            } => write!(
                f,
                "page offset {addr:#x} is outside block \"{idstr}\" (used length {used_length:#x})"
            ),
            LoadError::ContinueWithoutBlock { .. } => {
                f.write_str("Ack, bad migration stream! (CONTINUE without a previous block)")
            }
            LoadError::UnknownFlags { flags, .. } => {
                write!(f, "Unknown combination of migration flags: {flags:#x}")
            }
            LoadError::Unsupported { feature, .. } => {
                write!(f, "{feature} pages are not supported")
            }
            LoadError::MemSizeMismatch {
                idstr,
                length,
                remaining,
                ..
            } => write!(
                f,
                "MEM_SIZE total does not add up: block \"{idstr}\" of {length:#x} bytes, only {remaining:#x} left"
            ),
            LoadError::BadBlockEntry { idstr, length, .. } => write!(
                f,
                "bad MEM_SIZE entry \"{idstr}\" of {length:#x} bytes (empty, unaligned or repeated)"
            ),
            LoadError::TooLarge { .. } => f.write_str("block list exceeds the loader's limits"),
        }
    }
}

impl Error for LoadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            // `Display` already shows the stream error itself: go on with its cause.
            LoadError::Stream(e) => e.source(),
            LoadError::Block { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<QemuFileError> for LoadError {
    fn from(e: QemuFileError) -> Self {
        LoadError::Stream(e)
    }
}

/// What the destination does with the stream's block list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockPolicy {
    /// QEMU's behaviour: every block must exist with the same idstr; a resizeable one is
    /// resized to the stream's length, any other length mismatch is an error.
    Existing,
    /// Make the destination's block set equal to every `MEM_SIZE` record: create missing
    /// blocks (anonymous memory), resize or recreate changed ones, free unlisted ones.
    Mirror {
        /// Upper bound on the total bytes a `MEM_SIZE` record may ask for.
        max_total_bytes: u64,
    },
}

/// Options of the loader.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How blocks are matched.
    pub policy: BlockPolicy,
    /// `MEM_SIZE` entries carry a `be64 addr` (QEMU's `x-ignore-shared`). [`load`] sets
    /// it from the stream's configuration record.
    pub ignore_shared: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            policy: BlockPolicy::Existing,
            ignore_shared: false,
        }
    }
}

impl LoadOptions {
    /// Options that mirror the source's blocks, up to `max_total_bytes`.
    pub fn mirror(max_total_bytes: u64) -> Self {
        LoadOptions {
            policy: BlockPolicy::Mirror { max_total_bytes },
            ignore_shared: false,
        }
    }
}

/// Pages received for one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockLoadStats {
    /// The block's idstr.
    pub idstr: String,
    /// Length announced by the last `MEM_SIZE` record listing it (0 if never listed).
    pub length: u64,
    /// PAGE records.
    pub data_pages: u64,
    /// ZERO records.
    pub zero_pages: u64,
}

/// Counters of a [`RamLoader`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Section bodies loaded.
    pub sections: u64,
    /// PAGE records.
    pub data_pages: u64,
    /// ZERO records.
    pub zero_pages: u64,
    /// `MEM_SIZE` records.
    pub mem_size_records: u64,
    /// Blocks created, resized or freed by the mirror policy (or resized by the
    /// existing-block policy).
    pub block_changes: u64,
    /// Per block, in order of first appearance.
    pub blocks: Vec<BlockLoadStats>,
}

impl LoadStats {
    fn block_mut(&mut self, idstr: &str) -> &mut BlockLoadStats {
        let i = match self.blocks.iter().position(|b| b.idstr == idstr) {
            Some(i) => i,
            None => {
                self.blocks.push(BlockLoadStats {
                    idstr: idstr.to_owned(),
                    ..Default::default()
                });
                self.blocks.len() - 1
            }
        };
        &mut self.blocks[i]
    }
}

/// The load side of the RAM section (QEMU's `ram_load_precopy`), section body by section
/// body. Keeps the "current block" for CONTINUE across sections by idstr, never by
/// reference.
#[derive(Debug)]
pub struct RamLoader<'l, F: Flavor> {
    list: &'l RamList<F>,
    opts: LoadOptions,
    /// Block of the last page (QEMU's static `block` in `ram_block_from_stream`).
    current: Option<String>,
    /// Index of `current` in `stats.blocks`.
    current_stats: usize,
    stats: LoadStats,
    page: Box<[u8]>,
}

impl<'l, F: Flavor> RamLoader<'l, F> {
    /// A loader into `list`.
    pub fn new(list: &'l RamList<F>, opts: LoadOptions) -> Self {
        RamLoader {
            list,
            opts,
            current: None,
            current_stats: 0,
            stats: LoadStats::default(),
            page: vec![0u8; PAGE_SIZE as usize].into_boxed_slice(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &LoadStats {
        &self.stats
    }

    /// Consume the loader, keeping its counters.
    pub fn into_stats(self) -> LoadStats {
        self.stats
    }

    /// Load one section body, up to and including its EOS. Runs in the caller's
    /// read-side critical section (QEMU: "a long-running RCU critical section").
    pub fn load_section<R: Read>(
        &mut self,
        r: &mut CountingReader<R>,
        guard: &ReadGuard<'_, F>,
    ) -> Result<(), LoadError> {
        self.list.check_guard(guard);
        self.stats.sections += 1;
        // The current block as a reference, valid for this critical section only.
        let mut cur: Option<&RamBlock> = None;
        loop {
            let at = r.offset();
            let header = r.read_be64()?;
            let flags = header & FLAG_MASK;
            let addr = header & !FLAG_MASK;
            match flags & !RAM_SAVE_FLAG_CONTINUE {
                RAM_SAVE_FLAG_EOS => return Ok(()),
                RAM_SAVE_FLAG_MEM_SIZE => {
                    self.mem_size(r, addr, at, guard)?;
                    cur = None;
                }
                RAM_SAVE_FLAG_ZERO | RAM_SAVE_FLAG_PAGE => {
                    let block = if flags & RAM_SAVE_FLAG_CONTINUE != 0 {
                        match cur {
                            Some(b) => b,
                            None => {
                                let name = self
                                    .current
                                    .as_deref()
                                    .ok_or(LoadError::ContinueWithoutBlock { offset: at })?;
                                self.list.block_by_name(name, guard).ok_or_else(|| {
                                    LoadError::UnknownBlock {
                                        offset: at,
                                        idstr: name.to_owned(),
                                    }
                                })?
                            }
                        }
                    } else {
                        let name = r.read_idstr("ramblock idstr")?;
                        let b = self.list.block_by_name(&name, guard).ok_or_else(|| {
                            LoadError::UnknownBlock {
                                offset: at,
                                idstr: name.clone(),
                            }
                        })?;
                        if self.current.as_deref() != Some(name.as_str()) {
                            self.current_stats = self
                                .stats
                                .blocks
                                .iter()
                                .position(|s| s.idstr == name)
                                .unwrap_or_else(|| {
                                    self.stats.block_mut(&name);
                                    self.stats.blocks.len() - 1
                                });
                            self.current = Some(name);
                        }
                        b
                    };
                    cur = Some(block);
                    let Some(words) = block.page_words(addr) else {
                        return Err(LoadError::PageOutOfRange {
                            offset: at,
                            idstr: block.idstr().to_owned(),
                            addr,
                            used_length: block.used_length(),
                        });
                    };
                    if flags & RAM_SAVE_FLAG_ZERO != 0 {
                        let fill = r.read_u8()?;
                        // QEMU's ram_handle_zero: skip the write (and the page fault)
                        // when the page is already zero.
                        if fill != 0 || !memory::words_are_zero(words) {
                            memory::fill_words(words, fill);
                        }
                        self.stats.zero_pages += 1;
                        if let Some(s) = self.stats.blocks.get_mut(self.current_stats) {
                            s.zero_pages += 1;
                        }
                    } else {
                        r.read_bytes(&mut self.page)?;
                        memory::store_words(&words[..PAGE_WORDS], &self.page);
                        self.stats.data_pages += 1;
                        if let Some(s) = self.stats.blocks.get_mut(self.current_stats) {
                            s.data_pages += 1;
                        }
                    }
                }
                RAM_SAVE_FLAG_XBZRLE => {
                    return Err(LoadError::Unsupported {
                        offset: at,
                        feature: "XBZRLE",
                    })
                }
                RAM_SAVE_FLAG_COMPRESS_PAGE => {
                    return Err(LoadError::Unsupported {
                        offset: at,
                        feature: "compressed",
                    })
                }
                RAM_SAVE_FLAG_HOOK => {
                    return Err(LoadError::Unsupported {
                        offset: at,
                        feature: "RDMA hook",
                    })
                }
                RAM_SAVE_FLAG_MULTIFD_FLUSH => {
                    return Err(LoadError::Unsupported {
                        offset: at,
                        feature: "multifd",
                    })
                }
                _ => return Err(LoadError::UnknownFlags { offset: at, flags }),
            }
        }
    }

    /// A `MEM_SIZE` record: parse the whole list, then apply it.
    fn mem_size<R: Read>(
        &mut self,
        r: &mut CountingReader<R>,
        total: u64,
        at: u64,
        guard: &ReadGuard<'_, F>,
    ) -> Result<(), LoadError> {
        self.stats.mem_size_records += 1;
        if let BlockPolicy::Mirror { max_total_bytes } = self.opts.policy {
            if total > max_total_bytes {
                return Err(LoadError::TooLarge { offset: at });
            }
        }
        let mut entries: Vec<(u64, String, u64)> = Vec::new();
        let mut remaining = total;
        while remaining > 0 {
            let eat = r.offset();
            if entries.len() >= MAX_MEM_SIZE_BLOCKS {
                return Err(LoadError::TooLarge { offset: eat });
            }
            let idstr = r.read_idstr("ramblock idstr")?;
            let length = r.read_be64()?;
            if self.opts.ignore_shared {
                let _guest_addr = r.read_be64()?;
            }
            if length > remaining {
                return Err(LoadError::MemSizeMismatch {
                    offset: eat,
                    idstr,
                    length,
                    remaining,
                });
            }
            if length == 0
                || length % PAGE_SIZE != 0
                || idstr.is_empty()
                || entries.iter().any(|(_, n, _)| *n == idstr)
            {
                return Err(LoadError::BadBlockEntry {
                    offset: eat,
                    idstr,
                    length,
                });
            }
            remaining -= length;
            entries.push((eat, idstr, length));
        }
        // The current block may change or disappear.
        self.current = None;
        for (_, idstr, length) in &entries {
            self.stats.block_mut(idstr).length = *length;
        }
        match self.opts.policy {
            BlockPolicy::Existing => self.apply_existing(&entries, guard),
            BlockPolicy::Mirror { .. } => self.apply_mirror(&entries, at),
        }
    }

    fn apply_existing(
        &mut self,
        entries: &[(u64, String, u64)],
        guard: &ReadGuard<'_, F>,
    ) -> Result<(), LoadError> {
        for (eat, idstr, length) in entries {
            let Some(b) = self.list.block_by_name(idstr, guard) else {
                return Err(LoadError::UnknownBlock {
                    offset: *eat,
                    idstr: idstr.clone(),
                });
            };
            if b.used_length() == *length {
                continue;
            }
            if !b.is_resizeable() {
                return Err(LoadError::LengthMismatch {
                    offset: *eat,
                    idstr: idstr.clone(),
                    stream: *length,
                    local: b.used_length(),
                });
            }
            let offset = b.offset();
            self.list
                .lock()
                .resize(offset, *length)
                .map_err(|source| LoadError::Block {
                    offset: *eat,
                    idstr: idstr.clone(),
                    source,
                })?;
            self.stats.block_changes += 1;
        }
        Ok(())
    }

    fn apply_mirror(&mut self, entries: &[(u64, String, u64)], at: u64) -> Result<(), LoadError> {
        let mut w = self.list.lock();
        for (eat, idstr, length) in entries {
            let err = |source| LoadError::Block {
                offset: *eat,
                idstr: idstr.clone(),
                source,
            };
            let existing = w.block_by_name(idstr).map(|b| {
                (
                    b.offset(),
                    b.used_length(),
                    b.max_length(),
                    b.is_resizeable(),
                )
            });
            match existing {
                Some((_, used, _, _)) if used == *length => continue,
                Some((offset, _, max, true)) if *length <= max => {
                    w.resize(offset, *length).map_err(err)?;
                }
                Some((offset, ..)) => {
                    w.free(offset).map_err(err)?;
                    let a = w.alloc(*length).map_err(err)?;
                    w.set_idstr(a, None, idstr).map_err(err)?;
                }
                None => {
                    let a = w.alloc(*length).map_err(err)?;
                    w.set_idstr(a, None, idstr).map_err(err)?;
                }
            }
            self.stats.block_changes += 1;
        }
        let gone: Vec<(u64, String)> = w
            .iter()
            .filter(|b| !b.idstr().is_empty() && !entries.iter().any(|(_, n, _)| n == b.idstr()))
            .map(|b| (b.offset(), b.idstr().to_owned()))
            .collect();
        for (offset, idstr) in gone {
            w.free(offset).map_err(|source| LoadError::Block {
                offset: at,
                idstr,
                source,
            })?;
            self.stats.block_changes += 1;
        }
        Ok(())
    }
}

/// What [`load`] read.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The stream's configuration record, if any.
    pub configuration: Option<Configuration>,
    /// RAM counters.
    pub stats: LoadStats,
    /// Byte offset just after the RAM section's END footer.
    pub end_offset: u64,
}

/// Load the RAM of a whole migration stream (QEMU's outer format, as written by QEMU or by
/// [`MigrationWriter`]) into `list`: finds the "ram" section by name, loads its START,
/// PART and END bodies (one read-side critical section of `reader` per section), and
/// stops after its END. Whatever follows (device sections, EOF) is not read.
///
/// The `x-ignore-shared` capability in the configuration record turns on
/// [`LoadOptions::ignore_shared`].
pub fn load<F: Flavor, R: Read>(
    list: &RamList<F>,
    r: R,
    opts: &LoadOptions,
    reader: &Reader<F>,
) -> Result<LoadReport, LoadError> {
    let mut qf = QemuFileReader::new(r)?;
    let configuration = qf.configuration().cloned();
    let mut opts = opts.clone();
    if let Some(c) = &configuration {
        opts.ignore_shared |= c.has_capability("x-ignore-shared");
    }
    let mut loader = RamLoader::new(list, opts);
    loop {
        let at = qf.offset();
        let Some(h) = qf.next_section()? else {
            return Err(LoadError::MissingRamEnd { offset: at });
        };
        if h.idstr != RAM_SECTION_NAME || h.kind == SectionKind::Full {
            return Err(LoadError::UnexpectedSection {
                offset: h.offset,
                idstr: h.idstr,
            });
        }
        if h.version_id != RAM_SECTION_VERSION {
            return Err(LoadError::UnsupportedVersion {
                offset: h.offset,
                version: h.version_id,
            });
        }
        {
            let guard = reader.read_lock();
            loader.load_section(qf.payload(), &guard)?;
        }
        qf.finish_section(&h)?;
        if h.kind == SectionKind::End {
            return Ok(LoadReport {
                configuration,
                stats: loader.into_stats(),
                end_offset: qf.offset(),
            });
        }
    }
}
