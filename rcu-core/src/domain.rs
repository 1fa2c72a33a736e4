//! `Domain`: the public face of a domain's grace-period side and call_rcu side.

use core::fmt;

use crate::call_rcu::CallRcu;
use crate::flavor::{Flavor, Memb};
use crate::grace_period::GracePeriods;
use crate::sync::{Arc, AtomicU64, Ordering};

/// A snapshot of a domain's counters ([`Domain::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Grace periods completed (including those that found nothing to wait for).
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
    /// Times a producer waited for the worker: always 0 unless the domain was built with
    /// [`DomainBuilder::blocking_backlog_limit`](crate::DomainBuilder::blocking_backlog_limit).
    pub throttled: u64,
}

/// A polled grace-period cookie ([`Domain::start_poll`], [`Domain::get_state`]): a grace
/// period of one particular domain, which [`Domain::poll`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GpCookie {
    domain: u64,
    target: u64,
    /// The quiet-check ticket at the time (a grace period with nothing to wait for that
    /// began later satisfies the cookie too).
    quiet: u64,
}

/// An RCU domain: a grace-period counter, a reader registry, and a call_rcu queue with its
/// worker thread (started on first use). Cloning gives another handle to the same domain.
///
/// Most programs use the process-wide default domains through the free functions
/// ([`rcu_read_lock`](crate::rcu_read_lock), [`synchronize_rcu`](crate::synchronize_rcu), …);
/// libraries and tests that want isolation create their own, and read them through a
/// registered [`Reader`](crate::Reader) or [`Domain::read_lock`].
///
/// The flavor defaults to [`Memb`] in types, but not in expressions: write
/// `let d: Domain = Domain::new()` or `Domain::<Memb>::new()` (`Domain::new()` alone is
/// error E0283; see [`docs::choosing`](crate::docs::choosing#domains)).
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
    pub(crate) gp: Arc<GracePeriods<F>>,
    pub(crate) calls: Arc<CallRcu<F>>,
}

impl<F: Flavor> Domain<F> {
    /// Wait until every read-side critical section that began before this call has ended
    /// (`synchronize_rcu`). Concurrent callers share grace periods.
    ///
    /// # Blocking
    ///
    /// Waits for every reader of this domain that is inside a critical section (memb, mb)
    /// or online without a quiescent state (qsbr).
    ///
    /// # Panics
    ///
    /// If called inside a read-side critical section of this domain, by an online QSBR
    /// reader of this domain, or from one of this domain's callbacks: each would deadlock.
    pub fn synchronize(&self) {
        self.gp.check_may_block("synchronize");
        self.gp.synchronize();
    }

    /// Panic (before changing anything) if waiting for a grace period here would deadlock.
    #[track_caller]
    pub(crate) fn check_may_block(&self, what: &str) {
        self.gp.check_may_block(what);
    }

    /// Queue `f` to run on the domain's worker thread after a grace period (`call_rcu`).
    ///
    /// Never blocks: the fast path is wait-free (no lock, no atomic read-modify-write); a
    /// thread's first call on a domain takes a short lock to add its queue, and the
    /// domain's first call spawns the worker. Under a flood of callbacks the worker runs
    /// grace periods back to back; see [`Stats::peak_backlog`].
    ///
    /// A callback that has not run when the process exits never runs: call
    /// [`barrier`](Self::barrier) before `main` returns if its effect matters.
    #[inline]
    pub fn call<C: FnOnce() + Send + 'static>(&self, f: C) {
        CallRcu::call(&self.calls, f);
    }

    /// Drop `value` after a grace period (on the worker thread). Never blocks, as
    /// [`call`](Self::call).
    ///
    /// For a raw pointer just unpublished (from [`rcu_xchg_pointer`](crate::rcu_xchg_pointer),
    /// say), use [`Retired::from_raw`](crate::Retired::from_raw) and drop or
    /// [`defer`](crate::Retired::defer) it, rather than `defer_drop(Box::from_raw(p))`:
    /// that `Box`, a unique pointer, would exist while readers still hold references to
    /// its value, which is undefined behaviour.
    #[inline]
    pub fn defer_drop<T: Send + 'static>(&self, value: T) {
        self.call(move || drop(value));
    }

    /// Wait until every callback queued before this call has run (`rcu_barrier`).
    /// Callbacks queued after it, including those queued by the callbacks it waits for, are
    /// not waited for (as Linux's `rcu_barrier`).
    ///
    /// # Blocking
    ///
    /// Waits for the callbacks queued before the call: at most the worker's current round
    /// and the next one, each one grace period plus running its callbacks.
    ///
    /// # Panics
    ///
    /// In the situations listed for [`Domain::synchronize`], and if the worker thread
    /// cannot be spawned.
    pub fn barrier(&self) {
        self.gp.check_may_block("barrier");
        CallRcu::barrier(&self.calls);
    }

    /// Start a grace period if needed and return a cookie for [`Domain::poll`]
    /// (Linux's `start_poll_synchronize_rcu`). The worker thread drives it. Never blocks
    /// (beyond starting the worker on first use).
    pub fn start_poll(&self) -> GpCookie {
        let cookie = self.get_state();
        CallRcu::request_gp(&self.calls, cookie.target);
        cookie
    }

    /// A cookie for the current state without starting anything
    /// (`get_state_synchronize_rcu`); someone else's grace periods will satisfy it.
    pub fn get_state(&self) -> GpCookie {
        GpCookie {
            domain: self.gp.id,
            quiet: self.gp.quiet_ticket(),
            target: self.gp.target(),
        }
    }

    /// Whether a full grace period has elapsed since `cookie` was taken
    /// (`poll_state_synchronize_rcu`). Never blocks.
    ///
    /// # Panics
    ///
    /// If `cookie` was taken from another domain (its grace periods are not ours).
    #[inline]
    pub fn poll(&self, cookie: GpCookie) -> bool {
        self.check_cookie(cookie);
        let done = self.gp.completed() >= cookie.target || self.gp.quiet_since(cookie.quiet);
        if !done {
            CallRcu::poll_pending(&self.calls);
        }
        done
    }

    /// Wait for the grace period of `cookie` unless it has already elapsed
    /// (`cond_synchronize_rcu`).
    ///
    /// # Panics
    ///
    /// As [`Domain::synchronize`] and [`Domain::poll`].
    pub fn cond_synchronize(&self, cookie: GpCookie) {
        if !self.poll(cookie) {
            self.gp.check_may_block("cond_synchronize");
            self.gp.wait(cookie.target);
        }
    }

    #[inline]
    fn check_cookie(&self, cookie: GpCookie) {
        if cookie.domain != self.gp.id {
            foreign_cookie();
        }
    }

    /// Counters: grace periods, callbacks queued/run/panicked, backlog.
    pub fn stats(&self) -> Stats {
        let c = self.calls.stats();
        Stats {
            grace_periods: self.gp.total(),
            callbacks_queued: c.queued,
            callbacks_run: c.run,
            callbacks_panicked: c.panicked,
            backlog: c.queued.saturating_sub(c.run),
            peak_backlog: c.peak_backlog,
            readers: self.gp.readers(),
            stalls: self.gp.stalls(),
            throttled: c.throttled,
        }
    }

    /// The flavor's name.
    pub fn flavor_name(&self) -> &'static str {
        F::NAME
    }

    /// Whether grace periods use `membarrier` (true only for `Memb` without fallback).
    pub fn uses_membarrier(&self) -> bool {
        F::USES_MEMBARRIER && !self.gp.fallback
    }

    /// The protocol in force: "memb", "mb" (including `Memb` fallen back to fences) or "qsbr".
    pub fn protocol(&self) -> &'static str {
        if self.gp.fallback {
            "mb"
        } else {
            F::NAME
        }
    }

    /// Whether two handles refer to the same domain.
    pub fn same_domain(&self, other: &Domain<F>) -> bool {
        Arc::ptr_eq(&self.gp, &other.gp)
    }

    /// The key a guard of this domain carries (for domain checks in pointer types).
    #[inline(always)]
    pub(crate) fn key(&self) -> *const AtomicU64 {
        &*self.gp.ctr
    }
}

#[cold]
#[inline(never)]
fn foreign_cookie() -> ! {
    panic!("rcu: grace-period cookie of another domain")
}

impl<F: Flavor> Clone for Domain<F> {
    fn clone(&self) -> Self {
        // Relaxed: like `Arc::clone`, a new handle is made from an existing one.
        self.calls.handles.fetch_add(1, Ordering::Relaxed);
        Domain {
            gp: self.gp.clone(),
            calls: self.calls.clone(),
        }
    }
}

impl<F: Flavor> Drop for Domain<F> {
    fn drop(&mut self) {
        // AcqRel: the last handle sees every other handle's work before shutting down.
        if self.calls.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.calls.shut_down();
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
