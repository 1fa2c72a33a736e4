//! The value every implementation shares, and the global count of live copies that
//! measures pending garbage.
//!
//! Each [`Payload`] created while counting is on adds one to a process-wide counter and each
//! drop subtracts one. The runner keeps exactly one value published, so `live() - 1` is the
//! number of retired-but-not-yet-freed objects of whatever implementation is running
//! (only one runs at a time). Counting costs two atomic read-modify-writes per object on
//! the *writer/reclaimer* side, never on the read side; the criterion benches that time
//! updates turn it off.

use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};

static LIVE: AtomicIsize = AtomicIsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(true);

/// The shared value: one field the readers read, padded to half a cache line so that an
/// allocation is a realistic small object.
#[derive(Debug)]
pub struct Payload {
    /// The field every reader reads.
    pub value: u64,
    counted: bool,
    _pad: [u64; 2],
}

impl Payload {
    /// A new payload holding `value` (counted if counting is on).
    #[inline]
    pub fn new(value: u64) -> Self {
        // Relaxed: a flag that is only changed while no payload exists.
        let counted = COUNTING.load(Ordering::Relaxed);
        if counted {
            // Relaxed: a statistic; the sampler needs no ordering with the payload itself.
            LIVE.fetch_add(1, Ordering::Relaxed);
        }
        Payload {
            value,
            counted,
            _pad: [0; 2],
        }
    }
}

impl Drop for Payload {
    #[inline]
    fn drop(&mut self) {
        if self.counted {
            LIVE.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Payloads currently alive (created while counting and not yet dropped).
#[inline]
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Turn the live count on or off for payloads created from now on (criterion update
/// benches turn it off so that they time only the implementation).
pub fn set_counting(on: bool) {
    COUNTING.store(on, Ordering::Relaxed);
}
