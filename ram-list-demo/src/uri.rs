//! QEMU's migration URIs, as `-incoming` and `migrate` spell them, opened as either end:
//! [`Listener`] and [`IncomingStream`] for a destination, [`OutgoingStream`] for a source.
//!
//! | URI | destination (`incoming`) | source (`migrate`) |
//! |---|---|---|
//! | `tcp:HOST:PORT` | listens (port 0: any free port, see [`Listener::local_uri`]) and accepts one connection | connects |
//! | `unix:PATH` | listens on a Unix socket | connects |
//! | `exec:CMD` | reads the standard output of `sh -c CMD` | writes to its standard input |
//! | `file:PATH` | reads the file | writes the file |
//!
//! A connection (TCP or Unix) has a return path: the other direction of the same socket.
//!
//! ```
//! use ram_list_demo::uri::MigrationUri;
//!
//! let uri: MigrationUri = "tcp:[::1]:4444".parse().unwrap();
//! assert_eq!(uri, MigrationUri::Tcp { host: "::1".into(), port: 4444 });
//! assert_eq!(uri.to_string(), "tcp:[::1]:4444");
//! assert!("udp:1.2.3.4:5".parse::<MigrationUri>().is_err());
//! ```

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::Duration;

/// How long a write on a destination's return path may block when the source does not
/// read it and no idle timeout is set.
const RETURN_PATH_WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// A migration URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MigrationUri {
    /// `tcp:HOST:PORT` (an IPv6 host in brackets).
    Tcp {
        /// Host name or address.
        host: String,
        /// Port (0 to listen on any free one).
        port: u16,
    },
    /// `unix:PATH`.
    Unix(PathBuf),
    /// `exec:CMD`, run with `sh -c`.
    Exec(String),
    /// `file:PATH`.
    File(PathBuf),
}

/// Why a string is not a [`MigrationUri`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UriError {
    uri: String,
    reason: &'static str,
}

impl fmt::Display for UriError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad migration URI \"{}\": {}", self.uri, self.reason)
    }
}

impl std::error::Error for UriError {}

impl FromStr for MigrationUri {
    type Err = UriError;

    fn from_str(s: &str) -> Result<Self, UriError> {
        let err = |reason| UriError {
            uri: s.to_owned(),
            reason,
        };
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| err("expected tcp:, unix:, exec: or file:"))?;
        if rest.is_empty() {
            return Err(err("nothing after the scheme"));
        }
        Ok(match scheme {
            "tcp" => {
                let (host, port) = rest
                    .rsplit_once(':')
                    .ok_or_else(|| err("expected tcp:HOST:PORT"))?;
                let host = host
                    .strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .unwrap_or(host);
                if host.is_empty() {
                    return Err(err("no host"));
                }
                let port = port.parse().map_err(|_| err("the port is not a number"))?;
                MigrationUri::Tcp {
                    host: host.to_owned(),
                    port,
                }
            }
            "unix" => MigrationUri::Unix(rest.into()),
            "exec" => MigrationUri::Exec(rest.to_owned()),
            "file" => MigrationUri::File(rest.into()),
            _ => return Err(err("expected tcp:, unix:, exec: or file:")),
        })
    }
}

impl fmt::Display for MigrationUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MigrationUri::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            MigrationUri::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
            MigrationUri::Unix(p) => write!(f, "unix:{}", p.display()),
            MigrationUri::Exec(c) => write!(f, "exec:{c}"),
            MigrationUri::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl MigrationUri {
    /// The socket addresses of a `tcp:` URI.
    fn socket_addrs(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }
}

/// `sh -c cmd`, as QEMU runs an `exec:` command.
fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}

/// The two directions of one connection (a socket and its clone), boxed: the one read
/// and the one written.
#[allow(clippy::type_complexity)]
fn halves<S: Read + Write + Send + 'static>(
    read: S,
    write: S,
) -> (Box<dyn Read + Send>, Box<dyn Write + Send>) {
    (Box::new(read), Box::new(write))
}

/// The destination end, bound (for sockets) but not yet connected.
#[derive(Debug)]
pub struct Listener {
    uri: MigrationUri,
    kind: ListenerKind,
}

#[derive(Debug)]
enum ListenerKind {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
    Exec(String),
    File(PathBuf),
}

impl Listener {
    /// Bind `uri` (a Unix socket path left over by an earlier run is replaced, as QEMU
    /// does); `exec:` and `file:` bind nothing.
    pub fn bind(uri: &MigrationUri) -> io::Result<Self> {
        let kind = match uri {
            MigrationUri::Tcp { host, port } => {
                let addrs = MigrationUri::socket_addrs(host, *port)?;
                ListenerKind::Tcp(TcpListener::bind(&addrs[..])?)
            }
            MigrationUri::Unix(path) => {
                let stale = std::fs::symlink_metadata(path)
                    .map(|m| m.file_type().is_socket())
                    .unwrap_or(false);
                if stale {
                    std::fs::remove_file(path)?;
                }
                ListenerKind::Unix(UnixListener::bind(path)?, path.clone())
            }
            MigrationUri::Exec(cmd) => ListenerKind::Exec(cmd.clone()),
            MigrationUri::File(path) => ListenerKind::File(path.clone()),
        };
        Ok(Listener {
            uri: uri.clone(),
            kind,
        })
    }

    /// The URI a source should use: for `tcp:`, the address actually bound (the port
    /// chosen for port 0).
    pub fn local_uri(&self) -> String {
        match &self.kind {
            ListenerKind::Tcp(l) => match l.local_addr() {
                Ok(SocketAddr::V4(a)) => format!("tcp:{}:{}", a.ip(), a.port()),
                Ok(SocketAddr::V6(a)) => format!("tcp:[{}]:{}", a.ip(), a.port()),
                Err(_) => self.uri.to_string(),
            },
            _ => self.uri.to_string(),
        }
    }

    /// Wait for the source: accept one connection (with reads that fail after `idle`
    /// without data, if given, and return-path writes that fail after `idle`, or a
    /// minute: a source that does not read them cannot block the destination), start the
    /// `exec:` command, or open the file.
    ///
    /// # Blocking
    ///
    /// Waits for a connection for as long as it takes, as QEMU's `-incoming` does.
    pub fn accept(&self, idle: Option<Duration>) -> io::Result<IncomingStream> {
        Ok(match &self.kind {
            ListenerKind::Tcp(l) => {
                let (s, peer) = l.accept()?;
                s.set_read_timeout(idle)?;
                s.set_write_timeout(Some(idle.unwrap_or(RETURN_PATH_WRITE_TIMEOUT)))?;
                let (reader, rp) = halves(s.try_clone()?, s);
                IncomingStream::connected(reader, rp, peer.to_string())
            }
            ListenerKind::Unix(l, path) => {
                let (s, _) = l.accept()?;
                s.set_read_timeout(idle)?;
                s.set_write_timeout(Some(idle.unwrap_or(RETURN_PATH_WRITE_TIMEOUT)))?;
                let (reader, rp) = halves(s.try_clone()?, s);
                IncomingStream::connected(reader, rp, format!("unix:{}", path.display()))
            }
            ListenerKind::Exec(cmd) => {
                let mut child = shell(cmd)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .spawn()?;
                let out = child
                    .stdout
                    .take()
                    .ok_or_else(|| io::Error::other("no stdout"))?;
                IncomingStream {
                    reader: Box::new(out),
                    return_path: None,
                    peer: format!("exec:{cmd}"),
                    _child: Some(Reaped(child)),
                }
            }
            ListenerKind::File(path) => IncomingStream {
                reader: Box::new(File::open(path)?),
                return_path: None,
                peer: format!("file:{}", path.display()),
                _child: None,
            },
        })
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let ListenerKind::Unix(_, path) = &self.kind {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// An `exec:` command, killed (if still running) and reaped when dropped: once its
/// stream end is dropped it has nobody to talk to.
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A destination's connection to its source.
pub struct IncomingStream {
    /// The stream from the source.
    pub reader: Box<dyn Read + Send>,
    /// The other direction of a connection, for the return path.
    pub return_path: Option<Box<dyn Write + Send>>,
    /// Who the source is (its address, or the command or file).
    pub peer: String,
    /// Held for its drop.
    _child: Option<Reaped>,
}

impl fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingStream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl IncomingStream {
    fn connected(
        reader: Box<dyn Read + Send>,
        return_path: Box<dyn Write + Send>,
        peer: String,
    ) -> Self {
        IncomingStream {
            reader,
            return_path: Some(return_path),
            peer,
            _child: None,
        }
    }
}

/// A source's connection to its destination.
pub struct OutgoingStream {
    /// The stream to the destination.
    pub writer: Box<dyn Write + Send>,
    /// The other direction of a connection, for the return path.
    pub return_path: Option<Box<dyn Read + Send>>,
    /// Who the destination is.
    pub peer: String,
    child: Option<Reaped>,
}

impl fmt::Debug for OutgoingStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingStream")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

impl OutgoingStream {
    fn connected(
        writer: Box<dyn Write + Send>,
        return_path: Box<dyn Read + Send>,
        peer: String,
    ) -> Self {
        OutgoingStream {
            writer,
            return_path: Some(return_path),
            peer,
            child: None,
        }
    }

    /// Connect to `uri` (within `timeout` for `tcp:`), start the `exec:` command, or
    /// create the file. Writes to a connection fail after `timeout` without progress,
    /// and so do reads on its return path.
    pub fn connect(uri: &MigrationUri, timeout: Duration) -> io::Result<Self> {
        Ok(match uri {
            MigrationUri::Tcp { host, port } => {
                let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
                let mut stream = None;
                for a in MigrationUri::socket_addrs(host, *port)? {
                    match TcpStream::connect_timeout(&a, timeout) {
                        Ok(s) => {
                            stream = Some(s);
                            break;
                        }
                        Err(e) => last = e,
                    }
                }
                let s = stream.ok_or(last)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(timeout))?;
                s.set_read_timeout(Some(timeout))?;
                let (rp, writer) = halves(s.try_clone()?, s);
                OutgoingStream::connected(writer, rp, uri.to_string())
            }
            MigrationUri::Unix(path) => {
                let s = UnixStream::connect(path)?;
                s.set_write_timeout(Some(timeout))?;
                s.set_read_timeout(Some(timeout))?;
                let (rp, writer) = halves(s.try_clone()?, s);
                OutgoingStream::connected(writer, rp, uri.to_string())
            }
            MigrationUri::Exec(cmd) => {
                let mut child = shell(cmd).stdin(Stdio::piped()).spawn()?;
                let stdin = child
                    .stdin
                    .take()
                    .ok_or_else(|| io::Error::other("no stdin"))?;
                OutgoingStream {
                    writer: Box::new(stdin),
                    return_path: None,
                    peer: uri.to_string(),
                    child: Some(Reaped(child)),
                }
            }
            MigrationUri::File(path) => OutgoingStream {
                writer: Box::new(File::create(path)?),
                return_path: None,
                peer: uri.to_string(),
                child: None,
            },
        })
    }

    /// After the stream: for `exec:`, close the command's input and wait for it, failing
    /// if it failed.
    pub fn finish(mut self) -> io::Result<()> {
        self.writer.flush()?;
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Closing its input tells the command the stream is over.
        self.writer = Box::new(io::sink());
        let status = child.0.wait()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "the command exited with {status}"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_print_as_qemu_spells_them() {
        for s in [
            "tcp:127.0.0.1:0",
            "tcp:localhost:4444",
            "unix:/tmp/x.sock",
            "exec:cat > /tmp/x",
            "file:/tmp/x",
        ] {
            assert_eq!(s.parse::<MigrationUri>().unwrap().to_string(), s);
        }
        for bad in [
            "tcp:1.2.3.4",
            "tcp::5",
            "tcp:h:x",
            "rdma:h:1",
            "file:",
            "nothing",
        ] {
            assert!(bad.parse::<MigrationUri>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_tcp_listener_on_port_0_reports_the_port_it_got() {
        let l = Listener::bind(&"tcp:127.0.0.1:0".parse().unwrap()).unwrap();
        let uri: MigrationUri = l.local_uri().parse().unwrap();
        let MigrationUri::Tcp { port, .. } = uri else {
            panic!("{uri}")
        };
        assert_ne!(port, 0);
        let mut out = OutgoingStream::connect(&uri, Duration::from_secs(5)).unwrap();
        out.writer.write_all(b"QEVM").unwrap();
        let mut inc = l.accept(Some(Duration::from_secs(5))).unwrap();
        let mut got = [0u8; 4];
        inc.reader.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"QEVM");
        // The return path goes back on the same connection.
        inc.return_path.as_mut().unwrap().write_all(b"ok").unwrap();
        let mut rp = [0u8; 2];
        out.return_path
            .as_mut()
            .unwrap()
            .read_exact(&mut rp)
            .unwrap();
        assert_eq!(&rp, b"ok");
    }
}
