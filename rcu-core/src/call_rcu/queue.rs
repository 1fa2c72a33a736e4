//! The call_rcu queue: per-thread chunks handed to one worker thread per domain.
//!
//! # Design
//!
//! Each producer thread owns a [`Producer`] per domain (kept in a thread-local): a current
//! chunk of `CHUNK` inline entries that it fills without any atomic read-modify-write. An
//! entry is published by a `Release` store of the chunk's `published` count. A full chunk
//! is replaced by a fresh one and pushed on the producer's `sealed` stack; at thread exit
//! the partial chunk is sealed the same way. Enqueueing is therefore wait-free and touches
//! only lines the producer owns (plus one read of the worker's `sleeping` flag).
//!
//! The single consumer (the worker, or `Core::drop`) takes a *snapshot*: for every
//! producer it takes the whole sealed stack (`swap`, `Acquire`) and then reads `current`
//! (`Acquire`), recording for each chunk the range `taken..published`. Because a producer
//! stores its new `current` before pushing the old chunk, a chunk found on the sealed stack
//! can no longer be anybody's `current`, so no range is collected twice. Between those two
//! stores the old chunk is reachable from neither place; the producer's `seals` counter is
//! odd for that window and the consumer retakes its snapshot of that producer until no seal
//! overlapped it, so a snapshot never misses an entry published before it began (which
//! `barrier` relies on). After one grace
//! period the consumer runs the snapshot and advances each chunk's `taken`; a sealed chunk
//! whose entries have all run is recycled: the consumer resets it and pushes it on its
//! producer's `free` stack (at most `POOL` chunks per producer; beyond that, or once the
//! producer has exited, it is freed). The producer takes the whole free stack with one
//! `swap` when it needs a chunk, so a steady stream of callbacks reuses a few chunks that
//! are still in cache instead of faulting in fresh memory from `malloc` (and the worker's
//! frees do not contend with the producer's allocations on the allocator's locks).
//!
//! Callbacks of up to three words are stored inline (no allocation); larger closures are
//! boxed. `defer_drop(Box<T>)` is one pointer: inline.
//!
//! # Who frees a producer's chunks
//!
//! A producer is shared by its owner thread (through a thread-local) and its domain (the
//! consumer's list). Whichever of the two goes first hands the chunks to the other, through
//! `state`: the owner's exit seals its current chunk and marks the producer `OWNER_GONE`
//! (the consumer drains it, then drops it); the domain's end (after running every entry)
//! marks it `DOMAIN_GONE` and frees every chunk at once, leaving the owner only a small
//! struct that its thread-local prunes. The `SEALING` state closes the race between the two:
//! the owner claims the producer before sealing, and the domain's end waits (a few
//! instructions) for such a seal to finish.

use core::cell::{Cell, UnsafeCell};
use core::mem::{self, MaybeUninit};
use core::ptr::{self, NonNull};
use std::thread::ThreadId;

use crate::sync::{Arc, AtomicPtr, AtomicU64, AtomicU8, AtomicUsize, Ordering};

/// Producer states (see "Who frees a producer's chunks").
const OWNED: u8 = 0;
const SEALING: u8 = 1;
const OWNER_GONE: u8 = 2;
const DOMAIN_GONE: u8 = 3;

#[cfg(loom)]
pub(crate) const CHUNK: usize = 2;
#[cfg(not(loom))]
pub(crate) const CHUNK: usize = 256;

/// Drained chunks a producer keeps for reuse (its free stack plus its private spares):
/// 16 chunks are 4,096 callbacks, 128 KiB, one worker batch at full speed.
#[cfg(loom)]
const POOL: usize = 1;
#[cfg(not(loom))]
const POOL: usize = 16;

type Payload = MaybeUninit<[usize; 3]>;

/// One queued callback: a monomorphised trampoline and up to three words of closure.
pub(crate) struct Entry {
    run: unsafe fn(*mut Payload),
    data: Payload,
}

static_assertions::const_assert!(mem::size_of::<Entry>() <= 32);

impl Entry {
    pub(crate) fn new<C: FnOnce() + Send + 'static>(c: C) -> Entry {
        let mut e = MaybeUninit::<Entry>::uninit();
        // SAFETY: `e` is valid for writes of an `Entry`; `write` initialises `run`, and
        // `data` is `MaybeUninit`, so the entry is initialised afterwards.
        unsafe {
            Entry::write(e.as_mut_ptr(), c);
            e.assume_init()
        }
    }

    /// Build the entry for `c` directly at `dst`. Writing in place matters: a moved
    /// `Entry` is copied with 16-byte loads of bytes stored 8 at a time, and that store-to-
    /// load forwarding stall cost more than the rest of `call_rcu` together.
    ///
    /// # Safety
    /// `dst` is valid for writes of an `Entry` (its old contents are overwritten, not
    /// dropped).
    #[inline(always)]
    pub(crate) unsafe fn write<C: FnOnce() + Send + 'static>(dst: *mut Entry, c: C) {
        // SAFETY: per the contract `dst` is valid for writes; the field pointer comes from
        // it with `addr_of_mut!`, without creating a reference (so also below for `run`).
        let data = unsafe { ptr::addr_of_mut!((*dst).data) };
        if mem::size_of::<C>() <= mem::size_of::<Payload>()
            && mem::align_of::<C>() <= mem::align_of::<Payload>()
        {
            // SAFETY: the payload is large and aligned enough for `C` (checked just above),
            // and `run_inline::<C>` reads it back exactly once.
            unsafe {
                data.cast::<C>().write(c);
                ptr::addr_of_mut!((*dst).run).write(run_inline::<C>);
            }
        } else {
            let b = Box::into_raw(Box::new(c));
            // SAFETY: a pointer fits the payload; `run_boxed::<C>` reads it back once.
            unsafe {
                data.cast::<*mut C>().write(b);
                ptr::addr_of_mut!((*dst).run).write(run_boxed::<C>);
            }
        }
    }

    /// Run the callback, consuming it (its captures are dropped even if it panics).
    pub(crate) fn run(mut self) {
        // SAFETY: `self.run` was built for the closure type stored in `self.data`, which
        // has not been read yet (an `Entry` is run at most once: `run` takes it by value).
        unsafe { (self.run)(&mut self.data) }
    }
}

/// # Safety
/// `p` holds a live `C` written by `Entry::new`, not read before.
unsafe fn run_inline<C: FnOnce()>(p: *mut Payload) {
    // SAFETY: per the contract, `p` holds an initialised `C` that we now take ownership of.
    let c = unsafe { ptr::read(p.cast::<C>()) };
    c();
}

/// # Safety
/// `p` holds a `*mut C` from `Box::into_raw`, not read before.
unsafe fn run_boxed<C: FnOnce()>(p: *mut Payload) {
    // SAFETY: per the contract, `p` holds a pointer from `Box::into_raw`, read once.
    let b = unsafe { Box::from_raw(ptr::read(p.cast::<*mut C>())) };
    b();
}

/// A block of entries filled by one producer.
pub(crate) struct Chunk {
    /// Entries `0..published` are initialised (Release by the producer, Acquire by the
    /// consumer).
    published: AtomicUsize,
    /// Entries `0..taken` have been run (consumer only).
    taken: Cell<usize>,
    /// Link in the producer's sealed (or free) stack. A `Cell`: the consumer holds a `&Chunk`
    /// to a producer's current chunk while the producer may seal it and write this link
    /// (the consumer reads it only after taking the chunk off a stack).
    next: Cell<*mut Chunk>,
    entries: [UnsafeCell<MaybeUninit<Entry>>; CHUNK],
}

impl Chunk {
    fn alloc() -> *mut Chunk {
        Box::into_raw(Box::new(Chunk {
            published: AtomicUsize::new(0),
            taken: Cell::new(0),
            next: Cell::new(ptr::null_mut()),
            entries: [const { UnsafeCell::new(MaybeUninit::uninit()) }; CHUNK],
        }))
    }
}

/// A thread's queue of callbacks for one domain.
pub(crate) struct Producer {
    /// The chunk being filled: written by the owner, read by the consumer.
    current: AtomicPtr<Chunk>,
    /// Stack of sealed chunks (owner pushes, consumer takes all).
    sealed: AtomicPtr<Chunk>,
    /// Stack of drained, reset chunks (consumer pushes, owner takes all).
    free: AtomicPtr<Chunk>,
    /// Chunks on `free` plus in `spare`; the consumer recycles only below `POOL`.
    pooled: AtomicUsize,
    /// The owner's private list of chunks taken from `free` (owner only).
    spare: Cell<*mut Chunk>,
    /// Seal sequence: odd while `seal_current` is moving a chunk from `current` to
    /// `sealed` (the chunk is then reachable from neither), even otherwise. Owner writes.
    seals: AtomicU64,
    /// Callbacks queued so far (owner writes, anyone reads; for statistics).
    pub(crate) queued: AtomicU64,
    /// `OWNED`, `SEALING`, `OWNER_GONE` or `DOMAIN_GONE`.
    state: AtomicU8,
    /// The owner thread (for the fork child's repair).
    #[cfg_attr(loom, allow(dead_code))]
    owner: ThreadId,
}

// SAFETY: all fields but `spare` and `owner` are atomics; `owner` is immutable; `spare` is
// touched only by the owner thread, or by the domain's end once `state` is `DOMAIN_GONE`
// (after which the owner never touches it), or by `Drop` (exclusive access). The chunks are
// accessed by the owner thread (entries beyond `published`, chunks on `spare`) and the single
// consumer (entries below `published`, `taken`, chunks it is recycling) under the protocol
// described in the module docs.
unsafe impl Send for Producer {}
// SAFETY: as for `Send`.
unsafe impl Sync for Producer {}

impl Producer {
    pub(crate) fn new() -> Self {
        Producer {
            current: AtomicPtr::new(ptr::null_mut()),
            sealed: AtomicPtr::new(ptr::null_mut()),
            free: AtomicPtr::new(ptr::null_mut()),
            pooled: AtomicUsize::new(0),
            spare: Cell::new(ptr::null_mut()),
            seals: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            state: AtomicU8::new(OWNED),
            owner: std::thread::current().id(),
        }
    }

    /// A producer whose owner is gone from the start: `e` sealed in it, for a thread whose
    /// thread-local queue is already destroyed (a late thread-local destructor).
    pub(crate) fn orphan(e: Entry) -> Self {
        let p = Producer::new();
        p.push(e);
        p.seal_current(ptr::null_mut());
        // Relaxed: the producer is not shared yet; publishing it (under the domain's
        // producers lock) orders this store.
        p.state.store(OWNER_GONE, Ordering::Relaxed);
        p
    }

    /// The owner thread is exiting: seal the current chunk for the consumer, unless the
    /// domain is already gone. Owner thread only (its thread-local destructor).
    pub(crate) fn owner_exit(&self) {
        // Acquire (failure): a `DOMAIN_GONE` read here comes after the domain's end, which
        // freed the chunks; there is nothing to do. AcqRel (success): claims the producer.
        if self
            .state
            .compare_exchange(OWNED, SEALING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.seal_current(ptr::null_mut());
            // Release: the consumer's Acquire load of `OWNER_GONE` sees the final seal.
            self.state.store(OWNER_GONE, Ordering::Release);
        }
    }

    /// Whether the owner has exited (everything it will ever publish is published).
    pub(crate) fn owner_gone(&self) -> bool {
        // Acquire: pairs with the Release store in `owner_exit`.
        self.state.load(Ordering::Acquire) == OWNER_GONE
    }

    /// Whether the domain has ended (the owner's thread-local may drop this producer).
    pub(crate) fn domain_gone(&self) -> bool {
        // Relaxed: only ever used to prune a thread-local entry; the chunks were freed by the
        // domain's end, which this thread does not touch.
        self.state.load(Ordering::Relaxed) == DOMAIN_GONE
    }

    /// The domain has ended and every published entry has run: free the chunks now, unless
    /// the owner is gone too (then `Drop` frees them with the last reference).
    ///
    /// # Safety
    /// The caller is the domain's single consumer at its end: no entry is unrun, no batch
    /// refers to a chunk, and no thread can push (no handle of the domain exists).
    pub(crate) unsafe fn domain_end(&self) {
        loop {
            // AcqRel: claims the producer against `owner_exit`; Acquire (failure) waits for
            // a seal in progress to end.
            match self.state.compare_exchange(
                OWNED,
                DOMAIN_GONE,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(SEALING) => crate::sync::spin_hint(),
                Err(_) => return,
            }
        }
        // The owner will never touch the chunks again (it checks `state` first), so they
        // are ours: the current chunk, the sealed stack (drained), the free stack and the
        // owner's spares.
        let mut chunks = vec![self.current.swap(ptr::null_mut(), Ordering::Acquire)];
        for stack in [
            self.sealed.swap(ptr::null_mut(), Ordering::Acquire),
            self.free.swap(ptr::null_mut(), Ordering::Acquire),
            self.spare.replace(ptr::null_mut()),
        ] {
            let mut s = stack;
            while !s.is_null() {
                chunks.push(s);
                // SAFETY: chunks on these stacks are live until freed here; their `next`
                // links were written before they were pushed.
                s = unsafe { (*s).next.get() };
            }
        }
        for c in chunks.into_iter().filter(|c| !c.is_null()) {
            // SAFETY: the chunk is ours alone (see above); every published entry has run
            // (contract), so there is nothing to drop inside it.
            drop(unsafe { Box::from_raw(c) });
        }
    }

    /// In a fork child, for a producer whose owner thread did not survive the fork: end a
    /// seal it may have been in the middle of, seal its current chunk for the child's
    /// worker, and mark it gone. Only the child's single thread runs (no consumer yet).
    #[cfg(not(loom))]
    pub(crate) fn owner_vanished_in_child(&self, me: ThreadId) {
        if self.owner == me {
            return;
        }
        let seq = self.seals.load(Ordering::Relaxed);
        if seq % 2 == 1 {
            // The owner was between storing the fresh chunk and pushing the old one: that
            // chunk is lost to the child (leaked, never run twice).
            self.seals.store(seq + 1, Ordering::Release);
        }
        if self.state.load(Ordering::Relaxed) != DOMAIN_GONE {
            self.seal_current(ptr::null_mut());
            self.state.store(OWNER_GONE, Ordering::Release);
        }
    }

    /// Append an entry; returns whether it filled (and sealed) the current chunk. Only the
    /// owning thread calls this.
    #[inline]
    pub(crate) fn push(&self, e: Entry) -> bool {
        // SAFETY: the closure initialises the whole entry.
        unsafe { self.push_with(|slot| slot.write(e)) }
    }

    /// Append the callback `c`, built in place in the chunk (see [`Entry::write`]);
    /// returns whether it filled (and sealed) the current chunk. Owning thread only.
    #[inline(always)]
    pub(crate) fn push_callback<C: FnOnce() + Send + 'static>(&self, c: C) -> bool {
        // SAFETY: `Entry::write` initialises the whole entry; the slot is valid for writes.
        unsafe { self.push_with(|slot| Entry::write(slot, c)) }
    }

    /// # Safety
    /// `init` initialises the entry at the pointer it is given (valid for writes).
    #[inline(always)]
    unsafe fn push_with(&self, init: impl FnOnce(*mut Entry)) -> bool {
        // Relaxed: only this thread stores `current`.
        let mut c = self.current.load(Ordering::Relaxed);
        if c.is_null() {
            c = self.fresh_chunk();
            // Release: the consumer's Acquire load sees an initialised chunk.
            self.current.store(c, Ordering::Release);
        }
        // SAFETY: `c` is our live current chunk: only the consumer frees chunks, and only
        // sealed ones; this one is not sealed.
        let chunk = unsafe { &*c };
        // Relaxed: only this thread stores `published`.
        let n = chunk.published.load(Ordering::Relaxed);
        // Slot `n` is not yet published, so the consumer does not read it and we are its
        // only writer; `init` fills it (caller's contract).
        init(chunk.entries[n].get().cast::<Entry>());
        // Release: the entry's bytes are visible to a consumer that Acquire-loads `n + 1`.
        chunk.published.store(n + 1, Ordering::Release);
        // Relaxed: a statistics counter with a single writer.
        self.queued
            .store(self.queued.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if n + 1 == CHUNK {
            self.seal_current(self.fresh_chunk());
            return true;
        }
        false
    }

    /// An empty chunk for the owner: a recycled one if the consumer has returned any,
    /// else a new allocation. Owner thread only.
    fn fresh_chunk(&self) -> *mut Chunk {
        let mut c = self.spare.get();
        if c.is_null() {
            // Relaxed load first, to skip the RMW when the stack is empty. Acquire swap:
            // pairs with the consumer's Release push, so the reset fields and `next` links
            // of every chunk taken are visible here.
            if self.free.load(Ordering::Relaxed).is_null() {
                return Chunk::alloc();
            }
            c = self.free.swap(ptr::null_mut(), Ordering::Acquire);
            if c.is_null() {
                return Chunk::alloc();
            }
        }
        // SAFETY: `c` came from the free stack (now ours alone) or from our private spares;
        // nobody else references it.
        let next = unsafe { (*c).next.get() };
        self.spare.set(next);
        // SAFETY: as above.
        unsafe { (*c).next.set(ptr::null_mut()) };
        // Relaxed: only bounds the pool's size, which allows the consumer to over- or
        // under-count by the chunks in flight; no data is published through it.
        self.pooled.fetch_sub(1, Ordering::Relaxed);
        c
    }

    /// Give a drained chunk back to its producer for reuse, or free it. Consumer only.
    ///
    /// # Safety
    /// `c` is a sealed chunk all of whose published entries have run, referenced by nobody
    /// else, and the caller is the single consumer.
    unsafe fn recycle(&self, c: NonNull<Chunk>) {
        // If the owner has exited it will never take from `free` again (Drop frees what is
        // left there, but an early exit is the common case: free now). Relaxed on `pooled`:
        // see `fresh_chunk`; only the consumer increments it, so the pool never exceeds POOL.
        if self.owner_gone() || self.pooled.load(Ordering::Relaxed) >= POOL {
            // SAFETY: per the contract, nobody else references the chunk.
            drop(unsafe { Box::from_raw(c.as_ptr()) });
            return;
        }
        self.pooled.fetch_add(1, Ordering::Relaxed);
        // SAFETY: per the contract we own the chunk: reset it for the producer. `published`
        // is made visible to the producer by the Release push below.
        let chunk = unsafe { &mut *c.as_ptr() };
        chunk.published.store(0, Ordering::Relaxed);
        chunk.taken.set(0);
        let mut head = self.free.load(Ordering::Relaxed);
        loop {
            chunk.next.set(head);
            // Release: the producer's Acquire swap sees the reset fields and `next`. No ABA:
            // the consumer is the only pusher and the owner only ever takes the whole stack.
            match self.free.compare_exchange_weak(
                head,
                c.as_ptr(),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
    }

    /// Replace the current chunk by `fresh` (may be null) and push the old one on the
    /// sealed stack. Owner thread only (or the TLS destructor on its behalf).
    pub(crate) fn seal_current(&self, fresh: *mut Chunk) {
        let old = self.current.load(Ordering::Relaxed);
        if old.is_null() {
            // Nothing to seal (the exit path, when the thread's chunk is already sealed).
            self.current.store(fresh, Ordering::Release);
            return;
        }
        // Relaxed: single writer. Odd = a seal is in flight; the Release store of `current`
        // below publishes it to a consumer that Acquire-loads the fresh chunk.
        let seq = self.seals.load(Ordering::Relaxed);
        self.seals.store(seq + 1, Ordering::Relaxed);
        // Release: publish the fresh chunk. Ordered before the push below, which is what
        // lets the consumer never see a sealed chunk as `current` (see module docs).
        self.current.store(fresh, Ordering::Release);
        let mut head = self.sealed.load(Ordering::Relaxed);
        loop {
            // SAFETY: `old` is no longer reachable through `current` nor yet through
            // `sealed`, so we are its only writer.
            unsafe { (*old).next.set(head) };
            // Release: the consumer's Acquire swap sees `next`, the final `published`
            // and the `current` store above.
            match self
                .sealed
                .compare_exchange_weak(head, old, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // Release: a consumer that Acquire-reads this even value before its `sealed` swap
        // sees the push above.
        self.seals.store(seq + 2, Ordering::Release);
    }

    /// Whether this producer still owns a current chunk or recycled ones (tests; the
    /// owner's private spares are not looked at: the domain's end may be freeing them).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn holds_chunks(&self) -> bool {
        !self.current.load(Ordering::Relaxed).is_null()
            || !self.free.load(Ordering::Relaxed).is_null()
    }

    /// Whether anything is published and not yet taken (consumer side, approximate).
    pub(crate) fn has_pending(&self) -> bool {
        if !self.sealed.load(Ordering::Acquire).is_null() {
            return true;
        }
        let c = self.current.load(Ordering::Acquire);
        // SAFETY: the current chunk is only freed by the consumer after it was sealed, and
        // the consumer is the caller.
        !c.is_null() && unsafe { (*c).published.load(Ordering::Acquire) > (*c).taken.get() }
    }
}

/// A consumer's view of published entries: `(chunk, from, to, owner)`, where `owner` is
/// the index in `owners` of the producer of a sealed chunk (`None` for a current chunk).
#[derive(Default)]
pub(crate) struct Batch {
    items: Vec<(NonNull<Chunk>, usize, usize, Option<usize>)>,
    /// Producers whose sealed chunks this batch drains, kept alive to take them back.
    owners: Vec<Arc<Producer>>,
    pub(crate) len: usize,
}

// SAFETY: a batch only travels with the single consumer; the chunks it names are kept
// alive by the protocol (only the consumer frees them).
unsafe impl Send for Batch {}

impl Batch {
    /// Add `p`'s published entries to the snapshot.
    ///
    /// # Safety
    /// Only the single consumer may call this (it reads and later writes `taken`).
    pub(crate) unsafe fn collect(&mut self, p: &Arc<Producer>) {
        // A seal stores the fresh `current` before it pushes the old chunk, so for a moment
        // the old chunk is reachable from neither: a swap that misses the push followed by a
        // load that sees the fresh chunk would miss it (and `barrier` would return before
        // its callbacks ran). `seals` is odd during that window; retry until no seal
        // overlapped this snapshot. A retry waits for a few instructions of the producer.
        let c = loop {
            // Acquire: pairs with the Release store that ends a seal: if `q1` is a seal's
            // final value, that seal's push is visible to the swap below.
            let q1 = p.seals.load(Ordering::Acquire);
            // Acquire: see the chunks' final `published`, their `next` links, and the newer
            // `current` that the producer stored before pushing.
            let mut s = p.sealed.swap(ptr::null_mut(), Ordering::Acquire);
            let start = self.items.len();
            if !s.is_null() {
                self.owners.push(p.clone());
            }
            let owner = self.owners.len().wrapping_sub(1);
            while let Some(c) = NonNull::new(s) {
                // SAFETY: sealed chunks are owned by the consumer from here on.
                let chunk = unsafe { c.as_ref() };
                let to = chunk.published.load(Ordering::Acquire);
                self.len += to - chunk.taken.get();
                self.items.push((c, chunk.taken.get(), to, Some(owner)));
                s = chunk.next.get();
            }
            // The stack is LIFO; run in queue order.
            self.items[start..].reverse();
            let c = p.current.load(Ordering::Acquire);
            // Acquire: if `c` is a fresh chunk, this reads at least the odd value its seal
            // stored before publishing it.
            let q2 = p.seals.load(Ordering::Acquire);
            if q1 == q2 && q2 % 2 == 0 {
                break c;
            }
            crate::sync::yield_now();
        };
        if let Some(c) = NonNull::new(c) {
            // SAFETY: a current chunk is freed only once sealed, by us.
            let chunk = unsafe { c.as_ref() };
            let to = chunk.published.load(Ordering::Acquire);
            let from = chunk.taken.get();
            if to > from {
                self.len += to - from;
                self.items.push((c, from, to, None));
            }
        }
    }

    /// Run every collected entry; returns `(run, panicked)`.
    ///
    /// # Safety
    /// The caller is the single consumer that collected this batch, and a grace period has
    /// elapsed since the collection (or no reader can exist).
    pub(crate) unsafe fn run(self, on_each: &mut dyn FnMut(Entry) -> bool) -> (u64, u64) {
        let (mut run, mut panicked) = (0, 0);
        for (c, from, to, owner) in self.items {
            // SAFETY: the chunk is alive (only we free or recycle it, below).
            let chunk = unsafe { c.as_ref() };
            for i in from..to {
                // SAFETY: `i < published` as read with Acquire at collection time: the
                // entry is initialised, and it is read exactly once because `taken`
                // advances past it before the next collection.
                let e = unsafe { (*chunk.entries[i].get()).assume_init_read() };
                chunk.taken.set(i + 1);
                run += 1;
                if !on_each(e) {
                    panicked += 1;
                }
            }
            if let Some(o) = owner {
                // SAFETY: the chunk is sealed (its producer wrote its last entry before
                // pushing it and never touches it again until it takes it back from its
                // free stack) and all of its `published` entries have now run; nobody else
                // references it; we are the single consumer.
                unsafe { self.owners[o].recycle(c) };
            }
        }
        (run, panicked)
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        // Last reference: neither the owner thread nor the domain's consumer can touch the
        // chunks any more. Entries still unrun can only exist if the domain itself is gone,
        // in which case no reader exists either, so running them now is safe.
        let mut chunks = Vec::new();
        let cur = self.current.load(Ordering::Acquire);
        if !cur.is_null() {
            chunks.push(cur);
        }
        let mut s = self.sealed.load(Ordering::Acquire);
        while !s.is_null() {
            chunks.push(s);
            // SAFETY: sealed chunks are live until freed here; `next` was written before
            // the chunk was pushed.
            s = unsafe { (*s).next.get() };
        }
        // Recycled chunks are empty (`published` was reset to 0): they only need freeing.
        for mut s in [self.free.load(Ordering::Acquire), self.spare.get()] {
            while !s.is_null() {
                chunks.push(s);
                // SAFETY: pooled chunks are live until freed here; `next` was written by
                // the consumer before its Release push (or by the owner, for spares).
                s = unsafe { (*s).next.get() };
            }
        }
        for c in chunks {
            // SAFETY: we hold the only reference to each chunk (see above).
            let chunk = unsafe { Box::from_raw(c) };
            let published = chunk.published.load(Ordering::Acquire);
            for i in chunk.taken.get()..published {
                // SAFETY: entries below `published` are initialised and were not run.
                let e = unsafe { (*chunk.entries[i].get()).assume_init_read() };
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| e.run()));
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    #[test]
    fn small_closures_are_inline_large_ones_boxed_both_run_once() {
        let n = Arc::new(AtomicUsize::new(0));
        let small = {
            let n = n.clone();
            Entry::new(move || {
                n.fetch_add(1, Ordering::Relaxed);
            })
        };
        let big_payload = [1usize; 8];
        let big = {
            let n = n.clone();
            Entry::new(move || {
                n.fetch_add(big_payload.iter().sum::<usize>(), Ordering::Relaxed);
            })
        };
        small.run();
        big.run();
        assert_eq!(n.load(Ordering::Relaxed), 9);
        // Both closures (and their captured Arc clones) are gone.
        assert_eq!(Arc::strong_count(&n), 1);
    }

    #[test]
    fn collect_takes_each_published_entry_once_across_seals() {
        let p = Arc::new(Producer::new());
        let n = Arc::new(AtomicUsize::new(0));
        let push = |k: usize| {
            for _ in 0..k {
                let n = n.clone();
                p.push(Entry::new(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                }));
            }
        };
        let mut total = 0;
        let drain = || {
            let mut b = Batch::default();
            // SAFETY: single-threaded test: we are the only consumer and there are no
            // readers, so no grace period is needed before running.
            unsafe { b.collect(&p) };
            let len = b.len;
            // SAFETY: as above.
            let (run, panicked) = unsafe {
                b.run(&mut |e| {
                    e.run();
                    true
                })
            };
            assert_eq!(run as usize, len);
            assert_eq!(panicked, 0);
            len
        };
        push(CHUNK / 2);
        total += drain();
        // Fill past the end of the first chunk (sealed) and into the next one.
        push(CHUNK);
        total += drain();
        total += drain();
        // Seal a partial chunk, as thread exit does.
        push(3);
        p.seal_current(ptr::null_mut());
        total += drain();
        assert_eq!(total, CHUNK / 2 + CHUNK + 3);
        assert_eq!(n.load(Ordering::Relaxed), total);
        assert_eq!(p.queued.load(Ordering::Relaxed) as usize, total);
        assert!(!p.has_pending());
    }

    #[test]
    fn drained_chunks_are_reused_up_to_the_pool_bound() {
        let p = Arc::new(Producer::new());
        let drain = || {
            let mut b = Batch::default();
            // SAFETY: single-threaded test: the only consumer, no readers.
            unsafe { b.collect(&p) };
            // SAFETY: as above.
            unsafe {
                b.run(&mut |e| {
                    e.run();
                    true
                })
            }
        };
        let push = |k: usize| {
            for i in 0..k {
                p.push(Entry::new(move || {
                    std::hint::black_box(i);
                }));
            }
        };
        // Three chunks sealed and drained: all three go back to the producer.
        push(3 * CHUNK);
        assert_eq!(drain().0 as usize, 3 * CHUNK);
        assert_eq!(p.pooled.load(Ordering::Relaxed), 3);
        // The next seal takes its fresh chunk from the pool instead of allocating.
        let before = p.current.load(Ordering::Relaxed);
        push(CHUNK);
        assert_ne!(p.current.load(Ordering::Relaxed), before);
        assert_eq!(p.pooled.load(Ordering::Relaxed), 2);
        drain();
        assert_eq!(p.pooled.load(Ordering::Relaxed), 3);
        // A long burst: the pool keeps at most POOL chunks, the rest are freed.
        push((POOL + 5) * CHUNK);
        assert_eq!(drain().0 as usize, (POOL + 5) * CHUNK);
        assert_eq!(p.pooled.load(Ordering::Relaxed), POOL);
        assert!(!p.has_pending());
    }

    #[test]
    fn unrun_entries_run_when_the_producer_is_dropped() {
        let n = Arc::new(AtomicUsize::new(0));
        {
            let p = Producer::new();
            for _ in 0..(CHUNK + 5) {
                let n = n.clone();
                p.push(Entry::new(move || {
                    n.fetch_add(1, Ordering::Relaxed);
                }));
            }
        }
        assert_eq!(n.load(Ordering::Relaxed), CHUNK + 5);
    }
}
