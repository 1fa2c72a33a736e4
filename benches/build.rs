//! Builds the C twin of the `vs-liburcu` measurements (`benches/c/`) when liburcu is
//! installed, and says so with `--cfg have_liburcu`; without liburcu the crate builds and
//! tests as before and the runner measures only our side.
//!
//! Probe: `pkg-config` for `liburcu-memb`, `liburcu-mb` and `liburcu-qsbr` (the flavors
//! the twin uses, each with its own symbol prefix, so all three link into one binary);
//! without `pkg-config`, the Debian/Fedora default include and library directories. Set
//! `BENCHES_NO_LIBURCU=1` to build as if liburcu were missing (how the "without liburcu"
//! path is tested on a machine that has it).

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const FLAVORS: [&str; 3] = ["memb", "mb", "qsbr"];

fn main() {
    println!("cargo::rustc-check-cfg=cfg(have_liburcu)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=c");
    println!("cargo::rerun-if-env-changed=BENCHES_NO_LIBURCU");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");

    let wanted = env::var_os("BENCHES_NO_LIBURCU").is_none_or(|v| v.is_empty() || v == "0");
    let linux = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let native = env::var("HOST") == env::var("TARGET");
    let found = if wanted && linux && native {
        probe()
    } else {
        None
    };
    let Some(found) = found else {
        println!("cargo::rustc-env=BENCHES_LIBURCU=");
        // Paths that do not exist make Cargo rerun this probe on every build, so that
        // installing liburcu-dev later is noticed without touching the sources.
        for dir in ["/usr/include", "/usr/local/include"] {
            println!("cargo::rerun-if-changed={dir}/urcu/urcu-memb.h");
            println!(
                "cargo::rerun-if-changed={dir}/{}/urcu/urcu-memb.h",
                multiarch()
            );
        }
        return;
    };
    for dir in &found.include_dirs {
        println!(
            "cargo::rerun-if-changed={}",
            dir.join("urcu/urcu-memb.h").display()
        );
    }

    let mut build = cc::Build::new();
    build
        .files(FLAVORS.map(|f| format!("c/twin_{f}.c")))
        .file("c/twin_common.c")
        .include("c")
        .includes(&found.include_dirs)
        // liburcu's reader state is a `__thread` variable of the shared library. A non-PIE
        // executable reaches it through the initial-exec model; `cc` compiles with -fPIC,
        // which would make every `rcu_read_lock()` call `__tls_get_addr` (or rely on the
        // linker's relaxation, which keeps two instructions per access). Initial-exec is
        // what an ordinary C program linked against liburcu gets.
        .flag("-ftls-model=initial-exec")
        .warnings(true)
        .extra_warnings(true);
    build.compile("urcu_twin");

    for dir in &found.lib_dirs {
        println!("cargo::rustc-link-search=native={}", dir.display());
    }
    for f in FLAVORS {
        println!("cargo::rustc-link-lib=dylib=urcu-{f}");
    }
    println!("cargo::rustc-link-lib=dylib=urcu-common");
    println!("cargo::rustc-cfg=have_liburcu");
    println!("cargo::rustc-env=BENCHES_LIBURCU={}", found.version);
}

/// Where liburcu's headers and libraries are, and its version.
struct Found {
    include_dirs: Vec<PathBuf>,
    lib_dirs: Vec<PathBuf>,
    version: String,
}

fn probe() -> Option<Found> {
    let modules: Vec<String> = FLAVORS.iter().map(|f| format!("liburcu-{f}")).collect();
    let pkg_config = |args: &[&str]| -> Option<String> {
        let out = Command::new("pkg-config")
            .args(args)
            .args(&modules)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    if let Some(cflags) = pkg_config(&["--cflags-only-I"]) {
        let libs = pkg_config(&["--libs-only-L"]).unwrap_or_default();
        let version = pkg_config(&["--modversion"]).unwrap_or_default();
        let strip = |s: &str, flag: &str| -> Vec<PathBuf> {
            s.split_whitespace()
                .filter_map(|t| t.strip_prefix(flag).map(PathBuf::from))
                .collect()
        };
        return Some(Found {
            include_dirs: strip(&cflags, "-I"),
            lib_dirs: strip(&libs, "-L"),
            version: version.lines().next().unwrap_or("unknown").to_owned(),
        });
    }
    // No pkg-config (or no .pc files): look in the usual places.
    let multiarch = multiarch();
    let include_dir = ["/usr/include", "/usr/local/include"]
        .iter()
        .flat_map(|d| [Path::new(d).join(&multiarch), PathBuf::from(d)])
        .find(|d| d.join("urcu/urcu-memb.h").is_file())?;
    let lib_dir = ["/usr/lib", "/usr/lib64", "/usr/local/lib"]
        .iter()
        .flat_map(|d| [Path::new(d).join(&multiarch), PathBuf::from(d)])
        .find(|d| {
            FLAVORS
                .iter()
                .all(|f| d.join(format!("liburcu-{f}.so")).exists())
        })?;
    Some(Found {
        include_dirs: vec![include_dir],
        lib_dirs: vec![lib_dir],
        version: "unknown".to_owned(),
    })
}

/// Debian's multiarch directory name for the target ("x86_64-linux-gnu").
fn multiarch() -> String {
    format!(
        "{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default()
    )
}
