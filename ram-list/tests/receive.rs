//! Issue 14, the library side: `receive` reads a whole stream as a QEMU destination does
//! (the real QEMU 7.2 fixtures to their last byte, device sections named), answers on the
//! return path, and ends every broken or hostile stream with a typed error.

mod common;

use common::*;
use ram_list::migration::{
    receive, runstate, IncomingEvent, IncomingOptions, LoadErrorKind, MigrationWriter, SaveOptions,
    MACHINE_NONE,
};
use ram_list::stream::{
    encode_command, vmdesc_json, CountingReader, DeviceField, DeviceState, ReturnPathMessage,
    SectionKind, StreamErrorKind, MIG_CMD_OPEN_RETURN_PATH, MIG_CMD_PING, MIG_CMD_POSTCOPY_LISTEN,
};
use ram_list::RamList;
use rcu_core::{Domain, Memb};

const MIB: u64 = 1 << 20;

fn opts() -> IncomingOptions {
    IncomingOptions::mirror(64 * MIB)
}

fn names(rep: &ram_list::migration::IncomingReport) -> Vec<String> {
    rep.devices.iter().map(|d| d.header.idstr.clone()).collect()
}

#[test]
fn a_real_none_stream_is_read_to_its_last_byte_with_its_device_sections_named() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let data = fixture("none-2m.qemu");
    let mut kinds = Vec::new();
    let rep = receive(&l, &data[..], None, &opts(), &r, |e| {
        if let IncomingEvent::RamSection { kind, .. } = e {
            kinds.push(kind);
        }
    })
    .unwrap();
    assert_eq!(
        kinds,
        [SectionKind::Start, SectionKind::Part, SectionKind::End]
    );
    assert_eq!(rep.bytes, data.len() as u64);
    assert_eq!(names(&rep), ["timer", "globalstate"]);
    assert_eq!(rep.devices[0].body.len(), 24);
    assert_eq!(runstate(&rep.devices).as_deref(), Some("prelaunch"));
    assert!(rep.vmdesc.unwrap().starts_with("{\"page_size\": 4096"));
    assert_eq!(rep.stats.passes, 1);
    let g = r.read_lock();
    let got = block_bytes(l.block_by_name("ram0", &g).unwrap());
    assert!(got == expected_ram(2 << 20), "ram0 differs");
}

#[test]
fn a_real_microvm_stream_has_its_many_device_sections_delimited() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let data = fixture("microvm-2m.qemu");
    let rep = receive(&l, &data[..], None, &opts(), &r, |_| {}).unwrap();
    assert_eq!(rep.bytes, data.len() as u64);
    let n = names(&rep);
    for want in ["timer", "fw_cfg", "apic", "mc146818rtc", "globalstate"] {
        assert!(n.iter().any(|x| x == want), "{want} missing from {n:?}");
    }
    assert_eq!(rep.stats.blocks.len(), 5);
}

#[test]
fn the_ratelimited_stream_counts_its_sections() {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let data = fixture("none-4m-ratelimited.qemu");
    let rep = receive(&l, &data[..], None, &opts(), &r, |_| {}).unwrap();
    // START, 7 PART, END.
    assert_eq!(rep.stats.sections, 9);
    assert_eq!(rep.bytes, data.len() as u64);
}

/// A stream written for `-M none`, with the return path and a ping.
fn none_stream(ping: bool) -> Vec<u8> {
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let src = RamList::new_in(&d);
    let a = src.alloc_named(MACHINE_NONE.ram_block, MIB).unwrap();
    src.write(a + 4096, b"from ram-list", &r.read_lock())
        .unwrap();
    let mut w = MigrationWriter::new(Vec::new(), "none", SaveOptions::default()).unwrap();
    w.open_return_path().unwrap();
    if ping {
        let mut cmd = Vec::new();
        encode_command(MIG_CMD_PING, &7u32.to_be_bytes(), &mut cmd);
        w.get_mut().extend_from_slice(&cmd);
    }
    w.set_devices(MACHINE_NONE.device_states("running"));
    w.setup(&src, &r.read_lock()).unwrap();
    w.iterate(&src, u64::MAX, &r.read_lock()).unwrap();
    let g = r.read_lock();
    let out = w.complete(&src, &g).unwrap();
    drop(g);
    out
}

fn replies(rp: &[u8]) -> Vec<ReturnPathMessage> {
    let mut r = CountingReader::new(rp);
    let mut out = Vec::new();
    while r.peek_u8().unwrap().is_some() {
        out.push(ReturnPathMessage::read(&mut r).unwrap());
    }
    out
}

#[test]
fn our_none_stream_round_trips_and_the_return_path_gets_pong_and_shut() {
    let stream = none_stream(true);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let mut rp = Vec::new();
    let mut opened = false;
    let mut o = opts();
    o.machine = Some("none".into());
    let rep = receive(&l, &stream[..], Some(&mut rp), &o, &r, |e| {
        opened |= matches!(e, IncomingEvent::ReturnPath);
    })
    .unwrap();
    assert!(opened && rep.return_path);
    assert_eq!(
        replies(&rp),
        [
            ReturnPathMessage::Pong { value: 7 },
            ReturnPathMessage::Shut { status: 0 }
        ]
    );
    assert_eq!(names(&rep), ["timer", "globalstate"]);
    assert_eq!(runstate(&rep.devices).as_deref(), Some("running"));
    let mut buf = [0u8; 13];
    l.block_by_name("ram", &r.read_lock())
        .unwrap()
        .read(4096, &mut buf)
        .unwrap();
    assert_eq!(&buf, b"from ram-list");
}

/// A return path that cannot be written (the source closed it, or stopped reading it
/// until a write timed out).
struct DeadReturnPath(usize);

impl std::io::Write for DeadReturnPath {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        self.0 += 1;
        Err(std::io::ErrorKind::TimedOut.into())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_return_path_that_fails_is_closed_and_the_load_goes_on() {
    let stream = none_stream(true);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let mut rp = DeadReturnPath(0);
    let rep = receive(&l, &stream[..], Some(&mut rp), &opts(), &r, |_| {}).unwrap();
    assert!(rep.return_path);
    // The PONG failed, so no SHUT was attempted on the closed return path.
    assert_eq!(rp.0, 1);
    assert_eq!(rep.stats.data_pages, 1);
}

#[test]
fn a_stream_of_another_machine_type_is_refused_and_the_source_told() {
    let stream = none_stream(false);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let l = RamList::new_in(&d);
    let mut o = opts();
    o.machine = Some("pc-i440fx-7.2".into());
    let e = receive(&l, &stream[..], None, &o, &r, |_| {}).unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::MachineMismatch {
            expected: "pc-i440fx-7.2".into(),
            found: Some("none".into())
        }
    );
    assert!(
        e.to_string()
            .contains("Machine type received is \"none\" and local is \"pc-i440fx-7.2\""),
        "{e}"
    );
    assert_eq!(l.len(&r.read_lock()), 0, "nothing loaded");
}

#[test]
fn a_broken_stream_after_the_return_path_opened_gets_shut_with_an_error_status() {
    let stream = none_stream(false);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    // Cut in the middle of the RAM section.
    let cut = &stream[..stream.len() / 2];
    let l = RamList::new_in(&d);
    let mut rp = Vec::new();
    let e = receive(&l, cut, Some(&mut rp), &opts(), &r, |_| {}).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            LoadErrorKind::Stream(StreamErrorKind::Truncated { .. })
        ),
        "{e}"
    );
    assert_eq!(replies(&rp), [ReturnPathMessage::Shut { status: 1 }]);
}

#[test]
fn a_stream_cut_anywhere_is_a_typed_error_never_a_panic() {
    let stream = none_stream(true);
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    // Every cut in the device tail (the interesting part), and a sample elsewhere.
    let tail_start = stream.len() - 600;
    let cuts = (0..tail_start).step_by(997).chain(tail_start..stream.len());
    let mut complete = Vec::new();
    for cut in cuts {
        let l = RamList::new_in(&d);
        let e = match receive(&l, &stream[..cut], None, &opts(), &r, |_| {}) {
            Ok(rep) => {
                // Only one cut is a whole stream: right after the EOF record, without the
                // (optional) description.
                assert!(rep.vmdesc.is_none() && rep.bytes == cut as u64, "{rep:?}");
                complete.push(cut);
                continue;
            }
            Err(e) => e,
        };
        let ok = matches!(
            e.kind(),
            LoadErrorKind::Stream(
                StreamErrorKind::Truncated { .. } | StreamErrorKind::UnterminatedSection { .. }
            )
        );
        assert!(ok, "cut at {cut}: {e}");
    }
    assert_eq!(complete.len(), 1, "{complete:?}");
    // The whole stream, for contrast.
    let l = RamList::new_in(&d);
    receive(&l, &stream[..], None, &opts(), &r, |_| {}).unwrap();
}

/// A stream whose RAM section is empty, followed by `devices` and a description of
/// `listed` (if any).
fn tail_stream(devices: &[DeviceState], listed: Option<&[DeviceState]>) -> Vec<u8> {
    let mut b = B::stream();
    b.start(4).eos().footer().end().eos().footer();
    for (i, dev) in devices.iter().enumerate() {
        dev.encode(10 + i as u32, &mut b.0);
    }
    b.u8(0);
    if let Some(listed) = listed {
        let json = vmdesc_json(4096, listed);
        b.u8(0x06).be32(json.len() as u32).bytes(json.as_bytes());
    }
    b.0
}

fn device(name: &str, body: &[u8]) -> DeviceState {
    DeviceState {
        idstr: name.into(),
        instance_id: 0,
        version_id: 1,
        fields: vec![DeviceField::new("body", "buffer", body)],
    }
}

#[test]
fn bodies_that_look_like_a_footer_are_not_cut() {
    // Section ids are 10 and 11. Body "a" holds its own footer followed by an EOF byte
    // and by a FULL header reusing id 2 (the RAM section's), and by one with an unprintable
    // name; "b" holds its footer followed by a header lookalike cut short.
    let mut a = vec![1, 2];
    a.extend_from_slice(&[0x7e, 0, 0, 0, 10, 0x00, 0x99]);
    a.extend_from_slice(&[
        0x7e, 0, 0, 0, 10, 0x04, 0, 0, 0, 2, 1, b'x', 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    a.extend_from_slice(&[
        0x7e, 0, 0, 0, 10, 0x04, 0, 0, 0, 50, 1, 0x01, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    let b = vec![0x7e, 0, 0, 0, 11, 0x04, 0, 0];
    let devs = [device("a", &a), device("b", &b)];
    for listed in [Some(&devs[..]), None] {
        let stream = tail_stream(&devs, listed);
        let d: Domain<Memb> = Domain::new();
        let l = RamList::new_in(&d);
        let rep = receive(&l, &stream[..], None, &opts(), &d.register(), |_| {}).unwrap();
        assert_eq!(names(&rep), ["a", "b"]);
        assert_eq!(rep.devices[0].body, a);
        assert_eq!(rep.devices[1].body, b);
        assert_eq!(rep.bytes, stream.len() as u64);
    }
}

#[test]
fn a_description_that_does_not_list_the_sections_is_an_error() {
    let devs = [device("a", &[1]), device("b", &[2])];
    let wrong = [device("b", &[2]), device("a", &[1])];
    let stream = tail_stream(&devs, Some(&wrong));
    let d: Domain<Memb> = Domain::new();
    let l = RamList::new_in(&d);
    let e = receive(&l, &stream[..], None, &opts(), &d.register(), |_| {}).unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::Stream(StreamErrorKind::DeviceSectionUnlisted {
            idstr: "b".into(),
            instance_id: 0
        }),
        "{e}"
    );
}

#[test]
fn device_state_past_the_limit_and_trailing_bytes_are_errors() {
    let devs = [device("big", &[7; 5000])];
    let stream = tail_stream(&devs, Some(&devs));
    let d: Domain<Memb> = Domain::new();
    let r = d.register();
    let mut o = opts();
    o.max_device_state = 4096;
    let e = receive(&RamList::new_in(&d), &stream[..], None, &o, &r, |_| {}).unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::Stream(StreamErrorKind::DeviceStateTooLong { limit: 4096 })
    );
    let mut junk = stream.clone();
    junk.push(0xaa);
    let e = receive(&RamList::new_in(&d), &junk[..], None, &opts(), &r, |_| {}).unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::Stream(StreamErrorKind::TrailingData { byte: 0xaa }),
        "{e}"
    );
}

#[test]
fn postcopy_commands_are_refused() {
    let mut b = B::stream();
    let mut cmd = Vec::new();
    encode_command(MIG_CMD_OPEN_RETURN_PATH, &[], &mut cmd);
    encode_command(MIG_CMD_POSTCOPY_LISTEN, &[], &mut cmd);
    b.bytes(&cmd);
    let d: Domain<Memb> = Domain::new();
    let e = receive(
        &RamList::new_in(&d),
        &b.0[..],
        None,
        &opts(),
        &d.register(),
        |_| {},
    )
    .unwrap_err();
    assert_eq!(
        e.kind(),
        &LoadErrorKind::Stream(StreamErrorKind::UnsupportedCommand { cmd: 4 })
    );
}
