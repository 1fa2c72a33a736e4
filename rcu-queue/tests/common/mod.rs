//! What the concurrency tests share: the run time, a PRNG, and an element that can sit in
//! one list of each kind and is poisoned when it is freed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rcu_queue::{rcu_link, QListLink, QSListLink, QSimpleQLink, QTailQLink};

/// What a freed value reads as.
const POISON: u64 = 0xdead_beef_dead_beef;

/// How long each case runs: `RCU_TORTURE_SECS` if set, else `default`.
pub fn run_time(default: Duration) -> Duration {
    match std::env::var("RCU_TORTURE_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
    {
        Some(s) => Duration::from_secs_f64(s),
        None => default,
    }
}

/// A tiny xorshift64* PRNG (no dependency).
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }
}

/// A value that is poisoned when its element is dropped: the reclaim path poisons the
/// element before its memory goes back to the allocator, so a reader still looking at it
/// trips the assertion in `read` (and ASan reports the access after the free).
pub struct Checked(AtomicU64);

impl Checked {
    pub fn new(v: u64) -> Self {
        Checked(AtomicU64::new(v))
    }

    /// What a reader does with each element it visits.
    pub fn read(&self) -> u64 {
        // Relaxed: the value is only compared with the poison; the element's memory is
        // kept alive by the critical section (that is what is being tested).
        let v = self.0.load(Ordering::Relaxed);
        assert_ne!(v, POISON, "a reader saw a reclaimed element");
        v
    }
}

impl Drop for Checked {
    fn drop(&mut self) {
        self.0.store(POISON, Ordering::Relaxed);
    }
}

/// QEMU test-rcu-list's `struct list_element`: a value and the four links.
pub struct Elem {
    pub val: Checked,
    pub ql: QListLink,
    pub sq: QSimpleQLink,
    pub tq: QTailQLink,
    pub sl: QSListLink,
}
rcu_link!(Elem, ql: QListLink);
rcu_link!(Elem, sq: QSimpleQLink);
rcu_link!(Elem, tq: QTailQLink);
rcu_link!(Elem, sl: QSListLink);

impl Elem {
    pub fn new(v: u64) -> Box<Elem> {
        Box::new(Elem {
            val: Checked::new(v),
            ql: QListLink::new(),
            sq: QSimpleQLink::new(),
            tq: QTailQLink::new(),
            sl: QSListLink::new(),
        })
    }

    /// What a reader does with each element it visits.
    pub fn read(&self) -> u64 {
        self.val.read()
    }
}
