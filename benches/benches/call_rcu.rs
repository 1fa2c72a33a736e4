//! call_rcu throughput: 1,000,000 callbacks queued and then `barrier()` (so every one of
//! them has run when the clock stops), from 1 and from 2 producer threads; once with a
//! small closure and once with deferred drops of `Box`es (`defer_drop`, which includes the
//! allocation in the producer and the free on the worker). By default `call` never waits;
//! the `closure_blocking_limit` rows build the domain with the opt-in blocking bound
//! (`DomainBuilder::blocking_backlog_limit(65_536)`), which a burst of a million callbacks
//! runs into, to show what it costs.
//! Run: `cargo bench -p benches --bench call_rcu`.
// criterion_group!/criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rcu_core::{Domain, Flavor, Memb, Qsbr};

const CALLBACKS: u64 = 1_000_000;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// `domain.call(move || ...)` with an 8-byte capture.
    Closure,
    /// `domain.defer_drop(Box::new([u64; 4]))`.
    DeferDropBox,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Closure => "closure",
            Kind::DeferDropBox => "defer_drop_box",
        }
    }
}

#[inline]
fn produce<F: Flavor>(domain: &Domain<F>, kind: Kind, n: u64) {
    match kind {
        Kind::Closure => {
            for i in 0..n {
                domain.call(move || {
                    black_box(i);
                });
            }
        }
        Kind::DeferDropBox => {
            for i in 0..n {
                domain.defer_drop(Box::new([i; 4]));
            }
        }
    }
}

/// One measured round: `producers` threads (the calling one included) each queue their
/// share of [`CALLBACKS`], then the calling thread waits in `barrier()`.
fn rounds<F: Flavor>(domain: &Domain<F>, kind: Kind, producers: usize, iters: u64) -> Duration {
    let share = CALLBACKS / producers as u64;
    let start = Barrier::new(producers);
    let done = Barrier::new(producers);
    let run0 = domain.stats().callbacks_run;
    let mut total = Duration::ZERO;
    std::thread::scope(|s| {
        for _ in 1..producers {
            s.spawn(|| {
                for _ in 0..iters {
                    start.wait();
                    produce(domain, kind, share);
                    done.wait();
                }
            });
        }
        for _ in 0..iters {
            start.wait();
            let t0 = Instant::now();
            produce(domain, kind, share);
            done.wait();
            domain.barrier();
            total += t0.elapsed();
        }
    });
    let ran = domain.stats().callbacks_run - run0;
    assert_eq!(
        ran,
        share * producers as u64 * iters,
        "barrier() returned before every callback ran"
    );
    total
}

fn flavor<F: Flavor>(c: &mut Criterion) {
    let mut g = c.benchmark_group(format!("call_rcu_{}", F::NAME));
    g.throughput(Throughput::Elements(CALLBACKS));
    // (kind, blocking limit): a default domain never makes producers wait; the
    // `_blocking_limit` rows opt in to the blocking bound to show what it costs this burst.
    for (kind, limited) in [
        (Kind::Closure, false),
        (Kind::Closure, true),
        (Kind::DeferDropBox, false),
    ] {
        for producers in [1usize, 2] {
            // A fresh domain per row, so that one row's backlog cannot slow the next.
            let domain: Domain<F> = if limited {
                Domain::builder().blocking_backlog_limit(65_536).build()
            } else {
                Domain::new()
            };
            domain.barrier(); // start the worker outside the measurement
            let name = if limited {
                format!("{}_blocking_limit", kind.name())
            } else {
                kind.name().to_owned()
            };
            g.bench_with_input(
                BenchmarkId::new(name, format!("{producers}_producers")),
                &producers,
                |b, &p| b.iter_custom(|iters| rounds(&domain, kind, p, iters)),
            );
        }
    }
    g.finish();
}

fn all(c: &mut Criterion) {
    flavor::<Memb>(c);
    flavor::<Qsbr>(c);
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
}

criterion_group! {
    name = benches;
    config = config();
    targets = all
}
criterion_main!(benches);
