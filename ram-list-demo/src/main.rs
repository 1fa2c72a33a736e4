//! `ram-list`: a simulated VM that live-migrates its RAM while vCPUs write it and DIMMs are
//! hot-plugged, and a reader for real QEMU migration files.
//!
//! ```text
//! cargo run --release                        # the live-migration demo, default sizes
//! cargo run --release -- --ram-mib 64 --vcpus 1 --transport tcp
//! cargo run --release -- inspect ram-list/tests/fixtures/microvm-2m.qemu
//! cargo run --release -- inspect FILE --extract ram0 --out ram0.bin
//! ```

mod cli;
mod demo;
mod error;
mod inspect;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Command::Inspect(args)) => inspect::run(&args),
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
