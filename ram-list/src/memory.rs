//! Host memory behind a RAM block, and the only code that touches guest RAM bytes.
//!
//! # The access model
//!
//! Guest RAM is memory shared between threads that do not synchronize with each other:
//! vCPU threads write it while the migration thread reads it (QEMU relies on this, with the
//! dirty bitmap catching every page that changed during the copy). In Rust a plain `&[u8]`
//! over such memory would be a data race, so no reference to guest bytes is ever created.
//! Instead the memory is viewed as a slice of [`AtomicU64`] words, and **every guest access
//! is a `Relaxed` atomic operation on an aligned 8-byte word** (whole-word loads and stores
//! for the bulk of a copy, a compare-exchange loop for the bytes of a partial word). On
//! x86-64 a relaxed load or store compiles to a plain `mov`, so this costs nothing over
//! `memcpy` except vectorization. Ordering between a page's contents and its dirty bit is
//! provided by the dirty bitmap (see `dirty.rs`), not here.
//!
//! Memory is either an anonymous `mmap` owned by the block (unmapped when the block is
//! reclaimed) or caller-provided memory (QEMU's `RAM_PREALLOC`), which is never freed by us.

use core::ptr::NonNull;

use crate::sync::unmodelled::{Arc, AtomicU64};
use crate::sync::Ordering;
use crate::RamError;

/// log2 of the guest page size (`TARGET_PAGE_BITS`).
pub const PAGE_BITS: u32 = 12;
/// Size of a guest page (`TARGET_PAGE_SIZE`).
pub const PAGE_SIZE: u64 = 1 << PAGE_BITS;
/// Words of 8 bytes in a page.
pub(crate) const PAGE_WORDS: usize = (PAGE_SIZE / 8) as usize;

/// Who owns the host memory of a block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backing {
    /// An anonymous mapping made (and unmapped) by us.
    Anonymous,
    /// Memory provided by the caller (`RAM_PREALLOC`): never unmapped or freed by us.
    Prealloc,
}

/// The host memory of one block: `len` bytes at `ptr`, 8-byte aligned.
///
/// Invariants: `ptr` is valid for reads and writes of `len` bytes for as long as this value
/// exists, is 8-byte aligned, `len` is a multiple of 8, and every access goes through
/// [`HostMemory::words`] (atomics), so concurrent use from any number of threads is free
/// of data races.
#[derive(Debug)]
pub(crate) struct HostMemory {
    ptr: NonNull<u8>,
    len: usize,
    backing: Backing,
    /// The count of mapped bytes this mapping is part of, if any ([`HostMemory::counted`]).
    account: Option<Arc<AtomicU64>>,
}

// SAFETY: the memory is only ever accessed through `AtomicU64` views (type invariant), which
// are `Send + Sync`; the raw pointer carries no thread affinity. Dropping it from another
// thread (the call_rcu worker) only calls `munmap`, which any thread may do.
unsafe impl Send for HostMemory {}
// SAFETY: as for `Send`: shared access is atomic-only.
unsafe impl Sync for HostMemory {}

impl HostMemory {
    /// Maps `len` bytes of anonymous memory (`MAP_SHARED` if `shared`), zero-filled and
    /// lazily backed (`MAP_NORESERVE`): a 256 MiB block costs nothing until touched.
    pub(crate) fn anonymous(len: u64, shared: bool) -> Result<Self, RamError> {
        let len_usize = usize::try_from(len).map_err(|_| RamError::OutOfMemory { size: len })?;
        if len_usize == 0 || len_usize % 8 != 0 {
            return Err(RamError::InvalidSize { size: len });
        }
        let kind = if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
        // SAFETY: an anonymous mapping at an address of the kernel's choosing has no
        // preconditions; the result is checked for MAP_FAILED below.
        let p = unsafe {
            libc::mmap(
                core::ptr::null_mut(),
                len_usize,
                libc::PROT_READ | libc::PROT_WRITE,
                kind | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(RamError::OutOfMemory { size: len });
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or(RamError::OutOfMemory { size: len })?;
        Ok(HostMemory {
            ptr,
            len: len_usize,
            backing: Backing::Anonymous,
            account: None,
        })
    }

    /// Wraps caller memory (`RAM_PREALLOC`); it is never freed by us.
    ///
    /// # Safety
    ///
    /// 1. `ptr` is valid for reads and writes of `len` bytes until this value is dropped.
    /// 2. While this value exists, nobody accesses that memory except through it (or with
    ///    8-byte atomic operations).
    pub(crate) unsafe fn prealloc(ptr: NonNull<u8>, len: u64) -> Result<Self, RamError> {
        let len_usize = usize::try_from(len).map_err(|_| RamError::InvalidSize { size: len })?;
        if len_usize == 0 || len_usize % 8 != 0 {
            return Err(RamError::InvalidSize { size: len });
        }
        if ptr.as_ptr() as usize % 8 != 0 {
            return Err(RamError::Unaligned {
                addr: ptr.as_ptr() as u64,
            });
        }
        Ok(HostMemory {
            ptr,
            len: len_usize,
            backing: Backing::Prealloc,
            account: None,
        })
    }

    /// Count this mapping in `account` (bytes of host memory mapped) until it is
    /// unmapped. Caller memory (`Prealloc`) is not counted: it is not ours.
    pub(crate) fn counted(mut self, account: &Arc<AtomicU64>) -> Self {
        if self.backing == Backing::Anonymous {
            // Relaxed: a count. Writers add under the list's writer lock; whoever reads it
            // to decide something (the loader) reads under that lock too.
            account.fetch_add(self.len as u64, Ordering::Relaxed);
            self.account = Some(account.clone());
        }
        self
    }

    pub(crate) fn backing(&self) -> Backing {
        self.backing
    }

    /// The start of the memory.
    #[inline(always)]
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Mapped length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The whole memory as atomic words.
    #[inline(always)]
    pub(crate) fn all_words(&self) -> &[AtomicU64] {
        // SAFETY: `ptr` is valid for `len` bytes, 8-byte aligned, `len % 8 == 0` (type
        // invariants); `AtomicU64` has the size and alignment of `u64` and permits shared
        // mutation, and every other access to this memory is atomic too, so creating a
        // shared slice of atomics is sound for the lifetime of `&self`.
        unsafe { core::slice::from_raw_parts(self.ptr.as_ptr().cast::<AtomicU64>(), self.len / 8) }
    }
}

impl Drop for HostMemory {
    fn drop(&mut self) {
        if self.backing == Backing::Anonymous {
            // SAFETY: the mapping was created by `anonymous` with exactly this address and
            // length, and `&mut self` proves no view into it is left.
            let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
            debug_assert_eq!(rc, 0, "munmap failed");
        }
        if let Some(account) = &self.account {
            // Release: pairs with the Acquire load of `RamList::mapped_bytes`; a reader that
            // sees the smaller count sees the mapping gone.
            account.fetch_sub(self.len as u64, Ordering::Release);
        }
    }
}

// ----- word-level copies: the only places guest bytes are read or written -----

/// Copies guest words into `dst` (`dst.len() == 8 * src.len()`).
#[inline]
pub(crate) fn load_words(src: &[AtomicU64], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), src.len() * 8);
    for (w, d) in src.iter().zip(dst.chunks_exact_mut(8)) {
        // Relaxed: guest memory has no ordering of its own (module docs).
        d.copy_from_slice(&w.load(Ordering::Relaxed).to_ne_bytes());
    }
}

/// Copies `src` into guest words (`src.len() == 8 * dst.len()`).
#[inline]
pub(crate) fn store_words(dst: &[AtomicU64], src: &[u8]) {
    debug_assert_eq!(src.len(), dst.len() * 8);
    for (w, s) in dst.iter().zip(src.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(s);
        // Relaxed: as in `load_words`.
        w.store(u64::from_ne_bytes(b), Ordering::Relaxed);
    }
}

/// Whether every word is zero (QEMU's `buffer_is_zero`); stops at the first non-zero word.
#[inline]
pub(crate) fn words_are_zero(words: &[AtomicU64]) -> bool {
    // Four words per step: one branch per 32 bytes.
    let mut chunks = words.chunks_exact(4);
    for c in &mut chunks {
        // Relaxed: as in `load_words`.
        let or = c[0].load(Ordering::Relaxed)
            | c[1].load(Ordering::Relaxed)
            | c[2].load(Ordering::Relaxed)
            | c[3].load(Ordering::Relaxed);
        if or != 0 {
            return false;
        }
    }
    chunks
        .remainder()
        .iter()
        // Relaxed: as in `load_words`.
        .all(|w| w.load(Ordering::Relaxed) == 0)
}

/// Fills guest words with `byte` (QEMU's `ram_handle_zero` with a fill byte).
#[inline]
pub(crate) fn fill_words(words: &[AtomicU64], byte: u8) {
    let v = u64::from_ne_bytes([byte; 8]);
    for w in words {
        // Relaxed: as in `load_words`.
        w.store(v, Ordering::Relaxed);
    }
}

/// Reads `buf.len()` bytes starting at byte `offset` of `words` (any alignment).
/// The caller has checked the range.
pub(crate) fn read_bytes(words: &[AtomicU64], offset: usize, buf: &mut [u8]) {
    let mut pos = offset;
    let mut out = 0;
    while out < buf.len() {
        let wi = pos / 8;
        let bi = pos % 8;
        let n = (8 - bi).min(buf.len() - out);
        if bi == 0 && n == 8 {
            // Aligned run: whole words.
            let nwords = (buf.len() - out) / 8;
            load_words(&words[wi..wi + nwords], &mut buf[out..out + nwords * 8]);
            out += nwords * 8;
            pos += nwords * 8;
            continue;
        }
        // Relaxed: as in `load_words`.
        let w = words[wi].load(Ordering::Relaxed).to_ne_bytes();
        buf[out..out + n].copy_from_slice(&w[bi..bi + n]);
        out += n;
        pos += n;
    }
}

/// Writes `data` starting at byte `offset` of `words` (any alignment). Partial words are
/// merged with a compare-exchange loop so that a concurrent writer of the other bytes of
/// the same word is not undone. The caller has checked the range.
pub(crate) fn write_bytes(words: &[AtomicU64], offset: usize, data: &[u8]) {
    let mut pos = offset;
    let mut inp = 0;
    while inp < data.len() {
        let wi = pos / 8;
        let bi = pos % 8;
        let n = (8 - bi).min(data.len() - inp);
        if bi == 0 && n == 8 {
            let nwords = (data.len() - inp) / 8;
            store_words(&words[wi..wi + nwords], &data[inp..inp + nwords * 8]);
            inp += nwords * 8;
            pos += nwords * 8;
            continue;
        }
        let part = &data[inp..inp + n];
        // Relaxed on both outcomes: only the bytes of this word matter (module docs).
        let _ = words[wi].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
            let mut b = old.to_ne_bytes();
            b[bi..bi + n].copy_from_slice(part);
            Some(u64::from_ne_bytes(b))
        });
        inp += n;
        pos += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_is_zeroed_and_unaligned_access_works() {
        let m = HostMemory::anonymous(2 * PAGE_SIZE, false).unwrap();
        assert_eq!(m.len(), 8192);
        assert_eq!(m.backing(), Backing::Anonymous);
        let w = m.all_words();
        assert!(words_are_zero(w));
        write_bytes(w, 3, b"hello, guest memory");
        let mut buf = [0u8; 19];
        read_bytes(w, 3, &mut buf);
        assert_eq!(&buf, b"hello, guest memory");
        assert!(!words_are_zero(w));
        let mut first = [0u8; 24];
        read_bytes(w, 0, &mut first);
        assert_eq!(&first[..3], &[0, 0, 0]);
        assert_eq!(&first[22..], &[0, 0]);
        // Aligned bulk path.
        let data: Vec<u8> = (0..4096u32).map(|i| i as u8).collect();
        write_bytes(w, 4096, &data);
        let mut back = vec![0u8; 4096];
        read_bytes(w, 4096, &mut back);
        assert_eq!(back, data);
        fill_words(&w[512..], 0xab);
        read_bytes(w, 4096, &mut back);
        assert!(back.iter().all(|&b| b == 0xab));
    }

    #[test]
    fn bad_sizes() {
        assert!(matches!(
            HostMemory::anonymous(0, false),
            Err(RamError::InvalidSize { .. })
        ));
        assert!(matches!(
            HostMemory::anonymous(12, true),
            Err(RamError::InvalidSize { .. })
        ));
        let mut v = vec![0u64; 4];
        let p = NonNull::new(v.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `v` outlives `m` and is only accessed through it meanwhile.
        let m = unsafe { HostMemory::prealloc(p, 32) }.unwrap();
        write_bytes(m.all_words(), 1, &[7, 7]);
        drop(m);
        assert_eq!(v[0].to_ne_bytes()[1..3], [7, 7]);
        // SAFETY: never accessed: the call fails on alignment.
        let e =
            unsafe { HostMemory::prealloc(NonNull::new(p.as_ptr().wrapping_add(1)).unwrap(), 8) };
        assert!(matches!(e, Err(RamError::Unaligned { .. })));
    }
}
