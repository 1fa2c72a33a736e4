//! `DomainBuilder`: a domain with non-default settings.

use core::fmt;
use core::marker::PhantomData;
use std::time::Duration;

use crate::call_rcu::{CallRcu, Config};
use crate::domain::Domain;
use crate::flavor::Flavor;
use crate::grace_period::stall::{StallHook, StallReport, Stalls, DEFAULT_STALL_TIMEOUT};
use crate::grace_period::GracePeriods;
use crate::sync::Arc;

/// How long the call_rcu worker waits for more callbacks after a batch, unless configured
/// otherwise ([`DomainBuilder::callback_batch_delay`]).
pub const DEFAULT_BATCH_DELAY: Duration = Duration::from_millis(1);

static NEXT_DOMAIN_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl<F: Flavor> Domain<F> {
    /// A new domain with default settings.
    pub fn new() -> Self {
        DomainBuilder::default().build()
    }

    /// A builder for a domain with non-default settings.
    pub fn builder() -> DomainBuilder<F> {
        DomainBuilder::default()
    }
}

impl<F: Flavor> Default for Domain<F> {
    fn default() -> Self {
        Self::new()
    }
}

/// Builder for a [`Domain`] with non-default settings.
///
/// ```
/// use rcu_core::{Domain, Memb};
/// use std::time::Duration;
///
/// let domain: Domain<Memb> = Domain::builder()
///     .stall_timeout(Duration::from_secs(2))
///     .stall_hook(|report| eprintln!("{report}"))
///     .build();
/// domain.synchronize();
/// ```
pub struct DomainBuilder<F: Flavor> {
    force_fallback: bool,
    batch_delay: Duration,
    blocking_limit: Option<u64>,
    stall_timeout: Duration,
    stall_hook: Option<StallHook>,
    _f: PhantomData<F>,
}

impl<F: Flavor> fmt::Debug for DomainBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainBuilder")
            .field("flavor", &F::NAME)
            .field("force_fallback", &self.force_fallback)
            .field("batch_delay", &self.batch_delay)
            .field("blocking_backlog_limit", &self.blocking_limit)
            .field("stall_timeout", &self.stall_timeout)
            .finish()
    }
}

impl<F: Flavor> Default for DomainBuilder<F> {
    fn default() -> Self {
        DomainBuilder {
            force_fallback: false,
            batch_delay: DEFAULT_BATCH_DELAY,
            blocking_limit: None,
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
    /// (default [`DEFAULT_BATCH_DELAY`]); `barrier` cuts it short, and a flood of callbacks
    /// (a batch of thousands) skips it. Zero runs batches back to back, with one grace
    /// period each.
    pub fn callback_batch_delay(mut self, d: Duration) -> Self {
        self.batch_delay = d;
        self
    }

    /// **Opt-in back-pressure that can deadlock**: past `limit` callbacks queued but not yet
    /// run, `call`/`defer_drop` (and everything built on them) wait until the worker has
    /// brought the backlog down to half (checked once per 256 calls). Off by default: then
    /// `call` never waits, and the worker bounds the backlog by running grace periods back
    /// to back.
    ///
    /// # Deadlock
    ///
    /// With a limit, `call` waits for grace periods, exactly like `synchronize`. A producer
    /// that holds a lock which a reader takes inside its critical section, or which a
    /// callback takes, deadlocks once the limit is reached: the worker's grace period waits
    /// for the reader (or the worker waits in the callback), the reader waits for the lock,
    /// and the producer waits for the worker. Producers that visibly must not wait (inside
    /// a critical section of the domain, an online QSBR reader of it, one of its callbacks)
    /// are let through, so the bound is soft; no other case is detected.
    pub fn blocking_backlog_limit(mut self, limit: u64) -> Self {
        self.blocking_limit = Some(limit);
        self
    }

    /// Call the stall hook when a grace period has waited this long for readers (and again
    /// after each further period of this length).
    pub fn stall_timeout(mut self, t: Duration) -> Self {
        self.stall_timeout = t;
        self
    }

    /// Replace the default stall hook (one line on stderr). A hook that panics is
    /// contained: the panic is reported on stderr and the grace period goes on.
    pub fn stall_hook(mut self, hook: impl Fn(&StallReport) + Send + Sync + 'static) -> Self {
        self.stall_hook = Some(std::sync::Arc::new(hook));
        self
    }

    /// Build the domain.
    pub fn build(self) -> Domain<F> {
        let fallback =
            F::USES_MEMBARRIER && (self.force_fallback || !crate::membarrier::available());
        // Relaxed: only uniqueness matters (ids are never reused, which cookies and the
        // per-thread call_rcu queues rely on).
        let id = NEXT_DOMAIN_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let stalls = Stalls::new(self.stall_timeout, self.stall_hook);
        let gp = Arc::new(GracePeriods::new(id, fallback, stalls));
        let config = Config {
            batch_delay: self.batch_delay,
            blocking_limit: self.blocking_limit,
        };
        let calls = Arc::new(CallRcu::new(gp.clone(), config));
        #[cfg(not(loom))]
        {
            crate::fork::track(gp.clone());
            crate::fork::track(calls.clone());
        }
        Domain { gp, calls }
    }
}
