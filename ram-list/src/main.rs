//! `ram-list`: a simulated VM that live-migrates its RAM while vCPUs write it and DIMMs are
//! hot-plugged, and a reader for real QEMU migration files.
//!
//! ```text
//! cargo run --release                        # the live-migration demo, default sizes
//! cargo run --release -- --ram-mib 64 --vcpus 1 --transport tcp
//! cargo run --release -- inspect ram-list/tests/fixtures/microvm-2m.qemu
//! cargo run --release -- inspect FILE --extract ram0 --out ram0.bin
//! ```

mod demo;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// QEMU's RAMList on RCU: live migration of a simulated VM with concurrent hotplug.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    demo: DemoArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the RAM section of a migration file written by QEMU (precopy): list its
    /// blocks and page counts, or extract one block's memory.
    Inspect {
        /// The migration stream (e.g. from `migrate "exec:cat > FILE"`).
        file: PathBuf,
        /// Write this block's memory (its idstr) to `--out`.
        #[arg(long, requires = "out")]
        extract: Option<String>,
        /// Where `--extract` writes.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// How the migration stream travels from source to destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Transport {
    /// A Unix socket pair (streamed live).
    Unix,
    /// A loopback TCP connection (streamed live).
    Tcp,
    /// A temporary file, loaded after the source completes.
    File,
}

/// Options of the live-migration demo.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Size of "pc.ram" in MiB.
    #[arg(long, default_value_t = 256)]
    pub ram_mib: u64,
    /// Size of "vga.vram" in MiB.
    #[arg(long, default_value_t = 16)]
    pub vga_mib: u64,
    /// vCPU threads writing guest memory.
    #[arg(long, default_value_t = 2)]
    pub vcpus: usize,
    /// How long the VM runs (vCPUs + hotplug) before the migration starts, in ms.
    #[arg(long, visible_alias = "duration-ms", default_value_t = 1500)]
    pub warmup_ms: u64,
    /// Expected downtime the migration converges to, in ms (QEMU's `downtime-limit`).
    #[arg(long, default_value_t = 30)]
    pub downtime_ms: u64,
    /// Give up converging after this many passes and stop the vCPUs anyway.
    #[arg(long, default_value_t = 30)]
    pub max_passes: u32,
    /// Bytes per iteration (one PART section) in MiB, QEMU's rate-limit window.
    #[arg(long, default_value_t = 32)]
    pub budget_mib: u64,
    /// Largest number of DIMMs plugged at once.
    #[arg(long, default_value_t = 4)]
    pub max_dimms: usize,
    /// Largest DIMM in MiB (sizes are 1..=this).
    #[arg(long, default_value_t = 16)]
    pub dimm_mib: u64,
    /// Pause between hotplug operations, in ms.
    #[arg(long, default_value_t = 25)]
    pub hotplug_ms: u64,
    /// Freeze hotplug while migrating (QEMU's rule) instead of mirroring block changes.
    #[arg(long)]
    pub freeze_hotplug: bool,
    /// Encode pages on the rayon pool.
    #[arg(long)]
    pub parallel: bool,
    /// Stream transport.
    #[arg(long, value_enum, default_value_t = Transport::Unix)]
    pub transport: Transport,
    /// Seed of the vCPUs' and the hotplug thread's random choices.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.command {
        Some(Command::Inspect { file, extract, out }) => {
            demo::inspect::run(&file, extract.as_deref(), out.as_deref())
        }
        None => demo::run(&cli.demo),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ram-list: {e}");
            let mut src = e.source();
            while let Some(s) = src {
                eprintln!("  caused by: {s}");
                src = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
