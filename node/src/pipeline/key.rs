//! The node's pseudonym key file: 64 hex digits (32 bytes), mode 0600, created by
//! `fedprof federation init`. A key file that others can read is refused, as ssh refuses a
//! private key with loose permissions: whoever holds the key can test guessed ids.

use std::io::Write;
use std::path::Path;

use fedprof_crypto::{Pseudonymizer, SecretKey32};
use zeroize::Zeroizing;

use super::error::PipelineError;

fn key_error(path: &Path, problem: impl Into<String>) -> PipelineError {
    PipelineError::Key {
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Reads the key at `path`: a regular file, not readable or writable by group or others
/// (the same rule as every TLS key: `fedprof_transport::secret_file`).
pub fn load_key(path: &Path) -> Result<SecretKey32, PipelineError> {
    use fedprof_transport::secret_file::{self, SecretFileError};
    let bytes = secret_file::read(path).map_err(|e| match e {
        SecretFileError::Permissions { mode, .. } => key_error(
            path,
            format!("mode {mode:03o} lets others read it; run `chmod 600` on it"),
        ),
        SecretFileError::NotAFile { .. } => key_error(path, "not a regular file"),
        SecretFileError::Read { source, .. } => key_error(path, source.to_string()),
    })?;
    let text = Zeroizing::new(
        std::str::from_utf8(&bytes)
            .map_err(|_| key_error(path, "not text"))?
            .to_owned(),
    );
    SecretKey32::from_hex(&text).map_err(|e| key_error(path, e.to_string()))
}

/// A pseudonymizer under the key at `path`.
pub fn load_pseudonymizer(path: &Path) -> Result<Pseudonymizer, PipelineError> {
    load_key(path).map(Pseudonymizer::new)
}

/// 32 bytes from the operating system's generator.
pub fn random_key() -> Result<SecretKey32, PipelineError> {
    use rand::TryRng;
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::SysRng
        .try_fill_bytes(&mut *bytes)
        .map_err(|e| key_error(Path::new("<system random>"), e.to_string()))?;
    Ok(SecretKey32::from_bytes(*bytes))
}

/// Creates a new key file at `path` with mode 0600 (never overwrites).
pub fn create_key_file(path: &Path) -> Result<(), PipelineError> {
    let key = random_key()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options
        .open(path)
        .map_err(|e| key_error(path, e.to_string()))?;
    let hex = key.to_hex();
    f.write_all(hex.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .and_then(|()| f.sync_all())
        .map_err(|e| key_error(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_keys_load_and_loose_modes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pseudonym.key");
        create_key_file(&p).unwrap();
        assert!(create_key_file(&p).is_err(), "never overwrites");
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.trim().len(), 64);
        load_key(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = load_key(&p).unwrap_err().to_string();
            assert!(e.contains("chmod 600"), "{e}");
            assert!(!e.contains(text.trim()), "never echoes the key");
        }
        std::fs::write(dir.path().join("bad.key"), "zz").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(
                dir.path().join("bad.key"),
                std::fs::Permissions::from_mode(0o600),
            )
            .unwrap();
        }
        assert!(
            load_key(&dir.path().join("bad.key"))
                .unwrap_err()
                .to_string()
                .contains("64 hex")
        );
    }
}
