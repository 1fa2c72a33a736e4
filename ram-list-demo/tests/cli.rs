//! The `ram-list` program: the demo's end-to-end check, and `inspect`'s behaviour on good
//! and bad input (each error printed once, with the file it concerns).

use std::path::PathBuf;
use std::process::{Command, Output};

fn ram_list(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ram-list"))
        .args(args)
        .output()
        .expect("run ram-list")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn fixture(name: &str) -> String {
    format!(
        "{}/../ram-list/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// A fresh directory for this test.
fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ram-list-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The failure's stderr, which must be one line.
fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    err
}

#[test]
fn the_demo_ends_with_destination_matches_source() {
    let out = ram_list(&[
        "--ram-mib",
        "8",
        "--vga-mib",
        "1",
        "--warmup-ms",
        "100",
        "--dimm-mib",
        "2",
        "--hotplug-ms",
        "5",
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let last = stdout.lines().last().unwrap();
    assert!(last.starts_with("destination matches source: "), "{last}");
}

#[test]
fn help_says_that_no_subcommand_runs_the_demo() {
    let out = ram_list(&["--help"]);
    assert!(out.status.success());
    assert!(
        text(&out.stdout)
            .contains("With no subcommand, `ram-list [OPTIONS]` runs the live-migration demo"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn inspect_lists_and_extracts() {
    let dir = scratch("extract");
    let out_file = dir.join("ram0.bin");
    let out = ram_list(&[
        "inspect",
        &fixture("microvm-2m.qemu"),
        "--extract",
        "ram0",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("machine \"microvm\""), "{stdout}");
    assert!(stdout.contains("/rom@etc/acpi/rsdp"), "{stdout}");
    assert_eq!(std::fs::metadata(&out_file).unwrap().len(), 2 << 20);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_io_error_is_printed_once_with_the_path() {
    let dir = scratch("dir-input");
    let out = ram_list(&["inspect", dir.to_str().unwrap()]);
    let err = one_error_line(&out);
    assert!(
        err.starts_with(&format!("ram-list: {}: ", dir.display())),
        "{err}"
    );
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
    let missing = dir.join("missing.qemu");
    let out = ram_list(&["inspect", missing.to_str().unwrap()]);
    let err = one_error_line(&out);
    assert!(err.contains(&format!("{}: ", missing.display())), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_one_byte_field_is_one_byte() {
    let dir = scratch("truncated");
    let f = dir.join("cut.qemu");
    std::fs::write(&f, b"QEVM\0\0\0\x03").unwrap();
    let out = ram_list(&["inspect", f.to_str().unwrap()]);
    let err = one_error_line(&out);
    assert!(
        err.contains("field needs 1 byte, only 0 available"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn out_without_extract_is_rejected() {
    let out = ram_list(&["inspect", &fixture("none-2m.qemu"), "--out", "/dev/null"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("--extract"), "{err}");
}

#[test]
fn an_unknown_block_to_extract_lists_the_blocks() {
    let out = ram_list(&[
        "inspect",
        &fixture("microvm-2m.qemu"),
        "--extract",
        "ram1",
        "--out",
        "/dev/null",
    ]);
    let err = one_error_line(&out);
    assert!(err.contains("no block \"ram1\""), "{err}");
    for name in ["\"ram0\"", "\"pc.bios\"", "\"/rom@etc/acpi/tables\""] {
        assert!(err.contains(name), "{err}");
    }
}

#[test]
fn the_guest_size_limit_is_an_option_named_in_the_error() {
    let out = ram_list(&["inspect", &fixture("none-2m.qemu"), "--max-guest-mib", "1"]);
    let err = one_error_line(&out);
    assert!(err.contains("--max-guest-mib 1"), "{err}");
    let out = ram_list(&["inspect", &fixture("none-2m.qemu"), "--max-guest-mib", "2"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}
