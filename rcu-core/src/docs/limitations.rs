//! # Limitations and rules
//!
//! - **Nesting.** Critical sections nest freely; only the outermost lock and unlock touch
//!   shared state. QSBR guards cost nothing and track nothing in release builds: with the
//!   [`Reader`](crate::Reader) API the borrow checker forbids a quiescent state while a
//!   guard lives; with the free functions in [`qsbr`](crate::qsbr) a thread-local count
//!   makes that a panic.
//! - **Blocking inside a critical section.** Allowed but it delays every grace period (and
//!   with it every callback). `synchronize`/`barrier` inside a critical section of the same
//!   domain, from an online QSBR reader of it, or from one of its callbacks would deadlock:
//!   they panic instead.
//! - **QSBR threads must report.** An online QSBR thread that blocks without going offline
//!   stalls every grace period. Use [`Reader::offline`](crate::Reader::offline) around
//!   blocking calls; the stall report names such threads.
//! - **Thread exit.** A thread registered with the default domain is unregistered by a
//!   thread-local destructor. A guard that is still alive then (leaked with `mem::forget`)
//!   keeps the thread registered forever: grace periods stall and the stall hook reports it.
//! - **When callbacks run.** On the domain's worker thread, in batches, each batch after
//!   one grace period; in FIFO order per producing thread, in no particular order across
//!   threads. A callback that panics is counted in [`Stats`](crate::Stats) and the worker
//!   goes on. Callbacks must not block for long: they delay later batches. If the worker
//!   misses a wake-up (an inherent race that a fence on every `call` would close), it picks
//!   the callbacks up within 10 ms. When the last handle of a domain is dropped the worker
//!   drains the queue and exits; whatever remains runs when the domain is freed.
//! - **Backlog.** There is no hard bound on queued callbacks: the worker runs batches back
//!   to back, so the backlog is bounded by the enqueue rate times the grace-period
//!   latency; `Stats::peak_backlog` reports it.
//! - **fork().** A child can keep using RCU: its registry holds only the forking thread
//!   and its callback worker restarts on demand. Forking inside a read-side critical
//!   section or a callback deadlocks.
//! - **Domains.** A guard protects only the domain it came from; the pointer types check
//!   this (one comparison) and panic on a mismatch.
