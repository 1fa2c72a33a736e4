//! The one place that decides where atomics and locks come from.
//!
//! Under `--cfg loom` everything comes from loom, so that the models in `loom-tests`
//! explore every interleaving of the real list algorithms; otherwise from `std`. No other
//! module of this crate imports `std::sync::atomic` directly.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Lock a mutex, ignoring poisoning: every writer operation of this crate checks its
/// arguments (and may panic) before it touches a link, and user code only runs between
/// operations, so a panic never leaves a list half-updated.
#[inline]
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}
