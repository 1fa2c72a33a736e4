//! # Internals: the memory-ordering argument, pairing by pairing
//!
//! Notation: *W* is the grace-period leader, *R* a reader thread, `gp` the domain's 64-bit
//! counter, `r.ctr` R's record (0 = idle/offline, otherwise a snapshot of `gp`),
//! `r.waiting` the wake-up flag. The low 16 bits of a memb/mb reader's `ctr` hold its
//! nesting depth; `gp` advances in steps of `1 << 16` and always carries a depth of 1 in its
//! low bits, so the outermost lock is one store of `gp` into `ctr` and an inner lock or
//! unlock only adjusts the low bits (liburcu's layout, with a 47-bit sequence instead of a
//! parity bit; the top bit marks a memb domain without membarrier). A reader is *in an old
//! critical section* for the grace period that bumps `gp` to `new` iff `r.ctr != 0` and the
//! sequence of `r.ctr` differs from `new`'s. Only one grace period runs at a time and every
//! snapshot is a value `gp` had, so a snapshot is either `new` (taken after the bump) or
//! older; equality is wrap-safe where an ordering would not be (the sequence wraps after
//! 2^47 grace periods). One bump per grace period suffices: liburcu's two-phase parity flip
//! is unnecessary.
//!
//! ## The grace period (`Core::run_gp`)
//!
//! ```text
//! W: (caller unpublished p)   heavy()   gp := next(gp) (Release)   scan r.ctr (Acquire) ...
//! ```
//!
//! ## Pairing 1: entering (store buffering)
//!
//! R: `r.ctr := snap; light(); load p`. W: `unpublish p; heavy(); load r.ctr`.
//! `heavy()`/`light()` act as a pair of full fences (the `membarrier` contract, see
//! [`crate::membarrier`]; for `Mb` and the fallback they *are* full fences: an `xchg` on
//! x86-64, `store; fence(SeqCst)` elsewhere and under loom). Store buffering with fences on
//! both sides forbids both loads reading the old values: either W's scan sees R's `ctr`
//! (and waits for it), or R's load of `p` sees the unpublished state.
//!
//! If the scan reads a snapshot equal to `new`, R read `gp` after the bump: the bump is
//! sequenced after W's fence, R's fence is sequenced after its read of `gp`, so W's fence
//! synchronizes-with R's fence and the unpublish happens-before R's load of `p`.
//!
//! ## Pairing 2: leaving (message passing)
//!
//! R: `loads of the critical section; r.ctr := 0 (Release)`. W: `r.ctr == 0 (Acquire); free`.
//! Release/acquire: R's critical section happens-before the free. No second `heavy()` is
//! needed after the scan (liburcu needs one because its store of `ctr` is a plain store).
//!
//! ## Pairing 3: waking the leader (store buffering)
//!
//! W: `r.waiting := true; heavy(); load r.ctr; park`. R: `r.ctr := 0; light(); load r.waiting;
//! if set: unpark W`. Either W sees the new `ctr` and does not park, or R sees `waiting` and
//! unparks W (a `park` after an `unpark` returns at once). No wake-up is lost; the leader
//! parks until the next stall report is due, and at most 100 ms at a time (a safety net,
//! not part of the argument).
//!
//! ## QSBR
//!
//! A quiescent state is `g := gp (Acquire); if r.ctr != g { r.ctr := g (Release); full
//! fence; load r.waiting }`. Release orders every earlier critical section before W's
//! Acquire scan that reads `g == new`; Acquire on `gp` makes everything unpublished before
//! the bump visible to the critical sections that follow. Going online stores the snapshot
//! with a full fence (pairing 1), going offline stores 0 like an unlock (pairings 2, 3).
//! `read_lock` refuses to enter while the reader is offline (invisible to grace periods):
//! a `Reader` keeps a copy of the domain key that is null exactly while it is offline (its
//! online state changes only through `&mut self` methods, which update both), so the check
//! is a test of a register; `Domain::read_lock` and the slow path of `qsbr::rcu_read_lock`
//! load the thread's own `ctr` instead (Relaxed: only this thread writes it) and refuse a 0.
//! Its fast path checks neither: a thread-local word is 0 only while the thread is
//! registered and online, and every way offline marks it first (`qsbr_thread`, the
//! worker's hooks included).
//!
//! ## Registration
//!
//! Records live in slots of an append-only list (newest first, `Release` publication,
//! `Acquire` traversal); a slot is reused by later registrations but never freed before the
//! domain, so grace periods scan it without a lock and wait on records without reference
//! counts. Claiming and freeing slots is serialised by the registry mutex, never held
//! across a wait. A QSBR record starts online with the current `gp` (`Acquire`), and every
//! registration ends with a full fence before the reader's first critical section: a scan
//! that misses the new record, or reads it idle, is therefore seen by that first section
//! (pairing 1 with the registration's fence). Unregistering stores 0 with a full barrier
//! and wakes a waiting leader, like an unlock. A slot reused while a leader waits on it
//! shows a snapshot taken after the bump, which does not block.
//!
//! ## Nothing to wait for (pairing 1, before the bump)
//!
//! W: `unpublish p; fence(SeqCst); load count` (memb) or `load every r.ctr (Acquire)` (mb,
//! qsbr, fallback). A registration increments `count` then executes a full fence before its
//! first critical section; an mb/qsbr/fallback reader stores `ctr` then executes a full
//! barrier before its loads. Either W sees the registration (memb) or the non-zero `ctr`,
//! or the reader sees the unpublished state. A reader seen idle stored its 0 with `Release`
//! after its last critical section, so that section happened-before W's free. A memb
//! reader's entry has no hardware barrier, so for memb only "nobody registered" is decided
//! this way; otherwise the full grace period (with `membarrier`) runs. A polled cookie takes
//! a ticket (after a fence) from the counter of such checks; a check that draws a later
//! ticket and finds nothing satisfies it.
//!
//! ## Sharing grace periods
//!
//! `gp_state` holds `completed` and `in_progress` under a mutex. A caller computes its
//! target: `completed + 1` if no grace period is running (the next one starts after the
//! call), `completed + 2` if one is (it may have scanned before the caller's update). It
//! then either leads the next grace period or waits on a condition variable until
//! `completed >= target`. N concurrent callers therefore cost at most two grace periods.
//! The polled API exposes the same targets as cookies; `completed` is mirrored in an atomic
//! (Release at the end of each grace period, Acquire in `poll`).
//!
//! ## call_rcu
//!
//! See the module documentation of the queue (`call_rcu/queue.rs`): per-thread chunks, a
//! `Release` store of `published` per entry, `Acquire` loads by the single consumer (the
//! worker), and a sealed stack whose push follows the store of the fresh `current` chunk, so
//! a chunk is never collected twice. The worker collects a snapshot, waits one (shared)
//! grace period, then runs it. `barrier` asks for the next snapshot under the worker mutex
//! (which the worker takes before collecting) and waits until it has run: that snapshot
//! covers every callback queued before the barrier, and nothing queued later is waited for.
//!
//! ## Pairing 4: waking the idle worker (store buffering)
//!
//! Worker: `sleeping := true; heavy(); look at every producer's published count; park`.
//! Producer (`call`): `published := n + 1 (Release); light(); load sleeping; if set: unpark`.
//! With membarrier (and under loom, where both halves are fences) either the worker sees
//! the entry and does not park, or the producer sees `sleeping` and unparks it. Without
//! membarrier the producer's half is only a compiler fence (a real one would cost every
//! `call`), the wake-up can be lost, and the worker's park is bounded by 10 ms instead.
//!
//! ## Per-domain readers (`Domain::read_lock`)
//!
//! A memb or mb section through `Domain::read_lock` is the same `lock`/`unlock` on the
//! thread's record as a `Reader`'s: pairings 1-3 unchanged. A QSBR entry is offline (0)
//! outside its sections: the outermost `read_lock` goes online (`g := gp (Acquire); r.ctr :=
//! g; full barrier`, pairing 1, exactly as `thread_online`) and the outermost unlock goes
//! offline (`r.ctr := 0` with a full barrier, then `waiting`, pairings 2 and 3, as
//! `thread_offline`). The thread-local bookkeeping (the entry list, the cache of the last
//! domain, the nesting count) is owned by the thread and needs no ordering. Registration and
//! unregistration go through the registry as for a `Reader`; the entry holds only a weak
//! reference to the domain, so unregistering at thread exit happens only while the domain
//! is alive (a successful upgrade keeps it alive for the call).
//!
//! ## Retiring without a `Box`
//!
//! An unpublished value stays a raw pointer until its grace period has ended:
//! `RcuBox::store`, `RcuOption::store`, `update` and a dropped `Retired` queue the pointer,
//! and the callback makes the `Box` (and drops it) after the grace period. A `Box` is a
//! unique pointer: making one while readers on other threads may still hold `&T` to the value
//! is undefined behaviour under Rust's aliasing rules, even if the `Box` is only moved into
//! the callback (Miri flags it). No ordering changes: the release/acquire argument of
//! pairing 2 is what makes the free safe, as before.
