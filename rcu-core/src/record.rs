//! The reader record and the grace-period counter's layout: the leaf that the read side and
//! the grace-period side share.
//!
//! # The counter
//!
//! A domain's grace-period counter and every reader's `ctr` use one 64-bit layout:
//!
//! ```text
//!  63         62 ............................ 16   15 ........... 0
//! [fallback] [ sequence (47 bits, wraps)        ] [ nesting depth  ]
//! ```
//!
//! The counter always carries a nesting depth of 1, so the outermost `read_lock` is a single
//! store of the counter into `ctr`; inner locks and unlocks only adjust the low bits. A `ctr`
//! of 0 means idle (memb, mb) or offline (qsbr); no snapshot is ever 0 because its depth is
//! at least 1. The fallback bit marks a memb domain without `membarrier`, so the read side
//! tests a value it has loaded anyway.
//!
//! The sequence wraps (after 2^47 grace periods); comparisons are wrap-safe because they
//! only ask whether a snapshot *equals* the sequence of the grace period being waited for
//! (see [`Record::blocks`]).

use core::cell::Cell;
use core::fmt;

use crate::sync::{self, AtomicBool, AtomicU64, Mutex, Ordering};

/// The low bits of a reader's `ctr` count its nesting depth.
pub(crate) const NEST_BITS: u32 = 16;
/// Mask of the nesting depth.
pub(crate) const NEST_MASK: u64 = (1 << NEST_BITS) - 1;
/// One grace-period step of the counter.
pub(crate) const GP_STEP: u64 = 1 << NEST_BITS;
/// Set in the grace-period counter of a memb domain without membarrier (the fallback), so in
/// every snapshot a reader stores.
pub(crate) const FALLBACK_BIT: u64 = 1 << 63;
/// The sequence bits.
const SEQ_MASK: u64 = !FALLBACK_BIT & !NEST_MASK;

/// The first value of a domain's counter.
pub(crate) const fn initial_counter(fallback: bool) -> u64 {
    GP_STEP | 1 | if fallback { FALLBACK_BIT } else { 0 }
}

/// The counter value after `cur`: the sequence advances by one (wrapping within its 47 bits),
/// the fallback bit and the depth of 1 stay.
#[inline]
pub(crate) const fn next_counter(cur: u64) -> u64 {
    (cur & !SEQ_MASK) | (cur.wrapping_add(GP_STEP) & SEQ_MASK)
}

/// The last counter value before the sequence wraps (tests).
#[cfg(all(test, not(loom)))]
pub(crate) const fn last_before_wrap(cur: u64) -> u64 {
    cur | SEQ_MASK
}

/// The sequence number of a counter value or snapshot (for reports).
pub(crate) const fn sequence(v: u64) -> u64 {
    (v & SEQ_MASK) >> NEST_BITS
}

/// One registered reader thread's state, shared with the grace-period side.
///
/// Invariants: `ctr`'s only writer is the owning thread (plus unregistration and the
/// post-fork fixup, when the owner cannot be running); `nesting` is only touched by the
/// owning thread; `gp` and `waker` point into the grace-period state that owns the record
/// (in a registry slot, reused by later registrations but never freed before the domain)
/// and that the owning `Reader` keeps alive through its `Domain`.
///
/// `pub` only because the sealed flavor trait's methods take it; the module is private, so
/// nothing outside the crate can name it.
pub struct Record {
    /// 0: idle/offline; otherwise the grace-period counter snapshot of the current critical
    /// section (memb, mb) or of the last quiescent state (qsbr).
    pub(crate) ctr: AtomicU64,
    /// Set by a waiting synchronizer; checked by the reader when it leaves.
    pub(crate) waiting: AtomicBool,
    /// QSBR in debug builds only: nesting depth of `Reader` critical sections (owner thread
    /// only). Memb and Mb keep the depth in the low bits of `ctr`.
    pub(crate) nesting: Cell<usize>,
    gp: *const AtomicU64,
    waker: *const Waker,
}

// SAFETY: the atomics are shared by design; `nesting` (a `Cell`) is only ever accessed by the
// owning thread: every access goes through `Reader`/`ReadGuard`/the default-domain
// thread-locals, all of which are `!Send` and so stay on that thread. The grace-period side
// only reads `ctr`, `waiting`, `owner` and `name`. The raw pointers point into grace-period
// state that outlives every use (see the type invariants).
unsafe impl Sync for Record {}
// SAFETY: see `Sync`: moving the record (in its `Arc`) between threads moves no thread-bound
// state; `nesting` is only used by the owner.
unsafe impl Send for Record {}

impl Record {
    /// A record for the domain whose counter is `gp` and whose leader wake-up is `waker`;
    /// `start` is the initial `ctr`.
    pub(crate) fn new(gp: &AtomicU64, waker: &Waker, start: u64) -> Self {
        Record {
            ctr: AtomicU64::new(start),
            waiting: AtomicBool::new(false),
            nesting: Cell::new(0),
            gp,
            waker,
        }
    }

    /// The domain's grace-period counter (its key).
    #[inline(always)]
    pub(crate) fn gp_ptr(&self) -> *const AtomicU64 {
        self.gp
    }

    /// The domain's grace-period counter.
    #[inline(always)]
    pub(crate) fn gp(&self) -> &AtomicU64 {
        // SAFETY: `gp` points into the grace-period state kept alive by the owning `Reader`
        // (type invariant), and the record is only used while that reader exists.
        unsafe { &*self.gp }
    }

    /// If a synchronizer is waiting for us, wake it. Called after `ctr` changed, with a
    /// full barrier (or the light half of the membarrier pair) in between.
    #[inline(always)]
    pub(crate) fn wake_if_waiting(&self) {
        // Relaxed: the barrier before this load orders it after our `ctr` store; the
        // writer sets `waiting`, then executes its barrier, then re-reads `ctr`, so either
        // it sees our new `ctr` or we see `waiting == true` here.
        if self.waiting.load(Ordering::Relaxed) {
            self.wake_slow();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_slow(&self) {
        // SAFETY: as in `gp()`: `waker` points into the live grace-period state.
        unsafe { &*self.waker }.wake();
    }

    /// Whether a reader whose `ctr` is `ctr` holds up the grace period that set the counter
    /// to `new`: it is inside a critical section (or, for qsbr, online without a quiescent
    /// state) that began before that grace period.
    ///
    /// Wrap-safe: the grace-period side runs one grace period at a time and every snapshot
    /// is a value the counter had, so a snapshot is either the current value `new` (taken
    /// after the bump: does not block) or an earlier one (blocks). An earlier one can only
    /// equal `new`'s sequence if the reader stalled between loading the counter and storing
    /// its snapshot for 2^47 grace periods, none of which could then have observed it.
    #[inline]
    pub(crate) fn blocks(ctr: u64, new: u64) -> bool {
        ctr != 0 && (ctr & SEQ_MASK) != (new & SEQ_MASK)
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("ctr", &self.ctr.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Lets a reader that leaves its critical section wake the grace-period leader.
///
/// Under loom the leader really blocks (see `sync::park_timeout`) and readers really wake
/// it, so a lost wake-up (pairing 3 in `docs::internal`) shows up as a loom deadlock.
#[derive(Default)]
pub(crate) struct Waker {
    pub(crate) thread: Mutex<Option<sync::Unparker>>,
}

impl Waker {
    /// Make the calling thread the one to wake.
    pub(crate) fn set_current(&self) {
        *sync::lock(&self.thread) = Some(sync::Unparker::current());
    }

    /// Wake the registered thread (if any). The handle is cloned under the mutex and
    /// unparked after it is released: holding the mutex across the wake-up (a system call
    /// when the leader is parked) made the leader's next `set_current` block on it, and
    /// with more busy threads than CPUs that cost two more context switches per grace
    /// period. A wake-up that reaches a thread which has stopped leading meanwhile is a
    /// spurious one, which every `park` caller tolerates.
    pub(crate) fn wake(&self) {
        let leader = sync::lock(&self.thread).clone();
        if let Some(t) = leader {
            t.unpark();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn blocks_compares_sequences_not_nesting() {
        let g = (7 * GP_STEP) | 1;
        let new = next_counter(g);
        assert!(Record::blocks(g, new));
        assert!(
            Record::blocks(g + 5, new),
            "a nested old section still blocks"
        );
        assert!(!Record::blocks(new, new));
        assert!(!Record::blocks(new + 3, new));
        assert!(!Record::blocks(0, new));
        // A fallback domain's counter carries FALLBACK_BIT in every value.
        let (g, new) = (g | FALLBACK_BIT, new | FALLBACK_BIT);
        assert!(Record::blocks(g, new));
        assert!(Record::blocks(g + 5, new));
        assert!(!Record::blocks(new, new));
        assert!(!Record::blocks(new + 3, new));
        assert!(!Record::blocks(0, new));
    }

    /// Scenario 12 of issue 10: the counter wraps after 2^47 grace periods (about 1.5 years
    /// back to back); the comparison must not turn an old snapshot into a new one there.
    #[test]
    fn s12_counter_wrap_keeps_comparisons_and_the_fallback_bit() {
        for fallback in [0, FALLBACK_BIT] {
            let last = SEQ_MASK | 1 | fallback; // the last sequence before the wrap
            let wrapped = next_counter(last);
            assert_eq!(
                wrapped,
                1 | fallback,
                "sequence 0, depth 1, same fallback bit"
            );
            assert_ne!(wrapped, 0, "a snapshot is never 0 (idle)");
            assert!(Record::blocks(last, wrapped), "the old section blocks");
            assert!(Record::blocks(last + 2, wrapped), "also nested");
            assert!(!Record::blocks(wrapped, wrapped));
            let after = next_counter(wrapped);
            assert!(Record::blocks(wrapped, after));
            assert!(!Record::blocks(after + 1, after));
            assert_eq!(sequence(after), 1);
        }
    }
}
