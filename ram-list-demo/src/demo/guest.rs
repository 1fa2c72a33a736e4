//! The guest: vCPU threads that translate and write guest memory, and the hotplug thread
//! that adds and removes DIMMs.

use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use ram_list::{DirtyMask, PAGE_SIZE};

use super::vm::{count, Vm, STATE_BLOCK};
use super::{BATCH, KIB, MIB};
use crate::cli::DemoArgs;
use crate::rng::Rng;

/// A vCPU: batches of guest accesses, each translated through the RamList under one RCU
/// read-side critical section, writes marking pages dirty. Translation goes through the
/// vCPU's own [`ram_list::Translator`] (its one-entry TLB, revalidated by the list's
/// version), so vCPUs write nothing shared to translate, not even QEMU's `mru_block`.
pub fn vcpu(vm: &Vm, id: u64, args: &DemoArgs) {
    let reader = vm.domain.register();
    let tlb = vm.src.translator();
    let mut rng = Rng::new(args.seed ^ (id + 1).wrapping_mul(0x1234_5678_9abc));
    let ram_pages = args.ram_mib * MIB / PAGE_SIZE;
    let vga_pages = (args.vga_mib * MIB / PAGE_SIZE).min(512);
    // Each vCPU has a working set of 1024 pages (4 MiB) that drifts through RAM, and
    // draws into a 2 MiB framebuffer at the start of the VGA memory.
    let ws_pages = 1024.min(ram_pages);
    let mut ws_base = rng.below(ram_pages - ws_pages + 1);
    let (mut translations, mut misses, mut seq) = (0u64, 0u64, 0u64);
    // Relaxed: a polled stop flag; our last access is ordered by the `active` decrement.
    while !vm.stop_vcpus.load(Ordering::Relaxed) {
        let t0 = Instant::now();
        {
            let g = reader.read_lock();
            let end = vm.src.last_ram_offset(&g);
            for _ in 0..BATCH {
                seq += 1;
                let value = (id << 56) | seq;
                // Per mille: 550 working-set writes, 250 working-set reads, 100 firmware
                // reads, 90 framebuffer writes, 5 writes anywhere in RAM, 5 accesses
                // anywhere in the address space (DIMMs, ROMs, holes).
                let r = rng.below(1000);
                let addr = match r {
                    0..=549 => vm.pc_ram + (ws_base + rng.below(ws_pages)) * PAGE_SIZE,
                    550..=899 => {
                        // A read: translate, load.
                        translations += 1;
                        let addr = if r < 800 {
                            vm.pc_ram + (ws_base + rng.below(ws_pages)) * PAGE_SIZE
                        } else {
                            vm.bios + rng.below(256 * KIB / 8) * 8
                        };
                        match tlb.lookup(addr, &g) {
                            Some(b) => {
                                let _ = b.read_u64((addr - b.offset()) & !7);
                            }
                            None => misses += 1,
                        }
                        continue;
                    }
                    900..=989 => vm.vga + rng.below(vga_pages) * PAGE_SIZE,
                    990..=994 => vm.pc_ram + rng.below(ram_pages) * PAGE_SIZE,
                    _ => rng.below(end / 8) * 8,
                };
                let addr = addr + rng.below(PAGE_SIZE / 8) * 8;
                translations += 1;
                let Some(b) = tlb.lookup(addr, &g) else {
                    misses += 1; // unplugged DIMM or a hole: unassigned memory
                    continue;
                };
                let idstr = b.idstr();
                // ROMs are read only, and the state block is written only on the way out.
                if (idstr.starts_with("pc.") && idstr != "pc.ram") || idstr == STATE_BLOCK {
                    let _ = b.read_u64(addr - b.offset()); // ROM: reads only
                    continue;
                }
                if b.write_u64(addr - b.offset(), value).is_ok() {
                    vm.src.dirty().set_page(addr, DirtyMask::ALL, &g);
                }
            }
        }
        if rng.below(64) == 0 {
            ws_base = (ws_base + 16) % (ram_pages - ws_pages + 1);
        }
        // Relaxed: a hint set by the migration thread; any recent value will do.
        let pct = vm.throttle_pct.load(Ordering::Relaxed);
        if pct > 0 {
            // QEMU's cpu-throttle: sleep pct/(100-pct) of the time spent running.
            let ran = t0.elapsed();
            thread::sleep(ran * pct / (100 - pct).max(1));
        }
        if translations >= 1 << 16 {
            count(&vm.translations, translations);
            count(&vm.misses, misses);
            (translations, misses) = (0, 0);
        }
    }
    count(&vm.translations, translations);
    count(&vm.misses, misses);
    // On the way out (after the migration's last pass before the stop): the vCPU's final
    // state, in its own page of the state block, which nothing else writes.
    let g = reader.read_lock();
    let page = vm.state + (id + 1) * PAGE_SIZE;
    for (i, v) in [id + 1, seq, translations].into_iter().enumerate() {
        vm.src
            .write_u64(page + 8 * i as u64, v, &g)
            .expect("the state block is never unplugged");
    }
    drop(g);
    // Release: our guest writes and dirty bits happen-before the migration's final sync.
    vm.active.fetch_sub(1, Ordering::Release);
}

/// The hotplug thread: adds and removes DIMMs (writer side of the RamList).
pub fn hotplug(vm: &Vm, args: &DemoArgs) {
    let mut rng = Rng::new(args.seed ^ 0xd1aa);
    let mut dimms: Vec<u64> = Vec::new();
    let mut n = 0u64;
    // Relaxed: a polled stop flag (the migration waits for `active` to order the end).
    while !vm.stop_hotplug.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(args.hotplug_ms));
        // Frozen (the migration holds the gate): skip, but keep checking for stop.
        let Ok(_gate) = vm.hotplug_gate.try_lock() else {
            continue;
        };
        // Relaxed: only decides which statistics counter to bump.
        let during = vm.migrating.load(Ordering::Relaxed);
        let add = dimms.is_empty() || (dimms.len() < args.max_dimms && rng.below(2) == 0);
        if add && args.max_dimms > 0 {
            let size = (1 + rng.below(args.dimm_mib.max(1))) * MIB;
            let mut w = vm.src.lock();
            let Ok(a) = w.alloc(size) else {
                continue;
            };
            // The guest finds a pattern in the first page of its new memory.
            if let Some(b) = w.block(a) {
                for off in (0..PAGE_SIZE).step_by(8) {
                    let _ = b.write_u64(off, n << 32 | off);
                }
            }
            if w.set_idstr(a, Some(&format!("/machine/peripheral/dimm{n}")), "memdev")
                .is_err()
            {
                let _ = w.free(a);
                continue;
            }
            drop(w);
            dimms.push(a);
            n += 1;
            count(&vm.plugged, 1);
            if during {
                count(&vm.plugged_during_migration, 1);
            }
        } else if !dimms.is_empty() {
            let a = dimms.swap_remove(rng.below(dimms.len() as u64) as usize);
            if vm.src.unplug(a).is_ok() {
                count(&vm.unplugged, 1);
                if during {
                    count(&vm.unplugged_during_migration, 1);
                }
            }
        }
    }
    // Release: as for the vCPUs.
    vm.hotplug_active.fetch_sub(1, Ordering::Release);
}
