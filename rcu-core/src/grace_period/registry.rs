//! The reader registry: the records a grace period scans.
//!
//! Records live in slots on an append-only, lock-free list, newest first. A slot is never
//! freed before the domain: a reader that unregisters frees its slot for the next
//! registration instead. So a grace period scans the records without a lock, an
//! allocation or a reference count: it follows `next` links that never change once
//! published, and reads only each record's atomics. Claiming and freeing slots, and the
//! per-slot facts that stall reports print (thread id and name), are serialised by one
//! mutex that is never held across a wait.
//!
//! `count` (registered readers) lets a grace period see "nobody is registered" with one
//! load: registration increments it and then executes a full barrier before the reader's
//! first critical section, so a grace period that executes a full barrier and then reads 0
//! has either seen the registration or is seen by every critical section that follows it
//! (store buffering, with fences on both sides).

use core::cell::UnsafeCell;
use core::ptr::{self, NonNull};
use std::thread::ThreadId;
use std::time::Duration;

use crossbeam_utils::CachePadded;

use super::stall::StalledReader;
use crate::record::{Record, Waker};
use crate::sync::{fence, lock, AtomicPtr, AtomicU64, AtomicUsize, Mutex, Ordering};

/// Who holds a slot (under the registry mutex).
struct Holder {
    in_use: bool,
    owner: ThreadId,
    name: Option<String>,
}

struct Slot {
    rec: CachePadded<Record>,
    /// The next (older) slot; never changes once the slot is published.
    next: *const Slot,
    /// Written only under the registry mutex; read under it.
    holder: UnsafeCell<Holder>,
}

pub(crate) struct Registry {
    /// Serialises claiming and freeing slots and reading `holder`s.
    lock: Mutex<()>,
    /// The newest slot (Release on publication, Acquire when scanning).
    head: AtomicPtr<Slot>,
    /// Registered readers.
    count: AtomicUsize,
}

// SAFETY: the slots are shared by design: their records are `Sync` (see `Record`), `next` is
// immutable once published, and `holder` is only touched under `lock`. The registry owns the
// slots (it frees them in `Drop`, when nobody else can reach them).
unsafe impl Send for Registry {}
// SAFETY: as for `Send`.
unsafe impl Sync for Registry {}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            lock: Mutex::new(()),
            head: AtomicPtr::new(ptr::null_mut()),
            count: AtomicUsize::new(0),
        }
    }

    /// The slots, newest first. A slot published after the first load is not visited.
    fn slots(&self) -> impl Iterator<Item = &Slot> {
        // Acquire: pairs with the Release publication of each slot (its record and `next`
        // are initialised).
        let mut s = self.head.load(Ordering::Acquire).cast_const();
        core::iter::from_fn(move || {
            // SAFETY: slots are never freed while the registry lives (`&self`), and a
            // published slot is fully initialised.
            let slot = unsafe { s.as_ref()? };
            s = slot.next;
            Some(slot)
        })
    }

    /// Register the calling thread: claim a free slot (or a new one) and run `init` on its
    /// record under the registry mutex. The record stays valid while the registry lives.
    pub(crate) fn claim(
        &self,
        gp: &AtomicU64,
        waker: &Waker,
        init: impl FnOnce(&Record),
    ) -> NonNull<Record> {
        let t = std::thread::current();
        let holder = Holder {
            in_use: true,
            owner: t.id(),
            name: t.name().map(str::to_owned),
        };
        let _held = lock(&self.lock);
        let free = self.slots().find(|s| {
            // SAFETY: `holder` is only touched under the mutex, which we hold.
            !unsafe { &*s.holder.get() }.in_use
        });
        let slot = match free {
            Some(slot) => {
                // SAFETY: under the mutex; the slot is free, so no reader uses its record's
                // owner-only state (the previous owner's last use happened before it freed
                // the slot under this mutex).
                unsafe { *slot.holder.get() = holder };
                // Relaxed: a waiting leader re-checks `ctr` after its barrier (pairing 3).
                slot.rec.waiting.store(false, Ordering::Relaxed);
                slot.rec.nesting.set(0);
                slot
            }
            None => {
                let slot = Box::into_raw(Box::new(Slot {
                    rec: CachePadded::new(Record::new(gp, waker, 0)),
                    next: self.head.load(Ordering::Relaxed),
                    holder: UnsafeCell::new(holder),
                }));
                // Release: scanners that Acquire-load the head see the slot initialised.
                // Relaxed load above: new slots are only pushed under the mutex.
                self.head.store(slot, Ordering::Release);
                // SAFETY: just published; never freed while the registry lives.
                unsafe { &*slot }
            }
        };
        init(&slot.rec);
        // Then a full barrier before this reader's first critical section (see the
        // module docs): a grace period that reads a count of 0 after its own barrier
        // is seen by that critical section.
        self.count.fetch_add(1, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        NonNull::from(&*slot.rec)
    }

    /// Free `rec`'s slot (its thread has left, or leaves, every critical section).
    pub(crate) fn release(&self, rec: NonNull<Record>) {
        let _held = lock(&self.lock);
        if let Some(slot) = self.slots().find(|s| ptr::eq(&*s.rec, rec.as_ptr())) {
            // SAFETY: under the mutex.
            unsafe { (*slot.holder.get()).in_use = false };
            // Release: a grace period that Acquire-reads the decremented count sees this
            // reader's last critical section (ended before its unregistration) as done.
            self.count.fetch_sub(1, Ordering::Release);
        }
    }

    /// Registered readers. Acquire: see `release`.
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Whether no record is inside a critical section (or online, for qsbr). The caller
    /// has executed a full barrier after unpublishing; each Acquire load pairs with the
    /// reader's Release store of 0, so a reader seen idle has finished with what was
    /// unpublished.
    pub(crate) fn all_idle(&self) -> bool {
        self.slots().all(|s| s.rec.ctr.load(Ordering::Acquire) == 0)
    }

    /// Call `wait` on every record that holds up the grace period that set the counter to
    /// `new`. No lock is held: readers may register, unregister or exit meanwhile (a slot
    /// reused by another thread shows a snapshot taken after the bump, which does not
    /// block).
    pub(crate) fn for_each_blocking(&self, new: u64, mut wait: impl FnMut(&Record)) {
        for s in self.slots() {
            // Acquire: pairs with the reader's Release store of 0 / of a newer snapshot, so
            // its critical sections happen-before whatever the caller frees next.
            if Record::blocks(s.rec.ctr.load(Ordering::Acquire), new) {
                wait(&s.rec);
            }
        }
    }

    /// The readers holding up the grace period that set the counter to `new`, for a stall
    /// report.
    pub(crate) fn stalled(&self, new: u64, waited: Duration) -> Vec<StalledReader> {
        let _held = lock(&self.lock);
        self.slots()
            .filter(|s| Record::blocks(s.rec.ctr.load(Ordering::Acquire), new))
            .map(|s| {
                // SAFETY: under the mutex.
                let h = unsafe { &*s.holder.get() };
                StalledReader {
                    thread_name: h.name.clone(),
                    thread_id: h.owner,
                    blocked_for: waited,
                }
            })
            .collect()
    }

    /// The records held by thread `me` (for misuse checks when that thread's own list of
    /// records is gone: late thread-local destructors).
    pub(crate) fn owned_by(&self, me: ThreadId) -> Vec<NonNull<Record>> {
        let _held = lock(&self.lock);
        self.slots()
            .filter(|s| {
                // SAFETY: under the mutex.
                let h = unsafe { &*s.holder.get() };
                h.in_use && h.owner == me
            })
            .map(|s| NonNull::from(&*s.rec))
            .collect()
    }

    /// Hold the registry mutex (across a fork).
    #[cfg(not(loom))]
    pub(crate) fn hold(&self) -> crate::sync::MutexGuard<'_, ()> {
        lock(&self.lock)
    }

    /// In a fork child: only `me` exists; free every other thread's slot.
    #[cfg(not(loom))]
    pub(crate) fn keep_only(&self, me: ThreadId) {
        let _held = lock(&self.lock);
        for s in self.slots() {
            // SAFETY: under the mutex.
            let h = unsafe { &mut *s.holder.get() };
            // Relaxed: the child has one thread; no leader is waiting.
            s.rec.waiting.store(false, Ordering::Relaxed);
            if h.in_use && h.owner != me {
                h.in_use = false;
                s.rec.ctr.store(0, Ordering::Relaxed);
                self.count.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // Relaxed: `&mut self`, nobody else can reach the slots.
        let mut s = self.head.load(Ordering::Relaxed);
        while !s.is_null() {
            // SAFETY: every slot came from `Box::into_raw` and is freed once, here.
            let slot = unsafe { Box::from_raw(s) };
            s = slot.next.cast_mut();
        }
    }
}
