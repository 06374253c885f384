//! Turning a `.so` file into a plugin instance, with every way that can fail named.
//!
//! Loading goes through `lib_header_from_path` + `init_root_module`, never `RootModule::load_from*`:
//! the latter caches the first module per type and would silently return it for every later file.
//! Libraries are never unloaded (dlclose of an abi_stable library is unsound); each loaded version stays
//! mapped, which is also what makes a rollback instant.

use std::path::{Path, PathBuf};

use abi_stable::library::{lib_header_from_path, LibraryError};
use avs_plugin_api::{Manifest, PluginBox, PluginModule_Ref};
use serde_json::{Map, Value};

use super::signature::{SignatureError, TrustedKeys};
use crate::schema::{InterfaceSchemas, SchemaError};

/// Which plugin files may be opened.
#[derive(Debug, Clone)]
pub enum Trust {
    /// Only files whose detached signature verifies against one of these keys.
    Signed(TrustedKeys),
    /// Development mode: any file. Explicit in configuration and loud in the log.
    AllowUnsigned,
}

impl Trust {
    /// What the device configuration trusts: its public keys, or anything in the explicit (and loudly
    /// logged) development mode. No key and no development mode is an error, never "trust all".
    pub fn from_config(config: &crate::config::Config) -> Result<Trust, SignatureError> {
        if config.allow_unsigned_plugins {
            tracing::warn!(
                "DEVELOPMENT MODE: plugin signatures are NOT checked (allow_unsigned_plugins = true); never ship this"
            );
            return Ok(Trust::AllowUnsigned);
        }
        let keys = TrustedKeys::load(&config.plugin_trusted_keys)?;
        if keys.is_empty() {
            return Err(SignatureError::NoTrustedKeys);
        }
        Ok(Trust::Signed(keys))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{path}: cannot read the file: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not an avs-runtime plugin: {reason}")]
    NotAPlugin { path: PathBuf, reason: String },
    #[error("{path}: built against an incompatible plugin ABI: {reason}")]
    IncompatibleAbi { path: PathBuf, reason: String },
    #[error("{path}: the plugin failed in {call}: {reason}")]
    PluginFailed { path: PathBuf, call: &'static str, reason: String },
    #[error("{path}: invalid manifest: {reason}")]
    Manifest { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Schema { path: PathBuf, source: SchemaError },
    #[error("refused before loading: {0}")]
    Signature(#[from] SignatureError),
}

/// A loaded, not yet initialised plugin instance and what it declared about itself.
pub struct LoadedPlugin {
    pub path: PathBuf,
    pub sha256: String,
    pub manifest: Manifest,
    pub schemas: InterfaceSchemas,
    pub instance: PluginBox,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Verifies (per `trust`), opens and instantiates a plugin library. Nothing of the file runs before the
/// signature check passed.
pub fn load(path: &Path, trust: &Trust) -> Result<LoadedPlugin, LoadError> {
    let bytes = std::fs::read(path).map_err(|source| LoadError::Read { path: path.into(), source })?;
    if let Trust::Signed(keys) = trust {
        keys.verify(path, &bytes)?;
    }
    let sha256 = sha256_hex(&bytes);
    drop(bytes);

    let header = lib_header_from_path(path).map_err(|e| classify(path, e))?;
    let module = header.init_root_module::<PluginModule_Ref>().map_err(|e| classify(path, e))?;
    let instance = (module.new())();

    let call_failed = |call: &'static str| {
        move |reason: abi_stable::std_types::RString| LoadError::PluginFailed {
            path: path.into(),
            call,
            reason: reason.into_string(),
        }
    };
    let manifest_json = instance.manifest().into_result().map_err(call_failed("manifest"))?;
    let manifest: Manifest = serde_json::from_str(&manifest_json)
        .map_err(|e| LoadError::Manifest { path: path.into(), reason: e.to_string() })?;
    check_manifest(path, &manifest)?;

    let schemas_json = instance.schemas().into_result().map_err(call_failed("schemas"))?;
    let documents: Map<String, Value> = serde_json::from_str(&schemas_json)
        .map_err(|e| LoadError::Manifest { path: path.into(), reason: format!("schemas: {e}") })?;
    let schemas =
        InterfaceSchemas::compile(documents).map_err(|source| LoadError::Schema { path: path.into(), source })?;
    for directive in &manifest.directives {
        if !schemas.has_directive(&directive.name) {
            return Err(LoadError::Manifest {
                path: path.into(),
                reason: format!("directive {} has no schema (directives/{}.json)", directive.name, directive.name),
            });
        }
    }
    for event in &manifest.events {
        if !schemas.has_event(&event.name) {
            return Err(LoadError::Manifest {
                path: path.into(),
                reason: format!("event {} has no schema (events/{}.json)", event.name, event.name),
            });
        }
    }
    Ok(LoadedPlugin { path: path.into(), sha256, manifest, schemas, instance })
}

fn check_manifest(path: &Path, manifest: &Manifest) -> Result<(), LoadError> {
    let bad = |reason: String| Err(LoadError::Manifest { path: path.into(), reason });
    if manifest.interface.is_empty() || !manifest.interface.chars().all(|c| c.is_ascii_alphanumeric() || c == '.') {
        return bad(format!("interface {:?} is not an AVS namespace", manifest.interface));
    }
    let version_ok = manifest
        .version
        .split_once('.')
        .is_some_and(|(major, minor)| major.parse::<u16>().is_ok() && minor.parse::<u16>().is_ok());
    if !version_ok {
        return bad(format!("version {:?} is not major.minor", manifest.version));
    }
    Ok(())
}

/// abi_stable's errors are precise but can run to hundreds of lines (a full layout dump); the device
/// maker needs one line at error level, the dump goes to debug.
fn classify(path: &Path, error: LibraryError) -> LoadError {
    let full = error.to_string();
    tracing::debug!(path = %path.display(), "plugin load error in full: {full}");
    let first_line = full.lines().find(|l| !l.trim().is_empty()).unwrap_or("").trim().to_string();
    match error {
        LibraryError::OpenError { .. } | LibraryError::GetSymbolError { .. } => {
            LoadError::NotAPlugin { path: path.into(), reason: first_line }
        }
        LibraryError::IncompatibleVersionNumber { expected_version, actual_version, .. } => {
            LoadError::IncompatibleAbi {
                path: path.into(),
                reason: format!(
                    "plugin ABI {actual_version}, this runtime speaks {expected_version} (majors must match)"
                ),
            }
        }
        LibraryError::AbiInstability(_) => {
            let detail =
                full.lines().filter(|l| l.contains("Error:")).take(2).map(str::trim).collect::<Vec<_>>().join("; ");
            LoadError::IncompatibleAbi { path: path.into(), reason: format!("type layouts differ ({detail})") }
        }
        _ => LoadError::IncompatibleAbi { path: path.into(), reason: first_line },
    }
}

/// The plugin files in a directory: every `*.so`, in name order so that loading is deterministic.
pub fn discover(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "so") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_a_library_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("libnot_a_plugin.so");
        std::fs::write(&path, b"this is not an ELF file").unwrap();
        let err = load(&path, &Trust::AllowUnsigned).err().expect("must fail");
        assert!(matches!(err, LoadError::NotAPlugin { .. }), "{err}");
        assert!(err.to_string().contains("libnot_a_plugin.so"), "{err}");
    }

    #[test]
    fn an_unsigned_file_is_refused_before_it_is_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (_, public) = super::super::signature::write_key_pair(dir.path(), "k").unwrap();
        let path = dir.path().join("libunsigned.so");
        std::fs::write(&path, b"whatever").unwrap();
        let trust = Trust::Signed(TrustedKeys::load(&[public]).unwrap());
        let err = load(&path, &trust).err().expect("must fail");
        assert!(matches!(err, LoadError::Signature(_)), "{err}");
        assert!(
            err.to_string().contains("refused before loading") && err.to_string().contains("libunsigned.so"),
            "{err}"
        );
    }

    #[test]
    fn discover_lists_only_shared_objects_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["libb.so", "liba.so", "notes.txt"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        let names: Vec<_> = discover(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["liba.so", "libb.so"]);
    }
}
