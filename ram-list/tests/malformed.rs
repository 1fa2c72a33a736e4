//! Malformed RAM streams: each is a typed error, never a panic, never a write outside a
//! block.

mod common;

use common::*;
use ram_list::migration::{
    load, LoadError, LoadErrorKind, LoadOptions, LoadReport, MigrationWriter, SaveOptions,
};
use ram_list::stream::StreamErrorKind;
use ram_list::{RamError, RamList};
use rcu_core::{Domain, Memb, Reader};

const MIB: u64 = 1 << 20;
const P: u64 = PAGE as u64;

/// Destination: "ram0" (1 MiB, fixed) and "rom" (resizeable 8 KiB of 64 KiB), both
/// filled with 0xee so that any write is visible.
struct Dest {
    d: Domain<Memb>,
    l: RamList<Memb>,
}

impl Dest {
    fn new() -> Self {
        let d: Domain<Memb> = Domain::new();
        let l = RamList::new_in(&d);
        l.alloc_named("ram0", MIB).unwrap();
        l.alloc_resizeable_named("rom", 8 << 10, 64 << 10).unwrap();
        let r = d.register();
        let g = r.read_lock();
        for b in l.iter(&g) {
            b.fill(0, b.used_length(), 0xee).unwrap();
        }
        drop(g);
        drop(r);
        Dest { d, l }
    }

    fn load(&self, bytes: &[u8]) -> Result<LoadReport, LoadError> {
        let r: Reader<Memb> = self.d.register();
        load(&self.l, bytes, &LoadOptions::default(), &r)
    }

    /// Every byte of every block's reserved memory that is not 0xee, as (block, offset).
    fn written(&self) -> Vec<(String, u64)> {
        let r = self.d.register();
        let g = r.read_lock();
        let mut out = Vec::new();
        for b in self.l.iter(&g) {
            let mut v = vec![0u8; b.used_length() as usize];
            b.read(0, &mut v).unwrap();
            for (i, &x) in v.iter().enumerate() {
                if x != 0xee {
                    out.push((b.idstr().to_owned(), i as u64));
                    break;
                }
            }
        }
        out
    }
}

/// A valid stream: MEM_SIZE, pages in both blocks, CONTINUE, ZERO, across sections.
fn valid() -> B {
    let mut b = B::stream();
    b.start(4)
        .mem_size(&[("ram0", MIB), ("rom", 8 << 10)])
        .eos()
        .footer();
    b.part()
        .page("ram0", 0, false, 1)
        .zero("ram0", P, true, 0)
        .page("rom", 0, false, 2)
        .eos()
        .footer();
    b.end()
        .page("", P, true, 3)
        .zero("ram0", 5 * P, false, 7)
        .eos()
        .footer();
    b.u8(0x00);
    b
}

#[test]
fn valid_stream_loads() {
    let d = Dest::new();
    let rep = d.load(&valid().0).unwrap();
    assert_eq!(rep.stats.data_pages, 3);
    assert_eq!(rep.stats.zero_pages, 2);
    let r = d.d.register();
    let g = r.read_lock();
    let rom = d.l.block_by_name("rom", &g).unwrap();
    let mut byte = [0u8; 1];
    rom.read(P, &mut byte).unwrap(); // CONTINUE across the section boundary
    assert_eq!(byte[0], 3);
    let ram0 = d.l.block_by_name("ram0", &g).unwrap();
    ram0.read(5 * P + 17, &mut byte).unwrap(); // ZERO with fill byte 7
    assert_eq!(byte[0], 7);
    ram0.read(P + 1, &mut byte).unwrap(); // ZERO with fill byte 0
    assert_eq!(byte[0], 0);
}

fn body(f: impl FnOnce(&mut B)) -> Vec<u8> {
    let mut b = B::stream();
    b.start(4);
    f(&mut b);
    b.close();
    b.0
}

#[test]
fn unknown_block() {
    let d = Dest::new();
    let e = d
        .load(&body(|b| {
            b.mem_size(&[("ram0", MIB), ("nope", P)]);
        }))
        .unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::UnknownBlock { idstr } if idstr == "nope"),
        "{e:?}"
    );
    let e = d
        .load(&body(|b| {
            b.page("ram1", 0, false, 9);
        }))
        .unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::UnknownBlock { idstr } if idstr == "ram1")
            && e.offset() == 34,
        "{e:?}"
    );
    assert!(d.written().is_empty());
}

#[test]
fn length_mismatch() {
    let d = Dest::new();
    let e = d
        .load(&body(|b| {
            b.mem_size(&[("ram0", 2 * MIB)]);
        }))
        .unwrap_err();
    match e.kind() {
        LoadErrorKind::LengthMismatch {
            idstr,
            stream,
            local,
        } => {
            assert_eq!((idstr.as_str(), *stream, *local), ("ram0", 2 * MIB, MIB))
        }
        e => panic!("{e:?}"),
    }
    // Resizeable past max_length: "Size too large".
    let e = d
        .load(&body(|b| {
            b.mem_size(&[("rom", 128 << 10)]);
        }))
        .unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::Block { .. })
            && matches!(e.ram_error(), Some(RamError::SizeTooLarge { .. })),
        "{e:?}"
    );
    let why = std::error::Error::source(&e).unwrap().to_string();
    assert!(why.contains("Size too large: rom"), "{why}");
    assert!(d.written().is_empty());
}

#[test]
fn offset_past_used_length() {
    let d = Dest::new();
    for (blk, off) in [
        ("ram0", MIB),
        ("ram0", 0xffff_ffff_ffff_f000),
        ("rom", 8 << 10), // inside max_length, past used_length
        ("rom", 60 << 10),
    ] {
        for zero in [false, true] {
            let e = d
                .load(&body(|b| {
                    if zero {
                        b.zero(blk, off, false, 1);
                    } else {
                        b.page(blk, off, false, 1);
                    }
                }))
                .unwrap_err();
            assert!(
                matches!(e.kind(), LoadErrorKind::PageOutOfRange { addr, .. } if *addr == off),
                "{blk} {off:#x}: {e:?}"
            );
        }
    }
    assert!(d.written().is_empty());
}

#[test]
fn continue_without_previous_block() {
    let d = Dest::new();
    let e = d
        .load(&body(|b| {
            b.page("", 0, true, 1);
        }))
        .unwrap_err();
    assert!(
        e.kind() == &LoadErrorKind::ContinueWithoutBlock && e.offset() == 34,
        "{e:?}"
    );
    let e = d
        .load(&body(|b| {
            b.zero("", 0, true, 0);
        }))
        .unwrap_err();
    assert_eq!(e.kind(), &LoadErrorKind::ContinueWithoutBlock, "{e:?}");
    // MEM_SIZE forgets the current block (it may have changed).
    let e = d
        .load(&body(|b| {
            b.page("ram0", 0, false, 1)
                .mem_size(&[("ram0", MIB)])
                .page("", P, true, 1);
        }))
        .unwrap_err();
    assert_eq!(e.kind(), &LoadErrorKind::ContinueWithoutBlock, "{e:?}");
}

#[test]
fn unknown_and_unsupported_flags() {
    let d = Dest::new();
    for flags in [0x01u64, 0x0a, 0x06, 0x400, 0x800, 0x0c, 0x20 | 0x01, 0x00] {
        let e = d
            .load(&body(|b| {
                b.be64(flags);
            }))
            .unwrap_err();
        assert!(
            e.kind() == &LoadErrorKind::UnknownFlags { flags },
            "{flags:#x}: {e:?}"
        );
    }
    for (flags, feat) in [
        (0x40u64, "XBZRLE"),
        (0x80, "RDMA hook"),
        (0x100, "compressed"),
        (0x200, "multifd"),
        (0x40 | 0x20, "XBZRLE"),
    ] {
        let e = d
            .load(&body(|b| {
                b.be64(flags);
            }))
            .unwrap_err();
        assert!(
            e.kind() == &LoadErrorKind::Unsupported { feature: feat },
            "{flags:#x}: {e:?}"
        );
    }
    assert!(d.written().is_empty());
}

#[test]
fn truncated_at_every_byte() {
    let full = valid().0;
    let ok = Dest::new().load(&full).unwrap();
    let end = ok.end_offset as usize;
    assert_eq!(end, full.len() - 1); // only the EOF byte is not read
    let d = Dest::new();
    for cut in 0..end {
        let e = d.load(&full[..cut]).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                LoadErrorKind::Stream(StreamErrorKind::Truncated { .. })
            ),
            "cut {cut}: {e:?}"
        );
    }
}

#[test]
fn idstr_length_overflow() {
    let d = Dest::new();
    // A length byte longer than the name: the loader reads into the following fields.
    let mut b = B::stream();
    b.start(4).be64(0x08).u8(200).bytes(b"ram0");
    b.bytes(&[0u8; 4096]).close();
    let e = d.load(&b.0).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::UnknownBlock { .. } | LoadErrorKind::Stream(_)
        ),
        "{e:?}"
    );
    // The longest possible length byte, with nothing after it.
    let mut b = B::stream();
    b.start(4).be64(0x08).u8(255).bytes(b"ram0");
    let e = d.load(&b.0).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(StreamErrorKind::Truncated {
                needed: 255,
                got: 4,
            })
        ),
        "{e:?}"
    );
    // A name that is not UTF-8.
    let mut b = B::stream();
    b.start(4).be64(0x08).u8(2).bytes(&[0xff, 0xfe]);
    let e = d.load(&b.0).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(StreamErrorKind::InvalidUtf8 { .. })
        ),
        "{e:?}"
    );
    // The same in MEM_SIZE.
    let e = d
        .load(&body(|b| {
            b.be64(MIB | 0x04).u8(255).bytes(b"ram0").be64(MIB);
        }))
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(_) | LoadErrorKind::UnknownBlock { .. }
        ),
        "{e:?}"
    );
    // On the save side an idstr cannot exceed 255 bytes in the first place.
    let e = d.l.alloc_named(&"n".repeat(256), P).unwrap_err();
    assert_eq!(e, RamError::IdstrTooLong { len: 256 });
    assert!(d.written().is_empty());
}

#[test]
fn mem_size_total_does_not_add_up() {
    let d = Dest::new();
    // Total smaller than the blocks.
    let e = d
        .load(&body(|b| {
            b.be64((MIB - P) | 0x04).idstr("ram0").be64(MIB);
        }))
        .unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::MemSizeMismatch { idstr, length, remaining }
            if idstr == "ram0" && *length == MIB && *remaining == MIB - P),
        "{e:?}"
    );
    // Total larger than the blocks: the EOS header is read as a block entry.
    let e = d
        .load(&body(|b| {
            b.be64((MIB + P) | 0x04).idstr("ram0").be64(MIB);
        }))
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::BadBlockEntry { .. }
                | LoadErrorKind::MemSizeMismatch { .. }
                | LoadErrorKind::Stream(_)
        ),
        "{e:?}"
    );
    // Empty, unaligned and repeated entries.
    for entries in [
        vec![("ram0", 0u64), ("ram0", MIB)],
        vec![("ram0", P + 100), ("rom", P - 100)],
        vec![("ram0", MIB), ("ram0", MIB)],
        vec![("", P)],
    ] {
        let e = d
            .load(&body(|b| {
                b.mem_size(&entries);
            }))
            .unwrap_err();
        assert!(
            matches!(e.kind(), LoadErrorKind::BadBlockEntry { .. }),
            "{entries:?}: {e:?}"
        );
    }
    // Too many entries.
    let e = d
        .load(&body(|b| {
            b.be64((5000 * P) | 0x04);
            for i in 0..5000 {
                b.idstr(&format!("b{i}")).be64(P);
            }
        }))
        .unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::TooManyBlocks { limit: 4096 },
        "{e:?}"
    );
    assert!(d.written().is_empty());
}

#[test]
fn framing_errors() {
    let d = Dest::new();
    // RAM section version 3.
    let mut b = B::stream();
    b.start(3).eos().footer();
    let e = d.load(&b.0).unwrap_err();
    assert!(
        e.kind() == &LoadErrorKind::UnsupportedVersion { version: 3 },
        "{e:?}"
    );
    // A device section before the RAM END.
    let mut b = B::stream();
    b.start(4).eos().footer();
    b.u8(0x04).be32(0).idstr("timer").be32(0).be32(2);
    let e = d.load(&b.0).unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::UnexpectedSection { idstr } if idstr == "timer"),
        "{e:?}"
    );
    // EOF before the RAM END.
    let mut b = B::stream();
    b.start(4).eos().footer().u8(0);
    let e = d.load(&b.0).unwrap_err();
    assert_eq!(e.kind(), &LoadErrorKind::MissingRamEnd, "{e:?}");
    // Missing footer, wrong magic.
    let mut b = B::stream();
    b.start(4).eos().u8(0x55);
    let e = d.load(&b.0).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(StreamErrorKind::MissingFooter { .. })
        ),
        "{e:?}"
    );
    let e = d.load(b"QEMU\0\0\0\x03").unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(StreamErrorKind::BadMagic { .. })
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("bad magic"));
    assert!(std::error::Error::source(&e).is_none()); // shown by Display already
}

#[test]
fn mirror_limits() {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let r = d.register();
    let stream = body(|b| {
        b.mem_size(&[("huge", 1 << 40)]);
    });
    let e = load(&l, &stream[..], &LoadOptions::mirror(1 << 30), &r).unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::OverMemoryLimit { .. }),
        "{e:?}"
    );
    // Within the limit, the block is created, then a second MEM_SIZE removes it.
    let stream = body(|b| {
        b.mem_size(&[("a", 4 * P)])
            .page("a", 3 * P, false, 5)
            .mem_size(&[("b", P)]);
    });
    let rep = load(&l, &stream[..], &LoadOptions::mirror(1 << 30), &r).unwrap();
    assert_eq!(rep.stats.block_changes, 3);
    let g = r.read_lock();
    assert!(l.block_by_name("a", &g).is_none());
    assert_eq!(l.block_by_name("b", &g).unwrap().used_length(), P);
}

#[test]
fn our_own_stream_round_trips_and_is_rejected_by_a_wrong_destination() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = RamList::new_in(&d);
    let a = src.alloc_named("ram0", MIB).unwrap();
    src.write(a + 100, b"data", &r.read_lock()).unwrap();
    let mut w = MigrationWriter::new(Vec::new(), "pc", SaveOptions::default()).unwrap();
    w.setup(&src, &r.read_lock()).unwrap();
    let stream = w.complete(&src, &r.read_lock()).unwrap();
    let dest = Dest::new();
    dest.load(&stream).unwrap();
    let dst2 = RamList::new_in(&d);
    dst2.alloc_named("ram0", 2 * MIB).unwrap();
    let e = load(&dst2, &stream[..], &LoadOptions::default(), &r).unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::LengthMismatch { .. }),
        "{e:?}"
    );
}
