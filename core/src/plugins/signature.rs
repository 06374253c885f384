//! Plugin artifact signatures: Ed25519 over the library file's bytes, in a detached `<file>.sig`.
//!
//! Checked before the library is opened: `dlopen` runs the library's initialisers, so an unverified
//! file must never reach it. Keys and signatures are stored as hex text so that a device maker can read,
//! diff and provision them with ordinary tools.

use std::path::{Path, PathBuf};

use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};

use crate::secret_file::{read_owner_only, SecretFileError};

#[derive(Debug, thiserror::Error)]
pub enum SignatureError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("{path}: no signature ({sig} is missing) — sign it with `avs plugin sign`")]
    Unsigned { path: String, sig: String },
    #[error("{path}: the signature does not verify against any trusted key ({keys} trusted)")]
    BadSignature { path: String, keys: usize },
    #[error("no trusted plugin keys are configured (plugin_trusted_keys), so no plugin can be loaded")]
    NoTrustedKeys,
    #[error("generating a key pair failed")]
    KeyGeneration,
    #[error("{path}: not an Ed25519 PKCS#8 private key")]
    BadPrivateKey { path: String },
    #[error(
        "{path}: the plugin signing key is readable or writable by others (mode {mode:o}); refusing to use it: \
         chmod 600 it, and treat it as leaked if others could read it"
    )]
    InsecureKey { path: String, mode: u32 },
}

fn file_err(path: &Path, reason: impl std::fmt::Display) -> SignatureError {
    SignatureError::File { path: path.display().to_string(), reason: reason.to_string() }
}

/// The detached signature file of a plugin library.
pub fn signature_path(library: &Path) -> PathBuf {
    let mut name = library.as_os_str().to_os_string();
    name.push(".sig");
    PathBuf::from(name)
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The public keys plugin signatures are checked against.
#[derive(Debug, Clone, Default)]
pub struct TrustedKeys {
    keys: Vec<Vec<u8>>,
}

impl TrustedKeys {
    /// Reads public key files (hex of the 32-byte Ed25519 key).
    pub fn load(files: &[PathBuf]) -> Result<Self, SignatureError> {
        let mut keys = Vec::new();
        for path in files {
            let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
            let key = from_hex(&text)
                .filter(|k| k.len() == 32)
                .ok_or_else(|| file_err(path, "not a hex Ed25519 public key"))?;
            keys.push(key);
        }
        Ok(TrustedKeys { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Checks `library`'s bytes against its `.sig` file.
    pub fn verify(&self, library: &Path, bytes: &[u8]) -> Result<(), SignatureError> {
        if self.keys.is_empty() {
            return Err(SignatureError::NoTrustedKeys);
        }
        let sig_path = signature_path(library);
        let text = match std::fs::read_to_string(&sig_path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(SignatureError::Unsigned {
                    path: library.display().to_string(),
                    sig: sig_path.display().to_string(),
                })
            }
            Err(e) => return Err(file_err(&sig_path, e)),
        };
        let signature = from_hex(&text).ok_or_else(|| file_err(&sig_path, "not a hex signature"))?;
        let verified =
            self.keys.iter().any(|key| UnparsedPublicKey::new(&ED25519, key).verify(bytes, &signature).is_ok());
        if verified {
            Ok(())
        } else {
            Err(SignatureError::BadSignature { path: library.display().to_string(), keys: self.keys.len() })
        }
    }
}

/// A new signing key: (PKCS#8 private key, hex public key).
pub fn generate_key() -> Result<(Vec<u8>, String), SignatureError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| SignatureError::KeyGeneration)?;
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| SignatureError::KeyGeneration)?;
    Ok((pkcs8.as_ref().to_vec(), to_hex(pair.public_key().as_ref())))
}

/// The bytes of a signing key, which whoever holds can make any library loadable on every device trusting
/// it: a key file others can read is refused, like the token store.
fn read_private_key(key_file: &Path) -> Result<Vec<u8>, SignatureError> {
    read_owner_only(key_file).map_err(|e| match e {
        SecretFileError::Insecure { mode } => {
            SignatureError::InsecureKey { path: key_file.display().to_string(), mode }
        }
        other => file_err(key_file, other),
    })
}

/// Signs `library` with the PKCS#8 key in `key_file`, writing `<library>.sig`; returns its path.
pub fn sign_file(library: &Path, key_file: &Path) -> Result<PathBuf, SignatureError> {
    let pkcs8 = read_private_key(key_file)?;
    let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map_err(|_| SignatureError::BadPrivateKey { path: key_file.display().to_string() })?;
    let bytes = std::fs::read(library).map_err(|e| file_err(library, e))?;
    let sig_path = signature_path(library);
    std::fs::write(&sig_path, to_hex(pair.sign(&bytes).as_ref()) + "\n").map_err(|e| file_err(&sig_path, e))?;
    Ok(sig_path)
}

/// Writes a new key pair as `<dir>/<name>.key` (PKCS#8, mode 0600) and `<dir>/<name>.pub` (hex).
pub fn write_key_pair(dir: &Path, name: &str) -> Result<(PathBuf, PathBuf), SignatureError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::create_dir_all(dir).map_err(|e| file_err(dir, e))?;
    let (pkcs8, public) = generate_key()?;
    let key_path = dir.join(format!("{name}.key"));
    let pub_path = dir.join(format!("{name}.pub"));
    let mut key = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key_path)
        .map_err(|e| file_err(&key_path, e))?;
    key.write_all(&pkcs8).map_err(|e| file_err(&key_path, e))?;
    std::fs::write(&pub_path, public + "\n").map_err(|e| file_err(&pub_path, e))?;
    Ok((key_path, pub_path))
}

/// Copies every plugin library of `from` into `to` and signs each copy with `key_file` — what a build
/// pipeline does before shipping plugins (and what the demo and the tests do with a fresh key).
pub fn copy_and_sign(from: &Path, to: &Path, key_file: &Path) -> Result<Vec<PathBuf>, SignatureError> {
    std::fs::create_dir_all(to).map_err(|e| file_err(to, e))?;
    let libraries = super::loader::discover(from).map_err(|e| file_err(from, e))?;
    let mut signed = Vec::new();
    for library in libraries {
        let Some(name) = library.file_name() else { continue };
        let copy = to.join(name);
        std::fs::copy(&library, &copy).map_err(|e| file_err(&copy, e))?;
        sign_file(&copy, key_file)?;
        signed.push(copy);
    }
    Ok(signed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn signed_files_verify_and_anything_else_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let (key, public) = write_key_pair(dir.path(), "signing").unwrap();
        let (_, other_public) = write_key_pair(dir.path(), "other").unwrap();
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        let library = dir.path().join("libx.so");
        std::fs::write(&library, b"plugin bytes").unwrap();
        let trusted = TrustedKeys::load(&[public]).unwrap();

        let err = trusted.verify(&library, b"plugin bytes").unwrap_err();
        assert!(matches!(err, SignatureError::Unsigned { .. }) && err.to_string().contains("libx.so.sig"), "{err}");

        sign_file(&library, &key).unwrap();
        trusted.verify(&library, b"plugin bytes").unwrap();
        let err = trusted.verify(&library, b"tampered bytes").unwrap_err();
        assert!(matches!(err, SignatureError::BadSignature { .. }), "{err}");
        let stranger = TrustedKeys::load(&[other_public]).unwrap();
        assert!(matches!(stranger.verify(&library, b"plugin bytes"), Err(SignatureError::BadSignature { .. })));
        assert!(matches!(TrustedKeys::default().verify(&library, b"plugin bytes"), Err(SignatureError::NoTrustedKeys)));
    }

    #[test]
    fn a_signing_key_others_can_read_or_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (key, _) = write_key_pair(dir.path(), "signing").unwrap();
        let library = dir.path().join("libx.so");
        std::fs::write(&library, b"plugin bytes").unwrap();
        for insecure in [0o644, 0o640, 0o604, 0o620, 0o602, 0o660, 0o666] {
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(insecure)).unwrap();
            let err = sign_file(&library, &key).unwrap_err();
            assert!(matches!(err, SignatureError::InsecureKey { mode, .. } if mode == insecure), "{err}");
            let message = err.to_string();
            assert!(message.contains("signing.key") && message.contains("chmod 600"), "{message}");
            assert!(!signature_path(&library).exists(), "nothing signed with a refused key");
        }
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o400)).unwrap();
        sign_file(&library, &key).expect("read-only for the owner is fine");
    }

    #[test]
    fn malformed_keys_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.pub");
        std::fs::write(&bad, "zz").unwrap();
        assert!(TrustedKeys::load(&[bad]).unwrap_err().to_string().contains("bad.pub"));
        let not_a_key = dir.path().join("k.key");
        std::fs::write(&not_a_key, b"junk").unwrap();
        std::fs::set_permissions(&not_a_key, std::fs::Permissions::from_mode(0o600)).unwrap();
        let lib = dir.path().join("l.so");
        std::fs::write(&lib, b"x").unwrap();
        assert!(matches!(sign_file(&lib, &not_a_key), Err(SignatureError::BadPrivateKey { .. })));
    }
}
