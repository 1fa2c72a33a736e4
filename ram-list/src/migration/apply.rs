//! [`Destination`]: applies decoded RAM records to the destination list (the part of
//! QEMU's `ram_load_precopy` after the parsing). A page is written under one short
//! read-side critical section; a `MEM_SIZE` record is applied under the list's writer lock
//! and no critical section at all.

use std::collections::{HashMap, HashSet};

use core::any::TypeId;

use rcu_core::{Flavor, Qsbr, ReadGuard, Reader};

use super::error::{LoadError, LoadErrorKind};
use super::format::BlockEntry;
use super::names::BlockNames;
use super::options::{BlockPolicy, LoadOptions};
use super::stats::{BlockLoadStats, LoadStats};
use crate::block::RamBlock;
use crate::memory::{self, PAGE_WORDS};
use crate::translator::Sighting;
use crate::RamList;

/// What a page record puts in its page.
#[derive(Debug, Clone, Copy)]
pub(super) enum PageData<'d> {
    /// A PAGE record's 4096 bytes.
    Bytes(&'d [u8]),
    /// A ZERO record's fill byte.
    Fill(u8),
}

/// The block of the last page (QEMU's static `block` in `ram_block_from_stream`), for
/// CONTINUE: kept by name, with a sighting that saves the lookup while the list is
/// unchanged.
#[derive(Debug)]
struct Current {
    name: String,
    sighting: Sighting,
    /// Index of the block in `LoadStats::blocks`.
    stats: usize,
}

/// The destination side of a load: the list, the policy, the counters, and what the
/// loader remembers between records.
#[derive(Debug)]
pub(super) struct Destination<'l, F: Flavor> {
    list: &'l RamList<F>,
    policy: BlockPolicy,
    pub(super) stats: LoadStats,
    /// `stats.blocks` by idstr.
    stats_index: HashMap<String, usize>,
    current: Option<Current>,
    names: BlockNames,
    /// (index in `stats.blocks`, offset) of the last page, for `stats.passes`; `None`
    /// before the first page and after a `MEM_SIZE` record.
    last_page: Option<(usize, u64)>,
}

impl<'l, F: Flavor> Destination<'l, F> {
    pub(super) fn new(list: &'l RamList<F>, opts: &LoadOptions) -> Self {
        Destination {
            list,
            policy: opts.policy,
            stats: LoadStats::default(),
            stats_index: HashMap::new(),
            current: None,
            names: BlockNames::default(),
            last_page: None,
        }
    }

    /// The slot of `idstr` in `stats.blocks`, made on first use.
    fn stats_slot(&mut self, idstr: &str) -> usize {
        if let Some(&i) = self.stats_index.get(idstr) {
            return i;
        }
        self.stats.blocks.push(BlockLoadStats {
            idstr: idstr.to_owned(),
            ..Default::default()
        });
        let i = self.stats.blocks.len() - 1;
        self.stats_index.insert(idstr.to_owned(), i);
        i
    }

    /// A PAGE or ZERO record at stream offset `at`: page `addr` of `block` (`None`:
    /// CONTINUE), written under one critical section of `reader`.
    pub(super) fn page(
        &mut self,
        at: u64,
        block: Option<&str>,
        addr: u64,
        data: PageData<'_>,
        reader: &Reader<F>,
    ) -> Result<(), LoadError> {
        let guard = reader.read_lock();
        let (b, stats) = self.page_block(at, block, &guard)?;
        let Some(words) = b.page_words(addr) else {
            return Err(LoadError::new(
                at,
                LoadErrorKind::PageOutOfRange {
                    idstr: b.idstr().to_owned(),
                    addr,
                    used_length: b.used_length(),
                },
            ));
        };
        if self.last_page.is_none_or(|last| (stats, addr) <= last) {
            self.stats.passes += 1;
        }
        self.last_page = Some((stats, addr));
        let s = &mut self.stats.blocks[stats];
        match data {
            PageData::Bytes(page) => {
                memory::store_words(&words[..PAGE_WORDS], page);
                self.stats.data_pages += 1;
                s.data_pages += 1;
            }
            PageData::Fill(fill) => {
                // QEMU's ram_handle_zero: skip the write (and the page fault) when the
                // page is already zero.
                if fill != 0 || !memory::words_are_zero(words) {
                    memory::fill_words(words, fill);
                }
                self.stats.zero_pages += 1;
                s.zero_pages += 1;
            }
        }
        Ok(())
    }

    /// The block a page record names (or the current one for CONTINUE), which becomes the
    /// current block, and its slot in `stats.blocks`.
    fn page_block<'g>(
        &mut self,
        at: u64,
        block: Option<&str>,
        guard: &'g ReadGuard<'_, F>,
    ) -> Result<(&'g RamBlock, usize), LoadError>
    where
        'l: 'g,
    {
        let list: &'g RamList<F> = self.list;
        let name = match (block, &self.current) {
            (None, None) => return Err(LoadError::new(at, LoadErrorKind::ContinueWithoutBlock)),
            (None, Some(c)) => c.name.as_str(),
            // QEMU's ram_block_from_stream: an unnamed block is never migrated.
            (Some(""), _) => {
                return Err(LoadError::new(
                    at,
                    LoadErrorKind::NotMigratable {
                        idstr: String::new(),
                    },
                ))
            }
            (Some(n), _) => n,
        };
        if let Some(c) = &self.current {
            if c.name == name {
                if let Some(b) = c.sighting.get(list, guard) {
                    return Ok((b, c.stats));
                }
            }
        }
        let Some((b, sighting)) = self.names.find(list, name, guard) else {
            return Err(LoadError::new(
                at,
                LoadErrorKind::UnknownBlock {
                    idstr: name.to_owned(),
                },
            ));
        };
        let name = name.to_owned();
        let stats = self.stats_slot(&name);
        self.current = Some(Current {
            name,
            sighting,
            stats,
        });
        Ok((b, stats))
    }

    /// A `MEM_SIZE` record at stream offset `at`: apply the policy under the writer lock
    /// (no critical section is held; `reader` only tells whether waiting for a grace
    /// period is possible).
    pub(super) fn mem_size(
        &mut self,
        at: u64,
        entries: &[BlockEntry],
        reader: &Reader<F>,
    ) -> Result<(), LoadError> {
        self.stats.mem_size_records += 1;
        // The current block may change or disappear; the source restarts its round.
        self.current = None;
        self.last_page = None;
        for e in entries {
            let i = self.stats_slot(&e.idstr);
            self.stats.blocks[i].length = e.length;
        }
        match self.policy {
            BlockPolicy::Existing => self.apply_existing(entries),
            BlockPolicy::Mirror { max_total_bytes } => {
                let res = self.apply_mirror(at, entries, max_total_bytes, reader);
                let mapped = self.list.mapped_bytes();
                self.stats.peak_mapped_bytes = self.stats.peak_mapped_bytes.max(mapped);
                res
            }
        }
    }

    /// QEMU's rule: every block exists; a resizeable one takes the stream's length.
    fn apply_existing(&mut self, entries: &[BlockEntry]) -> Result<(), LoadError> {
        let mut w = self.list.lock();
        for e in entries {
            let Some(b) = w.block_by_name(&e.idstr) else {
                return Err(LoadError::new(
                    e.offset,
                    LoadErrorKind::UnknownBlock {
                        idstr: e.idstr.clone(),
                    },
                ));
            };
            let (offset, used) = (b.offset(), b.used_length());
            if used == e.length {
                continue;
            }
            if !b.is_resizeable() {
                return Err(LoadError::new(
                    e.offset,
                    LoadErrorKind::LengthMismatch {
                        idstr: e.idstr.clone(),
                        stream: e.length,
                        local: used,
                    },
                ));
            }
            w.resize(offset, e.length)
                .map_err(|source| LoadError::block(e.offset, &e.idstr, source))?;
            self.stats.block_changes += 1;
        }
        Ok(())
    }

    /// Make the block set equal to `entries`, never mapping more than `limit` bytes at a
    /// time: free the blocks that go first, then resize, then (after waiting for the
    /// freed memory to be reclaimed, if it must) create.
    fn apply_mirror(
        &mut self,
        at: u64,
        entries: &[BlockEntry],
        limit: u64,
        reader: &Reader<F>,
    ) -> Result<(), LoadError> {
        let total: u64 = entries.iter().map(|e| e.length).sum();
        if total > limit {
            return Err(LoadError::new(
                at,
                LoadErrorKind::OverMemoryLimit {
                    needed: total,
                    limit,
                },
            ));
        }
        let listed: HashMap<&str, u64> = entries
            .iter()
            .map(|e| (e.idstr.as_str(), e.length))
            .collect();
        let mut w = self.list.lock();
        // Unlisted blocks, and listed ones a resize cannot bring to the stream's length.
        let doomed: Vec<(u64, String)> = w
            .iter()
            .filter(|b| match listed.get(b.idstr()) {
                None => !b.idstr().is_empty(),
                Some(&len) => {
                    b.used_length() != len && !(b.is_resizeable() && len <= b.max_length())
                }
            })
            .map(|b| (b.offset(), b.idstr().to_owned()))
            .collect();
        for (offset, idstr) in &doomed {
            w.free(*offset)
                .map_err(|source| LoadError::block(at, idstr, source))?;
            self.stats.block_changes += 1;
        }
        self.forget_blocks(
            doomed
                .iter()
                .map(|d| d.1.as_str())
                .filter(|n| !listed.contains_key(n)),
        );
        let mut create = Vec::new();
        for e in entries {
            let Some(b) = w.block_by_name(&e.idstr) else {
                create.push(e);
                continue;
            };
            if b.used_length() != e.length {
                let offset = b.offset();
                w.resize(offset, e.length)
                    .map_err(|source| LoadError::block(e.offset, &e.idstr, source))?;
                self.stats.block_changes += 1;
            }
        }
        let needed: u64 = create.iter().map(|e| e.length).sum();
        if needed > 0 && self.list.mapped_bytes().saturating_add(needed) > limit {
            drop(w);
            self.reclaim(reader);
            w = self.list.lock();
            let mapped = self.list.mapped_bytes();
            if mapped.saturating_add(needed) > limit {
                return Err(LoadError::new(
                    at,
                    LoadErrorKind::OverMemoryLimit {
                        needed: mapped.saturating_add(needed),
                        limit,
                    },
                ));
            }
        }
        for e in create {
            w.alloc_named(&e.idstr, e.length)
                .map_err(|source| LoadError::block(e.offset, &e.idstr, source))?;
            self.stats.block_changes += 1;
        }
        Ok(())
    }

    /// Wait until the blocks freed so far are reclaimed (two grace periods, the second
    /// queued by the callback of the first), if this thread may wait for a grace period:
    /// not inside a critical section, and not as a QSBR reader (which is online, so a
    /// grace period would wait for it).
    fn reclaim(&self, reader: &Reader<F>) {
        if reader.in_critical_section() || TypeId::of::<F>() == TypeId::of::<Qsbr>() {
            return;
        }
        let domain = self.list.domain();
        domain.barrier();
        domain.barrier();
    }

    /// Drop the counters of blocks the mirror policy removed, so that they stay bounded
    /// by the blocks the destination has.
    fn forget_blocks<'n>(&mut self, gone: impl Iterator<Item = &'n str>) {
        let gone: HashSet<&str> = gone.collect();
        if gone.is_empty() {
            return;
        }
        self.stats
            .blocks
            .retain(|b| !gone.contains(b.idstr.as_str()));
        self.stats_index = self
            .stats
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (b.idstr.clone(), i))
            .collect();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::migration::{BlockEntry, LoadOptions, RamLoader, RamRecord};
    use crate::stream::CountingReader;
    use crate::testing::{setup, take_steps};
    use crate::PAGE_SIZE;

    /// A `MEM_SIZE` record naming `n` blocks of one page, `prefix0` .. `prefix{n-1}`.
    fn mem_size(out: &mut Vec<u8>, prefix: &str, n: usize) {
        let entries = (0..n)
            .map(|i| BlockEntry {
                idstr: format!("{prefix}{i}"),
                length: PAGE_SIZE,
                offset: 0,
            })
            .collect();
        RamRecord::MemSize(entries).encode(out, false);
    }

    /// Issue 11, item 2: a `MEM_SIZE` record of 4,096 blocks, then one that renames all of
    /// them, then a page for each block; counted in writer-side steps (list elements
    /// visited plus index operations), the work is a small constant per block and record,
    /// where QEMU's `find_ram_offset` walks the list twice per block for each new block
    /// (about 2 * 4096^3 steps per record).
    #[test]
    fn a_record_of_4096_blocks_costs_a_constant_per_block() {
        const N: usize = crate::migration::MAX_MEM_SIZE_BLOCKS;
        let (d, l) = setup();
        let r = d.register();
        let mut body = Vec::new();
        mem_size(&mut body, "b", N);
        mem_size(&mut body, "c", N);
        for i in 0..N {
            let name = format!("c{i}");
            RamRecord::Zero {
                block: Some(&name),
                addr: 0,
                fill: 0,
            }
            .encode(&mut body, false);
        }
        RamRecord::Eos.encode(&mut body, false);
        let mut loader = RamLoader::new(&l, LoadOptions::mirror(1 << 40));
        take_steps();
        loader
            .load_section(&mut CountingReader::new(&body[..]), &r)
            .unwrap();
        let steps = take_steps();
        let records = 2 + 1; // two MEM_SIZE records and the pages (one index rebuild)
        assert!(
            steps <= 32 * (N * records) as u64,
            "{steps} steps for {records} records of {N} blocks"
        );
        let stats = loader.into_stats();
        assert_eq!(stats.block_changes, 3 * N as u64); // created, recreated, freed
        assert_eq!(stats.zero_pages, N as u64);
        let g = r.read_lock();
        assert_eq!(l.len(&g), N);
        assert!(l.iter(&g).all(|b| b.idstr().starts_with('c')));
        drop(g);
        l.lock().index.check();
        d.barrier();
        d.barrier();
    }
}
