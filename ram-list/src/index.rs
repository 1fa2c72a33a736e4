//! [`BlockIndex`]: the writer's indexes over the list, kept under the writer lock, so that
//! every writer operation costs `O(log n)` instead of a walk of the list (and
//! `find_ram_offset` no longer walks it twice per block): a `MEM_SIZE` record of `n`
//! blocks is applied in `O(n log n)`.
//!
//! * by ram offset: every linked block, its end, its place in the list order;
//! * by idstr: every named block (idstrs are unique);
//! * the list order (biggest `max_length` first, ties in insertion order), to find where a
//!   new block is linked without walking;
//! * the best-fit gaps of `find_ram_offset`.
//!
//! # The gaps
//!
//! QEMU's `find_ram_offset` considers as candidates the ends of the existing blocks,
//! rounded up to [`RAM_OFFSET_ALIGN`]; a candidate inside a block is ruled out; the gap of a
//! candidate reaches to the next block that starts at or after it (or to the top of the
//! address space); the smallest gap that fits wins. Here each block's candidate and gap is
//! one entry of a set ordered by (gap, candidate), so the best fit is one range query.
//! (Ties go to the lowest candidate; QEMU's go to the first block in list order.)
//!
//! Every block offset is a candidate or 0, so offsets are multiples of
//! [`RAM_OFFSET_ALIGN`]. Then a block's candidate lies at or before the next block's
//! offset, no candidate is ever inside a block, and a block's gap changes only when the
//! block after it in address order changes: linking or unlinking a block changes its own
//! entry and the one of the block just before it, nothing else.

use core::cmp::Reverse;
use core::ptr::NonNull;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::block::RamBlock;

/// `find_ram_offset` aligns candidate offsets to this (QEMU: `ROUND_UP(end, 1 << 18)`).
pub const RAM_OFFSET_ALIGN: u64 = 1 << 18;

/// One linked block.
#[derive(Debug)]
struct Entry {
    block: NonNull<RamBlock>,
    /// `offset + max_length`.
    end: u64,
    /// Its key in `order`.
    order: (Reverse<u64>, u64),
    /// Its key in `gaps`, if its candidate is usable.
    gap: Option<(u64, u64)>,
}

/// The writer's indexes (module docs). Invariant: `by_offset` holds exactly the blocks
/// linked into the list, each a live block owned by the list, and `by_name`, `order` and
/// `gaps` are derived from them as the module docs say.
#[derive(Debug, Default)]
pub(crate) struct BlockIndex {
    by_offset: BTreeMap<u64, Entry>,
    by_name: HashMap<String, u64>,
    /// (Reverse(max_length), insertion sequence) -> offset: the list order.
    order: BTreeMap<(Reverse<u64>, u64), u64>,
    /// (gap, candidate).
    gaps: BTreeSet<(u64, u64)>,
    next_seq: u64,
}

// SAFETY: the pointers name blocks owned by the list, which are `Send + Sync`; they are only
// dereferenced by the holder of the list's writer lock, which this index lives under.
unsafe impl Send for BlockIndex {}

/// Counts one step of writer-side work (tests measure that a `MEM_SIZE` record costs
/// `O(n log n)` by counting these).
#[inline(always)]
pub(crate) fn count_step() {
    #[cfg(all(test, not(loom)))]
    crate::testing::STEPS.with(|s| s.set(s.get() + 1));
}

impl BlockIndex {
    /// The block that starts at `offset`.
    pub(crate) fn get(&self, offset: u64) -> Option<NonNull<RamBlock>> {
        count_step();
        self.by_offset.get(&offset).map(|e| e.block)
    }

    /// The block named `name` (never an unnamed one).
    pub(crate) fn by_name(&self, name: &str) -> Option<NonNull<RamBlock>> {
        count_step();
        self.by_name.get(name).and_then(|o| self.get(*o))
    }

    /// Whether some block is named `name`.
    pub(crate) fn has_name(&self, name: &str) -> bool {
        count_step();
        self.by_name.contains_key(name)
    }

    /// End of the highest block (`last_ram_offset`): blocks do not overlap, so it is the
    /// end of the block with the highest offset.
    pub(crate) fn end(&self) -> u64 {
        count_step();
        self.by_offset.values().next_back().map_or(0, |e| e.end)
    }

    /// `find_ram_offset`'s answer for a non-zero `size`: 0 for an empty list, else the
    /// candidate of the smallest gap that fits (`None` if none does).
    pub(crate) fn best_fit(&self, size: u64) -> Option<u64> {
        count_step();
        if self.by_offset.is_empty() {
            return Some(0);
        }
        self.gaps.range((size, 0)..).next().map(|&(_, c)| c)
    }

    /// Where a block of `max_length` goes in the list (biggest first, after its equals):
    /// after the returned block, or at the head for `None`.
    pub(crate) fn insert_after(&self, max_length: u64) -> Option<NonNull<RamBlock>> {
        count_step();
        let key = (Reverse(max_length), self.next_seq);
        let (_, offset) = self.order.range(..key).next_back()?;
        self.get(*offset)
    }

    /// Record `block`, just linked at `offset` with `max_length`.
    pub(crate) fn insert(&mut self, block: NonNull<RamBlock>, offset: u64, max_length: u64) {
        count_step();
        debug_assert_eq!(offset % RAM_OFFSET_ALIGN, 0, "offsets are candidates or 0");
        let order = (Reverse(max_length), self.next_seq);
        self.next_seq += 1;
        self.order.insert(order, offset);
        let entry = Entry {
            block,
            end: offset + max_length,
            order,
            gap: None,
        };
        self.by_offset.insert(offset, entry);
        self.refresh_gap(offset);
        self.refresh_before(offset);
    }

    /// Forget the block at `offset` (just unlinked), and its name.
    pub(crate) fn remove(&mut self, offset: u64, name: &str) {
        count_step();
        let Some(e) = self.by_offset.remove(&offset) else {
            return;
        };
        self.order.remove(&e.order);
        if let Some(g) = e.gap {
            self.gaps.remove(&g);
        }
        if !name.is_empty() {
            self.by_name.remove(name);
        }
        self.refresh_before(offset);
    }

    /// Record that the block at `offset` is now named `name` (unique, non-empty).
    pub(crate) fn name(&mut self, name: String, offset: u64) {
        count_step();
        self.by_name.insert(name, offset);
    }

    /// Forget the name `name`.
    pub(crate) fn unname(&mut self, name: &str) {
        count_step();
        self.by_name.remove(name);
    }

    /// Recompute the gap of the block just before `offset` in address order.
    fn refresh_before(&mut self, offset: u64) {
        if let Some(&before) = self.by_offset.range(..offset).next_back().map(|(o, _)| o) {
            self.refresh_gap(before);
        }
    }

    /// Recompute the candidate and gap of the block at `offset` (module docs).
    fn refresh_gap(&mut self, offset: u64) {
        let Some(end) = self.by_offset.get(&offset).map(|e| e.end) else {
            return;
        };
        let gap = self.gap_of(end);
        let e = self.by_offset.get_mut(&offset).expect("looked up above");
        let old = core::mem::replace(&mut e.gap, gap);
        if let Some(g) = old {
            self.gaps.remove(&g);
        }
        if let Some(g) = gap {
            self.gaps.insert(g);
        }
    }

    /// (gap, candidate) for a block ending at `end`, or `None` if its candidate overflows
    /// or lies inside a block.
    fn gap_of(&self, end: u64) -> Option<(u64, u64)> {
        let candidate = end.checked_add(RAM_OFFSET_ALIGN - 1)? & !(RAM_OFFSET_ALIGN - 1);
        if let Some((_, before)) = self.by_offset.range(..candidate).next_back() {
            if before.end > candidate {
                return None;
            }
        }
        let next = self
            .by_offset
            .range(candidate..)
            .next()
            .map_or(u64::MAX, |(o, _)| *o);
        Some((next - candidate, candidate))
    }

    /// Every derived index recomputed from `by_offset` alone, compared with the kept ones
    /// (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn check(&self) {
        let gaps: BTreeSet<(u64, u64)> = self
            .by_offset
            .values()
            .filter_map(|e| self.gap_of(e.end))
            .collect();
        assert_eq!(gaps, self.gaps, "gaps out of date");
        for e in self.by_offset.values() {
            assert_eq!(e.gap, self.gap_of(e.end));
        }
        assert_eq!(self.order.len(), self.by_offset.len());
    }
}
