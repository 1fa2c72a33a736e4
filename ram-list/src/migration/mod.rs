//! The RAM section of QEMU's migration stream: [`RamSaver`] (`ram_save_setup`,
//! `ram_save_iterate`, `ram_save_complete`) and [`RamLoader`] (`ram_load`), plus the outer
//! `QEVM` framing for whole streams ([`MigrationWriter`], [`load`]).
//!
//! The files follow the pipeline: `format` (the records and their flags, shared by both
//! directions: [`RamRecord`], [`RecordDecoder`]), `save` and `send` (the source,
//! [`RamSaver`]), `writer` (the outer framing, [`MigrationWriter`]), `load` and `apply`
//! (the destination: [`RamLoader`] decodes a record, then applies it), `incoming` (a
//! stream as it arrives: [`receive`] for a whole one from a live source, [`load`] for its
//! RAM section), `machine` (what a QEMU destination of
//! a given machine type expects: [`QemuMachine`]).
//!
//! # With a real QEMU
//!
//! * QEMU as the source: [`receive`] reads what `migrate` sends, live (the RAM section as
//!   it streams, then the device sections, delimited and named though not modelled) and
//!   answers on the return path when the source opens it.
//! * QEMU as the destination (`-incoming`): a [`MigrationWriter`] for the machine's
//!   name, whose list has the machine's RAM block ([`QemuMachine::ram_block`], sized as
//!   the destination's `-m`), with [`QemuMachine::device_states`] set as its device
//!   sections, and the return path opened to learn that the destination loaded it.
//!
//! # Save side and RCU
//!
//! Each `RamSaver` call runs inside one read-side critical section (the caller's guard) and
//! keeps **no block reference across calls**: it keeps plain data (each block's idstr,
//! ram offset, length and migration bitmap, and the resume position as block index and
//! page), and at the start of every call resolves those entries to live blocks by idstr.
//! When the list's `version` changed since the last call, the round restarts (QEMU's
//! `reset_ram_globals`), exactly the reason QEMU keeps `last_version`.
//!
//! # Hotplug during migration
//!
//! QEMU refuses `device_add`/`device_del` while a migration runs, so its RAM stream never
//! sees the block set change. This crate supports it instead, coherently on both sides,
//! with [`SaveOptions::mirror_block_changes`] and [`BlockPolicy::Mirror`]:
//!
//! * the saver notices a new `version` at the start of a call, re-reads the block list in
//!   its critical section (reading `version` *before* the traversal, so a change it misses
//!   shows up as a different version next time), and emits a new `MEM_SIZE` record in the
//!   current section before any page of a new block;
//! * a block keeps its migration bitmap across such a resync only if its idstr, ram offset
//!   and length are unchanged; a new or changed block starts all-dirty, and a removed
//!   block's pending pages are dropped with it (a new block is also born all-dirty in the
//!   global dirty bitmap, as in QEMU's `ram_block_add`);
//! * a mirroring destination treats every `MEM_SIZE` record as the complete block set:
//!   it creates blocks it lacks, resizes or recreates blocks whose length changed, and
//!   frees blocks no longer listed.
//!
//! In the default strict mode both sides behave as QEMU does: a change of the migratable
//! block set during migration is an error on the save side
//! ([`SaveError::BlockSetChanged`]), and the destination only accepts blocks it already
//! has (resizing resizeable ones).
//!
//! # Load side
//!
//! The stream is untrusted: every malformed input is a [`LoadError`], never a panic, and a
//! page is only ever written after checking that it lies inside its block's used length.
//!
//! The loader decodes a record with nothing held, then applies it: a page under one short
//! read-side critical section, a `MEM_SIZE` record under the list's writer lock without
//! any critical section. So a peer that stalls holds up no grace period, and a writer
//! that waits for a grace period while holding the list's lock cannot deadlock with the
//! loader ([`RamLoader`] has the details).

mod apply;
mod error;
mod format;
mod incoming;
mod load;
mod machine;
mod names;
mod options;
mod save;
mod send;
mod stats;
mod writer;

pub use error::{LoadError, LoadErrorKind, SaveError};
pub use format::{
    BlockEntry, RamRecord, RecordDecoder, MAX_MEM_SIZE_BLOCKS, RAM_SAVE_FLAG_COMPRESS_PAGE,
    RAM_SAVE_FLAG_CONTINUE, RAM_SAVE_FLAG_EOS, RAM_SAVE_FLAG_FULL, RAM_SAVE_FLAG_HOOK,
    RAM_SAVE_FLAG_MEM_SIZE, RAM_SAVE_FLAG_MULTIFD_FLUSH, RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_XBZRLE,
    RAM_SAVE_FLAG_ZERO, RAM_SECTION_ID, RAM_SECTION_NAME, RAM_SECTION_VERSION,
};
pub use incoming::{load, receive, IncomingEvent, IncomingOptions, IncomingReport};
pub use load::RamLoader;
pub use machine::{runstate, QemuMachine, GLOBALSTATE, MACHINE_NONE};
pub use options::{BlockPolicy, LoadOptions, SaveOptions};
pub use save::RamSaver;
pub use stats::{BlockLoadStats, IterateStatus, LoadReport, LoadStats, SaveStats};
pub use writer::MigrationWriter;
