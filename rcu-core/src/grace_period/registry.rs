//! The reader registry: the records a grace period scans.
//!
//! Records are added and removed under one mutex, which is only ever held for a scan or an
//! update of the list, never while waiting: the leader clones the `Arc`s of the records it
//! must wait for and drops the lock, so readers can register and unregister (or their
//! threads exit) during a grace period.

use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::stall::StalledReader;
use crate::record::Record;
use crate::sync::{lock, Arc, Mutex, Ordering};

/// A registered record (shared by its `Reader` and the registry).
pub(crate) type SharedRecord = Arc<CachePadded<Record>>;

#[derive(Default)]
pub(crate) struct Registry {
    records: Mutex<Vec<SharedRecord>>,
}

impl Registry {
    /// Add `rec`, running `init` on it under the registry lock first.
    pub(crate) fn add(&self, rec: &SharedRecord, init: impl FnOnce(&Record)) {
        let mut records = lock(&self.records);
        init(rec);
        records.push(rec.clone());
    }

    /// Remove `rec`.
    pub(crate) fn remove(&self, rec: &SharedRecord) {
        lock(&self.records).retain(|r| !Arc::ptr_eq(r, rec));
    }

    /// Registered readers.
    pub(crate) fn len(&self) -> usize {
        lock(&self.records).len()
    }

    /// The records that hold up the grace period that set the counter to `new`.
    pub(crate) fn blocking(&self, new: u64) -> Vec<SharedRecord> {
        lock(&self.records)
            .iter()
            // Acquire: pairs with the reader's Release store of 0 / of a newer snapshot, so
            // its critical sections happen-before whatever the caller frees next.
            .filter(|r| Record::blocks(r.ctr.load(Ordering::Acquire), new))
            .cloned()
            .collect()
    }

    /// The same as [`blocking`](Self::blocking), described for a stall report.
    pub(crate) fn stalled(&self, new: u64, waited: Duration) -> Vec<StalledReader> {
        self.blocking(new)
            .iter()
            .map(|r| StalledReader {
                thread_name: r.name.clone(),
                thread_id: r.owner,
                blocked_for: waited,
            })
            .collect()
    }

    /// Hold the registry lock (across a fork).
    #[cfg(not(loom))]
    pub(crate) fn hold(&self) -> crate::sync::MutexGuard<'_, Vec<SharedRecord>> {
        lock(&self.records)
    }

    /// In a fork child: only `me` exists; forget every other thread's record.
    #[cfg(not(loom))]
    pub(crate) fn keep_only(&self, me: std::thread::ThreadId) {
        let mut records = lock(&self.records);
        records.retain(|r| r.owner == me);
        for r in records.iter() {
            // Relaxed: single-threaded (the child's only thread); no leader is waiting.
            r.waiting.store(false, Ordering::Relaxed);
        }
    }
}
