//! Background threads for the criterion benches: busy readers or writers spinning next to
//! the measured thread, and idle registered readers that stay alive (parked).
//!
//! On a 2-core machine a background thread competes with the measured one, so the benches
//! keep to one busy background thread at a time; idle readers are parked and cost nothing
//! but their registration.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use rcu_core::{Domain, Flavor, Reader};

/// What a background thread sees: the stop flag and the "I am set up" signal.
#[derive(Debug)]
pub struct Ctl {
    stop: AtomicBool,
    signalled: AtomicBool,
    ready: Barrier,
}

impl Ctl {
    /// Whether the thread should return.
    #[inline]
    pub fn stopped(&self) -> bool {
        // Relaxed: only tells the loop to end; results travel through `join`.
        self.stop.load(Ordering::Relaxed)
    }

    /// Tell the spawner that this thread is set up (registered, first value loaded...).
    /// Only the first call counts; it is implied when the thread's function returns.
    pub fn ready(&self) {
        if !self.signalled.swap(true, Ordering::Relaxed) {
            self.ready.wait();
        }
    }
}

/// A background thread, stopped and joined on drop.
#[derive(Debug)]
pub struct Background {
    ctl: Arc<Ctl>,
    handle: Option<JoinHandle<()>>,
}

impl Background {
    /// Spawn `f` on a thread named `name` and wait until it calls [`Ctl::ready`] (or
    /// returns). `f` should loop until [`Ctl::stopped`].
    pub fn spawn<F>(name: &str, f: F) -> Self
    where
        F: FnOnce(&Ctl) + Send + 'static,
    {
        let ctl = Arc::new(Ctl {
            stop: AtomicBool::new(false),
            signalled: AtomicBool::new(false),
            ready: Barrier::new(2),
        });
        let c = ctl.clone();
        let handle = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                f(&c);
                c.ready();
            })
            .expect("spawn background thread");
        ctl.ready.wait();
        Background {
            ctl,
            handle: Some(handle),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.ctl.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// `n` threads registered as readers of a domain, parked (idle: outside any critical
/// section; QSBR readers offline). Unregistered and joined on drop.
#[derive(Debug)]
pub struct IdleReaders {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<()>>,
}

impl IdleReaders {
    /// Spawn `n` parked reader threads; `prepare` runs on each after it registered (QSBR:
    /// take it offline). Returns once all are registered.
    pub fn spawn<F: Flavor>(domain: &Domain<F>, n: usize, prepare: fn(&mut Reader<F>)) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ready = Arc::new(Barrier::new(n + 1));
        let handles = (0..n)
            .map(|i| {
                let (domain, stop, ready) = (domain.clone(), stop.clone(), ready.clone());
                std::thread::Builder::new()
                    .name(format!("idle-reader-{i}"))
                    .stack_size(64 * 1024)
                    .spawn(move || {
                        let mut reader = domain.register();
                        prepare(&mut reader);
                        ready.wait();
                        // Acquire: pairs with the Release store in `drop`.
                        while !stop.load(Ordering::Acquire) {
                            std::thread::park();
                        }
                        drop(reader);
                    })
                    .expect("spawn idle reader")
            })
            .collect();
        ready.wait();
        IdleReaders { stop, handles }
    }
}

impl Drop for IdleReaders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        for h in &self.handles {
            h.thread().unpark();
        }
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}
