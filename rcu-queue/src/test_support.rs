//! Shared helpers for the unit tests: an element type that can sit in one list of each
//! kind, another that can sit in two of one kind (tagged links), both counting their
//! drops; the element count of the longer tests (small under Miri).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::{rcu_link, QListLink, QSListLink, QSimpleQLink, QTailQLink};

pub(crate) struct E {
    pub v: u32,
    pub ql: QListLink,
    pub sq: QSimpleQLink,
    pub tq: QTailQLink,
    pub sl: QSListLink,
    drops: Arc<AtomicUsize>,
}

rcu_link!(E, ql: QListLink);
rcu_link!(E, sq: QSimpleQLink);
rcu_link!(E, tq: QTailQLink);
rcu_link!(E, sl: QSListLink);

impl Drop for E {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// The tag of `X`'s second QLIST link.
pub(crate) struct B;

/// An element for owning lists with indexes: owned through `a`, indexed through the
/// others (one of them of the same kind as `a`).
pub(crate) struct X {
    pub v: u32,
    pub a: QListLink,
    pub b: QListLink<B>,
    pub t: QTailQLink,
    pub s: QSListLink,
    drops: Arc<AtomicUsize>,
}

rcu_link!(X, a: QListLink);
rcu_link!(X, b: QListLink<B>);
rcu_link!(X, t: QTailQLink);
rcu_link!(X, s: QSListLink);

impl Drop for X {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// A drop counter and an element factory.
#[derive(Clone, Default)]
pub(crate) struct Drops(Arc<AtomicUsize>);

impl Drops {
    pub fn e(&self, v: u32) -> Box<E> {
        Box::new(E {
            v,
            ql: QListLink::new(),
            sq: QSimpleQLink::new(),
            tq: QTailQLink::new(),
            sl: QSListLink::new(),
            drops: self.0.clone(),
        })
    }

    pub fn x(&self, v: u32) -> Box<X> {
        Box::new(X {
            v,
            a: QListLink::new(),
            b: QListLink::new(),
            t: QTailQLink::new(),
            s: QSListLink::new(),
            drops: self.0.clone(),
        })
    }

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// An element with a value.
pub(crate) trait Val {
    fn val(&self) -> u32;
}

impl Val for E {
    fn val(&self) -> u32 {
        self.v
    }
}

impl Val for X {
    fn val(&self) -> u32 {
        self.v
    }
}

/// The values of an iterator's elements.
pub(crate) fn vals<'a, V: Val + 'a>(it: impl Iterator<Item = &'a V>) -> Vec<u32> {
    it.map(V::val).collect()
}

/// How many elements the longer walks use (fewer under Miri, which is slow).
pub(crate) const MANY: u32 = if cfg!(miri) { 12 } else { 100 };

/// Run `f`, which must panic with a message containing `msg`; the state it leaves is
/// for the caller to check.
pub(crate) fn panics_with(msg: &str, f: impl FnOnce()) {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the operation should have panicked");
    let text = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap_or_default();
    assert!(
        text.contains(msg),
        "panicked with {text:?}, expected {msg:?}"
    );
}
