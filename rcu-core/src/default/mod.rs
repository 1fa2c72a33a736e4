//! The process-wide default domains and the C-named free functions.
//!
//! The hot path of [`rcu_read_lock`] is a const-initialised thread-local (`REC`, a raw
//! pointer with no destructor, so no lazy-init state check) plus one predictable
//! "registered yet?" branch. Registration (first use) and unregistration (thread exit, via a
//! second thread-local that does have a destructor) stay off the hot path.

pub mod qsbr;
mod slot;

use core::cell::{Cell, RefCell};
use core::ptr;

use crate::domain::Domain;
use crate::flavor::{Flavor, Memb};
use crate::guard::ReadGuard;
use crate::record::Record;
use slot::{DefaultDomain, Owner, Slot, Teardown};

static DEFAULT: DefaultDomain<Memb> = DefaultDomain::new();

std::thread_local! {
    static REC: Cell<*const Record> = const { Cell::new(ptr::null()) };
    static OWNER: Owner<Memb> = const {
        Owner { reader: RefCell::new(None), slot: &SLOT }
    };
}

static SLOT: Slot<Memb> = Slot {
    rec: &REC,
    owner: &OWNER,
    domain: &DEFAULT,
    teardown: Teardown {
        in_section: |r| r.in_critical_section(),
        // A memb record outside a critical section is idle (`ctr == 0`): grace periods
        // pass it by. Kept for the rest of the thread (reused by later late destructors),
        // it costs its memory and one slot of the registry.
        keep: core::mem::forget,
        owner_gone: || (),
    },
};

/// The process-wide default (memb) domain.
pub fn default_domain() -> &'static Domain<Memb> {
    DEFAULT.get()
}

/// Enter a read-side critical section of the default domain (`rcu_read_lock`); dropping
/// the guard is `rcu_read_unlock`. Registers the thread on first use.
///
/// ```
/// use rcu_core::{rcu_read_lock, RcuBox};
/// let b = RcuBox::new(3);
/// let guard = rcu_read_lock();
/// let nested = rcu_read_lock(); // nesting is allowed
/// assert_eq!(*b.load(&nested), 3);
/// drop(nested);
/// drop(guard); // rcu_read_unlock
/// ```
#[inline(always)]
pub fn rcu_read_lock() -> ReadGuard<'static, Memb> {
    let rec = slot::current_record(&REC, &SLOT);
    // SAFETY: `rec` is this thread's record in the (never dropped) default domain.
    unsafe { ReadGuard::enter(rec) }
}

/// Leave a read-side critical section (`rcu_read_unlock`): the same as dropping the guard.
#[inline(always)]
pub fn rcu_read_unlock<F: Flavor>(guard: ReadGuard<'_, F>) {
    drop(guard);
}

/// Wait for a grace period of the default domain (`synchronize_rcu`).
///
/// # Panics
///
/// Inside a read-side critical section or a callback of the default domain (deadlock).
pub fn synchronize_rcu() {
    DEFAULT.get().synchronize();
}

/// Run `f` after a grace period of the default domain, on its worker thread (`call_rcu`).
#[inline]
pub fn call_rcu<C: FnOnce() + Send + 'static>(f: C) {
    DEFAULT.get().call(f);
}

/// Drop `value` after a grace period of the default domain (`defer_rcu`/`kfree_rcu`).
#[inline]
pub fn defer_drop<T: Send + 'static>(value: T) {
    DEFAULT.get().defer_drop(value);
}

/// Wait until every callback queued on the default domain so far has run (`rcu_barrier`).
///
/// # Panics
///
/// Inside a read-side critical section or a callback of the default domain (deadlock).
pub fn rcu_barrier() {
    DEFAULT.get().barrier();
}

/// Register the calling thread with the default domain (`rcu_register_thread`). Optional:
/// [`rcu_read_lock`] registers on first use. Idempotent.
pub fn rcu_register_thread() {
    let _ = SLOT.record();
}

/// Unregister the calling thread (`rcu_unregister_thread`). Also done at thread exit.
///
/// # Panics
///
/// Inside a read-side critical section.
pub fn rcu_unregister_thread() {
    SLOT.unregister("rcu_unregister_thread");
}
