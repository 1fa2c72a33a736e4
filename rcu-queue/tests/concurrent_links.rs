//! Concurrency tests of what the one-link-per-kind lists could not do: an element in two
//! lists of the same kind, and `replace`.
//!
//! - `element_in_two_lists_of_one_kind`: routes owned by a QLIST (by id) and linked into
//!   two hash chains, indexes of the same kind (QLIST, another tag). Readers walk all three
//!   lists, with `iter` and with `first`/`next`, while one writer moves routes from chain
//!   to chain and retires routes (out of the chain, then out of the owner, freed through
//!   call_rcu) and adds fresh ones. A freed route is poisoned before its memory goes back:
//!   a reader that reads the poison, or (under ASan) touches freed memory, fails the test.
//! - `replace_is_seen_exactly_once_*`: readers walk a list of keys `0..LEN` while a writer
//!   keeps replacing random elements by new ones with the same key (`replace` for QLIST and
//!   QTAILQ, a cursor's `replace_current` for the four kinds). Every walk must see every key
//!   exactly once, in order: never both the old and the new element, never neither.
//!
//! Each case runs for about a third of a second by default (`RCU_TORTURE_SECS` sets it),
//! shorter under `--cfg rcu_sanitize` and tiny under Miri. A watchdog fails a case that
//! does not finish in time instead of letting it hang.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use rcu_core::{Domain, Memb, ReadGuard};
use rcu_queue::{rcu_link, QList, QListLink, QSList, QSimpleQ, QTailQ, RcuIndex};

mod common;
use common::{Checked, Elem, Rng};

mod cfg {
    /// Elements in each list.
    #[cfg(not(miri))]
    pub const LEN: usize = 64;
    #[cfg(miri)]
    pub const LEN: usize = 6;
    /// Reader threads per case.
    #[cfg(not(miri))]
    pub const READERS: usize = 3;
    #[cfg(miri)]
    pub const READERS: usize = 1;
    /// Default run time per case, when `RCU_TORTURE_SECS` is not set.
    #[cfg(not(any(miri, rcu_sanitize)))]
    pub const DEFAULT_MS: u64 = 330;
    #[cfg(all(rcu_sanitize, not(miri)))]
    pub const DEFAULT_MS: u64 = 250;
    #[cfg(miri)]
    pub const DEFAULT_MS: u64 = 20;
    /// How long a case may take before the watchdog fails it.
    pub const WATCHDOG: std::time::Duration = std::time::Duration::from_secs(120);
}

fn run_time() -> Duration {
    common::run_time(Duration::from_millis(cfg::DEFAULT_MS))
}

/// Run `case`, failing the whole test binary if it has not returned after
/// `cfg::WATCHDOG` (a hang would otherwise block CI forever).
fn with_watchdog(name: &'static str, case: impl FnOnce()) {
    let (done, wait) = mpsc::channel::<()>();
    let dog = std::thread::spawn(move || {
        if wait.recv_timeout(cfg::WATCHDOG) == Err(mpsc::RecvTimeoutError::Timeout) {
            eprintln!("{name}: still running after {:?}: hung", cfg::WATCHDOG);
            std::process::abort();
        }
    });
    case();
    let _ = done.send(());
    dog.join().expect("watchdog");
}

// ----- an element in two lists of the same kind -----

struct ById;
struct ByHash;

struct Route {
    id: Checked,
    by_id: QListLink<ById>,
    by_hash: QListLink<ByHash>,
}
rcu_link!(Route, by_id: QListLink<ById>);
rcu_link!(Route, by_hash: QListLink<ByHash>);

impl Route {
    fn new(id: u64) -> Box<Route> {
        Box::new(Route {
            id: Checked::new(id),
            by_id: QListLink::new(),
            by_hash: QListLink::new(),
        })
    }
}

type Routes = QList<Route, Memb, ById>;
type Chain = RcuIndex<Route, QListLink<ByHash>, Memb>;

struct Table {
    routes: Routes,
    chains: [Chain; 2],
}

/// What a reader does on each element it stands on: read it, dwell a little (so that a
/// writer freeing it too early has a window to do so), read it again.
fn visit(r: &Route) {
    let id = r.id.read();
    for _ in 0..32 {
        std::hint::spin_loop();
    }
    assert_eq!(r.id.read(), id, "a route changed under a reader");
}

/// One reader pass over the table: the owner and both chains, each walked with `iter`
/// and with `first`/`next`. Returns how many elements it visited.
fn read_table(t: &Table, g: &ReadGuard<'_, Memb>) -> usize {
    // A walk may follow a moved route into the other chain, so it is bounded by steps,
    // not by the chain's length.
    let bound = 4 * cfg::LEN;
    let mut n = 0;
    for r in t.routes.iter(g) {
        visit(r);
        n += 1;
    }
    let mut cur = t.routes.first(g);
    while let Some(r) = cur {
        cur = t.routes.next(r, g);
        visit(r);
        n += 1;
    }
    for chain in &t.chains {
        for r in chain.iter(g).take(bound) {
            visit(r);
            n += 1;
        }
        let mut cur = chain.first(g);
        for _ in 0..bound {
            let Some(r) = cur else { break };
            cur = chain.next(r, g);
            visit(r);
            n += 1;
        }
    }
    n
}

#[test]
fn element_in_two_lists_of_one_kind() {
    with_watchdog("element_in_two_lists_of_one_kind", || {
        let domain: Domain<Memb> = Domain::new();
        let routes = QList::new_in(&domain);
        let chains = [RcuIndex::of(&routes), RcuIndex::of(&routes)];
        let table = Arc::new(Table { routes, chains });
        let retired = Arc::new(AtomicUsize::new(0));
        let reclaimed = Arc::new(AtomicUsize::new(0));
        {
            let mut w = table.routes.lock();
            for id in 0..cfg::LEN as u64 {
                w.insert_head(Route::new(id));
            }
            let r = domain.register();
            let g = r.read_lock();
            for route in table.routes.iter(&g) {
                let chain = &table.chains[(route.id.read() % 2) as usize];
                w.index(chain).insert_head(route);
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let visits = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..cfg::READERS)
            .map(|_| {
                let (domain, table, stop, visits) =
                    (domain.clone(), table.clone(), stop.clone(), visits.clone());
                std::thread::spawn(move || {
                    let reader = domain.register();
                    while !stop.load(Ordering::Relaxed) {
                        let g = reader.read_lock();
                        let n = read_table(&table, &g);
                        drop(g);
                        visits.fetch_add(n as u64, Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                })
            })
            .collect();

        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut moves, mut next_id) = (0u64, cfg::LEN as u64);
        let reader = domain.register();
        let t0 = Instant::now();
        while t0.elapsed() < run_time() {
            let mut w = table.routes.lock();
            // Name a random route through a guard (the writer holds one too).
            let g = reader.read_lock();
            let pick = rng.below(cfg::LEN);
            let route = table
                .routes
                .iter(&g)
                .nth(pick)
                .expect("the table keeps its size");
            let from = table
                .chains
                .iter()
                .position(|c| c.iter(&g).any(|r| std::ptr::eq(r, route)))
                .expect("every route is in one chain");
            w.index(&table.chains[from]).remove(route);
            if rng.below(4) == 0 {
                // Add a fresh route (allocated before the old one is freed, so that the
                // allocator cannot hand the old memory straight back), then retire the old
                // one: out of its chain (done), then out of the owner.
                w.insert_head(Route::new(next_id));
                next_id += 1;
                let fresh = table.routes.first(&g).unwrap();
                w.index(&table.chains[from]).insert_head(fresh);
                let reclaimed = reclaimed.clone();
                w.remove(route).call(move |b| {
                    drop(b);
                    reclaimed.fetch_add(1, Ordering::Relaxed);
                });
                retired.fetch_add(1, Ordering::Relaxed);
            } else {
                // Move it to the other chain, at the head or after a random route there.
                let to = &table.chains[1 - from];
                let mut iw = w.index(to);
                match to.iter(&g).nth(rng.below(cfg::LEN)) {
                    Some(after) => iw.insert_after(after, route),
                    None => iw.insert_head(route),
                };
                moves += 1;
            }
            drop(g);
            drop(w);
            if rng.below(8) == 0 {
                domain.synchronize();
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("a reader panicked");
        }
        // Tear down: unlink everything from the chains, then retire it all.
        {
            let mut w = table.routes.lock();
            for chain in &table.chains {
                w.index(chain).clear();
            }
            let reclaimed = reclaimed.clone();
            let n = w
                .extract_if(|_| true)
                .map(|r| {
                    let reclaimed = reclaimed.clone();
                    r.call(move |b| {
                        drop(b);
                        reclaimed.fetch_add(1, Ordering::Relaxed);
                    });
                })
                .count();
            retired.fetch_add(n, Ordering::Relaxed);
            assert_eq!(n, cfg::LEN);
        }
        domain.barrier();
        let (retired, reclaimed) = (
            retired.load(Ordering::Relaxed),
            reclaimed.load(Ordering::Relaxed),
        );
        eprintln!(
            "two lists of one kind: {moves} moves, {} retired and reclaimed, {} visits",
            retired,
            visits.load(Ordering::Relaxed)
        );
        assert_eq!(reclaimed, retired);
        assert!(moves as usize + retired > cfg::LEN && visits.load(Ordering::Relaxed) > 0);
    });
}

// ----- replace -----

/// The per-kind operations of the replace test.
trait ReplaceList: Send + Sync + Sized + 'static {
    fn new_in(d: &Domain<Memb>) -> Self;
    fn keys(&self, g: &ReadGuard<'_, Memb>) -> Vec<u64>;
    fn push(&self, e: Box<Elem>);
    /// Replace the `i`-th element by `fresh`; retire the old one with `reclaim`.
    fn replace(&self, i: usize, fresh: Box<Elem>, by_cursor: bool, reclaim: Reclaim);
}

type Reclaim = Box<dyn FnOnce(Box<Elem>) + Send>;

macro_rules! replace_list {
    ($ty:ident, $push:ident, |$w:ident, $g:ident, $i:ident, $fresh:ident| $by_elem:expr) => {
        impl ReplaceList for $ty<Elem> {
            fn new_in(d: &Domain<Memb>) -> Self {
                $ty::new_in(d)
            }
            fn keys(&self, g: &ReadGuard<'_, Memb>) -> Vec<u64> {
                self.iter(g).map(|e| e.read()).collect()
            }
            fn push(&self, e: Box<Elem>) {
                self.lock().$push(e);
            }
            fn replace(&self, $i: usize, $fresh: Box<Elem>, by_cursor: bool, reclaim: Reclaim) {
                let mut $w = self.lock();
                let old = if by_cursor {
                    let mut c = $w.cursor();
                    for _ in 0..$i {
                        c.move_next();
                    }
                    c.replace_current($fresh)
                } else {
                    let reader = self.domain().register();
                    let $g = reader.read_lock();
                    $by_elem
                };
                old.call(reclaim);
            }
        }
    };
}

replace_list!(QList, insert_head, |w, g, i, fresh| {
    let old = w.list().iter(&g).nth(i).unwrap();
    w.replace(old, fresh)
});
replace_list!(QTailQ, insert_tail, |w, g, i, fresh| {
    let old = w.list().iter(&g).nth(i).unwrap();
    w.replace(old, fresh)
});
replace_list!(QSimpleQ, insert_tail, |w, _g, _i, _fresh| unreachable!(
    "QSIMPLEQ replaces at a cursor"
));
replace_list!(QSList, insert_head, |w, _g, _i, _fresh| unreachable!(
    "QSLIST replaces at a cursor"
));

fn replace_case<L: ReplaceList>(name: &'static str, by_cursor: bool, reversed: bool) {
    with_watchdog(name, || {
        let domain: Domain<Memb> = Domain::new();
        let list = Arc::new(L::new_in(&domain));
        let keys: Vec<u64> = (0..cfg::LEN as u64).collect();
        for &k in &keys {
            list.push(Elem::new(if reversed {
                cfg::LEN as u64 - 1 - k
            } else {
                k
            }));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let walks = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..cfg::READERS)
            .map(|_| {
                let (domain, list, stop, walks, keys) = (
                    domain.clone(),
                    list.clone(),
                    stop.clone(),
                    walks.clone(),
                    keys.clone(),
                );
                std::thread::spawn(move || {
                    let reader = domain.register();
                    while !stop.load(Ordering::Relaxed) {
                        let g = reader.read_lock();
                        // Never both the old and the new element, never neither.
                        assert_eq!(list.keys(&g), keys, "{name}: a walk saw a wrong key set");
                        drop(g);
                        walks.fetch_add(1, Ordering::Relaxed);
                        std::thread::yield_now();
                    }
                })
            })
            .collect();
        let reclaimed = Arc::new(AtomicUsize::new(0));
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut replaced = 0usize;
        let t0 = Instant::now();
        while t0.elapsed() < run_time() {
            // The list holds keys `0..LEN` in order, so the `i`-th element's key is `i`.
            let i = rng.below(cfg::LEN);
            let key = i as u64;
            let reclaimed = reclaimed.clone();
            list.replace(
                i,
                Elem::new(key),
                by_cursor,
                Box::new(move |b| {
                    drop(b);
                    reclaimed.fetch_add(1, Ordering::Relaxed);
                }),
            );
            replaced += 1;
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().expect("a reader panicked");
        }
        domain.barrier();
        eprintln!(
            "{name}: {replaced} replacements, {} walks",
            walks.load(Ordering::Relaxed)
        );
        assert_eq!(reclaimed.load(Ordering::Relaxed), replaced);
        assert!(replaced > 0 && walks.load(Ordering::Relaxed) > 0);
    });
}

#[test]
fn replace_is_seen_exactly_once_qlist() {
    replace_case::<QList<Elem>>("qlist replace", false, true);
    replace_case::<QList<Elem>>("qlist replace_current", true, true);
}

#[test]
fn replace_is_seen_exactly_once_qtailq() {
    replace_case::<QTailQ<Elem>>("qtailq replace", false, false);
    replace_case::<QTailQ<Elem>>("qtailq replace_current", true, false);
}

#[test]
fn replace_is_seen_exactly_once_qsimpleq() {
    replace_case::<QSimpleQ<Elem>>("qsimpleq replace_current", true, false);
}

#[test]
fn replace_is_seen_exactly_once_qslist() {
    replace_case::<QSList<Elem>>("qslist replace_current", true, true);
}
