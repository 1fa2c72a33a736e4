//! The three flavors: how a reader enters and leaves a critical section, and which barrier
//! the grace-period side pairs with it.
//!
//! Every flavor uses the same reader record (`ctr`, `waiting`, see
//! [`Record`](crate::reader::Record)) and the same grace-period loop: bump the 64-bit
//! counter `gp`, then wait until every registered reader is either idle (`ctr == 0`) or has
//! a snapshot taken after the bump (`ctr >= new`). The flavors differ only in the barriers
//! that make "`ctr` is 0 or new" imply "this reader can no longer see what was unpublished".
//! The full argument, pairing by pairing, is in [`crate::docs::internal`].

use crate::reader::Record;
use crate::sync::{fence, AtomicU64, Ordering};

mod sealed {
    pub trait Sealed {}
}

/// An RCU flavor: [`Memb`] (the default), [`Mb`] or [`Qsbr`].
///
/// The trait is sealed; its methods are implementation details of the read side and are
/// hidden from the documentation.
pub trait Flavor: sealed::Sealed + Send + Sync + Sized + 'static {
    /// Short name ("memb", "mb", "qsbr").
    const NAME: &'static str;
    /// Whether a registered reader starts online with a counter snapshot (qsbr) or idle.
    #[doc(hidden)]
    const STARTS_ONLINE: bool;
    /// `read_lock` (any nesting level); `gp` is the domain's grace-period counter, the one
    /// `rec.gp()` points to (callers pass a copy they hold in a register).
    #[doc(hidden)]
    fn lock(rec: &Record, gp: &AtomicU64);
    /// Leaving a critical section (any nesting level).
    #[doc(hidden)]
    fn unlock(rec: &Record);
    /// Whether the owning thread is inside a critical section (qsbr: only tracked in
    /// debug builds).
    #[doc(hidden)]
    fn in_critical_section(rec: &Record) -> bool;
    /// The grace-period side's barrier; `fallback` is the domain's "no membarrier" flag.
    #[doc(hidden)]
    fn heavy(fallback: bool);
}

/// The low bits of a reader's `ctr` count its nesting depth; the grace-period counter
/// advances in steps of `1 << NEST_BITS` and always has nesting 1 in its low bits, so the
/// outermost lock is a single store of the counter. 48 bits of grace periods last ~9 years
/// at a million grace periods per second.
pub(crate) const NEST_BITS: u32 = 16;
pub(crate) const NEST_MASK: u64 = (1 << NEST_BITS) - 1;
/// One grace-period step of the counter.
pub(crate) const GP_STEP: u64 = 1 << NEST_BITS;
/// Set in the grace-period counter of a memb domain without membarrier (the fallback), so
/// in every snapshot a reader stores: `Memb::lock` and `Memb::unlock` test a value they
/// have loaded anyway instead of loading a flag. Both sides of [`Record::blocks`] carry
/// it, so the comparison of sequence numbers is unchanged.
pub(crate) const FALLBACK_BIT: u64 = 1 << 63;

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

impl sealed::Sealed for Memb {}
impl sealed::Sealed for Mb {}
impl sealed::Sealed for Qsbr {}

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

impl Flavor for Memb {
    const NAME: &'static str = "memb";
    const STARTS_ONLINE: bool = false;

    #[inline(always)]
    fn lock(rec: &Record, gp: &AtomicU64) {
        // Relaxed: only this thread writes its `ctr`.
        let tmp = rec.ctr.load(Ordering::Relaxed);
        if tmp & NEST_MASK == 0 {
            // Outermost. Relaxed load of the counter: which value we read does not matter
            // for safety (an old value only makes the next grace period wait for us); the
            // ordering comes from the barrier after the store.
            let snap = gp.load(Ordering::Relaxed);
            if snap & FALLBACK_BIT != 0 {
                store_full_barrier(&rec.ctr, snap);
            } else {
                // Relaxed store + light barrier: pairs with the writer's membarrier (heavy)
                // so that either the writer sees this `ctr` or we see what it unpublished.
                rec.ctr.store(snap, Ordering::Relaxed);
                crate::membarrier::light();
            }
        } else {
            nest(rec, tmp);
        }
    }

    #[inline(always)]
    fn unlock(rec: &Record) {
        let tmp = rec.ctr.load(Ordering::Relaxed);
        if tmp & NEST_MASK == 1 {
            // `tmp` is the snapshot stored by `lock`, with the domain's fallback bit.
            if tmp & FALLBACK_BIT != 0 {
                store_full_barrier(&rec.ctr, 0);
            } else {
                crate::membarrier::light();
                // Release: every load of the critical section is ordered before the
                // writer's Acquire load that reads 0 (and so before it frees anything).
                rec.ctr.store(0, Ordering::Release);
                // Orders the store above before the `waiting` load below, paired with the
                // writer's heavy barrier between setting `waiting` and re-reading `ctr`.
                crate::membarrier::light();
            }
            rec.wake_if_waiting();
        } else {
            // Inner unlock: the snapshot bits are unchanged. Relaxed: ordering only
            // matters at the outermost level.
            rec.ctr.store(tmp - 1, Ordering::Relaxed);
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

/// Inner (nested) lock: bump the nesting bits of `ctr`.
#[inline(always)]
fn nest(rec: &Record, tmp: u64) {
    if tmp & NEST_MASK == NEST_MASK {
        nesting_overflow();
    }
    // Relaxed: the snapshot bits are unchanged; only this thread writes `ctr`.
    rec.ctr.store(tmp + 1, Ordering::Relaxed);
}

impl Flavor for Mb {
    const NAME: &'static str = "mb";
    const STARTS_ONLINE: bool = false;

    #[inline(always)]
    fn lock(rec: &Record, gp: &AtomicU64) {
        let tmp = rec.ctr.load(Ordering::Relaxed);
        if tmp & NEST_MASK == 0 {
            let snap = gp.load(Ordering::Relaxed);
            // Full barrier: the `ctr` store is visible before our critical section's loads
            // (store-buffering pairing with the writer's fence before it reads `ctr`).
            store_full_barrier(&rec.ctr, snap);
        } else {
            nest(rec, tmp);
        }
    }

    #[inline(always)]
    fn unlock(rec: &Record) {
        let tmp = rec.ctr.load(Ordering::Relaxed);
        if tmp & NEST_MASK == 1 {
            // Release + full barrier: the critical section happens-before the writer's
            // Acquire read of 0, and the store is ordered before the `waiting` load.
            store_full_barrier(&rec.ctr, 0);
            rec.wake_if_waiting();
        } else {
            rec.ctr.store(tmp - 1, Ordering::Relaxed);
        }
    }

    #[inline(always)]
    fn in_critical_section(rec: &Record) -> bool {
        rec.ctr.load(Ordering::Relaxed) & NEST_MASK != 0
    }

    #[inline]
    fn heavy(_fallback: bool) {
        fence(Ordering::SeqCst);
    }
}

impl Flavor for Qsbr {
    const NAME: &'static str = "qsbr";
    const STARTS_ONLINE: bool = true;

    #[inline(always)]
    fn lock(rec: &Record, _gp: &AtomicU64) {
        // Nothing at all in release builds; debug builds count nesting for assertions.
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

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::reader::Record;
    use crate::{Domain, Flavor, Mb, Memb, Qsbr};

    use super::{FALLBACK_BIT, GP_STEP, NEST_MASK};

    fn nesting<F: Flavor>() {
        let d: Domain<F> = Domain::new();
        let r = d.register();
        let rec: &Record = &r.rec;
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
    fn blocks_compares_sequences_not_nesting() {
        let g = (7 * GP_STEP) | 1;
        let new = g + GP_STEP;
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
            let ctr = r.rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
            assert_eq!(ctr & FALLBACK_BIT, bit);
            assert_eq!(ctr & NEST_MASK, 1);
            let g2 = r.read_lock();
            drop(g2);
            drop(g1);
            assert_eq!(r.rec.ctr.load(std::sync::atomic::Ordering::Relaxed), 0);
            d.synchronize();
        }
    }

    #[test]
    fn qsbr_quiescent_state_publishes_the_current_counter() {
        let d: Domain<Qsbr> = Domain::new();
        let mut r = d.register();
        assert!(r.is_online());
        let before = r.rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
        let off = r.offline();
        d.synchronize();
        drop(off);
        r.quiescent_state();
        let after = r.rec.ctr.load(std::sync::atomic::Ordering::Relaxed);
        assert!(after > before && after & NEST_MASK == 1);
    }
}
