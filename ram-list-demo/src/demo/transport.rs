//! The transports between source and destination: a Unix socket pair, loopback TCP, or a
//! temporary file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;

use crate::cli::Transport;
use crate::error::DemoError;

/// Either end of the transport.
pub enum Sink {
    Unix(UnixStream),
    Tcp(TcpStream),
    File(std::fs::File),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Unix(s) => s.write(buf),
            Sink::Tcp(s) => s.write(buf),
            Sink::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Unix(s) => s.flush(),
            Sink::Tcp(s) => s.flush(),
            Sink::File(f) => f.flush(),
        }
    }
}

/// The destination end of a transport: streamed live, or a file read after the source
/// completes.
pub enum Source {
    Live(Box<dyn Read + Send>),
    File(std::fs::File),
}

/// Source and destination ends.
pub fn transport(t: Transport) -> Result<(Sink, Source), DemoError> {
    Ok(match t {
        Transport::Unix => {
            let (a, b) = UnixStream::pair()?;
            (Sink::Unix(a), Source::Live(Box::new(b)))
        }
        Transport::Tcp => {
            let l = TcpListener::bind("127.0.0.1:0")?;
            let a = TcpStream::connect(l.local_addr()?)?;
            let (b, _) = l.accept()?;
            a.set_nodelay(true)?;
            (Sink::Tcp(a), Source::Live(Box::new(b)))
        }
        Transport::File => {
            let path =
                std::env::temp_dir().join(format!("ram-list-demo-{}.mig", std::process::id()));
            let f = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .read(true)
                .write(true)
                .open(&path)?;
            let _ = std::fs::remove_file(&path);
            let r = f.try_clone()?;
            (Sink::File(f), Source::File(r))
        }
    })
}
