//! [`Vm`]: the simulated machine's shared state, and [`build_machine`].

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use ram_list::{RamList, PAGE_SIZE};
use rcu_core::{Domain, Memb};

use super::{KIB, MIB};
use crate::cli::DemoArgs;
use crate::error::DemoError;
use crate::rng::Rng;

/// Adds to a statistics counter. Relaxed: counters are only summed for reports; the one
/// ordering that matters (the guest is stopped) goes through `Vm::active`.
pub fn count(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// Reads a statistics counter (Relaxed: see [`count`]).
pub fn get(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// Shared state of the running VM.
pub struct Vm {
    pub src: RamList<Memb>,
    pub domain: Domain<Memb>,
    /// vCPUs run while this is false.
    pub stop_vcpus: AtomicBool,
    /// The hotplug thread runs while this is false.
    pub stop_hotplug: AtomicBool,
    /// Held by the migration for its whole duration with `--freeze-hotplug` (QEMU's rule);
    /// the hotplug thread holds it around each operation, so no operation straddles the
    /// start of the migration.
    pub hotplug_gate: Mutex<()>,
    /// Auto-converge: percentage of time each vCPU sleeps.
    pub throttle_pct: AtomicU32,
    pub translations: AtomicU64,
    pub misses: AtomicU64,
    pub plugged: AtomicU64,
    pub unplugged: AtomicU64,
    pub plugged_during_migration: AtomicU64,
    pub unplugged_during_migration: AtomicU64,
    pub migrating: AtomicBool,
    /// vCPU threads still running; each decrements it (Release) when it has made its
    /// last access, so that a zero seen with Acquire means the guest is stopped.
    pub active: AtomicU64,
    /// The same for the hotplug thread (0 or 1).
    pub hotplug_active: AtomicU64,
    /// Ram addresses of pc.ram, vga.vram and the firmware.
    pub pc_ram: u64,
    /// See `pc_ram`.
    pub vga: u64,
    /// See `pc_ram`.
    pub bios: u64,
    /// Ram address of "vcpu.state": a page for the machine, then one per vCPU, written
    /// only when the guest stops (after the migration's last pass before the stop), so
    /// that only the final pass can carry them to the destination.
    pub state: u64,
}

/// The name of the block the guest writes only when it stops.
pub const STATE_BLOCK: &str = "vcpu.state";

/// Build the source machine: pc.ram, vga.vram, firmware and option ROMs, an ACPI blob.
pub fn build_machine(args: &DemoArgs, domain: &Domain<Memb>) -> Result<Vm, DemoError> {
    let src = RamList::new_in(domain);
    let pc_ram = src.alloc_named("pc.ram", args.ram_mib * MIB)?;
    let vga = src.alloc_named("vga.vram", args.vga_mib * MIB)?;
    let bios = src.alloc_named("pc.bios", 256 * KIB)?;
    let rom = src.alloc_named("pc.rom", 128 * KIB)?;
    let acpi = src.alloc_resizeable_named("/rom@etc/acpi/tables", 64 * KIB, 2 * MIB)?;
    let state = src.alloc_named(STATE_BLOCK, (args.vcpus as u64 + 1) * PAGE_SIZE)?;
    let reader = domain.register();
    let g = reader.read_lock();
    // "Firmware": fully written pages.
    for (base, len, seed) in [
        (bios, 256 * KIB, 1u64),
        (rom, 128 * KIB, 2),
        (acpi, 64 * KIB, 3),
    ] {
        let b = src.lookup(base, &g).ok_or("ROM block vanished")?;
        let mut rng = Rng::new(seed);
        for off in (0..len).step_by(8) {
            b.write_u64(off, rng.next_u64())?;
        }
    }
    // "Boot": a kernel image (the first 1/8 of RAM, every word written) and a page cache
    // (one word in every third page); the rest stays zero.
    let ram = src.lookup(pc_ram, &g).ok_or("pc.ram vanished")?;
    let kernel = args.ram_mib * MIB / 8;
    let mut rng = Rng::new(args.seed);
    for off in (0..kernel).step_by(8) {
        ram.write_u64(off, rng.next_u64() | 1)?;
    }
    for page in (kernel / PAGE_SIZE..args.ram_mib * MIB / PAGE_SIZE).step_by(3) {
        ram.write_u64(page * PAGE_SIZE + 64, page)?;
    }
    drop(g);
    drop(reader);
    Ok(Vm {
        src,
        domain: domain.clone(),
        stop_vcpus: AtomicBool::new(false),
        stop_hotplug: AtomicBool::new(false),
        hotplug_gate: Mutex::new(()),
        throttle_pct: AtomicU32::new(0),
        translations: AtomicU64::new(0),
        misses: AtomicU64::new(0),
        plugged: AtomicU64::new(0),
        unplugged: AtomicU64::new(0),
        plugged_during_migration: AtomicU64::new(0),
        unplugged_during_migration: AtomicU64::new(0),
        migrating: AtomicBool::new(false),
        active: AtomicU64::new(0),
        hotplug_active: AtomicU64::new(0),
        pc_ram,
        vga,
        bios,
        state,
    })
}
