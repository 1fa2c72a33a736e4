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
//! run in the child too (on its copy of the memory), except those the parent's worker had
//! already taken into a batch at the moment of the fork (leaked in the child, never run
//! twice). Critical sections of the forking thread are still open in the child, exactly as
//! in the parent.
//!
//! Domains reach this module through [`ForkHooks`] only.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, Once, Weak};
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
static INSTALL: Once = Once::new();

std::thread_local! {
    /// Held between `prepare` and `parent`/`child`: the parts (kept alive) and the guards
    /// that borrow them.
    static HELD: RefCell<Vec<HeldPart>> = const { RefCell::new(Vec::new()) };
    /// The TRACKED lock, held from `prepare` to `parent`/`child`.
    static TRACKED_GUARD: RefCell<Option<MutexGuard<'static, Tracked>>> = const { RefCell::new(None) };
}

/// Have the fork handlers take care of `part` for as long as it lives.
pub(crate) fn track(part: Arc<dyn ForkHooks>) {
    // Miri has no `pthread_atfork`; tests under Miri do not fork.
    #[cfg(not(miri))]
    INSTALL.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()` with no arguments, as
        // pthread_atfork requires, and they stay valid for the life of the process.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            eprintln!("rcu: pthread_atfork failed ({rc}); fork() children cannot use RCU");
        }
    });
    #[cfg(miri)]
    INSTALL.call_once(|| {
        // The handlers still exist (and compile) under Miri; nothing forks there.
        let _handlers: [extern "C" fn(); 3] = [prepare, parent, child];
    });
    let mut t = lock(&TRACKED);
    t.retain(|w| w.strong_count() > 0);
    t.push(Arc::downgrade(&part));
}

extern "C" fn prepare() {
    // Keep TRACKED locked across the fork so that no part is added half-way.
    let list = lock(&TRACKED);
    let parts: Vec<Arc<dyn ForkHooks>> = list.iter().filter_map(Weak::upgrade).collect();
    let _ = TRACKED_GUARD.try_with(|g| *g.borrow_mut() = Some(list));
    let _ = HELD.try_with(|h| {
        let mut h = h.borrow_mut();
        for p in parts {
            let guards = p.hold();
            // SAFETY: the guards borrow `*p`; we store them next to an `Arc` that keeps `*p`
            // alive, and `release` drops every guard before its `Arc`. Only the lifetime
            // changes, not the layout.
            let guards: Vec<Box<dyn Held>> = unsafe { core::mem::transmute(guards) };
            h.push((guards, p));
        }
    });
}

fn release(in_child: bool) {
    let held = HELD
        .try_with(|h| core::mem::take(&mut *h.borrow_mut()))
        .unwrap_or_default();
    let mut parts = Vec::with_capacity(held.len());
    for (guards, p) in held {
        drop(guards);
        parts.push(p);
    }
    let _ = TRACKED_GUARD.try_with(|g| drop(g.borrow_mut().take()));
    if in_child {
        let me = std::thread::current().id();
        for p in &parts {
            p.child(me);
        }
    }
}

extern "C" fn parent() {
    release(false);
}

extern "C" fn child() {
    release(true);
}
