//! Safe helpers for writing avs-runtime interface plugins.
//!
//! A plugin implements [`Interface`] (plain Rust: `&str`, `serde_json::Value`, `Result`) and exports it
//! with [`export_plugin!`]. The SDK owns everything the ABI demands of a plugin author: the root module,
//! the conversion to FFI types, the embedded schemas, and — most importantly — catching every panic, since
//! a panic unwinding out of a plugin call would abort the host process.
#![allow(non_local_definitions)]

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::std_types::{RResult, RStr, RString};
use avs_plugin_api::{Directive as RawDirective, HostServicesArc, Plugin, PluginResult};
pub use avs_plugin_api::{FocusState, Handling, LogLevel};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use serde_json::Value;

#[cfg(feature = "testing")]
pub mod testing;

pub use avs_plugin_api::manifest::{DirectiveSpec, EventSpec, Manifest, Medium};

/// Re-exports used by [`export_plugin!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use abi_stable;
    pub use avs_plugin_api;
    pub use include_dir;
}

/// A directive as a plugin sees it: borrowed from the host's buffer for the duration of the call.
#[derive(Debug, Clone, Copy)]
pub struct Directive<'a> {
    pub name: &'a str,
    pub message_id: &'a str,
    pub dialog_request_id: Option<&'a str>,
    /// The payload object as JSON text, already schema-validated by the host.
    pub payload: &'a str,
}

impl<'a> Directive<'a> {
    fn from_raw(raw: &RawDirective<'a>) -> Self {
        let dialog = raw.dialog_request_id.as_str();
        Directive {
            name: raw.name.as_str(),
            message_id: raw.message_id.as_str(),
            dialog_request_id: (!dialog.is_empty()).then_some(dialog),
            payload: raw.payload.as_str(),
        }
    }

    /// Deserialises the payload into the plugin's own type.
    pub fn payload<T: Deserialize<'a>>(&self) -> Result<T, PluginError> {
        serde_json::from_str(self.payload).map_err(|e| PluginError::invalid(format!("{}.payload: {e}", self.name)))
    }
}

/// Why a plugin call failed. The host turns a failed directive into `System.ExceptionEncountered` with
/// the matching AVS error type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginError {
    /// The directive's content makes no sense to this interface (UNEXPECTED_INFORMATION_RECEIVED).
    Invalid(String),
    /// Understood but not supported here (UNSUPPORTED_OPERATION).
    Unsupported(String),
    /// The device failed to carry it out (INTERNAL_ERROR).
    Internal(String),
}

impl PluginError {
    pub fn invalid(message: impl Into<String>) -> Self {
        PluginError::Invalid(message.into())
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        PluginError::Unsupported(message.into())
    }
    pub fn internal(message: impl Into<String>) -> Self {
        PluginError::Internal(message.into())
    }

    /// Wire form across the ABI: `<AVS error type>: <message>`; the host parses the prefix back.
    fn into_wire(self) -> RString {
        let (kind, message) = match self {
            PluginError::Invalid(m) => ("UNEXPECTED_INFORMATION_RECEIVED", m),
            PluginError::Unsupported(m) => ("UNSUPPORTED_OPERATION", m),
            PluginError::Internal(m) => ("INTERNAL_ERROR", m),
        };
        format!("{kind}: {message}").into()
    }
}

impl std::fmt::Display for PluginError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PluginError::Invalid(m) | PluginError::Unsupported(m) | PluginError::Internal(m) => f.write_str(m),
        }
    }
}

impl From<String> for PluginError {
    fn from(message: String) -> Self {
        PluginError::Internal(message)
    }
}

/// The host, as a plugin sees it: typed wrappers over [`avs_plugin_api::HostServices`].
#[derive(Clone)]
pub struct Host {
    services: HostServicesArc,
}

/// A `media` host event: the progress of something [`HostApi::play`] started (`state` is `buffered`,
/// `started`, `progress`, `finished`, `stopped` or `failed`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaEvent {
    pub id: u64,
    pub state: String,
    /// The playback offset it happened at.
    #[serde(default)]
    pub offset_in_milliseconds: Option<u64>,
    /// Which progress mark (`delay` or `interval`) a `progress` event is.
    #[serde(default)]
    pub mark: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl MediaEvent {
    pub fn parse(payload: &str) -> Result<Self, PluginError> {
        serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("media event: {e}")))
    }
}

/// The host as a plugin keeps it: absent until `init` hands it over.
#[derive(Clone, Default)]
pub struct HostCell(Option<Host>);

impl HostCell {
    pub fn set(&mut self, host: Host) {
        self.0 = Some(host);
    }

    /// The host, or the error a call before `init` deserves.
    pub fn get(&self) -> Result<&Host, PluginError> {
        self.0.as_ref().ok_or_else(|| PluginError::internal("called before init"))
    }
}

/// Options of [`HostApi::send_event_with`].
#[derive(Debug, Default, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EventOptions {
    /// Attach the full device context (Recognize, SynchronizeState, PlaybackController…).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub context: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialog_request_id: Option<String>,
    /// Start a new dialog: the host generates its dialogRequestId and cancels the current dialog.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub new_dialog: bool,
    /// An audio source the host streams as the event's `audio` part.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<Value>,
}

/// What the host answered to a sent event.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentEvent {
    pub message_id: String,
    pub dialog_request_id: Option<String>,
    /// The media id of the attached audio capture (stop it with [`HostApi::stop_media`]).
    pub audio_stream: Option<u64>,
}

/// The host operations a plugin uses, implemented by [`Host`] and, for plugins' unit tests, by
/// `testing::FakeHost`; a plugin's state machines take `&impl HostApi` so that tests drive them without
/// a runtime.
pub trait HostApi {
    fn send_event_with(
        &self,
        name: &str,
        payload: &impl Serialize,
        options: &EventOptions,
    ) -> Result<SentEvent, PluginError>;

    fn send_event(&self, name: &str, payload: &impl Serialize) -> Result<SentEvent, PluginError> {
        self.send_event_with(name, payload, &EventOptions::default())
    }

    fn complete_directive(&self, message_id: &str, outcome: Result<(), String>);

    /// Fires `on_timer` after `delay_ms`, then every `period_ms` unless that is 0.
    fn start_timer(&self, delay_ms: u64, period_ms: u64) -> u64;

    fn cancel_timer(&self, timer: u64);

    fn acquire_focus(&self, channel: &str) -> Result<(), PluginError>;

    fn release_focus(&self, channel: &str);

    /// Starts playback of `url` (`cid:…`, http(s) or a file path); returns the media id used in the
    /// `media` host events.
    fn play(&self, url: &str, options: &Value) -> Result<u64, PluginError>;

    fn stop_media(&self, media: u64);

    /// The JSON text persisted under `key` by this plugin, if any.
    fn load_raw(&self, key: &str) -> Option<String>;

    /// Reads a persisted value of this plugin; `None` when absent or no longer of type `T`.
    fn load<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let raw = self.load_raw(key)?;
        match serde_json::from_str(&raw) {
            Ok(value) => Some(value),
            Err(e) => {
                self.log(LogLevel::Warn, &format!("stored {key} unreadable, ignored: {e}"));
                None
            }
        }
    }

    /// Persists `value` under `key`, as JSON.
    fn store(&self, key: &str, value: &impl Serialize) -> Result<(), PluginError> {
        self.store_raw(key, &to_json(value)?)
    }

    /// Persists JSON text the plugin already has (a payload it keeps as AVS wrote it), without a round
    /// trip through its types.
    fn store_raw(&self, key: &str, json: &str) -> Result<(), PluginError>;

    fn log(&self, level: LogLevel, message: &str);

    /// Asks a device service of the host (`display`, `bluetooth`…); its later results arrive as
    /// `on_host_event(service, …)`.
    fn request(&self, service: &str, request: &Value) -> Result<Value, PluginError>;
}

impl HostApi for Host {
    fn send_event_with(
        &self,
        name: &str,
        payload: &impl Serialize,
        options: &EventOptions,
    ) -> Result<SentEvent, PluginError> {
        let payload = to_json(payload)?;
        let options = to_json(options)?;
        let answer = self
            .services
            .send_event(name.into(), payload.as_str().into(), options.as_str().into())
            .into_result()
            .map_err(|e| PluginError::internal(e.into_string()))?;
        serde_json::from_str(&answer).map_err(|e| PluginError::internal(format!("host answer: {e}")))
    }

    fn complete_directive(&self, message_id: &str, outcome: Result<(), String>) {
        let outcome = match outcome {
            Ok(()) => RResult::ROk(()),
            Err(e) => RResult::RErr(e.into()),
        };
        self.services.complete_directive(message_id.into(), outcome);
    }

    fn start_timer(&self, delay_ms: u64, period_ms: u64) -> u64 {
        self.services.start_timer(delay_ms, period_ms)
    }

    fn cancel_timer(&self, timer: u64) {
        self.services.cancel_timer(timer)
    }

    fn acquire_focus(&self, channel: &str) -> Result<(), PluginError> {
        self.services.acquire_focus(channel.into()).into_result().map_err(|e| PluginError::internal(e.into_string()))
    }

    fn release_focus(&self, channel: &str) {
        self.services.release_focus(channel.into())
    }

    fn play(&self, url: &str, options: &Value) -> Result<u64, PluginError> {
        let options = to_json(options)?;
        self.services
            .play(url.into(), options.as_str().into())
            .into_result()
            .map_err(|e| PluginError::internal(e.into_string()))
    }

    fn stop_media(&self, media: u64) {
        self.services.stop_media(media)
    }

    fn load_raw(&self, key: &str) -> Option<String> {
        self.services.storage_get(key.into()).into_option().map(RString::into_string)
    }

    fn store_raw(&self, key: &str, json: &str) -> Result<(), PluginError> {
        self.services
            .storage_put(key.into(), json.into())
            .into_result()
            .map_err(|e| PluginError::internal(e.into_string()))
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.services.log(level, message.into())
    }

    fn request(&self, service: &str, request: &Value) -> Result<Value, PluginError> {
        let request = to_json(request)?;
        let answer = self
            .services
            .request(service.into(), request.as_str().into())
            .into_result()
            .map_err(|e| PluginError::internal(e.into_string()))?;
        serde_json::from_str(&answer).map_err(|e| PluginError::internal(format!("{service} answer: {e}")))
    }
}

fn to_json(value: &impl Serialize) -> Result<String, PluginError> {
    serde_json::to_string(value).map_err(|e| PluginError::internal(format!("serialise: {e}")))
}

/// A context entry in the shape AVS expects.
pub fn context_entry(namespace: &str, name: &str, payload: Value) -> Value {
    serde_json::json!({"header": {"namespace": namespace, "name": name}, "payload": payload})
}

/// What a plugin author implements. Every method has a sensible default except the ones every interface
/// needs. Calls never overlap; the host serialises them on the plugin's thread.
pub trait Interface: Send + 'static {
    fn manifest() -> Manifest
    where
        Self: Sized;

    fn init(&mut self, host: Host) -> Result<(), PluginError>;

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError>;

    fn cancel(&mut self, _message_id: &str) -> Result<(), PluginError> {
        Ok(())
    }

    fn on_focus(&mut self, _channel: &str, _focus: FocusState) -> Result<(), PluginError> {
        Ok(())
    }

    fn on_timer(&mut self, _timer: u64) -> Result<(), PluginError> {
        Ok(())
    }

    fn on_host_event(&mut self, _kind: &str, _payload: &str) -> Result<(), PluginError> {
        Ok(())
    }

    /// Context entries (see [`context_entry`]).
    fn context(&self) -> Vec<Value> {
        Vec::new()
    }

    fn export_state(&self) -> Value {
        Value::Null
    }

    fn import_state(&mut self, _state: Value) -> Result<(), PluginError> {
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        Ok(())
    }
}

/// Adapts an [`Interface`] to the ABI's [`Plugin`] trait. Public only for [`export_plugin!`].
#[doc(hidden)]
pub struct Adapter<I> {
    interface: I,
    schemas: &'static include_dir::Dir<'static>,
}

impl<I: Interface> Adapter<I> {
    pub fn new(interface: I, schemas: &'static include_dir::Dir<'static>) -> Self {
        Adapter { interface, schemas }
    }
}

/// Runs `f`, turning both errors and panics into the ABI's error string. The panic message is kept: it
/// is what a device maker needs in the log when a plugin misbehaves.
fn guarded<T>(what: &str, f: impl FnOnce() -> Result<T, PluginError>) -> PluginResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(e)) => RResult::RErr(e.into_wire()),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".to_string());
            RResult::RErr(format!("PANIC: plugin panicked in {what}: {message}").into())
        }
    }
}

fn json_string(value: &impl Serialize) -> Result<RString, PluginError> {
    to_json(value).map(RString::from)
}

/// Every embedded file below the schema directory, as `relative path → JSON document`.
fn collect_schemas(dir: &include_dir::Dir<'_>, out: &mut serde_json::Map<String, Value>) -> Result<(), PluginError> {
    for file in dir.files() {
        let path = file.path().to_string_lossy().replace('\\', "/");
        if !path.ends_with(".json") {
            continue;
        }
        let document = serde_json::from_slice(file.contents())
            .map_err(|e| PluginError::internal(format!("embedded {path}: {e}")))?;
        out.insert(path, document);
    }
    for sub in dir.dirs() {
        collect_schemas(sub, out)?;
    }
    Ok(())
}

impl<I: Interface> Plugin for Adapter<I> {
    fn manifest(&self) -> PluginResult<RString> {
        guarded("manifest", || json_string(&I::manifest()))
    }

    fn schemas(&self) -> PluginResult<RString> {
        guarded("schemas", || {
            let mut all = serde_json::Map::new();
            collect_schemas(self.schemas, &mut all)?;
            json_string(&all)
        })
    }

    fn init(&mut self, host: HostServicesArc) -> PluginResult<()> {
        guarded("init", || self.interface.init(Host { services: host }))
    }

    fn handle_directive(&mut self, directive: RawDirective<'_>) -> PluginResult<Handling> {
        let directive = Directive::from_raw(&directive);
        guarded(directive.name, || self.interface.handle_directive(directive))
    }

    fn cancel(&mut self, message_id: RStr<'_>) -> PluginResult<()> {
        guarded("cancel", || self.interface.cancel(message_id.as_str()))
    }

    fn on_focus(&mut self, channel: RStr<'_>, focus: FocusState) -> PluginResult<()> {
        guarded("on_focus", || self.interface.on_focus(channel.as_str(), focus))
    }

    fn on_timer(&mut self, timer: u64) -> PluginResult<()> {
        guarded("on_timer", || self.interface.on_timer(timer))
    }

    fn on_host_event(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> PluginResult<()> {
        guarded(kind.as_str(), || self.interface.on_host_event(kind.as_str(), payload.as_str()))
    }

    fn context(&self) -> PluginResult<RString> {
        guarded("context", || json_string(&self.interface.context()))
    }

    fn export_state(&self) -> PluginResult<RString> {
        guarded("export_state", || json_string(&self.interface.export_state()))
    }

    fn import_state(&mut self, state: RStr<'_>) -> PluginResult<()> {
        guarded("import_state", || {
            let state =
                serde_json::from_str(state.as_str()).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
            self.interface.import_state(state)
        })
    }

    fn shutdown(&mut self) -> PluginResult<()> {
        guarded("shutdown", || self.interface.shutdown())
    }
}

/// The manifest of the calling plugin crate for `interface` at `version`, named and versioned after the
/// crate (Cargo's package name and version); directives, events, context and configurations are added
/// with struct update syntax: `Manifest { directives, ..manifest!(INTERFACE, "1.0") }`.
#[macro_export]
macro_rules! manifest {
    ($interface:expr, $version:expr) => {
        $crate::Manifest::new($interface, $version, env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"))
    };
}

/// Exports an [`Interface`] implementation as an avs-runtime plugin.
///
/// ```ignore
/// avs_plugin_sdk::export_plugin!(Speaker, "$CARGO_MANIFEST_DIR/../../schemas/Speaker/1.0");
/// ```
/// The second argument is the plugin's schema directory (`include_dir!` syntax), embedded into the
/// library at compile time. The type must implement `Default`.
#[macro_export]
macro_rules! export_plugin {
    ($interface:ty, $schema_dir:tt) => {
        mod __avs_plugin_export {
            // The exported type may live in the plugin crate or in a crate it depends on.
            #[allow(unused_imports)]
            use super::*;
            use $crate::__private::abi_stable::{
                export_root_module, prefix_type::PrefixTypeTrait, sabi_trait::TD_Opaque,
            };
            use $crate::__private::avs_plugin_api::{PluginBox, PluginModule, PluginModule_Ref, Plugin_TO};
            use $crate::__private::include_dir;

            static SCHEMAS: include_dir::Dir<'static> = include_dir::include_dir!($schema_dir);

            extern "C" fn new_instance() -> PluginBox {
                let interface: $interface = ::core::default::Default::default();
                Plugin_TO::from_value($crate::Adapter::new(interface, &SCHEMAS), TD_Opaque)
            }

            #[export_root_module]
            fn root_module() -> PluginModule_Ref {
                PluginModule { new: new_instance }.leak_into_prefix()
            }
        }
    };
}
