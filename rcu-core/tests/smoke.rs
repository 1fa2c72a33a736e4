//! Smoke test of the main paths.
#![cfg(not(loom))]
use rcu_core::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[test]
fn basic_paths() {
    for force in [false, true] {
        let d: Domain<Memb> = Domain::builder().force_fallback(force).build();
        let r = d.register();
        {
            let _g = r.read_lock();
            let _g2 = r.read_lock();
        }
        d.synchronize();
        let n = Arc::new(AtomicUsize::new(0));
        for _ in 0..1000 {
            let n = n.clone();
            d.call(move || {
                n.fetch_add(1, Ordering::Relaxed);
            });
        }
        d.barrier();
        assert_eq!(n.load(Ordering::Relaxed), 1000);
        let c = d.start_poll();
        while !d.poll(c) {
            std::thread::yield_now();
        }
    }
    synchronize_rcu();
    let b = RcuBox::new(5);
    b.replace(6);
    assert_eq!(*b.load(&rcu_read_lock()), 6);
    rcu_barrier();
}
