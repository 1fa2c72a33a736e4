//! The outer stream reader (`ram_list::stream`) on synthetic streams: framing, bounds,
//! truncation at every byte, I/O errors. Real QEMU streams are in `qemu_fixtures.rs`.

use std::error::Error;
use std::io::{self, Cursor, Read};

use ram_list::stream::{
    Configuration, QemuFileReader, Record, SectionHeader, SectionKind, StreamError,
    StreamErrorKind, MAX_CONFIGURATION_CAPABILITIES, MAX_CONFIGURATION_NAME_LEN, MAX_VMDESC_LEN,
    MIG_CMD_PACKAGED, QEMU_VM_COMMAND, QEMU_VM_CONFIGURATION, QEMU_VM_EOF, QEMU_VM_FILE_MAGIC,
    QEMU_VM_FILE_VERSION, QEMU_VM_SECTION_END, QEMU_VM_SECTION_FOOTER, QEMU_VM_SECTION_FULL,
    QEMU_VM_SECTION_PART, QEMU_VM_SECTION_START, QEMU_VM_SUBSECTION, QEMU_VM_VMDESCRIPTION,
};

#[derive(Default)]
struct B(Vec<u8>);

impl B {
    fn header() -> Self {
        let mut b = B::default();
        b.be32(QEMU_VM_FILE_MAGIC).be32(QEMU_VM_FILE_VERSION);
        b
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.0.push(v);
        self
    }
    fn be16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    fn be32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    fn be64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.0.extend_from_slice(v);
        self
    }
    fn idstr(&mut self, s: &str) -> &mut Self {
        self.u8(s.len() as u8).bytes(s.as_bytes())
    }
    fn config(&mut self, name: &str) -> &mut Self {
        self.u8(QEMU_VM_CONFIGURATION)
            .be32(name.len() as u32)
            .bytes(name.as_bytes())
    }
    fn start(&mut self, kind: u8, id: u32, name: &str, inst: u32, ver: u32) -> &mut Self {
        self.u8(kind).be32(id).idstr(name).be32(inst).be32(ver)
    }
    fn part(&mut self, kind: u8, id: u32) -> &mut Self {
        self.u8(kind).be32(id)
    }
    fn footer(&mut self, id: u32) -> &mut Self {
        self.u8(QEMU_VM_SECTION_FOOTER).be32(id)
    }
    fn reader(&self) -> Cursor<Vec<u8>> {
        Cursor::new(self.0.clone())
    }
}

fn configuration() -> Configuration {
    Configuration {
        machine_type: "none".into(),
        target_page_bits: Some(12),
        capabilities: vec!["x-ignore-shared".into(), "other".into()],
        uuid: Some([7u8; 16]),
    }
}

/// A complete, well-formed stream: configuration with all three subsections, a
/// START/PART/END iterable section with 8-byte bodies, a command, a FULL section, EOF and
/// a vmdesc.
fn good_stream() -> B {
    let mut b = B::header();
    configuration().encode(&mut b.0);
    b.start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
        .be64(0x10)
        .footer(2);
    b.u8(QEMU_VM_COMMAND).be16(2).be16(4).be32(0xdead_beef);
    b.part(QEMU_VM_SECTION_PART, 2).be64(0x10).footer(2);
    b.part(QEMU_VM_SECTION_END, 2).be64(0x10).footer(2);
    b.start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
        .bytes(&[0u8; 24])
        .footer(0);
    b.u8(QEMU_VM_EOF);
    b.u8(QEMU_VM_VMDESCRIPTION).be32(2).bytes(b"{}");
    b
}

/// Body parser for the synthetic streams: "ram" bodies are one be64, "timer" bodies 24
/// bytes.
fn walk_synthetic<R: Read>(r: R) -> Result<(Vec<SectionHeader>, Option<String>), StreamError> {
    let mut qf = QemuFileReader::new(r)?;
    let mut seen = Vec::new();
    while let Some(h) = qf.next_section()? {
        match h.idstr.as_str() {
            "ram" => {
                qf.payload().read_be64()?;
            }
            "timer" => qf.payload().skip(24)?,
            other => panic!("unexpected section {other}"),
        }
        qf.finish_section(&h)?;
        seen.push(h);
    }
    let desc = qf.read_vmdesc()?;
    Ok((seen, desc))
}

/// The error of a walk, as (offset, kind).
fn walk_err(b: &B) -> (u64, StreamErrorKind) {
    let e = walk_synthetic(b.reader()).unwrap_err();
    (e.offset(), e.kind().clone())
}

#[test]
fn good_synthetic_stream() {
    let b = good_stream();
    let mut qf = QemuFileReader::new(b.reader()).unwrap();
    assert_eq!(qf.configuration(), Some(&configuration()));
    assert!(qf
        .configuration()
        .unwrap()
        .has_capability("x-ignore-shared"));
    assert!(!qf.configuration().unwrap().has_capability("validate-uuid"));

    let h = qf.next_section().unwrap().unwrap();
    let expected = SectionHeader {
        kind: SectionKind::Start,
        section_id: 2,
        idstr: "ram".into(),
        instance_id: 0,
        version_id: 4,
        offset: qf.offset() - 17,
    };
    assert_eq!(h, expected);
    // The header encodes back to the bytes it was read from.
    let mut enc = Vec::new();
    h.encode(&mut enc);
    let at = h.offset as usize;
    assert_eq!(enc, b.0[at..at + 17]);
    assert_eq!(qf.payload().read_be64().unwrap(), 0x10);
    qf.finish_section(&h).unwrap();

    // The command is visible through next_record.
    match qf.next_record().unwrap() {
        Record::Command { cmd, data, .. } => {
            assert_eq!(cmd, 2);
            assert_eq!(data, 0xdead_beef_u32.to_be_bytes());
        }
        other => panic!("expected a command, got {other:?}"),
    }
    let h = qf.next_section().unwrap().unwrap();
    assert_eq!(h.kind, SectionKind::Part);
    assert_eq!(
        (h.idstr.as_str(), h.instance_id, h.version_id),
        ("ram", 0, 4)
    );
    qf.payload().read_be64().unwrap();
    qf.finish_section(&h).unwrap();
    assert_eq!(qf.section_info(2), Some(("ram", 0, 4)));
    assert_eq!(qf.section_info(9), None);

    let (seen, desc) = walk_synthetic(b.reader()).unwrap();
    let kinds: Vec<_> = seen.iter().map(|h| (h.kind, h.idstr.as_str())).collect();
    assert_eq!(
        kinds,
        vec![
            (SectionKind::Start, "ram"),
            (SectionKind::Part, "ram"),
            (SectionKind::End, "ram"),
            (SectionKind::Full, "timer"),
        ]
    );
    assert!(seen
        .iter()
        .all(|h| h.kind.has_full_header()
            == matches!(h.kind, SectionKind::Start | SectionKind::Full)));
    assert_eq!(desc.as_deref(), Some("{}"));
}

#[test]
fn eof_is_sticky_and_vmdesc_optional() {
    let mut b = B::header();
    b.config("pc-i440fx-7.2").u8(QEMU_VM_EOF);
    let mut qf = QemuFileReader::new(b.reader()).unwrap();
    assert_eq!(qf.next_section().unwrap(), None);
    assert_eq!(qf.next_section().unwrap(), None);
    assert_eq!(qf.next_record().unwrap(), Record::Eof);
    assert_eq!(qf.read_vmdesc().unwrap(), None);
    assert_eq!(qf.read_vmdesc().unwrap(), None);
    assert_eq!(qf.offset(), b.0.len() as u64);
}

#[test]
fn configuration_is_optional() {
    let mut b = B::header();
    b.start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
        .bytes(&[0u8; 24])
        .footer(0)
        .u8(QEMU_VM_EOF);
    let (seen, desc) = walk_synthetic(b.reader()).unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(desc, None);
    assert!(QemuFileReader::new(b.reader())
        .unwrap()
        .configuration()
        .is_none());
}

#[test]
fn bad_magic_and_version() {
    let mut b = B::default();
    b.bytes(b"QEVX").be32(3);
    let e = QemuFileReader::new(b.reader()).unwrap_err();
    assert_eq!(e.offset(), 0);
    assert_eq!(e.kind(), &StreamErrorKind::BadMagic { found: 0x5145_5658 });
    assert!(e.to_string().contains("bad magic"));

    let mut b = B::default();
    b.be32(QEMU_VM_FILE_MAGIC).be32(2).config("none").u8(0);
    let e = QemuFileReader::new(b.reader()).unwrap_err();
    assert_eq!(
        (e.offset(), e.kind()),
        (4, &StreamErrorKind::UnsupportedVersion { found: 2 })
    );
}

#[test]
fn truncated_at_every_position() {
    let b = good_stream();
    // Everything up to and including the EOF record must be present; every shorter prefix
    // is a Truncated error, never a panic.
    let eof_pos = b.0.len() - 8; // EOF byte, then 0x06 + be32 + "{}"
    assert_eq!(b.0[eof_pos], QEMU_VM_EOF);
    for cut in 0..=eof_pos {
        let e = walk_synthetic(Cursor::new(b.0[..cut].to_vec())).unwrap_err();
        match e.kind() {
            StreamErrorKind::Truncated { needed, got } => {
                assert!(e.offset() <= cut as u64, "cut {cut}: offset {}", e.offset());
                assert!(got < needed, "cut {cut}");
            }
            other => panic!("cut at {cut}: expected Truncated, got {other:?}"),
        }
    }
    // A stream cut inside the vmdesc is truncated too.
    for cut in eof_pos + 2..b.0.len() {
        let e = walk_synthetic(Cursor::new(b.0[..cut].to_vec())).unwrap_err();
        assert!(
            matches!(e.kind(), StreamErrorKind::Truncated { .. }),
            "cut at {cut}"
        );
    }
    // Cut right after EOF: no vmdesc, which is fine.
    let (_, desc) = walk_synthetic(Cursor::new(b.0[..=eof_pos].to_vec())).unwrap();
    assert_eq!(desc, None);
}

#[test]
fn unknown_record_type() {
    // (A 0x05 right after the configuration would be a configuration subsection, so put a
    // complete section first.)
    for byte in [QEMU_VM_SUBSECTION, QEMU_VM_VMDESCRIPTION, 0x09, 0x7e, 0xff] {
        let mut b = B::header();
        b.config("none")
            .start(QEMU_VM_SECTION_FULL, 0, "timer", 0, 2)
            .bytes(&[0u8; 24])
            .footer(0)
            .u8(byte)
            .be32(0);
        assert_eq!(
            walk_err(&b),
            (
                17 + 19 + 24 + 5,
                StreamErrorKind::UnknownRecordType { byte }
            )
        );
    }
}

#[test]
fn footer_errors() {
    // Wrong marker byte.
    let mut b = B::header();
    b.config("none")
        .start(QEMU_VM_SECTION_FULL, 3, "timer", 0, 2)
        .bytes(&[0u8; 24])
        .u8(0x7f)
        .be32(3);
    assert_eq!(
        walk_err(&b),
        (
            17 + 19 + 24,
            StreamErrorKind::MissingFooter {
                section_id: 3,
                found: 0x7f
            }
        )
    );
    // Footer for another section.
    let mut b = B::header();
    b.config("none")
        .start(QEMU_VM_SECTION_FULL, 3, "timer", 0, 2)
        .bytes(&[0u8; 24])
        .footer(4);
    assert_eq!(
        walk_err(&b),
        (
            17 + 19 + 24 + 1,
            StreamErrorKind::FooterMismatch {
                expected: 3,
                found: 4
            }
        )
    );
}

#[test]
fn part_or_end_for_unknown_section() {
    for (byte, kind) in [
        (QEMU_VM_SECTION_PART, SectionKind::Part),
        (QEMU_VM_SECTION_END, SectionKind::End),
    ] {
        let mut b = B::header();
        b.config("none")
            .start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
            .be64(0x10)
            .footer(2)
            .part(byte, 5);
        let (_, k) = walk_err(&b);
        assert_eq!(
            k,
            StreamErrorKind::UnknownSectionId {
                kind,
                section_id: 5
            }
        );
        assert!(k.to_string().contains("section id 5"));
    }
}

#[test]
fn conflicting_section_id() {
    let mut b = B::header();
    b.config("none")
        .start(QEMU_VM_SECTION_START, 2, "ram", 0, 4)
        .be64(0x10)
        .footer(2)
        .start(QEMU_VM_SECTION_FULL, 2, "timer", 0, 2);
    let (_, k) = walk_err(&b);
    assert!(
        matches!(
            k,
            StreamErrorKind::ConflictingSectionId { section_id: 2, .. }
        ),
        "{k:?}"
    );
}

#[test]
fn idstr_not_utf8() {
    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_SECTION_START)
        .be32(2)
        .u8(3)
        .bytes(&[b'r', 0xff, b'm'])
        .be32(0)
        .be32(4);
    assert_eq!(
        walk_err(&b),
        (
            23,
            StreamErrorKind::InvalidUtf8 {
                what: "section idstr"
            }
        )
    );
    let mut b = B::header();
    b.u8(QEMU_VM_CONFIGURATION).be32(2).bytes(&[0xc3, 0x28]);
    let e = QemuFileReader::new(b.reader()).unwrap_err();
    assert_eq!(e.offset(), 13);
    assert!(matches!(e.kind(), StreamErrorKind::InvalidUtf8 { .. }));
}

#[test]
fn configuration_bounds_and_subsections() {
    let new_err = |b: &B| {
        let e = QemuFileReader::new(b.reader()).unwrap_err();
        (e.offset(), e.kind().clone())
    };
    // Length field larger than the bound: refused before reading.
    let mut b = B::header();
    b.u8(QEMU_VM_CONFIGURATION).be32(u32::MAX);
    assert_eq!(
        new_err(&b),
        (9, StreamErrorKind::ConfigurationTooLong { len: u32::MAX })
    );
    // Within the bound but truncated: no allocation of `len` up front.
    let mut b = B::header();
    b.u8(QEMU_VM_CONFIGURATION)
        .be32(MAX_CONFIGURATION_NAME_LEN)
        .bytes(b"none");
    let (offset, kind) = new_err(&b);
    assert_eq!(offset, 13);
    assert!(
        matches!(kind, StreamErrorKind::Truncated { got: 4, .. }),
        "{kind:?}"
    );
    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_SUBSECTION)
        .idstr("configuration/whatever")
        .be32(1);
    assert_eq!(
        new_err(&b),
        (
            17,
            StreamErrorKind::UnknownConfigSubsection {
                name: "configuration/whatever".into()
            }
        )
    );
    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_SUBSECTION)
        .idstr("configuration/uuid")
        .be32(2);
    let (_, kind) = new_err(&b);
    assert!(
        matches!(
            kind,
            StreamErrorKind::UnsupportedSubsectionVersion { version: 2, .. }
        ),
        "{kind:?}"
    );
    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_SUBSECTION)
        .idstr("configuration/capabilities")
        .be32(1)
        .be32(MAX_CONFIGURATION_CAPABILITIES + 1);
    let (_, kind) = new_err(&b);
    assert!(
        matches!(kind, StreamErrorKind::TooManyCapabilities { .. }),
        "{kind:?}"
    );
}

#[test]
fn section_protocol_misuse() {
    let b = good_stream();
    let mut qf = QemuFileReader::new(b.reader()).unwrap();
    let h = qf.next_section().unwrap().unwrap();
    // Body not consumed / section not finished.
    let e = qf.next_section().unwrap_err();
    assert_eq!(
        e.kind(),
        &StreamErrorKind::SectionNotFinished { section_id: 2 }
    );
    // Finishing a different section.
    let mut other = h.clone();
    other.section_id = 7;
    let e = qf.finish_section(&other).unwrap_err();
    assert_eq!(e.kind(), &StreamErrorKind::NotOpen { section_id: 7 });
    // vmdesc before EOF.
    assert_eq!(
        qf.read_vmdesc().unwrap_err().kind(),
        &StreamErrorKind::NotAtEof
    );
    qf.payload().read_be64().unwrap();
    qf.finish_section(&h).unwrap();
    // Finishing twice.
    assert_eq!(
        qf.finish_section(&h).unwrap_err().kind(),
        &StreamErrorKind::NotOpen { section_id: 2 }
    );
}

#[test]
fn commands() {
    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_COMMAND)
        .be16(1)
        .be16(0)
        .u8(QEMU_VM_COMMAND)
        .be16(MIG_CMD_PACKAGED)
        .be16(4)
        .be32(100);
    let mut qf = QemuFileReader::new(b.reader()).unwrap();
    let e = qf.next_section().unwrap_err();
    assert_eq!(
        (e.offset(), e.kind()),
        (22, &StreamErrorKind::UnsupportedCommand { cmd: 7 })
    );
}

#[test]
fn trailing_data_and_vmdesc_bounds() {
    let vmdesc_err = |b: &B| {
        let mut qf = QemuFileReader::new(b.reader()).unwrap();
        assert_eq!(qf.next_section().unwrap(), None);
        let e = qf.read_vmdesc().unwrap_err();
        (e.offset(), e.kind().clone())
    };
    let mut b = B::header();
    b.config("none").u8(QEMU_VM_EOF).u8(0x42);
    assert_eq!(
        vmdesc_err(&b),
        (18, StreamErrorKind::TrailingData { byte: 0x42 })
    );

    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_EOF)
        .u8(QEMU_VM_VMDESCRIPTION)
        .be32(2)
        .bytes(b"{}")
        .u8(0);
    assert_eq!(
        vmdesc_err(&b),
        (25, StreamErrorKind::TrailingData { byte: 0 })
    );

    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_EOF)
        .u8(QEMU_VM_VMDESCRIPTION)
        .be32(MAX_VMDESC_LEN + 1);
    assert_eq!(
        vmdesc_err(&b),
        (
            19,
            StreamErrorKind::VmdescTooLong {
                len: MAX_VMDESC_LEN + 1
            }
        )
    );

    let mut b = B::header();
    b.config("none")
        .u8(QEMU_VM_EOF)
        .u8(QEMU_VM_VMDESCRIPTION)
        .be32(1)
        .u8(0xff);
    let (offset, kind) = vmdesc_err(&b);
    assert_eq!(offset, 23);
    assert!(matches!(kind, StreamErrorKind::InvalidUtf8 { .. }));
}

/// A reader that yields its data one byte at a time, interleaved with `Interrupted`
/// errors, then fails with a hard error.
struct Flaky {
    data: Vec<u8>,
    pos: usize,
    interrupt: bool,
}

impl Read for Flaky {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.interrupt = !self.interrupt;
        if self.interrupt {
            return Err(io::Error::new(io::ErrorKind::Interrupted, "signal"));
        }
        if self.pos == self.data.len() {
            return Err(io::Error::other("disk on fire"));
        }
        buf[0] = self.data[self.pos];
        self.pos += 1;
        Ok(1)
    }
}

#[test]
fn io_errors_and_interrupts() {
    let mut data = good_stream().0;
    // Whole stream via a 1-byte, interrupt-happy reader: works, except that the hard error
    // at the very end surfaces from read_vmdesc's final peek.
    let mut qf = QemuFileReader::new(Flaky {
        data: data.clone(),
        pos: 0,
        interrupt: false,
    })
    .unwrap();
    let mut n = 0;
    while let Some(h) = qf.next_section().unwrap() {
        if h.idstr == "ram" {
            qf.payload().read_be64().unwrap();
        } else {
            qf.payload().skip(24).unwrap();
        }
        qf.finish_section(&h).unwrap();
        n += 1;
    }
    assert_eq!(n, 4);
    let e = qf.read_vmdesc().unwrap_err();
    assert_eq!(e.kind(), &StreamErrorKind::Io);
    assert_eq!(e.offset(), data.len() as u64);
    // The cause is the source, and not repeated in the message.
    assert_eq!(e.source().unwrap().to_string(), "disk on fire");
    assert!(!e.to_string().contains("disk on fire"), "{e}");

    // Hard error in the middle of a configuration subsection.
    data.truncate(30);
    let e = walk_synthetic(Flaky {
        data,
        pos: 0,
        interrupt: false,
    })
    .unwrap_err();
    assert_eq!((e.offset(), e.kind()), (30, &StreamErrorKind::Io));
}
