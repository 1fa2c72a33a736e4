//! Issue 11, item 3: `BlockPolicy::Mirror`'s `max_total_bytes` bounds the peak memory of a
//! load, measured as the process's peak resident set (so this file holds one test: no
//! other test may allocate in the same process meanwhile).

mod common;

use common::*;
use ram_list::migration::{load, LoadOptions};
use ram_list::RamList;
use rcu_core::{Domain, Memb};

const P: u64 = PAGE as u64;
const MIB: u64 = 1 << 20;

/// The hostile stream: `rounds` MEM_SIZE records in one section, each naming a fresh block
/// of `size` bytes (so the previous one is removed), followed by a ZERO record with fill
/// byte 0x5a for every page of it: 9 bytes of stream commit a page of memory.
fn renaming_stream(rounds: usize, size: u64) -> Vec<u8> {
    let mut b = B::stream();
    b.start(4);
    for round in 0..rounds {
        let name = format!("r{round}");
        b.mem_size(&[(&name, size)]);
        for page in 0..size / P {
            b.zero(&name, page * P, page > 0, 0x5a);
        }
    }
    b.close();
    b.0
}

/// A field of `/proc/self/status`, in bytes.
fn status_bytes(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = s.lines().find(|l| l.starts_with(field)).unwrap();
    let kib: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kib * 1024
}

/// Ten records of 32 MiB each against a 32 MiB limit: 320 MiB committed if removed blocks
/// stayed mapped until the end of the section (322 MiB of peak RSS before the fix). With
/// the fix the loader frees a removed block before creating the next one and waits for
/// its reclamation when the limit would be exceeded: the list never maps more than the
/// limit, and the process's resident set grows by no more than the limit plus slack.
#[test]
fn mirror_limit_bounds_the_peak_of_a_renaming_stream() {
    const LIMIT: u64 = 32 * MIB;
    const ROUNDS: usize = 10;
    let stream = renaming_stream(ROUNDS, LIMIT);
    assert!(stream.len() < 800 << 10, "{} bytes", stream.len());
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let r = d.register();
    // Reset the peak resident set to the current one (Linux >= 4.0); without it the
    // measured bound is checked against the process's whole history, which only makes
    // it stricter.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let before = status_bytes("VmRSS:");
    let rep = load(&l, &stream[..], &LoadOptions::mirror(LIMIT), &r).unwrap();
    let peak = status_bytes("VmHWM:");
    assert_eq!(rep.stats.mem_size_records, ROUNDS as u64);
    assert_eq!(rep.stats.zero_pages, ROUNDS as u64 * LIMIT / P);
    // Each record creates one block and (after the first) frees one.
    assert_eq!(rep.stats.block_changes, 2 * ROUNDS as u64 - 1);
    assert!(
        rep.stats.peak_mapped_bytes <= LIMIT,
        "mapped {:#x}",
        rep.stats.peak_mapped_bytes
    );
    // The per-block counters keep only the blocks the destination has.
    assert_eq!(rep.stats.blocks.len(), 1);
    // Committed memory, measured: the peak resident set grew by at most the limit, plus
    // 16 MiB for everything else (the dirty bitmaps, the allocator).
    let grown = peak.saturating_sub(before);
    assert!(
        grown <= LIMIT + 16 * MIB,
        "peak resident set grew by {} MiB",
        grown / MIB
    );
    assert!(l.mapped_bytes() <= LIMIT);
    let g = r.read_lock();
    let last = l.block_by_name(&format!("r{}", ROUNDS - 1), &g).unwrap();
    let mut byte = [0u8; 1];
    last.read(LIMIT - 1, &mut byte).unwrap();
    assert_eq!(byte[0], 0x5a);
}
