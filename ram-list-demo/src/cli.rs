//! The command line: the demo's options (no subcommand) and `inspect`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// QEMU's RAMList on RCU: live migration of a simulated VM with concurrent hotplug.
///
/// Without a subcommand, runs the live-migration demo with the options below; `inspect`
/// reads a migration file written by QEMU.
#[derive(Debug, Parser)]
#[command(
    version,
    about,
    long_about,
    after_help = "With no subcommand, `ram-list [OPTIONS]` runs the live-migration demo."
)]
pub struct Cli {
    /// What to run instead of the demo.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The demo's options.
    #[command(flatten)]
    pub demo: DemoArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read the RAM section of a migration file written by QEMU (precopy): list its
    /// blocks and page counts, or extract one block's memory.
    Inspect(InspectArgs),
}

/// Options of `inspect`.
#[derive(Debug, Clone, clap::Args)]
pub struct InspectArgs {
    /// The migration stream (e.g. from `migrate "exec:cat > FILE"`).
    pub file: PathBuf,
    /// Write this block's memory (its idstr) to `--out`.
    #[arg(long, requires = "out")]
    pub extract: Option<String>,
    /// Where `--extract` writes.
    #[arg(long, requires = "extract")]
    pub out: Option<PathBuf>,
    /// Largest guest RAM (all blocks together) the stream may describe, in MiB.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_guest_mib: u64,
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
