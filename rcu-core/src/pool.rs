//! QSBR readers in thread pools: a registration that starts offline
//! ([`Domain::register_offline`]) and the [`OnlineGuard`] that brings it online for a job
//! ([`Reader::online`]), the mirror of [`Reader::offline`].
//!
//! A QSBR reader that is online and idle (a pool thread waiting for work) stalls every
//! grace period of its domain. A pool thread therefore registers offline when the pool
//! starts it, goes online for each job (or batch of jobs), announces quiescent states
//! between the items of a long job, and is offline again whenever it waits. The pattern,
//! for std threads and for rayon, is in [`docs::choosing`](crate::docs::choosing).

use core::fmt;
use core::ops::{Deref, DerefMut};

use crate::domain::Domain;
use crate::flavor::Qsbr;
use crate::reader::Reader;

impl Domain<Qsbr> {
    /// Register the calling thread as a QSBR reader that starts **offline**: grace periods
    /// ignore it until it comes online ([`Reader::online`], [`Reader::thread_online`]). For
    /// threads that may idle before (or between) reads, such as pool threads.
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr, RcuBox};
    ///
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let cell = RcuBox::new_in(1u32, &domain);
    /// let mut reader = domain.register_offline();
    /// assert!(!reader.is_online());
    /// domain.synchronize(); // not held up by the idle reader
    /// {
    ///     let online = reader.online();
    ///     assert_eq!(*cell.load(&online.read_lock()), 1);
    /// } // offline again
    /// assert!(!reader.is_online());
    /// ```
    ///
    /// # Blocking
    ///
    /// As [`Domain::register`]: a short lock of the registry, never held across a wait.
    pub fn register_offline(&self) -> Reader<Qsbr> {
        let mut reader = self.register();
        // Registration makes the record online; a grace period that scans before this
        // store waits for it only until the store (a few instructions).
        reader.thread_offline();
        reader
    }
}

impl Reader<Qsbr> {
    /// Come online (`rcu_thread_online`) until the returned guard is dropped, then go
    /// offline: the mirror of [`offline`](Self::offline), for a thread that is offline
    /// between its jobs. The guard derefs to the reader, so reads and quiescent states go
    /// through it, and no read guard can outlive it:
    ///
    /// ```compile_fail,E0505
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register_offline();
    /// let online = reader.online();
    /// let guard = online.read_lock();
    /// drop(online); // error: `online` is borrowed by `guard`
    /// drop(guard);
    /// ```
    ///
    /// The compiling twin ends the critical section first:
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register_offline();
    /// let mut online = reader.online();
    /// let guard = online.read_lock();
    /// drop(guard);
    /// online.quiescent_state();
    /// drop(online);
    /// ```
    ///
    /// Guards nest: a reader that was already online (an outer `online()`, or
    /// [`Domain::register`]) stays online when the guard is dropped.
    ///
    /// ```
    /// use rcu_core::{Domain, Qsbr};
    /// let domain: Domain<Qsbr> = Domain::new();
    /// let mut reader = domain.register_offline();
    /// let mut outer = reader.online();
    /// drop(outer.online());
    /// assert!(outer.is_online()); // the inner guard restored the outer state
    /// drop(outer.read_lock());
    /// drop(outer);
    /// assert!(!reader.is_online());
    /// ```
    pub fn online(&mut self) -> OnlineGuard<'_> {
        let was_online = self.is_online();
        if !was_online {
            self.set_online();
        }
        OnlineGuard {
            reader: self,
            was_online,
        }
    }
}

/// A QSBR reader brought online by [`Reader::online`]; back to its earlier state (offline,
/// unless it was online already) when dropped. Derefs to the [`Reader`] (`read_lock`,
/// `quiescent_state`, `synchronize`, ...).
pub struct OnlineGuard<'r> {
    reader: &'r mut Reader<Qsbr>,
    /// The reader was online before: leave it so.
    was_online: bool,
}

impl Deref for OnlineGuard<'_> {
    type Target = Reader<Qsbr>;

    fn deref(&self) -> &Reader<Qsbr> {
        self.reader
    }
}

impl DerefMut for OnlineGuard<'_> {
    fn deref_mut(&mut self) -> &mut Reader<Qsbr> {
        self.reader
    }
}

impl Drop for OnlineGuard<'_> {
    fn drop(&mut self) {
        // No read guard is alive: they borrow this guard.
        if !self.was_online {
            self.reader.set_offline();
        }
    }
}

impl fmt::Debug for OnlineGuard<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OnlineGuard")
    }
}
