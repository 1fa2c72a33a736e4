//! The C twin (`benches/c/`, built against the system liburcu by `build.rs`), as a [`Twin`].
//!
//! Each flavor's C file exports a table of its kernels (`twin_<flavor>_ops`); the kernels
//! themselves, loops included, are C. The FFI call happens once per kernel, outside its
//! timed loop.

use std::ptr;

use super::twin::{Cell, Control, Counts, Twin, TwinPayload};

type CellPtr = *mut *mut TwinPayload;

/// `struct twin_ops` of `twin.h`.
#[repr(C)]
struct Ops {
    read_loop: unsafe extern "C" fn(CellPtr, u64, *mut Counts),
    busy_reader: unsafe extern "C" fn(CellPtr, *mut Control, *mut Counts),
    updater: unsafe extern "C" fn(CellPtr, *mut Control, *mut Counts),
    idle_register: unsafe extern "C" fn(),
    idle_unregister: unsafe extern "C" fn(),
    sync_loop: unsafe extern "C" fn(u64, *mut Counts),
    call_barrier: unsafe extern "C" fn(u64, *mut Counts),
}

extern "C" {
    static twin_memb_ops: Ops;
    static twin_mb_ops: Ops;
    static twin_qsbr_ops: Ops;
    fn twin_publish(cell: CellPtr, value: u64);
    fn twin_reclaim(cell: CellPtr);
    fn twin_plain_loop(cell: CellPtr, budget_ns: u64, out: *mut Counts);
    fn twin_abi(sizes: *mut [u64; 3]);
}

/// The C twin of one liburcu flavor.
pub struct Liburcu {
    ops: &'static Ops,
}

impl Liburcu {
    /// urcu-memb.
    pub fn memb() -> Box<dyn Twin> {
        // SAFETY: an immutable, fully initialised static of the C side (`const struct`).
        let ops = unsafe { &twin_memb_ops };
        Box::new(Liburcu { ops })
    }

    /// urcu-mb.
    pub fn mb() -> Box<dyn Twin> {
        // SAFETY: as in `memb`.
        let ops = unsafe { &twin_mb_ops };
        Box::new(Liburcu { ops })
    }

    /// urcu-qsbr.
    pub fn qsbr() -> Box<dyn Twin> {
        // SAFETY: as in `memb`.
        let ops = unsafe { &twin_qsbr_ops };
        Box::new(Liburcu { ops })
    }
}

/// The C sizes of the payload, the counts and the control block (the Rust types must match).
pub fn c_sizes() -> [u64; 3] {
    let mut sizes = [0; 3];
    // SAFETY: writes three `uint64_t` into the array it is given.
    unsafe { twin_abi(&mut sizes) };
    sizes
}

fn counts(f: impl FnOnce(*mut Counts)) -> Counts {
    let mut out = Counts::default();
    f(&mut out);
    out
}

// The C kernels taking a cell rely on the trait's contract exactly as ours do (C frees a
// payload only after `synchronize_rcu()` of the flavor every C reader uses, or in
// `twin_reclaim`); C touches the cell only with liburcu's and the compiler's atomic
// operations, and `Control` only with `__atomic` builtins. Every pointer passed is valid
// for the call (a reference, or `Cell`'s and `Counts`' own storage).
impl Twin for Liburcu {
    unsafe fn publish(&self, cell: &Cell, value: u64) {
        // SAFETY: the caller's contract (see above the impl).
        unsafe { twin_publish(cell.as_ptr(), value) }
    }

    unsafe fn reclaim(&self, cell: &Cell) {
        // SAFETY: the caller's contract (item 3: no other kernel runs on `cell`).
        unsafe { twin_reclaim(cell.as_ptr()) }
    }

    unsafe fn plain_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        // SAFETY: the caller's contract (and no updater).
        counts(|out| unsafe { twin_plain_loop(cell.as_ptr(), budget_ns, out) })
    }

    unsafe fn read_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        // SAFETY: the caller's contract.
        counts(|out| unsafe { (self.ops.read_loop)(cell.as_ptr(), budget_ns, out) })
    }

    unsafe fn read_loop_free_fns(&self, cell: &Cell, budget_ns: u64) -> Option<Counts> {
        // liburcu's free functions are its only read-side API.
        // SAFETY: the caller's contract, a stronger one than `read_loop` needs.
        Some(unsafe { self.read_loop(cell, budget_ns) })
    }

    unsafe fn busy_reader(&self, cell: &Cell, ctl: &Control) -> Counts {
        let ctl = ptr_of(ctl);
        // SAFETY: the caller's contract.
        counts(|out| unsafe { (self.ops.busy_reader)(cell.as_ptr(), ctl, out) })
    }

    unsafe fn updater(&self, cell: &Cell, ctl: &Control) -> Counts {
        let ctl = ptr_of(ctl);
        // SAFETY: the caller's contract (one updater; every reader of `cell` is a C reader
        // of this flavor, whose critical sections `synchronize_rcu()` waits for).
        counts(|out| unsafe { (self.ops.updater)(cell.as_ptr(), ctl, out) })
    }

    fn idle_reader(&self, wait: &mut dyn FnMut()) {
        // SAFETY: registers this thread (QSBR: and takes it offline); the guard unregisters
        // it on the same thread, even if `wait` unwinds, before the thread can exit (a
        // thread that exits registered would leave liburcu a dangling reader).
        unsafe { (self.ops.idle_register)() };
        let _unregister = Unregister(self.ops);
        wait();
    }

    fn sync_loop(&self, budget_ns: u64) -> Counts {
        // SAFETY: no cell; `synchronize_rcu()` from an unregistered thread is allowed.
        counts(|out| unsafe { (self.ops.sync_loop)(budget_ns, out) })
    }

    fn call_barrier(&self, n: u64) -> Counts {
        // SAFETY: no cell; the kernel allocates its own `rcu_head`s (aborting if `n` is too
        // large to allocate) and registers and unregisters its thread itself.
        counts(|out| unsafe { (self.ops.call_barrier)(n, out) })
    }
}

/// Unregisters the idle reader's thread when dropped.
struct Unregister(&'static Ops);

impl Drop for Unregister {
    fn drop(&mut self) {
        // SAFETY: created right after `idle_register` on this thread, dropped on it.
        unsafe { (self.0.idle_unregister)() };
    }
}

/// `Control` is all atomics: C's `__atomic` builtins on its fields through this pointer
/// are the same operations as Rust's on `&Control`.
fn ptr_of(ctl: &Control) -> *mut Control {
    ptr::from_ref(ctl).cast_mut()
}

#[cfg(test)]
mod tests {
    use super::super::twin::{Control, Counts, TwinPayload};
    use super::c_sizes;
    use std::mem::size_of;

    #[test]
    fn c_and_rust_layouts_match() {
        assert_eq!(
            c_sizes(),
            [
                size_of::<TwinPayload>() as u64,
                size_of::<Counts>() as u64,
                size_of::<Control>() as u64
            ]
        );
        assert_eq!(size_of::<TwinPayload>(), 32);
    }
}
