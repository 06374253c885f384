//! Speaker 1.0: the device volume and mute, set by the cloud or by local buttons, reported back to AVS
//! and kept across restarts and OTA swaps.

use avs_plugin_sdk::{
    context_entry, export_plugin, Directive, DirectiveSpec, EventSpec, Handling, Host, Interface, Manifest, PluginError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const INTERFACE: &str = "Speaker";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct VolumeState {
    volume: u8,
    muted: bool,
}

impl Default for VolumeState {
    fn default() -> Self {
        VolumeState { volume: 50, muted: false }
    }
}

impl VolumeState {
    /// Applies a directive or a local button; returns the event that confirms it. AVS expects the event
    /// even when the value did not change: it is how the cloud learns the directive took effect.
    fn apply(&mut self, change: Change) -> &'static str {
        match change {
            Change::Set(volume) => self.volume = volume.clamp(0, 100) as u8,
            Change::Adjust(delta) => self.volume = (self.volume as i64 + delta).clamp(0, 100) as u8,
            Change::Mute(muted) => self.muted = muted,
        }
        match change {
            Change::Mute(_) => "MuteChanged",
            Change::Set(_) | Change::Adjust(_) => "VolumeChanged",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Change {
    Set(i64),
    Adjust(i64),
    Mute(bool),
}

#[derive(Deserialize)]
struct VolumePayload {
    volume: i64,
}

#[derive(Deserialize)]
struct MutePayload {
    mute: bool,
}

/// `user.volume` host event: a local button.
#[derive(Deserialize)]
struct LocalChange {
    volume: Option<i64>,
    mute: Option<bool>,
}

#[derive(Default)]
pub struct Speaker {
    host: Option<Host>,
    state: VolumeState,
}

impl Speaker {
    fn host(&self) -> Result<&Host, PluginError> {
        self.host.as_ref().ok_or_else(|| PluginError::internal("not initialised"))
    }

    fn change(&mut self, change: Change) -> Result<(), PluginError> {
        let event = self.state.apply(change);
        let host = self.host()?;
        host.store("state", &self.state)?;
        host.send_event(event, &self.state)?;
        Ok(())
    }
}

impl Interface for Speaker {
    fn manifest() -> Manifest {
        Manifest {
            interface: INTERFACE.into(),
            version: "1.0".into(),
            plugin: env!("CARGO_PKG_NAME").into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            directives: ["SetVolume", "AdjustVolume", "SetMute"].into_iter().map(DirectiveSpec::new).collect(),
            events: ["VolumeChanged", "MuteChanged"].into_iter().map(|e| EventSpec::new(e).must_deliver()).collect(),
            context: vec!["VolumeState".into()],
            configurations: None,
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(state) = host.load::<VolumeState>("state") {
            self.state = state;
        }
        self.host = Some(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let change = match directive.name {
            "SetVolume" => Change::Set(directive.payload::<VolumePayload>()?.volume),
            "AdjustVolume" => Change::Adjust(directive.payload::<VolumePayload>()?.volume),
            "SetMute" => Change::Mute(directive.payload::<MutePayload>()?.mute),
            other => return Err(PluginError::unsupported(format!("Speaker 1.0 has no directive {other}"))),
        };
        self.change(change)?;
        Ok(Handling::Completed)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "user.volume" {
            return Ok(());
        }
        let local: LocalChange =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("user.volume: {e}")))?;
        if let Some(volume) = local.volume {
            self.change(Change::Set(volume))?;
        }
        if let Some(mute) = local.mute {
            self.change(Change::Mute(mute))?;
        }
        Ok(())
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "VolumeState", json!(self.state))]
    }

    fn export_state(&self) -> Value {
        json!(self.state)
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.state = serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        Ok(())
    }
}

export_plugin!(Speaker, "$CARGO_MANIFEST_DIR/../../schemas/Speaker/1.0");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_changes_clamp_to_0_100_and_always_confirm() {
        let mut s = VolumeState { volume: 90, muted: false };
        assert_eq!(s.apply(Change::Adjust(30)), "VolumeChanged");
        assert_eq!(s.volume, 100);
        assert_eq!(s.apply(Change::Adjust(-250)), "VolumeChanged");
        assert_eq!(s.volume, 0);
        assert_eq!(s.apply(Change::Set(0)), "VolumeChanged", "unchanged still confirms");
        assert_eq!(s.apply(Change::Mute(true)), "MuteChanged");
        assert!(s.muted);
    }

    #[test]
    fn state_round_trips_through_export_and_import() {
        let a = Speaker { state: VolumeState { volume: 12, muted: true }, ..Speaker::default() };
        let mut b = Speaker::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.state, a.state);
        assert!(b.import_state(json!({"volume": "loud"})).is_err());
    }
}
