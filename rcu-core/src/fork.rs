//! `fork()` support (liburcu's and QEMU's atfork handling).
//!
//! `prepare` (in the forking thread, before the fork) takes every lock of every live domain,
//! after waiting for the grace period and the callback batch in flight to finish, so the
//! child never inherits a lock held by a thread that does not exist there. `parent` releases
//! them. `child` releases them too, then drops every reader record that belongs to another
//! thread (only the forking thread exists in the child) and forgets the call_rcu worker,
//! which the next `call`/`barrier` restarts. Callbacks queued before the fork and not yet
//! run are run by the child's new worker as well as by the parent's.
//!
//! Forking from inside a read-side critical section deadlocks in `prepare` (it waits for a
//! grace period that waits for the caller); so does forking from a call_rcu callback.

use std::cell::RefCell;
use std::sync::{Mutex, Once, Weak};

use crate::domain::Core;
use crate::flavor::Flavor;
use crate::sync::{lock, Arc};

/// Anything held across the fork (lock guards).
pub(crate) trait Held {}
impl<T> Held for T {}

/// What the fork handlers do with one domain.
pub(crate) trait ForkHooks: Send + Sync {
    /// Take every lock; the returned guards borrow `self`.
    fn lock_all(&self) -> Vec<Box<dyn Held + '_>>;
    /// In the child, after the locks are released.
    fn child_fixup(&self);
}

type DomainList = Vec<Weak<dyn ForkHooks>>;
/// Guards held across a fork, with the domain they borrow (dropped in that order).
type HeldDomain = (Vec<Box<dyn Held>>, Arc<dyn ForkHooks>);

static DOMAINS: Mutex<DomainList> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

std::thread_local! {
    /// Held between `prepare` and `parent`/`child`: the domains (kept alive) and the guards
    /// that borrow them. Field order matters: guards drop before the domains.
    static HELD: RefCell<Vec<HeldDomain>> = const { RefCell::new(Vec::new()) };
}

pub(crate) fn track<F: Flavor>(core: &Arc<Core<F>>) {
    INSTALL.call_once(|| {
        // SAFETY: the three handlers are `extern "C" fn()` with no arguments, as
        // pthread_atfork requires, and they stay valid for the life of the process.
        let rc = unsafe { libc::pthread_atfork(Some(prepare), Some(parent), Some(child)) };
        if rc != 0 {
            eprintln!("rcu: pthread_atfork failed ({rc}); fork() children cannot use RCU");
        }
    });
    let hooks: Arc<dyn ForkHooks> = core.clone();
    let mut d = lock(&DOMAINS);
    d.retain(|w| w.strong_count() > 0);
    d.push(Arc::downgrade(&hooks));
}

extern "C" fn prepare() {
    // Keep DOMAINS locked across the fork so that no domain is added half-way.
    let list = lock(&DOMAINS);
    let domains: Vec<Arc<dyn ForkHooks>> = list.iter().filter_map(Weak::upgrade).collect();
    let _ = FORK_GUARD.try_with(|g| *g.borrow_mut() = Some(list));
    let _ = HELD.try_with(|h| {
        let mut h = h.borrow_mut();
        for d in domains {
            let guards = d.lock_all();
            // SAFETY: the guards borrow `*d`; we store them next to an `Arc` that keeps `*d`
            // alive, and `release` drops every guard before its `Arc`. Only the lifetime
            // changes, not the layout.
            let guards: Vec<Box<dyn Held>> = unsafe { core::mem::transmute(guards) };
            h.push((guards, d));
        }
    });
}

fn release(in_child: bool) {
    let held = HELD
        .try_with(|h| core::mem::take(&mut *h.borrow_mut()))
        .unwrap_or_default();
    let mut domains = Vec::with_capacity(held.len());
    for (guards, d) in held {
        drop(guards);
        domains.push(d);
    }
    let _ = FORK_GUARD.try_with(|g| drop(g.borrow_mut().take()));
    if in_child {
        for d in &domains {
            d.child_fixup();
        }
    }
}

std::thread_local! {
    /// The DOMAINS lock, held from `prepare` to `parent`/`child`.
    static FORK_GUARD: RefCell<Option<std::sync::MutexGuard<'static, DomainList>>> = const { RefCell::new(None) };
}

extern "C" fn parent() {
    release(false);
}

extern "C" fn child() {
    release(true);
}

impl<F: Flavor> ForkHooks for Core<F> {
    fn lock_all(&self) -> Vec<Box<dyn Held + '_>> {
        let mut v: Vec<Box<dyn Held + '_>> = Vec::new();
        // Order: consumer -> gp_state -> registry -> worker -> producers (the order used
        // everywhere else, so prepare cannot deadlock against a running domain).
        v.push(Box::new(lock(&self.consumer)));
        let mut gp = lock(&self.gp_state);
        while gp.in_progress {
            gp = crate::sync::wait(&self.gp_cv, gp);
        }
        v.push(Box::new(gp));
        v.push(Box::new(lock(&self.registry)));
        v.push(Box::new(lock(&self.worker)));
        v.push(Box::new(lock(&self.producers)));
        v.push(Box::new(lock(&self.waker.thread)));
        v
    }

    fn child_fixup(&self) {
        let me = std::thread::current().id();
        for r in lock(&self.registry).iter() {
            r.waiting.store(false, crate::sync::Ordering::Relaxed);
        }
        lock(&self.registry).retain(|r| r.owner == me);
        for p in lock(&self.producers).iter() {
            p.after_fork_in_child();
        }
        *lock(&self.waker.thread) = None;
        let mut w = lock(&self.worker);
        w.started = false;
        self.worker_started
            .store(false, crate::sync::Ordering::Release);
    }
}
