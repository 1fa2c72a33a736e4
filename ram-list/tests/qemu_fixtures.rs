//! Real QEMU 7.2 precopy streams (tests/fixtures/*.qemu): `load` accepts them and the loaded
//! pages are what the guest had (the rule in tests/fixtures/README.md).

mod common;

use common::*;
use ram_list::migration::{load, BlockPolicy, LoadErrorKind, LoadOptions, RamLoader};
use ram_list::stream::{Configuration, QemuFileReader, SectionKind, StreamErrorKind};
use ram_list::{RamError, RamList};
use rcu_core::{Domain, Memb, Reader};

const MIB: u64 = 1 << 20;

fn check_ram0(list: &RamList<Memb>, reader: &rcu_core::Reader<Memb>, size: usize) {
    let g = reader.read_lock();
    let b = list.block_by_name("ram0", &g).expect("ram0");
    assert_eq!(b.used_length(), size as u64);
    let got = block_bytes(b);
    let want = expected_ram(size);
    for (i, (g, w)) in got.chunks(PAGE).zip(want.chunks(PAGE)).enumerate() {
        assert!(g == w, "page {i} of ram0 differs");
    }
}

fn dest_with_ram0(size: u64) -> (Domain<Memb>, RamList<Memb>) {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let a = l.alloc_named("ram0", size).unwrap();
    // Pre-fill with garbage: every page must be overwritten by the stream (zero pages too).
    let g = d.register();
    let guard = g.read_lock();
    l.lookup(a, &guard).unwrap().fill(0, size, 0xee).unwrap();
    drop(guard);
    (d, l)
}

#[test]
fn none_2m() {
    let (d, l) = dest_with_ram0(2 * MIB);
    let r = d.register();
    let rep = load(
        &l,
        &fixture("none-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap();
    assert_eq!(rep.configuration.unwrap().machine_type, "none");
    assert_eq!(rep.stats.data_pages, 16);
    assert_eq!(rep.stats.zero_pages, 496);
    assert_eq!(rep.stats.sections, 3); // START, PART, END
    assert_eq!(rep.stats.mem_size_records, 1);
    assert_eq!(rep.end_offset, 0x1125d); // the timer FULL section follows
    assert_eq!(rep.stats.blocks.len(), 1);
    assert_eq!(rep.stats.blocks[0].length, 2 * MIB);
    check_ram0(&l, &r, 2 << 20);
}

#[test]
fn none_4m_ratelimited_pages_in_end_section_and_continue_across_sections() {
    let (d, l) = dest_with_ram0(4 * MIB);
    let r = d.register();
    let data = fixture("none-4m-ratelimited.qemu");
    let rep = load(&l, &data[..], &LoadOptions::default(), &r).unwrap();
    assert!(rep.stats.sections > 3, "{}", rep.stats.sections);
    assert_eq!(rep.stats.data_pages + rep.stats.zero_pages, 1024);
    assert_eq!(rep.stats.data_pages, 18);
    // The END record is at 0xee03; right after its footer comes the FULL "timer" section.
    assert!(rep.end_offset > 0xee03);
    assert_eq!(data[rep.end_offset as usize], 0x04);
    check_ram0(&l, &r, 4 << 20);
}

#[test]
fn none_2m_ignore_shared_extra_be64() {
    let (d, l) = dest_with_ram0(2 * MIB);
    let r = d.register();
    let rep = load(
        &l,
        &fixture("none-2m-ignore-shared.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap();
    assert!(rep.configuration.unwrap().has_capability("x-ignore-shared"));
    check_ram0(&l, &r, 2 << 20);
    // Without the capability the extra field is misread: a typed error, not a panic.
    let mut raw = fixture("none-2m-ignore-shared.qemu");
    // Rename the capability so the loader does not know about it.
    let at = raw
        .windows(15)
        .position(|w| w == b"x-ignore-shared")
        .unwrap();
    raw[at] = b'y';
    let (d2, l2) = dest_with_ram0(2 * MIB);
    let r2 = d2.register();
    let e = load(&l2, &raw[..], &LoadOptions::default(), &r2).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::UnknownFlags { .. } | LoadErrorKind::MemSizeMismatch { .. }
        ),
        "{e:?}"
    );
}

/// The microvm destination as QEMU would build it: ram0, the firmware, and three
/// resizeable fw_cfg blobs whose current sizes differ from the source's.
fn microvm_dest() -> (Domain<Memb>, RamList<Memb>) {
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("ram0", 2 * MIB).unwrap();
    l.alloc_named("pc.bios", 64 << 10).unwrap();
    l.alloc_resizeable_named("/rom@etc/acpi/tables", 128 << 10, 2 * MIB)
        .unwrap();
    l.alloc_resizeable_named("/rom@etc/table-loader", 8 << 10, 64 << 10)
        .unwrap();
    l.alloc_resizeable_named("/rom@etc/acpi/rsdp", 4 << 10, 4 << 10)
        .unwrap();
    (d, l)
}

#[test]
fn microvm_five_blocks_resizeable_roms() {
    let (d, l) = microvm_dest();
    let r = d.register();
    let rep = load(
        &l,
        &fixture("microvm-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap();
    assert_eq!(rep.configuration.unwrap().machine_type, "microvm");
    // Both resizeable blobs that differed were resized.
    assert_eq!(rep.stats.block_changes, 2);
    let names: Vec<_> = rep
        .stats
        .blocks
        .iter()
        .map(|b| (b.idstr.as_str(), b.length, b.data_pages + b.zero_pages))
        .collect();
    assert_eq!(
        names,
        [
            ("ram0", 2 * MIB, 512),
            ("/rom@etc/acpi/tables", 4096, 1),
            ("pc.bios", 65536, 16),
            ("/rom@etc/table-loader", 4096, 1),
            ("/rom@etc/acpi/rsdp", 4096, 1),
        ]
    );
    check_ram0(&l, &r, 2 << 20);
    let g = r.read_lock();
    let bytes = |n: &str| block_bytes(l.block_by_name(n, &g).unwrap());
    assert!(bytes("/rom@etc/acpi/rsdp").starts_with(b"RSD PTR "));
    assert!(bytes("/rom@etc/acpi/tables").starts_with(b"DSDT"));
    assert!(bytes("/rom@etc/table-loader").starts_with(b"\x01\0\0\0etc/acpi/rsdp"));
    let bios = bytes("pc.bios");
    assert_eq!(bios.len(), 65536);
    if let Ok(file) = std::fs::read("/usr/share/qemu/bios-microvm.bin") {
        assert_eq!(bios, file);
    } else {
        assert!(bios.iter().any(|&b| b != 0));
    }
    assert_eq!(
        l.block_by_name("/rom@etc/acpi/tables", &g)
            .unwrap()
            .used_length(),
        4096
    );
}

#[test]
fn microvm_mismatches_are_errors() {
    // A fixed-size block of the wrong length: "Length mismatch".
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    l.alloc_named("ram0", 2 * MIB).unwrap();
    l.alloc_named("pc.bios", 128 << 10).unwrap();
    l.alloc_named("/rom@etc/acpi/tables", 4096).unwrap();
    l.alloc_named("/rom@etc/table-loader", 4096).unwrap();
    l.alloc_named("/rom@etc/acpi/rsdp", 4096).unwrap();
    let r = d.register();
    let e = load(
        &l,
        &fixture("microvm-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap_err();
    match e.kind() {
        LoadErrorKind::LengthMismatch {
            idstr,
            stream,
            local,
        } => assert_eq!(
            (idstr.as_str(), *stream, *local),
            ("pc.bios", 65536, 131072)
        ),
        e => panic!("{e:?}"),
    }
    // Resizeable blocks of other sizes are resized, within their max_length.
    let (d, l) = microvm_dest();
    let addr = l
        .lock()
        .block_by_name("/rom@etc/table-loader")
        .unwrap()
        .offset();
    l.unplug(addr).unwrap();
    l.alloc_resizeable_named("/rom@etc/table-loader", 8192, 8192)
        .unwrap();
    let r = d.register();
    load(
        &l,
        &fixture("microvm-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap();
    // Now make the stream's block larger than max by shrinking max: a fresh list.
    let (d, l) = microvm_dest();
    let addr = l.lock().block_by_name("ram0").unwrap().offset();
    l.unplug(addr).unwrap();
    l.alloc_resizeable_named("ram0", MIB, MIB).unwrap();
    let r = d.register();
    let e = load(
        &l,
        &fixture("microvm-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap_err();
    match (e.kind(), e.ram_error()) {
        (LoadErrorKind::Block { idstr }, Some(RamError::SizeTooLarge { .. })) => {
            assert_eq!(idstr, "ram0")
        }
        _ => panic!("{e:?}"),
    }
    // A missing block: "Unknown ramblock".
    let (d, l) = microvm_dest();
    let addr = l.lock().block_by_name("pc.bios").unwrap().offset();
    l.unplug(addr).unwrap();
    let r = d.register();
    let e = load(
        &l,
        &fixture("microvm-2m.qemu")[..],
        &LoadOptions::default(),
        &r,
    )
    .unwrap_err();
    assert!(
        matches!(e.kind(), LoadErrorKind::UnknownBlock { idstr } if idstr == "pc.bios"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("Unknown ramblock \"pc.bios\""),
        "{e}"
    );
}

#[test]
fn mirror_policy_learns_blocks_from_mem_size() {
    for name in [
        "none-2m.qemu",
        "none-4m-ratelimited.qemu",
        "none-2m-ignore-shared.qemu",
        "microvm-2m.qemu",
    ] {
        let d: Domain<Memb> = Domain::new();
        let l = RamList::new_in(&d);
        // A stale block the source does not have: removed.
        l.alloc_named("stale", MIB).unwrap();
        let r = d.register();
        let rep = load(&l, &fixture(name)[..], &LoadOptions::mirror(1 << 30), &r).unwrap();
        let g = r.read_lock();
        assert!(l.block_by_name("stale", &g).is_none(), "{name}");
        let size = l.block_by_name("ram0", &g).unwrap().used_length() as usize;
        drop(g);
        check_ram0(&l, &r, size);
        let g = r.read_lock();
        assert_eq!(l.len(&g), rep.stats.blocks.len(), "{name}");
        // A limit below the stream's total is a typed error.
        let l2 = RamList::new_in(&d);
        let e = load(
            &l2,
            &fixture(name)[..],
            &LoadOptions {
                policy: BlockPolicy::Mirror {
                    max_total_bytes: MIB,
                },
                ignore_shared: false,
            },
            &r,
        )
        .unwrap_err();
        assert!(
            matches!(e.kind(), LoadErrorKind::OverMemoryLimit { .. }),
            "{name}: {e:?}"
        );
    }
}

#[test]
fn fixture_truncated_at_every_byte_of_the_headers_and_sampled_after() {
    let data = fixture("microvm-2m.qemu");
    let (d, l) = microvm_dest();
    let r = d.register();
    let full = load(&l, &data[..], &LoadOptions::default(), &r).unwrap();
    let end = full.end_offset as usize;
    let mut cut = 0;
    while cut < end {
        let (d3, l) = microvm_dest();
        let r3 = d3.register();
        let e = load(&l, &data[..cut], &LoadOptions::default(), &r3).unwrap_err();
        assert!(
            matches!(
                e.kind(),
                LoadErrorKind::Stream(StreamErrorKind::Truncated { .. })
            ),
            "{cut}: {e:?}"
        );
        cut += if cut < 600 { 1 } else { 4099 };
    }
    drop(r);
}

/// A whole fixture walked section by section, the "ram" bodies through the real loader
/// (mirror policy), the `-M none` device sections parsed by hand.
struct Walk {
    cfg: Configuration,
    /// (kind, idstr, pages loaded) per section.
    sections: Vec<(SectionKind, String, u64)>,
    vmdesc: Option<String>,
    list: RamList<Memb>,
    reader: Reader<Memb>,
}

fn walk_fixture(name: &str) -> Walk {
    let d: Domain<Memb> = Domain::new();
    let list = RamList::new_in(&d);
    let reader = d.register();
    let data = fixture(name);
    let mut qf = QemuFileReader::new(&data[..]).unwrap();
    let cfg = qf.configuration().cloned().expect("configuration record");
    let opts = LoadOptions {
        ignore_shared: cfg.has_capability("x-ignore-shared"),
        ..LoadOptions::mirror(1 << 30)
    };
    let mut loader = RamLoader::new(&list, opts);
    let mut sections = Vec::new();
    while let Some(h) = qf.next_section().unwrap() {
        let before = loader.stats().data_pages + loader.stats().zero_pages;
        match h.idstr.as_str() {
            "ram" => loader
                .load_section(qf.payload(), &reader)
                .unwrap_or_else(|e| panic!("{name}: {e}")),
            "timer" => {
                assert_eq!(h.kind, SectionKind::Full);
                qf.payload().skip(24).unwrap();
            }
            "globalstate" => {
                let p = qf.payload();
                let len = p.read_be32().unwrap();
                let mut state = [0u8; 100];
                p.read_bytes(&mut state).unwrap();
                assert_eq!(&state[..len as usize], b"prelaunch\0");
            }
            other => panic!("{name}: unexpected section {other}"),
        }
        qf.finish_section(&h).unwrap();
        let pages = loader.stats().data_pages + loader.stats().zero_pages - before;
        sections.push((h.kind, h.idstr, pages));
    }
    let vmdesc = qf.read_vmdesc().unwrap();
    drop(loader);
    Walk {
        cfg,
        sections,
        vmdesc,
        list,
        reader,
    }
}

fn kinds(w: &Walk) -> Vec<(SectionKind, &str)> {
    w.sections
        .iter()
        .map(|(k, n, _)| (*k, n.as_str()))
        .collect()
}

#[test]
fn none_2m_every_section_and_the_vmdesc() {
    let w = walk_fixture("none-2m.qemu");
    assert_eq!(w.cfg.machine_type, "none");
    assert_eq!(w.cfg.capabilities, Vec::<String>::new());
    assert_eq!((w.cfg.uuid, w.cfg.target_page_bits), (None, None));
    assert_eq!(
        kinds(&w),
        [
            (SectionKind::Start, "ram"),
            (SectionKind::Part, "ram"),
            (SectionKind::End, "ram"),
            (SectionKind::Full, "timer"),
            (SectionKind::Full, "globalstate"),
        ]
    );
    assert_eq!(w.sections[1].2, 512);
    assert!(w.vmdesc.unwrap().starts_with("{\"page_size\": 4096,"));
    check_ram0(&w.list, &w.reader, 2 << 20);
}

#[test]
fn none_4m_ratelimited_every_section() {
    let w = walk_fixture("none-4m-ratelimited.qemu");
    let ram: Vec<_> = w.sections.iter().filter(|s| s.1 == "ram").collect();
    let parts = ram.iter().filter(|s| s.0 == SectionKind::Part).count();
    assert!(parts > 1, "expected several PART sections, got {parts}");
    let end = ram.last().unwrap();
    assert_eq!(end.0, SectionKind::End);
    assert!(end.2 > 0, "expected pages in the END section");
    assert_eq!(ram.iter().map(|s| s.2).sum::<u64>(), 1024);
    assert!(w.vmdesc.is_some());
    check_ram0(&w.list, &w.reader, 4 << 20);
}

#[test]
fn none_2m_ignore_shared_configuration() {
    let w = walk_fixture("none-2m-ignore-shared.qemu");
    assert_eq!(w.cfg.capabilities, vec!["x-ignore-shared".to_string()]);
    assert_eq!(
        w.cfg.uuid,
        Some([
            0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc,
            0xde, 0xf0
        ])
    );
    assert_eq!(w.cfg.target_page_bits, None);
    check_ram0(&w.list, &w.reader, 2 << 20);
}
