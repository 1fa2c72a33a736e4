//! Update cost with a reader running: one reader thread spins in read loops on the other
//! core while the measured thread replaces the value, each implementation its idiomatic
//! way (ours: `RcuBox::replace`, i.e. call_rcu; crossbeam-epoch: `defer_destroy`; seize:
//! `retire`; arc-swap: `store`; locks: write in place). `memb_replace_sync` waits for a
//! grace period on every update instead. Run: `cargo bench -p benches --bench update_side`.
//!
//! Retired values of ours are freed by the domain's worker thread, a third thread on a
//! 2-core machine; the row is followed by a `barrier()` so the next row starts clean.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use benches::bg::Background;
use benches::imps::{
    ArcSwapValue, CrossbeamEpoch, Options, ParkingLotRwLock, Rcu, ReadHandle, Seize, SharedValue,
    StdMutex, StdRwLock, WriteHandle,
};
use benches::payload::{self, Payload};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use rcu_core::{Mb, Memb, Qsbr};

fn spinning_reader<S: SharedValue>(shared: &Arc<S>) -> Background {
    let shared = shared.clone();
    Background::spawn("reader", move |ctl| {
        let mut r = shared.reader();
        ctl.ready();
        let mut sum = 0u64;
        while !ctl.stopped() {
            for _ in 0..64 {
                sum = sum.wrapping_add(r.read());
            }
        }
        black_box(sum);
    })
}

fn row<S: SharedValue>(g: &mut BenchmarkGroup<'_, WallTime>, id: &str) {
    let shared = Arc::new(S::new(0, &Options::default()));
    let bg = spinning_reader(&shared);
    let mut w = shared.writer();
    let mut v = 0;
    g.bench_function(id, |b| {
        b.iter(|| {
            v += 1;
            w.write(v);
        })
    });
    drop(bg);
    shared.reclaim(Duration::from_secs(5));
}

fn update_side(c: &mut Criterion) {
    payload::set_counting(false);
    let mut g = c.benchmark_group("update_side");
    g.throughput(Throughput::Elements(1));
    row::<Rcu<Memb>>(&mut g, "memb_replace");
    row::<Rcu<Mb>>(&mut g, "mb_replace");
    row::<Rcu<Qsbr>>(&mut g, "qsbr_replace");
    {
        let shared = Arc::new(<Rcu<Memb> as SharedValue>::new(0, &Options::default()));
        let bg = spinning_reader(&shared);
        let mut v = 0;
        g.bench_function("memb_replace_sync", |b| {
            b.iter(|| {
                v += 1;
                black_box(shared.cell().replace_sync(Payload::new(v)));
            })
        });
        drop(bg);
    }
    row::<CrossbeamEpoch>(&mut g, "crossbeam_epoch_defer_destroy");
    row::<ArcSwapValue>(&mut g, "arc_swap_store");
    row::<Seize>(&mut g, "seize_retire");
    row::<StdRwLock>(&mut g, "std_rwlock_write");
    row::<ParkingLotRwLock>(&mut g, "parking_lot_rwlock_write");
    row::<StdMutex>(&mut g, "std_mutex_lock");
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
    targets = update_side
}
criterion_main!(benches);
