//! Test fixture: the real Speaker 1.0, except that its VolumeState context reports a volume of 150,
//! which its own schema (0–100) forbids — the OTA self-test must catch it before it serves.

use avs_plugin_sdk::{context_entry, Directive, Handling, Host, Interface, Manifest, PluginError};
use avs_speaker_plugin::Speaker;
use serde_json::{json, Value};

#[derive(Default)]
pub struct InconsistentSpeaker(Speaker);

impl Interface for InconsistentSpeaker {
    fn manifest() -> Manifest {
        Manifest { plugin: env!("CARGO_PKG_NAME").into(), ..Speaker::manifest() }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.0.init(host)
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        self.0.handle_directive(directive)
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry("Speaker", "VolumeState", json!({"volume": 150, "muted": false}))]
    }
}

avs_plugin_sdk::export_plugin!(InconsistentSpeaker, "$CARGO_MANIFEST_DIR/../../../schemas/Speaker/1.0");
