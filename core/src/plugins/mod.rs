//! The plugin host: discovers plugin libraries, loads each into its own slot, initialises it with its
//! host services, and answers "which slot handles namespace X" for routing.

pub mod loader;
pub(crate) mod queue;
pub(crate) mod services;
pub mod signature;
pub mod slot;
pub mod store;
mod swap;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::{Arc, RwLock};

use serde_json::Value;

pub use loader::{LoadError, LoadedPlugin, Trust};
use services::{Hub, PluginServices, Timers};
use slot::SlotCall;
pub use slot::{CallTimeouts, FailureKind, PluginFailure, Slot};

use crate::directives::DispatchStats;
use crate::observe::{Observer, RuntimeEvent};
use crate::process::{evict_file_pages, trim_code_pages_of};
use crate::template::DeviceTemplate;

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{path}: {reason}")]
    Refused { path: String, reason: String },
    #[error("{path}: cannot start the plugin's thread: {source}")]
    Thread { path: String, source: std::io::Error },
    #[error("{path}: init failed: {failure}")]
    Init { path: String, failure: PluginFailure },
}

pub use swap::{SwapError, SwapReport};

pub struct PluginHost {
    slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Per interface, the version an OTA swap replaced: parked, still initialised, for rollback.
    previous: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// Interfaces in probation after a swap, with the failure count their new slot started from.
    probation: std::sync::Mutex<BTreeMap<String, swap::Probation>>,
    /// One swap at a time.
    swapping: tokio::sync::Mutex<()>,
    /// Raised whenever the set of interfaces or versions changes: capabilities must be re-published.
    capabilities_changed: tokio::sync::Notify,
    /// Numbers directive executions across slots, in the order plugin threads ran them.
    dispatch: Arc<DispatchStats>,
    /// Where committed OTA versions are kept so that a restart loads them.
    store: Option<store::PluginStore>,
    /// Capability configurations the device template gives, per interface, in place of the manifests'.
    configurations: RwLock<BTreeMap<String, Value>>,
    /// Every library ever opened, with what it provides: all stay mapped until the process ends.
    images: std::sync::Mutex<BTreeMap<std::path::PathBuf, String>>,
    hub: Arc<Hub>,
    timers: Arc<Timers>,
    timeouts: CallTimeouts,
    device_info: Value,
    observer: Observer,
    trust: Trust,
    trim_code_pages: bool,
    /// Where the plugins' threads run (`Config::plugin_cpus`); empty: anywhere.
    cpus: Arc<[usize]>,
}

impl PluginHost {
    pub(crate) fn new(
        hub: Arc<Hub>,
        timeouts: CallTimeouts,
        device_info: Value,
        observer: Observer,
        trust: Trust,
    ) -> Self {
        let timers = Arc::new(Timers::new(tokio::runtime::Handle::current()));
        PluginHost {
            slots: RwLock::default(),
            previous: RwLock::default(),
            probation: Default::default(),
            swapping: Default::default(),
            capabilities_changed: Default::default(),
            dispatch: Default::default(),
            store: None,
            configurations: Default::default(),
            images: Default::default(),
            hub,
            timers,
            timeouts,
            device_info,
            observer,
            trust,
            trim_code_pages: false,
            cpus: Arc::new([]),
        }
    }

    /// Runs the plugins' threads, from the next one started on, on `cpus` (none: anywhere).
    pub(crate) fn with_plugin_cpus(mut self, cpus: &[usize]) -> Self {
        self.cpus = cpus.into();
        self
    }

    /// Leaves resident only the code of each library that runs (`process::trim_code_pages_of`), from the
    /// next library loaded on; and after each OTA swap, only the executable's code that runs.
    pub(crate) fn trimming_code_pages(mut self, trim: bool) -> Self {
        self.trim_code_pages = trim;
        self
    }

    /// Keeps committed OTA versions in `store` and loads them again at start (`restore_committed`).
    pub(crate) fn with_store(mut self, store: store::PluginStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Swaps in, for each interface, the version an OTA update committed last (kept in the store).
    pub async fn restore_committed(&self) {
        let Some(store) = &self.store else { return };
        for (interface, path) in store.active() {
            if let Err(e) = self.swap(&interface, &path).await {
                tracing::error!(
                    "the committed {interface} version could not be restored, keeping the built-in one: {e}"
                );
                self.observer
                    .emit(RuntimeEvent::PluginRejected { path: path.display().to_string(), error: e.to_string() });
            }
        }
    }

    /// Loads every plugin file of `dir` (or only those whose file stem is listed in `only`). A file that
    /// fails is reported and skipped; the others still load.
    pub async fn load_dir(&self, dir: &Path, only: &[String]) -> Result<Vec<Arc<Slot>>, std::io::Error> {
        let files = loader::discover(dir)
            .map_err(|e| std::io::Error::new(e.kind(), format!("plugin dir {}: {e}", dir.display())))?;
        let mut loaded = Vec::new();
        for wanted in only {
            let found = files.iter().any(|path| file_is(path, wanted));
            if !found {
                let path = dir.join(format!("lib{}.so", wanted.strip_prefix("lib").unwrap_or(wanted)));
                let error = format!("{}: no such plugin library", path.display());
                tracing::error!("plugin not loaded: {error}");
                self.observer.emit(RuntimeEvent::PluginRejected { path: path.display().to_string(), error });
            }
        }
        for path in files {
            if !only.is_empty() && !only.iter().any(|wanted| file_is(&path, wanted)) {
                continue;
            }
            match self.install(&path).await {
                Ok(slot) => loaded.push(slot),
                Err(e) => {
                    tracing::error!("plugin not loaded: {e}");
                    self.observer
                        .emit(RuntimeEvent::PluginRejected { path: path.display().to_string(), error: e.to_string() });
                }
            }
        }
        Ok(loaded)
    }

    /// Takes the device template's capability configurations: they replace the manifests' in the
    /// capability document, and the plugins are told (`capability.configuration`).
    pub fn configure(&self, template: &DeviceTemplate) {
        let mut configurations = self.configurations.write().unwrap_or_else(|e| e.into_inner());
        for plugin in &template.plugins {
            if let Some(configuration) = &plugin.configurations {
                configurations.insert(plugin.interface.clone(), configuration.clone());
            }
        }
    }

    /// Reports a listed library that provides another version than the device template says (a missing
    /// or refused one was reported when loading). The runtime serves with what did load.
    pub fn check_template(&self, template: &DeviceTemplate) {
        for wanted in &template.plugins {
            let problem = match self.slot(&wanted.interface) {
                Some(slot) if slot.manifest.version == wanted.version => continue,
                Some(slot) => format!("provides {} {}", wanted.interface, slot.manifest.version),
                // Why it did not load (missing, refused, another interface) was reported by load_dir.
                None => continue,
            };
            let error = format!(
                "device template {} expects {} {} from lib{}.so, which {problem}",
                template.name, wanted.interface, wanted.version, wanted.file
            );
            tracing::error!("{error}");
            self.observer.emit(RuntimeEvent::PluginRejected { path: format!("lib{}.so", wanted.file), error });
        }
    }

    /// Loads one plugin file, starts its slot and initialises it, as the provider of its interface.
    pub async fn install(&self, path: &Path) -> Result<Arc<Slot>, InstallError> {
        let slot = self
            .start(path, |interface| match self.slot(interface) {
                Some(other) => Err(format!("{interface} is already provided by {}", other.path.display())),
                None => Ok(()),
            })
            .await?;
        slot.post(SlotCall::HostEvent("device.info".into(), self.device_info.to_string()));
        let interface = slot.interface().to_string();
        self.slots.write().unwrap_or_else(|e| e.into_inner()).insert(interface, slot.clone());
        Ok(slot)
    }

    /// Verifies and loads `path`, checks its manifest with `accept`, starts its slot and initialises it.
    /// The slot is not yet routed to.
    async fn start(
        &self,
        path: &Path,
        accept: impl FnOnce(&str) -> Result<(), String>,
    ) -> Result<Arc<Slot>, InstallError> {
        let shown = path.display().to_string();
        let (owned, trust, trim) = (path.to_path_buf(), self.trust.clone(), self.trim_code_pages);
        let mut loaded = tokio::task::spawn_blocking(move || {
            if trim {
                // An artifact written moments ago comes back from storage in small folios, which the
                // trim below can drop page by page.
                let _ = evict_file_pages(&owned);
            }
            let loaded = loader::load(&owned, &trust)?;
            if trim {
                // After loading: what the library ran to load, and its schemas, need not stay.
                match trim_code_pages_of(&owned) {
                    Ok(bytes) => {
                        tracing::debug!("{}: {} KiB of code left memory until used", owned.display(), bytes / 1024)
                    }
                    Err(e) => tracing::warn!("{}: its code pages stay resident: {e}", owned.display()),
                }
            }
            Ok::<_, loader::LoadError>(loaded)
        })
        .await
        .map_err(|e| InstallError::Thread { path: shown.clone(), source: std::io::Error::other(e.to_string()) })??;
        let interface = loaded.manifest.interface.clone();
        if let Some(configured) = self.configurations.read().unwrap_or_else(|e| e.into_inner()).get(&interface) {
            loaded.manifest.configurations = Some(configured.clone());
        }
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(path.to_path_buf(), format!("{interface} {}", loaded.manifest.version));
        accept(&interface).map_err(|reason| InstallError::Refused { path: shown.clone(), reason })?;
        let slot = Arc::new(
            Slot::start(loaded, self.timeouts, self.dispatch.clone(), self.cpus.clone())
                .map_err(|source| InstallError::Thread { path: shown.clone(), source })?,
        );
        let must_deliver: HashSet<String> =
            slot.manifest.events.iter().filter(|e| e.must_deliver).map(|e| e.name.clone()).collect();
        let services = PluginServices::for_plugin(
            &interface,
            slot.schemas.clone(),
            must_deliver,
            slot.sender(),
            self.hub.clone(),
            self.timers.clone(),
        );
        if let Err(failure) = slot.init(services).await {
            let _ = slot.shutdown().await;
            return Err(InstallError::Init { path: shown, failure });
        }
        // What the capability document will say is what the plugin must do.
        if let Some(configurations) = &slot.manifest.configurations {
            slot.post(SlotCall::HostEvent("capability.configuration".into(), configurations.to_string()));
        }
        self.hub.focus.watch(slot.sender());
        tracing::info!(interface = %interface, version = %slot.manifest.version, path = %shown, "plugin loaded");
        self.observer.emit(RuntimeEvent::PluginLoaded {
            interface: interface.clone(),
            version: slot.manifest.version.clone(),
            path: shown,
        });
        Ok(slot)
    }

    /// Each interface: the active version and library, and the parked previous one (rollback target).
    pub fn describe(&self) -> Vec<Value> {
        let previous = self.previous.read().unwrap_or_else(|e| e.into_inner()).clone();
        self.slots()
            .iter()
            .map(|slot| {
                let parked = previous.get(slot.interface());
                serde_json::json!({
                    "interface": slot.interface(),
                    "version": slot.manifest.version,
                    "plugin": slot.manifest.plugin,
                    "pluginVersion": slot.manifest.plugin_version,
                    "path": slot.path,
                    "sha256": slot.sha256,
                    "previous": parked.map(|p| serde_json::json!({"version": p.manifest.version, "path": p.path})),
                })
            })
            .collect()
    }

    /// The plugin libraries mapped into this process (every one ever loaded: none is unloaded), with the
    /// memory their mappings take according to `/proc/self/maps`.
    pub fn mapped_images(&self) -> Vec<Value> {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let images = self.images.lock().unwrap_or_else(|e| e.into_inner()).clone();
        images
            .into_iter()
            .map(|(path, provides)| {
                let shown = path.display().to_string();
                let bytes: u64 = maps
                    .lines()
                    .filter(|line| line.ends_with(shown.as_str()))
                    .filter_map(|line| {
                        let (start, end) = line.split_whitespace().next()?.split_once('-')?;
                        Some(u64::from_str_radix(end, 16).ok()? - u64::from_str_radix(start, 16).ok()?)
                    })
                    .sum();
                serde_json::json!({"path": shown, "provides": provides, "mappedKib": bytes / 1024})
            })
            .collect()
    }

    /// How many directives plugins executed, and how long each took from arrival to return.
    pub fn dispatch_stats(&self) -> &DispatchStats {
        &self.dispatch
    }

    pub fn slot(&self, interface: &str) -> Option<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).get(interface).cloned()
    }

    pub fn slots(&self) -> Vec<Arc<Slot>> {
        self.slots.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect()
    }

    /// Every plugin's context entries, gathered concurrently; a plugin that fails or is too slow is
    /// left out (and logged) rather than holding the event back.
    pub async fn context(&self) -> Vec<Value> {
        let mut calls = tokio::task::JoinSet::new();
        for slot in self.slots() {
            calls.spawn(async move { (slot.context().await, slot) });
        }
        let mut entries = Vec::new();
        let mut results = Vec::new();
        while let Some(Ok((result, slot))) = calls.join_next().await {
            results.push((slot.interface().to_string(), result));
        }
        // Deterministic order makes the context stable across events.
        results.sort_by(|a, b| a.0.cmp(&b.0));
        for (interface, result) in results {
            match result {
                Ok(mut e) => entries.append(&mut e),
                Err(failure) => tracing::warn!(interface, "context left out: {failure}"),
            }
        }
        entries
    }

    /// User input (`user.*`: a button, the microphone, a local volume change) for whichever plugin
    /// handles it; any input is also user activity (System's inactivity report).
    pub fn user_input(&self, kind: &str, payload: &Value) {
        self.broadcast(kind, payload);
        if kind != "user.activity" {
            self.broadcast("user.activity", &serde_json::json!({}));
        }
    }

    /// Delivers a host event (user input, device info) to every plugin.
    pub fn broadcast(&self, kind: &str, payload: &Value) {
        for slot in self.slots() {
            slot.post(SlotCall::HostEvent(kind.to_string(), payload.to_string()));
        }
    }

    pub async fn shutdown(&self) {
        self.timers.shutdown();
        let take = |map: &RwLock<BTreeMap<String, Arc<Slot>>>| -> Vec<Arc<Slot>> {
            std::mem::take(&mut *map.write().unwrap_or_else(|e| e.into_inner())).into_values().collect()
        };
        let slots = take(&self.slots).into_iter().chain(take(&self.previous));
        for slot in slots {
            if let Err(e) = slot.shutdown().await {
                tracing::warn!("plugin shutdown: {e}");
            }
        }
    }
}

/// Whether `path` is the library `wanted` names (`avs_speaker` or `libavs_speaker` for `libavs_speaker.so`).
fn file_is(path: &Path, wanted: &str) -> bool {
    let stem = path.file_stem().map(|s| s.to_string_lossy()).unwrap_or_default();
    stem == wanted || stem.strip_prefix("lib") == Some(wanted)
}
