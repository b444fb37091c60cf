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
    // The lock file is truncated and rewritten: never through a link to some other file.
    if fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) {
        let why = io::Error::other("is a symbolic link; a lock file is never written through one");
        return Err(io_error(&path)(why));
    }
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

/// Makes `dir` a private directory: creates it (and missing parents) with mode 0700, fsyncing
/// each new directory's parent so the new entry survives a crash, and tightens an existing
/// directory that group or others may read, write or enter to 0700 (review finding L6).
///
/// Tighten rather than refuse: state directories made by older versions, or by a umask of
/// 022, hold only files of mode 0600, so removing the group and other bits takes nothing away
/// from the owner and keeps an upgraded node starting; a directory of another user fails at
/// `chmod` and is refused with that error.
pub fn ensure_dir(dir: &Path) -> Result<(), FileError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.as_os_str().is_empty() && fs::symlink_metadata(at).is_err() {
        missing.push(at);
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for new in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(new) {
            Ok(()) => sync_dir(parent_of(new))?,
            // Made by someone else in between: it is checked below like any existing one.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_error(new)(e)),
        }
    }
    let meta = fs::metadata(dir).map_err(io_error(dir))?;
    if !meta.is_dir() {
        return Err(io_error(dir)(io::Error::other("not a directory")));
    }
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        fs::set_permissions(dir, fs::Permissions::from_mode(mode & 0o700 | 0o700))
            .map_err(io_error(dir))?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
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
        sync_dir(parent_of(path))?;
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

/// Writes `bytes` to `path` atomically and durably: a temporary file `<name>.tmp` (mode 0600)
/// is created fresh, written and synced, renamed over `path`, and the directory is synced.
/// After a crash `path` holds either its old content or all of `bytes`.
///
/// Symbolic links are never written through (review finding L6): the temporary file is
/// created with `O_EXCL` (a link, even a dangling one, in its place is removed first, not
/// followed), and `rename` replaces a link at `path` itself, leaving whatever it pointed to
/// untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = parent_of(path);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(".tmp");
    let tmp = dir.join(name);
    // A stale temporary file (a crash mid-write) or a planted link: removed, never followed.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_error(&tmp)(e)),
    }
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
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

    /// L6: `write_atomic` never writes through a symbolic link, whether it sits at the
    /// destination or where its temporary file goes: the link is replaced (or removed) and
    /// the file it pointed to keeps its content.
    #[test]
    fn atomic_writes_never_follow_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let out = tmp.path().join("out.json");
        std::os::unix::fs::symlink(&victim, &out).unwrap();
        write_atomic(&out, b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&out).unwrap(), b"new");
        assert!(!fs::symlink_metadata(&out).unwrap().file_type().is_symlink());
        // A link planted as the temporary file.
        let other = tmp.path().join("other.json");
        std::os::unix::fs::symlink(&victim, tmp.path().join("other.json.tmp")).unwrap();
        write_atomic(&other, b"x").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(&other).unwrap(), b"x");
        // A bare relative name's directory is `.`, which is synced (was `""`, an error).
        assert_eq!(parent_of(Path::new("bare.json")), Path::new("."));
    }

    /// A lock file planted as a symbolic link is refused, and its target left untouched.
    #[test]
    fn a_lock_is_never_taken_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let lock_path = tmp.path().join("LOCK");
        std::os::unix::fs::symlink(&victim, &lock_path).unwrap();
        let e = lock(&lock_path).unwrap_err();
        assert!(e.to_string().contains("symbolic link"), "{e}");
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
    }

    /// L6: a new state directory is created 0700 with its missing parents, and an existing one
    /// that group or others can enter is tightened to 0700.
    #[test]
    fn state_dirs_are_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let deep = tmp.path().join("a/b/c");
        ensure_dir(&deep).unwrap();
        for p in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&tmp.path().join(p)), 0o700, "{p}");
        }
        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);
        let file = tmp.path().join("file");
        fs::write(&file, b"").unwrap();
        assert!(ensure_dir(&file).is_err());
    }
}
