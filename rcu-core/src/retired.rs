//! [`Retired`]: a value taken out of an RCU structure, owned by the caller, that readers may
//! still be looking at until a grace period ends.

use core::fmt;
use core::mem::ManuallyDrop;
use core::ptr::NonNull;

use crate::domain::Domain;
use crate::flavor::{Flavor, Memb};

/// A value unpublished from an RCU structure ([`RcuBox::swap`](crate::RcuBox::swap),
/// [`RcuOption::take`](crate::RcuOption::take), an element removed from an rcu-queue
/// list): owned by the caller, but readers of its domain may still be reading it, so safe
/// code can only free it, or get it back, after a grace period of that domain.
///
/// Choose how:
///
/// - [`Retired::defer`] (or just dropping it): freed on the domain's call_rcu worker after
///   a grace period (`call_rcu` / `g_free_rcu` / `kfree_rcu`). Never blocks.
/// - [`Retired::call`]: run your own callback with the `Box<T>` after a grace period
///   (`call_rcu(head, func)`).
/// - [`Retired::synchronize`]: wait for a grace period now (`synchronize_rcu`), then get the
///   `Box<T>` back, to reuse it.
///
/// A retired value gives no access to its contents (no `Deref`): an element of an
/// intrusive list still links to its old neighbours, and a `&T` obtained outside the
/// critical sections that saw it published would let a reader follow those links to
/// elements whose grace period has already ended. Read what you need before retiring it
/// (a reference loaded under a guard stays valid until that guard is dropped, even after
/// the value is retired), or get the value back with [`synchronize`](Self::synchronize).
///
/// ```
/// use rcu_core::{rcu_read_lock, RcuBox};
///
/// let cell = RcuBox::new(String::from("v1"));
/// let guard = rcu_read_lock();
/// let v1: &String = cell.load(&guard);
/// let old = cell.swap(String::from("v2")); // "v1" is unpublished, not freed
/// assert_eq!(v1, "v1");                    // still readable under the guard
/// drop(guard);
/// assert_eq!(*old.synchronize(), "v1");    // after a grace period, ours again
/// ```
///
/// `Retired<T>` is `Send` and `Sync` for every `T: Send` (it is a `Box<T>` that gives no
/// shared access): it may be handed to another thread to be freed there. The value is
/// dropped on the domain's worker thread, so a `T` that is not `Send` cannot be retired:
///
/// ```compile_fail,E0277
/// fn free_later(_: rcu_core::Retired<std::rc::Rc<u8>>) {} // error: `Rc` is not `Send`
/// ```
///
/// The compiling twin retires an `Arc`:
///
/// ```
/// fn free_later(r: rcu_core::Retired<std::sync::Arc<u8>>) {
///     r.defer();
/// }
/// let cell = rcu_core::RcuBox::new(std::sync::Arc::new(1));
/// free_later(cell.swap(std::sync::Arc::new(2)));
/// ```
///
/// Invariant: `ptr` came from `Box::into_raw`, is reachable from no RCU structure, and is
/// owned by this value; readers of `domain` may still dereference it until a grace period
/// of `domain` ends; `reset` may be called on it once that grace period has ended.
#[must_use = "dropping a Retired defers the free through call_rcu; say so with .defer()"]
pub struct Retired<T: Send + 'static, F: Flavor = Memb> {
    ptr: NonNull<T>,
    domain: ManuallyDrop<Domain<F>>,
    /// Runs on the value once nobody can see it any more (an intrusive list resets its
    /// link there), before it is freed or handed back.
    reset: unsafe fn(NonNull<T>),
}

// SAFETY: a `Retired<T, F>` owns a `T` the way a `Box<T>` does (the only access it gives is
// by value, after a grace period), so it may move to another thread when `T: Send`;
// `Domain<F>` is `Send` for every flavor.
unsafe impl<T: Send + 'static, F: Flavor> Send for Retired<T, F> {}
// SAFETY: `&Retired` gives no access to the `T` at all (only its address and the domain).
unsafe impl<T: Send + 'static, F: Flavor> Sync for Retired<T, F> {}

/// A pointer to an owned, retired value, moved into a call_rcu callback.
struct SendPtr<T>(NonNull<T>, unsafe fn(NonNull<T>));

// SAFETY: the pointer owns its `T` (see `Retired`), so sending it sends a `T`.
unsafe impl<T: Send> Send for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// # Safety
    ///
    /// A grace period has elapsed since the value was unpublished, and this is the only
    /// owner.
    unsafe fn into_box(self) -> Box<T> {
        // SAFETY: after the grace period no reader can reach the value (contract), so
        // `reset` races with nobody; it is the reset function the value was retired with.
        unsafe { (self.1)(self.0) };
        // SAFETY: the pointer came from `Box::into_raw` (type invariant of `Retired`) and we
        // are its only owner.
        unsafe { Box::from_raw(self.0.as_ptr()) }
    }
}

/// Free `ptr`, just unpublished from an RCU structure of `domain`, on the domain's worker
/// after a grace period, running `reset` on it first.
///
/// No `Box` exists before the grace period: a `Box` is a unique pointer, and making one
/// while readers still hold `&T`s to the value would be undefined behaviour (Miri's
/// aliasing models flag it), even if it is only moved into the callback.
///
/// # Safety
///
/// As for [`Retired::from_raw_with_reset`]: `ptr` came from `Box::into_raw`, is
/// unpublished, only readers of `domain` may still use it, ownership passes to this call,
/// and `reset` may be called on it once it is private.
pub(crate) unsafe fn defer_free<T: Send + 'static, F: Flavor>(
    domain: &Domain<F>,
    ptr: NonNull<T>,
    reset: unsafe fn(NonNull<T>),
) {
    let p = SendPtr(ptr, reset);
    domain.call(move || {
        // SAFETY: call_rcu callbacks run after a grace period of `domain`, the domain
        // whose readers may see the value (the contract), and `p` is the only owner.
        drop(unsafe { p.into_box() });
    });
}

/// The reset of a value with nothing to reset.
///
/// # Safety
///
/// None needed (it does nothing); `unsafe` only to have `Retired::reset`'s type.
pub(crate) unsafe fn no_reset<T>(_: NonNull<T>) {}

impl<T: Send + 'static, F: Flavor> Retired<T, F> {
    /// Take ownership of a value unpublished from an RCU structure of `domain` (for
    /// structures built on the raw primitives, such as the result of
    /// [`rcu_xchg_pointer`](crate::rcu_xchg_pointer)).
    ///
    /// ```
    /// use rcu_core::atomic::AtomicPtr;
    /// use rcu_core::{default_domain, rcu_xchg_pointer, Retired};
    /// use std::ptr::NonNull;
    ///
    /// let p = AtomicPtr::new(Box::into_raw(Box::new(1u32)));
    /// let old = rcu_xchg_pointer(&p, Box::into_raw(Box::new(2u32)));
    /// // SAFETY: `old` came from `Box::into_raw`, is unpublished, and only readers of the
    /// // default domain may still see it.
    /// let old = unsafe { Retired::from_raw(NonNull::new(old).unwrap(), default_domain().clone()) };
    /// assert_eq!(*old.synchronize(), 1);
    /// # let last = p.load(std::sync::atomic::Ordering::Relaxed);
    /// # // SAFETY: nobody else has the pointer.
    /// # drop(unsafe { Box::from_raw(last) });
    /// ```
    ///
    /// # Safety
    ///
    /// 1. `ptr` came from `Box::into_raw` and is reachable from no RCU structure (it has
    ///    been unpublished); ownership passes to the returned value.
    /// 2. Readers of `domain` are the only ones that may still be using it, so a grace
    ///    period of `domain` makes it private.
    pub unsafe fn from_raw(ptr: NonNull<T>, domain: Domain<F>) -> Self {
        // SAFETY: contracts 1 and 2 are the caller's; `no_reset` may run at any time.
        unsafe { Self::from_raw_with_reset(ptr, domain, no_reset::<T>) }
    }

    /// [`from_raw`](Self::from_raw), with `reset` run on the value once a grace period has
    /// made it private, before it is freed or handed back (rcu-queue resets an element's
    /// link there).
    ///
    /// # Safety
    ///
    /// 1. and 2. as for [`from_raw`](Self::from_raw).
    /// 3. `reset` may be called once on `ptr` when no other thread can reach it, and leaves
    ///    a valid `T`.
    pub unsafe fn from_raw_with_reset(
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

    /// Free the value on the domain's worker thread after a grace period (`call_rcu` with a
    /// free function; QEMU's `g_free_rcu`). Never blocks. Dropping a `Retired` does the
    /// same.
    ///
    /// ```
    /// use rcu_core::{rcu_barrier, RcuBox};
    ///
    /// let cell = RcuBox::new(vec![1, 2, 3]);
    /// cell.swap(vec![4]).defer(); // the old Vec is freed after a grace period
    /// rcu_barrier();              // ... which has happened by now
    /// ```
    pub fn defer(self) {
        // `Drop` queues the free.
        drop(self);
    }

    /// Run `f` with the value on the domain's worker thread after a grace period
    /// (`call_rcu(&elem->rcu, func)`). Never blocks.
    ///
    /// ```
    /// use rcu_core::{rcu_barrier, RcuBox};
    /// use std::sync::mpsc;
    ///
    /// let cell = RcuBox::new(7u32);
    /// let (tx, rx) = mpsc::channel();
    /// cell.swap(8).call(move |old: Box<u32>| tx.send(*old).unwrap());
    /// rcu_barrier();
    /// assert_eq!(rx.recv().unwrap(), 7);
    /// ```
    pub fn call(self, f: impl FnOnce(Box<T>) + Send + 'static) {
        let (p, domain) = self.into_parts();
        domain.call(move || {
            // SAFETY: as in `defer_free`: a grace period has elapsed and `p` is the only
            // owner.
            f(unsafe { p.into_box() });
        });
    }

    /// Wait for a grace period (`synchronize_rcu`), then hand the value back, private to
    /// the caller (for a list element: unlinked, free to be inserted again).
    ///
    /// # Blocking
    ///
    /// As [`Domain::synchronize`].
    ///
    /// # Panics
    ///
    /// Inside a read-side critical section of the domain, by an online QSBR reader of it,
    /// or in one of its callbacks (the wait would deadlock; see [`Domain::synchronize`]).
    /// The value is then freed through call_rcu instead (nothing leaks).
    pub fn synchronize(self) -> Box<T> {
        // Before taking the parts out: if this panics, dropping `self` defers the free.
        self.domain.check_may_block("Retired::synchronize");
        let (p, domain) = self.into_parts();
        domain.synchronize();
        // SAFETY: the grace period we just waited for began after the value was
        // unpublished, so no reader can still see it; `p` is the only owner.
        unsafe { p.into_box() }
    }

    /// The value's address, for identity comparisons (never dereference it before a grace
    /// period has elapsed).
    pub fn as_ptr(&self) -> *const T {
        self.ptr.as_ptr()
    }

    /// The domain whose grace period makes the value private.
    pub fn domain(&self) -> &Domain<F> {
        &self.domain
    }

    /// Give up ownership without freeing: the raw pointer (from `Box::into_raw`) and the
    /// domain. Freeing it is then the caller's job, after a grace period of that domain
    /// (and after the reset the value was retired with, if any, which is lost).
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
        // SAFETY: the type invariant is `defer_free`'s contract; `self` gives up the value.
        unsafe { defer_free(&domain, self.ptr, self.reset) };
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
