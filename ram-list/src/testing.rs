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
