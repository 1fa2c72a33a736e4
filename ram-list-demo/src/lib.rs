//! The `ram-list` program: a simulated VM that live-migrates its RAM while vCPUs write it
//! and DIMMs are hot-plugged, a reader of QEMU migration files, and a live-migration
//! endpoint for a real QEMU in both directions.
//!
//! ```text
//! cargo run --release                        # the live-migration demo, default sizes
//! cargo run --release -- --destination qemu  # the same show, into a real QEMU
//! cargo run --release -- inspect ram-list/tests/fixtures/microvm-2m.qemu
//! cargo run --release -- incoming tcp:127.0.0.1:4444 --dump ram-dir
//! cargo run --release -- migrate tcp:127.0.0.1:4444 -m 64 --load kernel.bin@0x100000
//! ```
//!
//! The library part holds what the program's tests share with it: [`uri`] (QEMU's
//! migration URIs, opened as either end) and [`qemu`] (a QEMU process driven over QMP).

mod blocks;
mod cli;
mod demo;
mod error;
mod incoming;
mod inspect;
mod precopy;
pub mod qemu;
mod rng;
mod source;
pub mod uri;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// Run the program with the process's arguments; the exit code says whether it worked
/// (errors are printed on one line, each cause once).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Command::Inspect(args)) => inspect::run(&args),
        Some(Command::Incoming(args)) => incoming::run(&args),
        Some(Command::Migrate(args)) => source::run(&args),
        None => demo::run(&cli.demo),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ram-list: {}", error::report(&*e));
            ExitCode::FAILURE
        }
    }
}
