//! The one place this crate takes its atomics and locks from (the workspace convention:
//! no other module imports `std::sync::atomic` directly).
//!
//! ram-list is not model-checked under loom (its algorithms are rcu-core's and
//! rcu-queue's, which are), so this shim always re-exports `std`.

pub(crate) use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};

/// Lock a mutex, ignoring poisoning: every writer-side critical section of this crate
/// leaves the list consistent before anything that can panic runs.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
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
