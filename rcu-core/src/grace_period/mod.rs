//! Grace periods: the counter, the reader registry, sharing one grace period among
//! concurrent callers, waiting for readers, and stall reports.
//!
//! # Sharing
//!
//! `state` holds `completed` and `in_progress` under a mutex. A caller computes its target:
//! `completed + 1` if no grace period is running (the next one starts after the call),
//! `completed + 2` if one is (it may have scanned before the caller's update). It then
//! either leads the next grace period or waits on a condition variable until
//! `completed >= target`, so N concurrent callers cost at most two grace periods. The mutex
//! is never held while waiting for readers, and nothing else is held across a grace period,
//! so `fork()` can take it at any moment (see `fork.rs`).
//!
//! # Nothing to wait for
//!
//! [`GracePeriods::quiet`] decides, without a system call, a mutex or an allocation, that no
//! reader can hold what the caller unpublished: nobody is registered (every flavor), or
//! every record is idle/offline (mb, qsbr and memb's fence fallback, whose readers execute
//! full barriers). Memb readers execute no hardware barrier, so only a `membarrier` makes
//! their `ctr` visible: with a registered memb reader the full grace period runs.
//!
//! # Waiting for a reader
//!
//! The leader spins on its readers' `ctr` for the grace period's spin budget (`spin_ns`,
//! at most [`MAX_SPIN_NS`], counted from the first blocking reader and shared by all of
//! them; it adapts once per grace period), then sets the reader's `waiting` flag, executes
//! the heavy barrier, checks again and parks; the reader's unlock sees `waiting` and wakes
//! it (pairing 3 in `docs::internal`). The park is bounded by the next stall report and by
//! [`MAX_PARK`]; after a stall report the leader checks again before parking (the hook may
//! have taken the wake-up).

mod registry;
pub(crate) mod stall;

use core::marker::PhantomData;
use core::ptr::NonNull;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::flavor::Flavor;
use crate::record::{self, Record, Waker};
use crate::sync::{self, fence, lock, AtomicU32, AtomicU64, Condvar, Mutex, Ordering};
use registry::Registry;
use stall::{StallReport, Stalls};

/// The longest a grace period spins on its readers (in total, from its start) before it
/// parks and lets the last reader wake it. No `sched_yield` phase: when the reader and the
/// synchronizer share a CPU a yield hands the reader a whole time slice (a 4 ms tick was
/// measured), while a short bounded spin then a park costs at most this plus a wake-up.
/// Under loom there is no spinning at all: the leader goes straight to the `waiting`/park
/// path, so that the models reach the wake-up pairing within a small preemption bound.
const MAX_SPIN_NS: u32 = if cfg!(loom) { 0 } else { 20_000 };
/// The shortest spin the adaptive budget falls to (below it, parking is as cheap).
const MIN_SPIN_NS: u32 = if cfg!(loom) { 0 } else { 500 };
/// Reader checks between two reads of the clock while spinning.
const SPINS_PER_CLOCK: u32 = 32;
/// The longest a leader parks between two checks of a reader (a safety net; the reader's
/// unlock wakes it).
const MAX_PARK: Duration = Duration::from_millis(100);

#[derive(Default)]
struct State {
    completed: u64,
    in_progress: bool,
    /// The thread leading the grace period in progress (a fork from inside it, in its stall
    /// hook, keeps it leading in the child).
    leader: Option<std::thread::ThreadId>,
    /// Callers waiting on `cv` (the leader notifies only if there are any: `notify_all` is
    /// a system call even with nobody to wake).
    waiters: usize,
}

/// One grace period's wait for its readers.
struct Wait {
    /// When the first blocking reader was found (the spin budget counts from there).
    start: Option<Instant>,
    /// The spin budget of this grace period, for all its readers together.
    spin_for: Duration,
    /// Whether the leader spun on any reader.
    spun: bool,
    /// Whether the spin ran out on any reader (the leader then parks, unless the check
    /// after it sets `waiting` finds the reader gone).
    parked: bool,
    /// When the next stall report is due, from `start`.
    next_report: Duration,
}

/// The spin budget after a grace period that started with `budget` and `spun` on some
/// reader and `parked` on some reader: halved (not below [`MIN_SPIN_NS`]) when the spin ran
/// out, doubled (not above [`MAX_SPIN_NS`]) when it caught every reader, else unchanged.
/// Outside loom it therefore stays in `MIN_SPIN_NS..=MAX_SPIN_NS`, above 0: no sequence of
/// grace periods leaves a domain always parking or always spinning.
fn next_spin_budget(budget: u32, spun: bool, parked: bool) -> u32 {
    match (spun, parked) {
        // The spin ran out: park sooner next time.
        (true, true) => (budget / 2).max(MIN_SPIN_NS),
        // Every reader was caught spinning: spin longer next time.
        (true, false) => budget.saturating_mul(2).min(MAX_SPIN_NS),
        // Nobody to wait for, or no spin at all (a leader descheduled past the budget).
        (false, _) => budget,
    }
}

/// A domain's grace-period side.
pub(crate) struct GracePeriods<F: Flavor> {
    /// The grace-period counter (layout in `record.rs`). Its address is the domain's key.
    pub(crate) ctr: CachePadded<AtomicU64>,
    /// A memb domain without `membarrier` (it then uses the `Mb` protocol).
    pub(crate) fallback: bool,
    /// The domain's unique id.
    pub(crate) id: u64,
    registry: Registry,
    state: Mutex<State>,
    cv: Condvar,
    /// `state.completed`, mirrored for `poll` (Release at the end of each grace period).
    completed: AtomicU64,
    /// Tickets of [`quiet`](Self::quiet) checks begun, the highest ticket of one that found
    /// nothing to wait for, and the number that did not (statistics). A polled cookie is
    /// satisfied by a quiet check that began after it was taken.
    quiet_begun: AtomicU64,
    quiet_done: AtomicU64,
    quiet_failed: AtomicU64,
    waker: Waker,
    /// How long the next grace period may spin on its readers (all together), in ns, as
    /// [`next_spin_budget`] adapts it. Readers that leave quickly (on CPUs of their own)
    /// get spun on; readers that wait for a CPU (more busy threads than CPUs, where
    /// spinning steals the CPU they need) get parked on at once.
    spin_ns: AtomicU32,
    stalls: Stalls,
    _f: PhantomData<F>,
}

impl<F: Flavor> GracePeriods<F> {
    pub(crate) fn new(id: u64, fallback: bool, stalls: Stalls) -> Self {
        GracePeriods {
            ctr: CachePadded::new(AtomicU64::new(record::initial_counter(fallback))),
            fallback,
            id,
            registry: Registry::new(),
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            completed: AtomicU64::new(0),
            quiet_begun: AtomicU64::new(0),
            quiet_done: AtomicU64::new(0),
            quiet_failed: AtomicU64::new(0),
            waker: Waker::default(),
            spin_ns: AtomicU32::new(MAX_SPIN_NS),
            stalls,
            _f: PhantomData,
        }
    }

    // ----- registration -----

    /// Register the calling thread: a record (online for qsbr, idle otherwise) that stays
    /// valid as long as `self`.
    pub(crate) fn register(&self) -> NonNull<Record> {
        let rec = self.registry.claim(&self.ctr, &self.waker, |r| {
            let start = if F::STARTS_ONLINE {
                // The current counter, with a full barrier before our first critical
                // section (the registry's, after this): a grace period that bumped before
                // we read is seen as passed (Acquire pairs with its Release bump, so we see
                // what it unpublished), and one that bumps after sees our snapshot as old.
                self.ctr.load(Ordering::Acquire)
            } else {
                0
            };
            // Relaxed: ordered by the registry's full barrier that follows.
            r.ctr.store(start, Ordering::Relaxed);
        });
        crate::misuse::registered(self.id, rec.as_ptr());
        rec
    }

    /// Unregister `rec` (its thread leaves, or has left, every critical section).
    pub(crate) fn unregister(&self, rec: NonNull<Record>) {
        // SAFETY: `rec` came from `register` on this registry, which keeps it alive.
        let r = unsafe { rec.as_ref() };
        // Leave any online state so a waiting grace period does not wait for us; the full
        // barrier and wake pair with the synchronizer exactly as a read unlock does.
        crate::flavor::store_full_barrier(&r.ctr, 0);
        r.wake_if_waiting();
        crate::misuse::unregistered(self.id, rec.as_ptr());
        self.registry.release(rec);
    }

    /// Registered readers.
    pub(crate) fn readers(&self) -> usize {
        self.registry.len()
    }

    /// Panic if waiting for a grace period of this domain here would deadlock.
    #[track_caller]
    pub(crate) fn check_may_block(&self, what: &str) {
        if let Some(hazard) = self.blocking_hazard() {
            panic!("rcu: {what}() called {hazard}");
        }
    }

    /// Why waiting for a grace period of this domain here would deadlock, if it would.
    pub(crate) fn blocking_hazard(&self) -> Option<&'static str> {
        crate::misuse::blocking_hazard::<F>(self.id, || {
            self.registry.owned_by(std::thread::current().id())
        })
    }

    // ----- nothing to wait for -----

    /// Whether a grace period that starts now has nothing to wait for (see the module
    /// docs), decided without a system call, a mutex or an allocation. The caller
    /// unpublished what it will free before calling.
    pub(crate) fn quiet(&self) -> bool {
        // SeqCst: the ticket is ordered against `quiet_ticket`'s fence (see `poll_quiet`).
        let ticket = self.quiet_begun.fetch_add(1, Ordering::SeqCst) + 1;
        // Full barrier: orders the caller's unpublish before the loads below; pairs with
        // the registry's barrier after registration (memb) or the reader's full barrier
        // after its `ctr` store (mb, qsbr, fallback), as in pairing 1.
        fence(Ordering::SeqCst);
        let quiet = if F::USES_MEMBARRIER && !self.fallback {
            self.registry.len() == 0
        } else {
            self.registry.all_idle()
        };
        if quiet {
            // Release: a poller that Acquire-reads this ticket sees the readers' critical
            // sections (seen ended by the Acquire loads above) as done.
            self.quiet_done.fetch_max(ticket, Ordering::Release);
        } else {
            // Relaxed: statistics.
            self.quiet_failed.fetch_add(1, Ordering::Relaxed);
        }
        quiet
    }

    /// The quiet-check ticket for a cookie taken now: a quiet check with a higher ticket
    /// began after this call.
    pub(crate) fn quiet_ticket(&self) -> u64 {
        // The fence orders the caller's unpublish before the ticket read; a quiet check that
        // draws a later ticket executes its own fence after drawing it, so (the read being
        // coherence-ordered before that ticket's draw) our fence precedes its fence in the
        // single total order, and its scan covers what we unpublished.
        fence(Ordering::SeqCst);
        self.quiet_begun.load(Ordering::Relaxed)
    }

    /// Whether a quiet check that began after `ticket` found nothing to wait for.
    pub(crate) fn quiet_since(&self, ticket: u64) -> bool {
        // Acquire: pairs with the Release `fetch_max` in `quiet`.
        self.quiet_done.load(Ordering::Acquire) > ticket
    }

    /// Wait for a grace period that covers every reader that exists now
    /// (`synchronize_rcu`), sharing one with concurrent callers.
    pub(crate) fn synchronize(&self) {
        if !self.quiet() {
            let target = self.target();
            self.wait(target);
        }
    }

    /// Grace periods completed, counting those that had nothing to wait for (statistics).
    pub(crate) fn total(&self) -> u64 {
        // Relaxed: statistics. Each counter is read once and the difference saturates: a
        // concurrent quiet attempt may be counted as begun and not yet as failed, or (the
        // loads being unordered) the other way round; reading `quiet_begun` twice let the
        // subtraction overflow (a panic in debug builds, found by Miri's scheduling).
        let failed = self.quiet_failed.load(Ordering::Relaxed);
        let begun = self.quiet_begun.load(Ordering::Relaxed);
        self.completed() + begun.saturating_sub(failed)
    }

    // ----- sharing -----

    /// The grace-period number that, once completed, covers every reader that exists now.
    pub(crate) fn target(&self) -> u64 {
        let st = lock(&self.state);
        if st.in_progress {
            // The running grace period may have scanned before our caller's update.
            st.completed + 2
        } else {
            st.completed + 1
        }
    }

    /// Grace periods completed (Acquire: pairs with the Release store at the end of each,
    /// so everything a completed grace period established is visible to the caller).
    pub(crate) fn completed(&self) -> u64 {
        self.completed.load(Ordering::Acquire)
    }

    /// Wait until `target` grace periods have completed, running them if nobody else is.
    pub(crate) fn wait(&self, target: u64) {
        let mut st = lock(&self.state);
        loop {
            if st.completed >= target {
                return;
            }
            if st.in_progress {
                // Ride on the grace period in progress (or on the one after it).
                st.waiters += 1;
                st = sync::wait(&self.cv, st);
                st.waiters -= 1;
                continue;
            }
            st.in_progress = true;
            st.leader = Some(std::thread::current().id());
            drop(st);
            /// Lets others lead if `run` unwinds (it contains every panic of user code, so
            /// only an internal bug could get here).
            struct Reset<'a, F: Flavor>(&'a GracePeriods<F>);
            impl<F: Flavor> Drop for Reset<'_, F> {
                fn drop(&mut self) {
                    let mut st = lock(&self.0.state);
                    st.in_progress = false;
                    st.leader = None;
                    drop(st);
                    self.0.cv.notify_all();
                }
            }
            let reset = Reset(self);
            self.run();
            core::mem::forget(reset);
            st = lock(&self.state);
            st.completed += 1;
            // Release: a poller that reads this value sees everything the grace period
            // established (its readers' critical sections happen-before this store).
            self.completed.store(st.completed, Ordering::Release);
            st.in_progress = false;
            st.leader = None;
            if st.waiters > 0 {
                self.cv.notify_all();
            }
        }
    }

    // ----- one grace period -----

    /// One grace period; only one thread runs this at a time (`in_progress`).
    fn run(&self) {
        // A: everything the caller unpublished is visible to every reader that enters after
        // this point, or the reader's `ctr` store is visible to the scan below (the
        // store-buffering pairing with the reader's barrier after its `ctr` store).
        F::heavy(self.fallback);
        // Relaxed load: only the leader stores the counter. Release store: a qsbr reader
        // that Acquire-loads the new value sees what was unpublished before it.
        let new = record::next_counter(self.ctr.load(Ordering::Relaxed));
        self.ctr.store(new, Ordering::Release);
        // Relaxed: a tuning hint, not a publication.
        let budget = self.spin_ns.load(Ordering::Relaxed);
        let mut wait = Wait {
            start: None,
            spin_for: Duration::from_nanos(u64::from(budget)),
            spun: false,
            parked: false,
            next_report: self.stalls.timeout,
        };
        self.registry
            .for_each_blocking(new, |r| self.wait_reader(r, new, &mut wait));
        // Adapt the budget once per grace period, from what the whole scan saw (adapting
        // per reader made it oscillate: with one reader caught by the spin and one waiting
        // for a CPU, the first doubled what the second halved, and every grace period spun
        // the full budget on a reader that could not run until the leader parked).
        let next = next_spin_budget(budget, wait.spun, wait.parked);
        if next != budget {
            self.spin_ns.store(next, Ordering::Relaxed);
        }
    }

    /// Wait until `r` no longer holds up the grace period that set the counter to `new`:
    /// spin while the grace period's budget lasts, then park until its unlock wakes us.
    fn wait_reader(&self, r: &Record, new: u64, wait: &mut Wait) {
        let start = *wait.start.get_or_insert_with(Instant::now);
        // Acquire on every check: pairs with the reader's Release store of 0 / of a newer
        // snapshot, as in `Registry::for_each_blocking`.
        while !wait.spin_for.is_zero() && start.elapsed() < wait.spin_for {
            wait.spun = true;
            for _ in 0..SPINS_PER_CLOCK {
                if !Record::blocks(r.ctr.load(Ordering::Acquire), new) {
                    return;
                }
                sync::spin_hint();
            }
        }
        wait.parked = true;
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
            if waited >= wait.next_report {
                self.report_stall(new, waited);
                // The next report one period from now: a slow hook (or a leader that was
                // descheduled) delays reports instead of bunching them up.
                wait.next_report = start.elapsed() + self.stalls.period();
                // The hook is user code on this thread: if it parked (a channel, a
                // grace period of another domain), it may have taken the wake-up our
                // reader sent meanwhile. Check again before parking.
                continue;
            }
            let left = wait.next_report.saturating_sub(start.elapsed());
            sync::park_timeout(left.min(MAX_PARK));
        }
        // Relaxed: only this leader reads it back; a reader that still sees `true` wakes us
        // once for nothing.
        r.waiting.store(false, Ordering::Relaxed);
    }

    #[cold]
    fn report_stall(&self, new: u64, waited: Duration) {
        let _marker = crate::misuse::Running::stall_hook(self.id);
        self.stalls.report(StallReport {
            flavor: F::NAME,
            grace_period: record::sequence(new),
            waited,
            readers: self.registry.stalled(new, waited),
        });
    }

    /// Stall reports issued so far.
    pub(crate) fn stalls(&self) -> u64 {
        self.stalls.count()
    }
}

#[cfg(not(loom))]
impl<F: Flavor> crate::fork::ForkHooks for GracePeriods<F> {
    fn hold(&self) -> Vec<Box<dyn crate::fork::Held + '_>> {
        // Each lock is held only briefly by its users (never across a wait for readers), so
        // taking them cannot wait for a grace period.
        vec![
            Box::new(lock(&self.state)),
            Box::new(self.registry.hold()),
            Box::new(lock(&self.waker.thread)),
        ]
    }

    fn child(&self, me: std::thread::ThreadId) {
        // A leader in the parent does not exist here: the next caller leads afresh (the
        // counter may or may not have been bumped; either is a valid counter value). If
        // the fork came from the leader itself (its stall hook), it goes on leading.
        let mut st = lock(&self.state);
        // Only this thread exists, and it is not waiting on `cv` (it is forking).
        st.waiters = 0;
        if st.leader != Some(me) {
            st.in_progress = false;
            st.leader = None;
        }
        drop(st);
        self.registry.keep_only(me);
        *lock(&self.waker.thread) = None;
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::{next_spin_budget, MAX_SPIN_NS, MIN_SPIN_NS};

    use crate::record;
    use crate::sync::Ordering;
    use crate::{Domain, Flavor, Mb, Memb, Qsbr};

    /// The adaptive spin budget cannot get stuck: every outcome keeps it within
    /// `MIN_SPIN_NS..=MAX_SPIN_NS` (never 0, so a domain never parks at once for good),
    /// grace periods that run out of spin bring it down to the minimum, and grace periods
    /// whose spin catches every reader bring it back up to the maximum.
    #[test]
    fn the_spin_budget_stays_in_range_and_recovers() {
        const { assert!(MIN_SPIN_NS > 0 && MIN_SPIN_NS <= MAX_SPIN_NS) };
        let range = MIN_SPIN_NS..=MAX_SPIN_NS;
        let mut budget = MAX_SPIN_NS;
        for _ in 0..u32::BITS {
            budget = next_spin_budget(budget, true, true);
            assert!(range.contains(&budget));
        }
        assert_eq!(budget, MIN_SPIN_NS, "a spin that runs out parks sooner");
        for _ in 0..u32::BITS {
            budget = next_spin_budget(budget, true, false);
            assert!(range.contains(&budget));
        }
        assert_eq!(
            budget, MAX_SPIN_NS,
            "a spin that catches every reader grows back"
        );
        for budget in [MIN_SPIN_NS, MIN_SPIN_NS + 1, MAX_SPIN_NS / 2, MAX_SPIN_NS] {
            for (spun, parked) in [(false, false), (false, true), (true, false), (true, true)] {
                let next = next_spin_budget(budget, spun, parked);
                assert!(range.contains(&next), "{budget} {spun} {parked}: {next}");
                if !spun {
                    assert_eq!(next, budget, "no spin, nothing learnt");
                }
            }
        }
    }

    /// Scenario 12 of issue 10 on a live domain: a reader that entered just before the
    /// counter wraps still holds up the grace period that wraps it.
    fn wrap<F: Flavor>(d: Domain<F>) {
        let near = record::last_before_wrap(d.gp.ctr.load(Ordering::Relaxed));
        d.gp.ctr.store(near, Ordering::Relaxed);
        let r = d.register();
        for _ in 0..3 {
            let g = r.read_lock();
            let (tx, rx) = std::sync::mpsc::channel();
            let d2 = d.clone();
            let sync = std::thread::spawn(move || {
                d2.synchronize();
                tx.send(()).unwrap();
            });
            assert!(
                rx.recv_timeout(Duration::from_millis(100)).is_err(),
                "a grace period ended under a reader across the counter wrap"
            );
            drop(g);
            sync.join().unwrap();
        }
        assert!(
            d.gp.ctr.load(Ordering::Relaxed) < near,
            "the counter wrapped"
        );
    }

    #[test]
    fn s12_grace_periods_across_the_counter_wrap() {
        wrap::<Mb>(Domain::new());
        wrap::<Memb>(Domain::new());
        wrap::<Memb>(Domain::builder().force_fallback(true).build());
    }

    #[test]
    fn s12_qsbr_across_the_counter_wrap() {
        let d: Domain<Qsbr> = Domain::new();
        let near = record::last_before_wrap(d.gp.ctr.load(Ordering::Relaxed));
        d.gp.ctr.store(near, Ordering::Relaxed);
        let mut r = d.register();
        r.quiescent_state();
        let (tx, rx) = std::sync::mpsc::channel();
        let d2 = d.clone();
        let sync = std::thread::spawn(move || {
            d2.synchronize();
            tx.send(()).unwrap();
        });
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
        while rx.try_recv().is_err() {
            r.quiescent_state();
            std::thread::sleep(Duration::from_millis(1));
        }
        sync.join().unwrap();
    }
}
