//! # Limitations and rules
//!
//! What each flavor does on thread exit, `fork()`, panics in callbacks and process exit,
//! and which calls may block. "Blocks" below means "may wait for another thread"; every
//! call documented as never blocking also never waits for a grace period.
//!
//! ## Which calls may block
//!
//! | call | memb / mb | qsbr |
//! |---|---|---|
//! | `read_lock`, guard drop, `rcu_read_lock`, `rcu_dereference`, `RcuBox::load` | never: a few instructions | never: a load and a never-taken branch (a panic if the thread is offline) |
//! | `Domain::read_lock`, `RcuBox::snapshot`, `load_full`, dropping them | never (a thread's first call on a domain takes a short lock to register) | never (same; each outermost section comes online and goes offline) |
//! | `Reader::quiescent_state`, `offline`, `thread_offline`, `thread_online`, `qsbr::rcu_quiescent_state` | (not available) | never |
//! | `call`, `defer_drop`, `call_rcu`, `store`, `swap`, `take`, `compare_exchange`, `rcu`, `update` (`RcuBox`, `RcuOption`), dropping a `Retired`, `Retired::defer`/`call` | never (wait-free fast path; a thread's first call on a domain takes a short lock; the domain's first call spawns the worker; under a flood of callbacks the producer yields its CPU once per 256 calls) | same |
//! | `start_poll`, `get_state`, `poll` | never (`start_poll` may spawn the worker) | same |
//! | `synchronize`, `synchronize_rcu`, `swap_sync` (`RcuBox`, `RcuOption`), `Retired::synchronize`, `cond_synchronize` | until every reader inside a critical section that began before the call has left it | until every online reader has announced a quiescent state or gone offline (an online caller goes offline for the wait) |
//! | `barrier`, `rcu_barrier` | until the callbacks queued before the call have run: at most two worker rounds | same |
//! | `register`, `register_offline`, `rcu_register_thread`, dropping a `Reader`, `rcu_unregister_thread` | a short lock of the domain's registry (never held across a wait) | same |
//! | a domain built with [`DomainBuilder::blocking_backlog_limit`](crate::DomainBuilder::blocking_backlog_limit) | `call` and everything built on it may wait for the worker: opt-in, and it can deadlock (see there) | same |
//!
//! `synchronize`, `barrier` and their kin panic instead of deadlocking when called inside a
//! critical section of the same domain, by an online QSBR reader of it, or from one of its
//! callbacks.
//!
//! ## Critical sections
//!
//! - **Nesting.** Critical sections nest freely (up to 65,535 deep); only the outermost
//!   lock and unlock touch shared state.
//! - **Blocking inside a critical section** is allowed but delays every grace period of the
//!   domain (and with it every callback).
//! - **QSBR threads must report.** An online QSBR thread that blocks without going offline
//!   stalls every grace period: use [`Reader::offline`](crate::Reader::offline) (or
//!   [`qsbr::rcu_thread_offline`](crate::qsbr::rcu_thread_offline)) around blocking calls;
//!   the stall report names such threads. An offline thread cannot enter a critical
//!   section: `read_lock` panics, since grace periods would not wait for it.
//! - **QSBR guards in release builds.** With the [`Reader`](crate::Reader) API the borrow
//!   checker forbids a quiescent state, going offline or online while a guard lives. With
//!   the free functions in [`qsbr`](crate::qsbr), a thread-local count (in every build)
//!   makes each of those a panic. `Reader::in_critical_section` is tracked for QSBR in
//!   debug builds only.
//! - **Domains.** A guard protects only the domain it came from; the pointer types check
//!   this (one comparison) and panic on a mismatch. Grace-period cookies name their domain:
//!   `poll` on another domain panics.
//!
//! ## Thread exit
//!
//! - **memb, mb.** A thread registered with a default domain is unregistered by a
//!   thread-local destructor. If a critical section is still open then (a leaked guard, or
//!   one held by a thread-local destroyed later) the thread stays registered, so grace
//!   periods wait for that section, report the stall, and go on once the guard is dropped.
//!   A `rcu_read_lock` in a thread-local destructor that runs after the runtime's own
//!   registers the thread again for the rest of its life (an idle record that grace periods
//!   pass by; it stays in the registry).
//! - **qsbr.** The same, and: a thread kept registered by an open critical section stays
//!   online until the section ends, then unregisters. During thread teardown (after the
//!   runtime's thread-local is destroyed) a registration lasts only as long as its
//!   outermost critical section, and `rcu_register_thread` does nothing, so a late
//!   destructor never leaves a vanished thread online.
//! - **A `Reader`** (any flavor) unregisters when dropped; its guards borrow it, so none can
//!   outlive it. A leaked `Reader` stays registered (for memb/mb it is idle outside its
//!   critical sections; for qsbr it stays online and stalls grace periods: take it offline
//!   first). A forgotten [`OnlineGuard`](crate::OnlineGuard) leaves its reader online.
//! - **`Domain::read_lock`** (any flavor, any domain) registers the thread on first use and
//!   unregisters it at thread exit, or drops the registration when the domain ends (it does
//!   not keep the domain alive). A critical section still open at thread exit (a leaked
//!   guard or [`Snapshot`](crate::Snapshot), or one held by a thread-local destroyed later)
//!   keeps the registration until it ends, so grace periods wait for it and report the
//!   stall; a leaked one stalls the domain for good, never frees what it protects. In a
//!   late thread-local destructor each outermost section registers for its own duration.
//!   A QSBR registration made this way is online only inside its critical sections, so it
//!   never stalls a grace period by itself.
//!
//! ## Callbacks
//!
//! - **When they run.** On the domain's worker thread, in batches, each batch after one
//!   grace period; in FIFO order per producing thread, in no particular order across
//!   threads. Callbacks must not block for long: they delay later batches.
//! - **Floods.** There is no cap on queued callbacks and producers never wait: a batch of
//!   thousands makes the worker run grace periods back to back, and a batch of 65,536 makes
//!   producers yield their CPU once per 256 calls until the worker catches up. The backlog
//!   is then bounded by the enqueue rate times the worker's round (one grace period plus the
//!   callbacks); [`Stats::peak_backlog`](crate::Stats::peak_backlog) reports it. On a machine
//!   with fewer CPUs than busy threads the worker's round includes waiting for a CPU. A
//!   hard bound that blocks producers is available as an opt-in
//!   ([`DomainBuilder::blocking_backlog_limit`](crate::DomainBuilder::blocking_backlog_limit)),
//!   with the deadlock it can cause documented there.
//! - **Panics.** A callback that panics is counted in [`Stats`](crate::Stats) and the worker
//!   goes on; so does a callback whose panic payload panics again when dropped. A stall hook
//!   that panics is reported on stderr and ignored. The worker never dies.
//! - **QSBR readers in callbacks.** A callback may use `qsbr::rcu_read_lock`: the worker then
//!   behaves as a QSBR reader of the default QSBR domain (online while it runs callbacks, a
//!   quiescent state after each, offline whenever it waits), as liburcu's call_rcu thread.
//!   A `Reader<Qsbr>` that a callback registers and leaks stays online and stalls that
//!   domain.
//! - **Barrier.** `barrier` waits for the callbacks queued before it, not for those queued
//!   after it began (including by the callbacks it waits for): one `barrier` per level of
//!   nesting drains callbacks that queue callbacks.
//! - **Process exit with callbacks pending.** They do not run unless something waits for
//!   them: call `barrier` (or `rcu_barrier`) before returning from `main` if their effects
//!   matter. When the last handle of a domain is dropped its worker drains the queue and
//!   exits, and whatever remains runs when the domain is freed; the default domains are
//!   never freed.
//!
//! ## fork()
//!
//! Every flavor: the fork handlers never wait for a grace period, a reader or a callback
//! (they take only locks that nothing holds across a wait), so `fork()` is safe from any
//! thread at any moment, including inside a critical section or a callback, and while other
//! threads synchronize. The child keeps using RCU: only the forking thread exists there, so
//! every other thread's registration is dropped, a grace period in progress is abandoned
//! (the next caller leads a new one), and the call_rcu worker restarts on demand. Critical
//! sections of the forking thread stay open in the child (and a QSBR forking thread stays
//! online). Callbacks queued before the fork and not yet run in the parent run in the
//! child too once something there starts the worker (`call`, `barrier`, `poll`), except
//! entries the parent's worker had already taken off a sealed chunk, or a chunk caught in
//! the middle of a seal (leaked in the child, never run twice). A fork from inside a
//! callback keeps the forking thread as the child's worker.
//!
//! **The caller's part** (`fork` is `unsafe`): in the child, do not use a reference read
//! inside *another* thread's critical section (handed to the forking thread, say through a
//! scoped thread): that thread's registration is dropped in the child, as liburcu's
//! bulletproof flavor prunes its registry, so grace periods there no longer wait for it.
//! Keeping vanished readers instead would leave the child unable to complete a grace period
//! whenever another thread happened to be reading at the moment of the fork.
//!
//! ## Platforms
//!
//! `membarrier(PRIVATE_EXPEDITED)` is Linux-only: elsewhere, under Miri, in seccomp sandboxes
//! that forbid it, or with `RCU_MEMB_FORCE_FALLBACK=1`, `Memb` domains use the fence
//! protocol (`Mb`'s) and say so ([`Domain::protocol`](crate::Domain::protocol)). Without
//! membarrier the call_rcu worker may miss a wake-up and pick new callbacks up within 10 ms.
//!
//! ## Grace-period counter
//!
//! The counter's 47-bit sequence wraps after 2^47 grace periods (1.5 years back to back at
//! 3M per second); comparisons are wrap-safe (see `record.rs`): a reader would have to stall
//! between two of its own instructions for 2^47 grace periods to be misjudged.
