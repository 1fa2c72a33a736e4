//! Intrusive RCU lists: QEMU's `QLIST_*_RCU`, `QSIMPLEQ_*_RCU`, `QTAILQ_*_RCU` and
//! `QSLIST_*_RCU` macros (`include/qemu/rcu_queue.h`) as safe Rust generics.
//!
//! There is one list, [`RcuList<T, K, F>`](RcuList): elements of type `T` linked through
//! their `K` link, read under guards of flavor `F`'s domain. The link type is the list
//! kind, and each QEMU family is an alias: [`QList`] (links [`QListLink`]),
//! [`QSimpleQ`] ([`QSimpleQLink`]), [`QTailQ`] ([`QTailQLink`]), [`QSList`]
//! ([`QSListLink`]). The element embeds its links as fields; [`rcu_link!`] implements
//! [`Linked`], which maps the element to a link and back. A list owns its elements
//! (`Box<T>`): inserting takes the box, removing hands back a [`Retired`] that safe code
//! can only free after a grace period of the list's [`Domain`](rcu_core::Domain).
//!
//! - **Readers** traverse under a read guard of that domain ([`rcu_core::rcu_read_lock`],
//!   [`rcu_core::Reader::read_lock`], [`rcu_core::qsbr::rcu_read_lock`]); every `&T` they
//!   get borrows the guard, so none can outlive the critical section. They never block and
//!   never write shared memory.
//! - **Writers** need a [`Writer`]: [`RcuList::lock`] (the list's own mutex),
//!   [`RcuList::get_mut`] (exclusive access), or [`RcuList::lock_unchecked`] (`unsafe`:
//!   exclusion comes from elsewhere, like QEMU's BQL). A [`Cursor`] is a writer's position.
//!   The [`raw`] module has the same operations under the C names, for direct ports.
//! - **Several lists per element**: links take a tag type (`QListLink<ById>`,
//!   `QListLink<ByName>`), so one element can sit in several lists, of one kind or of
//!   several. One list owns it; the others are [`RcuIndex`]es of that list, whose rules
//!   (checked) keep the element alive exactly as long as any of them can reach it.
//!
//! ```
//! use rcu_core::{rcu_read_lock, rcu_barrier};
//! use rcu_queue::{rcu_link, QList, QListLink};
//! use std::sync::atomic::{AtomicBool, Ordering};
//!
//! struct Block {
//!     id: u32,
//!     size: u64,
//!     next: QListLink,
//! }
//! rcu_link!(Block, next: QListLink);
//!
//! let blocks: QList<Block> = QList::new();
//! let done = AtomicBool::new(false);
//! std::thread::scope(|s| {
//!     // A reader: traverses inside read-side critical sections, never blocks.
//!     s.spawn(|| {
//!         while !done.load(Ordering::Relaxed) {
//!             let guard = rcu_read_lock();
//!             let total: u64 = blocks.iter(&guard).map(|b| b.size).sum();
//!             assert!(total <= 10 * 4096);
//!         } // guard dropped: rcu_read_unlock
//!     });
//!     // A writer: inserts, then removes; removed blocks are freed after a grace period.
//!     s.spawn(|| {
//!         for id in 0..10 {
//!             let mut w = blocks.lock();
//!             w.insert_head(Box::new(Block { id, size: 4096, next: QListLink::new() }));
//!         }
//!         let mut w = blocks.lock();
//!         let removed = w.retain(|b| b.id % 2 == 0); // FOREACH_SAFE + REMOVE + call_rcu
//!         assert_eq!(removed, 5);
//!         done.store(true, Ordering::Relaxed);
//!     });
//! });
//! rcu_barrier(); // wait for the call_rcu callbacks that free the removed blocks
//! let guard = rcu_read_lock();
//! assert_eq!(blocks.iter(&guard).map(|b| b.id).collect::<Vec<_>>(), [8, 6, 4, 2, 0]);
//! ```
//!
//! # QEMU macro → Rust
//!
//! Reader-side forms take `&guard` and must run inside a read-side critical section of
//! the list's domain (checked: a guard of another domain panics). Writer-side forms are
//! methods of the writer handle (`w` below), its cursor (`c`), or the [`raw`] functions.
//! Each row is exercised by the unit test named in the last column: one generic test per
//! operation, run for each kind under these names, next to the code it tests (e.g.
//! `rcu_list::tests::qlist_empty_rcu`, `writer::tests::qtailq_remove_rcu`,
//! `simpleq::tests::qsimpleq_insert_tail_rcu`).
//!
//! | QEMU (`rcu_queue.h`) | Rust | test |
//! |---|---|---|
//! | `QLIST_EMPTY_RCU(head)` | [`QList::is_empty`]`(&g)`; writer: [`QListWriter::is_empty`] | `qlist_empty_rcu` |
//! | `QLIST_FIRST_RCU(head)` | [`QList::first`]`(&g)`; writer: [`QListWriter::first`] | `qlist_first_rcu` |
//! | `QLIST_NEXT_RCU(elm, field)` | [`QList::next`]`(elm, &g)`; writer: [`QListWriter::next`] | `qlist_next_rcu` |
//! | `QLIST_INSERT_HEAD_RCU(head, elm, field)` | [`QListWriter::insert_head`], [`raw::qlist_insert_head_rcu`] | `qlist_insert_head_rcu` |
//! | `QLIST_INSERT_AFTER_RCU(listelm, elm, field)` | [`QListWriter::insert_after`], [`QListCursor::insert_after`], [`raw::qlist_insert_after_rcu`] | `qlist_insert_after_rcu` |
//! | `QLIST_INSERT_BEFORE_RCU(listelm, elm, field)` | [`QListWriter::insert_before`], [`QListCursor::insert_before`], [`raw::qlist_insert_before_rcu`] | `qlist_insert_before_rcu` |
//! | `QLIST_REMOVE_RCU(elm, field)` | [`QListWriter::remove`] → [`Retired`], [`QListCursor::remove_current`], [`raw::qlist_remove_rcu`] | `qlist_remove_rcu` |
//! | `QLIST_FOREACH_RCU(var, head, field)` | `for e in `[`QList::iter`]`(&g)`; writer: [`QListWriter::iter`] | `qlist_foreach_rcu` |
//! | `QLIST_FOREACH_SAFE_RCU(var, head, field, next)` | readers: [`QList::iter`] (loads `next` before yielding); writers removing while walking: [`QListWriter::retain`], or a [`QListCursor`] with [`remove_current`](QListCursor::remove_current) | `qlist_foreach_safe_rcu` |
//! | `QSIMPLEQ_EMPTY_RCU(head)` | [`QSimpleQ::is_empty`]`(&g)`; writer: [`QSimpleQWriter::is_empty`] | `qsimpleq_empty_rcu` |
//! | `QSIMPLEQ_FIRST_RCU(head)` | [`QSimpleQ::first`]`(&g)`; writer: [`QSimpleQWriter::first`] | `qsimpleq_first_rcu` |
//! | `QSIMPLEQ_NEXT_RCU(elm, field)` | [`QSimpleQ::next`]`(elm, &g)`; writer: [`QSimpleQWriter::next`] | `qsimpleq_next_rcu` |
//! | `QSIMPLEQ_INSERT_HEAD_RCU(head, elm, field)` | [`QSimpleQWriter::insert_head`], [`raw::qsimpleq_insert_head_rcu`] | `qsimpleq_insert_head_rcu` |
//! | `QSIMPLEQ_INSERT_TAIL_RCU(head, elm, field)` | [`QSimpleQWriter::insert_tail`], [`QSimpleQCursor::insert_before`] at the end, [`raw::qsimpleq_insert_tail_rcu`] | `qsimpleq_insert_tail_rcu` |
//! | `QSIMPLEQ_INSERT_AFTER_RCU(head, listelm, elm, field)` | [`QSimpleQWriter::insert_after`], [`QSimpleQCursor::insert_after`], [`raw::qsimpleq_insert_after_rcu`] | `qsimpleq_insert_after_rcu` |
//! | `QSIMPLEQ_REMOVE_HEAD_RCU(head, field)` | [`QSimpleQWriter::remove_head`] → [`Retired`], [`raw::qsimpleq_remove_head_rcu`] | `qsimpleq_remove_head_rcu` |
//! | `QSIMPLEQ_REMOVE_RCU(head, elm, type, field)` | [`QSimpleQWriter::remove`] → [`Retired`], [`QSimpleQCursor::remove_current`] (O(1)), [`raw::qsimpleq_remove_rcu`] | `qsimpleq_remove_rcu` |
//! | `QSIMPLEQ_FOREACH_RCU(var, head, field)` | [`QSimpleQ::iter`]`(&g)`; writer: [`QSimpleQWriter::iter`] | `qsimpleq_foreach_rcu` |
//! | `QSIMPLEQ_FOREACH_SAFE_RCU(var, head, field, next)` | [`QSimpleQ::iter`]; writers: [`QSimpleQWriter::retain`], [`QSimpleQCursor`] | `qsimpleq_foreach_safe_rcu` |
//! | `QTAILQ_EMPTY_RCU(head)` | [`QTailQ::is_empty`]`(&g)`; writer: [`QTailQWriter::is_empty`] | `qtailq_empty_rcu` |
//! | `QTAILQ_FIRST_RCU(head)` | [`QTailQ::first`]`(&g)`; writer: [`QTailQWriter::first`] | `qtailq_first_rcu` |
//! | `QTAILQ_NEXT_RCU(elm, field)` | [`QTailQ::next`]`(elm, &g)`; writer: [`QTailQWriter::next`] | `qtailq_next_rcu` |
//! | `QTAILQ_INSERT_HEAD_RCU(head, elm, field)` | [`QTailQWriter::insert_head`], [`raw::qtailq_insert_head_rcu`] | `qtailq_insert_head_rcu` |
//! | `QTAILQ_INSERT_TAIL_RCU(head, elm, field)` | [`QTailQWriter::insert_tail`], [`QTailQCursor::insert_before`] at the end, [`raw::qtailq_insert_tail_rcu`] | `qtailq_insert_tail_rcu` |
//! | `QTAILQ_INSERT_AFTER_RCU(head, listelm, elm, field)` | [`QTailQWriter::insert_after`], [`QTailQCursor::insert_after`], [`raw::qtailq_insert_after_rcu`] | `qtailq_insert_after_rcu` |
//! | `QTAILQ_INSERT_BEFORE_RCU(listelm, elm, field)` | [`QTailQWriter::insert_before`], [`QTailQCursor::insert_before`], [`raw::qtailq_insert_before_rcu`] | `qtailq_insert_before_rcu` |
//! | `QTAILQ_REMOVE_RCU(head, elm, field)` (sets `tql_prev = NULL`) | [`QTailQWriter::remove`] → [`Retired`] (link `prev` nulled, [`QTailQLink::is_linked`] false), [`QTailQCursor::remove_current`], [`raw::qtailq_remove_rcu`] | `qtailq_remove_rcu` |
//! | `QTAILQ_FOREACH_RCU(var, head, field)` | [`QTailQ::iter`]`(&g)`; writer: [`QTailQWriter::iter`] | `qtailq_foreach_rcu` |
//! | `QTAILQ_FOREACH_SAFE_RCU(var, head, field, next)` | [`QTailQ::iter`]; writers: [`QTailQWriter::retain`], [`QTailQCursor`] | `qtailq_foreach_safe_rcu` |
//! | `QTAILQ_LAST`, `QTAILQ_PREV`, `QTAILQ_FOREACH_REVERSE` (writer only, not RCU-safe) | [`QTailQWriter::last`], [`QTailQWriter::prev`], [`QTailQWriter::iter_rev`] | `qtailq_reverse_is_writer_only` |
//! | `QSLIST_EMPTY_RCU(head)` | [`QSList::is_empty`]`(&g)`; writer: [`QSListWriter::is_empty`] | `qslist_empty_rcu` |
//! | `QSLIST_FIRST_RCU(head)` | [`QSList::first`]`(&g)`; writer: [`QSListWriter::first`] | `qslist_first_rcu` |
//! | `QSLIST_NEXT_RCU(elm, field)` | [`QSList::next`]`(elm, &g)`; writer: [`QSListWriter::next`] | `qslist_next_rcu` |
//! | `QSLIST_INSERT_HEAD_RCU(head, elm, field)` | [`QSListWriter::insert_head`], [`raw::qslist_insert_head_rcu`] | `qslist_insert_head_rcu` |
//! | `QSLIST_INSERT_AFTER_RCU(head, listelm, elm, field)` | [`QSListWriter::insert_after`], [`QSListCursor::insert_after`], [`raw::qslist_insert_after_rcu`] | `qslist_insert_after_rcu` |
//! | `QSLIST_REMOVE_HEAD_RCU(head, field)` | [`QSListWriter::remove_head`] → [`Retired`], [`raw::qslist_remove_head_rcu`] | `qslist_remove_head_rcu` |
//! | `QSLIST_REMOVE_RCU(head, elm, type, field)` | [`QSListWriter::remove`] → [`Retired`], [`QSListCursor::remove_current`] (O(1)), [`raw::qslist_remove_rcu`] | `qslist_remove_rcu` |
//! | `QSLIST_FOREACH_RCU(var, head, field)` | [`QSList::iter`]`(&g)`; writer: [`QSListWriter::iter`] | `qslist_foreach_rcu` |
//! | `QSLIST_FOREACH_SAFE_RCU(var, head, field, next)` | [`QSList::iter`]; writers: [`QSListWriter::retain`], [`QSListCursor`] | `qslist_foreach_safe_rcu` |
//! | `QLIST_ENTRY` / `QSIMPLEQ_ENTRY` / `QTAILQ_ENTRY` / `QSLIST_ENTRY` | [`QListLink`] / [`QSimpleQLink`] / [`QTailQLink`] / [`QSListLink`], with [`rcu_link!`] | `link::tests` |
//! | `QLIST_HEAD_INITIALIZER`, `QLIST_INIT` (and the other families') | [`QList::new`], [`QList::new_in`] (and the other lists') | every test |
//! | `call_rcu(&elm->rcu, reclaim)`, `g_free_rcu(elm, rcu)` after a `*_REMOVE_RCU` | [`Retired::call`], [`Retired::defer`] (or drop the `Retired`) | `retired_call_defer_synchronize` |
//! | `synchronize_rcu(); g_free(elm);` after a `*_REMOVE_RCU` | [`Retired::synchronize`] (returns the `Box<T>`) | `retired_call_defer_synchronize` |
//!
//! The lists are concurrency-tested in `tests/qemu_test_rcu_list.rs` (a port of QEMU's
//! `tests/unit/test-rcu-list.c`) and `tests/concurrent_links.rs` (several lists per
//! element, replacement), and model-checked in `loom-tests/tests/loom_queue.rs`.
//!
//! # What the types rule out
//!
//! A reference read under a guard cannot outlive the guard:
//!
//! ```compile_fail
//! use rcu_core::rcu_read_lock;
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! list.lock().insert_head(Box::new(E { v: 1, link: QListLink::new() }));
//! let first: &E = {
//!     let guard = rcu_read_lock();
//!     list.first(&guard).unwrap() // error: `guard` does not live long enough
//! };
//! println!("{}", first.v);
//! ```
//!
//! The compiling twin copies what it needs out of the critical section:
//!
//! ```
//! use rcu_core::rcu_read_lock;
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! list.lock().insert_head(Box::new(E { v: 1, link: QListLink::new() }));
//! let first: u32 = {
//!     let guard = rcu_read_lock();
//!     list.first(&guard).unwrap().v
//! };
//! assert_eq!(first, 1);
//! ```
//!
//! Writer operations exist only on the writer handle, so they cannot be called without
//! the writer proof:
//!
//! ```compile_fail
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! list.insert_head(Box::new(E { link: QListLink::new() })); // error: no method `insert_head`
//! ```
//!
//! The compiling twin takes the writer lock first:
//!
//! ```
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! list.lock().insert_head(Box::new(E { link: QListLink::new() }));
//! ```
//!
//! A writer-side reference cannot be held across a change to the list (the element could
//! be freed by then):
//!
//! ```compile_fail
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! let mut w = list.lock();
//! w.insert_head(Box::new(E { v: 1, link: QListLink::new() }));
//! let first = w.first().unwrap();
//! let _ = w.remove(first).synchronize(); // error: `w` is already borrowed by `first`
//! println!("{}", first.v);
//! ```
//!
//! The compiling twin names the element through a read guard, which keeps it alive, or
//! with a cursor:
//!
//! ```
//! use rcu_core::rcu_read_lock;
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! let mut w = list.lock();
//! w.insert_head(Box::new(E { v: 1, link: QListLink::new() }));
//! w.insert_head(Box::new(E { v: 0, link: QListLink::new() }));
//! {
//!     let guard = rcu_read_lock();
//!     let first = list.first(&guard).unwrap();
//!     w.remove(first).defer(); // freed after `guard` (and every other reader) is done
//!     assert_eq!(first.v, 0);
//! }
//! let retired = w.cursor().remove_current().unwrap();
//! assert_eq!(retired.synchronize().v, 1); // after a grace period, the Box is ours
//! ```
//!
//! An element, with its link, is moved into the list and cannot be touched by value
//! while linked:
//!
//! ```compile_fail
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! let b = Box::new(E { v: 1, link: QListLink::new() });
//! list.lock().insert_head(b);
//! let moved: E = *b; // error: use of moved value `b`
//! # let _ = moved.v;
//! ```
//!
//! The compiling twin gets it back (unlinked) after a grace period:
//!
//! ```
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! let b = Box::new(E { v: 1, link: QListLink::new() });
//! let mut w = list.lock();
//! w.insert_head(b);
//! let b = w.cursor().remove_current().unwrap().synchronize();
//! assert!(!b.link.is_linked());
//! let moved: E = *b;
//! assert_eq!(moved.v, 1);
//! ```
//!
//! A writer handle stays on its thread (it may hold a `MutexGuard`):
//!
//! ```compile_fail
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! let w = list.lock();
//! std::thread::scope(|s| {
//!     s.spawn(move || drop(w)); // error: `*mut ()` cannot be sent between threads safely
//! });
//! ```
//!
//! The compiling twin shares the list and locks it on the other thread:
//!
//! ```
//! use rcu_queue::{rcu_link, QList, QListLink};
//! struct E { link: QListLink }
//! rcu_link!(E, link: QListLink);
//! let list: QList<E> = QList::new();
//! std::thread::scope(|s| {
//!     s.spawn(|| drop(list.lock()));
//! });
//! ```
//!
//! # Beyond QEMU's macros
//!
//! | Linux / Rust idiom | Rust | test |
//! |---|---|---|
//! | `list_replace_rcu(old, new)` | [`Writer::replace`] (QLIST, QTAILQ), [`Cursor::replace_current`] (every kind) | `replace_is_seen_exactly_once_*` (`tests/concurrent_links.rs`) |
//! | `drain_filter` / `extract_if` | [`Writer::extract_if`] → [`Retired`]s | `writer::tests::extract_if_hands_back_retired_elements` |
//! | an object in a hash chain and an LRU | tagged links, [`RcuIndex`] | `element_in_two_lists_of_one_kind` (`tests/concurrent_links.rs`) |
//!
//! # Memory ordering
//!
//! Readers load `first`/`next` with `Acquire` (QEMU's `qatomic_rcu_read`; a plain load on
//! x86-64). Writers set up every field of a new element with `Relaxed` stores and publish
//! it with a single `Release` store (QEMU's `qatomic_rcu_set`) into the pointer that will
//! point at it. The removal store, a relaxed `qatomic_set` in QEMU, is `Release` here: a
//! reader that loads the successor from a relaxed store has no happens-before edge to the
//! successor's initialisation in the C11 model (the loom model
//! `qlist_insert_then_remove_vs_reader` fails without it). A replacement is one `Release`
//! store of the new element, which already points at the old one's successor. The owner
//! word is stored with `Release` when an element is linked and loaded with `Acquire` by
//! [`RcuList::next`], so a reader that sees an element's current membership sees the
//! `next` of that membership. `prev` pointers are writer-only and `Relaxed`, ordered
//! between writers by their mutual exclusion. Each atomic carries its argument in a
//! comment in the source.
#![doc(test(attr(deny(warnings))))]

#[cfg(not(loom))]
mod auto_traits;
mod cursor;
mod link;
mod list;
mod rcu_list;
mod retired;
mod role;
mod simpleq;
mod slist;
mod splice;
mod sync;
mod tailq;
mod writer;

pub use cursor::{Cursor, ExtractIf};
pub use link::{DoublyLinked, Iter, LinkKind, Linked, SinglyLinked, WithTail};
pub use list::{QList, QListCursor, QListLink, QListWriter};
pub use rcu_core::Retired;
pub use rcu_list::{RcuIndex, RcuList};
pub use role::{Index, Owner, Role};
pub use simpleq::{QSimpleQ, QSimpleQCursor, QSimpleQLink, QSimpleQWriter};
pub use slist::{QSList, QSListCursor, QSListLink, QSListWriter};
pub use tailq::{QTailQ, QTailQCursor, QTailQLink, QTailQWriter, RevIter};
pub use writer::Writer;

pub mod raw;

#[cfg(all(test, not(loom)))]
mod test_support;

/// The crate README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
