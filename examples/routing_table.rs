//! A read-mostly routing table on an rcu-queue list: forwarding threads look up routes
//! (longest-prefix match) without locks while a control-plane thread announces, changes
//! and withdraws routes. A withdrawn route is handed back as a `Retired`: forwarding
//! threads that found it before it was unlinked may still be reading it, so it is freed
//! (or, here, counted and then freed) only after a grace period, by the call_rcu worker.
//!
//! No `unsafe` anywhere: the list owns its routes (`Box<Route>`), readers get `&Route`
//! borrowed from their read guard, and the writer lock is the list's own.
//!
//! Run it with `cargo run -p rcu-examples --example routing_table`.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use rcu_core::{rcu_barrier, rcu_read_lock};
use rcu_queue::{rcu_link, QList, QListLink};

/// One route: `prefix/len` via `next_hop`.
struct Route {
    prefix: u32,
    len: u8,
    next_hop: Ipv4Addr,
    /// Set by `Drop`: a forwarding thread that sees it caught a free under its guard.
    freed: AtomicBool,
    /// The list's link, embedded in the route (intrusive).
    link: QListLink,
}
rcu_link!(Route, link: QListLink);

impl Route {
    fn new(prefix: Ipv4Addr, len: u8, next_hop: Ipv4Addr) -> Box<Self> {
        Box::new(Route {
            prefix: u32::from(prefix) & mask(len),
            len,
            next_hop,
            freed: AtomicBool::new(false),
            link: QListLink::new(),
        })
    }

    fn matches(&self, addr: u32) -> bool {
        addr & mask(self.len) == self.prefix
    }
}

impl Drop for Route {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::SeqCst);
    }
}

fn mask(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

/// The table: routes kept sorted by prefix length, longest first, so the first match is
/// the longest-prefix match.
struct Table {
    routes: QList<Route>,
}

impl Table {
    /// Forwarding: look `addr` up inside a read-side critical section. Never blocks, never
    /// writes shared memory.
    fn lookup(&self, addr: Ipv4Addr) -> Option<Ipv4Addr> {
        let guard = rcu_read_lock();
        let addr = u32::from(addr);
        let route = self.routes.iter(&guard).find(|r| r.matches(addr))?;
        assert!(
            !route.freed.load(Ordering::SeqCst),
            "a route was freed under a reader"
        );
        Some(route.next_hop)
    }

    /// Control plane: announce a route, in prefix-length order (the writer lock
    /// serialises writers; readers are never blocked by it).
    fn announce(&self, route: Box<Route>) {
        let mut w = self.routes.lock();
        let mut c = w.cursor();
        while c.current().is_some_and(|r| r.len >= route.len) {
            c.move_next();
        }
        c.insert_before(route); // published with one release store
    }

    /// Control plane: change a route's next hop. The old route is replaced in one step
    /// (readers see the old one or the new one, never neither) and retired.
    fn change(&self, prefix: Ipv4Addr, len: u8, next_hop: Ipv4Addr, freed: &Arc<AtomicUsize>) {
        let mut w = self.routes.lock();
        let mut c = w.cursor();
        let key = u32::from(prefix) & mask(len);
        while let Some(r) = c.current() {
            if r.prefix == key && r.len == len {
                let old = c.replace_current(Route::new(prefix, len, next_hop));
                let freed = freed.clone();
                // After a grace period, on the call_rcu worker: no reader can see it then.
                old.call(move |route| {
                    drop(route);
                    freed.fetch_add(1, Ordering::Relaxed);
                });
                return;
            }
            c.move_next();
        }
    }

    /// Control plane: withdraw every route under `prefix/len`. Each one comes back as a
    /// `Retired`; dropping it frees the route after a grace period (deferred free).
    fn withdraw(&self, prefix: Ipv4Addr, len: u8) -> usize {
        let key = u32::from(prefix) & mask(len);
        let mut w = self.routes.lock();
        let withdrawn: Vec<_> = w
            .extract_if(|r| r.len >= len && r.prefix & mask(len) == key)
            .collect();
        let n = withdrawn.len();
        for retired in withdrawn {
            retired.defer(); // QEMU's g_free_rcu / Linux's kfree_rcu
        }
        n
    }
}

/// The networks 10.n.0.0/16, n < `NETWORKS`, each announced with eight /24 subnets.
const NETWORKS: u8 = 32;

/// Announce 10.`net`.0.0/16 and its subnets 10.`net`.0-7.0/24; returns how many routes.
fn announce_network(table: &Table, net: u8) -> usize {
    table.announce(Route::new(
        Ipv4Addr::new(10, net, 0, 0),
        16,
        Ipv4Addr::new(192, 0, 2, 16),
    ));
    for sub in 0..8u8 {
        let hop = Ipv4Addr::new(192, 0, 2, 24 + sub);
        table.announce(Route::new(Ipv4Addr::new(10, net, sub, 0), 24, hop));
    }
    9
}

/// What a run did.
struct Report {
    lookups: u64,
    misses: u64,
    announced: usize,
    changed: usize,
    withdrawn: usize,
    freed_by_callback: usize,
    routes_left: usize,
}

fn run(duration: Duration) -> Report {
    let table = Table {
        routes: QList::new(),
    };
    let default_gw = Ipv4Addr::new(192, 0, 2, 1);
    table.announce(Route::new(Ipv4Addr::UNSPECIFIED, 0, default_gw));
    let mut announced = 1;
    for net in 0..NETWORKS {
        announced += announce_network(&table, net);
    }
    let stop = AtomicBool::new(false);
    let (lookups, misses) = (AtomicU64::new(0), AtomicU64::new(0));
    let freed = Arc::new(AtomicUsize::new(0));
    let (mut changed, mut withdrawn) = (0, 0);
    thread::scope(|s| {
        // Forwarding threads.
        for t in 0..2u32 {
            let (table, stop, lookups, misses) = (&table, &stop, &lookups, &misses);
            s.spawn(move || {
                let mut x = 0x9e37_79b9u32.wrapping_mul(t + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    // 10.n.s.h, n < NETWORKS, s < 8: covered unless n is flapping.
                    let (n, sub) = ((x >> 16) as u8 % NETWORKS, (x >> 8) as u8 % 8);
                    let addr = Ipv4Addr::new(10, n, sub, x as u8);
                    match table.lookup(addr) {
                        Some(hop) if hop != default_gw => {}
                        _ => {
                            misses.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    lookups.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The control plane: one network flaps at a time (withdrawn with its subnets, then
        // announced again), and a subnet of another changes its next hop.
        let start = Instant::now();
        let mut round = 0u8;
        while start.elapsed() < duration {
            let flap = round % NETWORKS;
            withdrawn += table.withdraw(Ipv4Addr::new(10, flap, 0, 0), 16);
            thread::sleep(Duration::from_micros(200));
            announced += announce_network(&table, flap);
            let other = (flap + NETWORKS / 2) % NETWORKS;
            let hop = Ipv4Addr::new(198, 51, 100, round);
            table.change(Ipv4Addr::new(10, other, 3, 0), 24, hop, &freed);
            changed += 1;
            thread::sleep(Duration::from_micros(800));
            round = round.wrapping_add(1);
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Withdrawn routes are freed by the call_rcu worker; drain it (nothing waits for it at
    // process exit).
    rcu_barrier();
    let routes_left = table.routes.lock().len();
    Report {
        lookups: lookups.load(Ordering::Relaxed),
        misses: misses.load(Ordering::Relaxed),
        announced,
        changed,
        withdrawn,
        freed_by_callback: freed.load(Ordering::Relaxed),
        routes_left,
    }
}

fn main() {
    let r = run(Duration::from_millis(300));
    println!(
        "{} lookups on 2 forwarding threads ({} fell through to the default route while their network flapped), none saw a freed route",
        r.lookups, r.misses
    );
    println!(
        "control plane: {} routes announced, {} changed in place, {} withdrawn and freed after their grace periods",
        r.announced, r.changed, r.withdrawn
    );
    println!(
        "{} replaced routes passed to a callback after their grace period; {} routes in the table",
        r.freed_by_callback, r.routes_left
    );
}

#[cfg(test)]
mod tests {
    /// `cargo test` runs the example (shorter) and checks its bookkeeping.
    #[test]
    fn routing_table_runs() {
        let r = super::run(std::time::Duration::from_millis(50));
        assert!(r.lookups > 0 && r.changed > 0);
        let initial = 1 + 9 * usize::from(super::NETWORKS);
        assert_eq!(
            r.announced - r.withdrawn,
            initial,
            "every withdrawal was announced again"
        );
        assert_eq!(r.routes_left, initial);
        assert_eq!(
            r.freed_by_callback, r.changed,
            "every replaced route reached its callback"
        );
        super::main();
    }
}
