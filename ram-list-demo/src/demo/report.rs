//! The end of the demo: the destination compared with the source, and the summary.

use std::time::Duration;

use ram_list::RamList;
use rcu_core::{Memb, Reader, Stats};

use super::mib;
use super::migrate::MigrationResult;
use super::vm::{get, Vm};
use crate::cli::DemoArgs;
use crate::error::DemoError;

pub fn summary(
    args: &DemoArgs,
    vm: &Vm,
    m: &MigrationResult,
    vcpu_time: Duration,
    src: &Stats,
    dst: &Stats,
) {
    let s = &m.stats;
    let t = get(&vm.translations);
    println!("---------------------------------------------------------------- summary");
    println!(
        "migration:   {} in {:.2?}, {} passes{}, {} MEM_SIZE records, {} round restarts",
        if m.converged { "converged" } else { "forced" },
        m.total,
        m.passes,
        if m.max_throttle > 0 {
            format!(" (auto-converge up to {}%)", m.max_throttle)
        } else {
            String::new()
        },
        s.mem_size_records,
        s.round_restarts
    );
    println!(
        "sent:        {:.1} MiB, {} pages: {} data + {} zero; {} pages re-dirtied by the vCPUs",
        mib(s.bytes),
        s.data_pages + s.zero_pages,
        s.data_pages,
        s.zero_pages,
        s.dirtied_pages
    );
    println!(
        "received:    {} data + {} zero pages in {} sections, {} destination block changes",
        m.report.stats.data_pages,
        m.report.stats.zero_pages,
        m.report.stats.sections,
        m.report.stats.block_changes
    );
    println!(
        "downtime:    {:.1?} (final pass: {} dirty pages; target {} ms)",
        m.downtime, m.final_pages, args.downtime_ms
    );
    println!(
        "vCPUs:       {} threads, {} address translations ({:.1} M/s), {} misses (holes, unplugged DIMMs)",
        args.vcpus,
        t,
        t as f64 / vcpu_time.as_secs_f64() / 1e6,
        get(&vm.misses)
    );
    println!(
        "hotplug:     {} DIMMs plugged, {} unplugged ({} / {} during the migration)",
        get(&vm.plugged),
        get(&vm.unplugged),
        get(&vm.plugged_during_migration),
        get(&vm.unplugged_during_migration)
    );
    println!(
        "RCU source:  {} grace periods, {} callbacks run (peak backlog {}); destination: {} grace periods, {} callbacks run",
        src.grace_periods, src.callbacks_run, src.peak_backlog, dst.grace_periods, dst.callbacks_run
    );
}

/// Compare the destination's blocks with the source's, byte for byte; returns the blocks
/// and bytes compared.
pub fn compare(
    src: &RamList<Memb>,
    dst: &RamList<Memb>,
    rs: &Reader<Memb>,
    rd: &Reader<Memb>,
) -> Result<(u64, u64), DemoError> {
    let gs = rs.read_lock();
    let gd = rd.read_lock();
    let mut blocks = 0;
    let mut bytes = 0;
    for b in src.iter(&gs).filter(|b| !b.idstr().is_empty()) {
        let Some(d) = dst.block_by_name(b.idstr(), &gd) else {
            return Err(format!("destination lacks block \"{}\"", b.idstr()).into());
        };
        if let Some(off) = b.first_difference(d) {
            return Err(format!(
                "block \"{}\" differs at offset {off:#x} (source {:#x} bytes, destination {:#x})",
                b.idstr(),
                b.used_length(),
                d.used_length()
            )
            .into());
        }
        blocks += 1;
        bytes += b.used_length();
    }
    let extra: Vec<String> = dst
        .iter(&gd)
        .filter(|d| src.block_by_name(d.idstr(), &gs).is_none())
        .map(|d| d.idstr().to_owned())
        .collect();
    if !extra.is_empty() {
        return Err(format!("destination has blocks the source does not: {extra:?}").into());
    }
    Ok((blocks, bytes))
}
