//! A QEMU process driven over QMP ([`Qemu`]): started with a QMP socket in a private
//! directory, waited on by polling QMP state with a deadline (never by sleeping and
//! hoping), killed on every exit path.
//!
//! ```no_run
//! use std::time::Duration;
//! use ram_list_demo::qemu::Qemu;
//!
//! # fn main() -> Result<(), ram_list_demo::qemu::QemuError> {
//! // A destination for `ram-list migrate`: `-M none`, 64 MiB, paused after the migration.
//! let mut q = Qemu::start(&["-M", "none", "-m", "64M", "-S", "-incoming", "tcp:127.0.0.1:0"])?;
//! let uri = q.incoming_uri()?; // the port QEMU got
//! // ... `ram-list migrate {uri} -m 64` ...
//! q.wait_incoming(Duration::from_secs(30))?;
//! q.pmemsave(0, 64 << 20, &q.dir().join("ram.bin"))?;
//! q.quit()?;
//! # Ok(())
//! # }
//! ```

mod error;
mod process;
mod qmp;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub use error::QemuError;
pub use process::Process;
pub use qmp::Qmp;

/// The QEMU binary the program and its tests use.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";

/// How long QEMU may take to start and open its QMP socket.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one QMP command may take to answer.
const QMP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between two QMP polls.
const POLL: Duration = Duration::from_millis(10);

/// A running QEMU with its QMP connection; killed (if still running) when dropped, and its
/// directory (QMP socket, standard error) removed.
#[derive(Debug)]
pub struct Qemu {
    process: Process,
    qmp: Qmp,
    dir: PathBuf,
}

impl Qemu {
    /// The QEMU binary: `$QEMU` if set (and a file), else `qemu-system-x86_64` from the
    /// `PATH`.
    pub fn binary() -> Option<PathBuf> {
        if let Some(q) = std::env::var_os("QEMU").filter(|q| !q.is_empty()) {
            return Some(PathBuf::from(q)).filter(|p| p.is_file());
        }
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|d| d.join(QEMU_BINARY))
            .find(|p| p.is_file())
    }

    /// Start QEMU with `args` plus `-display none` and a QMP socket, and connect to it.
    pub fn start(args: &[&str]) -> Result<Qemu, QemuError> {
        let binary = Qemu::binary().ok_or(QemuError::NotFound)?;
        static N: AtomicU64 = AtomicU64::new(0);
        // Relaxed: a counter for unique names, nothing else.
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("ram-list-qemu-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let sock = dir.join("qmp.sock");
        let stderr = File::create(dir.join("stderr.log"))?;
        let process = Process::spawn(
            Command::new(binary)
                .args(["-display", "none", "-qmp"])
                .arg(format!("unix:{},server=on,wait=off", sock.display()))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr),
        )?;
        let deadline = Instant::now() + START_TIMEOUT;
        let qmp = loop {
            if let Some(status) = process.try_wait()? {
                return Err(exited(&dir, &status.to_string()));
            }
            if sock.exists() {
                match Qmp::connect(&sock, QMP_TIMEOUT) {
                    Ok(q) => break q,
                    Err(QemuError::Io(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Timeout("its QMP socket".into()));
            }
            thread::sleep(POLL);
        };
        Ok(Qemu { process, qmp, dir })
    }

    /// The QMP connection.
    pub fn qmp(&mut self) -> &mut Qmp {
        &mut self.qmp
    }

    /// The process (clone it for a watchdog).
    pub fn process(&self) -> &Process {
        &self.process
    }

    /// A private directory, removed with this value.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// What QEMU wrote to its standard error so far.
    pub fn stderr(&self) -> String {
        stderr_of(&self.dir)
    }

    /// Run a QMP command; if it fails because QEMU exited, say so with its last words.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QemuError> {
        self.qmp
            .execute(command, arguments)
            .map_err(|e| self.explain(e))
    }

    /// `e`, or QEMU's exit if that is what caused it.
    fn explain(&self, e: QemuError) -> QemuError {
        if !matches!(e, QemuError::Io(_)) {
            return e;
        }
        match self.process.wait_timeout(Duration::from_millis(500)) {
            Ok(Some(status)) => exited(&self.dir, &status.to_string()),
            _ => e,
        }
    }

    /// Poll `check` until it returns a value or `timeout` passes (or QEMU exits).
    pub fn wait_for<T>(
        &mut self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&mut Qemu) -> Result<Option<T>, QemuError>,
    ) -> Result<T, QemuError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check(self)? {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(QemuError::Timeout(what.to_owned()));
            }
            thread::sleep(POLL);
        }
    }

    /// The `tcp:` URI a QEMU started with `-incoming tcp:HOST:0` listens on (QMP
    /// `query-migrate` reports the port it got).
    pub fn incoming_uri(&mut self) -> Result<String, QemuError> {
        self.wait_for("its incoming socket", QMP_TIMEOUT, |q| {
            let info = q.execute("query-migrate", json!({}))?;
            let Some(addr) = info["socket-address"].as_array().and_then(|a| a.first()) else {
                return Ok(None);
            };
            let host = addr["host"].as_str().unwrap_or("127.0.0.1");
            let port = &addr["port"];
            let port = port
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| port.to_string());
            Ok(Some(if host.contains(':') {
                format!("tcp:[{host}]:{port}")
            } else {
                format!("tcp:{host}:{port}")
            }))
        })
    }

    /// The migration status QEMU reports (`query-migrate`), or `None` before any.
    pub fn migration_status(&mut self) -> Result<Option<Value>, QemuError> {
        let info = self.execute("query-migrate", json!({}))?;
        Ok(info.get("status").is_some().then_some(info))
    }

    /// As a source: wait until the migration is `completed` (its `query-migrate`), or
    /// fail with [`QemuError::MigrationFailed`].
    pub fn wait_migration(&mut self, timeout: Duration) -> Result<Value, QemuError> {
        self.wait_for("the migration to complete", timeout, |q| {
            let Some(info) = q.migration_status()? else {
                return Ok(None);
            };
            match info["status"].as_str() {
                Some("completed") => Ok(Some(info)),
                Some("failed" | "cancelled") => Err(QemuError::MigrationFailed(
                    info["error-desc"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_owned(),
                )),
                _ => Ok(None),
            }
        })
    }

    /// As a destination (`-incoming`): wait until the guest has left the `inmigrate`
    /// state (QEMU exits when an incoming migration fails: that is
    /// [`QemuError::Exited`], with its reason).
    pub fn wait_incoming(&mut self, timeout: Duration) -> Result<String, QemuError> {
        self.wait_for("the incoming migration", timeout, |q| {
            let st = q.execute("query-status", json!({}))?;
            let status = st["status"].as_str().unwrap_or("").to_owned();
            Ok((status != "inmigrate").then_some(status))
        })
    }

    /// Save `size` bytes of guest physical memory at `addr` to `path` (QMP `pmemsave`).
    pub fn pmemsave(&mut self, addr: u64, size: u64, path: &Path) -> Result<(), QemuError> {
        let filename = path
            .to_str()
            .ok_or_else(|| QemuError::Protocol(format!("{} is not UTF-8", path.display())))?;
        self.execute(
            "pmemsave",
            json!({ "val": addr, "size": size, "filename": filename }),
        )?;
        Ok(())
    }

    /// Ask QEMU to quit, and wait for it.
    pub fn quit(mut self) -> Result<(), QemuError> {
        // QEMU may close the socket before answering.
        let _ = self.qmp.execute("quit", json!({}));
        match self.process.wait_timeout(START_TIMEOUT)? {
            Some(_) => Ok(()),
            None => Err(QemuError::Timeout("it to quit".into())),
        }
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// QEMU's standard error, saved in `dir`.
fn stderr_of(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
}

/// [`QemuError::Exited`] with the end of QEMU's standard error.
fn exited(dir: &Path, status: &str) -> QemuError {
    let all = stderr_of(dir);
    let lines: Vec<&str> = all.lines().collect();
    let stderr = lines[lines.len().saturating_sub(3)..].join(" / ");
    QemuError::Exited {
        status: status.to_owned(),
        stderr,
    }
}
