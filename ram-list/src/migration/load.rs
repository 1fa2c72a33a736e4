//! [`RamLoader`] (`ram_load`): read the RAM section of a stream into a destination list,
//! one record at a time: decode it (blocking on the stream, holding
//! nothing), then apply it (a page under one short read-side critical section, a
//! `MEM_SIZE` record under the list's writer lock alone).

use std::io::Read;

use rcu_core::{Flavor, Reader};

use super::apply::{Destination, PageData};
use super::error::LoadError;
use super::format::{RamRecord, RecordDecoder};
use super::options::LoadOptions;
use super::stats::LoadStats;
use crate::stream::CountingReader;
use crate::RamList;

/// The load side of the RAM section (QEMU's `ram_load_precopy`), section body by section
/// body. Keeps the "current block" for CONTINUE across sections by idstr (and a
/// version-checked pointer that saves the lookup), never by reference.
///
/// # Liveness
///
/// No read-side critical section is ever held while the loader waits: not while it blocks
/// on the stream (a peer may stall for as long as it likes without holding up a single
/// grace period of the list's domain), and not while it waits for the list's writer lock
/// (a writer that holds the lock while it waits for a grace period cannot deadlock with
/// the loader). Each page is written under one critical section of the caller's reader
/// that covers only the copy.
#[derive(Debug)]
pub struct RamLoader<'l, F: Flavor> {
    decoder: RecordDecoder,
    dest: Destination<'l, F>,
}

impl<'l, F: Flavor> RamLoader<'l, F> {
    /// A loader into `list`.
    pub fn new(list: &'l RamList<F>, opts: LoadOptions) -> Self {
        RamLoader {
            decoder: RecordDecoder::new(opts.ignore_shared),
            dest: Destination::new(list, &opts),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> &LoadStats {
        &self.dest.stats
    }

    /// Consume the loader, keeping its counters.
    pub fn into_stats(self) -> LoadStats {
        self.dest.stats
    }

    /// Load one section body, up to and including its EOS, from `r` (positioned at the
    /// body, e.g. [`QemuFileReader::payload`](crate::stream::QemuFileReader::payload)). Pages are written under short critical
    /// sections of `reader`, a thread registered with the list's domain.
    ///
    /// # Blocking
    ///
    /// Blocks on `r` for as long as the stream does, and on the list's writer lock to
    /// apply a `MEM_SIZE` record; in neither wait does it hold a read-side critical
    /// section (see the type docs). With [`BlockPolicy::Mirror`](super::BlockPolicy), a
    /// record that would map more than the limit first waits for removed blocks to be
    /// reclaimed (two [`Domain::barrier`](rcu_core::Domain::barrier)s), unless this thread
    /// is inside a critical section of the list's domain or is a QSBR reader. Do not call
    /// it while this thread holds the list's writer lock.
    ///
    /// # Panics
    ///
    /// If `reader` belongs to another domain than the list's.
    pub fn load_section<R: Read>(
        &mut self,
        r: &mut CountingReader<R>,
        reader: &Reader<F>,
    ) -> Result<(), LoadError> {
        self.dest.stats.sections += 1;
        loop {
            let at = r.offset();
            match self.decoder.next(r)? {
                RamRecord::Eos => return Ok(()),
                RamRecord::MemSize(entries) => self.dest.mem_size(at, &entries, reader)?,
                RamRecord::Page { block, addr, data } => {
                    self.dest
                        .page(at, block, addr, PageData::Bytes(data), reader)?;
                }
                RamRecord::Zero { block, addr, fill } => {
                    self.dest
                        .page(at, block, addr, PageData::Fill(fill), reader)?;
                }
            }
        }
    }
}
