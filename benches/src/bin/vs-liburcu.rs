//! rcu-core against liburcu: the same work in C and in Rust, interleaved run by run, one
//! table of medians, spreads and ratios.
//!
//! ```text
//! cargo run --release -p benches --bin vs-liburcu                 # 5 runs, about 2 minutes
//! cargo run --release -p benches --bin vs-liburcu -- --runs 9 --json
//! cargo run --release -p benches --bin vs-liburcu -- --smoke --require-liburcu   # CI
//! ```
//!
//! Exits 1 if any too-short grace period was seen, a kernel reported a problem, or (with
//! `--smoke`) a cell has no number; liburcu missing at build time is an error only with
//! `--require-liburcu` (otherwise only our twin runs, and the table says so).

use std::process::{Command, ExitCode};
use std::time::Duration;

use benches::machine::{self, Machine};
use benches::vs_liburcu::harness::{Clock, Settings};
use benches::vs_liburcu::report::{self, Header};
use benches::vs_liburcu::runner;
use clap::Parser;

/// rcu-core against liburcu (memb, qsbr, mb): the same work in both languages.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Interleaved runs per cell (the table shows medians and the spread across runs).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    runs: u64,
    /// Time budget of each read loop, in milliseconds.
    #[arg(long, default_value_t = Settings::DEFAULT.read.as_millis() as u64, value_parser = ms())]
    read_ms: u64,
    /// Time budget of each synchronize loop, in milliseconds.
    #[arg(long, default_value_t = Settings::DEFAULT.sync.as_millis() as u64, value_parser = ms())]
    sync_ms: u64,
    /// Window of each updater + busy readers measurement, in milliseconds.
    #[arg(long, default_value_t = Settings::DEFAULT.update.as_millis() as u64, value_parser = ms())]
    update_ms: u64,
    /// Callbacks queued by the call_rcu row (at most 100 million).
    #[arg(long, default_value_t = Settings::DEFAULT.callbacks,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    callbacks: u64,
    /// Slices of each read and synchronize budget: a run's figure is the median slice.
    #[arg(long, default_value_t = Settings::DEFAULT.slices,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    slices: u32,
    /// Time the read rows in wall-clock time instead of the thread's CPU time (which
    /// leaves out the time other processes had the CPU).
    #[arg(long)]
    read_wall_clock: bool,
    /// Print JSON on stdout instead of the markdown table.
    #[arg(long)]
    json: bool,
    /// Quick check for CI: one run, tiny durations; fails unless every row produced a
    /// number and no grace period was too short.
    #[arg(long)]
    smoke: bool,
    /// Fail if the C twin was not built (liburcu not found at build time).
    #[arg(long)]
    require_liburcu: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (settings, runs) = if args.smoke {
        (Settings::SMOKE, 1)
    } else {
        let ms = Duration::from_millis;
        let s = Settings {
            read: ms(args.read_ms),
            sync: ms(args.sync_ms),
            update: ms(args.update_ms),
            callbacks: args.callbacks,
            slices: args.slices,
            read_clock: if args.read_wall_clock {
                Clock::Wall
            } else {
                Clock::ThreadCpu
            },
        };
        (s, args.runs as usize)
    };
    let liburcu = runner::liburcu_version();
    if liburcu.is_none() {
        eprintln!(
            "vs-liburcu: liburcu was not found when benches was built (install liburcu-dev \
             and rebuild); measuring only rcu-core"
        );
        if args.require_liburcu {
            return ExitCode::FAILURE;
        }
    }

    let machine = Machine::probe();
    let results = runner::run(&runner::pairs(), &settings, runs, |what| {
        eprintln!("vs-liburcu: {what}");
    });
    let header = Header {
        machine: machine.summary_with_load(),
        commit: commit(),
        date: machine::now_utc(),
        liburcu: liburcu.map(str::to_owned),
        runs,
        settings: format!(
            "read loops {} ms ({} time), synchronize loops {} ms (wall time), each the median \
             of {} slices; update windows {} ms; call_rcu × {}",
            settings.read.as_millis(),
            match settings.read_clock {
                Clock::Wall => "wall",
                Clock::ThreadCpu => "thread CPU",
            },
            settings.sync.as_millis(),
            settings.slices,
            settings.update.as_millis(),
            settings.callbacks
        ),
        callbacks: settings.callbacks,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::json(&results, &header))
                .expect("a JSON value serialises")
        );
    } else {
        print!("{}", report::markdown(&results, &header));
    }

    let mut failed = false;
    let too_short = results.too_short_grace_periods();
    if too_short > 0.0 {
        eprintln!("vs-liburcu: FAILED: {too_short} reads saw a freed (poisoned) value");
        failed = true;
    }
    for p in &results.problems {
        eprintln!("vs-liburcu: FAILED: {p}");
        failed = true;
    }
    if args.smoke {
        for m in results.missing(liburcu.is_some()) {
            eprintln!("vs-liburcu: FAILED: {m}");
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `git rev-parse --short HEAD`, with "-dirty" when the work tree has changes; "unknown"
/// outside a git checkout.
fn commit() -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    match git(&["rev-parse", "--short", "HEAD"]) {
        Some(c) => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"])
                .is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{c}-dirty")
            } else {
                c
            }
        }
        None => "unknown".into(),
    }
}

/// Durations on the command line: 1 ms to 10 minutes.
fn ms() -> clap::builder::RangedU64ValueParser {
    clap::value_parser!(u64).range(1..=600_000)
}
