//! The operations under their C names, without the safe layer's checks, for direct ports
//! whose writer exclusion comes from elsewhere.
//!
//! Each C macro is one choice of a position (the front, the tail, after an element,
//! before it) for the one insertion or removal every kind shares; the table at the end of
//! this file makes each C name that choice at its kind. Like C's `field` argument, the
//! kind and the element type select the link.
//!
//! Every function is `unsafe` with these contracts, which its `# Safety` section cites:
//!
//! - (W1) The caller is the only writer of the list (the one named, or the one that holds
//!   the element named) during the call, and every earlier writer operation on it
//!   happens-before the call. That list is an owning list: the raw functions do not serve
//!   indexes ([`RcuIndex`](crate::RcuIndex)), which own nothing.
//! - (W2) `elm` came from `Box::into_raw`, is live and not linked into any list; the list
//!   takes ownership (it frees it when dropped). Checked: a linked `elm` panics before
//!   anything changes.
//! - (W3) `listelm`, the element named as a position (or the one to remove), is linked
//!   into that list.
//! - (W4) A removed element is in none of the list's indexes ([`RcuIndex`](crate::RcuIndex));
//!   afterwards the caller owns it and frees it only after a grace period of the list's
//!   domain (with `Box::from_raw` then, or kept in a [`Retired`](crate::Retired)).
//!
//! The lists' reader methods (`first`, `next`, `iter`, `is_empty`) are already safe and
//! serve the reader-side macros.
//!
//! ```
//! use rcu_queue::{raw, rcu_link, QList, QListLink};
//! use std::ptr::NonNull;
//!
//! struct E { v: u32, link: QListLink }
//! rcu_link!(E, link: QListLink);
//!
//! let list: QList<E> = QList::new();
//! let a = NonNull::new(Box::into_raw(Box::new(E { v: 1, link: QListLink::new() }))).unwrap();
//! let b = NonNull::new(Box::into_raw(Box::new(E { v: 2, link: QListLink::new() }))).unwrap();
//! // SAFETY: this thread is the only writer (W1); `a` and `b` are fresh boxes (W2); `a`
//! // is linked when `b` is inserted after it (W3).
//! unsafe {
//!     raw::qlist_insert_head_rcu(&list, a);
//!     raw::qlist_insert_after_rcu(a, b);
//! }
//! // SAFETY: W1 and W3 as above; `a` is in no index and freed after a grace period (W4).
//! let removed = unsafe { raw::qlist_remove_rcu(a) };
//! list.domain().synchronize();
//! // SAFETY: a grace period has elapsed since the removal; we own the pointer.
//! let a = unsafe { Box::from_raw(removed.as_ptr()) };
//! assert_eq!(a.v, 1);
//! ```

use core::ptr::NonNull;

use rcu_core::Flavor;

use crate::link::{not_in_list, LinkKind, Linked};
use crate::rcu_list::RcuList;
use crate::splice::{head_of, pos_of, raw_insert, raw_remove};
use crate::{QListLink, QSListLink, QSimpleQLink, QTailQLink};

/// At the front. W1, W2.
unsafe fn insert_head<T, K, F>(list: &RcuList<T, K, F>, elm: NonNull<T>)
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    // SAFETY: W1, W2; the front is a position.
    unsafe { raw_insert(list.head(), list.head().front(), elm) }
}

/// At the tail (meaningful for the kinds with `TAIL`). W1, W2.
unsafe fn insert_tail<T, K, F>(list: &RcuList<T, K, F>, elm: NonNull<T>)
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    // SAFETY: W1, W2; the last position is a position.
    unsafe { raw_insert(list.head(), list.head().tail(), elm) }
}

/// After `listelm`, in `list`. W1, W2, W3.
unsafe fn insert_after<T, K, F>(list: &RcuList<T, K, F>, listelm: NonNull<T>, elm: NonNull<T>)
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    // SAFETY: W1, W2; the link of a linked element (W3) is a position.
    unsafe { raw_insert(list.head(), T::link(listelm), elm) }
}

/// After `listelm`, in the list that holds it. W1, W2, W3.
unsafe fn insert_after_elem<T: Linked<K>, K: LinkKind>(listelm: NonNull<T>, elm: NonNull<T>) {
    // SAFETY: `listelm` is live and linked (W3): its owner word names its list's head,
    // and its link is a position; W1, W2.
    unsafe { raw_insert(head_of(T::link(listelm)), T::link(listelm), elm) }
}

/// Before `listelm` (its back pointer), in the list that holds it. W1, W2, W3.
unsafe fn insert_before_elem<T: Linked<K>, K: LinkKind>(listelm: NonNull<T>, elm: NonNull<T>) {
    // SAFETY: as in `insert_after_elem`; the position of a linked element is a position.
    unsafe {
        let head = head_of(T::link(listelm));
        raw_insert(head, pos_of(head, T::link(listelm)), elm)
    }
}

/// The front element, if any. W1, W4.
unsafe fn remove_head<T, K, F>(list: &RcuList<T, K, F>) -> Option<NonNull<T>>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    // SAFETY: W1, W4; the front is a position.
    unsafe { raw_remove(list.head(), list.head().front()) }
}

/// `elm`, from `list` (a walk for the singly linked kinds). W1, W3, W4.
unsafe fn remove<T, K, F>(list: &RcuList<T, K, F>, elm: NonNull<T>) -> NonNull<T>
where
    T: Linked<K> + Send + Sync + 'static,
    K: LinkKind,
    F: Flavor,
{
    // SAFETY: W1, W3, W4; `pos_of` finds `elm`'s position, so there is an element there.
    unsafe { raw_remove(list.head(), pos_of(list.head(), T::link(elm))) }
        .unwrap_or_else(|| not_in_list())
}

/// `elm`, from the list that holds it (its back pointer). W1, W3, W4.
unsafe fn remove_elem<T: Linked<K>, K: LinkKind>(elm: NonNull<T>) -> NonNull<T> {
    // SAFETY: as in `insert_before_elem`; W4.
    unsafe {
        let head = head_of(T::link(elm));
        raw_remove(head, pos_of(head, T::link(elm)))
    }
    .unwrap_or_else(|| not_in_list())
}

/// Defines each C name as one of the operations above at one link kind (any tag). An
/// entry that names a list (`list,` first) takes it as `&RcuList<T, Kind<Tag>, F>`; one
/// that does not finds the list from the element, as C does.
macro_rules! c_names {
    () => {};
    (
        $(#[$doc:meta])* $name:ident = $op:ident::<$kind:ident>(list $(, $arg:ident)*)
        $(-> $ret:ty)?; $($rest:tt)*
    ) => {
        $(#[$doc])*
        pub unsafe fn $name<T, F, Tag>(list: &RcuList<T, $kind<Tag>, F>, $($arg: NonNull<T>),*) $(-> $ret)?
        where
            T: Linked<$kind<Tag>> + Send + Sync + 'static,
            F: Flavor,
            Tag: 'static,
        {
            // SAFETY: the contract this function documents is the operation's.
            unsafe { $op(list, $($arg),*) }
        }
        c_names!($($rest)*);
    };
    (
        $(#[$doc:meta])* $name:ident = $op:ident::<$kind:ident>($($arg:ident),*)
        $(-> $ret:ty)?; $($rest:tt)*
    ) => {
        $(#[$doc])*
        pub unsafe fn $name<T: Linked<$kind<Tag>>, Tag: 'static>($($arg: NonNull<T>),*) $(-> $ret)? {
            // SAFETY: the contract this function documents is the operation's.
            unsafe { $op::<T, $kind<Tag>>($($arg),*) }
        }
        c_names!($($rest)*);
    };
}

c_names! {
    /// `QLIST_INSERT_HEAD_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qlist_insert_head_rcu = insert_head::<QListLink>(list, elm);
    /// `QLIST_INSERT_AFTER_RCU(listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qlist_insert_after_rcu = insert_after_elem::<QListLink>(listelm, elm);
    /// `QLIST_INSERT_BEFORE_RCU(listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qlist_insert_before_rcu = insert_before_elem::<QListLink>(listelm, elm);
    /// `QLIST_REMOVE_RCU(elm, field)`. Returns the element's pointer as the list stored it
    /// (the one to free, after a grace period); its `next` stays for readers on it.
    ///
    /// # Safety
    ///
    /// W1, W3, W4 (see the [module docs](self)).
    qlist_remove_rcu = remove_elem::<QListLink>(elm) -> NonNull<T>;

    /// `QSIMPLEQ_INSERT_HEAD_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qsimpleq_insert_head_rcu = insert_head::<QSimpleQLink>(list, elm);
    /// `QSIMPLEQ_INSERT_TAIL_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qsimpleq_insert_tail_rcu = insert_tail::<QSimpleQLink>(list, elm);
    /// `QSIMPLEQ_INSERT_AFTER_RCU(head, listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qsimpleq_insert_after_rcu = insert_after::<QSimpleQLink>(list, listelm, elm);
    /// `QSIMPLEQ_REMOVE_HEAD_RCU(head, field)`: the first element as the queue stored it,
    /// or `None` when empty.
    ///
    /// # Safety
    ///
    /// W1, W4 (see the [module docs](self)).
    qsimpleq_remove_head_rcu = remove_head::<QSimpleQLink>(list) -> Option<NonNull<T>>;
    /// `QSIMPLEQ_REMOVE_RCU(head, elm, type, field)`: walks from the head to `elm`, unlinks
    /// it and returns it as the queue stored it.
    ///
    /// # Safety
    ///
    /// W1, W3, W4 (see the [module docs](self)).
    qsimpleq_remove_rcu = remove::<QSimpleQLink>(list, elm) -> NonNull<T>;

    /// `QTAILQ_INSERT_HEAD_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qtailq_insert_head_rcu = insert_head::<QTailQLink>(list, elm);
    /// `QTAILQ_INSERT_TAIL_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qtailq_insert_tail_rcu = insert_tail::<QTailQLink>(list, elm);
    /// `QTAILQ_INSERT_AFTER_RCU(head, listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qtailq_insert_after_rcu = insert_after::<QTailQLink>(list, listelm, elm);
    /// `QTAILQ_INSERT_BEFORE_RCU(listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qtailq_insert_before_rcu = insert_before_elem::<QTailQLink>(listelm, elm);
    /// `QTAILQ_REMOVE_RCU(head, elm, field)`: unlinks `elm`, sets its `prev` to null (not
    /// in a list), keeps its `next` for readers on it, and returns it as the queue stored
    /// it.
    ///
    /// # Safety
    ///
    /// W1, W3, W4 (see the [module docs](self)).
    qtailq_remove_rcu = remove::<QTailQLink>(list, elm) -> NonNull<T>;

    /// `QSLIST_INSERT_HEAD_RCU(head, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2 (see the [module docs](self)).
    qslist_insert_head_rcu = insert_head::<QSListLink>(list, elm);
    /// `QSLIST_INSERT_AFTER_RCU(head, listelm, elm, field)`.
    ///
    /// # Safety
    ///
    /// W1, W2, W3 (see the [module docs](self)).
    qslist_insert_after_rcu = insert_after::<QSListLink>(list, listelm, elm);
    /// `QSLIST_REMOVE_HEAD_RCU(head, field)`: the first element as the list stored it, or
    /// `None` when empty.
    ///
    /// # Safety
    ///
    /// W1, W4 (see the [module docs](self)).
    qslist_remove_head_rcu = remove_head::<QSListLink>(list) -> Option<NonNull<T>>;
    /// `QSLIST_REMOVE_RCU(head, elm, type, field)`: walks from the head to `elm`, unlinks it
    /// and returns it as the list stored it.
    ///
    /// # Safety
    ///
    /// W1, W3, W4 (see the [module docs](self)).
    qslist_remove_rcu = remove::<QSListLink>(list, elm) -> NonNull<T>;
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::test_support::{check, setup, Drops, E};

    /// Every C name does what its macro does, at the position it names; the checks walk
    /// each list's back pointers, tail and owner words.
    #[test]
    fn c_names_choose_their_positions() {
        let (d, ql, m) = setup::<QListLink>();
        let (_, tq, _) = setup::<QTailQLink>();
        let (_, sq, _) = setup::<QSimpleQLink>();
        let (_, sl, _) = setup::<QSListLink>();
        let p = |v| NonNull::new(Box::into_raw(m.e(v))).unwrap();
        let mut gone = vec![];
        // SAFETY: this thread is the only writer of each list (W1); every `p(..)` is a
        // fresh box (W2); elements named as positions or removed are linked (W3); removed
        // ones are in no index and freed only after the grace period below (W4).
        unsafe {
            let (one, three) = (p(1), p(3));
            qlist_insert_head_rcu(&ql, three);
            qlist_insert_before_rcu(three, one);
            qlist_insert_after_rcu(one, p(2));
            gone.push(qlist_remove_rcu(three));

            let (one, four) = (p(1), p(4));
            qtailq_insert_tail_rcu(&tq, four);
            qtailq_insert_head_rcu(&tq, one);
            qtailq_insert_after_rcu(&tq, one, p(2));
            qtailq_insert_before_rcu(four, p(3));
            gone.push(qtailq_remove_rcu(&tq, one));

            let two = p(2);
            qsimpleq_insert_head_rcu(&sq, two);
            qsimpleq_insert_tail_rcu(&sq, p(4));
            qsimpleq_insert_after_rcu(&sq, two, p(3));
            gone.extend(qsimpleq_remove_head_rcu(&sq));
            qsimpleq_insert_head_rcu(&sq, p(1));
            let five = p(5);
            qsimpleq_insert_tail_rcu(&sq, five);
            gone.push(qsimpleq_remove_rcu(&sq, five));

            let last = p(9);
            qslist_insert_head_rcu(&sl, last);
            qslist_insert_head_rcu(&sl, p(0));
            qslist_insert_after_rcu(&sl, last, p(8));
            gone.extend(qslist_remove_head_rcu(&sl));
            gone.push(qslist_remove_rcu(&sl, last));
            assert!(qslist_remove_head_rcu(&sl).is_some());
            assert!(qslist_remove_head_rcu(&sl).is_none());
        }
        assert_eq!(check(&ql.lock()), [1, 2]);
        assert_eq!(check(&tq.lock()), [2, 3, 4]);
        assert_eq!(check(&sq.lock()), [1, 3, 4]);
        assert_eq!(check(&sl.lock()), []);
        d.synchronize();
        let gone: Vec<u32> = gone
            .into_iter()
            // SAFETY: a grace period has passed since the removals; we own each element.
            .map(|e| unsafe { Box::from_raw(e.as_ptr()) }.v)
            .collect();
        assert_eq!(gone, [3, 1, 2, 5, 0, 9]);
    }

    #[test]
    #[should_panic(expected = "already linked")]
    fn inserting_a_linked_element_panics() {
        let (_d, q, m) = setup::<QTailQLink>();
        let e = NonNull::new(Box::into_raw(m.e(1))).unwrap();
        // SAFETY: only writer; the second call breaks W2 on purpose, and the check catches
        // it before anything changes.
        unsafe {
            qtailq_insert_tail_rcu(&q, e);
            qtailq_insert_head_rcu(&q, e);
        }
    }

    #[test]
    fn dropping_what_raw_functions_linked() {
        let m = Drops::default();
        let (_, l, _) = setup::<QSListLink>();
        let e: Box<E> = m.e(1);
        // SAFETY: only writer (W1), a fresh box (W2); the list owns it now and frees it.
        unsafe { qslist_insert_head_rcu(&l, NonNull::from(Box::leak(e))) };
        drop(l);
        assert_eq!(m.count(), 1);
    }
}
