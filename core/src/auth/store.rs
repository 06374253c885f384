//! The token store: `<data_dir>/tokens.json`, readable by the device's user only. A refresh token is a
//! long-lived credential for the user's Amazon account, so a store others can read is refused rather
//! than used.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{AuthError, Secret};
use crate::secret_file::{read_owner_only, SecretFileError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Tokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Seconds since the Unix epoch: wall-clock, because the store outlives the process.
    pub expires_at: u64,
}

fn store_err(path: &Path, reason: impl std::fmt::Display) -> AuthError {
    AuthError::Store { path: path.display().to_string(), reason: reason.to_string() }
}

/// The stored tokens; `None` when the device was never linked (or was unlinked).
pub(super) fn read(path: &Path) -> Result<Option<Tokens>, AuthError> {
    let bytes = match read_owner_only(path) {
        Ok(bytes) => bytes,
        Err(SecretFileError::NotFound) => return Ok(None),
        Err(SecretFileError::Insecure { mode }) => {
            return Err(AuthError::InsecureStore { path: path.display().to_string(), mode })
        }
        Err(SecretFileError::Io(e)) => return Err(store_err(path, e)),
    };
    // serde_json's message may quote a value, and values here are tokens: only say where it broke.
    serde_json::from_slice(&bytes).map(Some).map_err(|e| {
        let at = format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column());
        store_err(path, format!("unreadable ({at}); delete it and link the device again"))
    })
}

/// Temp file created 0600, fsynced, renamed over the store: a crash leaves the old or the new tokens,
/// never a torn file, and never a moment where the tokens sit in a file others can read.
pub(super) fn write(path: &Path, tokens: &Tokens) -> Result<(), AuthError> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| store_err(dir, e))?;
    let temp = path.with_extension("json.tmp");
    // A stale temp file from a crash keeps its mode if reopened: start from a fresh one.
    match std::fs::remove_file(&temp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(store_err(&temp, e)),
    }
    let json = serde_json::to_vec(tokens).map_err(|e| store_err(path, e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| store_err(&temp, e))?;
    file.write_all(&json).and_then(|()| file.sync_all()).map_err(|e| store_err(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| store_err(path, e))?;
    // The rename itself is durable only once the directory is synced.
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Forgets the stored tokens; already forgotten is fine.
pub(super) fn remove(path: &Path) -> Result<(), AuthError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(store_err(path, e)),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access_token: Secret::new("Atza|secret-access"),
            refresh_token: Secret::new("Atzr|secret-refresh"),
            expires_at: 99,
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_is_written_0600_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("tokens.json");
        assert_eq!(read(&path).unwrap(), None, "never linked");
        write(&path, &tokens()).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(read(&path).unwrap(), Some(tokens()));
        // A stale, world-readable temp file left by a crash does not lend its mode to the store.
        let temp = path.with_extension("json.tmp");
        std::fs::write(&temp, "old").unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, &tokens()).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert!(!temp.exists());
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(read(&path).unwrap(), None);
    }

    #[test]
    fn a_store_others_can_read_or_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        write(&path, &tokens()).unwrap();
        for insecure in [0o644, 0o640, 0o604, 0o620, 0o660] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(insecure)).unwrap();
            let err = read(&path).unwrap_err();
            assert!(matches!(err, AuthError::InsecureStore { mode, .. } if mode == insecure), "{err}");
            let message = err.to_string();
            assert!(message.contains("tokens.json") && message.contains("chmod 600"), "{message}");
        }
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
        assert!(read(&path).unwrap().is_some(), "read-only for the owner is fine");
    }

    #[test]
    fn a_corrupt_store_is_a_clear_error_without_its_contents() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        std::fs::write(&path, "{\"access_token\":\"Atza|a\",\"refresh_token\":\"Atzr|r\",\"expires_at\":\"Atza|x\"}")
            .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let message = read(&path).unwrap_err().to_string();
        assert!(message.contains("unreadable") && message.contains("link the device again"), "{message}");
        assert!(!message.contains("Atz"), "{message}");
    }
}
