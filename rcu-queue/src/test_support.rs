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

    /// How many elements have been dropped once every callback queued on `d` so far has
    /// run (the caller has dropped its guards and writers).
    pub fn freed(&self, d: &rcu_core::Domain<rcu_core::Mb>) -> usize {
        d.barrier();
        self.count()
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

/// Defines named `#[test]`s, each running a generic test body at one link kind:
/// `body: name(Kind), name(Kind);` (attributes before `body` go on each of its tests).
macro_rules! kind_tests {
    ($($(#[$attr:meta])* $body:ident: $($name:ident($kind:ty)),+;)*) => {$(
        kind_tests!(@group [$(#[$attr])*] $body $($name($kind))+);
    )*};
    (@group $attrs:tt $body:ident $($name:ident($kind:ty))+) => {$(
        kind_tests!(@one $attrs $body $name($kind));
    )+};
    (@one [$($attr:tt)*] $body:ident $name:ident($kind:ty)) => {
        #[test]
        $($attr)*
        fn $name() {
            $body::<$kind>();
        }
    };
}
pub(crate) use kind_tests;

/// A list of `E`s in a domain of its own.
pub(crate) type L<K> = crate::RcuList<E, K, rcu_core::Mb>;

/// A fresh domain, an empty list in it, a drop counter.
pub(crate) fn setup<K: crate::LinkKind>() -> (rcu_core::Domain<rcu_core::Mb>, L<K>, Drops)
where
    E: crate::Linked<K>,
{
    let d = rcu_core::Domain::new();
    let l = L::new_in(&d);
    (d, l, Drops::default())
}

/// Append `vals` at the end, with a cursor (the one insertion every kind has there).
pub(crate) fn fill<K: crate::LinkKind>(
    w: &mut crate::Writer<'_, E, K, rcu_core::Mb>,
    m: &Drops,
    vals: impl IntoIterator<Item = u32>,
) where
    E: crate::Linked<K>,
{
    let mut c = w.cursor();
    while c.move_next() {}
    for v in vals {
        c.insert_before(m.e(v));
    }
}

/// Check every invariant of the list from its writer, whatever its kind, and return its
/// values: each element's owner word names the head; each back pointer (QLIST, QTAILQ) is
/// the element's position; the head's last position (QSIMPLEQ, QTAILQ) is the last one.
pub(crate) fn check<K: crate::LinkKind>(w: &crate::Writer<'_, E, K, rcu_core::Mb>) -> Vec<u32>
where
    E: crate::Linked<K>,
{
    let head = w.list().head();
    let mut pos = head.front();
    let mut vals = vec![];
    loop {
        // SAFETY: the writer keeps every linked element and the head alive and unchanged
        // while it is borrowed; positions are the head's link or linked elements' links.
        let next = unsafe { pos.as_ref() }.next().load(Ordering::Relaxed);
        let Some(l) = core::ptr::NonNull::new(next) else {
            break;
        };
        // SAFETY: as above.
        let link = unsafe { l.as_ref() };
        assert_eq!(
            link.owner().load(Ordering::Relaxed),
            head.linked_id(),
            "owner word"
        );
        if let Some(prev) = link.prev() {
            assert_eq!(prev.load(Ordering::Relaxed), pos.as_ptr(), "back pointer");
        }
        // SAFETY: as above.
        vals.push(unsafe { <E as crate::Linked<K>>::from_link(l).as_ref() }.v);
        pos = l;
    }
    if K::TAIL {
        assert_eq!(head.tail(), pos, "the head's last position");
    }
    vals
}
