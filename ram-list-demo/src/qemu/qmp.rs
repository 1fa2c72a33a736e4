//! [`Qmp`]: a QMP client on a Unix socket (QEMU's machine protocol: one JSON object per
//! line; a greeting, `qmp_capabilities`, then commands answered by `return` or `error`,
//! with asynchronous events in between).

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::error::QemuError;

/// A QMP connection in command mode.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connect to the socket at `path`, read the greeting and enter command mode. Every
    /// later read fails after `timeout` without an answer.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QemuError> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(timeout))?;
        s.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(s.try_clone()?),
            writer: s,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QemuError::Protocol(format!(
                "not a QMP greeting: {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    fn read_message(&mut self) -> Result<Value, QemuError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QemuError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "QEMU closed its QMP socket",
            )));
        }
        serde_json::from_str(&line)
            .map_err(|e| QemuError::Protocol(format!("bad QMP message {line:?}: {e}")))
    }

    /// Run `command` with `arguments` (a JSON object); its `return` value, or its `error`
    /// as [`QemuError::Command`]. Events that arrive meanwhile are skipped.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value, QemuError> {
        let mut line = json!({ "execute": command, "arguments": arguments }).to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let mut msg = self.read_message()?;
            if let Some(v) = msg.get_mut("return") {
                return Ok(v.take());
            }
            if let Some(e) = msg.get("error") {
                let field = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                return Err(QemuError::Command {
                    command: command.to_owned(),
                    class: field("class"),
                    desc: field("desc"),
                });
            }
            // An event ({"event": ...}): not ours.
        }
    }
}
