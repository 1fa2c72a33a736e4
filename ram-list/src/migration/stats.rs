//! What each direction reports: [`SaveStats`] and [`IterateStatus`] on the source,
//! [`LoadStats`], [`BlockLoadStats`] and [`LoadReport`] on the destination.

use crate::stream::Configuration;

/// Counters of a [`RamSaver`](super::RamSaver).
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

/// Counters of a [`RamLoader`](super::RamLoader).
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
    /// Rounds of the source over its RAM, as the page order shows them: 1 for the first
    /// page, plus 1 each time a page record goes back to an earlier block or offset (or
    /// follows a `MEM_SIZE` record). A source resumes each dirty pass where the last one
    /// stopped (QEMU keeps `last_seen_block`), so this counts the times its scan wrapped
    /// around the RAM: the bulk pass, then the passes that resent re-dirtied pages.
    pub passes: u64,
    /// Blocks created, resized or freed by the mirror policy (or resized by the
    /// existing-block policy).
    pub block_changes: u64,
    /// Per block of the destination, in order of first appearance (a block the mirror
    /// policy frees leaves this list, which so stays as long as the destination's).
    pub blocks: Vec<BlockLoadStats>,
    /// With [`BlockPolicy::Mirror`](super::BlockPolicy::Mirror): the most host memory the
    /// destination had mapped ([`RamList::mapped_bytes`](crate::RamList::mapped_bytes))
    /// after applying a `MEM_SIZE` record; never more than `max_total_bytes`.
    pub peak_mapped_bytes: u64,
}

/// What [`load`](super::load) read.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// The stream's configuration record, if any.
    pub configuration: Option<Configuration>,
    /// RAM counters.
    pub stats: LoadStats,
    /// Byte offset just after the RAM section's END footer.
    pub end_offset: u64,
}
