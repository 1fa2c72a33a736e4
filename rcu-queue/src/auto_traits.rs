//! The `Send`/`Sync` promises of the public types, proven at compile time: a change that
//! breaks one fails to build.
//!
//! - Lists and indexes are `Send + Sync` for every element they accept (elements must be
//!   `Send + Sync`: readers on any thread get `&T`, and a removed element is freed on the
//!   domain's worker), for every flavor.
//! - A [`Retired`] element is `Send + Sync` (rcu-core's promise, re-checked here for the
//!   re-export).
//! - Writer handles, cursors and iterators stay on their thread (a writer may hold the
//!   list's `MutexGuard`; a cursor and an iterator point into the list under a writer or a
//!   read guard that is thread-bound).

use rcu_core::{Mb, Memb, Qsbr};
use static_assertions::{assert_impl_all, assert_not_impl_any};

use crate::{
    rcu_link, Cursor, Iter, QList, QListLink, QSList, QSListLink, QSimpleQ, QSimpleQLink, QTailQ,
    QTailQLink, RcuIndex, Retired, Writer,
};

/// An element that can sit in one list of each kind (plus a tagged index).
struct E {
    _l: QListLink,
    _i: QListLink<Tag>,
    _s: QSimpleQLink,
    _t: QTailQLink,
    _sl: QSListLink,
}
struct Tag;
rcu_link!(E, _l: QListLink);
rcu_link!(E, _i: QListLink<Tag>);
rcu_link!(E, _s: QSimpleQLink);
rcu_link!(E, _t: QTailQLink);
rcu_link!(E, _sl: QSListLink);

assert_impl_all!(QList<E, Memb>: Send, Sync);
assert_impl_all!(QList<E, Qsbr>: Send, Sync);
assert_impl_all!(QSimpleQ<E, Mb>: Send, Sync);
assert_impl_all!(QTailQ<E, Memb>: Send, Sync);
assert_impl_all!(QSList<E, Qsbr>: Send, Sync);
assert_impl_all!(RcuIndex<E, QListLink<Tag>, Memb>: Send, Sync);
assert_impl_all!(Retired<E, Memb>: Send, Sync);
assert_impl_all!(QListLink: Send, Sync);
assert_impl_all!(QTailQLink: Send, Sync);

assert_not_impl_any!(Writer<'static, E, QListLink, Memb>: Send, Sync);
assert_not_impl_any!(Writer<'static, E, QTailQLink, Qsbr>: Send, Sync);
assert_not_impl_any!(Cursor<'static, E, QListLink, Memb>: Send, Sync);
assert_not_impl_any!(Iter<'static, E, QListLink>: Send, Sync);
