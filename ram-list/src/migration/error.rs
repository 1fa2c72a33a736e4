//! The errors of both directions: [`LoadError`] (its offset once, a [`LoadErrorKind`], and
//! the cause as the `source()`), and [`SaveError`].

use std::error::Error;
use std::fmt;
use std::io;

use crate::stream::{StreamError, StreamErrorKind};
use crate::{RamError, PAGE_BITS};

/// An error of the load side: every malformed stream ends in one of these. Shaped like
/// [`io::Error`]: the byte offset in the stream of the offending record or field, once; a
/// [`LoadErrorKind`]; and the cause, if any (an [`io::Error`] for
/// [`StreamErrorKind::Io`], a [`RamError`] for [`LoadErrorKind::Block`]), as the
/// [`source`](Error::source). `Display` never repeats the cause.
///
/// ```
/// use ram_list::migration::{load, LoadErrorKind, LoadOptions};
/// use ram_list::stream::StreamErrorKind;
/// use ram_list::RamList;
/// use rcu_core::{Domain, Memb};
///
/// let domain: Domain<Memb> = Domain::new();
/// let list = RamList::new_in(&domain);
/// let e = load(&list, &b"QEVM\0\0\0\x02"[..], &LoadOptions::default(), &domain.register())
///     .unwrap_err();
/// assert_eq!(e.offset(), 4);
/// assert_eq!(e.kind(), &LoadErrorKind::Stream(StreamErrorKind::UnsupportedVersion { found: 2 }));
/// assert_eq!(
///     e.to_string(),
///     "migration stream, byte offset 4: unsupported stream version 2, expected 3"
/// );
/// ```
#[derive(Debug)]
pub struct LoadError {
    offset: u64,
    kind: LoadErrorKind,
    cause: Option<Cause>,
}

#[derive(Debug)]
enum Cause {
    Io(io::Error),
    Ram(RamError),
}

/// What was wrong with a RAM stream (see [`LoadError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// Framing, truncation or I/O error, from the stream reader.
    Stream(StreamErrorKind),
    /// The "ram" section has a version other than 4.
    UnsupportedVersion {
        /// The version found.
        version: u32,
    },
    /// A section other than "ram" before the end of the RAM section: its body has no
    /// length, so it cannot be skipped.
    UnexpectedSection {
        /// The section's idstr.
        idstr: String,
    },
    /// The stream ended (EOF record) before the RAM section's END.
    MissingRamEnd,
    /// The stream's configuration record names another machine type than the one the
    /// destination emulates (QEMU's configuration `pre_load` check), or there is none.
    MachineMismatch {
        /// The destination's machine type.
        expected: String,
        /// The stream's, if it has a configuration record.
        found: Option<String>,
    },
    /// The configuration record's `target-page-bits` is not this crate's
    /// [`PAGE_BITS`](crate::PAGE_BITS): every page offset and length of the stream would be
    /// misread.
    PageSizeMismatch {
        /// The source's `TARGET_PAGE_BITS`.
        target_page_bits: u32,
    },
    /// A block name the destination does not have ("Unknown ramblock").
    UnknownBlock {
        /// The idstr from the stream.
        idstr: String,
    },
    /// A page record naming a block that is not migratable: the empty idstr, which only
    /// unnamed blocks have ("block ... should not be migrated").
    NotMigratable {
        /// The idstr from the stream.
        idstr: String,
    },
    /// A block whose length differs and cannot be resized ("Length mismatch").
    LengthMismatch {
        /// The block.
        idstr: String,
        /// Length in the stream.
        stream: u64,
        /// Length of the destination block.
        local: u64,
    },
    /// A resizeable block could not take the stream's length (e.g. "Size too large"), or a
    /// mirrored block could not be created: the [`RamError`] is the `source()`.
    Block {
        /// The block.
        idstr: String,
    },
    /// A page past the block's used length.
    PageOutOfRange {
        /// The block.
        idstr: String,
        /// The page's offset in the block.
        addr: u64,
        /// The block's used length.
        used_length: u64,
    },
    /// A page with CONTINUE but no previous page ("Ack, bad migration stream!").
    ContinueWithoutBlock,
    /// A flag combination that is not a RAM record ("Unknown combination of migration
    /// flags").
    UnknownFlags {
        /// The flags (`header & 0xfff`).
        flags: u64,
    },
    /// A known record type this loader does not implement (XBZRLE, compression, RDMA,
    /// multifd).
    Unsupported {
        /// The feature.
        feature: &'static str,
    },
    /// A `MEM_SIZE` list whose lengths do not add up to its total (a block longer than
    /// what remains of the total).
    MemSizeMismatch {
        /// The block entry.
        idstr: String,
        /// Its length.
        length: u64,
        /// What remained of the total.
        remaining: u64,
    },
    /// A `MEM_SIZE` entry that is empty, not page aligned, unnamed, or listed twice.
    BadBlockEntry {
        /// The block entry.
        idstr: String,
        /// Its length.
        length: u64,
    },
    /// A `MEM_SIZE` record that lists more than
    /// [`MAX_MEM_SIZE_BLOCKS`](super::MAX_MEM_SIZE_BLOCKS) blocks.
    TooManyBlocks {
        /// The limit.
        limit: usize,
    },
    /// [`BlockPolicy::Mirror`](super::BlockPolicy::Mirror) would map more memory than its
    /// `max_total_bytes`.
    OverMemoryLimit {
        /// The bytes the destination would map.
        needed: u64,
        /// The limit.
        limit: u64,
    },
}

impl LoadError {
    /// An error of `kind` at byte `offset`.
    pub fn new(offset: u64, kind: LoadErrorKind) -> Self {
        LoadError {
            offset,
            kind,
            cause: None,
        }
    }

    /// A [`LoadErrorKind::Block`] error for block `idstr` at byte `offset`, caused by
    /// `source`.
    pub fn block(offset: u64, idstr: &str, source: RamError) -> Self {
        LoadError {
            offset,
            kind: LoadErrorKind::Block {
                idstr: idstr.to_owned(),
            },
            cause: Some(Cause::Ram(source)),
        }
    }

    /// Byte offset in the stream of the offending record or field.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &LoadErrorKind {
        &self.kind
    }

    /// The [`RamError`] behind a [`LoadErrorKind::Block`] error.
    pub fn ram_error(&self) -> Option<&RamError> {
        match &self.cause {
            Some(Cause::Ram(e)) => Some(e),
            _ => None,
        }
    }
}

impl From<StreamError> for LoadError {
    fn from(e: StreamError) -> Self {
        let (offset, kind, source) = e.into_parts();
        LoadError {
            offset,
            kind: LoadErrorKind::Stream(kind),
            cause: source.map(Cause::Io),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "migration stream, byte offset {}: {}",
            self.offset, self.kind
        )
    }
}

impl Error for LoadError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.cause {
            Some(Cause::Io(e)) => Some(e),
            Some(Cause::Ram(e)) => Some(e),
            None => None,
        }
    }
}

impl fmt::Display for LoadErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadErrorKind::Stream(k) => k.fmt(f),
            LoadErrorKind::UnsupportedVersion { version } => {
                write!(f, "unsupported RAM section version {version} (expected 4)")
            }
            LoadErrorKind::UnexpectedSection { idstr } => {
                write!(f, "section \"{idstr}\" before the end of the RAM section")
            }
            LoadErrorKind::MissingRamEnd => {
                f.write_str("stream ended before the RAM section's END")
            }
            LoadErrorKind::MachineMismatch {
                expected,
                found: Some(found),
            } => write!(
                f,
                "Machine type received is \"{found}\" and local is \"{expected}\""
            ),
            LoadErrorKind::MachineMismatch {
                expected,
                found: None,
            } => write!(
                f,
                "no configuration record: the machine type is unknown, local is \"{expected}\""
            ),
            LoadErrorKind::PageSizeMismatch { target_page_bits } => write!(
                f,
                "Received TARGET_PAGE_BITS is {target_page_bits} but local is {PAGE_BITS}"
            ),
            LoadErrorKind::UnknownBlock { idstr } => {
                write!(f, "Unknown ramblock \"{idstr}\", cannot accept migration")
            }
            LoadErrorKind::NotMigratable { idstr } => {
                write!(f, "block \"{idstr}\" should not be migrated")
            }
            LoadErrorKind::LengthMismatch {
                idstr,
                stream,
                local,
            } => write!(f, "Length mismatch: {idstr}: {stream:#x} in != {local:#x}"),
            // The reason is the `source()`.
            LoadErrorKind::Block { idstr } => write!(f, "block \"{idstr}\" rejected"),
            LoadErrorKind::PageOutOfRange {
                idstr,
                addr,
                used_length,
            } => write!(
                f,
                "page offset {addr:#x} is outside block \"{idstr}\" (used length {used_length:#x})"
            ),
            LoadErrorKind::ContinueWithoutBlock => {
                f.write_str("Ack, bad migration stream! (CONTINUE without a previous block)")
            }
            LoadErrorKind::UnknownFlags { flags } => {
                write!(f, "Unknown combination of migration flags: {flags:#x}")
            }
            LoadErrorKind::Unsupported { feature } => {
                write!(f, "{feature} pages are not supported")
            }
            LoadErrorKind::MemSizeMismatch {
                idstr,
                length,
                remaining,
            } => write!(
                f,
                "MEM_SIZE total does not add up: block \"{idstr}\" of {length:#x} bytes, only {remaining:#x} left"
            ),
            LoadErrorKind::BadBlockEntry { idstr, length } => write!(
                f,
                "bad MEM_SIZE entry \"{idstr}\" of {length:#x} bytes (empty, unaligned, unnamed or repeated)"
            ),
            LoadErrorKind::TooManyBlocks { limit } => {
                write!(f, "MEM_SIZE record lists more than {limit} blocks")
            }
            LoadErrorKind::OverMemoryLimit { needed, limit } => write!(
                f,
                "the destination would map {needed:#x} bytes of guest RAM, over the limit of {limit:#x}"
            ),
        }
    }
}

/// Errors of the save side.
#[derive(Debug)]
#[non_exhaustive]
pub enum SaveError {
    /// Writing the stream failed (the [`io::Error`] is the `source()`).
    Io(io::Error),
    /// `iterate`/`complete`/`sync` before `setup`.
    NotSetUp,
    /// The migratable block set changed during migration and
    /// [`SaveOptions::mirror_block_changes`](super::SaveOptions::mirror_block_changes) is
    /// off (QEMU forbids hotplug while migrating).
    BlockSetChanged {
        /// The idstr of a block that appeared, disappeared or changed length.
        idstr: String,
    },
}

impl fmt::Display for SaveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The I/O error itself is the `source()`.
            SaveError::Io(_) => f.write_str("writing the migration stream failed"),
            SaveError::NotSetUp => f.write_str("RAM save iterate/complete before setup"),
            SaveError::BlockSetChanged { idstr } => write!(
                f,
                "RAM block \"{idstr}\" was added, removed or resized during migration"
            ),
        }
    }
}

impl Error for SaveError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            SaveError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for SaveError {
    fn from(e: io::Error) -> Self {
        SaveError::Io(e)
    }
}
