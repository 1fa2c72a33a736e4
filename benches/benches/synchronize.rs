//! Grace-period latency: `synchronize()` with 0, 1, 10, 100 and 1000 registered idle
//! readers (parked threads; QSBR readers offline), with one busy reader spinning in
//! read_lock loops on the other core, and 8 concurrent synchronizers sharing grace periods
//! (alone; for memb also next to a busy reader, and next to a reader whose critical
//! sections last 20 µs so that grace periods are long enough to share; the grace periods
//! per `synchronize` call are printed and saved in
//! `target/criterion/synchronize_8_concurrent/<id>/gp_per_call.json`).
//! Run: `cargo bench -p benches --bench synchronize`.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use benches::bg::{Background, IdleReaders};
use benches::payload::Payload;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rcu_core::{Domain, Flavor, Mb, Memb, Qsbr, RcuBox, Reader};

const IDLE: &[usize] = &[0, 1, 10, 100, 1000];
const SYNCHRONIZERS: usize = 8;

/// What an idle reader does after registering: nothing (memb, mb) or go offline (qsbr).
trait IdleFlavor: Flavor {
    fn idle(reader: &mut Reader<Self>);
    /// One loop iteration of a busy reader.
    fn busy(reader: &mut Reader<Self>, cell: &RcuBox<Payload, Self>, n: &mut u32);
}

impl IdleFlavor for Memb {
    fn idle(_: &mut Reader<Self>) {}
    fn busy(reader: &mut Reader<Self>, cell: &RcuBox<Payload, Self>, _: &mut u32) {
        let g = reader.read_lock();
        black_box(cell.load(&g).value);
    }
}

impl IdleFlavor for Mb {
    fn idle(_: &mut Reader<Self>) {}
    fn busy(reader: &mut Reader<Self>, cell: &RcuBox<Payload, Self>, _: &mut u32) {
        let g = reader.read_lock();
        black_box(cell.load(&g).value);
    }
}

impl IdleFlavor for Qsbr {
    fn idle(reader: &mut Reader<Self>) {
        reader.thread_offline();
    }
    fn busy(reader: &mut Reader<Self>, cell: &RcuBox<Payload, Self>, n: &mut u32) {
        {
            let g = reader.read_lock();
            black_box(cell.load(&g).value);
        }
        *n += 1;
        if *n == 1024 {
            *n = 0;
            reader.quiescent_state();
        }
    }
}

fn idle_readers<F: IdleFlavor>(c: &mut Criterion) {
    let mut g = c.benchmark_group("synchronize_idle_readers");
    for &n in IDLE {
        let domain: Domain<F> = Domain::new();
        let _idle = IdleReaders::spawn(&domain, n, F::idle);
        g.bench_with_input(BenchmarkId::new(F::NAME, n), &n, |b, _| {
            b.iter(|| domain.synchronize())
        });
    }
    g.finish();
}

fn busy_reader<F: IdleFlavor>(c: &mut Criterion) {
    let domain: Domain<F> = Domain::new();
    let bg = spin_reader(&domain);
    let mut g = c.benchmark_group("synchronize_busy_reader");
    g.bench_function(F::NAME, |b| b.iter(|| domain.synchronize()));
    g.finish();
    drop(bg);
}

/// Spawn a busy reader of `domain` on a background thread.
fn spin_reader<F: IdleFlavor>(domain: &Domain<F>) -> Background {
    let domain = domain.clone();
    let cell = RcuBox::new_in(Payload::new(1), &domain);
    Background::spawn("busy-reader", move |ctl| {
        let mut reader = domain.register();
        let mut n = 0;
        ctl.ready();
        while !ctl.stopped() {
            for _ in 0..64 {
                F::busy(&mut reader, &cell, &mut n);
            }
        }
    })
}

/// Spawn a reader of a memb `domain` whose critical sections each last `hold` (spinning
/// inside), back to back: every grace period waits for about half of `hold`.
fn slow_reader(domain: &Domain<Memb>, hold: Duration) -> Background {
    let domain = domain.clone();
    let cell = RcuBox::new_in(Payload::new(1), &domain);
    Background::spawn("slow-reader", move |ctl| {
        let reader = domain.register();
        ctl.ready();
        while !ctl.stopped() {
            let g = reader.read_lock();
            let t0 = Instant::now();
            while t0.elapsed() < hold {
                black_box(cell.load(&g).value);
            }
        }
    })
}

/// The reader running next to the concurrent synchronizers.
#[derive(Clone, Copy)]
enum Next {
    Nothing,
    /// A reader in tight read_lock loops (grace periods stay short).
    BusyReader,
    /// A reader whose critical sections last 20 µs (grace periods long enough to share).
    SlowReader,
}

fn concurrent<F: IdleFlavor>(
    c: &mut Criterion,
    next: Next,
    slow: fn(&Domain<F>) -> Option<Background>,
) {
    let domain: Domain<F> = Domain::new();
    let (id, bg) = match next {
        Next::Nothing => (F::NAME.to_owned(), None),
        Next::BusyReader => (
            format!("{}_busy_reader", F::NAME),
            Some(spin_reader(&domain)),
        ),
        Next::SlowReader => (format!("{}_20us_critical_sections", F::NAME), slow(&domain)),
    };
    let iters = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(SYNCHRONIZERS));
    let end = Arc::new(Barrier::new(SYNCHRONIZERS));
    let helpers: Vec<_> = (1..SYNCHRONIZERS)
        .map(|i| {
            let (domain, iters, start, end) =
                (domain.clone(), iters.clone(), start.clone(), end.clone());
            std::thread::Builder::new()
                .name(format!("synchronizer-{i}"))
                .spawn(move || loop {
                    start.wait();
                    // Acquire: pairs with the Release store before the start barrier.
                    let n = iters.load(Ordering::Acquire);
                    if n == u64::MAX {
                        return;
                    }
                    for _ in 0..n {
                        domain.synchronize();
                    }
                    end.wait();
                })
                .expect("spawn synchronizer")
        })
        .collect();
    let (mut gps, mut calls) = (0u64, 0u64);
    let mut g = c.benchmark_group("synchronize_8_concurrent");
    g.throughput(Throughput::Elements(SYNCHRONIZERS as u64));
    g.bench_function(&id, |b| {
        b.iter_custom(|n| {
            iters.store(n, Ordering::Release);
            let gp0 = domain.stats().grace_periods;
            start.wait();
            let t0 = Instant::now();
            for _ in 0..n {
                domain.synchronize();
            }
            end.wait();
            let el = t0.elapsed();
            gps += domain.stats().grace_periods - gp0;
            calls += n * SYNCHRONIZERS as u64;
            el
        })
    });
    g.finish();
    iters.store(u64::MAX, Ordering::Release);
    start.wait();
    for h in helpers {
        let _ = h.join();
    }
    drop(bg);
    if calls == 0 {
        return; // filtered out
    }
    let per_call = gps as f64 / calls as f64;
    println!(
        "synchronize_8_concurrent/{id}: {gps} grace periods for {calls} synchronize calls = {per_call:.3} grace periods per call"
    );
    // Next to criterion's own files, for `bench-report`.
    let dir = criterion_dir().join("synchronize_8_concurrent").join(&id);
    if std::fs::create_dir_all(&dir).is_ok() {
        let _ = std::fs::write(
            dir.join("gp_per_call.json"),
            format!(
                "{{\"id\":\"{id}\",\"synchronizers\":{SYNCHRONIZERS},\"grace_periods\":{gps},\"calls\":{calls},\"gp_per_call\":{per_call:.4}}}\n"
            ),
        );
    }
}

fn criterion_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target")));
    target.join("criterion")
}

fn all(c: &mut Criterion) {
    idle_readers::<Memb>(c);
    idle_readers::<Mb>(c);
    idle_readers::<Qsbr>(c);
    busy_reader::<Memb>(c);
    busy_reader::<Mb>(c);
    busy_reader::<Qsbr>(c);
    concurrent::<Memb>(c, Next::Nothing, |_| None);
    concurrent::<Mb>(c, Next::Nothing, |_| None);
    concurrent::<Qsbr>(c, Next::Nothing, |_| None);
    concurrent::<Memb>(c, Next::BusyReader, |_| None);
    concurrent::<Memb>(c, Next::SlowReader, |d| {
        Some(slow_reader(d, Duration::from_micros(20)))
    });
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
