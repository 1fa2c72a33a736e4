//! Helpers of the tests that drive a real QEMU and the `ram-list` binary: the skip when
//! QEMU is absent, a watchdog that kills every process of a test at its deadline, the
//! binary run with its output collected line by line, scratch files.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ram_list_demo::qemu::{Process, Qemu};

/// Every test that could hang has this long before its watchdog kills its processes.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Whether QEMU is installed; if not, says the test is skipped.
pub fn qemu_or_skip(test: &str) -> bool {
    if Qemu::binary().is_some() {
        return true;
    }
    eprintln!("{test}: skipped: qemu-system-x86_64 not found");
    false
}

/// Kills the processes it watches when its deadline passes (so that whatever the test
/// waits on fails instead of hanging), and says so; disarmed when dropped.
pub struct Watchdog {
    watched: Arc<Mutex<Vec<Process>>>,
    fired: Arc<AtomicBool>,
    disarm: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Watchdog {
    pub fn new(test: &'static str, deadline: Duration) -> Self {
        let watched: Arc<Mutex<Vec<Process>>> = Arc::default();
        let fired = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel::<()>();
        let thread = {
            let (watched, fired) = (watched.clone(), fired.clone());
            thread::spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(deadline) {
                    eprintln!("{test}: watchdog: {deadline:?} passed, killing its processes");
                    // SeqCst: read by the test after its wait fails; no other data.
                    fired.store(true, Ordering::SeqCst);
                    for p in watched.lock().unwrap().iter() {
                        p.kill();
                    }
                }
            })
        };
        Watchdog {
            watched,
            fired,
            disarm: Some(tx),
            thread: Some(thread),
        }
    }

    /// Kill `p` too at the deadline.
    pub fn watch(&self, p: &Process) {
        self.watched.lock().unwrap().push(p.clone());
    }

    /// Whether the deadline passed.
    pub fn fired(&self) -> bool {
        // SeqCst: see `new`.
        self.fired.load(Ordering::SeqCst)
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A run of the `ram-list` binary: its output collected line by line as it comes.
pub struct RamList {
    pub process: Process,
    lines: Receiver<String>,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

fn collect(
    r: impl Read + Send + 'static,
    into: Arc<Mutex<String>>,
    tx: Option<Sender<String>>,
) -> JoinHandle<()> {
    thread::spawn(move || {
        for line in BufReader::new(r).lines() {
            let Ok(line) = line else { break };
            let mut all = into.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
            drop(all);
            if let Some(tx) = &tx {
                let _ = tx.send(line);
            }
        }
    })
}

impl RamList {
    /// Start `ram-list ARGS`, watched by `wd`.
    pub fn start(args: &[&str], wd: &Watchdog) -> RamList {
        let process = Process::spawn(
            Command::new(env!("CARGO_BIN_EXE_ram-list"))
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("start ram-list");
        wd.watch(&process);
        let (tx, lines) = channel();
        let stdout: Arc<Mutex<String>> = Arc::default();
        let stderr: Arc<Mutex<String>> = Arc::default();
        let readers = vec![
            collect(process.take_stdout().unwrap(), stdout.clone(), Some(tx)),
            collect(process.take_stderr().unwrap(), stderr.clone(), None),
        ];
        RamList {
            process,
            lines,
            stdout,
            stderr,
            readers,
        }
    }

    /// The first line (from now on) that contains `pat`; panics if the program ends or
    /// the watchdog fires first.
    pub fn wait_line(&self, pat: &str) -> String {
        loop {
            match self.lines.recv() {
                Ok(l) if l.contains(pat) => return l,
                Ok(_) => {}
                Err(_) => panic!(
                    "ram-list ended without printing {pat:?}:\n{}{}",
                    self.stdout(),
                    self.stderr()
                ),
            }
        }
    }

    /// Wait for the program to exit (the watchdog ends a hang); its status, stdout and
    /// stderr.
    pub fn finish(mut self) -> (ExitStatus, String, String) {
        let status = self
            .process
            .wait_timeout(DEADLINE)
            .unwrap()
            .expect("ram-list exits (the watchdog kills it otherwise)");
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.stdout(), self.stderr())
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

/// One test: its watchdog, and its scratch directory (removed when the case goes).
pub struct Case {
    pub wd: Watchdog,
    pub dir: PathBuf,
}

impl Case {
    pub fn new(name: &'static str) -> Case {
        Case {
            wd: Watchdog::new(name, DEADLINE),
            dir: scratch(name),
        }
    }

    /// A case that needs QEMU, or `None` after saying the test is skipped.
    pub fn with_qemu(name: &'static str) -> Option<Case> {
        qemu_or_skip(name).then(|| Case::new(name))
    }

    /// QEMU with `args`, watched.
    pub fn qemu(&self, args: &[&str]) -> Qemu {
        let q = Qemu::start(args).unwrap();
        self.wd.watch(q.process());
        q
    }

    /// A destination QEMU, paused after the migration: `-M machine -m mem -S -incoming
    /// tcp:127.0.0.1:0`, with the URI it listens on.
    pub fn qemu_destination(&self, machine: &str, mem: &str) -> (Qemu, String) {
        let mut q = self.qemu(&[
            "-M",
            machine,
            "-m",
            mem,
            "-nodefaults",
            "-S",
            "-incoming",
            "tcp:127.0.0.1:0",
        ]);
        let uri = q.incoming_uri().unwrap();
        (q, uri)
    }

    /// `ram-list ARGS`, watched.
    pub fn ram_list(&self, args: &[&str]) -> RamList {
        RamList::start(args, &self.wd)
    }

    /// The end of a test that must not have needed its watchdog.
    pub fn done(self) {
        assert!(!self.wd.fired(), "the watchdog fired");
    }
}

impl Drop for Case {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The error of a run that must fail: one line, no panic.
pub fn failure(rl: RamList) -> String {
    let (status, out, err) = rl.finish();
    assert!(!status.success(), "it should fail:\n{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

/// The output of a run that must succeed.
pub fn success(rl: RamList) -> String {
    let (status, out, err) = rl.finish();
    assert!(status.success(), "{out}{err}");
    out
}

/// The `tcp:` URI `ram-list incoming` says it listens on.
pub fn listening_uri(r: &RamList) -> String {
    let line = r.wait_line("listening on ");
    line.rsplit("listening on ")
        .next()
        .unwrap()
        .trim()
        .to_owned()
}

/// A fresh directory for `name`.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ram-list-qemu-test-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `len` pseudo-random bytes from `seed` (never a zero page's worth of zeros).
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

/// Write `data` to `dir/name`; the path.
pub fn write_file(dir: &Path, name: &str, data: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p
}

/// Assert `got` equals `want` byte for byte, naming the first difference.
pub fn assert_same(what: &str, got: &[u8], want: &[u8]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
        panic!(
            "{what}: first difference at byte {i:#x}: {:#04x} != {:#04x}",
            got[i], want[i]
        );
    }
}

/// Poll `cond` every few milliseconds until it holds; false after `timeout`.
pub fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    false
}
