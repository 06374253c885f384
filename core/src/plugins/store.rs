//! The plugin store: OTA artifacts kept in the data dir under names that are never reused
//! (`<interface>-<version>-<sha256 prefix>.so`), and which one is active per interface, so that a
//! restart loads what was last committed.
//!
//! A new path per artifact matters twice: glibc hands back an already-loaded image for a path it has
//! seen, and overwriting a mapped library in place corrupts the running process.

use std::path::{Path, PathBuf};

use super::loader::{self, Trust};
use super::signature::signature_path;
use crate::storage::Storage;
use avs_plugin_api::Manifest;

const NAMESPACE: &str = "avs-core.plugins";

#[derive(Debug, thiserror::Error)]
#[error("plugin store {path}: {reason}")]
pub struct StoreError {
    path: String,
    reason: String,
}

fn store_err(path: &Path, reason: impl std::fmt::Display) -> StoreError {
    StoreError { path: path.display().to_string(), reason: reason.to_string() }
}

#[derive(Clone)]
pub struct PluginStore {
    dir: PathBuf,
    storage: Storage,
}

impl PluginStore {
    /// The store of the device whose data dir is `data_dir` (`<data_dir>/plugins`).
    pub fn in_data_dir(data_dir: &Path, storage: Storage) -> Self {
        PluginStore { dir: data_dir.join("plugins"), storage }
    }

    /// `avs plugin install`: checks `artifact` against its detached `signature` before anything of it
    /// runs, reads which interface and version it provides, and keeps it in the store (not yet active:
    /// a swap commits it). Returns the stored path and the plugin's manifest.
    pub fn install(&self, artifact: &Path, signature: &Path, trust: &Trust) -> Result<(PathBuf, Manifest), StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| store_err(&self.dir, e))?;
        // The loader finds a signature next to the library: stage both under a fresh name.
        let name = artifact.file_name().ok_or_else(|| store_err(artifact, "not a file name"))?;
        let staging = self.dir.join(format!(".install-{}", std::process::id()));
        std::fs::create_dir_all(&staging).map_err(|e| store_err(&staging, e))?;
        let staged = staging.join(name);
        let result = (|| {
            copy_durably(artifact, &staged)?;
            if signature.exists() {
                copy_durably(signature, &signature_path(&staged))?;
            }
            let plugin = loader::load(&staged, trust).map_err(|e| store_err(artifact, e))?;
            let manifest = plugin.manifest;
            let stored = self.keep(&staged, &manifest.interface, &manifest.version, &plugin.sha256)?;
            Ok((stored, manifest))
        })();
        // The staged copy may stay mapped in this process; unlinking a mapped file is harmless.
        let _ = std::fs::remove_dir_all(&staging);
        result
    }

    /// Copies `artifact` (and its `.sig`, if any) into the store as `<interface>-<version>-<sha12>.so`
    /// and returns the stored path. Temp file + fsync + rename; an existing stored file is kept as is.
    pub fn keep(&self, artifact: &Path, interface: &str, version: &str, sha256: &str) -> Result<PathBuf, StoreError> {
        std::fs::create_dir_all(&self.dir).map_err(|e| store_err(&self.dir, e))?;
        let stored = self.dir.join(format!("{interface}-{version}-{}.so", &sha256[..12.min(sha256.len())]));
        if artifact == stored || stored.exists() {
            return Ok(stored);
        }
        copy_durably(artifact, &stored)?;
        let sig = signature_path(artifact);
        if sig.exists() {
            copy_durably(&sig, &signature_path(&stored))?;
        }
        Ok(stored)
    }

    /// Whether `path` is an artifact of this store (rather than a built-in plugin).
    pub fn is_stored(&self, path: &Path) -> bool {
        path.starts_with(&self.dir)
    }

    pub fn set_active(&self, interface: &str, path: Option<&Path>) -> Result<(), StoreError> {
        let result = match path {
            Some(path) => self.storage.put(NAMESPACE, interface, &path.display().to_string()),
            None => self.storage.delete(NAMESPACE, interface),
        };
        result.map_err(|e| store_err(&self.dir, e))
    }

    /// Interface → stored artifact committed last, for those whose file is still there.
    pub fn active(&self) -> Vec<(String, PathBuf)> {
        let entries = self.storage.entries(NAMESPACE).unwrap_or_else(|e| {
            tracing::error!("reading the active plugin versions: {e}");
            Vec::new()
        });
        entries
            .into_iter()
            .map(|(interface, path)| (interface, PathBuf::from(path)))
            .filter(|(interface, path)| {
                let present = path.exists();
                if !present {
                    tracing::warn!("the active {interface} plugin {} is gone; using the built-in one", path.display());
                }
                present
            })
            .collect()
    }
}

fn copy_durably(from: &Path, to: &Path) -> Result<(), StoreError> {
    use std::io::Write;
    let bytes = std::fs::read(from).map_err(|e| store_err(from, e))?;
    let temp = to.with_extension("partial");
    let mut file = std::fs::File::create(&temp).map_err(|e| store_err(&temp, e))?;
    file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| store_err(&temp, e))?;
    std::fs::rename(&temp, to).map_err(|e| store_err(to, e))?;
    // The rename itself is durable only once the directory entry is.
    let dir = to.parent().unwrap_or(Path::new("."));
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| store_err(dir, e))
}
