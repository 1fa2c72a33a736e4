//! A thread's registration with one default domain: registered on first use, unregistered
//! at thread exit by a thread-local destructor, and kept (never freed under a live guard)
//! when a critical section outlives that destructor.
//!
//! Two thread-locals per default domain: a const `Cell` holding the record pointer (no
//! destructor, so the read-side fast path has no lazy-initialisation check and the pointer
//! stays readable in every destructor) and an [`Owner`] that holds the `Reader` and has the
//! destructor. Thread-local destructors run in an unspecified order, so other thread-locals
//! may hold guards after the `Owner` is gone; the flavor's [`Teardown`] policy decides what
//! keeps their record alive.

use core::cell::{Cell, RefCell};
use core::ptr;
use std::sync::atomic::{AtomicPtr, Ordering};
use std::thread::LocalKey;

use crate::domain::Domain;
use crate::flavor::Flavor;
use crate::reader::Reader;
use crate::record::Record;

/// A process-wide default domain, created on first use and never freed.
///
/// Not a `LazyLock`: a child forked while another thread was creating the domain would wait
/// forever for that vanished thread. Threads that race here each build a domain; one is
/// installed, the others are dropped unused.
pub(crate) struct DefaultDomain<F: Flavor> {
    ptr: AtomicPtr<Domain<F>>,
}

impl<F: Flavor> DefaultDomain<F> {
    pub(crate) const fn new() -> Self {
        DefaultDomain {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The domain, created on first use.
    #[inline]
    pub(crate) fn get(&self) -> &'static Domain<F> {
        // Acquire: pairs with the Release exchange in `create` (the domain is initialised).
        let p = self.ptr.load(Ordering::Acquire);
        if p.is_null() {
            return self.create();
        }
        // SAFETY: a non-null pointer is an installed domain, leaked (never freed).
        unsafe { &*p }
    }

    #[cold]
    #[inline(never)]
    fn create(&self) -> &'static Domain<F> {
        let new = Box::into_raw(Box::new(Domain::new()));
        // AcqRel: publish ours (Release), or see the winner's (Acquire).
        match self
            .ptr
            .compare_exchange(ptr::null_mut(), new, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: installed and never freed.
            Ok(_) => unsafe { &*new },
            Err(winner) => {
                // SAFETY: `new` lost the race and was never shared: free it.
                drop(unsafe { Box::from_raw(new) });
                // SAFETY: the installed domain, never freed.
                unsafe { &*winner }
            }
        }
    }
}

/// What a default domain does at thread teardown.
pub(crate) struct Teardown<F: Flavor> {
    /// Whether a critical section of the free functions is open on this thread.
    pub(crate) in_section: fn(&Reader<F>) -> bool,
    /// Keep `reader` registered beyond its `Owner` (a guard still needs it, or a late
    /// destructor registered anew); the record pointer cell keeps pointing at it.
    pub(crate) keep: fn(Reader<F>),
    /// Called once when the `Owner` is destroyed, before it looks at its reader.
    pub(crate) owner_gone: fn(),
}

/// Per-thread registration with one default domain.
///
/// `domain` is a raw pointer to a `static` (written `&DEFAULT` at the definition, a
/// coercion) rather than a reference: the `Owner` thread-locals' `const` initialisers
/// refer to their `Slot`, and before Rust 1.90 a constant could not reach memory with
/// interior mutability (the domain's `AtomicPtr`) through references. Raw pointers are not
/// followed, so the crate builds on its stated MSRV (1.83).
pub(crate) struct Slot<F: Flavor> {
    pub(crate) rec: &'static LocalKey<Cell<*const Record>>,
    pub(crate) owner: &'static LocalKey<Owner<F>>,
    pub(crate) domain: *const DefaultDomain<F>,
    pub(crate) teardown: Teardown<F>,
}

// SAFETY: `domain` points to a `static DefaultDomain` (never freed, and `Sync`: an
// `AtomicPtr` to a `Domain`, which is `Sync`); every other field is a shared reference to a
// `Sync` value or a function pointer. So sharing a `Slot` shares only `Sync` data.
unsafe impl<F: Flavor> Sync for Slot<F> {}

/// Owns the thread's `Reader`; unregisters it at thread exit unless a critical section is
/// still open (a leaked guard, or one held by a thread-local destroyed later).
pub(crate) struct Owner<F: Flavor> {
    pub(crate) reader: RefCell<Option<Reader<F>>>,
    pub(crate) slot: &'static Slot<F>,
}

impl<F: Flavor> Drop for Owner<F> {
    fn drop(&mut self) {
        // First: the flavor's fast paths must stop trusting the record pointer before it is
        // cleared and the reader freed below (qsbr: `OFF` and `TEARDOWN`).
        (self.slot.teardown.owner_gone)();
        if let Some(reader) = self.reader.get_mut().take() {
            if (self.slot.teardown.in_section)(&reader) {
                // Grace periods keep waiting (and report the stall) rather than free what
                // that guard protects.
                (self.slot.teardown.keep)(reader);
            } else {
                let _ = self.slot.rec.try_with(|r| r.set(ptr::null()));
                drop(reader);
            }
        }
    }
}

/// This thread's record in `slot`'s domain, registering on first use: the read-side fast
/// path of the free functions. `rec` is the slot's own cell, passed as a constant so that
/// the optimiser sees the thread-local directly (not through the slot's `&LocalKey`).
#[inline(always)]
pub(crate) fn current_record<F: Flavor>(
    rec: &'static LocalKey<Cell<*const Record>>,
    slot: &'static Slot<F>,
) -> &'static Record {
    let p = rec.with(Cell::get);
    let p = if p.is_null() { slot.register_slow() } else { p };
    // SAFETY: as in `Slot::record`: a non-null pointer is this thread's live record.
    unsafe { &*p }
}

impl<F: Flavor> Slot<F> {
    /// This thread's record, registering on first use.
    #[inline(always)]
    pub(crate) fn record(&self) -> &'static Record {
        let rec = self.rec.with(Cell::get);
        let rec = if rec.is_null() {
            self.register_slow()
        } else {
            rec
        };
        // SAFETY: non-null = the record of this thread's `Owner` reader or of a kept one,
        // cleared before that reader drops; 'static holds since guards are `!Send` and a
        // record with a live guard is never freed.
        unsafe { &*rec }
    }

    /// Register this thread (its record pointer is null).
    #[cold]
    #[inline(never)]
    pub(crate) fn register_slow(&self) -> *const Record {
        // SAFETY: `domain` points to a `static` (see `Slot`), valid for the whole program.
        let reader = unsafe { &*self.domain }.get().register();
        let p: *const Record = reader.rec();
        self.rec.with(|r| r.set(p));
        let mut reader = Some(reader);
        let _ = self
            .owner
            .try_with(|o| *o.reader.borrow_mut() = reader.take());
        if let Some(reader) = reader {
            // The owner thread-local is already destroyed (a late thread-local destructor).
            (self.teardown.keep)(reader);
        }
        p
    }

    /// Whether the `Owner` thread-local is destroyed (the thread is exiting).
    pub(crate) fn in_teardown(&self) -> bool {
        self.owner.try_with(|_| ()).is_err()
    }

    /// This thread's record, if registered.
    pub(crate) fn registered(&self) -> Option<&'static Record> {
        let rec = self.rec.with(Cell::get);
        // SAFETY: as in `record`.
        (!rec.is_null()).then(|| unsafe { &*rec })
    }

    /// Unregister this thread (`rcu_unregister_thread`).
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section (freeing the record would leave the guard
    /// dangling).
    pub(crate) fn unregister(&self, what: &str) {
        let reader = self.owner.try_with(|o| {
            let mut slot = o.reader.borrow_mut();
            if let Some(r) = slot.as_ref() {
                assert!(
                    !(self.teardown.in_section)(r),
                    "rcu: {what}() inside a read-side critical section"
                );
            }
            slot.take()
        });
        if let Ok(Some(reader)) = reader {
            self.rec.with(|r| r.set(ptr::null()));
            drop(reader);
        }
    }
}
