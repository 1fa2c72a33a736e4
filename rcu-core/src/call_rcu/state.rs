//! The callback machinery's shared state: the domain's producers, the worker's state and
//! counters, taking a snapshot of the queues and running it.

use std::time::Duration;

use super::queue::{Batch, Entry, Producer};
use crate::flavor::Flavor;
use crate::grace_period::GracePeriods;
use crate::sync::{
    lock, Arc, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering, Unparker,
};

/// The worker publishes its progress (and wakes throttled producers) every this many
/// callbacks.
const PROGRESS_STEP: u64 = 256;

/// Settings from the builder.
pub(crate) struct Config {
    /// How long the worker lets callbacks accumulate after a batch (no delay under loom).
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) batch_delay: Duration,
    /// The opt-in blocking bound on the backlog (`None`: producers never wait).
    pub(crate) blocking_limit: Option<u64>,
}

/// The worker's control state, under `CallRcu::worker`.
#[derive(Default)]
pub(crate) struct WorkerState {
    /// A worker thread is running.
    pub(crate) started: bool,
    /// The worker thread, once it runs (a fork from inside it keeps it in the child).
    pub(crate) thread: Option<std::thread::ThreadId>,
    /// The last handle of the domain is gone: drain and exit.
    pub(crate) shutdown: bool,
    /// Someone (a barrier, a poll) wants the next snapshot without the batching delay.
    pub(crate) kick: bool,
    /// Snapshots begun / finished (run) by the worker.
    pub(crate) snap_started: u64,
    pub(crate) snap_done: u64,
    /// The highest grace period requested by `start_poll`.
    pub(crate) gp_requested: u64,
}

/// A domain's call_rcu side: its producers, its worker and their counters.
pub(crate) struct CallRcu<F: Flavor> {
    pub(crate) gp: Arc<GracePeriods<F>>,
    pub(crate) producers: Mutex<Vec<Arc<Producer>>>,
    /// Callbacks counted by producers that have since left the list.
    retired_queued: AtomicU64,
    run_count: AtomicU64,
    panicked: AtomicU64,
    peak_backlog: AtomicU64,
    pub(crate) worker: Mutex<WorkerState>,
    /// Notified when a snapshot has run (barriers, throttled producers wait on it).
    pub(crate) done_cv: Condvar,
    /// `worker.started`, for the lock-free check in `call`.
    pub(crate) started: AtomicBool,
    /// The worker is about to park, or parked, with nothing to do.
    pub(crate) sleeping: AtomicBool,
    /// The worker's last snapshot held a flood of callbacks: producers yield their CPU now
    /// and then, so that on an oversubscribed machine the worker gets to run. (A hint that
    /// changes no outcome: not modelled under loom.)
    #[cfg_attr(loom, allow(dead_code))]
    pub(crate) flood: AtomicBool,
    /// How to wake the worker: published by the worker when it starts (null before).
    pub(crate) unparker: AtomicPtr<Unparker>,
    /// `Domain` handles alive (the worker's own reference is not one).
    pub(crate) handles: AtomicUsize,
    pub(crate) config: Config,
    pub(crate) throttle_waiters: AtomicUsize,
    pub(crate) throttled: AtomicU64,
}

/// What [`CallRcu::stats`] reports.
pub(crate) struct CallStats {
    pub(crate) queued: u64,
    pub(crate) run: u64,
    pub(crate) panicked: u64,
    pub(crate) peak_backlog: u64,
    pub(crate) throttled: u64,
}

impl<F: Flavor> CallRcu<F> {
    pub(crate) fn new(gp: Arc<GracePeriods<F>>, config: Config) -> Self {
        CallRcu {
            gp,
            producers: Mutex::new(Vec::new()),
            retired_queued: AtomicU64::new(0),
            run_count: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            peak_backlog: AtomicU64::new(0),
            worker: Mutex::new(WorkerState::default()),
            done_cv: Condvar::new(),
            started: AtomicBool::new(false),
            sleeping: AtomicBool::new(false),
            flood: AtomicBool::new(false),
            unparker: AtomicPtr::new(core::ptr::null_mut()),
            handles: AtomicUsize::new(1),
            config,
            throttle_waiters: AtomicUsize::new(0),
            throttled: AtomicU64::new(0),
        }
    }

    /// Wake the worker (wait-free: one atomic load and `Thread::unpark`).
    pub(crate) fn wake_worker(&self) {
        // Acquire: pairs with the worker's Release publication of its handle.
        let u = self.unparker.load(Ordering::Acquire);
        if !u.is_null() {
            // SAFETY: a published handle is freed only by `Drop` (no other user exists then)
            // or replaced in a fork child, which leaks the old one.
            unsafe { (*u).unpark() };
        }
    }

    /// Take a snapshot of every producer's published callbacks.
    ///
    /// # Safety
    /// The caller is the domain's single consumer: its worker thread, or `Drop`.
    pub(crate) unsafe fn collect(&self) -> Batch {
        let mut batch = Batch::default();
        let mut producers = lock(&self.producers);
        let mut queued = self.retired_queued.load(Ordering::Relaxed);
        producers.retain(|p| {
            // Acquire (inside): if the owner has exited, its final seal is visible below.
            let gone = p.owner_gone();
            // SAFETY: the caller is the single consumer (contract).
            unsafe { batch.collect(p) };
            // Relaxed: statistics.
            let q = p.queued.load(Ordering::Relaxed);
            queued += q;
            if gone {
                // Everything it will ever publish is in this batch; forget it.
                self.retired_queued.fetch_add(q, Ordering::Relaxed);
                false
            } else {
                true
            }
        });
        drop(producers);
        let backlog = queued.saturating_sub(self.run_count.load(Ordering::Relaxed));
        // Relaxed: statistics.
        self.peak_backlog.fetch_max(backlog, Ordering::Relaxed);
        batch
    }

    /// Run `batch`, calling `after_each` after every callback; panics of callbacks are
    /// caught and counted.
    ///
    /// # Safety
    /// The caller is the single consumer that collected `batch`, and a grace period has
    /// elapsed since the collection (or no reader can exist).
    pub(crate) unsafe fn run_batch(&self, batch: Batch, after_each: &mut dyn FnMut()) {
        let _marker = crate::misuse::Running::callbacks(self.gp.id);
        let mut reported = 0u64;
        let mut done = 0u64;
        let mut on_each = |e: Entry| {
            let ok = crate::unwind::run_caught(|| e.run()).is_ok();
            after_each();
            done += 1;
            if done - reported == PROGRESS_STEP {
                // Relaxed: statistics and the throttle's estimate; the wake-up below goes
                // through the worker mutex.
                self.run_count.fetch_add(done - reported, Ordering::Relaxed);
                reported = done;
                if self.throttle_waiters.load(Ordering::Relaxed) > 0 {
                    let _w = lock(&self.worker);
                    self.done_cv.notify_all();
                }
            }
            ok
        };
        // SAFETY: the caller's contract.
        let (run, panicked) = unsafe { batch.run(&mut on_each) };
        // Relaxed counters: statistics; `barrier` synchronizes through the worker mutex.
        self.run_count.fetch_add(run - reported, Ordering::Relaxed);
        self.panicked.fetch_add(panicked, Ordering::Relaxed);
    }

    /// Whether any producer has published callbacks not yet taken.
    pub(crate) fn has_pending(&self) -> bool {
        lock(&self.producers).iter().any(|p| p.has_pending())
    }

    /// Callbacks ever queued: live producers plus those already retired. Both are read
    /// under the producers lock, under which `collect` moves a producer's count to
    /// `retired_queued`, so none is counted twice or missed. Relaxed: statistics and the
    /// throttle's estimate.
    fn queued_total(&self) -> u64 {
        let producers = lock(&self.producers);
        let live: u64 = producers
            .iter()
            .map(|p| p.queued.load(Ordering::Relaxed))
            .sum();
        live + self.retired_queued.load(Ordering::Relaxed)
    }

    /// Callbacks queued and not yet run (sums the producers: not for hot paths).
    pub(crate) fn backlog(&self) -> u64 {
        self.queued_total()
            .saturating_sub(self.run_count.load(Ordering::Relaxed))
    }

    pub(crate) fn stats(&self) -> CallStats {
        // Relaxed: statistics.
        CallStats {
            queued: self.queued_total(),
            run: self.run_count.load(Ordering::Relaxed),
            panicked: self.panicked.load(Ordering::Relaxed),
            peak_backlog: self.peak_backlog.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

impl<F: Flavor> Drop for CallRcu<F> {
    fn drop(&mut self) {
        // No handle, reader or worker is left (each holds a reference), so no critical
        // section of the domain can exist: every queued callback may run now, without a
        // grace period. Callbacks cannot queue more (queueing needs a handle).
        loop {
            // SAFETY: `&mut self`: we are the only consumer (the worker has exited).
            let batch = unsafe { self.collect() };
            let n = batch.len;
            // SAFETY: single consumer; no reader exists. Always run: an empty batch may
            // still hold drained sealed chunks to free.
            unsafe { self.run_batch(batch, &mut || ()) };
            if n == 0 {
                break;
            }
        }
        for p in lock(&self.producers).drain(..) {
            // SAFETY: every entry has run, no batch is left, and nobody can push.
            unsafe { p.domain_end() };
        }
        // Relaxed: `&mut self`, nobody else can touch it.
        let u = self.unparker.swap(core::ptr::null_mut(), Ordering::Relaxed);
        if !u.is_null() {
            // SAFETY: published with `Box::into_raw` by the worker; `&mut self` means nobody
            // else can load it any more.
            drop(unsafe { Box::from_raw(u) });
        }
    }
}
