//! Files that hold secrets — the token store, the plugin signing key — are read only while no one but
//! their owner can read or write them: a secret others could read is treated as leaked, not used.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("not found")]
    NotFound,
    /// Group or others have a permission bit (`mode` is the file's permission bits).
    #[error("readable or writable by others (mode {mode:o})")]
    Insecure { mode: u32 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The bytes of `path`, if only its owner has access. The mode is read from the opened file, so the
/// file checked is the file read.
pub fn read_owner_only(path: &Path) -> Result<Vec<u8>, SecretFileError> {
    let mut file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => SecretFileError::NotFound,
        _ => SecretFileError::Io(e),
    })?;
    let mode = file.metadata()?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(SecretFileError::Insecure { mode });
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_no_one_else_can_touch_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        assert!(matches!(read_owner_only(&path), Err(SecretFileError::NotFound)));
        std::fs::write(&path, b"s3cret").unwrap();
        for mode in [0o644, 0o640, 0o604, 0o620, 0o602, 0o610, 0o601] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            match read_owner_only(&path) {
                Err(SecretFileError::Insecure { mode: seen }) => assert_eq!(seen, mode),
                other => panic!("mode {mode:o}: {other:?}"),
            }
        }
        for mode in [0o600, 0o400] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_owner_only(&path).unwrap(), b"s3cret");
        }
    }
}
