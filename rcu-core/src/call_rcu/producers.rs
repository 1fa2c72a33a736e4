//! This thread's call_rcu queues, one per domain, found in O(1).
//!
//! A hash map from domain id to the thread's [`Producer`] for that domain, plus a one-entry
//! cache of the last domain used (a const thread-local without a destructor, so the fast
//! path is one thread-local load and a compare). Domain ids are never reused, so a cached
//! entry can only match a live domain: a thread that calls `call` on a domain holds a handle
//! to it. Entries of domains that have ended are pruned when a new producer is added, and
//! their chunks were already freed by the domain (see `queue.rs`), so a thread that touches
//! thousands of short-lived domains keeps only the producers of the live ones.

use core::cell::{Cell, RefCell};
use core::ptr;
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;

use super::queue::Producer;
use crate::sync::{self, Arc};

/// Keyed by domain id. A fixed hasher: ids are ours (no attacker chooses them), and a
/// deterministic iteration order keeps the loom models deterministic.
type Map = HashMap<u64, Arc<Producer>, BuildHasherDefault<DefaultHasher>>;

struct Slots {
    map: RefCell<Option<Map>>,
}

impl Drop for Slots {
    fn drop(&mut self) {
        // The cache points into the map: forget it first.
        let _ = LAST.try_with(|l| l.set((0, ptr::null())));
        for (_, p) in self.map.get_mut().take().into_iter().flatten() {
            // The thread is exiting: hand the partial chunk to the consumer.
            p.owner_exit();
        }
    }
}

#[cfg(not(loom))]
sync::tls! {
    /// The last `(domain id, producer)` used by this thread (0: none).
    static LAST: Cell<(u64, *const Producer)> = const { Cell::new((0, ptr::null())) };
    static SLOTS: Slots = const { Slots { map: RefCell::new(None) } };
}

// loom's `thread_local!` has no `const` initialisers.
#[cfg(loom)]
sync::tls! {
    static LAST: Cell<(u64, *const Producer)> = Cell::new((0, ptr::null()));
    static SLOTS: Slots = Slots { map: RefCell::new(None) };
}

/// Run `f` on this thread's producer for domain `id`. On the thread's first use of the
/// domain, `adopt` is called with the new producer (to add it to the domain's list).
/// `None` once the thread's thread-locals are being destroyed (late thread-local
/// destructors): the caller then queues through a one-off producer.
#[inline(always)]
pub(crate) fn with<R>(
    id: u64,
    adopt: impl FnOnce(&Arc<Producer>),
    f: impl FnOnce(&Producer) -> R,
) -> Option<R> {
    let (last_id, last) = LAST.try_with(Cell::get).unwrap_or((0, ptr::null()));
    if last_id == id {
        // SAFETY: LAST only ever holds a producer that SLOTS keeps alive (it is cleared
        // before SLOTS drops or prunes that entry), and this thread-local is ours.
        return Some(f(unsafe { &*last }));
    }
    let p = lookup(id, adopt)?;
    Some(f(&p))
}

/// The slow path of [`with`]: find or create the producer, and cache it.
#[cold]
#[inline(never)]
fn lookup(id: u64, adopt: impl FnOnce(&Arc<Producer>)) -> Option<Arc<Producer>> {
    SLOTS
        .try_with(|slots| {
            let mut map = slots.map.borrow_mut();
            let map = map.get_or_insert_with(Map::default);
            let p = match map.get(&id) {
                Some(p) => p.clone(),
                None => {
                    // Prune the producers of ended domains (the cache may point to one).
                    let _ = LAST.try_with(|l| l.set((0, ptr::null())));
                    map.retain(|_, p| !p.domain_gone());
                    let p = Arc::new(Producer::new());
                    adopt(&p);
                    map.insert(id, p.clone());
                    p
                }
            };
            let _ = LAST.try_with(|l| l.set((id, Arc::as_ptr(&p))));
            p
        })
        .ok()
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Domain, Mb};

    /// `(producers, producers still holding chunks)` in this thread's map.
    fn this_thread() -> (usize, usize) {
        SLOTS.with(|s| {
            s.map.borrow().as_ref().map_or((0, 0), |m| {
                (m.len(), m.values().filter(|p| p.holds_chunks()).count())
            })
        })
    }

    /// Scenario 10 of issue 10: every (thread, domain) pair that ever called `call` kept its
    /// producer and its chunk after the domain was gone (+35 MB RSS after 4,000 domains).
    #[test]
    fn s10_producers_are_freed_with_their_domain() {
        let domains = if cfg!(miri) { 20 } else { 4000 };
        for _ in 0..domains {
            let d: Domain<Mb> = Domain::new();
            d.call(|| ());
            assert!(this_thread().0 >= 1);
        }
        // Each domain ends once its worker has drained it and exited; a new producer
        // prunes the ended ones from this thread's map.
        let start = std::time::Instant::now();
        let (mut producers, mut with_chunks) = this_thread();
        while producers > 16 || with_chunks > 16 {
            assert!(
                start.elapsed().as_secs() < 60,
                "{producers} producers ({with_chunks} with chunks) kept for ended domains"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
            let d: Domain<Mb> = Domain::new();
            d.call(|| ());
            (producers, with_chunks) = this_thread();
        }
    }

    #[test]
    fn the_last_used_domain_is_cached_and_others_are_found() {
        let (a, b): (Domain<Mb>, Domain<Mb>) = (Domain::new(), Domain::new());
        let pa = with(a.gp.id, |_| (), |p| p as *const Producer).unwrap();
        let pb = with(b.gp.id, |_| (), |p| p as *const Producer).unwrap();
        assert_ne!(pa, pb);
        assert_eq!(LAST.with(Cell::get), (b.gp.id, pb));
        assert_eq!(
            with(a.gp.id, |_| panic!("not new"), |p| p as *const Producer),
            Some(pa)
        );
        assert_eq!(LAST.with(Cell::get), (a.gp.id, pa));
    }
}
