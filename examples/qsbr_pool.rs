//! QSBR readers in worker pools: free read-side critical sections, quiescent states between
//! work items, and no stalled grace period while a worker waits for work.
//!
//! A QSBR reader that is online and idle (a pool thread waiting for its next job) holds up
//! every grace period of its domain. So each worker registers **offline**
//! (`Domain::register_offline`), comes online for a job (`Reader::online`), announces a
//! quiescent state after each item (`quiescent_state`: it keeps no reference across
//! items), and goes offline again when the job ends (dropping the `OnlineGuard`). Three
//! pools share one table that a writer replaces and `synchronize`s on:
//!
//! 1. a std pool (threads and a channel of jobs);
//! 2. a rayon pool whose threads register through its start/exit handlers;
//! 3. rayon's parallel iterators with `Domain::read_lock`, which needs no setup (the thread
//!    is online only inside each critical section, at the cost of two barriers each).
//!
//! Run it with `cargo run -p rcu-examples --example qsbr_pool`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, LazyLock, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use rcu_core::{Domain, Qsbr, RcuBox, Reader};

/// The domain of the example (a static, so rayon's handlers can reach it).
static DOMAIN: LazyLock<Domain<Qsbr>> = LazyLock::new(Domain::new);

/// The shared table: `ENTRIES` copies of one version number.
const ENTRIES: usize = 256;
static TABLE: LazyLock<RcuBox<Vec<u64>, Qsbr>> =
    LazyLock::new(|| RcuBox::new_in(vec![0; ENTRIES], &DOMAIN));

thread_local! {
    /// A rayon worker's registration, made by the pool's start handler.
    static READER: RefCell<Option<Reader<Qsbr>>> = const { RefCell::new(None) };
}

/// One job: sum `items` entries of the table, with a quiescent state after each item.
/// Returns the sum and checks that each item saw one consistent version.
fn job(reader: &mut Reader<Qsbr>, items: std::ops::Range<usize>) -> u64 {
    let mut online = reader.online(); // grace periods wait for us from here ...
    let mut sum = 0;
    for i in items {
        let guard = online.read_lock(); // free: QSBR
        let table = TABLE.load(&guard);
        assert!(table.iter().all(|&v| v == table[0]), "torn table");
        sum += table[i % ENTRIES];
        drop(guard);
        online.quiescent_state(); // no reference kept from here on
    }
    sum
} // ... to here: offline while the worker waits for its next job

/// The writer: replace the table `versions` times, each followed by a grace period;
/// returns the longest `synchronize`.
fn writer(versions: u64, stop: &AtomicBool) -> Duration {
    let mut longest = Duration::ZERO;
    for v in 1..=versions {
        TABLE.store(vec![v; ENTRIES]);
        let start = Instant::now();
        DOMAIN.synchronize(); // returns although workers are idle between jobs
        longest = longest.max(start.elapsed());
        thread::sleep(Duration::from_micros(200));
    }
    stop.store(true, Ordering::Relaxed);
    longest
}

/// Pool 1: std threads taking jobs from a channel.
fn std_pool(versions: u64) -> (u64, Duration) {
    let (jobs, queue) = mpsc::channel::<std::ops::Range<usize>>();
    let queue = Arc::new(Mutex::new(queue));
    let done = Arc::new(AtomicU64::new(0));
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (queue, done) = (queue.clone(), done.clone());
            thread::spawn(move || {
                let mut reader = DOMAIN.register_offline();
                // Offline while blocked in `recv`: it may wait for ever.
                while let Ok(items) = queue.lock().unwrap().recv() {
                    job(&mut reader, items);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let stop = AtomicBool::new(false);
    let longest = thread::scope(|s| {
        let w = s.spawn(|| writer(versions, &stop));
        while !stop.load(Ordering::Relaxed) {
            jobs.send(0..64).unwrap();
            thread::sleep(Duration::from_micros(300)); // workers idle part of the time
        }
        w.join().unwrap()
    });
    drop(jobs);
    workers.into_iter().for_each(|w| w.join().unwrap());
    (done.load(Ordering::Relaxed), longest)
}

/// Pool 2: a rayon pool whose threads register offline when the pool starts them.
fn rayon_pool(versions: u64) -> (u64, Duration) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .start_handler(|_| READER.with(|r| *r.borrow_mut() = Some(DOMAIN.register_offline())))
        .exit_handler(|_| READER.with(|r| drop(r.borrow_mut().take())))
        .build()
        .expect("a rayon pool");
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let longest = thread::scope(|s| {
        let w = s.spawn(|| writer(versions, &stop));
        while !stop.load(Ordering::Relaxed) {
            pool.scope(|scope| {
                for chunk in 0..4 {
                    let done = &done;
                    scope.spawn(move |_| {
                        READER.with(|r| {
                            let mut r = r.borrow_mut();
                            job(
                                r.as_mut().expect("registered by start_handler"),
                                chunk * 64..chunk * 64 + 64,
                            );
                        });
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
            thread::sleep(Duration::from_micros(300)); // the pool idles between batches
        }
        w.join().unwrap()
    });
    (done.load(Ordering::Relaxed), longest)
}

/// Pool 3: rayon's global pool and `Domain::read_lock`, with no registration at all.
fn rayon_read_lock(versions: u64) -> (u64, Duration) {
    let items = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let longest = thread::scope(|s| {
        let w = s.spawn(|| writer(versions, &stop));
        while !stop.load(Ordering::Relaxed) {
            let n = (0..ENTRIES)
                .into_par_iter()
                .map(|i| TABLE.load(&DOMAIN.read_lock())[i])
                .count();
            items.fetch_add(n as u64, Ordering::Relaxed);
            thread::sleep(Duration::from_micros(300));
        }
        w.join().unwrap()
    });
    (items.load(Ordering::Relaxed), longest)
}

fn run(versions: u64) -> [(u64, Duration); 3] {
    [
        std_pool(versions),
        rayon_pool(versions),
        rayon_read_lock(versions),
    ]
}

fn main() {
    let [(std_jobs, std_gp), (rayon_jobs, rayon_gp), (items, read_lock_gp)] = run(200);
    println!("std pool: {std_jobs} jobs; longest synchronize {std_gp:?}");
    println!("rayon pool (start_handler registration): {rayon_jobs} jobs; longest synchronize {rayon_gp:?}");
    println!("rayon par_iter with Domain::read_lock: {items} items; longest synchronize {read_lock_gp:?}");
    println!(
        "{} grace periods in all, none stalled by an idle worker",
        DOMAIN.stats().grace_periods
    );
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (shorter): every pool did work, and every grace
    /// period ended although workers idled between jobs (a stalled one would hang the
    /// writer: the watchdog fails the test instead).
    #[test]
    fn qsbr_pool_runs() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(super::run(20)).unwrap());
        let runs = rx
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("a grace period stalled: the writer never returned");
        assert!(runs.iter().all(|&(work, _)| work > 0));
        super::main();
    }
}
