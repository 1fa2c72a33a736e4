//! The precopy loop shared by the demo and `migrate` (QEMU's `migration_iteration_run`):
//! iterations within a byte budget until a pass is done, then a dirty-log sync and the
//! decision: the expected downtime is below the target (converged), the pass limit is
//! reached, or the vCPUs get throttled harder (auto-converge) and another pass starts.

use std::io::Write;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use ram_list::migration::{MigrationWriter, SaveError, SaveStats};
use ram_list::{RamList, PAGE_SIZE};
use rcu_core::{Memb, Reader};

/// When to stop iterating.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Bytes per iteration (one PART section), QEMU's rate-limit window.
    pub budget: u64,
    /// Expected downtime to converge to (QEMU's `downtime-limit`).
    pub downtime: Duration,
    /// Passes after which the vCPUs are stopped anyway.
    pub max_passes: u32,
}

impl Policy {
    /// From the command line's units: MiB per iteration (at least 1), milliseconds of
    /// downtime, and a pass limit (at least 1).
    pub fn new(budget_mib: u64, downtime_ms: u64, max_passes: u32) -> Policy {
        Policy {
            budget: budget_mib.max(1).saturating_mul(1 << 20),
            downtime: Duration::from_millis(downtime_ms),
            max_passes: max_passes.max(1),
        }
    }
}

/// One finished pass, as the loop decided on it.
#[derive(Debug, Clone, Copy)]
pub struct Pass {
    /// Its number, from 1 (the bulk pass).
    pub number: u32,
    /// Bytes it sent.
    pub bytes: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Its bandwidth, in bytes per second.
    pub bandwidth: f64,
    /// Pages the vCPUs dirtied meanwhile (found by the sync that ended it).
    pub dirty: u64,
    /// The downtime those pages would cost at this bandwidth.
    pub expected: Duration,
    /// The saver's counters after the sync.
    pub stats: SaveStats,
    /// The vCPU throttle in force during the pass, in percent.
    pub throttle: u32,
}

/// How the loop ended.
#[derive(Debug, Clone, Copy)]
pub struct Outcome {
    /// Passes run before the final one.
    pub passes: u32,
    /// Whether the expected downtime reached the target (else the pass limit stopped it).
    pub converged: bool,
    /// The highest vCPU throttle applied, in percent.
    pub max_throttle: u32,
}

/// Iterate until the migration converges or `policy.max_passes` passes ran, reporting
/// each pass to `on_pass`. `throttle` is the vCPUs' sleep percentage (auto-converge from
/// the fourth pass: 20%, then +10% a pass, as QEMU's `cpu-throttle-initial` and
/// `-increment`). The final pass (stopping the vCPUs, `complete`) is the caller's.
pub fn converge<W: Write>(
    w: &mut MigrationWriter<W>,
    list: &RamList<Memb>,
    reader: &Reader<Memb>,
    policy: &Policy,
    throttle: &AtomicU32,
    mut on_pass: impl FnMut(&Pass),
) -> Result<Outcome, SaveError> {
    let mut number = 1u32;
    let mut pass_start = Instant::now();
    let mut pass_bytes = 0u64;
    let mut max_throttle = 0;
    loop {
        let st = w.iterate(list, policy.budget, &reader.read_lock())?;
        pass_bytes += st.bytes;
        if st.remaining > 0 {
            continue;
        }
        // A pass is done: sync the dirty log and decide.
        let elapsed = pass_start.elapsed();
        let bandwidth = (pass_bytes as f64 / elapsed.as_secs_f64().max(1e-6)).max(1e6);
        let dirty = w.saver_mut().sync(list, &reader.read_lock())?;
        let expected = Duration::from_secs_f64(dirty as f64 * (PAGE_SIZE + 9) as f64 / bandwidth);
        on_pass(&Pass {
            number,
            bytes: pass_bytes,
            elapsed,
            bandwidth,
            dirty,
            expected,
            stats: w.saver().stats(),
            // Relaxed: a hint only this thread writes.
            throttle: throttle.load(Ordering::Relaxed),
        });
        number += 1;
        pass_start = Instant::now();
        pass_bytes = 0;
        let converged = expected <= policy.downtime;
        if converged || number > policy.max_passes {
            return Ok(Outcome {
                passes: number - 1,
                converged,
                max_throttle,
            });
        }
        if number >= 4 {
            // Relaxed: as above.
            let p = (throttle.load(Ordering::Relaxed) + if number == 4 { 20 } else { 10 }).min(99);
            throttle.store(p, Ordering::Relaxed);
            max_throttle = max_throttle.max(p);
        }
    }
}
