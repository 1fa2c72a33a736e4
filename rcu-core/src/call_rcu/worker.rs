//! The call_rcu worker thread: one per domain, started on first use.
//!
//! Each round takes a snapshot of the queues, waits one grace period for it (shared with
//! concurrent synchronizers), then runs it. Between rounds it lets callbacks accumulate for
//! the batch delay, unless a round was large (a callback flood: rounds then run back to back,
//! so the backlog stays bounded by the enqueue rate times one grace period, and producers
//! never wait) or someone asked for the next round (`barrier`, `start_poll`). With nothing to
//! do it parks; a producer wakes it (see [`idle`]).
//!
//! The worker never dies: every callback runs under `catch_unwind` (a payload whose `Drop`
//! panics is contained too), the stall hook is contained by the grace-period side, and a
//! round that panicked for any other reason is abandoned and the loop goes on.
//!
//! It is a good QSBR citizen of the default QSBR domain: if one of its callbacks registered
//! it there (`qsbr::rcu_read_lock` in a callback), it announces a quiescent state after every
//! callback and is offline whenever it waits (`qsbr_thread`), as liburcu's call_rcu thread is.

use std::time::Duration;

use super::state::{CallRcu, WorkerState};
use crate::flavor::Flavor;
use crate::qsbr_thread;
use crate::sync::{self, lock, Arc, Ordering, Unparker};

/// A round at least this big means callbacks arrive fast: the worker goes straight on to the
/// next round instead of waiting `batch_delay` (Linux's answer to callback floods).
const FLOOD_BATCH: usize = 4096;

/// A round at least this big means the producers outrun the worker (on a machine with
/// fewer CPUs than busy threads, the worker waits for a CPU while they fill the queues):
/// producers then yield their CPU once per chunk of callbacks (`sched_yield`, which waits
/// for nothing) until a round is smaller again.
#[cfg(not(loom))]
const FLOOD_YIELD: usize = 65_536;

/// How long an idle worker parks before it looks at the queues again. With `membarrier` no
/// wake-up can be lost (see [`idle`]) and this is only a safety net; without it a wake-up
/// can be lost to a race that only a fence on every `call` would close, and this bounds the
/// delay.
#[cfg(not(loom))]
const IDLE_POLL: Duration = Duration::from_millis(10);
#[cfg(not(loom))]
const IDLE_POLL_MEMBARRIER: Duration = Duration::from_secs(1);

/// Start the worker if it is not running. Fails only if the thread cannot be spawned.
#[cold]
pub(crate) fn start<F: Flavor>(c: &Arc<CallRcu<F>>) -> std::io::Result<()> {
    let mut w = lock(&c.worker);
    if w.started {
        return Ok(());
    }
    let name = format!("rcu-call-{}-{}", F::NAME, c.gp.id);
    let arc = c.clone();
    sync::spawn(name, move || main(arc))?;
    w.started = true;
    // Release: pairs with the Acquire fast-path check in `call`.
    c.started.store(true, Ordering::Release);
    Ok(())
}

enum Step {
    Continue,
    Exit,
}

fn main<F: Flavor>(c: Arc<CallRcu<F>>) {
    lock(&c.worker).thread = Some(std::thread::current().id());
    let me = Box::into_raw(Box::new(Unparker::current()));
    // Release: a producer that Acquire-loads the handle can use it. An older handle (of the
    // parent's worker, in a fork child) is leaked: a producer may still be using it.
    let _old = c.unparker.swap(me, Ordering::AcqRel);
    loop {
        match crate::unwind::run_caught(|| round(&c)) {
            Ok(Step::Continue) => {}
            Ok(Step::Exit) => return,
            Err(()) => crate::unwind::warn(format_args!(
                "rcu: the call_rcu worker recovered from an internal panic"
            )),
        }
    }
}

/// One round: snapshot, grace period, run, then decide how long to wait.
fn round<F: Flavor>(c: &CallRcu<F>) -> Step {
    let (snap, gp_requested) = {
        let mut w = lock(&c.worker);
        w.kick = false;
        w.snap_started += 1;
        // A request made after this point sets `kick`: the next round serves it.
        (w.snap_started, w.gp_requested)
    };
    // SAFETY: this thread is the domain's only consumer while it runs (`start` runs one
    // worker at a time; `Drop` consumes only after the worker has exited).
    let batch = unsafe { c.collect() };
    let len = batch.len;
    // Relaxed: a hint; a producer that reads a stale value yields once too often or too
    // rarely. (Not modelled under loom: it changes no outcome, only adds interleavings.)
    #[cfg(not(loom))]
    c.flood.store(len >= FLOOD_YIELD, Ordering::Relaxed);
    if gp_requested > c.gp.completed() {
        qsbr_thread::worker_offline();
        // A polled grace period was asked for: run real ones (they advance the count that
        // cookies are checked against); they cover the batch too.
        let target = c.gp.target();
        c.gp.wait(target.max(gp_requested));
    } else if len > 0 {
        qsbr_thread::worker_offline();
        // One grace period for the whole batch (shared with concurrent synchronizers),
        // unless nothing can be waited for.
        c.gp.synchronize();
    }
    qsbr_thread::worker_online();
    // SAFETY: the single consumer (see above), and a grace period has elapsed since the
    // snapshot was taken (an empty snapshot may only hold drained chunks to recycle).
    unsafe { c.run_batch(batch, &mut qsbr_thread::worker_quiescent) };
    qsbr_thread::worker_offline();
    let mut w = lock(&c.worker);
    w.snap_done = snap;
    c.done_cv.notify_all();
    if w.kick || len >= FLOOD_BATCH {
        return Step::Continue;
    }
    if len > 0 {
        drop(w);
        // Let callbacks accumulate: every grace period costs the producers (a membarrier
        // interrupts every CPU running this process). A kick cuts the wait short.
        #[cfg(not(loom))]
        if !c.config.batch_delay.is_zero() {
            sync::park_timeout(c.config.batch_delay);
        }
        return Step::Continue;
    }
    if w.shutdown {
        w.started = false;
        w.thread = None;
        // Release: pairs with the Acquire check in `call` (no handle is left to make one).
        c.started.store(false, Ordering::Release);
        return Step::Exit;
    }
    idle(c, w);
    Step::Continue
}

/// Park until there is work.
///
/// The wake-up pairs with `call` as store buffering: the worker stores `sleeping`, executes
/// the heavy barrier, then looks at the queues; a producer publishes its entry, executes the
/// light barrier, then loads `sleeping`. With `membarrier` (or under loom, where both
/// halves are fences) either the worker sees the entry or the producer sees `sleeping` and
/// unparks it (an unpark before the park makes it return at once). Barriers, polls and
/// shutdown always unpark after setting their flag under the worker mutex, which is checked
/// below.
fn idle<F: Flavor>(c: &CallRcu<F>, w: sync::MutexGuard<'_, WorkerState>) {
    // Relaxed store; the barrier below orders it before the checks.
    c.sleeping.store(true, Ordering::Relaxed);
    let membarrier = crate::membarrier::available();
    if membarrier {
        crate::membarrier::heavy();
    } else {
        sync::fence(Ordering::SeqCst);
    }
    // Under the worker mutex (taken before the producers lock, as everywhere): a barrier,
    // poll or shutdown that comes after this check unparks us after setting its flag.
    let work = w.kick || w.shutdown || w.gp_requested > c.gp.completed() || c.has_pending();
    drop(w);
    if !work {
        #[cfg(not(loom))]
        sync::park_timeout(if membarrier {
            IDLE_POLL_MEMBARRIER
        } else {
            IDLE_POLL
        });
        #[cfg(loom)]
        sync::park_timeout(Duration::ZERO);
    }
    c.sleeping.store(false, Ordering::Relaxed);
}
