//! [`RamBlock`]: one contiguous range of guest RAM (QEMU's `RAMBlock`).

use core::fmt;
use core::ptr;

use rcu_core::{Domain, Flavor};
use rcu_queue::{rcu_link, QListLink};

use crate::memory::{self, Backing, HostMemory, PAGE_SIZE, PAGE_WORDS};
use crate::sync::{ptr_mut, unmodelled, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use crate::RamError;

/// Longest idstr: QEMU's `char idstr[256]` holds a terminating NUL.
pub const MAX_IDSTR_LEN: usize = 255;

/// Flags of a [`RamBlock`] (QEMU's `RAM_*` block flags).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct RamBlockFlags(u32);

impl RamBlockFlags {
    /// No flag.
    pub const NONE: RamBlockFlags = RamBlockFlags(0);
    /// `RAM_PREALLOC`: the host memory was provided by the caller and is never freed by us.
    pub const PREALLOC: RamBlockFlags = RamBlockFlags(1 << 0);
    /// `RAM_SHARED`: the anonymous mapping is `MAP_SHARED` (visible to a forked child).
    pub const SHARED: RamBlockFlags = RamBlockFlags(1 << 1);
    /// `RAM_RESIZEABLE`: `used_length` may change up to `max_length` (`qemu_ram_resize`).
    pub const RESIZEABLE: RamBlockFlags = RamBlockFlags(1 << 2);

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: RamBlockFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of two sets of flags.
    pub const fn union(self, other: RamBlockFlags) -> RamBlockFlags {
        RamBlockFlags(self.0 | other.0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }
}

impl core::ops::BitOr for RamBlockFlags {
    type Output = RamBlockFlags;
    fn bitor(self, rhs: RamBlockFlags) -> RamBlockFlags {
        self.union(rhs)
    }
}

impl fmt::Debug for RamBlockFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (RamBlockFlags::PREALLOC, "PREALLOC"),
            (RamBlockFlags::SHARED, "SHARED"),
            (RamBlockFlags::RESIZEABLE, "RESIZEABLE"),
        ];
        f.debug_set()
            .entries(
                names
                    .iter()
                    .filter(|(fl, _)| self.contains(*fl))
                    .map(|(_, n)| n),
            )
            .finish()
    }
}

/// The idstr of a block: an RCU-protected string pointer.
///
/// Invariant: `ptr` always points at [`EMPTY`] (the empty idstr, never freed) or holds a
/// `Box<String>` of a non-empty idstr owned by this cell. It is replaced only by the list's
/// writer (holding the writer lock); a replaced box is dropped after a grace period of the
/// list's domain. (So naming a new block, or clearing a name, queues nothing for the empty
/// string.)
struct IdStr {
    ptr: AtomicPtr<String>,
}

/// The empty idstr every cell starts with and returns to: read through shared references
/// only, never freed.
static EMPTY: String = String::new();

fn empty() -> *mut String {
    // Never written through: the cell only reads through it, and never frees it.
    ptr::addr_of!(EMPTY).cast_mut()
}

impl IdStr {
    fn new() -> Self {
        IdStr {
            ptr: AtomicPtr::new(empty()),
        }
    }

    /// # Safety
    ///
    /// The caller is inside a read-side critical section of the list's domain, or holds
    /// the list's writer lock, for as long as the result is used.
    #[inline]
    unsafe fn get(&self) -> &str {
        // Acquire (`qatomic_rcu_read`): pairs with the Release swap in `swap`, so the new
        // string's bytes are visible.
        let p = self.ptr.load(Ordering::Acquire);
        // SAFETY: `p` is `EMPTY` or a live `Box<String>` (invariant): a replaced box is
        // freed only after a grace period, which the caller's critical section holds off;
        // under the writer lock nothing replaces it at all.
        unsafe { &*p }
    }

    /// Publish `new`; the old string is dropped after a grace period of `domain`.
    /// The caller holds the list's writer lock.
    fn replace<F: Flavor>(&self, new: String, domain: &Domain<F>) {
        // SAFETY: the old string is dropped by the call_rcu worker, after a grace period
        // that begins after the swap (contract 1), or now if there is none to drop.
        let old = unsafe { self.swap(new) };
        if old.0.is_some() {
            domain.defer_drop(old);
        }
    }

    /// Publish `new` and hand back the old string. The caller holds the list's writer
    /// lock.
    ///
    /// # Safety
    ///
    /// 1. The returned string is dropped only after a grace period of the list's domain
    ///    that began after this call (readers may still hold it).
    unsafe fn swap(&self, new: String) -> OldIdstr {
        let new = if new.is_empty() {
            empty()
        } else {
            Box::into_raw(Box::new(new))
        };
        // AcqRel: Release publishes `new`; Acquire makes the old string ours to retire.
        let old = self.ptr.swap(new, Ordering::AcqRel);
        if old == empty() {
            return OldIdstr(None);
        }
        // SAFETY: `old` was the cell's `Box` (invariant) and is now unreachable for new
        // readers; contract 1 keeps it alive for the readers that hold it.
        OldIdstr(Some(unsafe { Box::from_raw(old) }))
    }
}

/// An idstr replaced in its cell, still to be reclaimed: the cell's whole `Box<String>`
/// (readers dereference the box to reach the string, so the box must outlive them, not
/// only the string's buffer), or nothing for the empty idstr.
#[allow(clippy::box_collection)]
pub(crate) struct OldIdstr(Option<Box<String>>);

impl Drop for IdStr {
    fn drop(&mut self) {
        let p = ptr_mut(&mut self.ptr);
        if p != empty() {
            // SAFETY: `&mut self`: the block is being freed (after its grace period), so no
            // reader holds the string; it is the cell's own `Box` (invariant).
            drop(unsafe { Box::from_raw(p) });
        }
    }
}

/// One block of guest RAM: a range `[offset, offset + max_length)` of the ram address space
/// backed by host memory, with a name (the idstr) that migration uses to identify it.
///
/// References to a block are only handed out under a read guard of its list's domain (or
/// under a shared borrow of the writer handle), so a `&RamBlock` is always safe to use:
/// a removed block is freed only after a grace period.
///
/// Guest memory is accessed with [`read`](Self::read), [`write`](Self::write) and the
/// aligned `u64` forms; every access is atomic (see the crate docs), so any number of
/// threads may read and write concurrently. Writing through the block does not mark the
/// pages dirty: use [`RamList::write`](crate::RamList::write) for that, or call
/// [`DirtyMemory::set_range`](crate::DirtyMemory::set_range) afterwards.
pub struct RamBlock {
    pub(crate) link: QListLink,
    offset: u64,
    max_length: u64,
    /// Changed only by `resize` (writer lock); readers load it with Acquire.
    used_length: AtomicU64,
    flags: RamBlockFlags,
    mem: HostMemory,
    idstr: IdStr,
    /// Set by the writer before the block is unlinked; an `mru_block` hit checks it.
    pub(crate) retired: AtomicBool,
}

rcu_link!(RamBlock, link: QListLink);

/// Under loom, reclaiming a block counts as a write of its `used_length`: loom reports a
/// reader's access to the block that is not ordered after the reclamation (a use after
/// free) as a causality violation. (The idstr's cell is checked the same way by its own
/// `Drop`.)
#[cfg(loom)]
impl Drop for RamBlock {
    fn drop(&mut self) {
        self.used_length.with_mut(|_| ());
    }
}

impl RamBlock {
    pub(crate) fn new(
        offset: u64,
        used_length: u64,
        max_length: u64,
        flags: RamBlockFlags,
        mem: HostMemory,
    ) -> Self {
        debug_assert!(used_length <= max_length && max_length <= mem.len() as u64);
        RamBlock {
            link: QListLink::new(),
            offset,
            max_length,
            used_length: AtomicU64::new(used_length),
            flags,
            mem,
            idstr: IdStr::new(),
            retired: AtomicBool::new(false),
        }
    }

    /// Start of the block in the ram address space (`block->offset`).
    #[inline(always)]
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Bytes in use (`block->used_length`); changes only for resizeable blocks.
    #[inline(always)]
    pub fn used_length(&self) -> u64 {
        // Acquire: pairs with the Release store in `set_used_length`.
        self.used_length.load(Ordering::Acquire)
    }

    /// Bytes reserved in the address space and in host memory (`block->max_length`).
    #[inline(always)]
    pub fn max_length(&self) -> u64 {
        self.max_length
    }

    /// The block's flags.
    #[inline]
    pub fn flags(&self) -> RamBlockFlags {
        self.flags
    }

    /// Whether the host memory was provided by the caller (`RAM_PREALLOC`).
    pub fn is_prealloc(&self) -> bool {
        self.mem.backing() == Backing::Prealloc
    }

    /// Whether `used_length` may change (`RAM_RESIZEABLE`).
    pub fn is_resizeable(&self) -> bool {
        self.flags.contains(RamBlockFlags::RESIZEABLE)
    }

    /// The block's name (`block->idstr`), empty until
    /// [`RamListWriter::set_idstr`](crate::RamListWriter::set_idstr).
    #[inline]
    pub fn idstr(&self) -> &str {
        // SAFETY: a `&RamBlock` exists only under a read guard of the list's domain or a
        // shared borrow of the writer handle (type docs), and the returned `&str` borrows
        // `self`, so that critical section (or the writer lock, which excludes
        // `set_idstr`) outlives it.
        unsafe { self.idstr.get() }
    }

    pub(crate) fn set_idstr_locked<F: Flavor>(&self, idstr: String, domain: &Domain<F>) {
        self.idstr.replace(idstr, domain);
    }

    /// Clear the idstr and hand back the old one (the caller holds the writer lock).
    ///
    /// # Safety
    ///
    /// 1. The returned string is dropped only after a grace period of the list's domain
    ///    that began after this call.
    pub(crate) unsafe fn take_idstr_locked(&self) -> OldIdstr {
        // SAFETY: contract 1 is this function's own.
        unsafe { self.idstr.swap(String::new()) }
    }

    pub(crate) fn set_used_length(&self, len: u64) {
        // Release: a reader that sees the new length sees what the writer did before.
        self.used_length.store(len, Ordering::Release);
    }

    /// The start of the block's host memory (`block->host`). Valid for `max_length` bytes
    /// while the block lives; access it only with atomic 8-byte operations.
    #[inline]
    pub fn host(&self) -> *mut u8 {
        self.mem.as_ptr()
    }

    /// Offset inside the block of the host address `host`, if it points into the block's
    /// memory (`host - block->host < max_length`).
    pub fn offset_of_host(&self, host: *const u8) -> Option<u64> {
        let d = (host as usize).wrapping_sub(self.mem.as_ptr() as usize) as u64;
        (d < self.max_length).then_some(d)
    }

    /// Whether the ram address `addr` is inside the block's range of the address space,
    /// `[offset, offset + max_length)`, as in QEMU's `qemu_get_ram_block` (and as
    /// [`offset_of_host`](Self::offset_of_host) for host pointers). Accesses are limited to
    /// the used part: past [`used_length`](Self::used_length) they are
    /// [`RamError::OutOfRange`].
    #[inline(always)]
    pub fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.offset) < self.max_length
    }

    #[inline]
    fn check(&self, offset: u64, len: u64) -> Result<usize, RamError> {
        let used_length = self.used_length();
        match offset.checked_add(len) {
            Some(end) if end <= used_length => Ok(offset as usize),
            _ => Err(RamError::OutOfRange {
                offset,
                len,
                used_length,
            }),
        }
    }

    /// Copies `buf.len()` bytes at `offset` (inside the block) into `buf`.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), RamError> {
        let at = self.check(offset, buf.len() as u64)?;
        memory::read_bytes(self.mem.all_words(), at, buf);
        Ok(())
    }

    /// Copies `data` to `offset` (inside the block). Does not mark pages dirty.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<(), RamError> {
        let at = self.check(offset, data.len() as u64)?;
        memory::write_bytes(self.mem.all_words(), at, data);
        Ok(())
    }

    /// Reads the aligned `u64` at `offset` (native byte order).
    #[inline]
    pub fn read_u64(&self, offset: u64) -> Result<u64, RamError> {
        let at = self.check(offset, 8)?;
        if at % 8 != 0 {
            return Err(RamError::Unaligned { addr: offset });
        }
        // Relaxed: guest memory has no ordering of its own (see `memory.rs`).
        Ok(self.mem.all_words()[at / 8].load(Ordering::Relaxed))
    }

    /// Writes the aligned `u64` at `offset` (native byte order). Does not mark it dirty.
    #[inline]
    pub fn write_u64(&self, offset: u64, value: u64) -> Result<(), RamError> {
        let at = self.check(offset, 8)?;
        if at % 8 != 0 {
            return Err(RamError::Unaligned { addr: offset });
        }
        // Relaxed: as in `read_u64`.
        self.mem.all_words()[at / 8].store(value, Ordering::Relaxed);
        Ok(())
    }

    /// Fills `len` bytes at `offset` with `byte`.
    pub fn fill(&self, offset: u64, len: u64, byte: u8) -> Result<(), RamError> {
        let at = self.check(offset, len)?;
        let words = self.mem.all_words();
        if at % 8 == 0 && len % 8 == 0 {
            memory::fill_words(&words[at / 8..(at + len as usize) / 8], byte);
        } else {
            memory::write_bytes(words, at, &vec![byte; len as usize]);
        }
        Ok(())
    }

    /// Whether the `len` bytes at `offset` are all zero.
    pub fn is_zero(&self, offset: u64, len: u64) -> Result<bool, RamError> {
        let at = self.check(offset, len)?;
        if at % 8 == 0 && len % 8 == 0 {
            return Ok(memory::words_are_zero(
                &self.mem.all_words()[at / 8..(at + len as usize) / 8],
            ));
        }
        let mut buf = vec![0u8; len as usize];
        memory::read_bytes(self.mem.all_words(), at, &mut buf);
        Ok(buf.iter().all(|&b| b == 0))
    }

    /// The words of the page at page-aligned `offset`, if it is inside `used_length`.
    #[inline]
    pub(crate) fn page_words(&self, offset: u64) -> Option<&[unmodelled::AtomicU64]> {
        if offset % PAGE_SIZE != 0 {
            return None;
        }
        let end = offset.checked_add(PAGE_SIZE)?;
        if end > self.used_length() {
            return None;
        }
        let w = (offset / 8) as usize;
        Some(&self.mem.all_words()[w..w + PAGE_WORDS])
    }

    /// Compares the used contents of two blocks (same used length and bytes).
    pub fn contents_eq(&self, other: &RamBlock) -> bool {
        let len = self.used_length();
        if len != other.used_length() {
            return false;
        }
        let a = &self.mem.all_words()[..(len / 8) as usize];
        let b = &other.mem.all_words()[..(len / 8) as usize];
        // Relaxed: guest memory (see `memory.rs`).
        a.iter()
            .zip(b)
            .all(|(x, y)| x.load(Ordering::Relaxed) == y.load(Ordering::Relaxed))
    }

    /// Offset of the first page whose contents differ from `other`'s, if any (lengths
    /// compared first: a length mismatch reports `Some(min(len))`).
    pub fn first_difference(&self, other: &RamBlock) -> Option<u64> {
        let len = self.used_length().min(other.used_length());
        let a = self.mem.all_words();
        let b = other.mem.all_words();
        let mut page = 0;
        while page < len {
            let w = (page / 8) as usize;
            let n = ((len - page).min(PAGE_SIZE) / 8) as usize;
            // Relaxed: guest memory (see `memory.rs`).
            if a[w..w + n]
                .iter()
                .zip(&b[w..w + n])
                .any(|(x, y)| x.load(Ordering::Relaxed) != y.load(Ordering::Relaxed))
            {
                return Some(page);
            }
            page += PAGE_SIZE;
        }
        (self.used_length() != other.used_length()).then_some(len)
    }
}

impl fmt::Debug for RamBlock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RamBlock")
            .field("idstr", &self.idstr())
            .field("offset", &format_args!("{:#x}", self.offset))
            .field("used_length", &format_args!("{:#x}", self.used_length()))
            .field("max_length", &format_args!("{:#x}", self.max_length))
            .field("flags", &self.flags)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_is_send_sync_and_accessors_check_bounds() {
        fn is<T: Send + Sync>() {}
        is::<RamBlock>();
        let mem = HostMemory::anonymous(4 * PAGE_SIZE, false).unwrap();
        let b = RamBlock::new(
            0x40000,
            2 * PAGE_SIZE,
            4 * PAGE_SIZE,
            RamBlockFlags::RESIZEABLE,
            mem,
        );
        assert_eq!(b.idstr(), "");
        assert!(b.is_resizeable() && !b.is_prealloc());
        // The whole reserved range, as QEMU's lookups; accesses stop at the used length.
        assert!(b.contains(0x40000) && b.contains(0x43fff) && !b.contains(0x44000));
        assert!(!b.contains(0x3ffff));
        b.write_u64(8, 0x1122).unwrap();
        assert_eq!(b.read_u64(8).unwrap(), 0x1122);
        assert_eq!(b.read_u64(3), Err(RamError::Unaligned { addr: 3 }));
        assert!(matches!(
            b.write(2 * PAGE_SIZE - 1, &[1, 2]),
            Err(RamError::OutOfRange { .. })
        ));
        assert!(matches!(
            b.read(u64::MAX, &mut [0]),
            Err(RamError::OutOfRange { .. })
        ));
        b.fill(100, 10, 0xee).unwrap();
        let mut buf = [0u8; 12];
        b.read(99, &mut buf).unwrap();
        assert_eq!(
            buf,
            [0, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0xee, 0]
        );
        assert!(!b.is_zero(0, PAGE_SIZE).unwrap());
        assert!(b.is_zero(PAGE_SIZE, PAGE_SIZE).unwrap());
        assert!(b.page_words(PAGE_SIZE).is_some());
        assert!(b.page_words(2 * PAGE_SIZE).is_none());
        assert!(b.page_words(5).is_none());
        assert_eq!(b.offset_of_host(b.host().wrapping_add(5)), Some(5));
        assert_eq!(b.offset_of_host(b.host().wrapping_add(4 * 4096)), None);
        b.set_used_length(4 * PAGE_SIZE);
        assert!(b.page_words(3 * PAGE_SIZE).is_some());
        assert_eq!(format!("{:?}", b.flags()), "{\"RESIZEABLE\"}");
        let mem2 = HostMemory::anonymous(4 * PAGE_SIZE, true).unwrap();
        let c = RamBlock::new(0, 4 * PAGE_SIZE, 4 * PAGE_SIZE, RamBlockFlags::SHARED, mem2);
        assert_eq!(b.first_difference(&c), Some(0));
        b.fill(0, 4 * PAGE_SIZE, 0).unwrap();
        assert!(b.contents_eq(&c));
        assert_eq!(b.first_difference(&c), None);
        c.write(3 * PAGE_SIZE + 7, &[1]).unwrap();
        assert_eq!(b.first_difference(&c), Some(3 * PAGE_SIZE));
    }
}
