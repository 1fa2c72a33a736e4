//! [`Retired`]: an element unlinked from a list, which readers may still be using.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use rcu_core::{Domain, Flavor, Memb};

/// An element removed from a list, owned by the caller, that readers may still be looking
/// at: safe code can only free it after a grace period of the list's domain.
///
/// Choose how:
///
/// - [`Retired::defer`] (or just dropping it): freed on the domain's call_rcu worker after
///   a grace period (`call_rcu` / `g_free_rcu`). Never blocks.
/// - [`Retired::call`]: run your own callback with the `Box<T>` after a grace period
///   (`call_rcu(head, func)`).
/// - [`Retired::synchronize`]: wait for a grace period now (`synchronize_rcu`), then get the
///   `Box<T>` back, for example to insert it again.
///
/// A retired element gives no access to its contents (no `Deref`): a reader that stands
/// on it may still call `next` on it, and a `&T` obtained outside any critical section
/// would let `next` reach elements whose grace period has already ended. Read what you
/// need before removing it.
///
/// Invariant: `ptr` came from `Box::into_raw`, is linked in no list, and is owned by this
/// value; readers of `domain` may still dereference it until a grace period ends.
#[must_use = "dropping a Retired defers the free through call_rcu; say so with .defer()"]
pub struct Retired<T: Send + 'static, F: Flavor = Memb> {
    ptr: NonNull<T>,
    domain: ManuallyDrop<Domain<F>>,
    /// Resets the element's link once nobody can see it any more.
    reset: unsafe fn(NonNull<T>),
}

// SAFETY: a `Retired<T, F>` owns a `T` the way a `Box<T>` does (the only access it gives
// is by value, after a grace period), so it may move to another thread when `T: Send`;
// `Domain<F>` is `Send` for every flavor.
unsafe impl<T: Send + 'static, F: Flavor> Send for Retired<T, F> {}
// SAFETY: `&Retired` gives no access to the `T` at all (only its address and the domain).
unsafe impl<T: Send + 'static, F: Flavor> Sync for Retired<T, F> {}

/// A pointer to an owned, retired element, moved into a call_rcu callback.
struct SendPtr<T>(NonNull<T>, unsafe fn(NonNull<T>));

// SAFETY: the pointer owns its `T` (see `Retired`), so sending it sends a `T`.
unsafe impl<T: Send> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// # Safety
    ///
    /// A grace period has elapsed since the element was unlinked, and this is the only
    /// owner.
    unsafe fn into_box(self) -> Box<T> {
        // SAFETY: after the grace period no reader can reach the element (contract), so
        // resetting its link races with nobody; `self.1` is the reset function matching
        // the element's link.
        unsafe { (self.1)(self.0) };
        // SAFETY: the pointer came from `Box::into_raw` (type invariant of `Retired`) and we
        // are its only owner.
        unsafe { Box::from_raw(self.0.as_ptr()) }
    }
}

impl<T: Send + 'static, F: Flavor> Retired<T, F> {
    /// Wrap an unlinked element.
    ///
    /// # Safety
    ///
    /// 1. `ptr` came from `Box::into_raw` and is linked in no list; ownership passes to the
    ///    returned value.
    /// 2. Readers of `domain` are the only ones that may still be using it (it was
    ///    unlinked from a list of that domain), so a grace period of `domain` makes it
    ///    private.
    /// 3. `reset` may be called on `ptr` once it is private, and leaves it a valid `T`.
    pub(crate) unsafe fn new(
        ptr: NonNull<T>,
        domain: Domain<F>,
        reset: unsafe fn(NonNull<T>),
    ) -> Self {
        Retired {
            ptr,
            domain: ManuallyDrop::new(domain),
            reset,
        }
    }

    /// Take the parts out without running `Drop`.
    fn into_parts(self) -> (SendPtr<T>, Domain<F>) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the domain is taken out once.
        let domain = unsafe { ManuallyDrop::take(&mut this.domain) };
        (SendPtr(this.ptr, this.reset), domain)
    }

    /// Free the element on the domain's worker thread after a grace period (`call_rcu`
    /// with a free function; QEMU's `g_free_rcu`). Never blocks. Dropping a `Retired` does
    /// the same.
    pub fn defer(self) {
        let (p, domain) = self.into_parts();
        domain.call(move || {
            // SAFETY: call_rcu callbacks run after a grace period of `domain`, the domain
            // readers of the element belong to (invariant), and `p` is the only owner.
            drop(unsafe { p.into_box() });
        });
    }

    /// Run `f` with the element on the domain's worker thread after a grace period
    /// (`call_rcu(&elem->rcu, func)`).
    pub fn call(self, f: impl FnOnce(Box<T>) + Send + 'static) {
        let (p, domain) = self.into_parts();
        domain.call(move || {
            // SAFETY: as in `defer`: a grace period has elapsed and `p` is the only owner.
            f(unsafe { p.into_box() });
        });
    }

    /// Wait for a grace period (`synchronize_rcu`), then hand the element back, unlinked and
    /// free to be inserted again.
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section of the list's domain, or in one of its
    /// callbacks (the wait would deadlock; see `rcu_core::Domain::synchronize`).
    pub fn synchronize(self) -> Box<T> {
        let (p, domain) = self.into_parts();
        domain.synchronize();
        // SAFETY: the grace period we just waited for began after the element was
        // unlinked, so no reader can still see it; `p` is the only owner.
        unsafe { p.into_box() }
    }

    /// The element's address, for identity comparisons (never dereference it before a
    /// grace period has elapsed).
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The domain whose grace period frees the element.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Give up ownership without freeing: the raw pointer (from `Box::into_raw`) and the
    /// domain. Freeing it is then the caller's job, after a grace period of that domain.
    pub fn into_raw(self) -> (NonNull<T>, Domain<F>) {
        let (p, domain) = self.into_parts();
        (p.0, domain)
    }
}

impl<T: Send + 'static, F: Flavor> Drop for Retired<T, F> {
    fn drop(&mut self) {
        // SAFETY: `self` is being dropped and its fields are not used afterwards, so the
        // domain is taken out once.
        let domain = unsafe { ManuallyDrop::take(&mut self.domain) };
        let p = SendPtr(self.ptr, self.reset);
        domain.call(move || {
            // SAFETY: as in `defer`: a grace period has elapsed and `p` is the only owner.
            drop(unsafe { p.into_box() });
        });
    }
}

impl<T: Send + 'static, F: Flavor> fmt::Debug for Retired<T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retired")
            .field("ptr", &self.ptr)
            .field("flavor", &F::NAME)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use crate::test_support::Drops;
    use crate::QList;
    use rcu_core::{Domain, Mb};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[test]
    fn retired_call_defer_synchronize() {
        let d: Domain<Mb> = Domain::new();
        let l = QList::new_in(&d);
        let m = Drops::default();
        let mut w = l.lock();
        for v in 0..5 {
            w.insert_head(m.e(v));
        }
        // call: runs after a grace period with the unlinked box
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        let r = w.cursor().remove_current().unwrap();
        assert!(format!("{r:?}").starts_with("Retired"));
        assert!(r.domain().same_domain(&d));
        r.call(move |b| {
            assert!(!b.ql.is_linked());
            s.store(b.v as usize + 100, Ordering::Relaxed);
        });
        // defer and drop: freed by the worker
        w.cursor().remove_current().unwrap().defer();
        drop(w.cursor().remove_current().unwrap());
        // synchronize: the box comes back now
        let b = w.cursor().remove_current().unwrap().synchronize();
        assert_eq!(b.v, 1);
        // into_raw: ownership leaves the Retired
        let r = w.cursor().remove_current().unwrap();
        let addr = r.as_ptr();
        let (p, dom) = r.into_raw();
        assert_eq!(p.as_ptr().cast_const(), addr);
        dom.synchronize();
        // SAFETY: a grace period has elapsed since the removal; we own the pointer.
        drop(unsafe { Box::from_raw(p.as_ptr()) });
        drop(w);
        d.barrier();
        assert_eq!(seen.load(Ordering::Relaxed), 104);
        assert_eq!(m.count(), 4); // call's box, defer, drop, into_raw; `b` still alive
        drop(b);
        assert_eq!(m.count(), 5);
    }
}
