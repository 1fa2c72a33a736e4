//! rcu-core against liburcu, the same work in both languages, in one run: the
//! `vs-liburcu` runner (`cargo run --release -p benches --bin vs-liburcu -- --help`).
//!
//! Two twins do exactly the same work per flavor (memb, qsbr, mb): the C twin
//! (`benches/c/`, compiled by `build.rs` against the system liburcu with its inlined fast
//! paths, only when liburcu is installed) and the Rust twin ([`ours`]). Both implement
//! [`Twin`](twin::Twin); the [`harness`] runs either on the same threads with the same
//! windows, and the [`runner`] interleaves them run by run. The rows:
//!
//! | row | measures |
//! |---|---|
//! | read through a `Reader` | register, then lock + `rcu_dereference` + read a field + unlock in a loop (QSBR: a quiescent state every 1024 reads); ns per read. C: liburcu's `rcu_read_lock()` |
//! | read through the free functions | the same through `rcu_core::rcu_read_lock()` / `rcu_core::qsbr::rcu_read_lock()` (default domains); C: the same liburcu API, measured again; mb: none |
//! | plain load | the same loop with an acquire load and no RCU, in each language |
//! | synchronize, no / idle / busy reader | `synchronize` in a loop with no registered reader, one idle registered reader (QSBR: offline), one reader in the read loop (QSBR: quiescent state every 1024 reads); ns per call |
//! | updates/s, 1 and 2 busy readers | an unregistered updater swaps in a new value, synchronizes, poisons the old value's field and frees it; updates/s |
//! | reads/s per reader | the busy readers of the same rows |
//! | call_rcu × N + barrier | a registered thread queues N callbacks that increment a counter, then waits for them with a barrier; callbacks/s |
//! | too-short grace periods | busy readers' reads that saw the poison; must be 0 |
//!
//! Without liburcu the crate builds as usual and the runner measures our twin alone (and
//! says so); `--require-liburcu` makes that an error.

pub mod harness;
#[cfg(have_liburcu)]
pub mod liburcu;
mod loops;
pub mod ours;
pub mod report;
pub mod results;
pub mod runner;
pub mod twin;
