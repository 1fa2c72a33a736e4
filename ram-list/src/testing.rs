//! Helpers shared by the unit tests.

use rcu_core::{Domain, Memb};

use crate::RamList;

pub(crate) const MIB: u64 = 1 << 20;
pub(crate) const KIB: u64 = 1 << 10;

/// A fresh domain and an empty list in it.
pub(crate) fn setup() -> (Domain<Memb>, RamList<Memb>) {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    (d, l)
}

std::thread_local! {
    /// Writer-side work done by this thread: list elements visited plus index operations
    /// (`index::count_step`).
    pub(crate) static STEPS: core::cell::Cell<u64> = const { core::cell::Cell::new(0) };
}

/// The steps counted by this thread since the last call.
pub(crate) fn take_steps() -> u64 {
    STEPS.with(|s| s.replace(0))
}
