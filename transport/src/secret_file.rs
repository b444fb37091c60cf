//! Reading a private key file: refused unless only its owner can read or write it, as ssh
//! refuses a private key with loose permissions (security review M12), and held in memory that
//! is wiped when dropped.
//!
//! Used for every party's TLS key (`key.pem`) and for the node's pseudonym key: whoever can
//! read either can impersonate the party, or test guessed customer ids.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

/// Why a private key file was not read. Never contains any of the file's content.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// The file cannot be read or its metadata is unavailable.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A directory, device or other non-regular file.
    #[error("{path}: not a regular file")]
    NotAFile {
        /// The file.
        path: PathBuf,
    },
    /// Group or others may read or write it.
    #[error(
        "{path}: mode {mode:03o} lets others read or change this private key; run `chmod 600 {path}`"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// Reads the private key file at `path` (following a symbolic link to a regular file, as
/// ssh does): it must be a regular file that neither group nor others may access.
pub fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, SecretFileError> {
    let meta = std::fs::metadata(path).map_err(|source| SecretFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(SecretFileError::NotAFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(SecretFileError::Permissions {
                path: path.to_owned(),
                mode,
            });
        }
    }
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|source| SecretFileError::Read {
            path: path.to_owned(),
            source,
        })
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn only_owner_only_regular_files_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, b"secret").unwrap();
        for mode in [0o600, 0o400, 0o700] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(&read(&key).unwrap()[..], b"secret", "{mode:o}");
        }
        for mode in [0o644, 0o640, 0o604, 0o660, 0o606, 0o666] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
            let e = read(&key).unwrap_err();
            assert!(
                matches!(e, SecretFileError::Permissions { mode: m, .. } if m == mode),
                "{e}"
            );
            let text = e.to_string();
            assert!(
                text.contains("chmod 600") && !text.contains("secret"),
                "{text}"
            );
        }
        assert!(matches!(
            read(dir.path()),
            Err(SecretFileError::NotAFile { .. })
        ));
        assert!(matches!(
            read(&dir.path().join("missing")),
            Err(SecretFileError::Read { .. })
        ));
    }
}
