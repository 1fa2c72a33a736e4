//! Shared helpers for the unit tests: one element type that can sit in one list of each
//! kind, and counts its drops; the element count of the longer tests (small under Miri).

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

    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }
}

/// The values of an iterator's elements.
pub(crate) fn vals<'a>(it: impl Iterator<Item = &'a E>) -> Vec<u32> {
    it.map(|e| e.v).collect()
}

/// How many elements the longer walks use (fewer under Miri, which is slow).
pub(crate) const MANY: u32 = if cfg!(miri) { 12 } else { 100 };
