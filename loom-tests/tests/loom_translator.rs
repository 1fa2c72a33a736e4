//! Loom models of ram-list's [`Translator`](ram_list::Translator): the real type, over a real
//! `RamList`, against a concurrent unplug.
//!
//! Run (preemption bound 2 unless `LOOM_MAX_PREEMPTIONS` says otherwise):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" \
//!     cargo test -p loom-tests --release --test loom_translator --target-dir target/loom
//! ```
//!
//! A translator keeps the block it found *across* read-side critical sections and uses it
//! again only if the list's `version` is unchanged. Each model has a reader that
//! translates the same address in two critical sections (the second one from the cache
//! when the version still matches), and main, which unplugs the block with
//! `RamList::unplug_sync`: clear its idstr, unlink it, bump the version, wait for the two
//! grace periods of the reclamation, unmap it. Two threads: allocating a block within the
//! first 128 MiB and naming it queue no call_rcu callback, and `unplug_sync` queues none,
//! so the domain's call_rcu worker never starts.
//!
//! Use after free is caught by loom itself: under `--cfg loom` a block's destructor writes
//! its `used_length` through `with_mut`, and its idstr cell's destructor writes the cell, so
//! a reader's load of either that is not ordered after the reclamation is a causality
//! violation. The reader reads both from every block it is handed. (With the version check
//! taken out of `Sighting::get`, the models fail.)
//!
//! The asynchronous `free` is not modelled: its callback queues the second stage of the
//! reclamation from the worker, and a worker that has also waited for a reader then holds
//! two rcu-core thread-locals whose destructors both do loom operations; loom keeps
//! thread-locals in a hash map, runs those destructors in a random order, and reports the
//! model as non-deterministic.
#![cfg(loom)]

use loom::sync::Arc;
use loom::thread;
use ram_list::RamList;
use rcu_core::{Domain, Flavor, Mb, Memb};

const PAGE: u64 = 4096;

/// Run `f` under loom, bounding preemptions to 2 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise.
fn model<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound.get_or_insert(2);
    b.check(f);
}

/// The reader: the same address translated in two critical sections; every block it is
/// handed is read (its used length and idstr), and must be the block at `addr` under one of
/// `names`.
fn translate_twice<F: Flavor>(domain: &Domain<F>, list: &RamList<F>, addr: u64, names: &[&str]) {
    let r = domain.register();
    let tlb = list.translator();
    for _ in 0..2 {
        let g = r.read_lock();
        if let Some(b) = tlb.lookup(addr, &g) {
            assert_eq!(b.offset(), addr);
            assert_eq!(b.used_length(), PAGE);
            let idstr = b.idstr();
            assert!(idstr.is_empty() || names.contains(&idstr), "{idstr:?}");
        }
        drop(g);
    }
}

/// Invariant: a translator never hands out a block that was (or is being) reclaimed, even
/// though it keeps the block between critical sections while main unplugs it.
fn translator_vs_unplug<F: Flavor>(domain: fn() -> Domain<F>) {
    model(move || {
        let domain = domain();
        let list = Arc::new(RamList::new_in(&domain));
        let x = list.alloc_named("x", PAGE).unwrap();
        let reader = {
            let (domain, list) = (domain.clone(), list.clone());
            thread::spawn(move || translate_twice(&domain, &list, x, &["x"]))
        };
        list.unplug_sync(x).unwrap();
        reader.join().unwrap();
    });
}

#[test]
fn memb_translator_vs_unplug() {
    translator_vs_unplug::<Memb>(Domain::new);
}

#[test]
fn mb_translator_vs_unplug() {
    translator_vs_unplug::<Mb>(Domain::new);
}

/// Invariant: when a block is unplugged and another plugged at the same ram address (best
/// fit reuses the hole) while a translator holds the first in its cache, the translator
/// hands out the old block (still alive in that section) or the new one, never a
/// reclaimed block.
#[test]
fn memb_translator_vs_unplug_and_replug_at_the_same_address() {
    model(|| {
        let domain: Domain<Memb> = Domain::new();
        let list = Arc::new(RamList::new_in(&domain));
        let x = list.alloc_named("x", PAGE).unwrap();
        let reader = {
            let (domain, list) = (domain.clone(), list.clone());
            thread::spawn(move || translate_twice(&domain, &list, x, &["x", "y"]))
        };
        list.unplug_sync(x).unwrap();
        assert_eq!(
            list.alloc_named("y", PAGE).unwrap(),
            x,
            "best fit reuses the hole"
        );
        reader.join().unwrap();
    });
}
