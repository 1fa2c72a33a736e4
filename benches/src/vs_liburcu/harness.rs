//! The measurements: for one twin, set up the cell and the threads a row needs, run the
//! twin's kernels on them, and turn their counts into the row's numbers.
//!
//! Both twins go through exactly this code: the same threads (all created here, with
//! `std::thread`), the same start/stop protocol ([`Control`]), the same windows. Every
//! kernel runs on a fresh thread, so no registration or thread-local state of one
//! measurement is left in the next.
//!
//! The timed single-thread loops (read rows, synchronize rows) run their budget in
//! [`Settings::slices`] equal slices, each a separate kernel call on the same thread, and
//! the run's value is the median slice's time per operation. The read rows (which never
//! block) are timed by default in the thread's CPU time ([`Clock::ThreadCpu`]), so that
//! on a shared machine the time another process had the CPU is not counted as read cost;
//! the synchronize rows, whose cost is mostly waiting, in wall time. Both twins are
//! measured the same way.

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use super::results::{Row, Stat};
use super::twin::{empty_cell, Cell, Control, Counts, MakeTwin, Twin};

/// Durations and sizes of the measurements.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Time budget of each single-thread read loop (and the baseline).
    pub read: Duration,
    /// Time budget of each synchronize loop.
    pub sync: Duration,
    /// Window of the updater + busy readers rows.
    pub update: Duration,
    /// Callbacks queued by the call_rcu row.
    pub callbacks: u64,
    /// Slices of each read and synchronize budget (the run's value is the median slice).
    pub slices: u32,
    /// What the read rows' time per read counts.
    pub read_clock: Clock,
}

/// What a sliced loop's time per operation counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// The kernel's own wall-clock time (CLOCK_MONOTONIC, around its loop).
    Wall,
    /// The thread's CPU time around the kernel call (CLOCK_THREAD_CPUTIME_ID): excludes
    /// time the thread was preempted; includes the kernel's registration, negligible next
    /// to a slice.
    ThreadCpu,
}

impl Settings {
    /// The defaults: about two minutes for five runs on two cores.
    pub const DEFAULT: Settings = Settings {
        read: Duration::from_millis(200),
        sync: Duration::from_millis(300),
        update: Duration::from_millis(1000),
        callbacks: 1_000_000,
        slices: 10,
        read_clock: Clock::ThreadCpu,
    };

    /// CI's smoke settings: every row, tiny durations.
    pub const SMOKE: Settings = Settings {
        read: Duration::from_millis(5),
        sync: Duration::from_millis(5),
        update: Duration::from_millis(50),
        callbacks: 20_000,
        slices: 2,
        read_clock: Clock::ThreadCpu,
    };
}

/// How long the harness waits for workers to register before giving up on a measurement.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// What one measurement produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Outcome {
    /// Row values (ns per operation for times, per second for throughputs).
    pub values: Vec<(Row, f64)>,
    /// Poisoned reads seen by its readers.
    pub poisoned: u64,
    /// What went wrong, if anything.
    pub problems: Vec<String>,
}

impl Outcome {
    fn problem(&mut self, what: String) {
        self.problems.push(what);
    }
}

/// Run the measurement of `row` (one that [`Row::is_measured`]) on a fresh twin from
/// `make`: which kernels on which threads.
pub fn measure(row: Row, make: MakeTwin, s: &Settings) -> Outcome {
    // Every unsafe call below on `cell` keeps [`Twin`]'s contract the same way (call it H):
    // the cell is this function's own, starts null and is published into, read, updated
    // and reclaimed only by this one `twin` value; the read-only rows run no updater; the
    // threads of a row are scoped, so all have been joined before `reclaim`.
    let twin = make();
    let twin = &*twin;
    let cell = empty_cell();
    // SAFETY: H (the cell is null).
    unsafe { twin.publish(&cell, 1) };
    let mut out = Outcome::default();
    match row {
        Row::ReadReader => read_row(&mut out, Row::ReadReader, s, |b| {
            // SAFETY: H.
            Some(unsafe { twin.read_loop(&cell, b) })
        }),
        Row::ReadFree => read_row(&mut out, Row::ReadFree, s, |b| {
            // SAFETY: H (no updater in this row).
            unsafe { twin.read_loop_free_fns(&cell, b) }
        }),
        Row::PlainLoad => read_row(&mut out, Row::PlainLoad, s, |b| {
            // SAFETY: H (no updater in this row).
            Some(unsafe { twin.plain_loop(&cell, b) })
        }),
        Row::SyncNoReader => {
            let t = on_thread(|| sync_slices(twin, s));
            time_row(&mut out, Row::SyncNoReader, t);
        }
        Row::SyncIdleReader => sync_idle(&mut out, twin, s),
        // SAFETY: H.
        Row::SyncBusyReader => unsafe { sync_busy(&mut out, twin, &cell, s) },
        // SAFETY: H.
        Row::Updates1 => unsafe { updates(&mut out, twin, &cell, 1, s) },
        // SAFETY: H.
        Row::Updates2 => unsafe { updates(&mut out, twin, &cell, 2, s) },
        Row::CallRcu => {
            let c = on_thread(|| twin.call_barrier(s.callbacks));
            if c.check != s.callbacks {
                out.problem(format!(
                    "call_rcu: {} of {} callbacks ran before the barrier returned",
                    c.check, s.callbacks
                ));
            }
            out.values.push((Row::CallRcu, c.per_second()));
        }
        Row::Reads1 | Row::Reads2 | Row::TooShortGracePeriods => {
            out.problem(format!("{}: not measured by itself", row.key()));
        }
    }
    // SAFETY: H (every thread has been joined).
    unsafe { twin.reclaim(&cell) };
    out
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Run `f` on a fresh thread and return its result (re-raising its panic).
fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        s.spawn(f)
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// A sliced timing: the median slice's ns per operation, and every slice's counts summed.
struct Sliced {
    median: f64,
    total: Counts,
}

/// Run `kernel` `slices` times on the calling thread, each with an equal share of
/// `budget`, timed by `clock`; `None` if the kernel has no such path.
fn sliced(
    slices: u32,
    budget: Duration,
    clock: Clock,
    mut kernel: impl FnMut(u64) -> Option<Counts>,
) -> Option<Sliced> {
    let share = nanos(budget) / u64::from(slices.max(1));
    let mut per_op = Vec::new();
    let mut total = Counts::default();
    for _ in 0..slices.max(1) {
        let cpu0 = thread_cpu_ns();
        let c = kernel(share)?;
        let cpu = thread_cpu_ns() - cpu0;
        per_op.push(match clock {
            Clock::Wall => c.ns_per_op(),
            Clock::ThreadCpu => cpu as f64 / c.ops.max(1) as f64,
        });
        total.ops += c.ops;
        total.ns += c.ns;
        total.check = total.check.wrapping_add(c.check);
    }
    Some(Sliced {
        median: Stat::of(&per_op)?.median,
        total,
    })
}

/// The synchronize loop, sliced.
fn sync_slices(twin: &dyn Twin, s: &Settings) -> Sliced {
    sliced(s.slices, s.sync, Clock::Wall, |b| Some(twin.sync_loop(b)))
        .expect("every twin has a sync loop")
}

/// The calling thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel
    // knows (it cannot fail for the calling thread).
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn time_row(out: &mut Outcome, row: Row, t: Sliced) {
    if t.total.ops == 0 {
        out.problem(format!("{}: no operation done", row.key()));
    }
    out.values.push((row, t.median));
}

/// A single-thread read loop over the published value 1: its sum must equal its reads.
fn read_row(
    out: &mut Outcome,
    row: Row,
    s: &Settings,
    kernel: impl FnMut(u64) -> Option<Counts> + Send,
) {
    let Some(t) = on_thread(|| sliced(s.slices, s.read, s.read_clock, kernel)) else {
        return; // the flavor has no such path; the table says so
    };
    let c = t.total;
    if c.check != c.ops {
        out.problem(format!(
            "{}: read {} values summing to {} (each is 1)",
            row.key(),
            c.ops,
            c.check
        ));
    }
    time_row(out, row, t);
}

fn sync_idle(out: &mut Outcome, twin: &dyn Twin, s: &Settings) {
    let ctl = Control::default();
    let (tx, rx) = mpsc::channel::<()>();
    let c = thread::scope(|sc| {
        let ctl = &ctl;
        let idle = sc.spawn(move || {
            twin.idle_reader(&mut || {
                ctl.arrive();
                let _ = rx.recv();
            })
        });
        let arrived = ctl.wait_ready(1, ARRIVAL_TIMEOUT);
        let c = arrived.then(|| on_thread(|| sync_slices(twin, s)));
        drop(tx);
        let _ = idle.join();
        c
    });
    match c {
        Some(c) => time_row(out, Row::SyncIdleReader, c),
        None => out.problem("sync_idle_reader: the idle reader never registered".into()),
    }
}

/// # Safety
///
/// [`Twin`]'s contract holds for `cell` and `twin`, and nothing else runs on `cell`.
unsafe fn sync_busy(out: &mut Outcome, twin: &dyn Twin, cell: &Cell, s: &Settings) {
    let ctl = Control::default();
    let (c, reader) = thread::scope(|sc| {
        // SAFETY: the caller's contract; the only thread on `cell`, joined in this scope.
        let reader = sc.spawn(|| unsafe { twin.busy_reader(cell, &ctl) });
        let arrived = ctl.wait_ready(1, ARRIVAL_TIMEOUT);
        ctl.go();
        let c = arrived.then(|| on_thread(|| sync_slices(twin, s)));
        ctl.stop();
        (c, join(reader))
    });
    out.poisoned += reader.poisoned;
    match c {
        Some(c) => time_row(out, Row::SyncBusyReader, c),
        None => out.problem("sync_busy_reader: the busy reader never registered".into()),
    }
}

/// # Safety
///
/// As for [`sync_busy`].
unsafe fn updates(out: &mut Outcome, twin: &dyn Twin, cell: &Cell, readers: u32, s: &Settings) {
    let ctl = Control::default();
    let (arrived, updater, reads) = thread::scope(|sc| {
        let rs: Vec<_> = (0..readers)
            .map(|_| {
                // SAFETY: the caller's contract: readers and one updater of the same twin,
                // all joined in this scope.
                sc.spawn(|| unsafe { twin.busy_reader(cell, &ctl) })
            })
            .collect();
        // SAFETY: as for the readers.
        let u = sc.spawn(|| unsafe { twin.updater(cell, &ctl) });
        let arrived = ctl.wait_ready(readers + 1, ARRIVAL_TIMEOUT);
        ctl.go();
        if arrived {
            thread::sleep(s.update);
        }
        ctl.stop();
        let reads: Vec<Counts> = rs.into_iter().map(join).collect();
        (arrived, join(u), reads)
    });
    let (urow, rrow) = if readers == 1 {
        (Row::Updates1, Row::Reads1)
    } else {
        (Row::Updates2, Row::Reads2)
    };
    if !arrived {
        out.problem(format!("{}: a worker never registered", urow.key()));
        return;
    }
    out.poisoned += reads.iter().map(|c| c.poisoned).sum::<u64>();
    if updater.ops == 0 || reads.iter().any(|c| c.ops == 0) {
        out.problem(format!(
            "{}: no progress (updates {}, reads {:?})",
            urow.key(),
            updater.ops,
            reads.iter().map(|c| c.ops).collect::<Vec<_>>()
        ));
    }
    out.values.push((urow, updater.per_second()));
    let per_reader = reads.iter().map(Counts::per_second).sum::<f64>() / reads.len() as f64;
    out.values.push((rrow, per_reader));
}

fn join(h: thread::ScopedJoinHandle<'_, Counts>) -> Counts {
    h.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
}
