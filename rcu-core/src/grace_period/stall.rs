//! Stall reports: a grace period that waits longer than the stall timeout names the reader
//! threads holding it.

use core::fmt;
use std::thread::ThreadId;
use std::time::Duration;

use crate::sync::{AtomicU64, Ordering};

/// How long a grace period may wait for readers before the stall hook is called, unless
/// configured otherwise.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The stall hook type: called with a report while a grace period is stalled.
pub type StallHook = std::sync::Arc<dyn Fn(&StallReport) + Send + Sync>;

/// A grace period that has waited longer than the stall timeout.
#[derive(Debug, Clone)]
pub struct StallReport {
    /// The domain's flavor.
    pub flavor: &'static str,
    /// The grace-period sequence number being waited for (it wraps after 2^47).
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

/// A domain's stall settings and count.
pub(crate) struct Stalls {
    pub(crate) timeout: Duration,
    hook: Option<StallHook>,
    count: AtomicU64,
}

impl Stalls {
    pub(crate) fn new(timeout: Duration, hook: Option<StallHook>) -> Self {
        Stalls {
            timeout,
            hook,
            count: AtomicU64::new(0),
        }
    }

    /// The period between two reports (never zero, so a waiting leader cannot spin on
    /// reports).
    pub(crate) fn period(&self) -> Duration {
        self.timeout.max(Duration::from_millis(1))
    }

    /// Issue `report` through the hook (or on stderr). A panicking hook is contained: the
    /// grace period (and the worker thread that may be leading it) goes on.
    #[cold]
    pub(crate) fn report(&self, report: StallReport) {
        // Relaxed: a statistics counter.
        self.count.fetch_add(1, Ordering::Relaxed);
        let outcome = crate::unwind::run_caught(|| match &self.hook {
            Some(h) => h(&report),
            None => crate::unwind::warn(format_args!("{report}")),
        });
        if outcome.is_err() {
            crate::unwind::warn(format_args!(
                "rcu: the stall hook panicked (ignored): {report}"
            ));
        }
    }

    /// Reports issued so far.
    pub(crate) fn count(&self) -> u64 {
        // Relaxed: statistics.
        self.count.load(Ordering::Relaxed)
    }
}
