//! [`GuestRange`]: a range of guest memory inside one block (`qemu_ram_ptr_length`'s
//! result).

use crate::block::RamBlock;

/// A range of guest memory inside one block, borrowed from a read guard
/// ([`RamList::ptr_length`](crate::RamList::ptr_length)).
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
