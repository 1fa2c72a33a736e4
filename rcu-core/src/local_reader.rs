//! [`Domain::read_lock`]: a read-side critical section of any domain, through a per-thread,
//! per-domain registration made on first use (what the free functions do for the two
//! default domains).
//!
//! # Design
//!
//! Each thread keeps a list of [`Entry`]s, one per domain it has read, each a heap
//! allocation (its address never changes) holding the thread's record in that domain, a
//! weak handle to the domain's grace-period state, and a count of the critical sections
//! open on it. A const thread-local without a destructor caches the last `(domain id,
//! entry)` used, so the fast path is one thread-local load and a compare: domain ids are
//! never reused, and a thread that reads a domain holds a handle to it, so a cached id can
//! only name a live entry (the cache is cleared before the list frees anything).
//!
//! The entries must not keep their domain alive: a domain ends when its last handle is
//! dropped, whatever threads have read it. So an entry holds a `Weak` reference, and the
//! domain's registry (and the record in it) may be freed while the entry survives; the
//! entry then never touches the record again. Entries of ended domains are pruned when the
//! thread adds a new one.
//!
//! # Soundness rules (see `docs::limitations`)
//!
//! - A record is unregistered only when no critical section is open on it (`nesting ==
//!   0`). A guard borrows a handle of its domain, so while a guard can still be dropped the
//!   domain, its registry and the record are alive.
//! - **Thread exit.** The list's destructor unregisters the idle entries. An entry with an
//!   open critical section (a leaked guard, or one held by a thread-local destroyed later)
//!   is *orphaned*: it stays registered, so grace periods keep waiting for that section,
//!   and the guard that closes its last section unregisters and frees it. A leaked guard
//!   therefore stalls grace periods forever (and the stall report names the thread):
//!   never a use-after-free.
//! - **Late thread-local destructors.** Once the list is destroyed, `read_lock` registers
//!   an orphaned entry for each outermost critical section, unregistered when it ends.
//! - **QSBR.** An implicit registration must never stall grace periods: a thread that read
//!   once and then idles (a pool thread waiting for work) would block every grace period
//!   forever. So a QSBR entry is online only while a critical section is open: the
//!   outermost `read_lock` comes online (a full barrier), the outermost unlock goes
//!   offline (another). The read side then costs what an `Mb` section costs; free QSBR
//!   reads need an explicit [`Reader`](crate::Reader) that announces quiescent states.

use core::cell::{Cell, RefCell};
use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::Deref;
use core::ptr::{self, NonNull};
use std::sync::Weak;

use crate::domain::Domain;
use crate::flavor::{self, Flavor};
use crate::grace_period::GracePeriods;
use crate::guard::ReadGuard;
use crate::record::Record;

/// What an entry needs of its domain when it holds no handle: unregistering its record.
trait Registrar {
    fn unregister(&self, rec: NonNull<Record>);
}

impl<F: Flavor> Registrar for GracePeriods<F> {
    fn unregister(&self, rec: NonNull<Record>) {
        GracePeriods::unregister(self, rec);
    }
}

/// This thread's registration with one domain.
///
/// Invariants: `rec` was registered with the domain `domain` points to, by this thread,
/// and stays registered until the entry is released; it is valid while that domain's
/// grace-period state is alive. `nesting` counts the guards of this entry not yet dropped.
/// Only the owning thread touches an entry.
struct Entry {
    id: u64,
    rec: NonNull<Record>,
    domain: Weak<dyn Registrar>,
    nesting: Cell<usize>,
    /// Not in the thread's list any more (thread teardown): the guard that closes its last
    /// critical section releases it.
    orphaned: Cell<bool>,
}

impl Entry {
    /// Register this thread with `domain`: idle (memb, mb) or offline (qsbr).
    fn register<F: Flavor>(domain: &Domain<F>, orphaned: bool) -> NonNull<Entry> {
        let rec = domain.gp.register();
        if F::STARTS_ONLINE {
            // QSBR records start online; ours is online only inside critical sections.
            // SAFETY: just registered by this thread with a live domain.
            flavor::qsbr_offline(unsafe { rec.as_ref() });
        }
        let weak: Weak<dyn Registrar> = crate::sync::Arc::downgrade(&domain.gp) as Weak<_>;
        NonNull::from(Box::leak(Box::new(Entry {
            id: domain.gp.id,
            rec,
            domain: weak,
            nesting: Cell::new(0),
            orphaned: Cell::new(orphaned),
        })))
    }

    /// Unregister (if the domain still exists) and free the entry.
    ///
    /// # Safety
    ///
    /// 1. `entry` came from [`Entry::register`], is owned by the caller (out of the list,
    ///    or orphaned and this is its last guard) and is not used afterwards.
    /// 2. No critical section is open on it, or its domain has ended.
    unsafe fn release(entry: NonNull<Entry>) {
        // SAFETY: contract 1: the allocation from `register`, freed once, here.
        let e = unsafe { Box::from_raw(entry.as_ptr()) };
        if let Some(domain) = e.domain.upgrade() {
            // The domain is alive (we hold it), so is the record; no section is open on it
            // (contract 2), so nothing it protected can still be read through it.
            domain.unregister(e.rec);
        } else {
            // The domain ended and freed the record: only forget it in this thread's list
            // of registrations (by address and domain; the record is not touched), which
            // would otherwise grow with every domain the thread has read.
            crate::misuse::unregistered(e.id, e.rec.as_ptr());
        }
    }
}

/// This thread's entries; its destructor unregisters them at thread exit.
struct Entries {
    list: RefCell<Vec<NonNull<Entry>>>,
}

impl Drop for Entries {
    fn drop(&mut self) {
        // The cache points into the list: forget it first.
        LAST.with(|l| l.set((0, ptr::null())));
        for entry in self.list.get_mut().drain(..) {
            // SAFETY: entries in the list are live and ours.
            let e = unsafe { entry.as_ref() };
            if e.nesting.get() == 0 {
                // SAFETY: out of the list, no section open (contracts 1 and 2).
                unsafe { Entry::release(entry) };
            } else {
                // A critical section outlives the list: keep the record registered (grace
                // periods wait for it); its last guard releases the entry.
                e.orphaned.set(true);
            }
        }
    }
}

std::thread_local! {
    /// The last `(domain id, entry)` read by this thread (0: none). No destructor: usable
    /// in every thread-local destructor.
    static LAST: Cell<(u64, *const Entry)> = const { Cell::new((0, ptr::null())) };
    static ENTRIES: Entries = const { Entries { list: RefCell::new(Vec::new()) } };
}

/// This thread's entry for `domain`, registering on first use; an orphaned one, good for
/// one outermost critical section, once the thread's list is destroyed.
#[cold]
#[inline(never)]
fn entry_slow<F: Flavor>(domain: &Domain<F>) -> NonNull<Entry> {
    let id = domain.gp.id;
    let found = ENTRIES.try_with(|entries| {
        let mut list = entries.list.borrow_mut();
        let live = |e: &NonNull<Entry>| {
            // SAFETY: entries in the list are live and ours.
            unsafe { e.as_ref() }
        };
        if let Some(&e) = list.iter().find(|e| live(e).id == id) {
            return e;
        }
        // Prune the idle entries of ended domains (their records went with the domain).
        LAST.with(|l| l.set((0, ptr::null())));
        list.retain(|e| {
            let entry = live(e);
            let ended = entry.domain.strong_count() == 0 && entry.nesting.get() == 0;
            if ended {
                // SAFETY: removed from the list here, no section open.
                unsafe { Entry::release(*e) };
            }
            !ended
        });
        let e = Entry::register(domain, false);
        list.push(e);
        e
    });
    match found {
        Ok(e) => {
            LAST.with(|l| l.set((id, e.as_ptr())));
            e
        }
        // A late thread-local destructor: the list is gone.
        Err(_) => Entry::register(domain, true),
    }
}

impl<F: Flavor> Domain<F> {
    /// Enter a read-side critical section of this domain from any thread, with no
    /// registration by hand: the thread is registered on first use (one registration per
    /// thread and domain, kept until the thread exits or the domain ends). Guards nest.
    /// Use [`Domain::register`] for a handle that reads without the thread-local lookup.
    ///
    /// For QSBR domains the thread is online only while a critical section is open, so a
    /// thread that read once and then idles never stalls grace periods; each outermost
    /// section then costs two full barriers (as an `Mb` one). For free QSBR reads register
    /// a [`Reader`](crate::Reader) and announce quiescent states.
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr, RcuBox};
    ///
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let cell = RcuBox::new_in(1u32, &domain);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| {
    ///         let guard = domain.read_lock(); // registers this thread on first use
    ///         assert_eq!(*cell.load(&guard), 1);
    ///     }); // the thread may now idle or exit: it holds up no grace period
    /// });
    /// cell.store(2);
    /// domain.synchronize();
    /// assert_eq!(*cell.load(&domain.read_lock()), 2);
    /// ```
    ///
    /// # Blocking
    ///
    /// Never, except that a thread's first call on a domain takes the domain's registry
    /// lock (held only briefly, never across a wait).
    ///
    /// # Panics
    ///
    /// If critical sections nest more than 65,535 deep (memb, mb).
    #[inline]
    pub fn read_lock(&self) -> DomainReadGuard<'_, F> {
        let id = self.gp.id;
        let (last, entry) = LAST.with(Cell::get);
        let entry = match NonNull::new(entry.cast_mut()) {
            Some(e) if last == id => e,
            _ => entry_slow(self),
        };
        // SAFETY: `entry` is this thread's entry for `self` (cached or just found), alive
        // while `self` is, as the guard's lifetime requires.
        unsafe { DomainReadGuard::enter(entry) }
    }
}

/// A read-side critical section opened by [`Domain::read_lock`]. Derefs to a
/// [`ReadGuard`], so RCU pointers load through it; neither `Send` nor `Sync`.
#[must_use = "dropping the guard immediately ends the critical section"]
pub struct DomainReadGuard<'d, F: Flavor> {
    guard: ManuallyDrop<ReadGuard<'d, F>>,
    entry: NonNull<Entry>,
}

impl<'d, F: Flavor> DomainReadGuard<'d, F> {
    /// Open a critical section on `entry`.
    ///
    /// # Safety
    ///
    /// `entry` is this thread's entry for a domain of flavor `F` whose handle is borrowed
    /// for `'d` (so its record stays valid for `'d`).
    #[inline]
    unsafe fn enter(entry: NonNull<Entry>) -> Self {
        // SAFETY: the caller's contract: a live entry, only used by this thread.
        let e = unsafe { entry.as_ref() };
        // SAFETY: the entry's record is valid while the domain is (`'d`, the contract).
        let rec: &'d Record = unsafe { e.rec.as_ref() };
        let n = e.nesting.get();
        if F::STARTS_ONLINE && n == 0 {
            // Online for the section: a full barrier, as a memb/mb outermost lock.
            flavor::qsbr_online(rec);
        }
        // SAFETY: `rec` is this thread's record (entries are per thread) and stays
        // registered while `nesting > 0`, which holds for as long as this guard lives.
        let guard = unsafe { ReadGuard::enter(rec) };
        e.nesting.set(n + 1);
        DomainReadGuard {
            guard: ManuallyDrop::new(guard),
            entry,
        }
    }
}

/// The outermost critical section of `entry` has ended: go offline (qsbr), and release the
/// entry if it is orphaned.
///
/// # Safety
///
/// `entry` is live, ours, and no critical section is open on it.
#[cold]
#[inline(never)]
unsafe fn last_section_ended<F: Flavor>(entry: NonNull<Entry>) {
    // SAFETY: the contract.
    let e = unsafe { entry.as_ref() };
    if F::STARTS_ONLINE {
        // SAFETY: the record is alive: the guard that just ended borrowed a domain handle.
        flavor::qsbr_offline(unsafe { e.rec.as_ref() });
    }
    if e.orphaned.get() {
        // SAFETY: orphaned (out of the list) and this was its last section.
        unsafe { Entry::release(entry) };
    }
}

impl<'d, F: Flavor> Deref for DomainReadGuard<'d, F> {
    type Target = ReadGuard<'d, F>;

    #[inline(always)]
    fn deref(&self) -> &ReadGuard<'d, F> {
        &self.guard
    }
}

impl<F: Flavor> Drop for DomainReadGuard<'_, F> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: dropped once, here, before the entry can be released below.
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        // SAFETY: the entry lives while a guard of it does (`nesting > 0`).
        let e = unsafe { self.entry.as_ref() };
        let n = e.nesting.get() - 1;
        e.nesting.set(n);
        if n == 0 && (F::STARTS_ONLINE || e.orphaned.get()) {
            // SAFETY: live, ours, and no section is open any more.
            unsafe { last_section_ended::<F>(self.entry) };
        }
    }
}

impl<F: Flavor> fmt::Debug for DomainReadGuard<'_, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DomainReadGuard")
            .field("flavor", &F::NAME)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::{Mb, Memb, Qsbr};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// This thread's entries.
    fn entries() -> usize {
        ENTRIES.with(|e| e.list.borrow().len())
    }

    fn nesting_and_unregistering_at_thread_exit<F: Flavor>() {
        let d: Domain<F> = Domain::new();
        let d2 = d.clone();
        // `join` (unlike a scope) returns after the thread's thread-local destructors.
        std::thread::spawn(move || {
            let a = d2.read_lock();
            let b = d2.read_lock(); // nested: the same entry
            assert_eq!(d2.stats().readers, 1);
            assert!(a.is_of(&d2) && b.is_of(&d2));
            drop(a); // out of order: `b` still protects
            assert!(d2.gp.blocking_hazard().is_some());
            drop(b);
            assert!(d2.gp.blocking_hazard().is_none());
        })
        .join()
        .unwrap();
        assert_eq!(d.stats().readers, 0, "thread exit unregisters");
    }

    #[test]
    fn nests_and_unregisters_at_thread_exit() {
        nesting_and_unregistering_at_thread_exit::<Memb>();
        nesting_and_unregistering_at_thread_exit::<Mb>();
        nesting_and_unregistering_at_thread_exit::<Qsbr>();
    }

    #[test]
    fn qsbr_entries_are_online_only_inside_sections() {
        let d: Domain<Qsbr> = Domain::new();
        let g = d.read_lock();
        // SAFETY: this thread's entry, alive while `d` is.
        let rec = unsafe { g.entry.as_ref().rec.as_ref() };
        assert_ne!(rec.ctr.load(Ordering::Relaxed), 0, "online inside");
        let inner = d.read_lock();
        drop(g);
        assert_ne!(rec.ctr.load(Ordering::Relaxed), 0, "still inside");
        drop(inner);
        assert_eq!(rec.ctr.load(Ordering::Relaxed), 0, "offline outside");
        d.synchronize(); // nothing to wait for, and no deadlock panic
    }

    #[test]
    fn the_last_domain_is_cached_and_others_are_found() {
        let (a, b): (Domain<Mb>, Domain<Mb>) = (Domain::new(), Domain::new());
        let ea = a.read_lock().entry;
        let eb = b.read_lock().entry;
        assert_ne!(ea, eb);
        assert_eq!(LAST.with(Cell::get), (b.gp.id, eb.as_ptr().cast_const()));
        assert_eq!(a.read_lock().entry, ea);
        assert_eq!(LAST.with(Cell::get), (a.gp.id, ea.as_ptr().cast_const()));
    }

    /// A thread that reads thousands of short-lived domains keeps entries only for the
    /// live ones (the others are pruned when it reads a new one).
    #[test]
    fn entries_of_ended_domains_are_pruned() {
        let before = entries();
        for _ in 0..if cfg!(miri) { 8 } else { 1000 } {
            let d: Domain<Memb> = Domain::new();
            drop(d.read_lock());
        }
        assert!(
            entries() <= before + 1,
            "{} entries kept",
            entries() - before
        );
    }

    /// ... and keeps no record of them in its list of registrations either (the list the
    /// deadlock checks scan).
    #[test]
    fn registrations_of_ended_domains_are_forgotten() {
        let before = crate::misuse::owned();
        for _ in 0..if cfg!(miri) { 8 } else { 1000 } {
            let d: Domain<Qsbr> = Domain::new();
            drop(d.read_lock());
        }
        let kept = crate::misuse::owned() - before;
        assert!(kept <= 1, "{kept} registrations of ended domains kept");
    }

    /// A domain that ends while the thread still has its entry: the thread exits later
    /// without touching the freed registry (Miri and ASan would see it).
    #[test]
    fn thread_exit_after_the_domain_ended() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let d: Domain<Qsbr> = Domain::new();
        let d2 = d.clone();
        let t = std::thread::spawn(move || {
            drop(d2.read_lock());
            drop(d2);
            ready_tx.send(()).unwrap();
            rx.recv().unwrap(); // the domain ends meanwhile
        });
        ready_rx.recv().unwrap();
        drop(d);
        tx.send(()).unwrap();
        t.join().unwrap();
    }

    /// A guard leaked on a thread that exits: its entry is orphaned, not unregistered, so
    /// grace periods keep waiting for it (the stall is the price of the leak).
    #[test]
    fn a_leaked_guard_keeps_its_thread_registered_after_exit() {
        let d: &'static Domain<Mb> = Box::leak(Box::new(
            Domain::builder()
                .stall_timeout(std::time::Duration::from_secs(3600))
                .build(),
        ));
        std::thread::spawn(move || core::mem::forget(d.read_lock()))
            .join()
            .unwrap();
        assert_eq!(
            d.stats().readers,
            1,
            "the leaked section's thread stays registered"
        );
        let cookie = d.get_state();
        assert!(!d.poll(cookie));
        assert!(d.gp.blocking_hazard().is_none(), "another thread's section");
    }

    std::thread_local! {
        /// Declared (and first used) before the entries, so destroyed after them.
        static LATE: core::cell::RefCell<Option<Late>> = const { core::cell::RefCell::new(None) };
    }

    /// What the late destructor saw, in order: the entries were already destroyed, the
    /// orphan still held its section open, a late read opened and closed a section.
    #[derive(Default)]
    struct Seen {
        entries_gone_first: AtomicBool,
        orphan_held: AtomicBool,
        late_read_held: AtomicBool,
        all_closed: AtomicBool,
    }

    /// Holds a guard of a `'static` domain into thread teardown, then reads again there.
    struct Late {
        domain: &'static Domain<Qsbr>,
        guard: Option<DomainReadGuard<'static, Qsbr>>,
        seen: Arc<Seen>,
    }

    impl Drop for Late {
        fn drop(&mut self) {
            let hazard = || self.domain.gp.blocking_hazard().is_some();
            let seen = &self.seen;
            let gone = ENTRIES.try_with(|_| ()).is_err();
            seen.entries_gone_first.store(gone, Ordering::SeqCst);
            // The orphaned entry still holds its section open (the thread is online).
            seen.orphan_held.store(hazard(), Ordering::SeqCst);
            drop(self.guard.take()); // the orphan's last section: released
                                     // A late read: a registration for this one section.
            let g = self.domain.read_lock();
            let inner = self.domain.read_lock();
            drop(g);
            seen.late_read_held.store(hazard(), Ordering::SeqCst);
            drop(inner);
            seen.all_closed.store(!hazard(), Ordering::SeqCst);
        }
    }

    /// A guard that outlives the thread's entries (held by a thread-local destroyed after
    /// them) keeps its section open until dropped, then releases its registration; reads
    /// in a late destructor get a registration for their section.
    #[test]
    fn guards_in_late_thread_local_destructors() {
        let d: &'static Domain<Qsbr> = Box::leak(Box::new(Domain::new()));
        let seen = Arc::new(Seen::default());
        let s2 = seen.clone();
        std::thread::spawn(move || {
            LATE.with(|l| {
                *l.borrow_mut() = Some(Late {
                    domain: d,
                    guard: None,
                    seen: s2,
                })
            });
            let g = d.read_lock(); // ENTRIES' destructor is registered after LATE's
            LATE.with(|l| l.borrow_mut().as_mut().unwrap().guard = Some(g));
        })
        .join()
        .unwrap();
        // Thread-local destructors run in reverse order of registration (glibc, and std's
        // own list elsewhere): the entries go first, then `Late`.
        assert!(seen.entries_gone_first.load(Ordering::SeqCst));
        assert!(
            seen.orphan_held.load(Ordering::SeqCst),
            "the orphan left its section"
        );
        assert!(
            seen.late_read_held.load(Ordering::SeqCst),
            "the late read was unprotected"
        );
        assert!(seen.all_closed.load(Ordering::SeqCst));
        assert_eq!(
            d.stats().readers,
            0,
            "the orphan and the late entries are released"
        );
        d.synchronize();
    }
}
