//! The Rust twin of `benches/c/twin_body.h`: the same work on rcu-core, kernel for kernel.
//!
//! Same loop structure (batches of [`BATCH`] reads, the clock read once per batch, in the
//! private `loops` module: the shapes of C's `TWIN_FOR_BUDGET`/`TWIN_UNTIL_STOP`), the same 32-byte [`TwinPayload`], one pointer load
//! ([`rcu_dereference`], as C's `rcu_dereference`) and one field read per read, barriers only
//! where each library's API puts them, the same allocator (Rust's global allocator is the
//! system `malloc` here). The harness creates every thread, for both twins; each kernel
//! times its own loop.
//!
//! What each row of the `vs-liburcu` table measures here:
//! - `read_loop`: `domain.register()`, then `reader.read_lock()`, `rcu_dereference`, read
//!   the field, drop the guard (QSBR: `reader.quiescent_state()` after every 1024 reads);
//!   ns per read. `read_loop_free_fns`: the same through `rcu_core::rcu_read_lock()` (memb)
//!   or `rcu_core::qsbr::rcu_read_lock()` + `qsbr::rcu_quiescent_state()` on the
//!   process-wide default domains, after `rcu_register_thread()`; mb has no default domain.
//! - `busy_reader`: the `Reader` loop until stop, counting reads that see [`POISON`].
//! - `updater`: unregistered; [`rcu_xchg_pointer`] a new payload, `domain.synchronize()`,
//!   poison the old one's field (volatile store), free it; updates/s. As in C, the poisoned
//!   payload is freed one update (one more grace period) later, so that a reader whose
//!   grace period was too short finds the poison rather than the allocator's free-list
//!   pointer.
//! - `idle_reader`: a registered `Reader` outside any critical section (QSBR: offline).
//! - `sync_loop`: `domain.synchronize()` in a loop from an unregistered thread.
//! - `call_barrier`: a registered reader thread (QSBR: online, a quiescent state every 1024
//!   calls) does `n` `domain.call` of a closure that increments a counter, then
//!   `domain.barrier()` (QSBR: offline around it, as liburcu's `rcu_barrier` does itself).
//!   The domain's worker is started and warmed with one callback before the clock starts.
//!
//! Every measurement uses a fresh domain (the free-function row aside), so no reader or
//! worker of one measurement is registered in the next.

use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rcu_core::{
    rcu_dereference, rcu_xchg_pointer, Domain, Flavor, Mb, Memb, Qsbr, ReadGuard, Reader,
};

use super::loops::{for_budget, until_stop};
use super::twin::{Cell, Control, Counts, Twin, TwinPayload, BATCH, POISON, SYNC_BATCH};

/// The Rust twin of flavor `F`: a fresh domain.
pub struct Ours<F: Flavor> {
    domain: Domain<F>,
}

impl<F: OurFlavor> Ours<F> {
    /// A twin with a new domain, boxed for the harness.
    pub fn make() -> Box<dyn Twin> {
        Box::new(Ours::<F> {
            domain: Domain::new(),
        })
    }
}

/// What differs between our flavors in the kernels.
pub trait OurFlavor: Flavor {
    /// After each batch of reads (QSBR: announce a quiescent state).
    #[inline(always)]
    fn after_batch(_reader: &mut Reader<Self>) {}
    /// Run `f` as an idle reader (QSBR: offline).
    fn idle_around(_reader: &mut Reader<Self>, f: &mut dyn FnMut()) {
        f();
    }
    /// The read loop through the C-named free functions, if the flavor has them.
    ///
    /// # Safety
    ///
    /// As [`Twin::read_loop_free_fns`].
    unsafe fn read_loop_free_fns(cell: &Cell, budget_ns: u64) -> Option<Counts> {
        let _ = (cell, budget_ns);
        None
    }
}

impl OurFlavor for Memb {
    unsafe fn read_loop_free_fns(cell: &Cell, budget_ns: u64) -> Option<Counts> {
        Some(free_fns_loop(
            budget_ns,
            rcu_core::rcu_register_thread,
            rcu_core::rcu_unregister_thread,
            // SAFETY: the caller's contract (no updater runs on `cell`).
            || unsafe { read_value(cell, &rcu_core::rcu_read_lock()) },
            || {},
        ))
    }
}

impl OurFlavor for Mb {}

impl OurFlavor for Qsbr {
    #[inline(always)]
    fn after_batch(reader: &mut Reader<Self>) {
        reader.quiescent_state();
    }

    fn idle_around(reader: &mut Reader<Self>, f: &mut dyn FnMut()) {
        let _offline = reader.offline();
        f();
    }

    unsafe fn read_loop_free_fns(cell: &Cell, budget_ns: u64) -> Option<Counts> {
        use rcu_core::qsbr;
        Some(free_fns_loop(
            budget_ns,
            qsbr::rcu_register_thread,
            qsbr::rcu_unregister_thread,
            // SAFETY: the caller's contract (no updater runs on `cell`).
            || unsafe { read_value(cell, &qsbr::rcu_read_lock()) },
            qsbr::rcu_quiescent_state,
        ))
    }
}

/// The read loop through the free functions: `register`, batches of `read` (each a whole
/// lock + dereference + read + unlock) followed by `after_batch`, `unregister`.
#[inline(always)]
fn free_fns_loop(
    budget_ns: u64,
    register: fn(),
    unregister: fn(),
    read: impl Fn() -> u64,
    mut after_batch: impl FnMut(),
) -> Counts {
    register();
    let mut sum = 0u64;
    let mut c = for_budget(budget_ns, BATCH, || {
        for _ in 0..BATCH {
            sum = sum.wrapping_add(read());
        }
        after_batch();
    });
    unregister();
    c.check = sum;
    c
}

/// One read under `guard`: load the pointer, read the field (0 for null), as C's
/// `read_one` does between its lock and unlock.
///
/// # Safety
///
/// [`Twin`]'s contract holds for `cell`, and either `guard` belongs to the domain of the
/// twin whose `updater` may run on `cell`, or no updater runs.
#[inline(always)]
unsafe fn read_value<F: Flavor>(cell: &Cell, guard: &ReadGuard<'_, F>) -> u64 {
    // SAFETY: 1. by the contract the cell holds null or a payload from `publish`/`updater`,
    // and a payload it no longer holds is freed only after a grace period of the updater's
    // domain, which `guard` holds off (or there is no updater), or by `reclaim` once no
    // reader runs. 2. nobody holds a `&mut TwinPayload`: the updater writes through a raw
    // pointer, after the grace period.
    match unsafe { rcu_dereference(cell, guard) } {
        Some(p) => p.value,
        None => 0,
    }
}

/// One batch of [`BATCH`] reads through `reader`. `COUNT_POISON`: the number of reads that
/// saw [`POISON`] (the busy readers' work, as C's `busy_reader`); otherwise the sum of the
/// values (the timed read rows' work, as C's `read_loop`, which compares nothing). A
/// function of its own that takes the reader by shared reference, as code that holds a
/// `Reader` would: the record and the domain key then stay in registers for the whole
/// batch. (Inside a closure that also captures the reader mutably, for the quiescent state
/// after the batch, the reader lives in memory, and every read reloads it after the
/// `Acquire` load of the previous one: work the C twin's thread-local does not do.)
///
/// # Safety
///
/// As [`read_value`], for guards of `reader`.
#[inline(never)]
unsafe fn read_batch<F: Flavor, const COUNT_POISON: bool>(reader: &Reader<F>, cell: &Cell) -> u64 {
    let mut acc = 0u64;
    for _ in 0..BATCH {
        let guard = reader.read_lock();
        // SAFETY: the caller's contract.
        let v = unsafe { read_value(cell, &guard) };
        acc = if COUNT_POISON {
            acc + u64::from(v == POISON)
        } else {
            acc.wrapping_add(v)
        };
    }
    acc
}

/// Free a payload (no-op for null).
///
/// # Safety
///
/// `p` is null or came from `Box::into_raw`, no thread can read it any more, and it is
/// freed once.
unsafe fn free_box(p: *mut TwinPayload) {
    if !p.is_null() {
        // SAFETY: the caller's contract.
        drop(unsafe { Box::from_raw(p) });
    }
}

static CALLED: AtomicU64 = AtomicU64::new(0);

impl<F: OurFlavor> Twin for Ours<F> {
    unsafe fn publish(&self, cell: &Cell, value: u64) {
        let fresh = Box::into_raw(Box::new(TwinPayload::new(value)));
        rcu_core::rcu_assign_pointer(cell, fresh);
    }

    unsafe fn reclaim(&self, cell: &Cell) {
        let p = cell.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: contract 1 (a `Box` from this twin) and 3 (no reader runs); the cell no
        // longer holds it, so it is freed once.
        unsafe { free_box(p) };
    }

    unsafe fn plain_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        let mut sum = 0u64;
        let mut c = for_budget(budget_ns, BATCH, || {
            for _ in 0..BATCH {
                // Acquire: as `rcu_dereference` (and C's `__atomic_load_n(ACQUIRE)`).
                let p = cell.load(Ordering::Acquire);
                // SAFETY: contract 1 (null or a live payload of ours) and the method's own
                // (no updater): the payload is freed only by `reclaim`, after this loop.
                if let Some(p) = unsafe { p.as_ref() } {
                    sum = sum.wrapping_add(p.value);
                }
            }
        });
        c.check = sum;
        c
    }

    unsafe fn read_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        let mut reader = self.domain.register();
        let mut sum = 0u64;
        let mut c = for_budget(budget_ns, BATCH, || {
            // SAFETY: the caller's contract; `reader` is of this twin's domain, the one its
            // updater synchronizes on.
            let s = unsafe { read_batch::<F, false>(&reader, cell) };
            sum = sum.wrapping_add(s);
            F::after_batch(&mut reader);
        });
        c.check = sum;
        c
    }

    unsafe fn read_loop_free_fns(&self, cell: &Cell, budget_ns: u64) -> Option<Counts> {
        // SAFETY: the caller's contract, which is the one `F`'s method requires.
        unsafe { F::read_loop_free_fns(cell, budget_ns) }
    }

    unsafe fn busy_reader(&self, cell: &Cell, ctl: &Control) -> Counts {
        let mut reader = self.domain.register();
        let mut poisoned = 0u64;
        ctl.arrive_and_wait_go();
        let mut c = until_stop(ctl, BATCH, || {
            // SAFETY: as in `read_loop`.
            poisoned += unsafe { read_batch::<F, true>(&reader, cell) };
            F::after_batch(&mut reader);
        });
        c.poisoned = poisoned;
        c
    }

    unsafe fn updater(&self, cell: &Cell, ctl: &Control) -> Counts {
        let mut poisoned: *mut TwinPayload = ptr::null_mut();
        let mut next = 1u64;
        ctl.arrive_and_wait_go();
        let c = until_stop(ctl, 1, || {
            let fresh = Box::into_raw(Box::new(TwinPayload::new(next)));
            next += 1;
            let old = rcu_xchg_pointer(cell, fresh);
            self.domain.synchronize();
            // SAFETY: `old` came from `Box::into_raw` (contract 1: `publish` or an earlier
            // update), is unpublished, and a grace period of this domain, which every reader
            // of `cell` uses (contract 2), has elapsed: only a reader with a too-short grace
            // period can still see it, and the volatile store (C: CMM_STORE_SHARED) is what
            // it would see.
            unsafe { ptr::write_volatile(ptr::addr_of_mut!((*old).value), POISON) };
            // SAFETY: `poisoned` (null at first) was unpublished one update ago, so two
            // grace periods have passed; it is forgotten right after, so freed once.
            unsafe { free_box(poisoned) };
            poisoned = old;
        });
        // SAFETY: as above: a grace period has passed since the last `old` was unpublished.
        unsafe { free_box(poisoned) };
        c
    }

    fn idle_reader(&self, wait: &mut dyn FnMut()) {
        let mut reader = self.domain.register();
        F::idle_around(&mut reader, wait);
    }

    fn sync_loop(&self, budget_ns: u64) -> Counts {
        for_budget(budget_ns, SYNC_BATCH, || {
            for _ in 0..SYNC_BATCH {
                self.domain.synchronize();
            }
        })
    }

    fn call_barrier(&self, n: u64) -> Counts {
        let mut reader = self.domain.register();
        let mut barrier = || self.domain.barrier();
        self.domain.call(|| {});
        F::idle_around(&mut reader, &mut barrier);
        // Relaxed: the counter is read after `barrier`, which orders the callbacks' work
        // before its return.
        CALLED.store(0, Ordering::Relaxed);

        let t0 = Instant::now();
        for i in 0..n {
            self.domain.call(|| {
                CALLED.fetch_add(1, Ordering::Relaxed);
            });
            if (i + 1) % BATCH == 0 {
                F::after_batch(&mut reader);
            }
        }
        F::idle_around(&mut reader, &mut barrier);
        let ns = t0.elapsed().as_nanos() as u64;
        Counts {
            ops: n,
            ns,
            poisoned: 0,
            check: CALLED.load(Ordering::Relaxed),
        }
    }
}
