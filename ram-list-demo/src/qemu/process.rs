//! [`Process`]: a child process shared by handles, killed and reaped when the last one
//! goes, so that no exit path (an error, a panic, a watchdog) leaves it behind.

use std::io;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

/// The child, killed and reaped on drop.
#[derive(Debug)]
struct Owned(Child);

impl Drop for Owned {
    fn drop(&mut self) {
        // Killing a child that was already reaped sends nothing (std keeps its status).
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A handle to a child process; clones share it, and the last one to go kills it.
///
/// ```
/// use std::process::Command;
/// use std::time::Duration;
/// use ram_list_demo::qemu::Process;
///
/// let p = Process::spawn(Command::new("sleep").arg("60")).unwrap();
/// let watchdog = p.clone();
/// watchdog.kill(); // e.g. from another thread, at a deadline
/// assert!(p.wait_timeout(Duration::from_secs(10)).unwrap().is_some());
/// ```
#[derive(Debug, Clone)]
pub struct Process {
    child: Arc<Mutex<Owned>>,
    id: u32,
}

impl Process {
    /// Start `cmd`.
    pub fn spawn(cmd: &mut Command) -> io::Result<Process> {
        let child = cmd.spawn()?;
        Ok(Process {
            id: child.id(),
            child: Arc::new(Mutex::new(Owned(child))),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Owned> {
        // A panic while holding the lock leaves the child as usable as before.
        self.child.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Kill it (SIGKILL), if it has not been reaped yet.
    pub fn kill(&self) {
        let _ = self.lock().0.kill();
    }

    /// Its exit status, if it has exited (reaping it).
    pub fn try_wait(&self) -> io::Result<Option<ExitStatus>> {
        self.lock().0.try_wait()
    }

    /// Wait up to `timeout` for it to exit.
    ///
    /// # Blocking
    ///
    /// Polls every few milliseconds, up to `timeout`.
    pub fn wait_timeout(&self, timeout: Duration) -> io::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.try_wait()? {
                return Ok(Some(s));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// Its standard output, if it was piped and not taken yet.
    pub fn take_stdout(&self) -> Option<ChildStdout> {
        self.lock().0.stdout.take()
    }

    /// Its standard error, if it was piped and not taken yet.
    pub fn take_stderr(&self) -> Option<ChildStderr> {
        self.lock().0.stderr.take()
    }
}
