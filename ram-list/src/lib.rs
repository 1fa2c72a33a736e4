//! QEMU's `RAMList` on RCU: guest RAM blocks in an RCU list, lock-free address translation,
//! dirty tracking, and the RAM part of live migration in QEMU's stream format.
//!
//! This is the reference consumer of [`rcu_core`] and [`rcu_queue`], and it reproduces the
//! semantics of the QEMU patch that moved `ram_list` to RCU (see the module docs of
//! [`RamList`] for its locking rules and the `mru_block` subtlety):
//!
//! * [`RamBlock`]: one range of guest RAM (offset, used/max length, host memory from an
//!   anonymous `mmap` or from the caller, idstr, flags) with an intrusive QLIST link.
//! * [`RamList`]: the blocks sorted biggest first, lookups by ram address (with the
//!   `mru_block` hint) and by host pointer, the `version` counter, and a writer lock in
//!   place of the BQL. Removed blocks are reclaimed through `call_rcu`.
//! * [`Translator`]: a per-thread (per-vCPU) translation cache that keeps its block across
//!   critical sections, validated by `version`; unlike `mru_block` it writes nothing
//!   shared, which is what lets translation scale with the number of vCPU threads.
//! * [`DirtyMemory`]: per-page dirty bitmaps per client, grown by RCU copy, so marking a
//!   page dirty never takes a lock.
//! * [`migration`]: the "ram" section (version 4) of QEMU's migration stream, both
//!   directions ([`migration::RamSaver`], [`migration::MigrationWriter`],
//!   [`migration::RamLoader`], [`migration::load`]), compatible with real QEMU streams (see
//!   `tests/fixtures/README.md`); [`stream`]: the outer framing of that stream (the
//!   `QEVM` header, the configuration record, sections).
//!
//! ```
//! use rcu_core::{Domain, Memb};
//! use ram_list::{DirtyClient, RamList};
//!
//! let domain: Domain<Memb> = Domain::new();
//! let ram = RamList::new_in(&domain);
//! let base = ram.alloc_named("pc.ram", 1 << 20).unwrap();
//!
//! // A vCPU thread: translate and write under a read guard, never blocked by writers.
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let reader = domain.register();
//!         let guard = reader.read_lock();
//!         for i in 0..16u64 {
//!             ram.write_u64(base + i * 4096, i, &guard).unwrap();
//!         }
//!     });
//!     // Meanwhile, hotplug: add and remove a DIMM.
//!     let dimm = ram.alloc_named("dimm0", 256 << 10).unwrap();
//!     ram.unplug(dimm).unwrap(); // reclaimed after readers are done
//! });
//!
//! let reader = domain.register();
//! let guard = reader.read_lock();
//! assert_eq!(ram.dirty().count(DirtyClient::Migration, base, 16, &guard), 16);
//! ```
//!
//! # Guest memory access
//!
//! Guest RAM is written by vCPU threads while migration reads it, without synchronization
//! (the dirty bitmap catches every page changed during a copy). To keep that free of data
//! races in Rust's memory model, no `&[u8]` to guest memory is ever created: every access
//! is an 8-byte relaxed atomic operation (a plain `mov` on x86-64).
//!
//! # Names for QEMU users
//!
//! | QEMU | here |
//! |---|---|
//! | `RAMBlock`, `block->offset/used_length/max_length/host/idstr/flags` | [`RamBlock`] and its accessors |
//! | `ram_list.blocks`, `RAMBLOCK_FOREACH`, `QLIST_FOREACH_RCU` | [`RamList::iter`] |
//! | `ram_list.mru_block`, `ram_list.version`, `ram_list.dirty_memory` | internal hint, [`RamList::version`], [`RamList::dirty`] |
//! | `qemu_mutex_lock_ramlist` / BQL | [`RamList::lock`] -> [`RamListWriter`] |
//! | `find_ram_offset`, `last_ram_offset` | [`RamListWriter::find_ram_offset`], [`RamList::last_ram_offset`] |
//! | `qemu_ram_alloc`, `qemu_ram_alloc_from_ptr`, `qemu_ram_alloc_resizeable`, `qemu_ram_resize` | [`RamListWriter::alloc`], [`RamListWriter::alloc_from_ptr`] / [`RamListWriter::alloc_from_static`], [`RamListWriter::alloc_resizeable`], [`RamListWriter::resize`] |
//! | `qemu_ram_set_idstr`, `qemu_ram_unset_idstr`, `qemu_ram_free` | [`RamListWriter::set_idstr`], [`RamListWriter::unset_idstr`], [`RamListWriter::free`] (reclaimed through `call_rcu`; [`RamList::unplug_sync`] reclaims before returning) |
//! | `qemu_get_ram_block`, `qemu_ram_block_from_host`, `qemu_ram_addr_from_host`, `qemu_ram_ptr_length` | [`RamList::lookup`] / [`RamList::translate`] (per thread: [`RamList::translator`]), [`RamList::block_from_host`], [`RamList::ram_addr_from_host`], [`RamList::ptr_length`] |
//! | `qemu_ram_foreach_block`, `qemu_ram_block_by_name`, `ram_bytes_total` | [`RamList::foreach_block`], [`RamList::block_by_name`], [`RamList::bytes_total`] |
//! | `cpu_physical_memory_set_dirty_range`, `..._test_and_clear_dirty`, `dirty_memory_extend` | [`DirtyMemory::set_range`], [`DirtyMemory::test_and_clear`], internal (on alloc) |
//! | `ram_save_setup`, `ram_save_iterate`, `ram_save_complete`, `migration_bitmap_sync` | [`migration::RamSaver::setup`], [`migration::RamSaver::iterate`], [`migration::RamSaver::complete`], [`migration::RamSaver::sync`] |
//! | `ram_load` | [`migration::RamLoader::load_section`], [`migration::load`] |
//! | `qemu_loadvm_state` framing, `qemu_savevm_state_header` | [`stream::QemuFileReader`], [`migration::MigrationWriter`] |
//!
//! # Features
//!
//! * `rayon`: `migration::SaveOptions::parallel`, encoding pages on the rayon pool.
#![doc(test(attr(deny(warnings))))]

mod bitmap;
mod block;
mod dirty;
mod error;
mod guest_range;
mod index;
mod memory;
pub mod migration;
mod ram_list;
pub mod stream;
mod sync;
#[cfg(all(test, not(loom)))]
mod testing;
mod translator;
mod writer;

pub use bitmap::PageBitmap;
pub use block::{RamBlock, RamBlockFlags, MAX_IDSTR_LEN};
pub use dirty::{DirtyClient, DirtyMask, DirtyMemory, DIRTY_CHUNK_PAGES, DIRTY_CLIENTS};
pub use error::RamError;
pub use guest_range::GuestRange;
pub use index::RAM_OFFSET_ALIGN;
pub use memory::{PAGE_BITS, PAGE_SIZE};
pub use ram_list::{RamList, Translated};
pub use translator::Translator;
pub use writer::RamListWriter;
