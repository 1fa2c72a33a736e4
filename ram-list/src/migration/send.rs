//! Sending dirty pages: the part of `ram_save_iterate`/`ram_save_complete` that walks the
//! migration bitmaps from the resume position and writes page records, serially or (with
//! the `rayon` feature) encoded on the rayon pool.

use std::io::Write;

use super::error::SaveError;
use super::format::{
    page_prefix, RamRecord, MAX_PAGE_RECORD, RAM_SAVE_FLAG_PAGE, RAM_SAVE_FLAG_ZERO,
};
use super::save::RamSaver;
use super::stats::IterateStatus;
use crate::block::RamBlock;
use crate::memory::{self, PAGE_SIZE};

/// What one `iterate`/`complete` call sends from: the live blocks (indexed like the
/// saver's), and its byte budget.
struct Round<'a, 'g> {
    live: &'a [&'g RamBlock],
    max_bytes: u64,
    /// `stats.bytes` when the call started.
    start_bytes: u64,
}

impl Round<'_, '_> {
    /// Bytes the call may still write, if any.
    fn room(&self, stats_bytes: u64) -> Option<u64> {
        let sent = stats_bytes - self.start_bytes;
        (sent < self.max_bytes).then(|| self.max_bytes - sent)
    }
}

impl RamSaver {
    /// Send dirty pages from the resume position, wrapping around, until `max_bytes`.
    pub(super) fn send<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        live: &[&RamBlock],
        max_bytes: u64,
    ) -> Result<IterateStatus, SaveError> {
        let start_bytes = self.stats.bytes;
        let start_pages = self.stats.data_pages + self.stats.zero_pages;
        if self.mem_size_owed {
            self.write_mem_size();
        }
        // Pending small records first, then the page records.
        self.flush(w)?;
        let round = Round {
            live,
            max_bytes,
            start_bytes,
        };
        #[cfg(feature = "rayon")]
        if self.opts.parallel {
            self.send_parallel(w, &round)?;
        } else {
            self.send_serial(w, &round)?;
        }
        #[cfg(not(feature = "rayon"))]
        self.send_serial(w, &round)?;
        RamRecord::Eos.encode(&mut self.buf, false);
        self.flush(w)?;
        Ok(IterateStatus {
            pages: self.stats.data_pages + self.stats.zero_pages - start_pages,
            bytes: self.stats.bytes - start_bytes,
            remaining: self.remaining(),
        })
    }

    /// The next dirty page from the resume position (wrapping once), cleared.
    fn take_next(&mut self) -> Option<(usize, u64)> {
        if self.blocks.is_empty() || self.remaining() == 0 {
            return None;
        }
        let n = self.blocks.len();
        let (mut bi, mut page) = self.pos;
        if bi >= n {
            (bi, page) = (0, 0);
        }
        for _ in 0..=n {
            let bitmap = &mut self.blocks[bi].bitmap;
            if let Some(p) = bitmap.next_set(page) {
                bitmap.clear(p);
                self.pos = (bi, p + 1);
                return Some((bi, p));
            }
            bi = (bi + 1) % n;
            page = 0;
        }
        None
    }

    /// Count one page record of `len` bytes.
    fn count_page(&mut self, len: usize, zero: bool) {
        self.stats.bytes += len as u64;
        if zero {
            self.stats.zero_pages += 1;
        } else {
            self.stats.data_pages += 1;
        }
    }

    fn send_serial<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        round: &Round<'_, '_>,
    ) -> Result<(), SaveError> {
        // Every page record straight from a stack buffer: one copy of each page into the
        // writer (wrap sockets and files in a `BufWriter`).
        let mut rec = [0u8; MAX_PAGE_RECORD];
        let mut last: Option<usize> = None;
        while round.room(self.stats.bytes).is_some() {
            let Some((bi, page)) = self.take_next() else {
                break;
            };
            let cont = last == Some(bi);
            let Some((len, zero)) =
                encode_page(&mut rec, round.live[bi], &self.blocks[bi].idstr, page, cont)
            else {
                continue;
            };
            last = Some(bi);
            w.write_all(&rec[..len])?;
            self.count_page(len, zero);
        }
        Ok(())
    }

    #[cfg(feature = "rayon")]
    fn send_parallel<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        round: &Round<'_, '_>,
    ) -> Result<(), SaveError> {
        // Batches of pages: picked serially (cheap bitmap scans), encoded in parallel into
        // disjoint slices of one reused buffer (copy + zero check, the expensive part),
        // written in order.
        const BATCH_PAGES: usize = 4096;
        let mut items: Vec<(usize, u64)> = Vec::with_capacity(BATCH_PAGES);
        let mut out = std::mem::take(&mut self.par_buf);
        out.resize(BATCH_PAGES * MAX_PAGE_RECORD, 0);
        let res = self.send_batches(w, round, &mut items, &mut out);
        self.par_buf = out;
        res
    }

    #[cfg(feature = "rayon")]
    fn send_batches<W: Write + ?Sized>(
        &mut self,
        w: &mut W,
        round: &Round<'_, '_>,
        items: &mut Vec<(usize, u64)>,
        out: &mut [u8],
    ) -> Result<(), SaveError> {
        use rayon::prelude::*;
        /// Pages per parallel work item.
        const PAR_CHUNK_PAGES: usize = 256;
        let batch_pages = out.len() / MAX_PAGE_RECORD;
        let live = round.live;
        loop {
            let Some(room) = round.room(self.stats.bytes) else {
                return Ok(());
            };
            // Never overshoot the budget by more than a batch of small pages.
            let room = (room / (PAGE_SIZE + 9)).max(1) as usize;
            items.clear();
            while items.len() < batch_pages.min(room) {
                match self.take_next() {
                    Some(it) => items.push(it),
                    None => break,
                }
            }
            if items.is_empty() {
                return Ok(());
            }
            let blocks = &self.blocks;
            // (bytes, zero pages, data pages) per chunk.
            let parts: Vec<(usize, u64, u64)> = items
                .par_chunks(PAR_CHUNK_PAGES)
                .zip(out.par_chunks_mut(PAR_CHUNK_PAGES * MAX_PAGE_RECORD))
                .map(|(chunk, buf)| {
                    let (mut len, mut zero, mut data) = (0, 0, 0);
                    let mut last = None;
                    for &(bi, page) in chunk {
                        let cont = last == Some(bi);
                        let rec = &mut buf[len..len + MAX_PAGE_RECORD];
                        let Some((n, z)) =
                            encode_page(rec, live[bi], &blocks[bi].idstr, page, cont)
                        else {
                            continue;
                        };
                        last = Some(bi);
                        len += n;
                        if z {
                            zero += 1;
                        } else {
                            data += 1;
                        }
                    }
                    (len, zero, data)
                })
                .collect();
            for (i, (len, zero, data)) in parts.into_iter().enumerate() {
                let at = i * PAR_CHUNK_PAGES * MAX_PAGE_RECORD;
                w.write_all(&out[at..at + len])?;
                self.stats.bytes += len as u64;
                self.stats.zero_pages += zero;
                self.stats.data_pages += data;
            }
        }
    }
}

/// Encode one page record into `out` (at least [`MAX_PAGE_RECORD`] bytes); returns its
/// length and whether it is a zero page. QEMU's `save_zero_page` / `ram_save_page` with
/// `save_page_header`. `None` if the page is no longer inside the block (a concurrent
/// `resize` shrank it: the resize bumped the version, so the next call resyncs the block
/// and sends it again).
#[inline]
fn encode_page(
    out: &mut [u8],
    block: &RamBlock,
    idstr: &str,
    page: u64,
    cont: bool,
) -> Option<(usize, bool)> {
    let addr = page * PAGE_SIZE;
    let words = block.page_words(addr)?;
    let zero = memory::words_are_zero(words);
    let flag = if zero {
        RAM_SAVE_FLAG_ZERO
    } else {
        RAM_SAVE_FLAG_PAGE
    };
    let len = page_prefix(out, (!cont).then_some(idstr), addr, flag);
    if zero {
        out[len] = 0;
        Some((len + 1, true))
    } else {
        memory::load_words(words, &mut out[len..len + PAGE_SIZE as usize]);
        Some((len + PAGE_SIZE as usize, false))
    }
}
