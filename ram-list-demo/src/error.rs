//! The program's errors: any error, with the file it concerns, printed once.

use std::error::Error;
use std::fmt;
use std::path::{Path, PathBuf};

/// The error type of the demo and `inspect`.
pub type DemoError = Box<dyn Error + Send + Sync>;

/// An error about a file: `Display` names the file, the cause is the `source()`.
#[derive(Debug)]
pub struct FileError {
    path: PathBuf,
    source: DemoError,
}

impl FileError {
    /// `source`, about `path`.
    pub fn new(path: &Path, source: impl Into<DemoError>) -> Self {
        FileError {
            path: path.to_owned(),
            source: source.into(),
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())
    }
}

impl Error for FileError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// An error with a hint for the user in front of its cause.
#[derive(Debug)]
pub struct Hint {
    hint: String,
    source: DemoError,
}

impl Hint {
    /// `source`, explained by `hint`.
    pub fn new(hint: String, source: impl Into<DemoError>) -> Self {
        Hint {
            hint,
            source: source.into(),
        }
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hint)
    }
}

impl Error for Hint {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        Some(&*self.source)
    }
}

/// One line: the error and each of its causes, separated by ": " (each error's `Display`
/// leaves its cause to `source()`, so each message appears once).
pub fn report(e: &(dyn Error + 'static)) -> String {
    let mut line = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        line.push_str(": ");
        line.push_str(&s.to_string());
        src = s.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_message_once() {
        let io = std::io::Error::other("Is a directory");
        let e = FileError::new(Path::new("/tmp"), Hint::new("reading failed".into(), io));
        assert_eq!(report(&e), "/tmp: reading failed: Is a directory");
    }
}
