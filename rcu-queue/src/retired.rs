//! [`Retired`](crate::Retired): what removing an element from an owning list hands back.
//! The type is rcu-core's ([`rcu_core::Retired`], re-exported at this crate's root): a
//! removed element and an old value swapped out of an `RcuBox` are retired alike. A list
//! retires its elements with a reset of their link, which runs once the grace period has
//! made the element private (so an element handed back by `synchronize` is unlinked and
//! can be inserted again). These are its tests with lists.

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
