//! # Choosing: a flavor, a way to read, a way to write
//!
//! ## Flavors
//!
//! Measured at commit `6273d0f` (2026-11-28, `BENCHMARKS.md` has every table, the commands
//! and the spread between runs) on a 2-core AMD EPYC (Zen 3) Firecracker VM with Rust 1.95;
//! the 16-core Intel Xeon column is from the same commit. A read section is: enter, load
//! the pointer, read a field, leave. Figures move by 5-30 % between runs.
//!
//! | | [`Memb`](crate::Memb) (default) | [`Mb`](crate::Mb) | [`Qsbr`](crate::Qsbr) |
//! |---|---|---|---|
//! | read section, [`Reader::read_lock`](crate::Reader::read_lock) (2 cores) | 1.96 ns | 5.03 ns | 0.95 ns (1.41 ns with a quiescent state every 1,024 reads) |
//! | read section (16-core Xeon) | 1.48 ns | 23.5 ns | 1.01 ns (1.12 ns) |
//! | read section through [`rcu_read_lock`](crate::rcu_read_lock) (default domain) | 2.33 ns (16 cores: 2.64 ns) | | |
//! | `synchronize`, 1 idle registered reader | 1.01 µs | 0.37 µs | 0.37 µs (reader offline) |
//! | `synchronize`, 1 reader busy on the other CPU | 15.3 µs | 0.49 µs | 1.72 µs |
//! | [`RcuBox::store`](crate::RcuBox::store) (call_rcu) with a reader running | 246 ns | 270 ns | 153 ns |
//! | what it asks of reader threads | nothing | nothing | announce quiescent states, or go offline before blocking or idling |
//!
//! The peers in the same runs: crossbeam-epoch `pin` + load 4.53 ns (16 cores: 11.31 ns),
//! arc-swap `load` 6.11 ns (20.01 ns), `RwLock::read` 5.61 ns (23.12 ns).
//!
//! - **Memb** is the default: the cheapest read side that asks nothing of threads. Its
//!   grace periods pay a `membarrier` system call, which interrupts every CPU running a
//!   thread of the process: about 1 µs, and 10-15 µs per busy CPU inside a VM (an IPI to a
//!   running vCPU). Prefer `call_rcu`/[`RcuBox::store`](crate::RcuBox::store) to
//!   `synchronize` on hot update paths: the worker amortises one grace period over a batch.
//! - **Mb** pays real barriers on the read side (about 5 ns here, 23 ns on the Xeon) and
//!   has the cheapest grace periods. For update-heavy workloads, and where `membarrier` is
//!   missing (`Memb` then falls back to this protocol by itself).
//! - **Qsbr** makes a read section free, and asks each reader thread to announce quiescent
//!   states ([`Reader::quiescent_state`](crate::Reader::quiescent_state)) regularly and to
//!   go offline before it blocks or idles. An online thread that does neither stalls every
//!   grace period of its domain (the stall report names it). For threads with a natural
//!   loop: event loops, vCPU loops, pool workers (below).
//!
//! ## Reading
//!
//! | situation | use |
//! |---|---|
//! | the default domain | [`rcu_read_lock`](crate::rcu_read_lock), [`qsbr::rcu_read_lock`](crate::qsbr::rcu_read_lock) |
//! | a thread that reads a domain of its own often | [`Domain::register`](crate::Domain::register) once, then [`Reader::read_lock`](crate::Reader::read_lock): the fastest |
//! | any domain, from any thread, with no setup | [`Domain::read_lock`](crate::Domain::read_lock): one thread-local lookup more than a `Reader`; for QSBR each outermost section comes online and goes offline (two full barriers, about an `Mb` section), so it never stalls grace periods |
//! | a getter that returns the current value | [`RcuBox::snapshot`](crate::RcuBox::snapshot): a [`Snapshot`](crate::Snapshot) carries its critical section |
//! | a value to keep beyond any critical section | [`RcuBox::load_full`](crate::RcuBox::load_full) on an `RcuBox<Arc<T>>`: one section and a reference count |
//!
//! A guard protects only against its own domain's grace periods; every load checks that
//! the guard and the pointer belong to the same domain (one comparison) and panics
//! otherwise.
//!
//! ## Writing
//!
//! | to | use | waits |
//! |---|---|---|
//! | publish, free the old value later | [`RcuBox::store`](crate::RcuBox::store) | never |
//! | publish, keep the old value's fate in hand | [`RcuBox::swap`](crate::RcuBox::swap) → [`Retired`](crate::Retired): drop or [`defer`](crate::Retired::defer) it, [`call`](crate::Retired::call) a closure on it, or [`synchronize`](crate::Retired::synchronize) and get it back | only `synchronize` |
//! | publish only if nobody else did | [`RcuBox::compare_exchange`](crate::RcuBox::compare_exchange) (by address, under a guard) | never |
//! | derive the new value from the current one | [`RcuBox::rcu`](crate::RcuBox::rcu) (its own critical section), [`RcuBox::update`](crate::RcuBox::update) (under yours) | never |
//! | publish and get the old value back now | [`RcuBox::swap_sync`](crate::RcuBox::swap_sync) | a grace period |
//!
//! [`RcuOption`](crate::RcuOption) has the same names over `Option<T>`, plus
//! [`take`](crate::RcuOption::take).
//!
//! ## Domains
//!
//! The free functions and [`RcuBox::new`](crate::RcuBox::new) use the process-wide default
//! domains. A [`Domain`](crate::Domain) of your own isolates grace periods (a library's
//! readers do not hold up the application's writers) and chooses the flavor. `Domain`'s
//! flavor parameter defaults to `Memb` in types, but a default type parameter does not
//! guide inference in expressions, so `Domain::new()` alone does not compile (E0283):
//!
//! ```compile_fail,E0283
//! let domain = rcu_core::Domain::new(); // error: type annotations needed
//! ```
//!
//! Name the type (`Domain` alone means `Domain<Memb>`), or the flavor:
//!
//! ```
//! use rcu_core::{Domain, Memb, Qsbr};
//! let a: Domain = Domain::new();       // memb
//! let b = Domain::<Memb>::new();
//! let c = <Domain>::new();             // memb: the type path applies the default
//! let q: Domain<Qsbr> = Domain::new();
//! assert_eq!((a.flavor_name(), b.flavor_name(), c.flavor_name()), ("memb", "memb", "memb"));
//! assert_eq!(q.flavor_name(), "qsbr");
//! ```
//!
//! ## QSBR in thread pools
//!
//! A pool thread that registered online and then waits for work stalls every QSBR grace
//! period (with rayon, `synchronize` would never return). Two patterns avoid it.
//!
//! **Short jobs, no setup:** [`Domain::read_lock`](crate::Domain::read_lock). The thread is
//! online only inside its critical sections, so idle pool threads hold up nothing. Each
//! outermost section costs two full barriers. With rayon:
//!
//! ```
//! use rayon::prelude::*;
//! use rcu_core::{Domain, Qsbr, RcuBox};
//!
//! let domain: Domain<Qsbr> = Domain::new();
//! let table = RcuBox::new_in(vec![1u64, 2, 3], &domain);
//! let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
//! let sum: u64 = pool.install(|| {
//!     (0..300usize)
//!         .into_par_iter()
//!         .map(|i| table.load(&domain.read_lock())[i % 3])
//!         .sum()
//! });
//! assert_eq!(sum, 600);
//! table.store(vec![4, 5, 6]);
//! domain.synchronize(); // returns: the pool's idle threads are offline
//! ```
//!
//! **Long jobs, free reads:** register each pool thread offline when the pool starts it
//! ([`Domain::register_offline`](crate::Domain::register_offline)), bring it online for a
//! job ([`Reader::online`](crate::Reader::online)), announce quiescent states between the
//! job's items, and let the [`OnlineGuard`](crate::OnlineGuard) take it offline when the
//! job ends. With std threads:
//!
//! ```
//! use rcu_core::{Domain, Qsbr, RcuBox};
//! use std::sync::{mpsc, Arc, Mutex};
//!
//! let domain: Domain<Qsbr> = Domain::new();
//! let table = Arc::new(RcuBox::new_in(vec![1u64; 64], &domain));
//! let (jobs, queue) = mpsc::channel::<std::ops::Range<usize>>();
//! let queue = Arc::new(Mutex::new(queue));
//! let (results, sums) = mpsc::channel();
//! let workers: Vec<_> = (0..2)
//!     .map(|_| {
//!         let (domain, table) = (domain.clone(), table.clone());
//!         let (queue, results) = (queue.clone(), results.clone());
//!         std::thread::spawn(move || {
//!             let mut reader = domain.register_offline();
//!             // Offline while it waits: `recv` may block for ever.
//!             while let Ok(job) = queue.lock().unwrap().recv() {
//!                 let mut online = reader.online();
//!                 let mut sum = 0;
//!                 for i in job {
//!                     sum += table.load(&online.read_lock())[i];
//!                     online.quiescent_state(); // between items: no reference kept
//!                 }
//!                 drop(online); // offline again before waiting
//!                 results.send(sum).unwrap();
//!             }
//!         })
//!     })
//!     .collect();
//! jobs.send(0..32).unwrap();
//! jobs.send(32..64).unwrap();
//! assert_eq!(sums.recv().unwrap() + sums.recv().unwrap(), 64);
//! table.store(vec![2; 64]);
//! domain.synchronize(); // returns: both workers are offline, waiting
//! drop(jobs);
//! workers.into_iter().for_each(|w| w.join().unwrap());
//! ```
//!
//! With rayon, the same registration goes in the pool's handlers: a thread-local
//! `RefCell<Option<Reader<Qsbr>>>` filled by `ThreadPoolBuilder::start_handler` with
//! `domain.register_offline()` and emptied by `exit_handler`; each job borrows it and calls
//! `online()` (the `qsbr_pool` example of the repository runs both pools). The default
//! QSBR domain's free functions follow the same rule: `qsbr::rcu_register_thread()` then
//! `qsbr::rcu_thread_offline()` in the start handler, `qsbr::rcu_thread_online()` /
//! `qsbr::rcu_thread_offline()` around each job.
//!
//! ## Process exit
//!
//! Callbacks queued with [`call_rcu`](crate::call_rcu), [`defer_drop`](crate::defer_drop),
//! [`Domain::call`](crate::Domain::call), [`RcuBox::store`](crate::RcuBox::store) or a
//! dropped [`Retired`](crate::Retired) run on the domain's worker after a grace period, and
//! **not at all if the process exits first**: nothing waits for them when `main` returns.
//! If their effects matter (a file flushed, a connection closed, a count checked), drain
//! them before returning: [`rcu_barrier`](crate::rcu_barrier) (default domain),
//! [`qsbr::rcu_barrier`](crate::qsbr::rcu_barrier), or [`Domain::barrier`](crate::Domain::barrier).
//!
//! ```
//! use rcu_core::{call_rcu, rcu_barrier};
//! use std::sync::atomic::{AtomicBool, Ordering};
//! use std::sync::Arc;
//!
//! let flushed = Arc::new(AtomicBool::new(false));
//! let f = flushed.clone();
//! call_rcu(move || f.store(true, Ordering::SeqCst)); // e.g. close an old log file
//! rcu_barrier(); // before `main` returns: every callback queued so far has run
//! assert!(flushed.load(Ordering::SeqCst));
//! ```
