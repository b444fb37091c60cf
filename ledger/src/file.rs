//! The few file operations the stores need, each with its durability rule.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Failures reading or writing ledger files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The operating system refused an operation.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The last line has no newline: the writer stopped (crashed) while appending it.
    #[error(
        "{path}: line {line} is incomplete (no final newline), probably a crash while appending; \
         the ledger is refused until an operator repairs it (docs/LEDGER.md, \"Recovery\")"
    )]
    TornTail {
        /// The ledger file.
        path: PathBuf,
        /// 1-based number of the incomplete line.
        line: usize,
    },
    /// Another process holds the directory's lock (one process per ledger: two writers could
    /// both pay from one budget, or fork the chain).
    #[error(
        "{path} is in use by another process (pid {holder}); stop it first: one ledger, one \
         process"
    )]
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The pid the holder wrote into it (`unknown` when unreadable).
        holder: String,
    },
    /// The file is not UTF-8 text.
    #[error("{path}: line {line} is not UTF-8 text")]
    NotText {
        /// The ledger file.
        path: PathBuf,
        /// 1-based number of the first bad line.
        line: usize,
    },
}

pub(crate) fn io_error(path: &Path) -> impl FnOnce(io::Error) -> FileError + '_ {
    move |source| FileError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Takes the exclusive lock `path` (a file that then holds this process's pid) for as long as
/// the returned file lives. The lock is the operating system's (`flock`): it ends with the
/// process, so a crash never leaves a stale lock behind.
pub fn lock(path: &Path) -> Result<File, FileError> {
    let path = path.to_owned();
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => {
            let holder = fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "unknown".into());
            return Err(FileError::Locked { path, holder });
        }
        Err(fs::TryLockError::Error(e)) => return Err(io_error(&path)(e)),
    }
    file.set_len(0).map_err(io_error(&path))?;
    writeln!(file, "{}", std::process::id()).map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))?;
    Ok(file)
}

/// Splits ledger text into lines: every line must end with `\n` (a missing final newline is a
/// torn append), and nothing else is stripped, so each line hashes exactly as written.
pub fn ledger_lines<'a>(path: &Path, bytes: &'a [u8]) -> Result<Vec<&'a str>, FileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1;
        FileError::NotText {
            path: path.to_owned(),
            line,
        }
    })?;
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let Some(body) = text.strip_suffix('\n') else {
        let line = text.matches('\n').count() + 1;
        return Err(FileError::TornTail {
            path: path.to_owned(),
            line,
        });
    };
    Ok(body.split('\n').collect())
}

/// Reads a whole file; a missing file reads as `None`.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, FileError> {
    match fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path)(e)),
    }
}

/// Makes the directory entries of `dir` durable (after creating or renaming a file in it).
pub fn sync_dir(dir: &Path) -> Result<(), FileError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// Creates `dir` (and parents) with mode 0700 if missing.
pub fn ensure_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_error(dir))
}

/// Opens a ledger file for appending, creating it (mode 0600, directory entry synced) if it
/// does not exist.
pub fn open_append(path: &Path) -> Result<File, FileError> {
    let existed = path.exists();
    let file = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path))?;
    if !existed {
        file.sync_all().map_err(io_error(path))?;
        sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(file)
}

/// Appends one line and its newline in one write, then waits until it is on disk.
pub fn append_line(file: &mut File, path: &Path, line: &str) -> Result<(), FileError> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    file.write_all(&buf)
        .and_then(|()| file.sync_data())
        .map_err(io_error(path))
}

/// Writes `bytes` to `path` atomically and durably: a temporary file (mode 0600) is written and
/// synced, renamed over `path`, and the directory is synced. After a crash `path` holds either
/// nothing or all of `bytes`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_error(&tmp))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(io_error(&tmp))?;
    fs::rename(&tmp, path).map_err(io_error(path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_keep_every_byte_and_refuse_torn_tails() {
        let p = Path::new("l.jsonl");
        assert_eq!(ledger_lines(p, b"").unwrap(), Vec::<&str>::new());
        assert_eq!(ledger_lines(p, b"a\nb\r\n").unwrap(), vec!["a", "b\r"]);
        assert!(matches!(
            ledger_lines(p, b"a\nb"),
            Err(FileError::TornTail { line: 2, .. })
        ));
        assert!(matches!(
            ledger_lines(p, b"a\n\xff\n"),
            Err(FileError::NotText { line: 2, .. })
        ));
    }
}
