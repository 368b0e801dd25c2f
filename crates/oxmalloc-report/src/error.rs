//! The reader's error type: every failure names the file or directory it concerns and
//! displays as one line.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Why a snapshot could not be read or a report could not be made.
#[derive(Debug)]
pub enum Error {
    /// The file or directory could not be read.
    Io { path: PathBuf, source: io::Error },
    /// The first line is not `oxmalloc-snapshot VERSION`.
    NotSnapshot { path: PathBuf },
    /// `oxmalloc-snapshot VERSION` with a version this reader does not know.
    UnsupportedVersion { path: PathBuf, version: String },
    /// No final `end` line: the file was cut short.
    Truncated { path: PathBuf },
    /// A known record that does not parse (line numbers count from 1).
    Malformed {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// A record every snapshot has (`pid`, `mode`, `totals`) is absent.
    Missing { path: PathBuf, record: &'static str },
    /// A directory without any `snapshot-PID-SEQ.oxm` file (of the pid asked for, if any).
    NoSnapshot { dir: PathBuf, pid: Option<u32> },
    /// Building the report's output failed (encoding).
    Output { message: String },
}

impl Error {
    pub(crate) fn io(path: &Path, source: io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::NotSnapshot { path } => write!(
                f,
                "{}: not an oxmalloc snapshot (the first line is not 'oxmalloc-snapshot 1')",
                path.display()
            ),
            Error::UnsupportedVersion { path, version } => write!(
                f,
                "{}: snapshot format version {version} is not supported (this reader knows version 1)",
                path.display()
            ),
            Error::Truncated { path } => write!(
                f,
                "{}: truncated snapshot (no final 'end' line)",
                path.display()
            ),
            Error::Malformed {
                path,
                line,
                message,
            } => write!(f, "{}: malformed line {line}: {message}", path.display()),
            Error::Missing { path, record } => {
                write!(f, "{}: no '{record}' record", path.display())
            }
            Error::NoSnapshot { dir, pid: None } => write!(
                f,
                "{}: no snapshot files (snapshot-PID-SEQ.oxm) in this directory",
                dir.display()
            ),
            Error::NoSnapshot { dir, pid: Some(p) } => write!(
                f,
                "{}: no snapshot files of pid {p} (snapshot-{p}-SEQ.oxm) in this directory",
                dir.display()
            ),
            Error::Output { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
