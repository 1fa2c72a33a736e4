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

// Every C kernel below: the pointers are valid for the call (references, or `Cell`'s own
// storage, which C accesses only through liburcu's and the compiler's atomic operations);
// the cell holds null or a payload `twin_publish`/the updater `malloc`ed, which C frees only
// after `synchronize_rcu()` or, in `twin_reclaim`, after the readers were joined; each
// kernel registers and unregisters its thread with liburcu itself.
impl Twin for Liburcu {
    fn publish(&self, cell: &Cell, value: u64) {
        // SAFETY: see above the impl.
        unsafe { twin_publish(cell.as_ptr(), value) }
    }

    fn reclaim(&self, cell: &Cell) {
        // SAFETY: see above the impl; the caller joined every reader.
        unsafe { twin_reclaim(cell.as_ptr()) }
    }

    fn plain_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        // SAFETY: see above the impl.
        counts(|out| unsafe { twin_plain_loop(cell.as_ptr(), budget_ns, out) })
    }

    fn read_loop(&self, cell: &Cell, budget_ns: u64) -> Counts {
        // SAFETY: see above the impl.
        counts(|out| unsafe { (self.ops.read_loop)(cell.as_ptr(), budget_ns, out) })
    }

    fn read_loop_free_fns(&self, cell: &Cell, budget_ns: u64) -> Option<Counts> {
        // liburcu's free functions are its only read-side API.
        Some(self.read_loop(cell, budget_ns))
    }

    fn busy_reader(&self, cell: &Cell, ctl: &Control) -> Counts {
        let ctl = ptr_of(ctl);
        // SAFETY: see above the impl; C touches `ctl` only with atomic builtins.
        counts(|out| unsafe { (self.ops.busy_reader)(cell.as_ptr(), ctl, out) })
    }

    fn updater(&self, cell: &Cell, ctl: &Control) -> Counts {
        let ctl = ptr_of(ctl);
        // SAFETY: as in `busy_reader`.
        counts(|out| unsafe { (self.ops.updater)(cell.as_ptr(), ctl, out) })
    }

    fn idle_reader(&self, wait: &mut dyn FnMut()) {
        // SAFETY: registers this thread (QSBR: and takes it offline); unregistered below,
        // on the same thread, before it can exit.
        unsafe { (self.ops.idle_register)() };
        wait();
        // SAFETY: this thread is registered (above).
        unsafe { (self.ops.idle_unregister)() };
    }

    fn sync_loop(&self, budget_ns: u64) -> Counts {
        // SAFETY: see above the impl.
        counts(|out| unsafe { (self.ops.sync_loop)(budget_ns, out) })
    }

    fn call_barrier(&self, n: u64) -> Counts {
        // SAFETY: see above the impl.
        counts(|out| unsafe { (self.ops.call_barrier)(n, out) })
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
