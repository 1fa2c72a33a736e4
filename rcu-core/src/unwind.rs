//! Running user code (callbacks, the stall hook) so that its panics cannot unwind into the
//! runtime, including a panic whose payload panics again when dropped; and writing the
//! runtime's own diagnostics without panicking.

use std::any::Any;
use std::io::Write as _;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Write one line to stderr, ignoring errors: `eprintln!` panics when stderr is gone (a
/// closed pipe), which would kill the worker or the grace-period leader that reports.
pub(crate) fn warn(line: core::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Run `f`; `Err(())` if it panicked. The panic payload is dropped here without unwinding
/// into the caller (a worker thread, a grace-period leader), which keeps running either way.
pub(crate) fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(drop_payload)
}

/// How many payloads in a row may panic while being dropped before the last one is leaked.
const PAYLOAD_DROP_TRIES: usize = 8;

/// Drop a panic payload without letting its `Drop` unwind into the caller. A payload whose
/// drop panics leaves the payload of that second panic, which is dropped the same way; only
/// a chain of [`PAYLOAD_DROP_TRIES`] payloads that each panic when dropped is cut by leaking
/// the last, so a hostile payload can neither unwind into the runtime nor keep it looping.
pub(crate) fn drop_payload(mut payload: Box<dyn Any + Send>) {
    for _ in 0..PAYLOAD_DROP_TRIES {
        match catch_unwind(AssertUnwindSafe(move || drop(payload))) {
            Ok(()) => return,
            Err(again) => payload = again,
        }
    }
    core::mem::forget(payload);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("payload drop panics (expected by the test)");
        }
    }

    /// Panics when dropped with a payload that is itself a `Chain` one link shorter.
    struct Chain(usize);
    impl Drop for Chain {
        fn drop(&mut self) {
            if self.0 > 0 {
                std::panic::panic_any(Chain(self.0 - 1));
            }
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained_and_freed() {
        assert_eq!(run_caught(|| 5), Ok(5));
        // The payload of the second panic (a `&str`) is dropped too: nothing leaks, which
        // Miri's leak check and LeakSanitizer verify.
        assert_eq!(run_caught(|| std::panic::panic_any(Bomb)), Err(()));
        assert_eq!(run_caught(|| std::panic::panic_any(Chain(3))), Err(()));
    }

    #[test]
    // The last link of a chain longer than the bound is leaked on purpose.
    #[cfg_attr(miri, ignore)]
    fn an_endless_chain_of_panicking_payloads_is_cut() {
        assert_eq!(
            run_caught(|| std::panic::panic_any(Chain(usize::MAX))),
            Err(())
        );
    }
}
