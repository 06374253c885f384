//! The stable ABI between the avs-runtime core and its interface plugins.
//!
//! The surface is deliberately small and frozen: new behaviour travels as new JSON (manifest fields, host
//! event kinds, event options), never as new ABI methods. abi_stable checks this crate's semver (same
//! major) and the layout of every type below when a plugin is loaded; the AVS interface version a plugin
//! implements is its own and is reported by [`Plugin::manifest`].
//!
//! Loading rule (see `ARCHITECTURE.md`): the host loads plugins with
//! `abi_stable::library::lib_header_from_path` + `init_root_module::<PluginModule_Ref>()`, never with
//! `RootModule::load_from*`, which caches the first module per type and would silently hand back the old
//! version after an OTA swap.
#![allow(non_local_definitions, non_camel_case_types)]

pub mod manifest;
pub use manifest::{DirectiveSpec, EventSpec, Manifest, Medium};

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RArc, RBox, ROption, RResult, RStr, RString},
    StableAbi,
};

/// A directive as the host hands it to a plugin: borrowed slices of the bytes the host already parsed,
/// so dispatch copies nothing. `dialog_request_id` is empty when the directive has none.
#[repr(C)]
#[derive(StableAbi, Clone, Copy, Debug)]
pub struct Directive<'a> {
    pub name: RStr<'a>,
    pub message_id: RStr<'a>,
    pub dialog_request_id: RStr<'a>,
    /// JSON text of the directive's `payload` object, already validated against the plugin's schema.
    pub payload: RStr<'a>,
}

/// What a plugin did with a directive.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handling {
    /// Done; the next directive of the dialog may run.
    Completed,
    /// Still running (e.g. Speak playing); the plugin calls [`HostServices::complete_directive`] later.
    Pending,
}

/// Focus of an audio or visual channel, as in the AVS focus-management model.
#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FocusState {
    Foreground,
    Background,
    None,
}

#[repr(u8)]
#[derive(StableAbi, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Every call returns a result so that the SDK can turn a panic inside the plugin into an error value:
/// a panic that crossed this boundary would abort the whole host.
pub type PluginResult<T> = RResult<T, RString>;

/// One AVS interface implementation. Calls are synchronous and never concurrent for one instance: the
/// host owns the instance on one thread. Anything asynchronous is a [`HostServices`] call whose
/// completion comes back as a later call (`on_timer`, `on_focus`, `on_host_event`).
#[sabi_trait]
pub trait Plugin: Send {
    /// JSON: interface, version, plugin name/semver, directives (with blocking policy and channel),
    /// events (with delivery class), context state names and capability configurations.
    fn manifest(&self) -> PluginResult<RString>;

    /// JSON object: relative schema path (e.g. `directives/SetVolume.json`, `examples/valid/x.json`) →
    /// schema or example document. Embedded in the plugin so that a plugin and its schemas never drift.
    fn schemas(&self) -> PluginResult<RString>;

    fn init(&mut self, host: HostServicesArc) -> PluginResult<()>;

    fn handle_directive(&mut self, directive: Directive<'_>) -> PluginResult<Handling>;

    /// The dialog this directive belonged to was cancelled (barge-in) or the directive was superseded.
    fn cancel(&mut self, message_id: RStr<'_>) -> PluginResult<()>;

    fn on_focus(&mut self, channel: RStr<'_>, focus: FocusState) -> PluginResult<()>;

    fn on_timer(&mut self, timer: u64) -> PluginResult<()>;

    /// Completions and user input delivered by the host, as `kind` + JSON payload (e.g. `media`,
    /// `user.recognize`). New kinds extend the protocol without touching the ABI.
    fn on_host_event(&mut self, kind: RStr<'_>, payload: RStr<'_>) -> PluginResult<()>;

    /// JSON array of context entries (`{"header":{"namespace","name"},"payload":{…}}`), possibly empty.
    fn context(&self) -> PluginResult<RString>;

    /// Opaque JSON state handed to the next version of the plugin on an OTA swap.
    fn export_state(&self) -> PluginResult<RString>;

    fn import_state(&mut self, state: RStr<'_>) -> PluginResult<()>;

    #[sabi(last_prefix_field)]
    fn shutdown(&mut self) -> PluginResult<()>;
}

pub type PluginBox = Plugin_TO<'static, RBox<()>>;

/// What the host offers a plugin. Each plugin gets its own instance, bound to its interface: events are
/// always sent in the plugin's own namespace and storage keys live in the plugin's own namespace.
/// Implementations never block on the plugin's thread, so a plugin may call them from inside any call.
#[sabi_trait]
pub trait HostServices: Send + Sync + Clone {
    /// Queue an event of the plugin's interface. `payload` is the JSON payload object; `options` is a
    /// JSON object: `context` (bool: attach the full device context), `dialogRequestId` (string),
    /// `newDialog` (bool: start a new dialog, cancelling the current one), `audio` (object describing an
    /// audio source to stream as the `audio` part, e.g. `{"file":"utterance.wav"}`).
    /// Returns JSON `{"messageId":…, "dialogRequestId":…}`.
    fn send_event(&self, name: RStr<'_>, payload: RStr<'_>, options: RStr<'_>) -> PluginResult<RString>;

    /// A directive that returned [`Handling::Pending`] has finished (Err: it failed).
    fn complete_directive(&self, message_id: RStr<'_>, outcome: RResult<(), RString>);

    /// One-shot timer after `delay_ms`, repeating every `period_ms` when non-zero. Fires `on_timer(id)`.
    fn start_timer(&self, delay_ms: u64, period_ms: u64) -> u64;

    fn cancel_timer(&self, timer: u64);

    /// Ask for a focus channel (`Dialog`, `Communications`, `Alert`, `Content`, `Visual`); the answer
    /// arrives as `on_focus`.
    fn acquire_focus(&self, channel: RStr<'_>) -> PluginResult<()>;

    fn release_focus(&self, channel: RStr<'_>);

    /// Play a `cid:` attachment, an http(s) URL, a local file or `tone:<ms>` (a beep the host generates,
    /// for alerts whose assets are out of reach) to the host's audio sink. Progress comes
    /// back as `on_host_event("media", {"id":…, "state":"started"|"finished"|"stopped"|"failed", …})`.
    fn play(&self, url: RStr<'_>, options: RStr<'_>) -> PluginResult<u64>;

    fn stop_media(&self, media: u64);

    fn storage_get(&self, key: RStr<'_>) -> ROption<RString>;

    fn storage_put(&self, key: RStr<'_>, value: RStr<'_>) -> PluginResult<()>;

    #[sabi(last_prefix_field)]
    fn log(&self, level: LogLevel, message: RStr<'_>);

    /// A device service the host owns, by name (`display`, `bluetooth`…), with a JSON request; answers
    /// JSON. Later results arrive as `on_host_event(<service>, …)`. Added in 1.1 after the prefix, as
    /// abi_stable's evolution rules require: a host built with 1.0 has no such method, and calling it
    /// there runs this default. New device services are new names and JSON, never new ABI methods.
    fn request(&self, service: RStr<'_>, request: RStr<'_>) -> PluginResult<RString> {
        let _ = request;
        RResult::RErr(format!("this host offers no device service `{}`", service.as_str()).into())
    }
}

pub type HostServicesArc = HostServices_TO<'static, RArc<()>>;

/// The root module every plugin library exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModule_Ref)))]
#[sabi(missing_field(panic))]
pub struct PluginModule {
    /// Creates a fresh, uninitialised instance.
    #[sabi(last_prefix_field)]
    pub new: extern "C" fn() -> PluginBox,
}

impl RootModule for PluginModule_Ref {
    declare_root_module_statics! {PluginModule_Ref}
    const BASE_NAME: &'static str = "avs_plugin";
    const NAME: &'static str = "avs_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}
