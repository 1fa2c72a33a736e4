//! [`QemuError`]: what went wrong driving a QEMU process.

use std::error::Error;
use std::fmt;
use std::io;

/// An error starting or driving QEMU.
#[derive(Debug)]
#[non_exhaustive]
pub enum QemuError {
    /// No QEMU binary (neither `$QEMU` nor `qemu-system-x86_64` on the `PATH`).
    NotFound,
    /// Talking to QEMU failed (the I/O error is the `source()`).
    Io(io::Error),
    /// QEMU exited; its last lines of standard error say why.
    Exited {
        /// The exit status, as printed.
        status: String,
        /// The end of its standard error.
        stderr: String,
    },
    /// A QMP command failed.
    Command {
        /// The command.
        command: String,
        /// QMP's error class.
        class: String,
        /// QMP's description.
        desc: String,
    },
    /// QEMU said something that is not QMP as expected.
    Protocol(String),
    /// QEMU did not reach a state in time.
    Timeout(String),
    /// A migration QEMU took part in failed.
    MigrationFailed(String),
}

impl fmt::Display for QemuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QemuError::NotFound => f.write_str(
                "qemu-system-x86_64 not found (install qemu-system-x86, or set QEMU to its path)",
            ),
            QemuError::Io(_) => f.write_str("talking to QEMU failed"),
            QemuError::Exited { status, stderr } if stderr.is_empty() => {
                write!(f, "QEMU exited ({status})")
            }
            QemuError::Exited { status, stderr } => {
                write!(f, "QEMU exited ({status}): {}", stderr.trim_end())
            }
            QemuError::Command {
                command,
                class,
                desc,
            } => write!(f, "QMP {command} failed: {class}: {desc}"),
            QemuError::Protocol(what) => write!(f, "QMP: {what}"),
            QemuError::Timeout(what) => write!(f, "timed out waiting for QEMU: {what}"),
            QemuError::MigrationFailed(what) => write!(f, "QEMU's migration failed: {what}"),
        }
    }
}

impl Error for QemuError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            QemuError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for QemuError {
    fn from(e: io::Error) -> Self {
        QemuError::Io(e)
    }
}
