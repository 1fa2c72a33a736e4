//! The `vs-liburcu` harness end to end: every measurement of every twin (the C twin too
//! where liburcu was found at build time) produces numbers and no too-short grace period,
//! and the harness reports the failures it exists to catch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use benches::vs_liburcu::harness::{self, Clock, Settings};
use benches::vs_liburcu::results::{FlavorName, Lang, Row};
use benches::vs_liburcu::runner;
use benches::vs_liburcu::twin::{Cell, Control, Counts, Twin};

const TINY: Settings = Settings {
    read: Duration::from_millis(2),
    sync: Duration::from_millis(2),
    update: Duration::from_millis(20),
    callbacks: 5_000,
    slices: 2,
    read_clock: Clock::ThreadCpu,
};

/// Run `f` on a thread; fail (instead of hanging) if it takes longer than `limit`.
fn with_watchdog<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|e| panic!("no result within {limit:?} ({e}): a kernel hangs"))
}

#[test]
fn every_row_of_every_twin_produces_a_number() {
    let results = with_watchdog(Duration::from_secs(120), || {
        runner::run(&runner::pairs(), &TINY, 1, |_| ())
    });
    let with_liburcu = runner::liburcu_version().is_some();
    assert!(results.problems.is_empty(), "{:#?}", results.problems);
    assert_eq!(results.missing(with_liburcu), Vec::<String>::new());
    assert_eq!(results.too_short_grace_periods(), 0.0);
    // Both twins ran where liburcu is present; only ours otherwise.
    let theirs = results.samples(Row::SyncNoReader, FlavorName::Qsbr, Lang::Liburcu);
    assert_eq!(theirs.len(), usize::from(with_liburcu));
    assert!(results
        .samples(Row::ReadFree, FlavorName::Mb, Lang::Ours)
        .is_empty());
}

/// A twin that does nothing, with knobs for what it reports.
struct Fake {
    poisoned: u64,
    callbacks_short: u64,
    sum_off: u64,
    /// Read loops called so far; the first one reports 100 times the others' time.
    reads: AtomicU64,
}

impl Twin for Fake {
    unsafe fn publish(&self, _cell: &Cell, _value: u64) {}
    unsafe fn reclaim(&self, _cell: &Cell) {}
    unsafe fn plain_loop(&self, _cell: &Cell, _budget_ns: u64) -> Counts {
        // SAFETY: the fake touches no cell.
        unsafe { self.read_loop(_cell, _budget_ns) }
    }
    unsafe fn read_loop(&self, _cell: &Cell, _budget_ns: u64) -> Counts {
        let first = self.reads.fetch_add(1, Ordering::Relaxed) == 0;
        Counts {
            ops: 1000,
            ns: if first { 200_000 } else { 2000 },
            poisoned: 0,
            check: 1000 + self.sum_off,
        }
    }
    unsafe fn read_loop_free_fns(&self, _cell: &Cell, _budget_ns: u64) -> Option<Counts> {
        None
    }
    unsafe fn busy_reader(&self, _cell: &Cell, ctl: &Control) -> Counts {
        ctl.arrive_and_wait_go();
        while !ctl.stopped() {
            thread::yield_now();
        }
        Counts {
            ops: 10,
            ns: 10,
            poisoned: self.poisoned,
            check: 0,
        }
    }
    unsafe fn updater(&self, _cell: &Cell, ctl: &Control) -> Counts {
        // SAFETY: the fake touches no cell.
        unsafe { self.busy_reader(_cell, ctl) }
    }
    fn idle_reader(&self, wait: &mut dyn FnMut()) {
        wait();
    }
    fn sync_loop(&self, _budget_ns: u64) -> Counts {
        Counts {
            ops: 4,
            ns: 400,
            ..Counts::default()
        }
    }
    fn call_barrier(&self, n: u64) -> Counts {
        Counts {
            ops: n,
            ns: 1_000_000,
            poisoned: 0,
            check: n - self.callbacks_short,
        }
    }
}

fn fake(poisoned: u64, callbacks_short: u64, sum_off: u64) -> Box<dyn Twin> {
    Box::new(Fake {
        poisoned,
        callbacks_short,
        sum_off,
        reads: AtomicU64::new(0),
    })
}

fn honest() -> Box<dyn Twin> {
    fake(0, 0, 0)
}

#[test]
fn rows_are_computed_from_the_kernels_counts() {
    // Three slices, the first 100 times slower (preempted): the median slice decides.
    // (Wall clock: the fake reports its times instead of spending them.)
    let three = Settings {
        slices: 3,
        read_clock: Clock::Wall,
        ..TINY
    };
    let out = harness::measure(Row::ReadReader, honest, &three);
    assert_eq!(out.values, [(Row::ReadReader, 2.0)]);
    let out = harness::measure(Row::SyncIdleReader, honest, &TINY);
    assert_eq!(out.values, [(Row::SyncIdleReader, 100.0)]);
    let out = harness::measure(Row::Updates2, honest, &TINY);
    // 10 operations in 10 ns: 1e9 per second, for the updater and each reader.
    assert_eq!(out.values, [(Row::Updates2, 1e9), (Row::Reads2, 1e9)]);
    let out = harness::measure(Row::CallRcu, honest, &TINY);
    assert_eq!(out.values, [(Row::CallRcu, TINY.callbacks as f64 * 1e3)]);
    assert!(out.problems.is_empty());
    // A flavor without free functions yields no value (the table says n/a), no problem.
    let out = harness::measure(Row::ReadFree, honest, &TINY);
    assert!(out.values.is_empty() && out.problems.is_empty());
}

#[test]
fn poisoned_reads_are_counted() {
    let out = harness::measure(Row::Updates2, || fake(3, 0, 0), &TINY);
    assert_eq!(out.poisoned, 6);
    let out = harness::measure(Row::SyncBusyReader, || fake(3, 0, 0), &TINY);
    assert_eq!(out.poisoned, 3);
    let pairs = [runner::Pair {
        flavor: FlavorName::Mb,
        ours: || fake(3, 0, 0),
        liburcu: None,
    }];
    let results = runner::run(&pairs, &TINY, 1, |_| ());
    // 3 per busy reader: 1 reader (Updates1) + 2 readers (Updates2) + 1 (SyncBusyReader).
    assert_eq!(results.too_short_grace_periods(), 12.0);
}

#[test]
fn lost_callbacks_and_wrong_sums_are_problems() {
    let out = harness::measure(Row::CallRcu, || fake(0, 1, 0), &TINY);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
    assert!(
        out.problems[0].contains("4999 of 5000"),
        "{:?}",
        out.problems
    );
    let out = harness::measure(Row::PlainLoad, || fake(0, 0, 7), &TINY);
    assert_eq!(out.problems.len(), 1, "{:?}", out.problems);
}
