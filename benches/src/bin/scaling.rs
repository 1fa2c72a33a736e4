//! Reader scalability: reads/s against reader threads, per implementation, with and without
//! a writer. Prints a markdown table and writes `scaling.md`, `scaling.json` and one SVG
//! plot per writer mode into `--out`.
//!
//! ```text
//! cargo run --release -p benches --bin scaling -- --smoke
//! cargo run --release -p benches --bin scaling -- --threads 1,2,4 --writer none,busy --duration-ms 2000
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use benches::imps::{self, Options};
use benches::machine::{self, Machine};
use benches::plot::{self, Series};
use benches::scaling::{self, CellResult, WriterMode};
use clap::Parser;

/// Reader scalability of our RCU flavors against crossbeam-epoch, arc-swap, seize and locks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Implementations, comma-separated (default: all). Known: memb, mb, qsbr,
    /// crossbeam-epoch, arc-swap, seize, std-rwlock, parking_lot-rwlock, std-mutex.
    #[arg(long, value_delimiter = ',')]
    impls: Vec<String>,
    /// Reader thread counts, comma-separated (default: 1, 2, ..., available parallelism,
    /// and twice that, oversubscribed).
    #[arg(long, value_delimiter = ',')]
    threads: Vec<usize>,
    /// Writer modes, comma-separated: none, busy (non-stop writer), rate:N (N writes/s).
    #[arg(long, value_delimiter = ',', default_value = "none,busy,rate:10000")]
    writer: Vec<WriterMode>,
    /// Measured time per cell, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    duration_ms: u64,
    /// QSBR readers announce a quiescent state every N reads.
    #[arg(long, default_value_t = 1024)]
    qsbr_every: u32,
    /// Run every cell this many times and keep the median (by aggregate reads/s).
    #[arg(long, default_value_t = 1)]
    runs: usize,
    /// Output directory for `scaling.md`, `scaling.json` and `scaling-<writer>.svg`.
    #[arg(long, default_value = "target/scaling")]
    out: PathBuf,
    /// Print JSON on stdout instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Quick check for CI: every implementation, 1, 2 and 2x-oversubscribed readers,
    /// every writer mode, 25 ms cells; fails if a cell leaks or makes no progress.
    #[arg(long)]
    smoke: bool,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    let machine = Machine::probe();
    let p = machine.cpus;
    if args.smoke {
        args.impls.clear();
        args.threads = vec![1, 2, 2 * p];
        args.writer = vec![WriterMode::None, WriterMode::Busy, WriterMode::Rate(1000)];
        args.duration_ms = 25;
        args.runs = 1;
    }
    if args.impls.is_empty() {
        args.impls = imps::ALL.iter().map(|s| (*s).to_owned()).collect();
    }
    for name in &args.impls {
        if !imps::ALL.contains(&name.as_str()) {
            eprintln!(
                "unknown implementation {name:?}; known: {}",
                imps::ALL.join(", ")
            );
            return ExitCode::from(2);
        }
    }
    if args.threads.is_empty() {
        args.threads = (1..=p).chain([2 * p]).collect();
    }
    args.threads.retain(|&t| t > 0);
    args.threads.sort_unstable();
    args.threads.dedup();
    let opts = Options {
        qsbr_every: args.qsbr_every.max(1),
    };
    let duration = Duration::from_millis(args.duration_ms);
    let date = machine::now_utc();
    let t0 = Instant::now();

    let mut results: Vec<CellResult> = Vec::new();
    let mut failures = Vec::new();
    for &writer in &args.writer {
        for &readers in &args.threads {
            for name in &args.impls {
                let mut runs: Vec<CellResult> = (0..args.runs.max(1))
                    .map(|_| {
                        scaling::run_named(name, readers, writer, duration, &opts)
                            .expect("name checked above")
                    })
                    .collect();
                runs.sort_by(|a, b| a.reads_per_s.total_cmp(&b.reads_per_s));
                let r = runs.swap_remove(runs.len() / 2);
                eprintln!(
                    "writer {:<10} readers {:>3} {:<18} {:>9} reads/s ({:>8}/reader) {:>8} writes/s peak pending {}",
                    writer.to_string(),
                    readers,
                    r.imp,
                    scaling::si(r.reads_per_s),
                    scaling::si(r.reads_per_s_per_reader),
                    scaling::si(r.writes_per_s),
                    r.peak_pending
                );
                if r.leaked != 0 {
                    failures.push(format!(
                        "{} (writer {writer}, {readers} readers): {} payloads still alive after reclaim",
                        r.imp, r.leaked
                    ));
                }
                if r.reads_per_s <= 0.0 || (writer != WriterMode::None && r.writes_per_s <= 0.0) {
                    failures.push(format!(
                        "{} (writer {writer}, {readers} readers): no progress",
                        r.imp
                    ));
                }
                results.push(r);
            }
        }
    }

    let header = format!(
        "Measured {date} on {} at start ({} ms per cell, median of {} run(s), qsbr quiescent state every {} reads).",
        machine.summary_with_load(),
        args.duration_ms,
        args.runs.max(1),
        opts.qsbr_every
    );
    let mut md = format!("{header}\n");
    for &writer in &args.writer {
        let what = match writer {
            WriterMode::None => "readers only".to_owned(),
            WriterMode::Busy => "one writer replacing the value non-stop".to_owned(),
            WriterMode::Rate(n) => format!("one writer replacing the value {n} times/s"),
        };
        md.push_str(&format!("\n### Writer: {writer} ({what})\n\n"));
        md.push_str(&scaling::markdown_table(&results, writer));
    }
    let json = format!(
        "{{\"date\":{},\"machine\":{{\"cpus\":{},\"cpu_model\":{},\"kernel\":{},\"loadavg_at_start\":{},\"membarrier\":{}}},\
         \"duration_ms\":{},\"runs\":{},\"qsbr_every\":{},\"results\":[\n{}\n]}}\n",
        scaling::json_str(&date),
        machine.cpus,
        scaling::json_str(&machine.cpu_model),
        scaling::json_str(&machine.kernel),
        scaling::json_str(&machine.load),
        machine.membarrier,
        args.duration_ms,
        args.runs.max(1),
        opts.qsbr_every,
        results
            .iter()
            .map(CellResult::to_json)
            .collect::<Vec<_>>()
            .join(",\n")
    );

    if let Err(e) = write_outputs(&args, &results, &md, &json, &date, &machine) {
        eprintln!("cannot write to {}: {e}", args.out.display());
        return ExitCode::FAILURE;
    }
    if args.json {
        print!("{json}");
    } else {
        print!("{md}");
    }
    eprintln!(
        "{} cells in {:.1} s; wrote {}/scaling.{{md,json}} and scaling-<writer>.svg",
        results.len(),
        t0.elapsed().as_secs_f64(),
        args.out.display()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("FAIL: {f}");
        }
        ExitCode::FAILURE
    }
}

fn write_outputs(
    args: &Args,
    results: &[CellResult],
    md: &str,
    json: &str,
    date: &str,
    machine: &Machine,
) -> std::io::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(args.out.join("scaling.md"), md)?;
    std::fs::write(args.out.join("scaling.json"), json)?;
    for &writer in &args.writer {
        let series: Vec<Series> = args
            .impls
            .iter()
            .filter_map(|name| {
                let points: Vec<(f64, f64)> = results
                    .iter()
                    .filter(|r| r.imp == name && r.writer == writer)
                    .map(|r| (r.readers as f64, r.reads_per_s))
                    .collect();
                (!points.is_empty()).then(|| Series {
                    name: name.clone(),
                    emphasized: imps::is_ours(name),
                    points,
                })
            })
            .collect();
        let title = match writer {
            WriterMode::None => "Aggregate reads/s, readers only".to_owned(),
            WriterMode::Busy => "Aggregate reads/s, one non-stop writer".to_owned(),
            WriterMode::Rate(n) => format!("Aggregate reads/s, one writer at {n} writes/s"),
        };
        let subtitle = format!(
            "{}; {date}; {} ms per point",
            machine.summary(),
            args.duration_ms
        );
        let svg = plot::line_plot(
            &title,
            &subtitle,
            "reader threads",
            "reads/s (log scale)",
            &series,
        );
        std::fs::write(
            args.out.join(format!("scaling-{}.svg", writer.file_stem())),
            svg,
        )?;
    }
    Ok(())
}
