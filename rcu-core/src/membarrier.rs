//! The heavy/light barrier pair behind the `Memb` flavor.
//!
//! # Semantics
//!
//! [`heavy`] is called by the grace-period side, [`light`] by readers (it is only a compiler
//! fence). The contract is the one of Linux's `sys_membarrier`: for every reader executing
//! `light()` and every call of `heavy()`, either everything the reader did before its
//! `light()` is visible to the code after `heavy()` returns, or everything before `heavy()`
//! is visible to the reader after its `light()`. In other words the pair behaves as if both
//! sides had executed `fence(SeqCst)`, while the reader pays nothing at run time.
//!
//! `heavy()` is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: the kernel interrupts every
//! CPU currently running a thread of this process and makes it execute a full barrier; a
//! thread that is not running passes through a context switch, which is a full barrier too.
//!
//! # Detection
//!
//! [`available`] registers the process for `PRIVATE_EXPEDITED` once (the command must be
//! registered before use) and reports whether that worked. Where the syscall is missing
//! (old kernels, seccomp sandboxes) a domain falls back to real fences on both sides, which
//! is the `Mb` flavor's protocol. Under `cfg(loom)` it reports `true`: both halves of the
//! pair are modelled as `fence(SeqCst)` there, so the loom models check the `Memb` read
//! side as written; `DomainBuilder::force_fallback(true)` selects the fallback instead.
//!
//! Off Linux (the syscall does not exist) and under Miri (which has no such syscall),
//! [`available`] reports `false`: `Memb` domains use the fence protocol there and say so
//! through [`Domain::uses_membarrier`](crate::Domain::uses_membarrier) and
//! [`Domain::protocol`](crate::Domain::protocol).

/// The system call, where it exists.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
mod sys {
    pub(super) const CMD_QUERY: libc::c_int = libc::MEMBARRIER_CMD_QUERY as libc::c_int;
    pub(super) const CMD_PRIVATE_EXPEDITED: libc::c_int =
        libc::MEMBARRIER_CMD_PRIVATE_EXPEDITED as libc::c_int;
    pub(super) const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int =
        libc::MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED as libc::c_int;

    pub(super) fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier takes two integer arguments (cmd, flags) and touches no memory
        // of ours; an unsupported command returns -1 with errno set, which callers check.
        unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_int) }
    }
}

/// Whether `MEMBARRIER_CMD_PRIVATE_EXPEDITED` is usable in this process (registering for it
/// on the first call). Honors `RCU_MEMB_FORCE_FALLBACK=1`, which pretends it is missing.
pub fn available() -> bool {
    #[cfg(loom)]
    {
        true
    }
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        // Not a `OnceLock`: registering can take milliseconds (the kernel waits for a
        // grace period of its own), and a child forked meanwhile would wait forever for
        // the vanished initialising thread. Threads that race here both probe and register
        // (registration is idempotent) and store the same answer.
        use std::sync::atomic::{AtomicU8, Ordering};
        static AVAILABLE: AtomicU8 = AtomicU8::new(0); // 0 unknown, 1 no, 2 yes
                                                       // Relaxed: the answer is a fact about the process, not a publication of data.
        match AVAILABLE.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => {
                let yes = probe();
                AVAILABLE.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
                yes
            }
        }
    }
    #[cfg(not(any(loom, all(target_os = "linux", not(miri)))))]
    {
        false
    }
}

/// Query the kernel and register the process for `PRIVATE_EXPEDITED`.
#[cfg(all(target_os = "linux", not(loom), not(miri)))]
fn probe() -> bool {
    if std::env::var_os("RCU_MEMB_FORCE_FALLBACK").is_some_and(|v| v == "1") {
        return false;
    }
    let mask = sys::membarrier(sys::CMD_QUERY);
    if mask < 0 || mask & sys::CMD_PRIVATE_EXPEDITED as libc::c_long == 0 {
        return false;
    }
    sys::membarrier(sys::CMD_REGISTER_PRIVATE_EXPEDITED) == 0
}

/// The grace-period side of the pair: a full barrier on every running thread of the process.
///
/// Only call this after [`available`] returned `true`.
#[inline]
pub fn heavy() {
    // Our own side of the pairing is a real fence as well, so that the C11 reasoning of the
    // callers holds on the writer side without appealing to the syscall.
    crate::sync::fence(crate::sync::Ordering::SeqCst);
    #[cfg(all(target_os = "linux", not(loom), not(miri)))]
    {
        let r = sys::membarrier(sys::CMD_PRIVATE_EXPEDITED);
        // Registration succeeded in `available()`, and the kernel never withdraws it; a
        // failure here would mean readers are unprotected, so it must not pass silently.
        assert!(
            r == 0,
            "membarrier(PRIVATE_EXPEDITED) failed after registration"
        );
    }
}

/// The reader side of the pair: a compiler fence (a real fence under loom).
#[inline(always)]
pub fn light() {
    crate::sync::light_fence();
}
