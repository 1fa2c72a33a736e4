//! The Rust twin's timing loops: the same shapes as `TWIN_FOR_BUDGET` and
//! `TWIN_UNTIL_STOP` in `benches/c/twin.h` (the clock read once per batch, the kernel
//! timing its own loop).
//!
//! The batch closure captures the kernel's locals by reference; they stay plain locals (no
//! struct whose address escapes), so the optimiser keeps them in registers as C's are.

use std::time::Instant;

use super::twin::{Control, Counts};

/// Run `batch` (worth `per_batch` operations) until `budget_ns` has passed.
#[inline(always)]
pub(crate) fn for_budget(budget_ns: u64, per_batch: u64, mut batch: impl FnMut()) -> Counts {
    let t0 = Instant::now();
    let mut ops = 0;
    loop {
        batch();
        ops += per_batch;
        let ns = t0.elapsed().as_nanos() as u64;
        if ns >= budget_ns {
            return Counts {
                ops,
                ns,
                ..Counts::default()
            };
        }
    }
}

/// Run `batch` until the harness says stop (checked after each batch, so every worker does
/// at least one however late it is scheduled).
#[inline(always)]
pub(crate) fn until_stop(ctl: &Control, per_batch: u64, mut batch: impl FnMut()) -> Counts {
    let t0 = Instant::now();
    let mut ops = 0;
    loop {
        batch();
        ops += per_batch;
        if ctl.stopped() {
            break;
        }
    }
    Counts {
        ops,
        ns: t0.elapsed().as_nanos() as u64,
        ..Counts::default()
    }
}
