//! Errors of the list operations ([`RamError`]).

use std::error::Error;
use std::fmt;

/// Errors of [`RamList`](crate::RamList) and [`RamBlock`](crate::RamBlock) operations.
///
/// Where QEMU prints a message and aborts (a duplicate idstr, a bad ram address), this
/// crate returns one of these; the `Display` texts follow QEMU's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RamError {
    /// A size of zero, or one that is not representable on this host.
    InvalidSize {
        /// The requested size.
        size: u64,
    },
    /// The host could not provide the memory (`mmap` failed).
    OutOfMemory {
        /// The requested size.
        size: u64,
    },
    /// An address or host pointer is not aligned as the operation requires.
    Unaligned {
        /// The offending address.
        addr: u64,
    },
    /// `find_ram_offset`: no gap of the requested size in the ram address space.
    NoGap {
        /// The requested size.
        size: u64,
    },
    /// No block starts at (or contains) this ram address.
    NoBlock {
        /// The ram address.
        addr: u64,
    },
    /// `qemu_ram_resize` of a block that is not resizeable to a different size.
    SizeMismatch {
        /// The block's idstr.
        idstr: String,
        /// Its current used length.
        used_length: u64,
        /// The requested length.
        new_length: u64,
    },
    /// `qemu_ram_resize` past the block's `max_length`.
    SizeTooLarge {
        /// The block's idstr.
        idstr: String,
        /// The requested length.
        new_length: u64,
        /// The block's maximum length.
        max_length: u64,
    },
    /// An idstr longer than 255 bytes (QEMU's `idstr[256]` holds a NUL too).
    IdstrTooLong {
        /// The length of the idstr that was built.
        len: usize,
    },
    /// An empty name for `set_idstr`.
    EmptyIdstr,
    /// `set_idstr` on a block that already has one.
    IdstrAlreadySet {
        /// The block's current idstr.
        idstr: String,
    },
    /// `set_idstr` with an idstr that another block already has (QEMU aborts here).
    DuplicateIdstr {
        /// The idstr.
        idstr: String,
    },
    /// An access past the block's `used_length`.
    OutOfRange {
        /// Offset of the access inside the block.
        offset: u64,
        /// Its length.
        len: u64,
        /// The block's used length.
        used_length: u64,
    },
}

impl fmt::Display for RamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RamError::InvalidSize { size } => write!(f, "invalid RAM block size {size:#x}"),
            RamError::OutOfMemory { size } => {
                write!(f, "cannot allocate {size:#x} bytes of guest RAM")
            }
            RamError::Unaligned { addr } => write!(f, "address {addr:#x} is not aligned"),
            RamError::NoGap { size } => write!(
                f,
                "Failed to find gap of requested size: {size:#x}"
            ),
            RamError::NoBlock { addr } => write!(f, "Bad ram offset {addr:#x}"),
            RamError::SizeMismatch {
                idstr,
                used_length,
                new_length,
            } => write!(
                f,
                "Size mismatch: {idstr}: {used_length:#x} != {new_length:#x}"
            ),
            RamError::SizeTooLarge {
                idstr,
                new_length,
                max_length,
            } => write!(
                f,
                "Size too large: {idstr}: {new_length:#x} > {max_length:#x}"
            ),
            RamError::IdstrTooLong { len } => {
                write!(f, "RAMBlock idstr of {len} bytes exceeds 255 bytes")
            }
            RamError::EmptyIdstr => f.write_str("RAMBlock name must not be empty"),
            RamError::IdstrAlreadySet { idstr } => {
                write!(f, "RAMBlock already has the idstr \"{idstr}\"")
            }
            RamError::DuplicateIdstr { idstr } => {
                write!(f, "RAMBlock \"{idstr}\" already registered")
            }
            RamError::OutOfRange {
                offset,
                len,
                used_length,
            } => write!(
                f,
                "access of {len:#x} bytes at offset {offset:#x} is past the block's used length {used_length:#x}"
            ),
        }
    }
}

impl Error for RamError {}
