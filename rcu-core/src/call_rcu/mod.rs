//! call_rcu: queueing callbacks (never blocking), `barrier`, polled grace periods, and the
//! opt-in blocking bound.
//!
//! `call` is wait-free on its fast path: a thread-local lookup, a store into the thread's own
//! chunk, a compiler fence and one load of the worker's `sleeping` flag (plus an unpark when
//! it is set). The first call of a thread on a domain takes the domain's producers lock once
//! to add its queue; starting the worker (once per domain) spawns a thread. Nothing in `call`
//! waits for a grace period, for the worker or for another producer, unless the domain was
//! built with [`DomainBuilder::blocking_backlog_limit`](crate::DomainBuilder::blocking_backlog_limit).

mod producers;
pub(crate) mod queue;
mod state;
mod worker;

use crate::flavor::Flavor;
use crate::sync::{self, lock, Arc, Ordering};
use queue::{Entry, Producer};
pub(crate) use state::{CallRcu, Config};

impl<F: Flavor> CallRcu<F> {
    /// Queue `c` on this thread's producer; the entry is built in place in its chunk.
    #[inline]
    pub(crate) fn call<C: FnOnce() + Send + 'static>(this: &Arc<Self>, c: C) {
        // Acquire: pairs with the Release in `worker::start`.
        if !this.started.load(Ordering::Acquire) {
            Self::start_lazily(this);
        }
        let mut c = Some(c);
        let sealed = producers::with(
            this.gp.id,
            |p| lock(&this.producers).push(p.clone()),
            |p| c.take().is_some_and(|c| p.push_callback(c)),
        );
        if let Some(c) = c {
            // The thread-local queue is gone (a late thread-local destructor): a one-off
            // producer, already sealed, that the worker drains and frees.
            lock(&this.producers).push(Arc::new(Producer::orphan(Entry::new(c))));
        }
        // The light half of the barrier pair with the worker's `idle` (no lost wake-up
        // where membarrier exists): our entry is published before we look at `sleeping`.
        crate::membarrier::light();
        // Relaxed: the barrier pair above provides the ordering.
        if this.sleeping.load(Ordering::Relaxed) {
            this.wake_worker();
        }
        if sealed == Some(true) {
            this.filled_a_chunk();
        }
    }

    /// Once per chunk of callbacks: under a flood, give the worker a chance to run (a yield
    /// waits for nothing, so it cannot deadlock); with the opt-in limit, wait for it.
    #[cold]
    fn filled_a_chunk(&self) {
        // Relaxed: a hint (see `CallRcu::flood`).
        #[cfg(not(loom))]
        if self.flood.load(Ordering::Relaxed) {
            sync::yield_now();
        }
        if self.config.blocking_limit.is_some() {
            self.throttle();
        }
    }

    /// The first `call` of a domain starts its worker. If the thread cannot be spawned the
    /// callback stays queued and the next call tries again (`call` never fails).
    #[cold]
    fn start_lazily(this: &Arc<Self>) {
        if let Err(e) = worker::start(this) {
            crate::unwind::warn(format_args!(
                "rcu: cannot spawn the call_rcu worker thread ({e}); will retry"
            ));
        }
    }

    /// Start the worker, or panic saying why it cannot run (for calls that wait for it).
    #[track_caller]
    fn ensure_worker(this: &Arc<Self>) {
        if !this.started.load(Ordering::Acquire) {
            if let Err(e) = worker::start(this) {
                panic!("rcu: cannot spawn the call_rcu worker thread: {e}");
            }
        }
    }

    /// Wait until every callback queued before this call has run (`rcu_barrier`). Callbacks
    /// queued afterwards, including by those callbacks, are not waited for.
    pub(crate) fn barrier(this: &Arc<Self>) {
        Self::ensure_worker(this);
        let mut w = lock(&this.worker);
        // The first snapshot that begins after this point covers everything queued before
        // it (the worker takes it under the same mutex).
        let target = w.snap_started + 1;
        w.kick = true;
        this.wake_worker();
        while w.snap_done < target {
            w = sync::wait(&this.done_cv, w);
        }
    }

    /// `poll` found its cookie unsatisfied: make sure a worker serves the request (in a fork
    /// child the parent's worker is gone until something starts a new one).
    pub(crate) fn poll_pending(this: &Arc<Self>) {
        // Acquire: pairs with the Release in `worker::start`.
        if !this.started.load(Ordering::Acquire) {
            Self::start_lazily(this);
        }
    }

    /// Have the worker drive grace periods until `target` has completed.
    pub(crate) fn request_gp(this: &Arc<Self>, target: u64) {
        Self::ensure_worker(this);
        let mut w = lock(&this.worker);
        w.gp_requested = w.gp_requested.max(target);
        w.kick = true;
        this.wake_worker();
    }

    /// The last `Domain` handle is gone: let the worker drain the queues and exit.
    pub(crate) fn shut_down(&self) {
        let mut w = lock(&self.worker);
        w.shutdown = true;
        self.wake_worker();
    }

    /// The opt-in blocking bound (checked once per chunk of callbacks): past the limit, a
    /// producer that may block waits for the worker to bring the backlog down to half of it.
    /// A producer that must not block (inside a critical section of the domain, an online
    /// QSBR reader of it, one of its callbacks) goes on: waiting would deadlock at once.
    #[cold]
    fn throttle(&self) {
        let Some(limit) = self.config.blocking_limit else {
            return;
        };
        if self.backlog() <= limit || self.gp.blocking_hazard().is_some() {
            return;
        }
        // Relaxed: statistics.
        self.throttled.fetch_add(1, Ordering::Relaxed);
        // Relaxed: a hint for the worker to notify as it goes; a missed hint only delays
        // us to the end of the worker's round, which always notifies.
        self.throttle_waiters.fetch_add(1, Ordering::Relaxed);
        let mut w = lock(&self.worker);
        // The worker reports progress every few hundred callbacks (under this mutex, so no
        // wake-up is lost between the check and the wait).
        while self.backlog() > limit / 2 {
            w.kick = true;
            self.wake_worker();
            w = sync::wait(&self.done_cv, w);
        }
        drop(w);
        self.throttle_waiters.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(not(loom))]
impl<F: Flavor> crate::fork::ForkHooks for CallRcu<F> {
    fn hold(&self) -> Vec<Box<dyn crate::fork::Held + '_>> {
        // Both locks are held only briefly (the worker waits for grace periods and runs
        // callbacks without them), so taking them cannot wait for a grace period.
        vec![
            Box::new(lock(&self.worker)),
            Box::new(lock(&self.producers)),
        ]
    }

    fn child(&self, me: std::thread::ThreadId) {
        let mut w = lock(&self.worker);
        if w.started && w.thread != Some(me) {
            // The parent's worker does not exist here: the next call, barrier or poll
            // starts one. (If the fork came from inside the worker, it goes on in the child
            // and stays the only consumer.)
            w.started = false;
            w.thread = None;
            w.kick = false;
            // Relaxed: the child has one thread.
            self.started.store(false, Ordering::Relaxed);
            self.sleeping.store(false, Ordering::Relaxed);
            // The old handle names the parent's worker; leak it (tiny, and freeing memory
            // in a fork child gains nothing).
            self.unparker
                .store(core::ptr::null_mut(), Ordering::Relaxed);
        }
        drop(w);
        for p in lock(&self.producers).iter() {
            p.owner_vanished_in_child(me);
        }
    }
}
