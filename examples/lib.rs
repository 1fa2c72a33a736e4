//! The workspace's example programs (run them with `cargo run -p rcu-examples --example
//! NAME`; `cargo test --workspace` runs each one as a test):
//!
//! - `hot_config`: a configuration read by many threads and replaced while they read
//!   (arc-swap's use case), with owned snapshots a getter can return.
//! - `routing_table`: a read-mostly routing table on an rcu-queue list, with removal and
//!   deferred free.
//! - `qsbr_pool`: QSBR readers in worker pools (a std pool and rayon) that go online for
//!   their jobs, announce quiescent states, and never stall grace periods while idle.
//!
//! This library is empty: it also runs the examples of the workspace README and of
//! ram-list's README as doctests (the published crates cannot include files outside
//! their package).

/// The workspace README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct WorkspaceReadmeDoctests;

/// ram-list's README examples, compiled and run as doctests (ram-list's own sources do not
/// include its README).
#[cfg(doctest)]
#[doc = include_str!("../ram-list/README.md")]
pub struct RamListReadmeDoctests;
