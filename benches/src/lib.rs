//! Benchmarks of the rcu workspace against its peers.
//!
//! - [`imps`]: the [`SharedValue`](imps::SharedValue) trait and its implementations (our
//!   memb, mb and qsbr flavors; crossbeam-epoch, arc-swap, seize, `std::sync::RwLock`,
//!   `parking_lot::RwLock`, `std::sync::Mutex`), used by the `scaling` runner and the
//!   criterion benches alike, so that every figure times the same reader work.
//! - [`scaling`]: the reader-scalability experiment (`cargo run --release -p benches --bin
//!   scaling -- --help`), with [`plot`] for its SVG figures.
//! - [`payload`]: the shared value and the live-object count that measures pending garbage.
//! - [`bg`]: background threads for criterion benches (busy readers, parked idle readers).
//! - [`machine`]: CPU model, core count and date stamped on every report.
//! - [`vs_liburcu`]: rcu-core against liburcu (C), the same work in both languages
//!   (`cargo run --release -p benches --bin vs-liburcu`).
//!
//! The criterion benches are in `benches/benches/`, one file per question; `BENCHMARKS.md`
//! at the repository root says how to run each figure and shows the latest results.

pub mod bg;
pub mod imps;
pub mod machine;
pub mod payload;
pub mod plot;
pub mod scaling;
pub mod vs_liburcu;
