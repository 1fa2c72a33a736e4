//! Seeded mutation fuzzing of `load`: valid streams (our own and real QEMU ones) are
//! mutated (bit flips, interesting values, truncation, deletions, duplications) and loaded
//! into destinations under both block policies. Every outcome must be `Ok` or a typed
//! `LoadError`: a panic fails the test and the input is saved under `target/`.
//!
//! `RAM_LIST_FUZZ_ITERS=100000 cargo test -p ram-list --release --test fuzz_load` runs
//! longer; `RAM_LIST_FUZZ_SEED` picks another seed.

mod common;

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

use common::*;
use ram_list::migration::{
    load, LoadError, LoadErrorKind, LoadOptions, LoadReport, MigrationWriter, SaveOptions,
};
use ram_list::RamList;
use rcu_core::{Domain, Memb};

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small stream of our own: several passes, zero and data pages, two blocks.
fn own_stream(d: &Domain<Memb>) -> Vec<u8> {
    let r = d.register();
    let src = RamList::new_in(d);
    let a = src.alloc_named("ram0", 128 * KIB).unwrap();
    src.alloc_resizeable_named("rom", 8 * KIB, 16 * KIB)
        .unwrap();
    let mut w = MigrationWriter::new(Vec::new(), "none", SaveOptions::default()).unwrap();
    w.setup(&src, &r.read_lock()).unwrap();
    for i in 0..4u64 {
        src.write_u64(a + i * 8192, i + 1, &r.read_lock()).unwrap();
        w.iterate(&src, 16 * KIB, &r.read_lock()).unwrap();
    }
    let g = r.read_lock();
    let out = w.complete(&src, &g).unwrap();
    drop(g);
    out
}

/// Destinations for each seed stream, for the "existing blocks" policy.
fn dest(d: &Domain<Memb>, which: usize) -> RamList<Memb> {
    let l = RamList::new_in(d);
    match which {
        0 => {
            l.alloc_named("ram0", 128 * KIB).unwrap();
            l.alloc_resizeable_named("rom", 8 * KIB, 16 * KIB).unwrap();
        }
        1 => {
            l.alloc_named("ram0", 2 * MIB).unwrap();
        }
        _ => {
            l.alloc_named("ram0", 2 * MIB).unwrap();
            l.alloc_named("pc.bios", 64 * KIB).unwrap();
            l.alloc_resizeable_named("/rom@etc/acpi/tables", 4 * KIB, 128 * KIB)
                .unwrap();
            l.alloc_resizeable_named("/rom@etc/table-loader", 4 * KIB, 64 * KIB)
                .unwrap();
            l.alloc_resizeable_named("/rom@etc/acpi/rsdp", 4 * KIB, 4 * KIB)
                .unwrap();
        }
    }
    l
}

const INTERESTING64: [u64; 12] = [
    0,
    u64::MAX,
    0x10,
    0x04,
    0x08 | 0x20,
    0x02 | 0x20,
    0x20_0000 | 0x04,
    0x1f_f000 | 0x08,
    0x20_0000 | 0x08,
    0xffff_ffff_ffff_f008,
    0x40,
    0x01,
];
const INTERESTING8: [u8; 8] = [0, 0xff, 0x7e, 0x20, 0x10, 0x04, 0x03, 0x80];

fn mutate(rng: &mut Rng, data: &mut Vec<u8>) {
    let n = 1 + rng.below(4);
    for _ in 0..n {
        if data.is_empty() {
            return;
        }
        // Bias towards the first few hundred bytes (headers, MEM_SIZE).
        let pos = if rng.chance(40) {
            rng.below(data.len().min(300) as u64) as usize
        } else {
            rng.below(data.len() as u64) as usize
        };
        match rng.below(7) {
            0 => data[pos] ^= 1 << rng.below(8),
            1 => data[pos] = INTERESTING8[rng.below(8) as usize],
            2 => {
                let v = INTERESTING64[rng.below(12) as usize];
                let end = (pos + 8).min(data.len());
                data[pos..end].copy_from_slice(&v.to_be_bytes()[..end - pos]);
            }
            3 => data.truncate(pos),
            4 => {
                let len = (rng.below(64) as usize).min(data.len() - pos);
                data.drain(pos..pos + len);
            }
            5 => {
                let len = (rng.below(4200) as usize).min(data.len() - pos);
                let chunk: Vec<u8> = data[pos..pos + len].to_vec();
                let at = rng.below(data.len() as u64) as usize;
                data.splice(at..at, chunk);
            }
            _ => {
                // Change an idstr length byte or a name character near a header.
                data[pos] = data[pos].wrapping_add(1 + rng.below(3) as u8);
            }
        }
    }
}

fn kind(r: &Result<LoadReport, LoadError>) -> String {
    let name = |d: String| d.split([' ', '{', '(']).next().unwrap().to_owned();
    match r {
        Ok(_) => "Ok".into(),
        Err(e) => match e.kind() {
            LoadErrorKind::Stream(k) => format!("Stream::{}", name(format!("{k:?}"))),
            k => name(format!("{k:?}")),
        },
    }
}

#[test]
fn fuzz_load() {
    let iters = env_u64("RAM_LIST_FUZZ_ITERS", 2000);
    let seed = env_u64("RAM_LIST_FUZZ_SEED", 0x5eed);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let microvm = fixture("microvm-2m.qemu");
    let seeds: Vec<Vec<u8>> = vec![
        own_stream(&d),
        fixture("none-2m.qemu"),
        // Only the RAM part of the microvm stream matters to `load`.
        microvm[..0x193a5].to_vec(),
    ];
    // Reused destinations (existing-block policy): loads only ever write inside blocks.
    let dests: Vec<RamList<Memb>> = (0..seeds.len()).map(|i| dest(&d, i)).collect();
    let mut rng = Rng::new(seed);
    let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
    for i in 0..iters {
        let which = rng.below(seeds.len() as u64) as usize;
        let mut input = seeds[which].clone();
        mutate(&mut rng, &mut input);
        let mirror = rng.chance(30);
        let res = catch_unwind(AssertUnwindSafe(|| {
            if mirror {
                let l = RamList::new_in(&d);
                load(&l, &input[..], &LoadOptions::mirror(64 * MIB), &r)
            } else {
                load(&dests[which], &input[..], &LoadOptions::default(), &r)
            }
        }));
        match res {
            Ok(res) => {
                if let Err(e) = &res {
                    // Errors must render (Display) without panicking too.
                    let _ = e.to_string();
                    let _ = e.offset();
                }
                *outcomes.entry(kind(&res)).or_default() += 1;
            }
            Err(_) => {
                let path = format!(
                    "{}/../target/fuzz_load-crash-{seed:x}-{i}.bin",
                    env!("CARGO_MANIFEST_DIR")
                );
                let _ = std::fs::write(&path, &input);
                panic!("load panicked on iteration {i} (seed {seed:#x}); input saved to {path}");
            }
        }
    }
    eprintln!("fuzz_load: {iters} iterations, seed {seed:#x}: {outcomes:?}");
    assert!(outcomes.len() > 3, "mutations too weak: {outcomes:?}");
    d.barrier();
}
