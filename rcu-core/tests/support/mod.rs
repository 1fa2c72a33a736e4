//! Shared by the integration tests: run a scenario in a child process under a watchdog, and
//! a value whose destruction a reader can detect.
#![allow(dead_code)]

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The environment variable that tells a test binary it is the child of [`isolated`].
const CHILD: &str = "RCU_TEST_ISOLATED";

/// Run `scenario` in a fresh process: the test named `name` of this binary is started again
/// with an environment variable that makes it run `scenario` itself. The parent fails the
/// test if the child fails or does not finish within `limit` (it is killed: a hang is a
/// failure, not a stuck CI run). Isolation also keeps a scenario that deliberately stalls a
/// process-wide default domain from affecting the other tests of the binary.
pub fn isolated(name: &str, limit: Duration, scenario: impl FnOnce()) {
    if std::env::var(CHILD).as_deref() == Ok(name) {
        scenario();
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    // Isolated scenarios leak on purpose (leaked guards, threads left blocked): under
    // AddressSanitizer, keep its use-after-free checks but not the leak report at exit.
    let asan = match std::env::var("ASAN_OPTIONS") {
        Ok(o) if !o.is_empty() => format!("{o}:detect_leaks=0"),
        _ => "detect_leaks=0".to_owned(),
    };
    let mut child = Command::new(exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, name)
        .env("ASAN_OPTIONS", asan)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the isolated child");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait for the child") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = child.wait_with_output().expect("child output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    match status {
        None => panic!("{name}: hung for {limit:?} (killed by the watchdog)\n{text}"),
        Some(s) => assert!(
            s.success() && text.contains("1 passed"),
            "{name}: child failed ({s})\n{text}"
        ),
    }
}

/// Run `f` on a thread and wait at most `limit` for it; `None` if it is still running (the
/// thread is left behind, blocked).
pub fn within<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit).ok()
}

/// The message of a caught panic.
pub fn message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// An RCU-protected value that records its own destruction, so that a reader still holding
/// a reference can tell that a grace period was too short (without relying on ASan, which
/// also catches the access itself).
pub struct Canary {
    pub value: u64,
    freed: Arc<AtomicBool>,
}

impl Canary {
    pub fn new(value: u64) -> (Self, Arc<AtomicBool>) {
        let freed = Arc::new(AtomicBool::new(false));
        (
            Canary {
                value,
                freed: freed.clone(),
            },
            freed,
        )
    }
}

impl Drop for Canary {
    fn drop(&mut self) {
        self.freed.store(true, Ordering::SeqCst);
        self.value = 0xdead;
    }
}
