//! A from-scratch userspace RCU (read-copy-update) runtime.
//!
//! Readers enter a read-side critical section with [`rcu_read_lock`] (or
//! [`Reader::read_lock`]) and read RCU-protected data at (almost) no cost; writers publish
//! new versions and free old ones only after a *grace period*, when no reader can still
//! see them: synchronously ([`synchronize_rcu`]) or through the callback worker
//! ([`call_rcu`], [`defer_drop`], [`rcu_barrier`]).
//!
//! Three flavors, as in liburcu: [`Memb`] (default; one thread-local store and a compiler
//! fence per outermost lock, the grace period pays a `membarrier` system call), [`Mb`]
//! (real fences on both sides) and [`Qsbr`] (free read side; threads announce quiescent
//! states). Everything lives in a [`Domain`]; the free functions use process-wide default
//! domains ([`default_domain`], [`qsbr::default_domain`]).
//!
//! ```
//! use rcu_core::{rcu_read_lock, synchronize_rcu, RcuBox};
//! use std::sync::Arc;
//!
//! let shared = Arc::new(RcuBox::new(vec![1, 2, 3]));
//! let reader = {
//!     let shared = shared.clone();
//!     std::thread::spawn(move || {
//!         for _ in 0..1000 {
//!             let guard = rcu_read_lock();
//!             let v = shared.load(&guard); // &Vec borrowed from the guard
//!             assert!(v.len() == 3 || v.len() == 4);
//!         }
//!     })
//! };
//! shared.store(vec![1, 2, 3, 4]); // old Vec freed after a grace period
//! reader.join().unwrap();
//! synchronize_rcu();
//! ```
//!
//! # Names for liburcu and QEMU users
//!
//! | C | Rust |
//! |---|---|
//! | `rcu_read_lock()` / `rcu_read_unlock()` | [`rcu_read_lock`] returns a guard; drop it (or [`rcu_read_unlock`]) |
//! | `synchronize_rcu()` | [`synchronize_rcu`], [`Domain::synchronize`] |
//! | `call_rcu(head, func)` / `g_free_rcu` / `kfree_rcu` | [`call_rcu`], [`Domain::call`], [`defer_drop`], [`Domain::defer_drop`] |
//! | `rcu_barrier()` | [`rcu_barrier`], [`Domain::barrier`] |
//! | `rcu_register_thread()` / `rcu_unregister_thread()` | [`rcu_register_thread`] / [`rcu_unregister_thread`], [`Domain::register`] (drop the [`Reader`]) |
//! | `rcu_quiescent_state()`, `rcu_thread_offline()`, `rcu_thread_online()` (urcu-qsbr) | [`qsbr::rcu_quiescent_state`], [`qsbr::rcu_thread_offline`], [`qsbr::rcu_thread_online`], [`Reader::quiescent_state`], [`Reader::offline`] |
//! | `rcu_dereference(p)` / `qatomic_rcu_read` | [`rcu_dereference`], [`RcuBox::load`], [`RcuOption::load`] |
//! | `rcu_assign_pointer(p, v)` / `qatomic_rcu_set` | [`rcu_assign_pointer`], [`RcuBox::store`], [`RcuOption::store`] |
//! | `rcu_xchg_pointer`, `rcu_cmpxchg_pointer` | [`rcu_xchg_pointer`], [`rcu_cmpxchg_pointer`]; [`RcuBox::swap`], [`RcuBox::compare_exchange`] (the old value as a [`Retired`]) |
//! | `start_poll_synchronize_rcu`, `poll_state_synchronize_rcu`, `get_state_synchronize_rcu`, `cond_synchronize_rcu` (Linux) | [`Domain::start_poll`], [`Domain::poll`], [`Domain::get_state`], [`Domain::cond_synchronize`] |
//!
//! # Names for arc-swap and crossbeam-epoch users
//!
//! | arc-swap | crossbeam-epoch | rcu-core |
//! |---|---|---|
//! | `ArcSwap<T>`, `ArcSwapOption<T>` | `Atomic<T>` | [`RcuBox<T>`], [`RcuOption<T>`] (any `T: Send + Sync`, no `Arc` needed) |
//! | `load()` → `Guard` | `pin()` + `load(&guard)` | [`rcu_read_lock`] / [`Domain::read_lock`] + [`RcuBox::load`]; [`RcuBox::snapshot`] → [`Snapshot`] (guard and value in one) |
//! | `load_full()` | | [`RcuBox::load_full`] (for `RcuBox<Arc<T>>`) |
//! | `store(v)` | `swap` + `defer_destroy` | [`RcuBox::store`] (freed after a grace period by the call_rcu worker) |
//! | `swap(v)` → old `Arc` | `swap` → `Shared` | [`RcuBox::swap`] → [`Retired`] (free it, [`Retired::call`] a closure on it, or [`Retired::synchronize`] and get it back) |
//! | `compare_and_swap` | `compare_exchange` → `CompareExchangeError` | [`RcuBox::compare_exchange`] → [`CompareExchangeError`] |
//! | `rcu(f)` | | [`RcuBox::rcu`] (no guard needed), [`RcuBox::update`] (under your guard) |
//! | | `Guard::defer_destroy`, `defer` | [`defer_drop`], [`call_rcu`], [`Domain::defer_drop`], [`Domain::call`] |
//! | | `Collector`, `LocalHandle` | [`Domain`], [`Reader`] ([`Domain::register`]) |
//! | | `Guard::flush`, (no blocking wait) | [`rcu_barrier`], [`synchronize_rcu`] |
//!
//! # Where to go next
//!
//! [`docs::choosing`] compares the flavors with measured figures and says which reading
//! and writing API fits (thread pools and process exit included); [`docs::internal`] has
//! the memory-ordering argument and [`docs::limitations`] the rules (nesting, thread exit,
//! fork, when callbacks run).
#![doc(test(attr(deny(warnings))))]

#[cfg(not(loom))]
mod auto_traits;
mod builder;
mod call_rcu;
#[cfg(not(loom))]
mod default;
pub mod docs;
mod domain;
mod flavor;
#[cfg(not(loom))]
mod fork;
mod grace_period;
mod guard;
#[cfg(not(loom))]
mod local_reader;
pub mod membarrier;
mod misuse;
mod pool;
mod ptr;
mod qsbr_thread;
mod reader;
mod record;
mod retired;
#[cfg(not(loom))]
mod snapshot;
mod swap;
mod sync;
mod unwind;

pub use builder::{DomainBuilder, DEFAULT_BATCH_DELAY};
#[cfg(not(loom))]
pub use default::{
    call_rcu, default_domain, defer_drop, qsbr, rcu_barrier, rcu_read_lock, rcu_read_unlock,
    rcu_register_thread, rcu_unregister_thread, synchronize_rcu,
};
pub use domain::{Domain, GpCookie, Stats};
pub use flavor::{Flavor, Mb, Memb, Qsbr};
pub use grace_period::stall::{StallHook, StallReport, StalledReader, DEFAULT_STALL_TIMEOUT};
pub use guard::ReadGuard;
#[cfg(not(loom))]
pub use local_reader::DomainReadGuard;
pub use pool::OnlineGuard;
pub use ptr::{
    rcu_assign_pointer, rcu_cmpxchg_pointer, rcu_dereference, rcu_xchg_pointer, RcuBox, RcuOption,
};
pub use reader::{OfflineGuard, Reader};
pub use retired::Retired;
#[cfg(not(loom))]
pub use snapshot::Snapshot;
pub use swap::CompareExchangeError;

/// The atomic types used by the raw pointer primitives (loom's under `--cfg loom`).
pub mod atomic {
    #[cfg(loom)]
    pub use loom::sync::atomic::{AtomicPtr, Ordering};
    #[cfg(not(loom))]
    pub use std::sync::atomic::{AtomicPtr, Ordering};
}

/// The crate README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
