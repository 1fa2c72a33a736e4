//! What both twins implement ([`Twin`]) and what they share with the C side: the payload,
//! the counts a kernel reports and the start/stop protocol of the multi-threaded rows.
//! `benches/c/twin.h` declares the same three structs; a test compares their sizes.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Written by the updater into a value's field after the grace period, just before freeing
/// it: a reader that sees it was not protected by the grace period (`TWIN_POISON` in C).
pub const POISON: u64 = 0xdead_dead_dead_dead;
/// Reads per batch; QSBR readers announce a quiescent state after each (`TWIN_BATCH`).
pub const BATCH: u64 = 1024;
/// Synchronize calls per batch of the synchronize loop (`TWIN_SYNC_BATCH`).
pub const SYNC_BATCH: u64 = 64;

/// The RCU-protected value: 32 bytes, one field read (`struct twin_payload`).
#[repr(C)]
#[derive(Debug)]
pub struct TwinPayload {
    /// The field every reader reads and the updater poisons.
    pub value: u64,
    pad: [u64; 3],
}

impl TwinPayload {
    /// A payload holding `value` (the padding zeroed, as C's compound literal does).
    pub fn new(value: u64) -> Self {
        TwinPayload { value, pad: [0; 3] }
    }
}

/// The RCU-protected pointer (C: `struct twin_payload *`).
pub type Cell = AtomicPtr<TwinPayload>;

/// A null [`Cell`].
pub fn empty_cell() -> Cell {
    AtomicPtr::new(ptr::null_mut())
}

/// What one kernel reports (`struct twin_counts`).
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Reads, synchronize calls, updates or callbacks done.
    pub ops: u64,
    /// Nanoseconds they took, measured by the kernel around its own loop.
    pub ns: u64,
    /// Reads that saw [`POISON`]: too-short grace periods.
    pub poisoned: u64,
    /// The read loops' sum of the values read, or the callbacks that ran.
    pub check: u64,
}

impl Counts {
    /// Nanoseconds per operation.
    pub fn ns_per_op(&self) -> f64 {
        self.ns as f64 / self.ops.max(1) as f64
    }

    /// Operations per second.
    pub fn per_second(&self) -> f64 {
        self.ops as f64 * 1e9 / self.ns.max(1) as f64
    }
}

/// The start/stop protocol of the multi-threaded rows (`struct twin_control`): workers
/// register, [`arrive`](Self::arrive) and wait for `go`; the harness waits until all have
/// arrived, says go, lets them run, and says stop.
#[repr(C)]
#[derive(Debug, Default)]
pub struct Control {
    ready: AtomicU32,
    go: AtomicU32,
    stop: AtomicU32,
}

impl Control {
    /// A worker is registered and about to wait for `go` (or, an idle reader, to park).
    pub fn arrive(&self) {
        // Release: the harness's Acquire in `wait_ready` sees the worker's registration.
        self.ready.fetch_add(1, Ordering::Release);
    }

    /// [`arrive`](Self::arrive), then wait (yielding) for `go` (C: `twin_arrive_and_wait_go`).
    pub fn arrive_and_wait_go(&self) {
        self.arrive();
        // Acquire: pairs with the Release in `go`.
        while self.go.load(Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
    }

    /// Whether the harness said stop (C: `twin_stopped`).
    #[inline(always)]
    pub fn stopped(&self) -> bool {
        // Relaxed: a flag; the results travel through `join`, which synchronises.
        self.stop.load(Ordering::Relaxed) != 0
    }

    /// Wait (yielding) until `n` workers have arrived; false after `timeout` (a worker died
    /// or hangs before arriving), having said go and stop so that the others leave.
    pub fn wait_ready(&self, n: u32, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        // Acquire: pairs with the Release in `arrive`.
        while self.ready.load(Ordering::Acquire) < n {
            if Instant::now() > deadline {
                self.stop();
                self.go();
                return false;
            }
            std::thread::yield_now();
        }
        true
    }

    /// Start the workers' timed loops.
    pub fn go(&self) {
        // Release: pairs with the Acquire in `arrive_and_wait_go`.
        self.go.store(1, Ordering::Release);
    }

    /// End them.
    pub fn stop(&self) {
        // Relaxed: see `stopped`.
        self.stop.store(1, Ordering::Relaxed);
    }
}

/// One twin (language) of one flavor: the kernels the harness runs, each on a thread the
/// harness creates. A value is fresh state for one measurement (ours: a new domain;
/// liburcu's state is per flavor and process-wide).
///
/// Every kernel registers what it needs and unregisters it before returning (or
/// unwinding).
///
/// # Safety
///
/// The methods that take a `cell` dereference and free what it points to. Their callers
/// promise, and the implementations rely on:
///
/// 1. `cell` holds null or a payload that `publish` or `updater` of this same twin value
///    stored (the twins allocate differently, and a payload is freed only after a grace
///    period of this twin's domain);
/// 2. while methods run on `cell`, nothing else writes it but at most one `updater`, and
///    all of them are called on this same twin value;
/// 3. `reclaim` runs only when no other method runs on `cell`.
pub trait Twin: Sync {
    /// Allocate a payload holding `value` and publish it in `cell`.
    ///
    /// # Safety
    ///
    /// The trait's contract; `cell` is null (nothing is freed).
    unsafe fn publish(&self, cell: &Cell, value: u64);
    /// Free the published payload.
    ///
    /// # Safety
    ///
    /// The trait's contract (item 3).
    unsafe fn reclaim(&self, cell: &Cell);
    /// The read loop without RCU: acquire load, field read (0 for null); sums the values.
    ///
    /// # Safety
    ///
    /// The trait's contract, and no `updater` runs on `cell` (nothing protects this loop).
    unsafe fn plain_loop(&self, cell: &Cell, budget_ns: u64) -> Counts;
    /// The read loop through a registered reader handle (C: liburcu's only API).
    ///
    /// # Safety
    ///
    /// The trait's contract.
    unsafe fn read_loop(&self, cell: &Cell, budget_ns: u64) -> Counts;
    /// The read loop through the C-named free functions on the default domain; `None`
    /// where the flavor has none (our mb).
    ///
    /// # Safety
    ///
    /// The trait's contract, and no `updater` runs on `cell` (ours reads through the
    /// default domain, whose grace periods the updater does not wait for).
    unsafe fn read_loop_free_fns(&self, cell: &Cell, budget_ns: u64) -> Option<Counts>;
    /// Register, arrive, wait for go, read until stop counting poisoned reads, unregister.
    ///
    /// # Safety
    ///
    /// The trait's contract.
    unsafe fn busy_reader(&self, cell: &Cell, ctl: &Control) -> Counts;
    /// Arrive, wait for go, then swap + synchronize + poison + free until stop.
    ///
    /// # Safety
    ///
    /// The trait's contract.
    unsafe fn updater(&self, cell: &Cell, ctl: &Control) -> Counts;
    /// Register (QSBR: and go offline), call `wait`, unregister.
    fn idle_reader(&self, wait: &mut dyn FnMut());
    /// Synchronize in a loop from an unregistered thread for `budget_ns`.
    fn sync_loop(&self, budget_ns: u64) -> Counts;
    /// `n` call_rcu of a counting callback, then a barrier; `check` = callbacks run.
    fn call_barrier(&self, n: u64) -> Counts;
}

/// Makes a fresh [`Twin`] for one measurement.
pub type MakeTwin = fn() -> Box<dyn Twin>;
