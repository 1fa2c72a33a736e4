//! `fork()` support: the child of a process that uses RCU can keep using it.
//!
//! The handlers never wait for a grace period or a callback. `prepare` (in the forking
//! thread, before the fork) takes the short-held locks of every live domain, so that the child
//! never inherits a lock held by a thread that does not exist there; nothing in the runtime
//! holds one of them across a wait (grace periods wait for readers with no lock held, the
//! worker runs callbacks with no lock held), so taking them cannot deadlock with a reader,
//! a synchronizer or the worker, whatever they are doing. `parent` releases them. `child`
//! releases them too and repairs what the vanished threads left: only the forking thread
//! exists in the child, so every other thread's reader record is dropped, a grace period
//! that was in progress is abandoned (the next caller leads a new one), the call_rcu worker
//! is forgotten (the next `call`/`barrier` starts a new one), and the callback queues of the
//! vanished threads are sealed so that the new worker runs them.
//!
//! What the child inherits: callbacks queued before the fork and not yet run in the parent
//! run in the child too (on its copy of the memory) once something there starts the worker
//! (`call`, `barrier`, `poll`), except entries of a sealed chunk the parent's worker had
//! already taken at the moment of the fork, and a chunk caught between the two steps of a
//! seal (leaked in the child, never run twice). Critical sections of the forking thread are
//! still open in the child, exactly as in the parent. A fork from inside a callback keeps
//! the forking worker as the child's worker; a fork from inside a stall hook keeps the
//! forking leader leading.
//!
//! # What the caller of `fork` must uphold
//!
//! `fork()` is an `unsafe` function, and this is part of its contract when the process uses
//! RCU: in the child, do not use a reference that was read inside another thread's
//! read-side critical section (for example one handed to the forking thread through a
//! scoped thread). That thread does not exist in the child, its registration is dropped, and
//! grace periods there no longer wait for it (liburcu's bulletproof flavor prunes its
//! registry the same way). The alternative, keeping every vanished reader's open critical
//! section, would leave the child unable to complete a single grace period whenever another
//! thread was reading at the moment of the fork.
//!
//! Domains reach this module through [`ForkHooks`] only.

use core::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, Weak};
use std::thread::ThreadId;

use crate::sync::{lock, Arc};

/// Anything held across the fork (lock guards).
pub(crate) trait Held {}
impl<T> Held for T {}

/// What the fork handlers do with one part of a domain.
pub(crate) trait ForkHooks: Send + Sync {
    /// Take the locks the child must find unlocked; the guards borrow `self`. Must not wait
    /// for a grace period, a reader or a callback.
    fn hold(&self) -> Vec<Box<dyn Held + '_>>;
    /// In the child, after the locks are released: `me` is the only thread.
    fn child(&self, me: ThreadId);
}

type Tracked = Vec<Weak<dyn ForkHooks>>;
/// Guards held across a fork, with the part they borrow (dropped in that order).
type HeldPart = (Vec<Box<dyn Held>>, Arc<dyn ForkHooks>);

static TRACKED: Mutex<Tracked> = Mutex::new(Vec::new());

/// What `prepare` holds until `parent`/`child`: the TRACKED lock and the parts' guards.
/// Not a thread-local: a fork from a late thread-local destructor must find it too.
struct InFlight(UnsafeCell<Option<(MutexGuard<'static, Tracked>, Vec<HeldPart>)>>);

// SAFETY: the cell is only touched by the thread that holds the TRACKED lock (it is written
// in `prepare` after taking the lock, and emptied in `release`, which drops that lock last),
// so accesses never overlap; the guards inside are only dropped by that same thread.
unsafe impl Sync for InFlight {}

static IN_FLIGHT: InFlight = InFlight(UnsafeCell::new(None));

/// `pthread_atfork` registration: not yet, in progress, done. Not a `Once`: a child forked
/// while another thread was registering must not wait forever for that vanished thread.
static INSTALL: AtomicU8 = AtomicU8::new(0);
const INSTALLING: u8 = 1;
const INSTALLED: u8 = 2;

/// Have the fork handlers take care of `part` for as long as it lives.
pub(crate) fn track(part: Arc<dyn ForkHooks>) {
    // Relaxed: the winner of the exchange registers once; a loser goes on without waiting
    // (a fork in the meantime runs without our handlers, as before any domain existed).
    if INSTALL
        .compare_exchange(0, INSTALLING, Ordering::Relaxed, Ordering::Relaxed)
        .is_ok()
    {
        install();
        INSTALL.store(INSTALLED, Ordering::Relaxed);
    }
    let mut t = lock(&TRACKED);
    t.retain(|w| w.strong_count() > 0);
    t.push(Arc::downgrade(&part));
}

#[cfg(not(miri))]
fn install() {
    // SAFETY: the three handlers are `extern "C" fn()` with no arguments, as pthread_atfork
    // requires, and they stay valid for the life of the process.
    let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
    if rc != 0 {
        crate::unwind::warn(format_args!(
            "rcu: pthread_atfork failed ({rc}); fork() children cannot use RCU"
        ));
    }
}

/// Miri has no `pthread_atfork`; nothing forks there. The handlers still compile.
#[cfg(miri)]
fn install() {
    let _handlers: [extern "C" fn(); 3] = [prepare, parent, child];
}

extern "C" fn prepare() {
    // Keep TRACKED locked across the fork so that no part is added half-way (and so that a
    // concurrent fork waits for this one: IN_FLIGHT is ours until `release`).
    let list = lock(&TRACKED);
    let parts: Vec<Arc<dyn ForkHooks>> = list.iter().filter_map(Weak::upgrade).collect();
    let mut held = Vec::with_capacity(parts.len());
    for p in parts {
        let guards = p.hold();
        // SAFETY: the guards borrow `*p`; we store them next to an `Arc` that keeps `*p`
        // alive, and `release` drops every guard before its `Arc`. Only the lifetime
        // changes, not the layout.
        let guards: Vec<Box<dyn Held>> = unsafe { core::mem::transmute(guards) };
        held.push((guards, p));
    }
    // SAFETY: we hold the TRACKED lock (in `list`): nobody else touches IN_FLIGHT.
    unsafe { *IN_FLIGHT.0.get() = Some((list, held)) };
}

fn release(in_child: bool) {
    // SAFETY: `prepare` of this fork (on this thread) left the TRACKED lock in the cell, so
    // we still hold it and nobody else touches IN_FLIGHT.
    let Some((list, held)) = (unsafe { (*IN_FLIGHT.0.get()).take() }) else {
        return;
    };
    let mut parts = Vec::with_capacity(held.len());
    for (guards, p) in held {
        drop(guards);
        parts.push(p);
    }
    if in_child {
        let me = std::thread::current().id();
        for p in &parts {
            p.child(me);
        }
    }
    drop(parts);
    drop(list);
}

extern "C" fn parent() {
    release(false);
}

extern "C" fn child() {
    release(true);
}
