//! ram-list: applying a `MEM_SIZE` record of 4,096 blocks (issue 11, item 2).
//!
//! * `mem_size/create-4096`: a mirroring loader applies one record naming 4,096 blocks of
//!   one page to an empty list (4,096 allocations, each a best-fit `find_ram_offset`, a
//!   sorted insert and an idstr check);
//! * `mem_size/rename-4096`: the same list receives a record naming 4,096 other blocks
//!   (4,096 frees and 4,096 allocations).
//!
//! With QEMU's `find_ram_offset` (two walks of the list per block, for every new block)
//! the first took 130 s in `ram-list inspect`; the writer's indexes make it `O(n log n)`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use ram_list::migration::{BlockEntry, LoadOptions, RamLoader, RamRecord, MAX_MEM_SIZE_BLOCKS};
use ram_list::stream::CountingReader;
use ram_list::{RamList, PAGE_SIZE};
use rcu_core::{Domain, Memb};

/// A section body: one `MEM_SIZE` record naming `prefix0`.. of one page each, then EOS.
fn record(prefix: &str) -> Vec<u8> {
    let entries = (0..MAX_MEM_SIZE_BLOCKS)
        .map(|i| BlockEntry {
            idstr: format!("{prefix}{i}"),
            length: PAGE_SIZE,
            offset: 0,
        })
        .collect();
    let mut out = Vec::new();
    RamRecord::MemSize(entries).encode(&mut out, false);
    RamRecord::Eos.encode(&mut out, false);
    out
}

fn apply(list: &RamList<Memb>, domain: &Domain<Memb>, body: &[u8]) {
    let r = domain.register();
    let mut loader = RamLoader::new(list, LoadOptions::mirror(1 << 40));
    loader
        .load_section(&mut CountingReader::new(body), &r)
        .unwrap();
    black_box(loader.stats().block_changes);
}

fn mem_size(c: &mut Criterion) {
    let domain: Domain<Memb> = Domain::new();
    let b = record("b");
    let c_names = record("c");
    let mut g = c.benchmark_group("mem_size");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(MAX_MEM_SIZE_BLOCKS as u64));
    g.bench_function("create-4096", |bench| {
        bench.iter_batched(
            || RamList::new_in(&domain),
            |list| {
                apply(&list, &domain, &b);
                list
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("rename-4096", |bench| {
        bench.iter_batched(
            || {
                let list = RamList::new_in(&domain);
                apply(&list, &domain, &b);
                domain.barrier();
                list
            },
            |list| {
                apply(&list, &domain, &c_names);
                list
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
    domain.barrier();
    domain.barrier();
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    mem_size(&mut c);
    c.final_summary();
}
