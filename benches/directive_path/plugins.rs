//! The real plugin libraries, loaded as the runtime loads them and initialised with host services that
//! do nothing, so that a dispatch measures the ABI call and the plugin's own work only.

use std::path::{Path, PathBuf};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RArc, ROption, RResult, RStr, RString};
use avs_core::plugins::loader::{self, LoadedPlugin, Trust};
use avs_plugin_api::{HostServices, HostServices_TO, LogLevel, PluginResult};

/// Host services that answer at once: events are "sent" (a fixed messageId), nothing is stored, focus,
/// timers and media go nowhere. The real host validates each event against its schema and queues it;
/// that cost is the event path's, not the directive path's.
#[derive(Clone)]
struct NoopHost;

impl HostServices for NoopHost {
    fn send_event(&self, _: RStr<'_>, _: RStr<'_>, _: RStr<'_>) -> PluginResult<RString> {
        RResult::ROk(RString::from(r#"{"messageId":"bench-event"}"#))
    }
    fn complete_directive(&self, _: RStr<'_>, _: RResult<(), RString>) {}
    fn start_timer(&self, _: u64, _: u64) -> u64 {
        1
    }
    fn cancel_timer(&self, _: u64) {}
    fn acquire_focus(&self, _: RStr<'_>) -> PluginResult<()> {
        RResult::ROk(())
    }
    fn release_focus(&self, _: RStr<'_>) {}
    fn play(&self, _: RStr<'_>, _: RStr<'_>) -> PluginResult<u64> {
        RResult::ROk(1)
    }
    fn stop_media(&self, _: u64) {}
    fn storage_get(&self, _: RStr<'_>) -> ROption<RString> {
        ROption::RNone
    }
    fn storage_put(&self, _: RStr<'_>, _: RStr<'_>) -> PluginResult<()> {
        RResult::ROk(())
    }
    fn log(&self, _: LogLevel, _: RStr<'_>) {}
}

/// Where cargo put the plugin libraries of this profile: the bench executable is target/<profile>/deps/.
pub fn built_plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("bench executable path");
    exe.parent().and_then(Path::parent).expect("target/<profile>/deps").to_path_buf()
}

/// Loads (unsigned: a bench is development mode) and initialises `<dir>/<stem>.so`.
pub fn load(dir: &Path, stem: &str) -> LoadedPlugin {
    let path = dir.join(format!("{stem}.so"));
    assert!(
        path.exists(),
        "{} is missing: the benches dispatch to the real plugin libraries of this profile; \
         build them first with `cargo build --release --workspace` (see benches/README.md)",
        path.display()
    );
    let mut plugin = loader::load(&path, &Trust::AllowUnsigned).unwrap_or_else(|e| panic!("{e}"));
    let host = HostServices_TO::from_ptr(RArc::new(NoopHost), TD_Opaque);
    if let RResult::RErr(e) = plugin.instance.init(host) {
        panic!("{}: init failed: {e}", path.display());
    }
    plugin
}
