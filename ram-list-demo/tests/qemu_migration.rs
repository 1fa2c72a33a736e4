//! Issue 14: live migration with a real QEMU 7.2, in both directions, over TCP, driven
//! through QMP on a Unix socket (state polled with deadlines, never timed sleeps), each
//! ending with memory compared byte for byte; and hostile or broken peers (QEMU killed
//! mid-stream, a closed socket, a stream of another machine type, a source that never
//! reads the return path) ending with a typed error that names what happened. Each test
//! that needs QEMU says "skipped: qemu-system-x86_64 not found" and returns when it is
//! absent. Every test has a watchdog that kills its processes at its deadline, and every
//! process is killed when the test ends, whatever the path.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use common::*;
use ram_list_demo::qemu::QemuError;
use serde_json::json;

const MIB: usize = 1 << 20;

/// QEMU `-M none -m 32M` (running: it has no CPU to change its RAM), RAM preloaded from
/// files with `-device loader`, migrates over TCP into `ram-list incoming`, whose dump of
/// the block "ram" is the loaded files on zeros, byte for byte, and equals QEMU's own
/// `pmemsave`.
#[test]
fn qemu_migrates_into_ram_list_over_tcp() {
    let Some(c) = Case::with_qemu("qemu_migrates_into_ram_list_over_tcp") else {
        return;
    };
    let ram = 32 * MIB;
    // (address, contents): page-aligned, unaligned, and one ending inside a page.
    let files: Vec<(usize, Vec<u8>)> = vec![
        (0x1000, random_bytes(64 * 1024, 1)),
        (0x20_0123, random_bytes(300_000, 2)),
        (0x1f0_0000, random_bytes(MIB - 4000, 3)),
    ];
    let mut expected = vec![0u8; ram];
    let mut args: Vec<String> = ["-M", "none", "-m", "32M", "-nodefaults"]
        .map(String::from)
        .to_vec();
    for (i, (addr, data)) in files.iter().enumerate() {
        let f = write_file(&c.dir, &format!("f{i}.bin"), data);
        expected[*addr..addr + data.len()].copy_from_slice(data);
        args.push("-device".into());
        args.push(format!("loader,file={},addr={addr:#x}", f.display()));
    }
    let dump = c.dir.join("dump");
    let rl = c.ram_list(&[
        "incoming",
        "tcp:127.0.0.1:0",
        "--machine",
        "none",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let uri = listening_uri(&rl);
    let mut q = c.qemu(&args.iter().map(String::as_str).collect::<Vec<_>>());
    q.execute("migrate", json!({ "uri": uri })).unwrap();
    let info = q.wait_migration(DEADLINE).unwrap();
    assert_eq!(info["status"], "completed");
    let out = success(rl);
    let got = std::fs::read(dump.join("ram.bin")).unwrap();
    assert_same("ram-list's dump vs the loaded files", &got, &expected);
    let src = c.dir.join("src.bin");
    q.pmemsave(0, ram as u64, &src).unwrap();
    assert_same(
        "ram-list's dump vs QEMU's pmemsave",
        &got,
        &std::fs::read(&src).unwrap(),
    );
    q.quit().unwrap();
    for want in [
        "setup: 1 block(s), 32.0 MiB: ram (32.0 MiB)",
        "passes:      1 ",
        "timer[0], globalstate[0]",
        "run state:   the source was running",
    ] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    c.done();
}

/// The `N` in "N passes before the final one" of `ram-list migrate`'s summary.
fn passes(out: &str) -> u64 {
    number_before(out, " passes before the final one")
}

/// The number just before `what` in `out`.
fn number_before(out: &str, what: &str) -> u64 {
    let at = out
        .find(what)
        .unwrap_or_else(|| panic!("no {what:?} in:\n{out}"));
    let digits: String = out[..at]
        .chars()
        .rev()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.chars().rev().collect::<String>().parse().unwrap()
}

/// `ram-list migrate` over TCP into QEMU `-M none -incoming`, live: its vCPU dirties
/// memory during the passes and writes its final state after the last one; QEMU's
/// `pmemsave` of the whole RAM equals `--dump`, and the preloaded files are in place.
#[test]
fn ram_list_migrates_into_qemu_over_tcp_live() {
    let Some(c) = Case::with_qemu("ram_list_migrates_into_qemu_over_tcp_live") else {
        return;
    };
    let ram = 16 * MIB;
    let a = write_file(&c.dir, "a.bin", &random_bytes(100_000, 4));
    let b = write_file(&c.dir, "b.bin", &random_bytes(2 * MIB, 5));
    let (mut q, uri) = c.qemu_destination("none", "16M");
    let dump = c.dir.join("sent.bin");
    let out = success(c.ram_list(&[
        "migrate",
        &uri,
        "-m",
        "16",
        "--load",
        &format!("{}@0x0", a.display()),
        "--load",
        &format!("{}@0x800123", b.display()),
        "--vcpus",
        "1",
        // Never converged by its target: 3 passes while the vCPU writes (unless a pass
        // found nothing dirty), then the final pass.
        "--downtime-ms",
        "0",
        "--max-passes",
        "3",
        "--dump",
        dump.to_str().unwrap(),
    ]));
    assert!(
        out.contains("confirmed the load on the return path (SHUT, status 0)"),
        "{out}"
    );
    // Live: the bulk pass, then passes for what the vCPU re-dirtied, and a final pass
    // with at least the state the vCPU wrote when it stopped.
    assert!(passes(&out) >= 2, "{out}");
    assert!(
        number_before(&out, " pages re-dirtied by the vCPUs") > 0,
        "{out}"
    );
    assert!(
        number_before(&out, " pages with the vCPUs stopped") > 0,
        "{out}"
    );
    assert_eq!(q.wait_incoming(DEADLINE).unwrap(), "paused");
    let dst = c.dir.join("dst.bin");
    q.pmemsave(0, ram as u64, &dst).unwrap();
    q.quit().unwrap();
    let got = std::fs::read(&dst).unwrap();
    let sent = std::fs::read(&dump).unwrap();
    assert_same("QEMU's pmemsave vs ram-list's --dump", &got, &sent);
    assert_same(
        "a.bin in QEMU",
        &got[..100_000],
        &std::fs::read(&a).unwrap(),
    );
    assert_same(
        "b.bin in QEMU",
        &got[0x80_0123..0x80_0123 + 2 * MIB],
        &std::fs::read(&b).unwrap(),
    );
    // The vCPU wrote outside the files.
    let outside = &got[0x1_9000..0x80_0000];
    assert!(outside.iter().any(|&x| x != 0), "no guest write arrived");
    c.done();
}

/// A `pc` machine's stream (several blocks, dozens of device sections) received and
/// listed: every block by name and length, the firmware block equal to the `-bios` file,
/// the device sections named.
#[test]
fn a_pc_machine_stream_is_received_and_listed() {
    let Some(c) = Case::with_qemu("a_pc_machine_stream_is_received_and_listed") else {
        return;
    };
    let bios_data = random_bytes(256 * 1024, 6);
    let bios = write_file(&c.dir, "bios.bin", &bios_data);
    let dump = c.dir.join("dump");
    let rl = c.ram_list(&[
        "incoming",
        "tcp:127.0.0.1:0",
        "--dump",
        dump.to_str().unwrap(),
    ]);
    let uri = listening_uri(&rl);
    let mut q = c.qemu(&[
        "-M",
        "pc",
        "-m",
        "32M",
        "-nodefaults",
        "-vga",
        "std",
        "-S",
        "-bios",
        bios.to_str().unwrap(),
    ]);
    q.execute("migrate", json!({ "uri": uri })).unwrap();
    q.wait_migration(DEADLINE).unwrap();
    let out = success(rl);
    q.quit().unwrap();
    assert!(out.contains("machine \"pc-i440fx-"), "{out}");
    for (block, len) in [
        ("pc.ram", 32 * MIB),
        ("0000:00:02.0/vga.vram", 16 * MIB),
        ("pc.bios", 256 * 1024),
        ("pc.rom", 128 * 1024),
    ] {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(block))
            .unwrap_or_else(|| panic!("block {block} not listed:\n{out}"));
        assert_eq!(
            row.split_whitespace().nth(1),
            Some(len.to_string().as_str()),
            "{row}"
        );
    }
    assert!(out.contains("/rom@etc/acpi/tables"), "{out}");
    let devices = out.lines().find(|l| l.starts_with("devices:")).unwrap();
    for d in ["apic[0]", "mc146818rtc[0]", "i8259[0]", "globalstate[0]"] {
        assert!(devices.contains(d), "{d} not named: {devices}");
    }
    assert!(out.contains("the source was prelaunch"), "{out}");
    let got = std::fs::read(dump.join("pc.bios.bin")).unwrap();
    assert_same("pc.bios vs the -bios file", &got, &bios_data);
    assert!(dump.join("%2From@etc%2Facpi%2Ftables.bin").exists());
    c.done();
}

/// QEMU killed (-9) in the middle of a bandwidth-limited migration: `ram-list incoming`
/// ends at once with an error saying the source closed the connection before the end,
/// at which byte; no hang, no panic.
#[test]
fn qemu_killed_mid_stream_is_a_typed_error() {
    let Some(c) = Case::with_qemu("qemu_killed_mid_stream_is_a_typed_error") else {
        return;
    };
    let big = write_file(&c.dir, "big.bin", &random_bytes(8 * MIB, 7));
    let rl = c.ram_list(&["incoming", "tcp:127.0.0.1:0"]);
    let uri = listening_uri(&rl);
    let mut q = c.qemu(&[
        "-M",
        "none",
        "-m",
        "64M",
        "-nodefaults",
        "-device",
        &format!("loader,file={},addr=0x100000", big.display()),
    ]);
    q.execute(
        "migrate-set-parameters",
        json!({ "max-bandwidth": 1 << 20 }),
    )
    .unwrap();
    q.execute("migrate", json!({ "uri": uri })).unwrap();
    // Mid-stream: some RAM is out, most is not (8 MiB at 1 MiB/s).
    q.wait_for("RAM on the wire", DEADLINE, |q| {
        let info = q.migration_status()?;
        Ok(info
            .filter(|i| {
                i["status"] == "active" && i["ram"]["transferred"].as_u64() > Some(64 << 10)
            })
            .map(|_| ()))
    })
    .unwrap();
    rl.wait_line("setup: 1 block(s)");
    q.process().kill();
    let err = failure(rl);
    assert!(
        err.contains("closed the connection at byte")
            && err.contains("before the end of the migration"),
        "{err}"
    );
    assert!(err.contains("stream truncated"), "{err}");
    c.done();
}

/// A peer that closes its socket: `ram-list incoming` after a partial header, and
/// `ram-list migrate` toward a listener that hangs up, each end with an error that
/// says the peer closed the connection. No QEMU needed.
#[test]
fn a_closed_socket_ends_both_directions_with_typed_errors() {
    let c = Case::new("a_closed_socket_ends_both_directions_with_typed_errors");
    let rl = c.ram_list(&["incoming", "tcp:127.0.0.1:0"]);
    let uri = listening_uri(&rl);
    let mut s = TcpStream::connect(uri.strip_prefix("tcp:").unwrap()).unwrap();
    s.write_all(b"QEVM\0\0\0\x03\x07\0\0").unwrap();
    drop(s);
    let err = failure(rl);
    assert!(err.contains("closed the connection at byte 9"), "{err}");

    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let uri = format!("tcp:{}", l.local_addr().unwrap());
    let hang_up = std::thread::spawn(move || drop(l.accept()));
    let err = failure(c.ram_list(&["migrate", &uri, "-m", "16", "--vcpus", "0"]));
    hang_up.join().unwrap();
    assert!(err.contains("closed the connection"), "{err}");
    c.done();
}

/// A hostile source that opens the return path, floods PINGs and never reads the PONGs:
/// the destination's return-path writes time out, it closes the return path and goes on
/// reading, so the source is never blocked by a destination blocked on it; when the source
/// hangs up, the destination ends with its usual error. No QEMU needed.
#[test]
fn a_source_that_never_reads_the_return_path_cannot_block_the_destination() {
    let c = Case::new("a_source_that_never_reads_the_return_path_cannot_block_the_destination");
    let rl = c.ram_list(&["incoming", "tcp:127.0.0.1:0", "--idle-timeout-s", "1"]);
    let uri = listening_uri(&rl);
    let mut s = TcpStream::connect(uri.strip_prefix("tcp:").unwrap()).unwrap();
    let mut head = b"QEVM\0\0\0\x03\x07\0\0\0\x04none".to_vec();
    head.extend_from_slice(&[0x08, 0, 1, 0, 0]); // OPEN_RETURN_PATH
    s.write_all(&head).unwrap();
    // PINGs whose PONGs fill both socket buffers several times over.
    let ping = [0x08, 0, 2, 0, 4, 0, 0, 0, 1];
    let pings: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 4096)
        .collect();
    for _ in 0..400 {
        if s.write_all(&pings).is_err() {
            break; // the watchdog killed it: the assertions below say so
        }
    }
    drop(s);
    let (status, out, err) = rl.finish();
    assert!(!c.wd.fired(), "the destination blocked on its return path");
    assert!(!status.success(), "{out}");
    assert!(err.contains("closed the connection"), "{err}");
}

/// A stream of another machine type, both ways: a `pc` QEMU into `ram-list incoming
/// --machine none` is refused with QEMU's wording; `ram-list migrate -M none` into a
/// `pc` QEMU is refused by QEMU, which exits, and ram-list says the destination closed
/// the connection.
#[test]
fn a_stream_of_another_machine_type_is_refused_both_ways() {
    let Some(c) = Case::with_qemu("a_stream_of_another_machine_type_is_refused_both_ways") else {
        return;
    };
    let rl = c.ram_list(&["incoming", "tcp:127.0.0.1:0", "--machine", "none"]);
    let uri = listening_uri(&rl);
    let mut q = c.qemu(&["-M", "pc", "-m", "16M", "-nodefaults", "-S"]);
    q.execute("migrate", json!({ "uri": uri })).unwrap();
    let err = failure(rl);
    assert!(
        err.contains("Machine type received is \"pc-i440fx-")
            && err.contains("and local is \"none\""),
        "{err}"
    );
    // The source notices: its migration does not complete.
    match q.wait_migration(DEADLINE) {
        Err(QemuError::MigrationFailed(_)) => {}
        other => panic!("QEMU's migration should fail, got {other:?}"),
    }
    q.quit().unwrap();

    let (q, uri) = c.qemu_destination("pc", "16M");
    let err = failure(c.ram_list(&["migrate", &uri, "-m", "16", "--vcpus", "0"]));
    assert!(err.contains("closed the connection"), "{err}");
    let exit = q.process().wait_timeout(DEADLINE).unwrap();
    assert!(exit.is_some_and(|s| !s.success()), "QEMU refuses and exits");
    assert!(
        q.stderr().contains("Machine type received is 'none'"),
        "{}",
        q.stderr()
    );
    c.done();
}

/// The demo's main job with a real QEMU as its destination ends with its usual last line.
#[test]
fn the_demo_migrates_into_a_real_qemu() {
    let Some(c) = Case::with_qemu("the_demo_migrates_into_a_real_qemu") else {
        return;
    };
    let out = success(c.ram_list(&[
        "--destination",
        "qemu",
        "--ram-mib",
        "16",
        "--vcpus",
        "1",
        "--downtime-ms",
        "100",
        "--max-passes",
        "6",
    ]));
    let last = out.lines().last().unwrap();
    assert!(
        last.starts_with("destination matches source: QEMU"),
        "{last}"
    );
    c.done();
}

/// The other URI forms: `ram-list migrate file:F` read back by `ram-list incoming
/// exec:cat F` and `file:F`, and (with QEMU) loaded by QEMU `-incoming exec:cat F`, and
/// QEMU migrating to `ram-list incoming unix:PATH`; every copy equal to what was sent.
#[test]
fn the_unix_exec_and_file_uris_work_both_ways() {
    let c = Case::new("the_unix_exec_and_file_uris_work_both_ways");
    let blob = write_file(&c.dir, "blob.bin", &random_bytes(100_000, 8));
    let stream = c.dir.join("x.qemu");
    let sent = c.dir.join("sent.bin");
    let out = success(c.ram_list(&[
        "migrate",
        &format!("file:{}", stream.display()),
        "-m",
        "8",
        "--load",
        &format!("{}@0x3000", blob.display()),
        "--vcpus",
        "1",
        "--dump",
        sent.to_str().unwrap(),
    ]));
    assert!(out.contains("no return path on this transport"), "{out}");
    let sent = std::fs::read(&sent).unwrap();
    let dump = c.dir.join("exec");
    success(c.ram_list(&[
        "incoming",
        &format!("exec:cat '{}'", stream.display()),
        "--dump",
        dump.to_str().unwrap(),
    ]));
    let got = std::fs::read(dump.join("ram.bin")).unwrap();
    assert_same("incoming exec: vs sent", &got, &sent);
    let one = c.dir.join("one.bin");
    success(c.ram_list(&[
        "incoming",
        &format!("file:{}", stream.display()),
        "--extract",
        "ram",
        "--out",
        one.to_str().unwrap(),
    ]));
    assert_same(
        "incoming file: vs sent",
        &std::fs::read(&one).unwrap(),
        &sent,
    );
    if !qemu_or_skip("the_unix_exec_and_file_uris_work_both_ways (QEMU part)") {
        return;
    }
    let mut q = c.qemu(&[
        "-M",
        "none",
        "-m",
        "8M",
        "-nodefaults",
        "-S",
        "-incoming",
        &format!("exec:cat '{}'", stream.display()),
    ]);
    assert_eq!(q.wait_incoming(DEADLINE).unwrap(), "paused");
    let mem = c.dir.join("q.bin");
    q.pmemsave(0, 8 << 20, &mem).unwrap();
    q.quit().unwrap();
    assert_same(
        "QEMU -incoming exec: vs sent",
        &std::fs::read(&mem).unwrap(),
        &sent,
    );

    let sock = c.dir.join("in.sock");
    let udump = c.dir.join("unix");
    let rl = c.ram_list(&[
        "incoming",
        &format!("unix:{}", sock.display()),
        "--dump",
        udump.to_str().unwrap(),
    ]);
    let uri = listening_uri(&rl);
    let mut q = c.qemu(&[
        "-M",
        "none",
        "-m",
        "8M",
        "-nodefaults",
        "-device",
        &format!("loader,file={},addr=0x3000", blob.display()),
    ]);
    q.execute("migrate", json!({ "uri": uri })).unwrap();
    q.wait_migration(DEADLINE).unwrap();
    success(rl);
    let got = std::fs::read(udump.join("ram.bin")).unwrap();
    assert_same(
        "blob over unix:",
        &got[0x3000..0x3000 + 100_000],
        &std::fs::read(&blob).unwrap(),
    );
    q.quit().unwrap();
    c.done();
}

/// A watchdog that fires kills what it watches, so a hung wait ends.
#[test]
fn the_watchdog_kills_a_hung_process() {
    let wd = Watchdog::new(
        "the_watchdog_kills_a_hung_process",
        Duration::from_millis(200),
    );
    let rl = RamList::start(
        &["incoming", "tcp:127.0.0.1:0", "--idle-timeout-s", "0"],
        &wd,
    );
    listening_uri(&rl);
    // Nobody connects: only the watchdog ends it.
    let (status, _, _) = rl.finish();
    assert!(!status.success());
    assert!(wd.fired());
}
