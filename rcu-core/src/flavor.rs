//! The three flavors: how a reader enters and leaves a critical section, and which barrier
//! the grace-period side pairs with it.
//!
//! Every flavor uses the same reader record (`ctr`, `waiting`, see
//! `Record` (`record.rs`)) and the same grace-period loop: bump the 64-bit
//! counter `gp`, then wait until every registered reader is either idle (`ctr == 0`) or has
//! a snapshot taken after the bump (same sequence as `new`). The flavors differ only in the barriers
//! that make "`ctr` is 0 or new" imply "this reader can no longer see what was unpublished".
//! The full argument, pairing by pairing, is in [`crate::docs::internal`].

use crate::record::{Record, FALLBACK_BIT, NEST_MASK};
use crate::sync::{fence, AtomicU64, Ordering};

pub(crate) mod sealed {
    use crate::record::Record;
    use crate::sync::AtomicU64;

    /// The read-side protocol of a flavor. Sealed: the trait is public (it bounds
    /// [`Flavor`](super::Flavor)) but lives in a private module, so no other crate can name,
    /// implement or call it.
    pub trait Protocol {
        /// Whether a registered reader starts online with a counter snapshot (qsbr) or idle.
        const STARTS_ONLINE: bool;
        /// Whether the domain uses `membarrier` for its grace periods when available (memb).
        const USES_MEMBARRIER: bool;
        /// `read_lock` (any nesting level); `gp` is the domain's grace-period counter, the
        /// one `rec.gp()` points to (callers pass a copy they hold in a register).
        fn lock(rec: &Record, gp: &AtomicU64);
        /// [`lock`](Self::lock) for a reader its caller knows to be online: a
        /// [`Reader`](crate::Reader) whose key is set (qsbr: `Reader::read_lock` checks its
        /// key, so the record's state need not be loaded again).
        #[inline(always)]
        fn lock_online(rec: &Record, gp: &AtomicU64) {
            Self::lock(rec, gp);
        }
        /// Leaving a critical section (any nesting level).
        fn unlock(rec: &Record);
        /// Whether the owning thread is inside a critical section of `rec` (qsbr: only
        /// tracked in debug builds).
        fn in_critical_section(rec: &Record) -> bool;
        /// The grace-period side's barrier; `fallback` is the domain's "no membarrier" flag.
        fn heavy(fallback: bool);
    }
}

/// An RCU flavor: [`Memb`] (the default), [`Mb`] or [`Qsbr`].
///
/// The trait is sealed: the read-side protocol behind it is an implementation detail.
pub trait Flavor: sealed::Protocol + Send + Sync + Sized + 'static {
    /// Short name ("memb", "mb", "qsbr").
    const NAME: &'static str;
}

#[cold]
#[inline(never)]
fn nesting_overflow() -> ! {
    panic!("rcu: read-side critical sections nested more than 65535 deep")
}

/// The default flavor: readers pay one thread-local store and a compiler fence; grace
/// periods pay a `membarrier(PRIVATE_EXPEDITED)` system call.
///
/// Where `membarrier` is missing (or `RCU_MEMB_FORCE_FALLBACK=1` is set, or the domain was
/// built with [`DomainBuilder::force_fallback`](crate::DomainBuilder::force_fallback)), a
/// `Memb` domain uses the [`Mb`] protocol instead;
/// [`Domain::uses_membarrier`](crate::Domain::uses_membarrier) says which is in force.
#[derive(Debug, Clone, Copy, Default)]
pub struct Memb;

/// Readers and writers both use real full barriers (on x86-64 a locked `xchg`, which is
/// cheaper than `mfence`). Portable, and the protocol `Memb` falls back to.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mb;

/// Quiescent-state-based reclamation: entering and leaving a critical section costs nothing;
/// instead each online reader thread announces quiescent states
/// ([`Reader::quiescent_state`](crate::Reader::quiescent_state)) or goes offline, and a grace
/// period waits for every online reader to do so.
#[derive(Debug, Clone, Copy, Default)]
pub struct Qsbr;

/// Store `v` into `ctr` and make the store globally visible before any later load of this
/// thread, with the stores and loads before it ordered first (a store-release followed by a
/// full barrier).
#[inline(always)]
pub(crate) fn store_full_barrier(ctr: &AtomicU64, v: u64) {
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    {
        // A locked `xchg` is a full barrier on x86-64 and costs about half of an `mfence`.
        // The compiler fence keeps the compiler from hoisting later loads above it (the
        // hardware already cannot).
        ctr.swap(v, Ordering::SeqCst);
        std::sync::atomic::compiler_fence(Ordering::SeqCst);
    }
    #[cfg(not(all(target_arch = "x86_64", not(loom))))]
    {
        ctr.store(v, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

/// The read side of the two counting flavors (memb, mb): `ctr` holds the snapshot and the
/// nesting depth; only the outermost lock and unlock touch shared state, through `enter`
/// and `leave` (which differ only in their barriers).
#[inline(always)]
fn lock_counting(rec: &Record, gp: &AtomicU64, enter: impl FnOnce(&AtomicU64, u64)) {
    // Relaxed: only this thread writes its `ctr`.
    let tmp = rec.ctr.load(Ordering::Relaxed);
    if tmp & NEST_MASK == 0 {
        // Outermost. Relaxed load of the counter: which value we read does not matter for
        // safety (an old value only makes the next grace period wait for us); the ordering
        // comes from the barrier `enter` executes after its store.
        enter(&rec.ctr, gp.load(Ordering::Relaxed));
    } else {
        nest(rec, tmp);
    }
}

/// See [`lock_counting`]; `leave` gets the snapshot stored at the outermost lock.
#[inline(always)]
fn unlock_counting(rec: &Record, leave: impl FnOnce(&AtomicU64, u64)) {
    let tmp = rec.ctr.load(Ordering::Relaxed);
    if tmp & NEST_MASK == 1 {
        leave(&rec.ctr, tmp);
        rec.wake_if_waiting();
    } else {
        // Inner unlock: the snapshot bits are unchanged. Relaxed: ordering only matters at
        // the outermost level.
        rec.ctr.store(tmp - 1, Ordering::Relaxed);
    }
}

/// Inner (nested) lock: bump the nesting bits of `ctr`.
#[inline(always)]
fn nest(rec: &Record, tmp: u64) {
    if tmp & NEST_MASK == NEST_MASK {
        nesting_overflow();
    }
    // Relaxed: the snapshot bits are unchanged; only this thread writes `ctr`.
    rec.ctr.store(tmp + 1, Ordering::Relaxed);
}

/// Enter with a full barrier (mb, and memb's fallback): the `ctr` store is visible before
/// the critical section's loads (store-buffering pairing with the writer's fence before it
/// reads `ctr`).
#[inline(always)]
fn enter_fenced(ctr: &AtomicU64, snap: u64) {
    store_full_barrier(ctr, snap);
}

/// Leave with a full barrier (mb, and memb's fallback): Release + full barrier, so the
/// critical section happens-before the writer's Acquire read of 0, and the store is ordered
/// before the `waiting` load.
#[inline(always)]
fn leave_fenced(ctr: &AtomicU64, _snap: u64) {
    store_full_barrier(ctr, 0);
}

impl Flavor for Memb {
    const NAME: &'static str = "memb";
}

impl sealed::Protocol for Memb {
    const STARTS_ONLINE: bool = false;
    const USES_MEMBARRIER: bool = true;

    #[inline(always)]
    fn lock(rec: &Record, gp: &AtomicU64) {
        lock_counting(rec, gp, |ctr, snap| {
            if snap & FALLBACK_BIT != 0 {
                enter_fenced(ctr, snap);
            } else {
                // Relaxed store + light barrier: pairs with the writer's membarrier (heavy)
                // so that either the writer sees this `ctr` or we see what it unpublished.
                ctr.store(snap, Ordering::Relaxed);
                crate::membarrier::light();
            }
        });
    }

    #[inline(always)]
    fn unlock(rec: &Record) {
        // Relaxed: only this thread writes its `ctr`. One test covers the common case, the
        // outermost unlock of a membarrier domain (nesting 1, no fallback bit in the
        // snapshot `lock` stored); nested unlocks and fallback domains take the general path.
        let tmp = rec.ctr.load(Ordering::Relaxed);
        if tmp & (NEST_MASK | FALLBACK_BIT) == 1 {
            crate::membarrier::light();
            // Release: every load of the critical section is ordered before the writer's
            // Acquire load that reads 0 (and so before it frees anything).
            rec.ctr.store(0, Ordering::Release);
            // Orders the store above before the `waiting` load that follows, paired with
            // the writer's heavy barrier between setting `waiting` and re-reading `ctr`.
            crate::membarrier::light();
            rec.wake_if_waiting();
        } else {
            // Nested (the snapshot bits stay), or a fallback domain's outermost unlock.
            unlock_counting(rec, leave_fenced);
        }
    }

    #[inline(always)]
    fn in_critical_section(rec: &Record) -> bool {
        rec.ctr.load(Ordering::Relaxed) & NEST_MASK != 0
    }

    #[inline]
    fn heavy(fallback: bool) {
        if fallback {
            fence(Ordering::SeqCst);
        } else {
            crate::membarrier::heavy();
        }
    }
}

impl Flavor for Mb {
    const NAME: &'static str = "mb";
}

impl sealed::Protocol for Mb {
    const STARTS_ONLINE: bool = false;
    const USES_MEMBARRIER: bool = false;

    #[inline(always)]
    fn lock(rec: &Record, gp: &AtomicU64) {
        lock_counting(rec, gp, enter_fenced);
    }

    #[inline(always)]
    fn unlock(rec: &Record) {
        unlock_counting(rec, leave_fenced);
    }

    #[inline(always)]
    fn in_critical_section(rec: &Record) -> bool {
        Memb::in_critical_section(rec)
    }

    #[inline]
    fn heavy(_fallback: bool) {
        fence(Ordering::SeqCst);
    }
}

impl Flavor for Qsbr {
    const NAME: &'static str = "qsbr";
}

/// A QSBR `read_lock` on an offline reader: refuse it.
#[cold]
#[inline(never)]
pub(crate) fn read_lock_while_offline() -> ! {
    panic!(
        "rcu: read_lock() on an offline QSBR reader: grace periods ignore offline threads, so \
         the guard would protect nothing; come back online first (Reader::thread_online, \
         qsbr::rcu_thread_online, or drop the OfflineGuard)"
    )
}

impl sealed::Protocol for Qsbr {
    const STARTS_ONLINE: bool = true;
    const USES_MEMBARRIER: bool = false;

    #[inline(always)]
    fn lock(rec: &Record, gp: &AtomicU64) {
        // An offline reader is ignored by grace periods: it must not get a guard. Relaxed:
        // only this thread writes its own `ctr`, so this reads our own last store. One load
        // of a line this thread owns and a never-taken branch: the whole read side.
        if rec.ctr.load(Ordering::Relaxed) == 0 {
            read_lock_while_offline();
        }
        Self::lock_online(rec, gp);
    }

    #[inline(always)]
    fn lock_online(rec: &Record, _gp: &AtomicU64) {
        // Nothing to do: the thread is online, so grace periods wait for its next
        // quiescent state. Debug builds count nesting for assertions.
        if cfg!(debug_assertions) {
            rec.nesting.set(rec.nesting.get() + 1);
        }
    }

    #[inline(always)]
    fn unlock(rec: &Record) {
        if cfg!(debug_assertions) {
            rec.nesting.set(rec.nesting.get() - 1);
        }
    }

    #[inline(always)]
    fn in_critical_section(rec: &Record) -> bool {
        rec.nesting.get() > 0
    }

    #[inline]
    fn heavy(_fallback: bool) {
        fence(Ordering::SeqCst);
    }
}

/// QSBR: announce a quiescent state for `rec` (the owning thread only).
#[inline]
pub(crate) fn qsbr_quiescent(rec: &Record) {
    // Acquire: pairs with the Release store of the grace-period bump, so whatever the
    // writer unpublished before the bump is visible to our next critical sections.
    let g = rec.gp().load(Ordering::Acquire);
    // Relaxed: only this thread writes its own `ctr`.
    if rec.ctr.load(Ordering::Relaxed) != g {
        // Release: our earlier critical sections happen-before the writer's Acquire read of
        // the new value; the full barrier then orders the store before the `waiting` load.
        store_full_barrier(&rec.ctr, g);
        rec.wake_if_waiting();
    }
}

/// QSBR: go offline (extended quiescent state).
#[inline]
pub(crate) fn qsbr_offline(rec: &Record) {
    store_full_barrier(&rec.ctr, 0);
    rec.wake_if_waiting();
}

/// QSBR: come back online.
#[inline]
pub(crate) fn qsbr_online(rec: &Record) {
    let g = rec.gp().load(Ordering::Acquire);
    // Full barrier: our `ctr` must be visible before the loads of the critical sections
    // that follow (store-buffering pairing with the writer's fence before it reads `ctr`).
    store_full_barrier(&rec.ctr, g);
}

/// QSBR: `rec` (if given and online) offline until this value is dropped, then online
/// again, on unwinding too: a wait that panics (it would deadlock) leaves the reader as it
/// found it.
pub(crate) struct OfflineWhile<'r>(Option<&'r Record>);

impl<'r> OfflineWhile<'r> {
    /// Take `rec` offline if it is online (the owning thread only).
    pub(crate) fn new(rec: Option<&'r Record>) -> Self {
        // Relaxed: our own record, written only by this thread.
        let online = rec.filter(|r| r.ctr.load(Ordering::Relaxed) != 0);
        if let Some(r) = online {
            qsbr_offline(r);
        }
        OfflineWhile(online)
    }
}

impl Drop for OfflineWhile<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.0 {
            qsbr_online(r);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::record::{Record, FALLBACK_BIT, NEST_MASK};
    use crate::{Domain, Flavor, Mb, Memb, Qsbr};

    fn nesting<F: Flavor>() {
        let d: Domain<F> = Domain::new();
        let r = d.register();
        let rec: &Record = r.rec();
        let before = rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
        {
            let _a = r.read_lock();
            let snap = rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(snap & NEST_MASK, 1);
            {
                let _b = r.read_lock();
                let _c = r.read_lock();
                let inner = rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
                assert_eq!(inner & NEST_MASK, 3);
                assert_eq!(
                    inner & !NEST_MASK,
                    snap & !NEST_MASK,
                    "inner locks keep the snapshot"
                );
            }
            assert!(r.in_critical_section());
        }
        assert!(!r.in_critical_section());
        assert_eq!(rec.ctr.load(std::sync::atomic::Ordering::Relaxed), before);
    }

    #[test]
    fn memb_and_mb_nest_in_the_low_bits() {
        nesting::<Memb>();
        nesting::<Mb>();
    }

    #[test]
    fn guards_dropped_out_of_order_keep_the_section_open() {
        let d: Domain<Memb> = Domain::new();
        let r = d.register();
        let a = r.read_lock();
        let b = r.read_lock();
        drop(a);
        assert!(
            r.in_critical_section(),
            "the inner guard still protects its loads"
        );
        drop(b);
        assert!(!r.in_critical_section());
    }

    #[test]
    fn memb_fallback_is_read_from_the_snapshot() {
        let fb: Domain<Memb> = Domain::builder().force_fallback(true).build();
        let mbar: Domain<Memb> = Domain::builder().force_fallback(false).build();
        for (d, bit) in [(&fb, FALLBACK_BIT), (&mbar, 0)] {
            if bit == 0 && !d.uses_membarrier() {
                continue; // no membarrier on this kernel: both domains fall back
            }
            let r = d.register();
            let g1 = r.read_lock();
            let ctr = r.rec().ctr.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(ctr & FALLBACK_BIT, bit);
            assert_eq!(ctr & NEST_MASK, 1);
            let g2 = r.read_lock();
            drop(g2);
            drop(g1);
            assert_eq!(r.rec().ctr.load(std::sync::atomic::Ordering::Relaxed), 0);
            d.synchronize();
        }
    }

    #[test]
    fn qsbr_quiescent_state_publishes_the_current_counter() {
        let d: Domain<Qsbr> = Domain::new();
        let mut r = d.register();
        assert!(r.is_online());
        let before = r.rec().ctr.load(std::sync::atomic::Ordering::Relaxed);
        let off = r.offline();
        // A grace period that bumps the counter (a plain `synchronize` finds every reader
        // offline and has nothing to wait for).
        let cookie = d.start_poll();
        d.cond_synchronize(cookie);
        drop(off);
        r.quiescent_state();
        let after = r.rec().ctr.load(std::sync::atomic::Ordering::Relaxed);
        assert!(after > before && after & NEST_MASK == 1);
    }
}
