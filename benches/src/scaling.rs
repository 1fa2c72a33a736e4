//! The reader-scalability experiment behind `cargo run --release -p benches --bin scaling`.
//!
//! One *cell* runs `R` reader threads of one implementation for a fixed time, optionally
//! with one writer thread, and reports aggregate and per-reader reads/s, writes/s and the
//! peak number of retired-but-not-yet-freed payloads (sampled by the writer right after
//! each write, which is when that number is largest).

use std::fmt;
use std::hint::black_box;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use crate::imps::{self, Options, ReadHandle, SharedValue, Visit, WriteHandle};
use crate::payload;

/// Reads between two checks of the stop flag.
const BATCH: u64 = 64;

/// What the writer thread does during a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterMode {
    /// No writer: readers only.
    None,
    /// One writer replacing the value in a loop, as fast as it can.
    Busy,
    /// One writer replacing the value `n` times per second.
    Rate(u64),
}

impl WriterMode {
    /// A name usable in file names (`none`, `busy`, `rate-1000`).
    pub fn file_stem(&self) -> String {
        self.to_string().replace(':', "-")
    }
}

impl fmt::Display for WriterMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriterMode::None => f.write_str("none"),
            WriterMode::Busy => f.write_str("busy"),
            WriterMode::Rate(n) => write!(f, "rate:{n}"),
        }
    }
}

impl FromStr for WriterMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(WriterMode::None),
            "busy" => Ok(WriterMode::Busy),
            _ => match s.strip_prefix("rate:").map(str::parse::<u64>) {
                Some(Ok(n)) if n > 0 => Ok(WriterMode::Rate(n)),
                _ => Err(format!(
                    "bad writer mode {s:?}: expected none, busy or rate:N (N > 0 writes/s)"
                )),
            },
        }
    }
}

/// The result of one cell.
#[derive(Debug, Clone)]
pub struct CellResult {
    /// Implementation name.
    pub imp: &'static str,
    /// One of our flavors?
    pub ours: bool,
    /// Reader threads.
    pub readers: usize,
    /// Writer mode.
    pub writer: WriterMode,
    /// Aggregate reads per second (sum over readers of reads / own elapsed time).
    pub reads_per_s: f64,
    /// Mean reads per second per reader.
    pub reads_per_s_per_reader: f64,
    /// Slowest reader's reads per second.
    pub min_reader_reads_per_s: f64,
    /// Writes per second.
    pub writes_per_s: f64,
    /// Peak retired-but-not-yet-freed payloads seen by the writer.
    pub peak_pending: i64,
    /// The implementation's own peak backlog (ours only).
    pub own_peak_backlog: Option<u64>,
    /// Payloads still alive after the cell was torn down and reclaimed (should be 0).
    pub leaked: i64,
}

struct ReaderOut {
    reads: u64,
    elapsed: Duration,
}

struct WriterOut {
    writes: u64,
    elapsed: Duration,
    peak_pending: i64,
}

/// Run one cell with implementation `S`.
pub fn run_cell<S: SharedValue>(
    readers: usize,
    writer: WriterMode,
    duration: Duration,
    opts: &Options,
) -> CellResult {
    let base = payload::live();
    let shared = S::new(0, opts);
    let stop = AtomicBool::new(false);
    let with_writer = writer != WriterMode::None;
    let start = Barrier::new(readers + 1 + usize::from(with_writer));

    let (outs, wout) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..readers)
            .map(|i| {
                let (shared, stop, start) = (&shared, &stop, &start);
                std::thread::Builder::new()
                    .name(format!("reader-{i}"))
                    .spawn_scoped(s, move || reader_loop(shared, stop, start))
                    .expect("spawn reader")
            })
            .collect();
        let w = with_writer.then(|| {
            let (shared, stop, start) = (&shared, &stop, &start);
            std::thread::Builder::new()
                .name("writer".into())
                .spawn_scoped(s, move || writer_loop(shared, stop, start, writer, base))
                .expect("spawn writer")
        });
        start.wait();
        std::thread::sleep(duration);
        // Relaxed: the threads only need to see it eventually; results travel by join.
        stop.store(true, Ordering::Relaxed);
        let outs: Vec<ReaderOut> = handles
            .into_iter()
            .map(|h| h.join().expect("reader panicked"))
            .collect();
        let wout = w.map(|h| h.join().expect("writer panicked"));
        (outs, wout)
    });

    shared.reclaim(Duration::from_secs(5));
    let own_peak_backlog = shared.own_peak_backlog();
    drop(shared);
    let leaked = (payload::live() - base) as i64;

    let rates: Vec<f64> = outs
        .iter()
        .map(|o| o.reads as f64 / o.elapsed.as_secs_f64())
        .collect();
    let total: f64 = rates.iter().sum();
    let wout = wout.unwrap_or(WriterOut {
        writes: 0,
        elapsed: Duration::from_secs(1),
        peak_pending: 0,
    });
    CellResult {
        imp: S::NAME,
        ours: S::OURS,
        readers,
        writer,
        reads_per_s: total,
        reads_per_s_per_reader: total / readers.max(1) as f64,
        min_reader_reads_per_s: rates.iter().copied().fold(f64::INFINITY, f64::min),
        writes_per_s: wout.writes as f64 / wout.elapsed.as_secs_f64(),
        peak_pending: wout.peak_pending,
        own_peak_backlog,
        leaked,
    }
}

fn reader_loop<S: SharedValue>(shared: &S, stop: &AtomicBool, start: &Barrier) -> ReaderOut {
    let mut r = shared.reader();
    start.wait();
    let t0 = Instant::now();
    let mut reads = 0u64;
    let mut sum = 0u64;
    loop {
        for _ in 0..BATCH {
            sum = sum.wrapping_add(r.read());
        }
        reads += BATCH;
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    let elapsed = t0.elapsed();
    black_box(sum);
    ReaderOut { reads, elapsed }
}

fn writer_loop<S: SharedValue>(
    shared: &S,
    stop: &AtomicBool,
    start: &Barrier,
    mode: WriterMode,
    base: isize,
) -> WriterOut {
    let mut w = shared.writer();
    let period = match mode {
        WriterMode::Rate(n) => Some(Duration::from_secs_f64(1.0 / n as f64)),
        _ => None,
    };
    start.wait();
    let t0 = Instant::now();
    let mut next = t0;
    let mut writes = 0u64;
    let mut peak = 0isize;
    while !stop.load(Ordering::Relaxed) {
        writes += 1;
        w.write(writes);
        // Everything alive beyond the published value and the ones that existed before
        // the cell is retired and not yet freed.
        peak = peak.max(payload::live() - base - 1);
        if let Some(p) = period {
            next += p;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
        }
    }
    WriterOut {
        writes,
        elapsed: t0.elapsed(),
        peak_pending: peak as i64,
    }
}

/// Run one cell with the implementation called `name` (see [`imps::ALL`]).
pub fn run_named(
    name: &str,
    readers: usize,
    writer: WriterMode,
    duration: Duration,
    opts: &Options,
) -> Option<CellResult> {
    struct Cell<'a> {
        readers: usize,
        writer: WriterMode,
        duration: Duration,
        opts: &'a Options,
    }
    impl Visit for Cell<'_> {
        type Output = CellResult;
        fn visit<S: SharedValue>(self) -> CellResult {
            run_cell::<S>(self.readers, self.writer, self.duration, self.opts)
        }
    }
    imps::visit(
        name,
        Cell {
            readers,
            writer,
            duration,
            opts,
        },
    )
}

/// Format a rate with an SI suffix and three significant digits ("412M", "1.25k").
pub fn si(x: f64) -> String {
    let (v, suffix) = if x >= 1e9 {
        (x / 1e9, "G")
    } else if x >= 1e6 {
        (x / 1e6, "M")
    } else if x >= 1e3 {
        (x / 1e3, "k")
    } else {
        (x, "")
    };
    if v >= 100.0 {
        format!("{v:.0}{suffix}")
    } else if v >= 10.0 {
        format!("{v:.1}{suffix}")
    } else {
        format!("{v:.2}{suffix}")
    }
}

/// The best peer's aggregate reads/s among `results` with the same writer mode and reader
/// count as `r` (`None` if no peer ran).
pub fn best_peer<'a>(results: &'a [CellResult], r: &CellResult) -> Option<&'a CellResult> {
    results
        .iter()
        .filter(|o| !o.ours && o.writer == r.writer && o.readers == r.readers)
        .max_by(|a, b| a.reads_per_s.total_cmp(&b.reads_per_s))
}

/// The markdown table for one writer mode.
pub fn markdown_table(results: &[CellResult], writer: WriterMode) -> String {
    let mut out = String::new();
    out.push_str(
        "| readers | impl | reads/s (all readers) | reads/s per reader | x 1-reader | writes/s \
         | peak pending | vs best peer |\n|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let rows: Vec<&CellResult> = results.iter().filter(|r| r.writer == writer).collect();
    let mut counts: Vec<usize> = rows.iter().map(|r| r.readers).collect();
    counts.sort_unstable();
    counts.dedup();
    for n in counts {
        for r in rows.iter().filter(|r| r.readers == n) {
            let one = rows
                .iter()
                .find(|o| o.imp == r.imp && o.readers == 1)
                .map_or("-".to_owned(), |o| {
                    format!("{:.2}", r.reads_per_s / o.reads_per_s)
                });
            let peer = best_peer(results, r).map_or("-".to_owned(), |p| {
                let name = if std::ptr::eq(*r, p) {
                    "best peer".to_owned()
                } else {
                    p.imp.to_owned()
                };
                format!("{:.2}x {}", r.reads_per_s / p.reads_per_s, name)
            });
            let imp = if r.ours {
                format!("**{}**", r.imp)
            } else {
                r.imp.to_owned()
            };
            let writes = if writer == WriterMode::None {
                "-".to_owned()
            } else {
                si(r.writes_per_s)
            };
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.readers,
                imp,
                si(r.reads_per_s),
                si(r.reads_per_s_per_reader),
                one,
                writes,
                r.peak_pending,
                peer
            ));
        }
    }
    out
}

/// Escape a string for JSON.
pub fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A JSON number (non-finite values become `null`).
fn json_num(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.1}")
    } else {
        "null".to_owned()
    }
}

impl CellResult {
    /// This result as a JSON object.
    pub fn to_json(&self) -> String {
        format!(
            "{{\"impl\":{},\"ours\":{},\"readers\":{},\"writer\":{},\"reads_per_s\":{},\
             \"reads_per_s_per_reader\":{},\"min_reader_reads_per_s\":{},\"writes_per_s\":{},\
             \"peak_pending\":{},\"own_peak_backlog\":{},\"leaked\":{}}}",
            json_str(self.imp),
            self.ours,
            self.readers,
            json_str(&self.writer.to_string()),
            json_num(self.reads_per_s),
            json_num(self.reads_per_s_per_reader),
            json_num(self.min_reader_reads_per_s),
            json_num(self.writes_per_s),
            self.peak_pending,
            self.own_peak_backlog
                .map_or("null".to_owned(), |b| b.to_string()),
            self.leaked
        )
    }
}
