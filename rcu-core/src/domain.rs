//! `Domain`: the grace-period counter, the reader registry, grace-period sharing, polled
//! grace periods, stall reports, and the call_rcu worker.

use core::fmt;
use core::marker::PhantomData;
use std::cell::{Cell, RefCell};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::call_rcu::{Batch, Entry, Producer};
use crate::flavor::{Flavor, Memb};
use crate::reader::{Reader, Record};
use crate::sync::{self, lock, Arc, AtomicBool, AtomicU64, AtomicUsize, Condvar, Mutex, Ordering};

/// How long a grace period may wait for readers before the stall hook is called, unless
/// configured otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the call_rcu worker waits for more callbacks after a batch, unless configured
/// otherwise ([`DomainBuilder::callback_batch_delay`]).
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(1);

/// A batch at least this big means callbacks arrive fast: the worker goes straight on to
/// the next batch instead of waiting `batch_delay`, so the backlog stays bounded.
const BIG_BATCH: usize = 4096;

/// The worker publishes its progress (and wakes throttled producers) every this many
/// callbacks.
const PROGRESS_STEP: u64 = 256;

/// The default bound on queued-but-not-run callbacks beyond which producers that may block
/// wait for the worker ([`DomainBuilder::max_backlog`]).
pub const DEFAULT_MAX_BACKLOG: u64 = 65_536;

/// How long a grace period spins on its readers (in total, from its start) before it parks
/// and lets the last reader wake it. No `sched_yield` phase: when the reader and the
/// synchronizer share a CPU a yield hands the reader a whole time slice (a 4 ms tick was
/// measured), while a short bounded spin then a park costs at most this plus a wake-up.
/// Under loom there is no spinning at all: the leader goes straight to the `waiting`/park
/// path, so that the models reach the wake-up pairing within a small preemption bound.
const SPIN_FOR: Duration = if cfg!(loom) {
    Duration::ZERO
} else {
    Duration::from_micros(20)
};
/// Reader checks between two reads of the clock while spinning.
const SPINS_PER_CLOCK: u32 = 32;
/// How long an idle worker sleeps before it looks at the queues again (bounds the latency
/// of a wake-up lost to the race described in `call`).
#[cfg(not(loom))]
const IDLE_POLL: Duration = Duration::from_millis(10);

static NEXT_DOMAIN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// The stall hook type: called with a report while a grace period is stalled.
pub type StallHook = std::sync::Arc<dyn Fn(&StallReport) + Send + Sync>;

/// A grace period that has waited longer than the stall timeout.
#[derive(Debug, Clone)]
pub struct StallReport {
    /// The domain's flavor.
    pub flavor: &'static str,
    /// The grace-period counter value being waited for.
    pub grace_period: u64,
    /// How long the grace period has been waiting for readers.
    pub waited: Duration,
    /// The reader threads still holding it.
    pub readers: Vec<StalledReader>,
}

/// One reader thread that holds up a grace period.
#[derive(Debug, Clone)]
pub struct StalledReader {
    /// The thread's name, if it has one.
    pub thread_name: Option<String>,
    /// The thread's id.
    pub thread_id: ThreadId,
    /// How long this reader has held up the grace period.
    pub blocked_for: Duration,
}

impl fmt::Display for StallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rcu: {} grace period {} stalled for {:.3?} by",
            self.flavor, self.grace_period, self.waited
        )?;
        for (i, r) in self.readers.iter().enumerate() {
            let sep = if i == 0 { " " } else { ", " };
            match &r.thread_name {
                Some(n) => write!(f, "{sep}thread '{n}' ({:?})", r.thread_id)?,
                None => write!(f, "{sep}thread {:?}", r.thread_id)?,
            }
            write!(f, " for {:.3?}", r.blocked_for)?;
        }
        Ok(())
    }
}

/// A snapshot of a domain's counters ([`Domain::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Grace periods completed.
    pub grace_periods: u64,
    /// Callbacks queued with `call`/`defer_drop` (including ones not yet run).
    pub callbacks_queued: u64,
    /// Callbacks that have run (including those that panicked).
    pub callbacks_run: u64,
    /// Callbacks that panicked (caught and counted; the worker goes on).
    pub callbacks_panicked: u64,
    /// Callbacks queued but not yet run.
    pub backlog: u64,
    /// The largest backlog the worker has seen when taking a batch.
    pub peak_backlog: u64,
    /// Registered readers.
    pub readers: usize,
    /// Stall reports issued.
    pub stalls: u64,
    /// Times a producer waited because the backlog exceeded `max_backlog`.
    pub throttled: u64,
}

/// A polled grace-period cookie ([`Domain::start_poll`], [`Domain::poll`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GpCookie(u64);

/// Builder for a [`Domain`] with non-default settings.
pub struct DomainBuilder<F: Flavor> {
    force_fallback: bool,
    batch_delay: Duration,
    max_backlog: u64,
    stall_timeout: Duration,
    stall_hook: Option<StallHook>,
    _f: PhantomData<F>,
}

impl<F: Flavor> fmt::Debug for DomainBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainBuilder")
            .field("flavor", &F::NAME)
            .field("force_fallback", &self.force_fallback)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl<F: Flavor> Default for DomainBuilder<F> {
    fn default() -> Self {
        DomainBuilder {
            force_fallback: false,
            batch_delay: DEFAULT_BATCH_DELAY,
            max_backlog: DEFAULT_MAX_BACKLOG,
            stall_timeout: DEFAULT_STALL_TIMEOUT,
            stall_hook: None,
            _f: PhantomData,
        }
    }
}

impl<F: Flavor> DomainBuilder<F> {
    /// (`Memb` only) Do not use `membarrier`, even where it is available: readers and
    /// writers use the `Mb` protocol. For testing the fallback path.
    pub fn force_fallback(mut self, yes: bool) -> Self {
        self.force_fallback = yes;
        self
    }

    /// How long the call_rcu worker lets callbacks accumulate after running a batch
    /// (default [`DEFAULT_BATCH_DELAY`]); `barrier` cuts it short. Zero runs batches back to
    /// back, with one grace period each.
    pub fn callback_batch_delay(mut self, d: Duration) -> Self {
        self.batch_delay = d;
        self
    }

    /// Bound the callbacks queued but not yet run (default [`DEFAULT_MAX_BACKLOG`]; 0:
    /// unbounded). Past it, `call`/`defer_drop` from a thread that may block waits until the
    /// worker has brought the backlog down to half (checked once per 256 calls); a thread
    /// inside a critical section of the domain, an online QSBR reader or a callback is never
    /// made to wait (that would deadlock), so the bound is soft.
    pub fn max_backlog(mut self, n: u64) -> Self {
        self.max_backlog = n;
        self
    }

    /// Call the stall hook when a grace period has waited this long for readers (and again
    /// after each further period of this length).
    pub fn stall_timeout(mut self, t: Duration) -> Self {
        self.stall_timeout = t;
        self
    }

    /// Replace the default stall hook (one line on stderr).
    pub fn stall_hook(mut self, hook: impl Fn(&StallReport) + Send + Sync + 'static) -> Self {
        self.stall_hook = Some(std::sync::Arc::new(hook));
        self
    }

    /// Build the domain.
    pub fn build(self) -> Domain<F> {
        let fallback =
            F::NAME == Memb::NAME && (self.force_fallback || !crate::membarrier::available());
        let core = Core {
            gp: CachePadded::new(GpWord {
                // The fallback bit rides in every value of the counter (flavor.rs).
                ctr: AtomicU64::new(
                    crate::flavor::GP_STEP
                        | 1
                        | if fallback {
                            crate::flavor::FALLBACK_BIT
                        } else {
                            0
                        },
                ),
            }),
            fallback,
            id: NEXT_DOMAIN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            registry: Mutex::new(Vec::new()),
            gp_state: Mutex::new(GpState::default()),
            gp_cv: Condvar::new(),
            completed: AtomicU64::new(0),
            waker: Waker::default(),
            producers: Mutex::new(Vec::new()),
            retired_queued: AtomicU64::new(0),
            run_count: AtomicU64::new(0),
            panicked: AtomicU64::new(0),
            peak_backlog: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            nested_enqueued: AtomicU64::new(0),
            worker_sleeping: AtomicBool::new(false),
            worker_started: AtomicBool::new(false),
            worker: Mutex::new(WorkerState::default()),
            worker_cv: Condvar::new(),
            done_cv: Condvar::new(),
            consumer: Mutex::new(()),
            handles: AtomicUsize::new(1),
            stall_timeout: self.stall_timeout,
            stall_hook: self.stall_hook,
            batch_delay: self.batch_delay,
            max_backlog: self.max_backlog,
            throttled: AtomicU64::new(0),
            throttle_waiters: AtomicUsize::new(0),
            _f: PhantomData,
        };
        let core = Arc::new(core);
        #[cfg(not(loom))]
        crate::fork::track(&core);
        Domain { core }
    }
}

pub(crate) struct GpWord {
    pub(crate) ctr: AtomicU64,
}

#[derive(Default)]
pub(crate) struct GpState {
    pub(crate) completed: u64,
    pub(crate) in_progress: bool,
}

#[derive(Default)]
pub(crate) struct WorkerState {
    pub(crate) started: bool,
    kick: bool,
    shutdown: bool,
    snap_started: u64,
    snap_done: u64,
    gp_requested: u64,
}

/// Lets a reader that leaves its critical section wake the grace-period leader.
///
/// Under loom the leader really blocks (see `sync::park_timeout`) and readers really wake
/// it, so a lost wake-up (pairing 3 in `docs::internal`) shows up as a loom deadlock.
#[derive(Default)]
pub(crate) struct Waker {
    #[cfg(not(loom))]
    pub(crate) thread: std::sync::Mutex<Option<std::thread::Thread>>,
    #[cfg(loom)]
    pub(crate) thread: Mutex<Option<Arc<sync::Parker>>>,
}

impl Waker {
    fn set_current(&self) {
        let mut t = sync::lock(&self.thread);
        #[cfg(not(loom))]
        {
            *t = Some(std::thread::current());
        }
        #[cfg(loom)]
        {
            *t = Some(sync::current_parker());
        }
    }

    pub(crate) fn wake(&self) {
        if let Some(t) = sync::lock(&self.thread).as_ref() {
            t.unpark();
        }
    }
}

/// The shared state of a domain.
pub(crate) struct Core<F: Flavor> {
    pub(crate) gp: CachePadded<GpWord>,
    pub(crate) fallback: bool,
    pub(crate) id: u64,
    pub(crate) registry: Mutex<Vec<Arc<CachePadded<Record>>>>,
    pub(crate) gp_state: Mutex<GpState>,
    pub(crate) gp_cv: Condvar,
    completed: AtomicU64,
    pub(crate) waker: Waker,
    pub(crate) producers: Mutex<Vec<Arc<Producer>>>,
    retired_queued: AtomicU64,
    run_count: AtomicU64,
    panicked: AtomicU64,
    peak_backlog: AtomicU64,
    stalls: AtomicU64,
    nested_enqueued: AtomicU64,
    worker_sleeping: AtomicBool,
    pub(crate) worker_started: AtomicBool,
    pub(crate) worker: Mutex<WorkerState>,
    worker_cv: Condvar,
    done_cv: Condvar,
    pub(crate) consumer: Mutex<()>,
    handles: AtomicUsize,
    stall_timeout: Duration,
    stall_hook: Option<StallHook>,
    max_backlog: u64,
    throttle_waiters: AtomicUsize,
    throttled: AtomicU64,
    #[cfg_attr(loom, allow(dead_code))]
    batch_delay: Duration,
    _f: PhantomData<F>,
}

#[cfg(not(loom))]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`, for misuse detection.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = const { RefCell::new(Vec::new()) };
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = const { Cell::new(0) };
    /// This thread's call_rcu producers, one per domain id.
    static PRODUCERS: ProducerSlots = const { ProducerSlots(RefCell::new(Vec::new())) };
}

// loom's `thread_local!` has no `const` initialisers.
#[cfg(loom)]
sync::tls! {
    /// Records registered by this thread: `(domain id, record)`, for misuse detection.
    static OWNED: RefCell<Vec<(u64, *const Record)>> = RefCell::new(Vec::new());
    /// The domain whose callbacks this thread is running (0: none).
    static IN_CALLBACK: Cell<u64> = Cell::new(0);
    /// This thread's call_rcu producers, one per domain id.
    static PRODUCERS: ProducerSlots = ProducerSlots(RefCell::new(Vec::new()));
}

struct ProducerSlots(RefCell<Vec<(u64, Arc<Producer>)>>);

impl Drop for ProducerSlots {
    fn drop(&mut self) {
        for (_, p) in self.0.borrow_mut().drain(..) {
            // The thread is exiting: hand the partial chunk to the consumer.
            p.seal_current(core::ptr::null_mut());
            p.exited.store(true, Ordering::Release);
        }
    }
}

impl<F: Flavor> Core<F> {
    // ----- registration -----

    pub(crate) fn register(&self) -> Arc<CachePadded<Record>> {
        let rec = Arc::new(CachePadded::new(Record::new(self, 0)));
        {
            let mut reg = lock(&self.registry);
            if F::STARTS_ONLINE {
                // Under the registry lock: a grace period that scans after us reads this
                // value (lock ordering), and one that scanned before us flipped the
                // counter before its scan, so we read the new value (Acquire pairs with the
                // Release flip) and see what it unpublished.
                rec.ctr
                    .store(self.gp.ctr.load(Ordering::Acquire), Ordering::Relaxed);
            }
            reg.push(rec.clone());
        }
        let ptr: *const Record = &**rec;
        let _ = OWNED.try_with(|o| o.borrow_mut().push((self.id, ptr)));
        rec
    }

    pub(crate) fn unregister(&self, rec: &Arc<CachePadded<Record>>) {
        // Leave any online state so a waiting grace period does not wait for us; the full
        // barrier and wake pair with the synchronizer exactly as a read unlock does.
        crate::flavor::store_full_barrier(&rec.ctr, 0);
        rec.wake_if_waiting();
        lock(&self.registry).retain(|r| !Arc::ptr_eq(r, rec));
        let ptr: *const Record = &***rec;
        let _ = OWNED.try_with(|o| o.borrow_mut().retain(|&(_, p)| p != ptr));
    }

    /// Panic if waiting for a grace period (or a barrier) here would deadlock.
    fn check_may_block(&self, what: &str) {
        if let Some(hazard) = self.blocking_hazard() {
            panic!("rcu: {what}() called {hazard}");
        }
    }

    /// Why waiting for a grace period here would deadlock, if it would.
    fn blocking_hazard(&self) -> Option<&'static str> {
        if IN_CALLBACK.try_with(Cell::get).unwrap_or(0) == self.id {
            return Some(
                "from a call_rcu callback of the same domain: the callback worker would \
                 wait for itself (deadlock)",
            );
        }
        OWNED
            .try_with(|o| {
                for &(id, rec) in o.borrow().iter() {
                    if id != self.id {
                        continue;
                    }
                    // SAFETY: records in OWNED are removed before their `Reader` frees them,
                    // and the list is thread-local, so `rec` is live.
                    let rec = unsafe { &*rec };
                    if F::in_critical_section(rec) {
                        return Some(
                            "inside a read-side critical section of the same domain: the \
                             grace period would wait for this thread (deadlock)",
                        );
                    }
                    if F::STARTS_ONLINE && rec.ctr.load(Ordering::Relaxed) != 0 {
                        return Some(
                            "by an online QSBR reader of the same domain: the grace period \
                             would wait for this thread (deadlock); use Reader::synchronize, \
                             or go offline first",
                        );
                    }
                }
                None
            })
            .unwrap_or(None)
    }

    /// Callbacks queued and not yet run (sums the producers: not for hot paths).
    fn backlog(&self) -> u64 {
        self.queued_total()
            .saturating_sub(self.run_count.load(Ordering::Relaxed))
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

    /// Back-pressure (checked once per chunk of callbacks): past `max_backlog`, a producer
    /// that may block waits for the worker to bring the backlog down to half of it. A
    /// producer that may not block (inside a critical section, an online QSBR reader,
    /// a callback) goes on: waiting would deadlock.
    #[cold]
    fn throttle(&self) {
        if self.max_backlog == 0
            || self.backlog() <= self.max_backlog
            || self.blocking_hazard().is_some()
        {
            return;
        }
        self.throttled.fetch_add(1, Ordering::Relaxed);
        // Relaxed: a hint for the worker to notify as it goes; a missed hint only delays
        // us to the end of the worker's cycle, which always notifies.
        self.throttle_waiters.fetch_add(1, Ordering::Relaxed);
        let mut w = lock(&self.worker);
        // The worker reports progress every PROGRESS_STEP callbacks (under this mutex, so
        // no wake-up is lost between the check and the wait).
        while self.backlog() > self.max_backlog / 2 {
            w.kick = true;
            self.worker_cv.notify_one();
            w = sync::wait(&self.done_cv, w);
        }
        drop(w);
        self.throttle_waiters.fetch_sub(1, Ordering::Relaxed);
    }

    // ----- grace periods -----

    /// The grace-period number that, once completed, covers every reader that exists now.
    fn gp_target(&self) -> u64 {
        let st = lock(&self.gp_state);
        if st.in_progress {
            // The running grace period may have scanned before our caller's update.
            st.completed + 2
        } else {
            st.completed + 1
        }
    }

    /// Wait until `target` grace periods have completed, running them if nobody else is.
    pub(crate) fn wait_gp(&self, target: u64) {
        let mut st = lock(&self.gp_state);
        loop {
            if st.completed >= target {
                return;
            }
            if st.in_progress {
                // Ride on the grace period in progress (or on the one after it).
                st = sync::wait(&self.gp_cv, st);
                continue;
            }
            st.in_progress = true;
            drop(st);
            struct Reset<'a, F: Flavor>(&'a Core<F>);
            impl<F: Flavor> Drop for Reset<'_, F> {
                fn drop(&mut self) {
                    // Only reached by unwinding (a panicking stall hook): let others lead.
                    lock(&self.0.gp_state).in_progress = false;
                    self.0.gp_cv.notify_all();
                }
            }
            let reset = Reset(self);
            self.run_gp();
            core::mem::forget(reset);
            st = lock(&self.gp_state);
            st.completed += 1;
            // Release: a poller that reads this value sees everything the grace period
            // established (its readers' critical sections happen-before this store).
            self.completed.store(st.completed, Ordering::Release);
            st.in_progress = false;
            self.gp_cv.notify_all();
        }
    }

    /// One grace period; only one thread runs this at a time (`in_progress`).
    fn run_gp(&self) {
        // A: everything the caller unpublished is visible to every reader that enters after
        // this point, or the reader's `ctr` store is visible to the scan below (the
        // store-buffering pairing with the reader's barrier after its `ctr` store).
        F::heavy(self.fallback);
        // Relaxed load: only the leader stores the counter. Release store: a qsbr reader that
        // Acquire-loads the new value sees what was unpublished before it.
        let new = self.gp.ctr.load(Ordering::Relaxed) + crate::flavor::GP_STEP;
        self.gp.ctr.store(new, Ordering::Release);
        let pending: Vec<_> = lock(&self.registry)
            .iter()
            // Acquire: pairs with the reader's Release store of 0 / of a newer snapshot,
            // so its critical sections happen-before whatever the caller frees next.
            .filter(|r| Record::blocks(r.ctr.load(Ordering::Acquire), new))
            .cloned()
            .collect();
        if pending.is_empty() {
            return;
        }
        let start = Instant::now();
        let mut next_report = self.stall_timeout;
        for r in &pending {
            self.wait_reader(r, new, start, &mut next_report);
        }
    }

    fn wait_reader(&self, r: &Record, new: u64, start: Instant, next_report: &mut Duration) {
        // Acquire on every check: pairs with the reader's Release store of 0 / of a newer
        // snapshot, as in `run_gp`.
        while !SPIN_FOR.is_zero() && start.elapsed() < SPIN_FOR {
            for _ in 0..SPINS_PER_CLOCK {
                if !Record::blocks(r.ctr.load(Ordering::Acquire), new) {
                    return;
                }
                sync::spin_hint();
            }
        }
        self.waker.set_current();
        loop {
            // Relaxed store, then the heavy barrier: either the reader's next `ctr` store
            // is visible to the load below, or the reader sees `waiting` and wakes us.
            r.waiting.store(true, Ordering::Relaxed);
            F::heavy(self.fallback);
            if !Record::blocks(r.ctr.load(Ordering::Acquire), new) {
                break;
            }
            let waited = start.elapsed();
            if waited >= *next_report {
                self.report_stall(new, waited);
                *next_report += self.stall_timeout.max(Duration::from_millis(1));
            }
            sync::park_timeout((*next_report - waited).min(Duration::from_millis(100)));
        }
        r.waiting.store(false, Ordering::Relaxed);
    }

    #[cold]
    fn report_stall(&self, new: u64, waited: Duration) {
        let readers = lock(&self.registry)
            .iter()
            .filter(|r| Record::blocks(r.ctr.load(Ordering::Acquire), new))
            .map(|r| StalledReader {
                thread_name: r.name.clone(),
                thread_id: r.owner,
                blocked_for: waited,
            })
            .collect();
        let report = StallReport {
            flavor: F::NAME,
            grace_period: new & !crate::flavor::FALLBACK_BIT,
            waited,
            readers,
        };
        self.stalls.fetch_add(1, Ordering::Relaxed);
        match &self.stall_hook {
            Some(h) => h(&report),
            None => eprintln!("{report}"),
        }
    }

    // ----- call_rcu -----

    /// Queue `c` on this thread's producer; the entry is built in place in its chunk.
    #[inline]
    fn enqueue<C: FnOnce() + Send + 'static>(this: &Arc<Self>, c: C) {
        if !this.worker_started.load(Ordering::Acquire) {
            Self::start_worker(this);
        }
        let mut c = Some(c);
        let sealed = PRODUCERS
            .try_with(|slots| {
                let mut slots = slots.0.borrow_mut();
                let i = match slots.iter().position(|(id, _)| *id == this.id) {
                    Some(i) => i,
                    None => Self::add_producer(this, &mut slots),
                };
                c.take().is_some_and(|c| slots[i].1.push_callback(c))
            })
            .unwrap_or(false);
        if let Some(c) = c {
            Self::enqueue_orphan(this, Entry::new(c));
        }
        if IN_CALLBACK.try_with(Cell::get).unwrap_or(0) == this.id {
            this.nested_enqueued.fetch_add(1, Ordering::Release);
        }
        // Relaxed: a missed wake-up (the worker decided to sleep just as we published) is
        // bounded by IDLE_POLL; a fence here would cost every call_rcu.
        if this.worker_sleeping.load(Ordering::Relaxed) {
            this.kick_worker();
        }
        if sealed {
            this.throttle();
        }
    }

    /// This thread's first callback for this domain: register a producer.
    #[cold]
    fn add_producer(this: &Arc<Self>, slots: &mut Vec<(u64, Arc<Producer>)>) -> usize {
        let p = Arc::new(Producer::new());
        lock(&this.producers).push(p.clone());
        slots.push((this.id, p));
        slots.len() - 1
    }

    /// The thread-local is gone (a TLS destructor running late in thread exit): use a
    /// one-off producer, sealed at once so the worker frees it after running.
    #[cold]
    fn enqueue_orphan(this: &Arc<Self>, e: Entry) {
        let p = Arc::new(Producer::new());
        p.push(e);
        p.seal_current(core::ptr::null_mut());
        p.exited.store(true, Ordering::Release);
        lock(&this.producers).push(p);
    }
}

impl<F: Flavor> Core<F> {
    fn kick_worker(&self) {
        let mut w = lock(&self.worker);
        w.kick = true;
        self.worker_cv.notify_one();
    }

    #[cold]
    fn start_worker(this: &Arc<Self>) {
        let mut w = lock(&this.worker);
        if w.started {
            return;
        }
        w.started = true;
        let name = format!("rcu-call-{}-{}", F::NAME, this.id);
        let arc = this.clone();
        sync::spawn(name, move || worker_main(arc))
            .expect("rcu: cannot spawn the call_rcu worker thread");
        // Release: pairs with the Acquire fast-path check in `enqueue`.
        this.worker_started.store(true, Ordering::Release);
    }

    /// Take a snapshot of every producer's published callbacks. Caller holds `consumer`.
    fn collect(&self) -> Batch {
        let mut batch = Batch::default();
        let mut producers = lock(&self.producers);
        let mut queued = self.retired_queued.load(Ordering::Relaxed);
        producers.retain(|p| {
            // Acquire: if the owner has exited, its final seal is visible to `collect`.
            let exited = p.exited.load(Ordering::Acquire);
            // SAFETY: the caller holds `consumer`, so we are the single consumer.
            unsafe { batch.collect(p) };
            let q = p.queued.load(Ordering::Relaxed);
            queued += q;
            if exited {
                // Everything it will ever publish is in this batch; forget it.
                self.retired_queued.fetch_add(q, Ordering::Relaxed);
                false
            } else {
                true
            }
        });
        drop(producers);
        let backlog = queued.saturating_sub(self.run_count.load(Ordering::Relaxed));
        self.peak_backlog.fetch_max(backlog, Ordering::Relaxed);
        batch
    }

    /// Run a batch (a grace period has elapsed since it was collected, or no reader can
    /// exist). Caller holds `consumer`.
    fn run_batch(&self, batch: Batch) {
        let prev = IN_CALLBACK.try_with(|c| c.replace(self.id)).unwrap_or(0);
        let mut reported = 0u64;
        let mut done = 0u64;
        let mut on_each = |e: Entry| {
            let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run())).is_ok();
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
        // SAFETY: the caller holds `consumer` (single consumer) and a grace period has
        // elapsed since `batch` was collected (caller's contract).
        let (run, panicked) = unsafe { batch.run(&mut on_each) };
        let _ = IN_CALLBACK.try_with(|c| c.set(prev));
        // Relaxed counters: statistics; `barrier` synchronizes through the worker mutex.
        self.run_count.fetch_add(run - reported, Ordering::Relaxed);
        self.panicked.fetch_add(panicked, Ordering::Relaxed);
    }

    fn stats(&self) -> Stats {
        let queued = self.queued_total();
        let run = self.run_count.load(Ordering::Relaxed);
        Stats {
            grace_periods: self.completed.load(Ordering::Acquire),
            callbacks_queued: queued,
            callbacks_run: run,
            callbacks_panicked: self.panicked.load(Ordering::Relaxed),
            backlog: queued.saturating_sub(run),
            peak_backlog: self.peak_backlog.load(Ordering::Relaxed),
            readers: lock(&self.registry).len(),
            stalls: self.stalls.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

fn worker_main<F: Flavor>(core: Arc<Core<F>>) {
    loop {
        let snap = {
            let mut w = lock(&core.worker);
            w.kick = false;
            w.snap_started += 1;
            w.snap_started
        };
        let consumer = lock(&core.consumer);
        let batch = core.collect();
        let gp_requested = lock(&core.worker).gp_requested;
        let want_gp = gp_requested > core.completed.load(Ordering::Acquire);
        let empty = batch.len == 0;
        let batch_len = batch.len;
        if !empty || want_gp {
            // One grace period for the whole batch (shared with concurrent synchronizers).
            let target = core.gp_target();
            core.wait_gp(target.max(gp_requested));
        }
        // Even an empty batch may hold drained sealed chunks to free.
        core.run_batch(batch);
        drop(consumer);
        let mut w = lock(&core.worker);
        w.snap_done = snap;
        core.done_cv.notify_all();
        if !empty && batch_len < BIG_BATCH && !w.kick && !w.shutdown {
            // Let callbacks accumulate: every grace period costs the producers (a
            // membarrier interrupts every CPU running this process), so batch them, unless
            // a barrier (kick) is waiting.
            #[cfg(not(loom))]
            if !core.batch_delay.is_zero() {
                w = match core.worker_cv.wait_timeout(w, core.batch_delay) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            drop(w);
            continue;
        }
        if !empty || w.kick {
            continue;
        }
        if w.shutdown {
            w.started = false;
            core.worker_started.store(false, Ordering::Release);
            return;
        }
        // SeqCst: pairs (best effort) with the producers' check; see IDLE_POLL.
        core.worker_sleeping.store(true, Ordering::SeqCst);
        let pending = lock(&core.producers).iter().any(|p| p.has_pending());
        if !pending && w.gp_requested <= core.completed.load(Ordering::Acquire) {
            #[cfg(not(loom))]
            {
                w = match core.worker_cv.wait_timeout(w, IDLE_POLL) {
                    Ok((g, _)) => g,
                    Err(p) => p.into_inner().0,
                };
            }
            #[cfg(loom)]
            {
                w = sync::wait(&core.worker_cv, w);
            }
        }
        drop(w);
        core.worker_sleeping.store(false, Ordering::Relaxed);
    }
}

impl<F: Flavor> Drop for Core<F> {
    fn drop(&mut self) {
        // No handle, reader or worker is left, so no critical section can exist: every
        // queued callback may run now, without a grace period.
        let _consumer = lock(&self.consumer);
        loop {
            let batch = self.collect();
            let n = batch.len;
            // Always run: an empty batch may still hold drained sealed chunks to free.
            self.run_batch(batch);
            if n == 0 {
                break;
            }
        }
    }
}

/// An RCU domain: a grace-period counter, a reader registry, and a call_rcu queue with its
/// worker thread (started on first use). Cloning gives another handle to the same domain.
///
/// Most programs use the process-wide default domains through the free functions
/// ([`rcu_read_lock`](crate::rcu_read_lock), [`synchronize_rcu`](crate::synchronize_rcu), …);
/// libraries and tests that want isolation create their own.
///
/// ```
/// use rcu_core::{Domain, Mb};
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use std::sync::Arc;
///
/// let domain: Domain<Mb> = Domain::new();
/// let ran = Arc::new(AtomicUsize::new(0));
/// let r = ran.clone();
/// domain.call(move || {
///     r.fetch_add(1, Ordering::Relaxed);
/// });
/// domain.barrier(); // every callback queued before this has run
/// assert_eq!(ran.load(Ordering::Relaxed), 1);
/// assert!(domain.stats().grace_periods >= 1);
/// ```
pub struct Domain<F: Flavor = Memb> {
    pub(crate) core: Arc<Core<F>>,
}

impl<F: Flavor> Domain<F> {
    /// A new domain with default settings.
    pub fn new() -> Self {
        DomainBuilder::default().build()
    }

    /// A builder for a domain with non-default settings.
    pub fn builder() -> DomainBuilder<F> {
        DomainBuilder::default()
    }

    pub(crate) fn core(&self) -> &Core<F> {
        &self.core
    }

    /// Register the calling thread as a reader (`rcu_register_thread`). The handle is
    /// `!Send` and unregisters when dropped. QSBR readers start online.
    pub fn register(&self) -> Reader<F> {
        let rec = self.core.register();
        Reader::new(self.clone(), rec)
    }

    /// Wait until every read-side critical section that began before this call has ended
    /// (`synchronize_rcu`). Concurrent callers share grace periods.
    ///
    /// # Panics
    ///
    /// If called inside a read-side critical section of this domain, by an online QSBR
    /// reader of this domain, or from one of this domain's callbacks: each would deadlock.
    pub fn synchronize(&self) {
        self.core.check_may_block("synchronize");
        let target = self.core.gp_target();
        self.core.wait_gp(target);
    }

    /// Queue `f` to run on the domain's worker thread after a grace period (`call_rcu`).
    /// Wait-free: no lock, no atomic read-modify-write on the fast path.
    #[inline]
    pub fn call<C: FnOnce() + Send + 'static>(&self, f: C) {
        Core::enqueue(&self.core, f);
    }

    /// Drop `value` after a grace period (on the worker thread).
    #[inline]
    pub fn defer_drop<T: Send + 'static>(&self, value: T) {
        self.call(move || drop(value));
    }

    /// Wait until every callback queued before this call has run, including callbacks
    /// queued by those callbacks (`rcu_barrier`).
    ///
    /// # Panics
    ///
    /// In the situations listed for [`Domain::synchronize`].
    pub fn barrier(&self) {
        self.core.check_may_block("barrier");
        if !self.core.worker_started.load(Ordering::Acquire) {
            Core::start_worker(&self.core);
        }
        loop {
            let nested = self.core.nested_enqueued.load(Ordering::Acquire);
            let mut w = lock(&self.core.worker);
            // The first snapshot that begins after this point covers everything queued
            // before it (the worker takes it under the same mutex).
            let target = w.snap_started + 1;
            w.kick = true;
            self.core.worker_cv.notify_one();
            while w.snap_done < target {
                w = sync::wait(&self.core.done_cv, w);
            }
            drop(w);
            if self.core.nested_enqueued.load(Ordering::Acquire) == nested {
                return;
            }
        }
    }

    /// Start a grace period if needed and return a cookie for [`Domain::poll`]
    /// (Linux's `start_poll_synchronize_rcu`). The worker thread drives it.
    pub fn start_poll(&self) -> GpCookie {
        let target = self.core.gp_target();
        if !self.core.worker_started.load(Ordering::Acquire) {
            Core::start_worker(&self.core);
        }
        let mut w = lock(&self.core.worker);
        w.gp_requested = w.gp_requested.max(target);
        w.kick = true;
        self.core.worker_cv.notify_one();
        GpCookie(target)
    }

    /// A cookie for the current state without starting anything
    /// (`get_state_synchronize_rcu`); someone else's grace periods will satisfy it.
    pub fn get_state(&self) -> GpCookie {
        GpCookie(self.core.gp_target())
    }

    /// Whether a full grace period has elapsed since `cookie` was taken
    /// (`poll_state_synchronize_rcu`). Never blocks.
    #[inline]
    pub fn poll(&self, cookie: GpCookie) -> bool {
        // Acquire: pairs with the Release store at the end of each grace period.
        self.core.completed.load(Ordering::Acquire) >= cookie.0
    }

    /// Wait for the grace period of `cookie` unless it has already elapsed
    /// (`cond_synchronize_rcu`).
    pub fn cond_synchronize(&self, cookie: GpCookie) {
        if !self.poll(cookie) {
            self.core.check_may_block("cond_synchronize");
            self.core.wait_gp(cookie.0);
        }
    }

    /// Counters: grace periods, callbacks queued/run/panicked, backlog.
    pub fn stats(&self) -> Stats {
        self.core.stats()
    }

    /// The flavor's name.
    pub fn flavor_name(&self) -> &'static str {
        F::NAME
    }

    /// Whether grace periods use `membarrier` (true only for `Memb` without fallback).
    pub fn uses_membarrier(&self) -> bool {
        F::NAME == Memb::NAME && !self.core.fallback
    }

    /// The protocol in force: "memb", "mb" (including `Memb` fallen back to fences) or "qsbr".
    pub fn protocol(&self) -> &'static str {
        if self.core.fallback {
            "mb"
        } else {
            F::NAME
        }
    }

    /// Whether two handles refer to the same domain.
    pub fn same_domain(&self, other: &Domain<F>) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }

    /// The key a guard of this domain carries (for domain checks in pointer types).
    #[inline(always)]
    pub(crate) fn key(&self) -> *const AtomicU64 {
        &self.core.gp.ctr
    }
}

impl<F: Flavor> Default for Domain<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Flavor> Clone for Domain<F> {
    fn clone(&self) -> Self {
        // Relaxed: like `Arc::clone`, a new handle is made from an existing one.
        self.core.handles.fetch_add(1, Ordering::Relaxed);
        Domain {
            core: self.core.clone(),
        }
    }
}

impl<F: Flavor> Drop for Domain<F> {
    fn drop(&mut self) {
        // AcqRel: the last handle sees every other handle's work before shutting down.
        if self.core.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut w = lock(&self.core.worker);
            w.shutdown = true;
            self.core.worker_cv.notify_one();
        }
    }
}

impl<F: Flavor> fmt::Debug for Domain<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Domain")
            .field("flavor", &F::NAME)
            .field("protocol", &self.protocol())
            .field("stats", &self.stats())
            .finish()
    }
}
