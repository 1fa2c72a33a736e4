//! A configuration read by many threads and reloaded while they read: arc-swap's use case,
//! on rcu-core.
//!
//! Request threads read the current configuration on every request through a getter that
//! returns a [`Snapshot`] (the value with its own critical section: no reference count, no
//! lock); a background task keeps a configuration across a long operation with
//! [`RcuBox::load_full`]; a reloader publishes new versions with [`RcuBox::store`] and
//! adjusts one field in place with [`RcuBox::rcu`]. Old versions are freed after a grace
//! period by the call_rcu worker; `rcu_barrier` drains them before the program ends.
//!
//! Run it with `cargo run -p rcu-examples --example hot_config`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcu_core::{rcu_barrier, RcuBox, Snapshot};

/// One version of the configuration. Every field is derived from `version`, so a request
/// can check that it saw one consistent version, never a mix.
#[derive(Debug)]
struct Config {
    version: u64,
    greeting: String,
    max_connections: usize,
    /// Counts the versions freed (by the call_rcu worker, after their grace period).
    freed: Arc<AtomicUsize>,
}

impl Config {
    fn parse(version: u64, freed: &Arc<AtomicUsize>) -> Self {
        Config {
            version,
            greeting: format!("hello from v{version}"),
            max_connections: 100 + version as usize,
            freed: freed.clone(),
        }
    }

    fn is_consistent(&self) -> bool {
        self.greeting == format!("hello from v{}", self.version)
            && self.max_connections >= 100 + self.version as usize
    }
}

impl Drop for Config {
    fn drop(&mut self) {
        self.freed.fetch_add(1, Ordering::Relaxed);
    }
}

/// The service: its configuration lives in an `RcuBox` of the default (memb) domain.
struct Service {
    config: RcuBox<Arc<Config>>,
}

impl Service {
    /// The current configuration, for one request: a snapshot can leave this function
    /// (unlike a `&Config` borrowed from a guard on our stack).
    fn config(&self) -> Snapshot<'_, Arc<Config>> {
        self.config.snapshot()
    }

    /// What a request does with the configuration.
    fn handle_request(&self) -> u64 {
        let config = self.config();
        assert!(config.is_consistent(), "a request saw a torn configuration");
        config.version
    }
}

/// What a run saw.
struct Report {
    requests: usize,
    versions_seen: BTreeMap<u64, usize>,
    reloads: u64,
    freed: usize,
    kept_by_task: u64,
}

fn run(duration: Duration, request_threads: usize) -> Report {
    let freed = Arc::new(AtomicUsize::new(0));
    let service = Service {
        config: RcuBox::new(Arc::new(Config::parse(1, &freed))),
    };
    let stop = AtomicBool::new(false);
    let mut reloads = 1;
    let (per_thread, kept_by_task) = thread::scope(|s| {
        let requests: Vec<_> = (0..request_threads)
            .map(|_| {
                s.spawn(|| {
                    let mut seen = BTreeMap::new();
                    while !stop.load(Ordering::Relaxed) {
                        *seen.entry(service.handle_request()).or_insert(0) += 1;
                    }
                    seen
                })
            })
            .collect();
        // A background task that needs the configuration across a long operation keeps an
        // `Arc` (outside any critical section, so it holds up no grace period).
        let task = s.spawn(|| {
            let kept: Arc<Config> = service.config.load_full();
            thread::sleep(duration / 2);
            assert!(kept.is_consistent());
            kept.version
        });
        // The reloader: a new version every millisecond, and a field adjusted in place.
        let start = Instant::now();
        while start.elapsed() < duration {
            thread::sleep(Duration::from_millis(1));
            reloads += 1;
            service
                .config
                .store(Arc::new(Config::parse(reloads, &freed)));
            // Read-copy-update of one field: no guard of ours needed; retried if another
            // writer got there first. The replaced version is freed after a grace period.
            drop(service.config.rcu(|c| {
                let mut next = Config::parse(c.version, &freed);
                next.max_connections = c.max_connections + 1;
                Arc::new(next)
            }));
        }
        stop.store(true, Ordering::Relaxed);
        let per_thread: Vec<_> = requests.into_iter().map(|t| t.join().unwrap()).collect();
        (per_thread, task.join().unwrap())
    });
    let mut versions_seen = BTreeMap::new();
    for seen in per_thread {
        for (v, n) in seen {
            *versions_seen.entry(v).or_insert(0) += n;
        }
    }
    // The old versions are freed by the call_rcu worker; nothing waits for it at exit.
    rcu_barrier();
    Report {
        requests: versions_seen.values().sum(),
        versions_seen,
        reloads,
        freed: freed.load(Ordering::Relaxed),
        kept_by_task,
    }
}

fn main() {
    let r = run(Duration::from_millis(300), 4);
    println!(
        "{} requests on 4 threads saw {} of the {} configuration versions, each consistent",
        r.requests,
        r.versions_seen.len(),
        r.reloads
    );
    let (first, last) = (
        r.versions_seen.keys().next().unwrap(),
        r.versions_seen.keys().last().unwrap(),
    );
    println!(
        "versions seen: v{first} .. v{last}; the background task kept v{}",
        r.kept_by_task
    );
    println!(
        "{} replaced versions freed after their grace periods (2 per reload: store and rcu)",
        r.freed
    );
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (shorter) and checks what it prints.
    #[test]
    fn hot_config_runs() {
        let r = super::run(std::time::Duration::from_millis(50), 2);
        assert!(r.requests > 0 && r.reloads > 1);
        // Every replaced version was freed once the barrier returned: the initial one and
        // two per reload, except the one still published.
        assert_eq!(r.freed as u64, 2 * (r.reloads - 1));
        super::main();
    }
}
