//! Single-thread read-side cost: enter + load + field read + leave, per flavor and per peer,
//! against a plain-load baseline; then the same with a writer replacing the value on the
//! other core. Run: `cargo bench -p benches --bench read_side`.
//!
//! Every row except the baseline and the default-domain row goes through
//! [`benches::imps::SharedValue`], the code the `scaling` runner times.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use benches::bg::Background;
use benches::imps::{
    ArcSwapValue, CrossbeamEpoch, Options, ParkingLotRwLock, Rcu, ReadHandle, Seize, SharedValue,
    StdMutex, StdRwLock, WriteHandle,
};
use benches::payload::{self, Payload};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use rcu_core::{Domain, Mb, Memb, Qsbr, RcuBox};

/// Writes per second of the background writer in the `read_side_with_writer` group.
const WRITER_RATE: u64 = 100_000;

fn row<S: SharedValue>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let shared = S::new(7, &Options::default());
    let mut r = shared.reader();
    g.bench_function(id, |b| b.iter(|| black_box(r.read())));
}

fn read_side(c: &mut Criterion) {
    payload::set_counting(false);
    let mut g = c.benchmark_group("read_side");

    let raw = AtomicPtr::new(Box::into_raw(Box::new(Payload::new(7))));
    g.bench_function("baseline_plain_load", |b| {
        b.iter(|| {
            // SAFETY: the pointer is valid until it is freed at the end of this function.
            black_box(unsafe { (*black_box(&raw).load(Ordering::Acquire)).value })
        })
    });

    row::<Rcu<Memb>>(&mut g, "memb");
    row::<Rcu<Mb>>(&mut g, "mb");
    {
        // The bare QSBR read side: read_lock + load, no quiescent state at all.
        let domain: Domain<Qsbr> = Domain::new();
        let cell = RcuBox::new_in(Payload::new(7), &domain);
        let reader = domain.register();
        g.bench_function("qsbr", |b| {
            b.iter(|| {
                let guard = reader.read_lock();
                black_box(cell.load(&guard).value)
            })
        });
    }
    // As the scaling runner uses it: a quiescent state every 1024 reads.
    row::<Rcu<Qsbr>>(&mut g, "qsbr_qs_every_1024");

    let global = RcuBox::new(Payload::new(7));
    g.bench_function("memb_default_domain_rcu_read_lock", |b| {
        b.iter(|| {
            let guard = rcu_core::rcu_read_lock();
            black_box(global.load(&guard).value)
        })
    });

    row::<CrossbeamEpoch>(&mut g, "crossbeam_epoch_pin_load");
    row::<ArcSwapValue>(&mut g, "arc_swap_load");
    row::<Seize>(&mut g, "seize_enter_protect");
    row::<StdRwLock>(&mut g, "std_rwlock_read");
    row::<ParkingLotRwLock>(&mut g, "parking_lot_rwlock_read");
    row::<StdMutex>(&mut g, "std_mutex_lock");
    g.finish();

    // SAFETY: allocated above with Box::into_raw and no longer used.
    drop(unsafe { Box::from_raw(raw.load(Ordering::Relaxed)) });
}

fn with_writer_row<S: SharedValue>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let shared = Arc::new(S::new(7, &Options::default()));
    let bg = {
        let shared = shared.clone();
        Background::spawn("writer", move |ctl| {
            let mut w = shared.writer();
            ctl.ready();
            let period = Duration::from_secs_f64(1.0 / WRITER_RATE as f64);
            let mut next = Instant::now();
            let mut v = 0;
            while !ctl.stopped() {
                v += 1;
                w.write(v);
                next += period;
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
            }
        })
    };
    let mut r = shared.reader();
    g.bench_function(id, |b| b.iter(|| black_box(r.read())));
    drop(r);
    drop(bg);
    shared.reclaim(Duration::from_secs(5));
}

fn read_side_with_writer(c: &mut Criterion) {
    payload::set_counting(false);
    let mut g = c.benchmark_group("read_side_with_writer");
    with_writer_row::<Rcu<Memb>>(&mut g, "memb");
    with_writer_row::<Rcu<Mb>>(&mut g, "mb");
    with_writer_row::<Rcu<Qsbr>>(&mut g, "qsbr_qs_every_1024");
    with_writer_row::<CrossbeamEpoch>(&mut g, "crossbeam_epoch_pin_load");
    with_writer_row::<ArcSwapValue>(&mut g, "arc_swap_load");
    with_writer_row::<Seize>(&mut g, "seize_enter_protect");
    with_writer_row::<StdRwLock>(&mut g, "std_rwlock_read");
    with_writer_row::<ParkingLotRwLock>(&mut g, "parking_lot_rwlock_read");
    with_writer_row::<StdMutex>(&mut g, "std_mutex_lock");
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = read_side, read_side_with_writer
}
criterion_main!(benches);
