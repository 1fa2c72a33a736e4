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

/// Run `f`; `Err(())` if it panicked. The panic payload is dropped here, and if dropping it
/// panics too, that second payload is leaked rather than unwound: the caller (a worker
/// thread, a grace-period leader) keeps running either way.
pub(crate) fn run_caught<R>(f: impl FnOnce() -> R) -> Result<R, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(drop_payload)
}

/// Drop a panic payload without letting its `Drop` unwind into the caller.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        // A payload whose drop panicked, and whose own payload might panic too: leak it.
        core::mem::forget(again);
    }
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

    #[test]
    // The second payload is leaked on purpose, which Miri's leak check reports.
    #[cfg_attr(miri, ignore)]
    fn a_payload_whose_drop_panics_is_contained() {
        assert_eq!(run_caught(|| 5), Ok(5));
        assert_eq!(run_caught(|| std::panic::panic_any(Bomb)), Err(()));
    }
}
