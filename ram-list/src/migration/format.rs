//! The records of the "ram" section body (version 4), shared by both directions: the flags,
//! the decoded record ([`RamRecord`]) with its encoding, and the [`RecordDecoder`] that
//! reads one record at a time.
//!
//! Every record starts with a big-endian `be64` whose low 12 bits are flags and whose upper
//! bits are an offset (or, for MEM_SIZE, a byte count):
//!
//! | flag | record after the header |
//! |---|---|
//! | `MEM_SIZE` 0x04 | header value = total bytes; then per block: `u8 len`, idstr, `be64 used_length` (`[be64 addr]` with `x-ignore-shared`), until the total is reached |
//! | `ZERO` 0x02 | `[idstr]`, one fill byte: the page is all that byte |
//! | `PAGE` 0x08 | `[idstr]`, 4096 bytes |
//! | `CONTINUE` 0x20 | OR-ed into ZERO/PAGE: same block as the previous page, no idstr |
//! | `EOS` 0x10 | end of this section body |
//!
//! The offset of a ZERO/PAGE record is the page's offset *inside its block*, found by idstr.

use std::collections::HashSet;
use std::io::Read;

use super::error::{LoadError, LoadErrorKind};
use crate::memory::PAGE_SIZE;
use crate::stream::{idstr_bytes, put_idstr, CountingReader};

/// `RAM_SAVE_FLAG_FULL` (0x01): obsolete, rejected.
pub const RAM_SAVE_FLAG_FULL: u64 = 0x01;
/// `RAM_SAVE_FLAG_ZERO` (0x02): a page filled with one byte.
pub const RAM_SAVE_FLAG_ZERO: u64 = 0x02;
/// `RAM_SAVE_FLAG_MEM_SIZE` (0x04): the block list.
pub const RAM_SAVE_FLAG_MEM_SIZE: u64 = 0x04;
/// `RAM_SAVE_FLAG_PAGE` (0x08): a full page of data.
pub const RAM_SAVE_FLAG_PAGE: u64 = 0x08;
/// `RAM_SAVE_FLAG_EOS` (0x10): end of the section body.
pub const RAM_SAVE_FLAG_EOS: u64 = 0x10;
/// `RAM_SAVE_FLAG_CONTINUE` (0x20): same block as the previous page.
pub const RAM_SAVE_FLAG_CONTINUE: u64 = 0x20;
/// `RAM_SAVE_FLAG_XBZRLE` (0x40): delta-compressed page (not supported).
pub const RAM_SAVE_FLAG_XBZRLE: u64 = 0x40;
/// `RAM_SAVE_FLAG_HOOK` (0x80): RDMA hook (not supported).
pub const RAM_SAVE_FLAG_HOOK: u64 = 0x80;
/// `RAM_SAVE_FLAG_COMPRESS_PAGE` (0x100): zlib-compressed page (not supported).
pub const RAM_SAVE_FLAG_COMPRESS_PAGE: u64 = 0x100;
/// `RAM_SAVE_FLAG_MULTIFD_FLUSH` (0x200): multifd sync point (not supported).
pub const RAM_SAVE_FLAG_MULTIFD_FLUSH: u64 = 0x200;

/// Name of the RAM section in the outer stream.
pub const RAM_SECTION_NAME: &str = "ram";
/// Version of the RAM section format.
pub const RAM_SECTION_VERSION: u32 = 4;
/// Section id the [`MigrationWriter`](super::MigrationWriter) gives the RAM section (QEMU's
/// is 2 for `-M none`).
pub const RAM_SECTION_ID: u32 = 2;
/// Most blocks a `MEM_SIZE` record may list before the loader gives up.
pub const MAX_MEM_SIZE_BLOCKS: usize = 4096;

/// The flag bits of a record header.
const FLAG_MASK: u64 = PAGE_SIZE - 1;
/// Largest page record: header, idstr, 4096 bytes.
pub(crate) const MAX_PAGE_RECORD: usize = 8 + 1 + 255 + PAGE_SIZE as usize;

/// One block of a `MEM_SIZE` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// The block's idstr (non-empty, at most 255 bytes).
    pub idstr: String,
    /// Its used length (a non-zero multiple of the page size).
    pub length: u64,
    /// Byte offset of the entry in the stream (0 for entries built to be encoded).
    pub offset: u64,
}

/// One record of a RAM section body, as decoded by [`RecordDecoder`] or to be encoded.
/// Page records borrow their idstr and data from the decoder.
///
/// ```
/// use ram_list::migration::{BlockEntry, RamRecord, RecordDecoder};
/// use ram_list::stream::CountingReader;
///
/// let mut bytes = Vec::new();
/// let entries = vec![BlockEntry { idstr: "pc.ram".into(), length: 8192, offset: 0 }];
/// RamRecord::MemSize(entries).encode(&mut bytes, false);
/// RamRecord::Zero { block: Some("pc.ram"), addr: 4096, fill: 7 }.encode(&mut bytes, false);
/// RamRecord::Eos.encode(&mut bytes, false);
///
/// let mut r = CountingReader::new(&bytes[..]);
/// let mut d = RecordDecoder::new(false);
/// assert!(matches!(d.next(&mut r).unwrap(), RamRecord::MemSize(e) if e[0].idstr == "pc.ram"));
/// assert_eq!(d.next(&mut r).unwrap(), RamRecord::Zero { block: Some("pc.ram"), addr: 4096, fill: 7 });
/// assert_eq!(d.next(&mut r).unwrap(), RamRecord::Eos);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RamRecord<'d> {
    /// `MEM_SIZE`: the source's block list (the total is the sum of the lengths).
    MemSize(Vec<BlockEntry>),
    /// `PAGE`: a page of data at offset `addr` of `block` (`None`: CONTINUE, the block of
    /// the previous page).
    Page {
        /// The block's idstr, or `None` for CONTINUE.
        block: Option<&'d str>,
        /// Offset of the page in the block.
        addr: u64,
        /// The page (4096 bytes).
        data: &'d [u8],
    },
    /// `ZERO`: a page filled with `fill` (0 in streams from QEMU).
    Zero {
        /// The block's idstr, or `None` for CONTINUE.
        block: Option<&'d str>,
        /// Offset of the page in the block.
        addr: u64,
        /// The fill byte.
        fill: u8,
    },
    /// `EOS`: the end of the section body.
    Eos,
}

impl RamRecord<'_> {
    /// Append the record's bytes; `ignore_shared` adds the `be64 addr` (always 0) to every
    /// `MEM_SIZE` entry, as QEMU does with `x-ignore-shared`. An idstr is cut to 255
    /// bytes; a `Page`'s data is padded or cut to a page.
    pub fn encode(&self, out: &mut Vec<u8>, ignore_shared: bool) {
        match self {
            RamRecord::MemSize(entries) => {
                let total: u64 = entries.iter().map(|e| e.length).sum();
                out.extend_from_slice(&(total | RAM_SAVE_FLAG_MEM_SIZE).to_be_bytes());
                for e in entries {
                    put_idstr(out, &e.idstr);
                    out.extend_from_slice(&e.length.to_be_bytes());
                    if ignore_shared {
                        out.extend_from_slice(&0u64.to_be_bytes());
                    }
                }
            }
            RamRecord::Page { block, addr, data } => {
                let mut rec = [0u8; MAX_PAGE_RECORD];
                let n = page_prefix(&mut rec, *block, *addr, RAM_SAVE_FLAG_PAGE);
                out.extend_from_slice(&rec[..n]);
                let page = PAGE_SIZE as usize;
                out.extend_from_slice(&data[..data.len().min(page)]);
                out.resize(out.len() + page.saturating_sub(data.len()), 0);
            }
            RamRecord::Zero { block, addr, fill } => {
                let mut rec = [0u8; MAX_PAGE_RECORD];
                let n = page_prefix(&mut rec, *block, *addr, RAM_SAVE_FLAG_ZERO);
                out.extend_from_slice(&rec[..n]);
                out.push(*fill);
            }
            RamRecord::Eos => out.extend_from_slice(&RAM_SAVE_FLAG_EOS.to_be_bytes()),
        }
    }
}

/// Write the start of a page record into `out` (at least 264 bytes): the header (`addr`
/// OR `flag`, plus CONTINUE when `block` is `None`) and the idstr of `block`, cut to 255
/// bytes. Returns the bytes written; the fill byte or page data follows.
pub(crate) fn page_prefix(out: &mut [u8], block: Option<&str>, addr: u64, flag: u64) -> usize {
    let cont = if block.is_none() {
        RAM_SAVE_FLAG_CONTINUE
    } else {
        0
    };
    out[..8].copy_from_slice(&(addr | flag | cont).to_be_bytes());
    let Some(idstr) = block else {
        return 8;
    };
    let b = idstr_bytes(idstr);
    out[8] = b.len() as u8;
    out[9..9 + b.len()].copy_from_slice(b);
    9 + b.len()
}

/// Reads RAM records one at a time from a section body (QEMU's `ram_load_precopy` loop
/// without the applying): the framing of each record is checked here, its meaning for the
/// destination (which block, whether the page fits) by the loader. Holds the buffers that
/// decoded page records borrow.
#[derive(Debug)]
pub struct RecordDecoder {
    ignore_shared: bool,
    idstr: String,
    page: Box<[u8]>,
}

impl RecordDecoder {
    /// A decoder; `ignore_shared`: `MEM_SIZE` entries carry a `be64 addr` (QEMU's
    /// `x-ignore-shared`).
    pub fn new(ignore_shared: bool) -> Self {
        RecordDecoder {
            ignore_shared,
            idstr: String::with_capacity(255),
            page: vec![0u8; PAGE_SIZE as usize].into_boxed_slice(),
        }
    }

    /// Read the next record from `r`. The record's offset is `r.offset()` before the call.
    ///
    /// # Blocking
    ///
    /// Blocks in `r.read` for as long as the stream does.
    pub fn next<R: Read>(&mut self, r: &mut CountingReader<R>) -> Result<RamRecord<'_>, LoadError> {
        let at = r.offset();
        let header = r.read_be64()?;
        let flags = header & FLAG_MASK;
        let addr = header & !FLAG_MASK;
        let cont = flags & RAM_SAVE_FLAG_CONTINUE != 0;
        let unsupported = |feature| Err(LoadError::new(at, LoadErrorKind::Unsupported { feature }));
        match flags & !RAM_SAVE_FLAG_CONTINUE {
            RAM_SAVE_FLAG_EOS => Ok(RamRecord::Eos),
            RAM_SAVE_FLAG_MEM_SIZE => self.mem_size(r, addr).map(RamRecord::MemSize),
            RAM_SAVE_FLAG_ZERO => {
                let block = self.block(r, cont)?;
                let fill = r.read_u8()?;
                Ok(RamRecord::Zero { block, addr, fill })
            }
            RAM_SAVE_FLAG_PAGE => {
                if !cont {
                    r.read_idstr_into("ramblock idstr", &mut self.idstr)?;
                }
                r.read_bytes(&mut self.page)?;
                let block = (!cont).then_some(self.idstr.as_str());
                Ok(RamRecord::Page {
                    block,
                    addr,
                    data: &self.page,
                })
            }
            RAM_SAVE_FLAG_XBZRLE => unsupported("XBZRLE"),
            RAM_SAVE_FLAG_COMPRESS_PAGE => unsupported("compressed"),
            RAM_SAVE_FLAG_HOOK => unsupported("RDMA hook"),
            RAM_SAVE_FLAG_MULTIFD_FLUSH => unsupported("multifd"),
            _ => Err(LoadError::new(at, LoadErrorKind::UnknownFlags { flags })),
        }
    }

    /// The idstr of a page record, or `None` with CONTINUE.
    fn block<R: Read>(
        &mut self,
        r: &mut CountingReader<R>,
        cont: bool,
    ) -> Result<Option<&str>, LoadError> {
        if cont {
            return Ok(None);
        }
        r.read_idstr_into("ramblock idstr", &mut self.idstr)?;
        Ok(Some(self.idstr.as_str()))
    }

    /// The entries of a `MEM_SIZE` record of `total` bytes, checked: at most
    /// [`MAX_MEM_SIZE_BLOCKS`], each named, non-empty, page aligned, listed once, and
    /// adding up to `total`. Linear in the number of entries.
    fn mem_size<R: Read>(
        &mut self,
        r: &mut CountingReader<R>,
        total: u64,
    ) -> Result<Vec<BlockEntry>, LoadError> {
        let mut entries: Vec<BlockEntry> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut remaining = total;
        while remaining > 0 {
            let offset = r.offset();
            if entries.len() >= MAX_MEM_SIZE_BLOCKS {
                return Err(LoadError::new(
                    offset,
                    LoadErrorKind::TooManyBlocks {
                        limit: MAX_MEM_SIZE_BLOCKS,
                    },
                ));
            }
            let idstr = r.read_idstr("ramblock idstr")?;
            let length = r.read_be64()?;
            if self.ignore_shared {
                let _guest_addr = r.read_be64()?;
            }
            if length > remaining {
                return Err(LoadError::new(
                    offset,
                    LoadErrorKind::MemSizeMismatch {
                        idstr,
                        length,
                        remaining,
                    },
                ));
            }
            if length == 0 || length % PAGE_SIZE != 0 || idstr.is_empty() || seen.contains(&idstr) {
                return Err(LoadError::new(
                    offset,
                    LoadErrorKind::BadBlockEntry { idstr, length },
                ));
            }
            remaining -= length;
            seen.insert(idstr.clone());
            entries.push(BlockEntry {
                idstr,
                length,
                offset,
            });
        }
        Ok(entries)
    }
}
