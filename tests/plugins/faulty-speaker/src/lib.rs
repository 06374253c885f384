//! Test fixture: the real Speaker 1.0, except that `SetVolume` to 13 panics and `SetVolume` to 66 never
//! returns — the two ways a plugin call can go wrong that the runtime must survive.

use avs_plugin_sdk::{Directive, FocusState, Handling, Host, Interface, Manifest, PluginError};
use avs_speaker_plugin::Speaker;
use serde_json::Value;

#[derive(Default)]
pub struct FaultySpeaker(Speaker);

impl Interface for FaultySpeaker {
    fn manifest() -> Manifest {
        Manifest { plugin: env!("CARGO_PKG_NAME").into(), ..Speaker::manifest() }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.0.init(host)
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        if directive.name == "SetVolume" {
            let payload: Value = directive.payload()?;
            match payload["volume"].as_u64() {
                Some(13) => panic!("fault injected: SetVolume 13"),
                Some(66) => loop {
                    std::thread::park();
                },
                _ => {}
            }
        }
        self.0.handle_directive(directive)
    }

    fn cancel(&mut self, message_id: &str) -> Result<(), PluginError> {
        self.0.cancel(message_id)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        self.0.on_focus(channel, focus)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.0.on_timer(timer)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        self.0.on_host_event(kind, payload)
    }

    fn context(&self) -> Vec<Value> {
        self.0.context()
    }

    fn export_state(&self) -> Value {
        self.0.export_state()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.0.import_state(state)
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        self.0.shutdown()
    }
}

avs_plugin_sdk::export_plugin!(FaultySpeaker, "$CARGO_MANIFEST_DIR/../../../schemas/Speaker/1.0");
