//! The `Send`/`Sync` promises of the public types, proven at compile time: a change that
//! breaks one fails to build.
//!
//! - Guards and registrations stay on their thread: a critical section, a QSBR online or
//!   offline state, or a registration belongs to the thread whose record it uses.
//! - Cells, domains and retired values are `Send + Sync` for every payload they accept:
//!   [`RcuBox`] and [`RcuOption`] require `T: Send + Sync` (readers on other threads get
//!   `&T`, the worker drops the old value), [`Retired`] requires `T: Send` and gives no
//!   shared access to it, so it is `Sync` even when `T` is not.

use core::cell::Cell;
use static_assertions::{assert_impl_all, assert_not_impl_any};

use crate::qsbr::RcuReadGuard;
use crate::{
    CompareExchangeError, Domain, DomainReadGuard, Mb, Memb, OfflineGuard, OnlineGuard, Qsbr,
    RcuBox, RcuOption, ReadGuard, Reader, Retired, Snapshot,
};

// Thread-bound: neither `Send` nor `Sync`, for every flavor.
assert_not_impl_any!(ReadGuard<'static, Memb>: Send, Sync);
assert_not_impl_any!(ReadGuard<'static, Mb>: Send, Sync);
assert_not_impl_any!(ReadGuard<'static, Qsbr>: Send, Sync);
assert_not_impl_any!(DomainReadGuard<'static, Memb>: Send, Sync);
assert_not_impl_any!(DomainReadGuard<'static, Qsbr>: Send, Sync);
assert_not_impl_any!(RcuReadGuard: Send, Sync);
assert_not_impl_any!(Reader<Memb>: Send, Sync);
assert_not_impl_any!(Reader<Mb>: Send, Sync);
assert_not_impl_any!(Reader<Qsbr>: Send, Sync);
assert_not_impl_any!(OfflineGuard<'static>: Send, Sync);
assert_not_impl_any!(OnlineGuard<'static>: Send, Sync);
assert_not_impl_any!(Snapshot<'static, u32, Memb>: Send, Sync);
assert_not_impl_any!(Snapshot<'static, u32, Qsbr>: Send, Sync);

// Shared: `Send + Sync` for every payload the type accepts.
assert_impl_all!(Domain<Memb>: Send, Sync, Clone);
assert_impl_all!(Domain<Mb>: Send, Sync, Clone);
assert_impl_all!(Domain<Qsbr>: Send, Sync, Clone);
assert_impl_all!(RcuBox<u32, Memb>: Send, Sync);
assert_impl_all!(RcuBox<String, Qsbr>: Send, Sync);
assert_impl_all!(RcuBox<std::sync::Arc<Vec<u8>>, Mb>: Send, Sync);
assert_impl_all!(RcuOption<u32, Memb>: Send, Sync);
assert_impl_all!(RcuOption<String, Qsbr>: Send, Sync);
assert_impl_all!(Retired<u32, Memb>: Send, Sync);
// `Cell<u8>` is `Send` but not `Sync`: a payload `Retired` accepts and the cells do not.
assert_impl_all!(Retired<Cell<u8>, Qsbr>: Send, Sync);
assert_impl_all!(Retired<Box<dyn Send>, Mb>: Send, Sync);
// The error of a compare-exchange carries references and values across threads as its
// parts allow.
assert_impl_all!(CompareExchangeError<&'static u32, u32>: Send, Sync);
assert_not_impl_any!(CompareExchangeError<&'static u32, Cell<u8>>: Sync);
