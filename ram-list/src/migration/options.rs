//! What each direction is asked to do: [`SaveOptions`], [`LoadOptions`] and its
//! [`BlockPolicy`].

/// Options of a [`RamSaver`](super::RamSaver).
#[derive(Debug, Clone, Default)]
pub struct SaveOptions {
    /// Follow block hotplug during migration with new `MEM_SIZE` records (see the
    /// [module docs](super)); off: a changed block set is
    /// [`SaveError::BlockSetChanged`](super::SaveError::BlockSetChanged).
    pub mirror_block_changes: bool,
    /// Write the `be64 addr` field per block in `MEM_SIZE`, as QEMU does with the
    /// `x-ignore-shared` capability (always 0 here: blocks have no guest address).
    pub ignore_shared: bool,
    /// Encode pages on the rayon pool (each worker copies and zero-checks its share of the
    /// pages; the caller writes the buffers in order). Needs the `rayon` feature.
    #[cfg(feature = "rayon")]
    pub parallel: bool,
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
        /// Upper bound on the host memory the destination list maps for its blocks at any
        /// moment of the load ([`RamList::mapped_bytes`](crate::RamList::mapped_bytes)):
        /// live blocks plus removed blocks whose memory is not reclaimed yet. Every page
        /// a record writes (a ZERO record with a non-zero fill byte as much as a PAGE
        /// record) lies in one of those mappings, so this bounds what the load commits
        /// too. A record that would need more waits for the removed blocks to be reclaimed
        /// (unless the loading thread cannot wait for a grace period: a QSBR reader, or
        /// one inside a critical section) and is then
        /// [`OverMemoryLimit`](super::LoadErrorKind::OverMemoryLimit) if it still would.
        max_total_bytes: u64,
    },
}

/// Options of the loader.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// How blocks are matched.
    pub policy: BlockPolicy,
    /// `MEM_SIZE` entries carry a `be64 addr` (QEMU's `x-ignore-shared`).
    /// [`load`](super::load) sets it from the stream's configuration record.
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
