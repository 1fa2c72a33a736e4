//! One trait, [`SharedValue`], and its implementations: our three flavors and the peers.
//!
//! Every implementation holds one [`Payload`] that readers read and one writer replaces.
//! Readers do the same work everywhere: enter a read-side critical section (or take a read
//! lock), load the pointer, read [`Payload::value`], leave. Writers retire old values the
//! way each implementation is meant to be used:
//!
//! | name | reader | writer |
//! |---|---|---|
//! | `memb`, `mb` | `Reader::read_lock` + `RcuBox::load` | `RcuBox::replace` (call_rcu) |
//! | `qsbr` | same, plus `quiescent_state()` every N reads | `RcuBox::replace` (call_rcu) |
//! | `crossbeam-epoch` | `epoch::pin()` + `Atomic::load` | `swap` + `Guard::defer_destroy` |
//! | `arc-swap` | `ArcSwap::load` | `ArcSwap::store` |
//! | `seize` | `Collector::enter` + `Guard::protect` | `swap` + `Collector::retire` |
//! | `std-rwlock`, `parking_lot-rwlock` | `read()` | `write()`, in place |
//! | `std-mutex` | `lock()` | `lock()`, in place |

use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rcu_core::{Domain, Flavor, Mb, Memb, Qsbr, RcuBox, Reader};

use crate::payload::{self, Payload};

/// Settings shared by every implementation (only some use each one).
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// QSBR readers announce a quiescent state after this many reads.
    pub qsbr_every: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { qsbr_every: 1024 }
    }
}

/// A shared value that many threads read and one thread replaces.
pub trait SharedValue: Send + Sync + Sized + 'static {
    /// The name used on the command line, in tables and in plots.
    const NAME: &'static str;
    /// Whether this is one of our flavors (as opposed to a peer).
    const OURS: bool;
    /// Per-thread read state; created on the thread that reads (it may be `!Send`).
    type Reader<'a>: ReadHandle
    where
        Self: 'a;
    /// The writer's state; created on the writing thread.
    type Writer<'a>: WriteHandle
    where
        Self: 'a;

    /// A new shared value holding `initial`.
    fn new(initial: u64, opts: &Options) -> Self;
    /// Register the calling thread as a reader.
    fn reader(&self) -> Self::Reader<'_>;
    /// A writer for the calling thread.
    fn writer(&self) -> Self::Writer<'_>;
    /// Free every retired value that can be freed once no reader or writer is active
    /// (called after all of them have finished; best effort, bounded by `timeout`).
    fn reclaim(&self, timeout: Duration) {
        let _ = timeout;
    }
    /// The implementation's own count of the largest backlog of retired values, if it keeps
    /// one (ours: `Stats::peak_backlog`).
    fn own_peak_backlog(&self) -> Option<u64> {
        None
    }
}

/// A reader: one complete read-side operation per call.
pub trait ReadHandle {
    /// Enter, load the pointer, read the field, leave; returns the field.
    fn read(&mut self) -> u64;
}

/// A writer: publish a new value.
pub trait WriteHandle {
    /// Publish `value`, retiring the old one the implementation's idiomatic way.
    fn write(&mut self, value: u64);
}

// ----- ours -----

/// An [`RcuBox`] in a private domain of flavor `F`.
pub struct Rcu<F: Flavor> {
    cell: RcuBox<Payload, F>,
    qsbr_every: u32,
}

/// A registered reader of an [`Rcu`] cell.
pub struct RcuReader<'a, F: Flavor> {
    cell: &'a RcuBox<Payload, F>,
    reader: Reader<F>,
    /// QSBR only: reads left before the next quiescent state.
    left: u32,
    every: u32,
}

/// The writer of an [`Rcu`] cell (`RcuBox::replace`).
pub struct RcuWriter<'a, F: Flavor> {
    cell: &'a RcuBox<Payload, F>,
}

impl<F: Flavor> Rcu<F> {
    /// The cell (for benches that use the rcu-core API directly).
    pub fn cell(&self) -> &RcuBox<Payload, F> {
        &self.cell
    }

    fn with_options(initial: u64, opts: &Options) -> Self {
        let domain: Domain<F> = Domain::new();
        Rcu {
            cell: RcuBox::new_in(Payload::new(initial), &domain),
            qsbr_every: opts.qsbr_every.max(1),
        }
    }

    fn make_reader(&self) -> RcuReader<'_, F> {
        RcuReader {
            cell: &self.cell,
            reader: self.cell.domain().register(),
            left: self.qsbr_every,
            every: self.qsbr_every,
        }
    }
}

impl<F: Flavor> WriteHandle for RcuWriter<'_, F> {
    #[inline]
    fn write(&mut self, value: u64) {
        self.cell.replace(Payload::new(value));
    }
}

impl ReadHandle for RcuReader<'_, Memb> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        let g = self.reader.read_lock();
        self.cell.load(&g).value
    }
}

impl ReadHandle for RcuReader<'_, Mb> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        let g = self.reader.read_lock();
        self.cell.load(&g).value
    }
}

impl ReadHandle for RcuReader<'_, Qsbr> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        let v = {
            let g = self.reader.read_lock();
            self.cell.load(&g).value
        };
        self.left -= 1;
        if self.left == 0 {
            self.left = self.every;
            self.reader.quiescent_state();
        }
        v
    }
}

macro_rules! ours {
    ($flavor:ty, $name:literal) => {
        impl SharedValue for Rcu<$flavor> {
            const NAME: &'static str = $name;
            const OURS: bool = true;
            type Reader<'a> = RcuReader<'a, $flavor>;
            type Writer<'a> = RcuWriter<'a, $flavor>;

            fn new(initial: u64, opts: &Options) -> Self {
                Self::with_options(initial, opts)
            }
            fn reader(&self) -> Self::Reader<'_> {
                self.make_reader()
            }
            fn writer(&self) -> Self::Writer<'_> {
                RcuWriter { cell: &self.cell }
            }
            fn reclaim(&self, _timeout: Duration) {
                self.cell.domain().barrier();
            }
            fn own_peak_backlog(&self) -> Option<u64> {
                Some(self.cell.domain().stats().peak_backlog)
            }
        }
    };
}

ours!(Memb, "memb");
ours!(Mb, "mb");
ours!(Qsbr, "qsbr");

// ----- crossbeam-epoch -----

/// `crossbeam_epoch::Atomic` with the default collector.
pub struct CrossbeamEpoch {
    atomic: crossbeam_epoch::Atomic<Payload>,
}

/// Reader of [`CrossbeamEpoch`] (`epoch::pin()` per read).
pub struct CrossbeamReader<'a>(&'a CrossbeamEpoch);
/// Writer of [`CrossbeamEpoch`] (`swap` + `defer_destroy`).
pub struct CrossbeamWriter<'a>(&'a CrossbeamEpoch);

impl SharedValue for CrossbeamEpoch {
    const NAME: &'static str = "crossbeam-epoch";
    const OURS: bool = false;
    type Reader<'a> = CrossbeamReader<'a>;
    type Writer<'a> = CrossbeamWriter<'a>;

    fn new(initial: u64, _opts: &Options) -> Self {
        CrossbeamEpoch {
            atomic: crossbeam_epoch::Atomic::new(Payload::new(initial)),
        }
    }
    fn reader(&self) -> Self::Reader<'_> {
        CrossbeamReader(self)
    }
    fn writer(&self) -> Self::Writer<'_> {
        CrossbeamWriter(self)
    }
    fn reclaim(&self, timeout: Duration) {
        // Garbage sits in thread-local bags (pushed to the global queue when a thread
        // exits) and is freed as the epoch advances; pinning and flushing from an otherwise
        // idle process advances it.
        let deadline = Instant::now() + timeout;
        while payload::live() > 1 && Instant::now() < deadline {
            crossbeam_epoch::pin().flush();
            std::thread::yield_now();
        }
    }
}

impl ReadHandle for CrossbeamReader<'_> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        let g = crossbeam_epoch::pin();
        let p = self.0.atomic.load(Ordering::Acquire, &g);
        // SAFETY: the pointer is never null (created non-null, only swapped for non-null
        // values) and values unlinked by the writer are destroyed through `defer_destroy`,
        // so not before `g` is dropped.
        unsafe { p.deref() }.value
    }
}

impl WriteHandle for CrossbeamWriter<'_> {
    #[inline]
    fn write(&mut self, value: u64) {
        let g = crossbeam_epoch::pin();
        let old = self.0.atomic.swap(
            crossbeam_epoch::Owned::new(Payload::new(value)),
            Ordering::AcqRel,
            &g,
        );
        // SAFETY: `old` is no longer reachable from the atomic, and pinned readers that
        // may still hold it keep it alive until their guards are dropped.
        unsafe { g.defer_destroy(old) };
    }
}

impl Drop for CrossbeamEpoch {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no reader or writer exists any more, so nobody else can
        // access the current value; it was allocated by `Owned::new`.
        unsafe {
            let cur = self
                .atomic
                .load(Ordering::Relaxed, crossbeam_epoch::unprotected());
            drop(cur.into_owned());
        }
    }
}

// ----- arc-swap -----

/// `arc_swap::ArcSwap` (`load` / `store`).
pub struct ArcSwapValue(arc_swap::ArcSwap<Payload>);

/// Reader and writer of [`ArcSwapValue`].
pub struct ArcSwapHandle<'a>(&'a ArcSwapValue);

impl SharedValue for ArcSwapValue {
    const NAME: &'static str = "arc-swap";
    const OURS: bool = false;
    type Reader<'a> = ArcSwapHandle<'a>;
    type Writer<'a> = ArcSwapHandle<'a>;

    fn new(initial: u64, _opts: &Options) -> Self {
        ArcSwapValue(arc_swap::ArcSwap::from_pointee(Payload::new(initial)))
    }
    fn reader(&self) -> Self::Reader<'_> {
        ArcSwapHandle(self)
    }
    fn writer(&self) -> Self::Writer<'_> {
        ArcSwapHandle(self)
    }
}

impl ReadHandle for ArcSwapHandle<'_> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        self.0 .0.load().value
    }
}

impl WriteHandle for ArcSwapHandle<'_> {
    #[inline]
    fn write(&mut self, value: u64) {
        self.0 .0.store(Arc::new(Payload::new(value)));
    }
}

// ----- seize -----

/// An `AtomicPtr` protected by a `seize::Collector`.
pub struct Seize {
    // Field order matters: `Drop` frees the current value, then the collector is dropped
    // and reclaims everything retired.
    ptr: AtomicPtr<Payload>,
    collector: seize::Collector,
}

/// Reader of [`Seize`] (`Collector::enter` + `Guard::protect`).
pub struct SeizeReader<'a>(&'a Seize);
/// Writer of [`Seize`] (`swap` + `Collector::retire`).
pub struct SeizeWriter<'a>(&'a Seize);

impl SharedValue for Seize {
    const NAME: &'static str = "seize";
    const OURS: bool = false;
    type Reader<'a> = SeizeReader<'a>;
    type Writer<'a> = SeizeWriter<'a>;

    fn new(initial: u64, _opts: &Options) -> Self {
        Seize {
            ptr: AtomicPtr::new(Box::into_raw(Box::new(Payload::new(initial)))),
            collector: seize::Collector::new(),
        }
    }
    fn reader(&self) -> Self::Reader<'_> {
        SeizeReader(self)
    }
    fn writer(&self) -> Self::Writer<'_> {
        SeizeWriter(self)
    }
}

impl ReadHandle for SeizeReader<'_> {
    #[inline(always)]
    fn read(&mut self) -> u64 {
        use seize::Guard;
        let g = self.0.collector.enter();
        let p = g.protect(&self.0.ptr, Ordering::Acquire);
        // SAFETY: never null; a value swapped out is retired through the collector, so it
        // is not reclaimed while `g` is active.
        unsafe { (*p).value }
    }
}

impl WriteHandle for SeizeWriter<'_> {
    #[inline]
    fn write(&mut self, value: u64) {
        let new = Box::into_raw(Box::new(Payload::new(value)));
        let old = self.0.ptr.swap(new, Ordering::AcqRel);
        // SAFETY: `old` is unreachable for threads that enter from now on, it came from
        // `Box::into_raw` (so `reclaim::boxed` is its reclaimer), and we never touch it again.
        unsafe { self.0.collector.retire(old, seize::reclaim::boxed) };
    }
}

impl Drop for Seize {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no guard or writer exists any more and the pointer came from
        // `Box::into_raw`; values retired earlier are freed by the collector's own drop.
        drop(unsafe { Box::from_raw(*self.ptr.get_mut()) });
    }
}

// ----- locks -----

/// `std::sync::RwLock`, written in place.
pub struct StdRwLock(RwLock<Payload>);
/// `parking_lot::RwLock`, written in place.
pub struct ParkingLotRwLock(parking_lot::RwLock<Payload>);
/// `std::sync::Mutex`, written in place.
pub struct StdMutex(Mutex<Payload>);

/// Reader and writer of the lock-based values.
pub struct LockHandle<'a, L>(&'a L);

macro_rules! lock_impl {
    ($ty:ident, $name:literal, $ctor:expr, |$l:ident| read $read:expr, write $write:expr) => {
        impl SharedValue for $ty {
            const NAME: &'static str = $name;
            const OURS: bool = false;
            type Reader<'a> = LockHandle<'a, $ty>;
            type Writer<'a> = LockHandle<'a, $ty>;

            fn new(initial: u64, _opts: &Options) -> Self {
                $ty($ctor(Payload::new(initial)))
            }
            fn reader(&self) -> Self::Reader<'_> {
                LockHandle(self)
            }
            fn writer(&self) -> Self::Writer<'_> {
                LockHandle(self)
            }
        }

        impl ReadHandle for LockHandle<'_, $ty> {
            #[inline(always)]
            fn read(&mut self) -> u64 {
                let $l = &(self.0).0;
                $read
            }
        }

        impl WriteHandle for LockHandle<'_, $ty> {
            #[inline]
            fn write(&mut self, value: u64) {
                let $l = &(self.0).0;
                $write.value = value;
            }
        }
    };
}

lock_impl!(StdRwLock, "std-rwlock", RwLock::new, |l| read l.read().unwrap_or_else(|e| e.into_inner()).value,
    write l.write().unwrap_or_else(|e| e.into_inner()));
lock_impl!(ParkingLotRwLock, "parking_lot-rwlock", parking_lot::RwLock::new, |l| read l.read().value,
    write l.write());
lock_impl!(StdMutex, "std-mutex", Mutex::new, |l| read l.lock().unwrap_or_else(|e| e.into_inner()).value,
    write l.lock().unwrap_or_else(|e| e.into_inner()));

// ----- dispatch by name -----

/// Every implementation's name, ours first.
pub const ALL: &[&str] = &[
    "memb",
    "mb",
    "qsbr",
    "crossbeam-epoch",
    "arc-swap",
    "seize",
    "std-rwlock",
    "parking_lot-rwlock",
    "std-mutex",
];

/// Whether `name` is one of our flavors.
pub fn is_ours(name: &str) -> bool {
    matches!(name, "memb" | "mb" | "qsbr")
}

/// Something to do with an implementation chosen by name at run time.
pub trait Visit {
    /// The result.
    type Output;
    /// Do it with implementation `S`.
    fn visit<S: SharedValue>(self) -> Self::Output;
}

/// Run `v` with the implementation called `name`; `None` if there is no such name.
pub fn visit<V: Visit>(name: &str, v: V) -> Option<V::Output> {
    Some(match name {
        "memb" => v.visit::<Rcu<Memb>>(),
        "mb" => v.visit::<Rcu<Mb>>(),
        "qsbr" => v.visit::<Rcu<Qsbr>>(),
        "crossbeam-epoch" => v.visit::<CrossbeamEpoch>(),
        "arc-swap" => v.visit::<ArcSwapValue>(),
        "seize" => v.visit::<Seize>(),
        "std-rwlock" => v.visit::<StdRwLock>(),
        "parking_lot-rwlock" => v.visit::<ParkingLotRwLock>(),
        "std-mutex" => v.visit::<StdMutex>(),
        _ => return None,
    })
}
