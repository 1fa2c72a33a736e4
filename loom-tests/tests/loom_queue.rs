//! Loom models of rcu-queue's list algorithms: one writer (main) changes a tiny list while
//! a reader thread traverses it in a read-side critical section.
//!
//! Run (each model takes seconds on 2 cores):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 \
//!     cargo test -p loom-tests --release --test loom_queue
//! ```
//!
//! The invariant of every model: the reader sees a well-formed list, one of the sequences
//! the writer's steps allow, and every element it visits is linked, or was linked during
//! its critical section, and is not freed. Each element keeps its value in a loom
//! `UnsafeCell`, written when the element is created and poisoned by its `Drop` just
//! before the memory is freed: loom reports a causality violation if a reader's read is not
//! ordered after the creation (publication too weak) or not ordered before the poisoning
//! (grace period too short), and the reader asserts it never reads the poison.
//!
//! Writers free removed elements with `Retired::synchronize` (a grace period, then the
//! `Box`), so no call_rcu worker thread is involved. Domains are `Domain<Mb>`, created
//! inside each model.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;
use rcu_core::{Domain, Mb, ReadGuard};
use rcu_queue::{
    rcu_link, LinkKind, Linked, QList, QListLink, QSListLink, QSimpleQ, QSimpleQLink, QTailQ,
    QTailQLink, RcuIndex, RcuList,
};

/// Run `f` under loom, bounding preemptions to 2 unless `LOOM_MAX_PREEMPTIONS` says
/// otherwise. `f` returns what the reader saw; every outcome must be in `allowed`, and
/// every allowed outcome must show up in some explored execution (so the model really
/// races the reader against the writer, both ways).
fn model<F>(allowed: &'static [&'static [u32]], f: F)
where
    F: Fn() -> Vec<u32> + Sync + Send + 'static,
{
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(2);
    }
    let seen = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::new()));
    let record = seen.clone();
    b.check(move || {
        let got = f();
        assert!(
            allowed.contains(&got.as_slice()),
            "reader saw {got:?}, allowed: {allowed:?}"
        );
        *record.lock().unwrap().entry(got).or_insert(0usize) += 1;
    });
    let seen = seen.lock().unwrap();
    eprintln!(
        "loom: {} iterations, outcomes {seen:?} (preemption bound {:?})",
        seen.values().sum::<usize>(),
        b.preemption_bound
    );
    for a in allowed {
        assert!(
            seen.contains_key(*a),
            "outcome {a:?} never explored: the model is too weak"
        );
    }
}

const POISON: u32 = 0xdead;

/// A list element whose creation and destruction loom can see.
///
/// `repr(C)` with leading padding so that, if a model ever found a too-short grace
/// period, the reader's read lands in words the allocator does not reuse first, and the
/// failure is a clean loom report rather than a crash.
#[repr(C)]
struct Node {
    _pad: [usize; 4],
    val: UnsafeCell<u32>,
    ql: QListLink,
    tq: QTailQLink,
    sq: QSimpleQLink,
    sl: QSListLink,
    /// A second QLIST link, for the index models.
    chain: QListLink<Chain>,
}
/// The tag of `Node::chain`.
struct Chain;
rcu_link!(Node, ql: QListLink);
rcu_link!(Node, chain: QListLink<Chain>);
rcu_link!(Node, tq: QTailQLink);
rcu_link!(Node, sq: QSimpleQLink);
rcu_link!(Node, sl: QSListLink);

// SAFETY: the only non-`Sync` field is the loom `UnsafeCell`, written at creation (before
// the element is published) and by `Drop` (`&mut self`, after a grace period), and read by
// readers. Whether those accesses are ordered is exactly what the models check: loom
// reports any pair not ordered by happens-before.
unsafe impl Sync for Node {}

impl Node {
    fn new(v: u32) -> Box<Node> {
        Box::new(Node {
            _pad: [0; 4],
            val: UnsafeCell::new(v),
            ql: QListLink::new(),
            tq: QTailQLink::new(),
            sq: QSimpleQLink::new(),
            sl: QSListLink::new(),
            chain: QListLink::new(),
        })
    }

    /// The reader's access: must be ordered after the creation and before the poisoning.
    fn read(&self) -> u32 {
        // SAFETY: a plain read of a `u32`; loom checks it against the writes.
        let v = self.val.with(|p| unsafe { *p });
        assert_ne!(
            v, POISON,
            "reader saw a freed element: grace period too short"
        );
        v
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // SAFETY: `&mut self`; a reader still looking would be a race loom reports.
        self.val.with_mut(|p| unsafe { *p = POISON });
    }
}

/// The reader thread of every model: register, traverse once in a critical section.
fn spawn_reader<L, R>(domain: &Domain<Mb>, list: &Arc<L>, read: R) -> thread::JoinHandle<Vec<u32>>
where
    L: Send + Sync + 'static,
    R: Fn(&L, &ReadGuard<'_, Mb>) -> Vec<u32> + Send + 'static,
{
    let domain = domain.clone();
    let list = list.clone();
    thread::spawn(move || {
        let r = domain.register();
        let g = r.read_lock();
        let seen = read(&list, &g);
        drop(g);
        seen
    })
}

// ----- QLIST -----

/// A list of kind `K` holding `vals`, front to back.
fn list_of<K: LinkKind>(domain: &Domain<Mb>, vals: &[u32]) -> Arc<RcuList<Node, K, Mb>>
where
    Node: Linked<K>,
{
    let l = RcuList::new_in(domain);
    {
        let mut w = l.lock();
        for &v in vals.iter().rev() {
            w.insert_head(Node::new(v));
        }
    }
    Arc::new(l)
}

/// The reader walks with `first`/`next` (the `*_FIRST_RCU`/`*_NEXT_RCU` path, including
/// `next` on an element that may have been removed meanwhile).
fn walk<K: LinkKind>(l: &RcuList<Node, K, Mb>, g: &ReadGuard<'_, Mb>) -> Vec<u32>
where
    Node: Linked<K>,
{
    let mut seen = vec![];
    let mut cur = l.first(g);
    while let Some(n) = cur {
        seen.push(n.read());
        cur = l.next(n, g);
    }
    seen
}

/// `QLIST_INSERT_HEAD_RCU` racing a traversal.
#[test]
fn qlist_insert_head_vs_reader() {
    model(&[&[2], &[1, 2]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[2]);
        let reader = spawn_reader(&domain, &list, walk);
        list.lock().insert_head(Node::new(1));
        reader.join().unwrap()
    });
}

/// `QLIST_INSERT_AFTER_RCU` racing a traversal.
#[test]
fn qlist_insert_after_vs_reader() {
    model(&[&[1, 3], &[1, 2, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1, 3]);
        let reader = spawn_reader(&domain, &list, walk);
        list.lock().cursor().insert_after(Node::new(2));
        reader.join().unwrap()
    });
}

/// `QLIST_INSERT_BEFORE_RCU` racing a traversal.
#[test]
fn qlist_insert_before_vs_reader() {
    model(&[&[1, 3], &[1, 2, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1, 3]);
        let reader = spawn_reader(&domain, &list, walk);
        {
            let mut w = list.lock();
            let mut c = w.cursor();
            c.move_next();
            c.insert_before(Node::new(2));
        }
        reader.join().unwrap()
    });
}

/// `QLIST_REMOVE_RCU` + synchronize + free racing a traversal.
#[test]
fn qlist_remove_vs_reader() {
    model(&[&[1, 2], &[2]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1, 2]);
        let reader = spawn_reader(&domain, &list, walk);
        let retired = list.lock().cursor().remove_current().unwrap();
        drop(retired.synchronize()); // the free
        reader.join().unwrap()
    });
}

/// Remove an element and then its successor, then free both after grace periods. A
/// reader standing on the first removed element still moves on to the second (removed,
/// not yet freed), never to garbage.
#[test]
fn qlist_remove_two_vs_reader() {
    model(&[&[1, 2, 3], &[1, 3], &[1]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1, 2, 3]);
        let reader = spawn_reader(&domain, &list, walk);
        let (a, b) = {
            let mut w = list.lock();
            let mut c = w.cursor();
            c.move_next();
            (c.remove_current().unwrap(), c.remove_current().unwrap())
        };
        drop(a.synchronize());
        drop(b.synchronize());
        // `2.next` is never changed by the removals, so [1, 2] is impossible.
        reader.join().unwrap()
    });
}

/// Insert an element after the head, then remove the head (and free it after a grace
/// period). A reader that reaches the new element through the removal store (the head now
/// points at it) must see it initialised: this is why the removal store is `Release`
/// although QEMU uses a relaxed `qatomic_set` there (with a relaxed store, loom reports a
/// causality violation on the new element's value).
#[test]
fn qlist_insert_then_remove_vs_reader() {
    model(&[&[1], &[1, 2], &[2]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1]);
        let reader = spawn_reader(&domain, &list, walk);
        let retired = {
            let mut w = list.lock();
            let mut c = w.cursor();
            c.insert_after(Node::new(2));
            c.remove_current().unwrap()
        };
        drop(retired.synchronize());
        reader.join().unwrap()
    });
}

// ----- QTAILQ -----

fn qtailq_of(domain: &Domain<Mb>, vals: &[u32]) -> Arc<QTailQ<Node, Mb>> {
    let q = QTailQ::new_in(domain);
    {
        let mut w = q.lock();
        for &v in vals {
            w.insert_tail(Node::new(v));
        }
    }
    Arc::new(q)
}

fn qtailq_walk(q: &QTailQ<Node, Mb>, g: &ReadGuard<'_, Mb>) -> Vec<u32> {
    q.iter(g).map(Node::read).collect()
}

/// `QTAILQ_INSERT_HEAD_RCU` racing a traversal.
#[test]
fn qtailq_insert_head_vs_reader() {
    model(&[&[2], &[1, 2]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = qtailq_of(&domain, &[2]);
        let reader = spawn_reader(&domain, &q, qtailq_walk);
        q.lock().insert_head(Node::new(1));
        reader.join().unwrap()
    });
}

/// `QTAILQ_INSERT_TAIL_RCU` racing a traversal.
#[test]
fn qtailq_insert_tail_vs_reader() {
    model(&[&[1], &[1, 2]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = qtailq_of(&domain, &[1]);
        let reader = spawn_reader(&domain, &q, qtailq_walk);
        q.lock().insert_tail(Node::new(2));
        reader.join().unwrap()
    });
}

/// `QTAILQ_INSERT_AFTER_RCU` racing a traversal.
#[test]
fn qtailq_insert_after_vs_reader() {
    model(&[&[1, 3], &[1, 2, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = qtailq_of(&domain, &[1, 3]);
        let reader = spawn_reader(&domain, &q, qtailq_walk);
        q.lock().cursor().insert_after(Node::new(2));
        reader.join().unwrap()
    });
}

/// `QTAILQ_INSERT_BEFORE_RCU` racing a traversal.
#[test]
fn qtailq_insert_before_vs_reader() {
    model(&[&[1, 3], &[1, 2, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = qtailq_of(&domain, &[1, 3]);
        let reader = spawn_reader(&domain, &q, qtailq_walk);
        {
            let mut w = q.lock();
            let mut c = w.cursor();
            c.move_next();
            c.insert_before(Node::new(2));
        }
        reader.join().unwrap()
    });
}

/// `QTAILQ_REMOVE_RCU` of the tail + synchronize + free racing a traversal; the writer's
/// reverse view stays consistent.
#[test]
fn qtailq_remove_vs_reader() {
    model(&[&[1, 2], &[1]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = qtailq_of(&domain, &[1, 2]);
        let reader = spawn_reader(&domain, &q, qtailq_walk);
        let retired = {
            let mut w = q.lock();
            let mut c = w.cursor();
            c.move_next();
            let r = c.remove_current().unwrap();
            assert_eq!(w.iter_rev().map(Node::read).collect::<Vec<_>>(), [1]);
            r
        };
        drop(retired.synchronize());
        reader.join().unwrap()
    });
}

// ----- QSIMPLEQ and QSLIST (one model each) -----

/// `QSIMPLEQ_INSERT_TAIL_RCU` and `QSIMPLEQ_REMOVE_HEAD_RCU` + free racing a traversal.
#[test]
fn qsimpleq_tail_insert_and_remove_head_vs_reader() {
    model(&[&[1], &[1, 2], &[2]], || {
        let domain: Domain<Mb> = Domain::new();
        let q = QSimpleQ::new_in(&domain);
        q.lock().insert_tail(Node::new(1));
        let q = Arc::new(q);
        let reader = spawn_reader(&domain, &q, |q: &QSimpleQ<Node, Mb>, g| {
            q.iter(g).map(Node::read).collect()
        });
        let retired = {
            let mut w = q.lock();
            w.insert_tail(Node::new(2));
            w.remove_head().unwrap()
        };
        drop(retired.synchronize());
        reader.join().unwrap()
    });
}

/// `QSLIST_INSERT_AFTER_RCU` and `QSLIST_REMOVE_RCU` + free racing a traversal.
#[test]
fn qslist_insert_after_and_remove_vs_reader() {
    model(&[&[1], &[1, 2], &[2]], || {
        let domain: Domain<Mb> = Domain::new();
        let l = list_of::<QSListLink>(&domain, &[1]);
        let reader = spawn_reader(&domain, &l, walk);
        let retired = {
            let mut w = l.lock();
            let mut c = w.cursor();
            c.insert_after(Node::new(2));
            c.remove_current().unwrap()
        };
        drop(retired.synchronize());
        reader.join().unwrap()
    });
}

// ----- replace -----

/// `list_replace_rcu` on a QLIST (+ synchronize + free of the old element) racing a
/// traversal: the reader sees the old element or the new one, never both, never neither.
#[test]
fn qlist_replace_vs_reader() {
    model(&[&[1, 2, 3], &[1, 20, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let list = list_of::<QListLink>(&domain, &[1, 2, 3]);
        let reader = spawn_reader(&domain, &list, walk);
        let old = {
            let mut w = list.lock();
            let mut c = w.cursor();
            c.move_next();
            c.replace_current(Node::new(20))
        };
        drop(old.synchronize());
        reader.join().unwrap()
    });
}

/// A cursor's replace on a QSLIST (singly linked, O(1) at the cursor), the head element,
/// racing a `first`/`next` walk.
#[test]
fn qslist_replace_head_vs_reader() {
    model(&[&[1, 2], &[10, 2]], || {
        let domain: Domain<Mb> = Domain::new();
        let l = list_of::<QSListLink>(&domain, &[1, 2]);
        let reader = spawn_reader(&domain, &l, walk);
        let old = l.lock().cursor().replace_current(Node::new(10));
        drop(old.synchronize());
        reader.join().unwrap()
    });
}

// ----- an index of the same kind as its owner -----

type ChainIndex = RcuIndex<Node, QListLink<Chain>, Mb>;

/// An owner holding `vals` and one index per entry of `chains`, each linking the given
/// values (in that order), all through `Node::chain`.
fn indexed(
    domain: &Domain<Mb>,
    vals: &[u32],
    chains: &[&[u32]],
) -> (Arc<QList<Node, Mb>>, Vec<Arc<ChainIndex>>) {
    let owner = list_of::<QListLink>(domain, vals);
    let indexes: Vec<Arc<ChainIndex>> = chains
        .iter()
        .map(|_| Arc::new(RcuIndex::of(&*owner)))
        .collect();
    let r = domain.register();
    let g = r.read_lock();
    let mut w = owner.lock();
    for (index, members) in indexes.iter().zip(chains) {
        for &v in members.iter().rev() {
            let n = owner.iter(&g).find(|n| n.read() == v).unwrap();
            w.index(index).insert_head(n);
        }
    }
    drop(w);
    (owner, indexes)
}

fn chain_walk(ix: &ChainIndex, g: &ReadGuard<'_, Mb>) -> Vec<u32> {
    ix.iter(g).map(Node::read).collect()
}

/// The writer unlinks an element from an index, retires it from its owner and frees it
/// after a grace period, while a reader walks the index: the index's readers are covered
/// by the owner's grace period (one domain), so the reader never reads freed memory.
#[test]
fn index_unlink_then_retire_vs_index_reader() {
    model(&[&[1, 2], &[2]], || {
        let domain: Domain<Mb> = Domain::new();
        let (owner, indexes) = indexed(&domain, &[1, 2], &[&[1, 2]]);
        let reader = spawn_reader(&domain, &indexes[0], chain_walk);
        let retired = {
            let r = domain.register();
            let g = r.read_lock();
            let mut w = owner.lock();
            let one = owner.first(&g).unwrap();
            w.index(&indexes[0]).remove(one);
            w.remove(one)
        };
        drop(retired.synchronize());
        reader.join().unwrap()
    });
}

/// The writer moves an element from one index to another of the same link (a hash chain
/// to another chain) while a reader walks the first: a reader standing on it continues
/// in the chain it moved to, seeing initialised elements only.
#[test]
fn index_move_vs_index_reader() {
    model(&[&[1, 2], &[2], &[1, 3]], || {
        let domain: Domain<Mb> = Domain::new();
        let (owner, indexes) = indexed(&domain, &[1, 2, 3], &[&[1, 2], &[3]]);
        let reader = spawn_reader(&domain, &indexes[0], chain_walk);
        {
            let r = domain.register();
            let g = r.read_lock();
            let mut w = owner.lock();
            let one = owner.first(&g).unwrap();
            w.index(&indexes[0]).remove(one);
            w.index(&indexes[1]).insert_head(one);
        }
        reader.join().unwrap()
    });
}

/// An index dropped on another thread unlinks its elements without the writer lock, while
/// the owner waits to see an element unlinked and then retires and frees it: in every
/// interleaving the drop unlinks it (the wait ends) and the owner may then retire it (no
/// "still linked into an index" panic). The memory order between the dropping thread's
/// last read of the element and the free (the reset's `Release`, the owner check's
/// `Acquire`) is argued in the source, not checked here: that thread only touches atomics,
/// and loom checks frees only against `UnsafeCell` accesses.
#[test]
fn index_dropped_without_the_lock_vs_owner_retire() {
    model(&[&[1]], || {
        let domain: Domain<Mb> = Domain::new();
        let (owner, mut indexes) = indexed(&domain, &[1], &[&[1]]);
        let index = indexes.pop().unwrap();
        let dropper = thread::spawn(move || drop(index));
        let r = domain.register();
        loop {
            let g = r.read_lock();
            if !owner.first(&g).unwrap().chain.is_linked() {
                break;
            }
            drop(g);
            thread::yield_now();
        }
        let (seen, retired) = {
            let g = r.read_lock();
            let one = owner.first(&g).unwrap();
            (vec![one.read()], owner.lock().remove(one))
        };
        drop(retired.synchronize());
        dropper.join().unwrap();
        seen
    });
}
