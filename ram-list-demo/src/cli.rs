//! The command line: the demo's options (no subcommand), `inspect`, `incoming` and
//! `migrate`.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// QEMU's RAMList on RCU: live migration of a simulated VM with concurrent hotplug.
///
/// Without a subcommand, runs the live-migration demo with the options below; `inspect`
/// reads a migration file written by QEMU; `incoming` and `migrate` are the two ends of a
/// live migration with a real QEMU.
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
    /// Be the destination of a live migration from a real QEMU (its `migrate URI`):
    /// mirror its RAM blocks, load the RAM as it streams, skip and name the device
    /// sections, and print a summary.
    Incoming(IncomingArgs),
    /// Be the source of a live migration into a real QEMU started with `-incoming`: a
    /// guest of the machine's RAM layout, preloaded files, vCPU threads dirtying memory
    /// during the passes, and a final pass once they stop.
    Migrate(MigrateArgs),
}

/// Options of `incoming`.
#[derive(Debug, Clone, clap::Args)]
pub struct IncomingArgs {
    /// Where the source sends: `tcp:HOST:PORT` (listen; port 0 picks a free port, printed
    /// as "listening on ..."), `unix:PATH`, `exec:CMD` (its standard output), `file:PATH`.
    pub uri: String,
    /// Write this block's memory (its idstr) to `--out` at the end.
    #[arg(long, requires = "out", conflicts_with = "dump")]
    pub extract: Option<String>,
    /// Where `--extract` writes.
    #[arg(long, requires = "extract")]
    pub out: Option<PathBuf>,
    /// Write every block's memory into this directory, one file per block (its idstr with
    /// `/` and other unsafe bytes written `%XX`, then `.bin`).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Refuse a stream of another machine type (QEMU's check; e.g. `none`,
    /// `pc-i440fx-7.2`).
    #[arg(long)]
    pub machine: Option<String>,
    /// Largest guest RAM (all blocks together) the source may send, in MiB.
    #[arg(long, default_value_t = 64 * 1024)]
    pub max_guest_mib: u64,
    /// Give up when the source sends nothing for this long, in seconds (0: wait forever).
    #[arg(long, default_value_t = 60)]
    pub idle_timeout_s: u64,
}

/// Options of `migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The destination QEMU's `-incoming` URI: `tcp:HOST:PORT` (connect), `unix:PATH`,
    /// `exec:CMD` (its standard input), `file:PATH`.
    pub uri: String,
    /// Machine type of the destination (`-M`); its RAM layout is built here.
    #[arg(short = 'M', long, default_value = "none")]
    pub machine: String,
    /// Guest RAM in MiB: the destination's `-m`.
    #[arg(short = 'm', long, default_value_t = 64)]
    pub ram_mib: u64,
    /// Preload FILE at guest physical address ADDR (decimal or 0x hex) before migrating;
    /// repeatable. The vCPUs never write the pages of preloaded files.
    #[arg(long, value_name = "FILE@ADDR")]
    pub load: Vec<String>,
    /// vCPU threads writing guest memory during the passes.
    #[arg(long, default_value_t = 2)]
    pub vcpus: usize,
    /// Expected downtime the migration converges to, in ms.
    #[arg(long, default_value_t = 30)]
    pub downtime_ms: u64,
    /// Give up converging after this many passes and stop the vCPUs anyway.
    #[arg(long, default_value_t = 30)]
    pub max_passes: u32,
    /// Bytes per iteration (one PART section) in MiB.
    #[arg(long, default_value_t = 8)]
    pub budget_mib: u64,
    /// Write the guest memory as sent by the final pass to this file (compare it with the
    /// destination's `pmemsave`).
    #[arg(long)]
    pub dump: Option<PathBuf>,
    /// Seed of the vCPUs' random writes.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Give up when the destination takes nothing (or confirms nothing) for this long,
    /// in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_s: u64,
}

/// Where the demo migrates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Destination {
    /// A second `RamList` in this process, which mirrors the source's blocks (hotplug
    /// included).
    Ram,
    /// A real QEMU (`qemu-system-x86_64 -M none -m <ram-mib>M -incoming tcp:...`), then
    /// compared with QMP `pmemsave`. Its machine has one RAM block, so the guest is
    /// `-M none`'s: no hotplug, no ROMs.
    Qemu,
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
    /// The destination: a `RamList` here, or a real QEMU.
    #[arg(long, value_enum, default_value_t = Destination::Ram)]
    pub destination: Destination,
}
