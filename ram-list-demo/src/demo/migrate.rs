//! The migration thread: iterative dirty passes until the expected downtime is below the
//! target (with QEMU-style auto-converge), then stop-and-copy, with the destination
//! loading live on its own thread (or from a file afterwards).

use std::io::{BufReader, BufWriter, Seek};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ram_list::migration::{
    load, LoadError, LoadOptions, LoadReport, MigrationWriter, SaveOptions, SaveStats,
};
use ram_list::{DirtyClient, RamList, PAGE_SIZE};
use rcu_core::{Domain, Memb, Reader};

use super::mib;
use super::transport::{transport, Source};
use super::vm::Vm;
use super::MIB;
use crate::cli::DemoArgs;
use crate::error::DemoError;
use crate::precopy::{converge, Policy};

/// What the migration thread measured.
pub struct MigrationResult {
    pub stats: SaveStats,
    pub passes: u32,
    pub converged: bool,
    pub total: Duration,
    pub downtime: Duration,
    pub final_pages: u64,
    pub report: LoadReport,
    pub max_throttle: u32,
}

pub fn migrate(
    args: &DemoArgs,
    vm: &Arc<Vm>,
    dst: &Arc<RamList<Memb>>,
    dst_domain: &Domain<Memb>,
) -> Result<MigrationResult, DemoError> {
    let (sink, source) = transport(args.transport)?;
    let (loader, file_rx) = match source {
        Source::Live(rx) => {
            let (dst, dd) = (dst.clone(), dst_domain.clone());
            let h = thread::Builder::new().name("destination".into()).spawn(
                move || -> Result<(LoadReport, Instant), LoadError> {
                    let r = dd.register();
                    let rx = BufReader::with_capacity(1 << 20, rx);
                    let rep = load(&dst, rx, &LoadOptions::mirror(1 << 40), &r)?;
                    Ok((rep, Instant::now()))
                },
            )?;
            (Some(h), None)
        }
        Source::File(f) => (None, Some(f)),
    };
    // With --freeze-hotplug, no hotplug operation runs from here to the end.
    let _frozen = args
        .freeze_hotplug
        .then(|| vm.hotplug_gate.lock().unwrap_or_else(|p| p.into_inner()));
    // Relaxed: a statistics flag (counts hotplug during migration).
    vm.migrating.store(true, Ordering::Relaxed);
    let opts = SaveOptions {
        mirror_block_changes: !args.freeze_hotplug,
        ignore_shared: false,
        parallel: args.parallel,
    };
    let reader = vm.domain.register();
    let t0 = Instant::now();
    let mut w = MigrationWriter::new(
        BufWriter::with_capacity(1 << 20, sink),
        "pc-ram-list-demo",
        opts,
    )?;
    let st = w.setup(&vm.src, &reader.read_lock())?;
    println!(
        "migration: setup sent {} blocks ({} pages to send in the bulk pass)",
        w.saver().blocks().len(),
        st.remaining
    );
    let policy = Policy::new(args.budget_mib, args.downtime_ms, args.max_passes);
    let mut last_mem_size = w.saver().stats().mem_size_records;
    let outcome = converge(&mut w, &vm.src, &reader, &policy, &vm.throttle_pct, |p| {
        let nblocks = vm.src.len(&reader.read_lock());
        println!(
            "pass {:>2}: sent {:>7.1} MiB in {:>7.1?} ({:>6.0} MiB/s), now dirty {:>6} pages -> expected downtime {:>6.1?}, {} blocks{}{}",
            p.number,
            mib(p.bytes),
            p.elapsed,
            p.bandwidth / MIB as f64,
            p.dirty,
            p.expected,
            nblocks,
            if p.stats.mem_size_records > last_mem_size {
                format!(", {} MEM_SIZE resync(s)", p.stats.mem_size_records - last_mem_size)
            } else {
                String::new()
            },
            match p.throttle {
                0 => String::new(),
                t => format!(", vCPUs throttled {t}%"),
            }
        );
        last_mem_size = p.stats.mem_size_records;
    })?;
    if !outcome.converged {
        println!(
            "not converged after {} passes: stopping the vCPUs anyway",
            args.max_passes
        );
    }
    // Freeze the device set first (the hotplug thread may be asleep between operations;
    // that wait is not downtime), then stop-and-copy: the vCPUs stop and the last dirty
    // pages go in the END section.
    // Relaxed: polled flags; `hotplug_active`/`active` (below) order the last accesses.
    vm.stop_hotplug.store(true, Ordering::Relaxed);
    // Acquire: pairs with the hotplug thread's Release decrement.
    while vm.hotplug_active.load(Ordering::Acquire) > 0 {
        thread::sleep(Duration::from_micros(200));
    }
    // Relaxed: as above.
    vm.stop_vcpus.store(true, Ordering::Relaxed);
    let t_stop = Instant::now();
    // Wait until every vCPU has made its last write (they finish their batch first).
    // Acquire: pairs with their Release decrement.
    while vm.active.load(Ordering::Acquire) > 0 {
        thread::sleep(Duration::from_micros(50));
    }
    // The machine stops: its stop record goes to the state block too.
    stop_record(vm, outcome.passes + 1, &reader)?;
    // The final pass: complete syncs the dirty log one last time and sends what it finds
    // (what changed since the last sync above, the state block included).
    let st = w.complete_in_place(&vm.src, &reader.read_lock())?;
    let final_pages = st.pages;
    check_nothing_left(vm, w.saver().remaining(), &reader)?;
    let stats = w.saver().stats();
    drop(w);
    let (report, t_done) = match (loader, file_rx) {
        (Some(h), _) => h.join().map_err(|_| "destination thread panicked")??,
        (None, Some(mut f)) => {
            f.rewind()?;
            let r = dst_domain.register();
            let rep = load(
                dst,
                BufReader::with_capacity(1 << 20, f),
                &LoadOptions::mirror(1 << 40),
                &r,
            )?;
            (rep, Instant::now())
        }
        (None, None) => return Err("no destination".into()),
    };
    // Relaxed: a statistics flag (counts hotplug during migration).
    vm.migrating.store(false, Ordering::Relaxed);
    Ok(MigrationResult {
        stats,
        passes: outcome.passes,
        converged: outcome.converged,
        total: t_done.duration_since(t0),
        downtime: t_done.duration_since(t_stop),
        final_pages,
        report,
        max_throttle: outcome.max_throttle,
    })
}

/// What the machine writes when it stops (after the vCPUs): its page of the state block.
fn stop_record(vm: &Vm, passes: u32, reader: &Reader<Memb>) -> Result<(), DemoError> {
    let g = reader.read_lock();
    vm.src.write_u64(vm.state, 0x5354_4f50, &g)?; // "STOP"
    vm.src.write_u64(vm.state + 8, u64::from(passes), &g)?;
    Ok(())
}

/// What the final pass guarantees, checked on the source: no page of a migrated block is
/// still dirty for the migration (the guest is stopped, so none can become dirty again),
/// and the saver has nothing left to send.
fn check_nothing_left(vm: &Vm, remaining: u64, reader: &Reader<Memb>) -> Result<(), DemoError> {
    let g = reader.read_lock();
    let dirty: u64 = vm
        .src
        .iter(&g)
        .filter(|b| !b.idstr().is_empty())
        .map(|b| {
            vm.src.dirty().count(
                DirtyClient::Migration,
                b.offset(),
                b.used_length() / PAGE_SIZE,
                &g,
            )
        })
        .sum();
    if dirty > 0 || remaining > 0 {
        return Err(format!(
            "the final pass left {} dirty and {} unsent: the destination misses them",
            pages(dirty),
            pages(remaining)
        )
        .into());
    }
    Ok(())
}

/// `n` pages, in words.
fn pages(n: u64) -> String {
    if n == 1 {
        "1 page".to_owned()
    } else {
        format!("{n} pages")
    }
}
