//! The one place this crate takes its atomics and locks from (the workspace convention:
//! no other module imports `std::sync::atomic` directly).
//!
//! Under `--cfg loom` the list's own synchronization comes from loom, so that the models in
//! `loom-tests` (`loom_translator.rs`) explore every interleaving of the real `RamList` and
//! `Translator` together with rcu-core's and rcu-queue's algorithms, which switch on the
//! same cfg. What is not part of those algorithms stays on `std` even under loom, in
//! [`unmodelled`].

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// What stays on `std` under loom, and why:
///
/// * guest memory: raw mapped memory viewed as a slice of `AtomicU64` (`memory.rs`), which
///   needs `std`'s layout (a loom atomic is a handle into the model, not 8 bytes of
///   memory); guest accesses are unordered by design, and the ordering that matters is the
///   dirty bitmap's;
/// * the dirty bitmaps' chunks (`Arc<[AtomicU64]>` built from an iterator, which loom's
///   `Arc` cannot hold), published through rcu-core's `RcuBox`, which is modelled;
/// * the count of mapped bytes, a statistic.
pub(crate) mod unmodelled {
    pub(crate) use std::sync::atomic::AtomicU64;
    pub(crate) use std::sync::Arc;
}

/// Lock a mutex, ignoring poisoning: every writer-side critical section of this crate
/// leaves the list consistent before anything that can panic runs.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The pointer in `p`, through exclusive access (`get_mut`; loom's `with_mut`, which loom
/// also checks happens after every other access).
#[inline]
pub(crate) fn ptr_mut<T>(p: &mut AtomicPtr<T>) -> *mut T {
    #[cfg(loom)]
    return p.with_mut(|v| *v);
    #[cfg(not(loom))]
    *p.get_mut()
}

/// Pads and aligns a value to 128 bytes (two cache lines, so that the adjacent-line
/// prefetcher does not pair it with a neighbour): the list head, the `mru_block` hint and
/// `version` are written by different parties and must not share a line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

impl<T> core::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}
