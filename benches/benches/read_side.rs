//! Single-thread read-side cost: lock + load + field read + unlock, per flavor and per
//! peer, against a plain-load baseline. Run: `cargo bench -p benches --bench read_side`.

use std::hint::black_box;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::RwLock;

use criterion::{criterion_group, criterion_main, Criterion};
use rcu_core::{Domain, Flavor, Mb, Memb, Qsbr, RcuBox};

struct Payload {
    a: u64,
    _b: [u64; 3],
}

fn payload(a: u64) -> Payload {
    Payload { a, _b: [0; 3] }
}

fn flavor<F: Flavor>(c: &mut Criterion, name: &str) {
    let domain: Domain<F> = Domain::new();
    let cell = RcuBox::new_in(payload(7), &domain);
    let reader = domain.register();
    c.bench_function(name, |b| {
        b.iter(|| {
            let g = reader.read_lock();
            black_box(cell.load(&g).a)
        })
    });
}

fn read_side(c: &mut Criterion) {
    let raw = AtomicPtr::new(Box::into_raw(Box::new(payload(7))));
    c.bench_function("baseline_plain_load", |b| {
        b.iter(|| {
            // SAFETY: never freed until the end of the bench.
            black_box(unsafe { (*black_box(&raw).load(Ordering::Acquire)).a })
        })
    });

    flavor::<Memb>(c, "rcu_memb");
    flavor::<Mb>(c, "rcu_mb");
    flavor::<Qsbr>(c, "rcu_qsbr");

    let global = RcuBox::new(payload(7));
    c.bench_function("rcu_memb_global_rcu_read_lock", |b| {
        b.iter(|| {
            let g = rcu_core::rcu_read_lock();
            black_box(global.load(&g).a)
        })
    });

    let ce = crossbeam_epoch::Atomic::new(payload(7));
    c.bench_function("crossbeam_epoch_pin_load", |b| {
        b.iter(|| {
            let g = crossbeam_epoch::pin();
            // SAFETY: the value is never retired during the bench.
            black_box(unsafe { ce.load(Ordering::Acquire, &g).deref().a })
        })
    });

    let sw = arc_swap::ArcSwap::from_pointee(payload(7));
    c.bench_function("arc_swap_load", |b| b.iter(|| black_box(sw.load().a)));

    let rw = RwLock::new(payload(7));
    c.bench_function("std_rwlock_read", |b| {
        b.iter(|| black_box(rw.read().unwrap().a))
    });

    // SAFETY: allocated above with Box::into_raw, no longer used.
    drop(unsafe { Box::from_raw(raw.load(Ordering::Relaxed)) });
}

criterion_group!(benches, read_side);
criterion_main!(benches);
