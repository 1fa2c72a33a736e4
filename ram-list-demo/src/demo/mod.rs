//! The live-migration demo: a simulated VM (RAM blocks in a [`RamList`]) whose vCPU threads
//! translate guest addresses through RCU lookups and write memory, a hotplug thread that
//! adds and removes DIMMs, and a migration that streams the RAM to a destination
//! [`RamList`] in iterative dirty passes until it converges.
//!
//! # Hotplug during migration
//!
//! QEMU refuses `device_add`/`device_del` while migrating. Here the hotplug thread keeps
//! running during the migration, and both ends stay coherent:
//!
//! * the source's [`RamSaver`](ram_list::migration::RamSaver) notices a new `ram_list.version` at the start of every
//!   iteration (it keeps no block pointer between iterations, only idstrs and offsets),
//!   restarts its round, and sends a fresh `MEM_SIZE` record before any page of a new
//!   block; a new block is born all-dirty, so all its pages follow;
//! * the destination loads with [`BlockPolicy::Mirror`]: each `MEM_SIZE` record is the
//!   complete block set, so it creates the blocks it lacks and frees those that are gone.
//!
//! With `--freeze-hotplug` the demo follows QEMU's rule instead: the hotplug thread pauses
//! for the whole migration (it still races the vCPUs' RCU lookups before), and the saver
//! runs in strict mode, where a block-set change would be an error.
//!
//! # What the final pass guarantees
//!
//! When the guest stops, each vCPU writes its final state, and the machine its stop
//! record, into the "vcpu.state" block, which nothing writes before: those pages are
//! dirtied after the migration's last pass and reach the destination only through the
//! final pass (`complete`'s last dirty-log sync). The demo checks it twice: on the source
//! no migrated page is left dirty after `complete`, and the destination is compared with
//! the source byte for byte, the state block included.
//!
//! # Into a real QEMU
//!
//! With `--destination qemu` the destination is a real `qemu-system-x86_64 -M none`
//! instead (see `qemu.rs`): one RAM block, so no ROMs and no hotplug, but the same
//! vCPUs, passes and final pass, and the same byte-for-byte check, through QMP.
//!
//! [`BlockPolicy::Mirror`]: ram_list::migration::BlockPolicy::Mirror

mod guest;
mod migrate;
mod qemu;
mod report;
mod transport;
mod vm;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ram_list::RamList;
use rcu_core::{Domain, Memb};

use crate::cli::{DemoArgs, Destination};
use crate::error::DemoError;
use vm::get;

const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

/// Bytes in MiB, for printing.
fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

/// Guest writes per read-side critical section of a vCPU.
const BATCH: usize = 256;

/// Run the demo.
pub fn run(args: &DemoArgs) -> Result<(), DemoError> {
    if args.ram_mib == 0 || args.vga_mib == 0 {
        return Err("--ram-mib and --vga-mib must be at least 1".into());
    }
    if args.destination == Destination::Qemu {
        return qemu::run(args);
    }
    let started = Instant::now();
    let src_domain: Domain<Memb> = Domain::new();
    let dst_domain: Domain<Memb> = Domain::new();
    println!(
        "ram-list demo: {} MiB pc.ram + {} MiB vga.vram + ROMs, {} vCPUs, DIMM hotplug {} (rcu: {} protocol)",
        args.ram_mib,
        args.vga_mib,
        args.vcpus,
        if args.freeze_hotplug {
            "frozen during migration (QEMU's rule)"
        } else {
            "racing the migration (mirrored)"
        },
        src_domain.protocol()
    );
    let vm = Arc::new(vm::build_machine(args, &src_domain)?);
    let dst = Arc::new(RamList::new_in(&dst_domain));
    println!("machine built in {:.2?}", started.elapsed());

    let vcpu_start = Instant::now();
    // Relaxed: set before the threads are spawned (spawn orders it).
    vm.active.store(args.vcpus as u64, Ordering::Relaxed);
    // Relaxed: as above.
    vm.hotplug_active.store(1, Ordering::Relaxed);
    let vcpus: Vec<_> = (0..args.vcpus)
        .map(|i| {
            let (vm, args) = (vm.clone(), args.clone());
            thread::Builder::new()
                .name(format!("vcpu{i}"))
                .spawn(move || guest::vcpu(&vm, i as u64, &args))
        })
        .collect::<Result<_, _>>()?;
    let hot = {
        let (vm, args) = (vm.clone(), args.clone());
        thread::Builder::new()
            .name("hotplug".into())
            .spawn(move || guest::hotplug(&vm, &args))?
    };

    // Warm-up: vCPUs and hotplug race each other (RCU readers vs. the list's writer).
    thread::sleep(Duration::from_millis(args.warmup_ms));
    {
        let r = src_domain.register();
        let g = r.read_lock();
        println!(
            "warm-up {:.1?}: {} blocks, {} plugged / {} unplugged, {:.1} M translations/s",
            vcpu_start.elapsed(),
            vm.src.len(&g),
            get(&vm.plugged),
            get(&vm.unplugged),
            get(&vm.translations) as f64 / vcpu_start.elapsed().as_secs_f64() / 1e6
        );
    }

    let res = migrate::migrate(args, &vm, &dst, &dst_domain);
    // Whatever happened, stop the threads (Relaxed: polled flags; joined below).
    vm.stop_vcpus.store(true, Ordering::Relaxed);
    vm.stop_hotplug.store(true, Ordering::Relaxed);
    let mut vcpu_time = vcpu_start.elapsed();
    for v in vcpus {
        let _ = v.join();
    }
    let _ = hot.join();
    let res = res?;
    vcpu_time = vcpu_time.min(vcpu_start.elapsed());

    // Compare byte for byte.
    let t_cmp = Instant::now();
    let rs = src_domain.register();
    let rd = dst_domain.register();
    let (blocks, bytes) = report::compare(&vm.src, &dst, &rs, &rd)?;
    let cmp_time = t_cmp.elapsed();
    drop((rs, rd));
    src_domain.barrier();
    dst_domain.barrier();
    report::summary(
        args,
        &vm,
        &res,
        vcpu_time,
        &src_domain.stats(),
        &dst_domain.stats(),
    );
    println!(
        "destination matches source: {blocks} blocks, {:.1} MiB compared byte for byte in {cmp_time:.1?}, the guest's stop-time state included (total run {:.1?})",
        mib(bytes),
        started.elapsed()
    );
    Ok(())
}
