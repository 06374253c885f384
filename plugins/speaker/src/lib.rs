//! Speaker 1.0: the device volume and mute, set by the cloud or by local buttons, reported back to AVS
//! and kept across restarts and OTA swaps.

#[cfg(test)]
mod schema_check;
mod volume;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventSpec, Handling, Host, HostApi, HostCell, Interface, Manifest,
    PluginError,
};
use serde::Deserialize;
use serde_json::Value;

use volume::{Change, VolumeState, STATE_KEY};

const INTERFACE: &str = "Speaker";

#[derive(Deserialize)]
struct VolumePayload {
    volume: i64,
}

#[derive(Deserialize)]
struct MutePayload {
    mute: bool,
}

/// `user.volume` host event: a local button sets the volume or the mute (or both).
#[derive(Deserialize)]
struct LocalChange {
    volume: Option<i64>,
    mute: Option<bool>,
}

#[derive(Default)]
pub struct Speaker {
    host: HostCell,
    speaker: volume::Speaker,
}

impl Speaker {
    fn apply(&mut self, change: Change) -> Result<(), PluginError> {
        let host = self.host.get()?;
        self.speaker.apply(host, change)
    }
}

impl Interface for Speaker {
    fn manifest() -> Manifest {
        Manifest {
            // Non-blocking, no medium: the AVS Device SDK's SpeakerManager handles them at once.
            directives: ["SetVolume", "AdjustVolume", "SetMute"].into_iter().map(DirectiveSpec::new).collect(),
            // The cloud's idea of the volume must converge with the device's, even across a restart.
            events: ["VolumeChanged", "MuteChanged"].into_iter().map(|e| EventSpec::new(e).must_deliver()).collect(),
            context: vec!["VolumeState".into()],
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.0")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(state) = host.load::<VolumeState>(STATE_KEY) {
            self.speaker = volume::Speaker::new(state);
        }
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let change = match directive.name {
            "SetVolume" => Change::Set(directive.payload::<VolumePayload>()?.volume),
            "AdjustVolume" => Change::Adjust(directive.payload::<VolumePayload>()?.volume),
            "SetMute" => Change::Mute(directive.payload::<MutePayload>()?.mute),
            other => return Err(PluginError::unsupported(format!("Speaker 1.0 has no directive {other}"))),
        };
        self.apply(change)?;
        Ok(Handling::Completed)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "user.volume" {
            return Ok(());
        }
        let local: LocalChange =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("user.volume: {e}")))?;
        if local.volume.is_none() && local.mute.is_none() {
            return Err(PluginError::invalid("user.volume names neither volume nor mute"));
        }
        if let Some(volume) = local.volume {
            self.apply(Change::Set(volume))?;
        }
        if let Some(mute) = local.mute {
            self.apply(Change::Mute(mute))?;
        }
        Ok(())
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "VolumeState", self.speaker.state().to_json())]
    }

    fn export_state(&self) -> Value {
        self.speaker.state().to_json()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        let state: VolumeState =
            serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        self.speaker = volume::Speaker::new(state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn state_round_trips_through_export_and_import() {
        let mut a = Speaker::default();
        a.import_state(json!({"volume": 12, "muted": true})).unwrap();
        let mut b = Speaker::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.speaker.state(), VolumeState { volume: 12, muted: true });
        assert!(b.import_state(json!({"volume": "loud"})).is_err());
        assert_eq!(b.speaker.state().volume, 12, "a rejected import leaves the state alone");
    }

    #[test]
    fn context_reports_volume_state() {
        let mut s = Speaker::default();
        s.import_state(json!({"volume": 64, "muted": false})).unwrap();
        crate::schema_check::assert_valid("context/VolumeState.json", &s.context()[0]["payload"]);
        assert_eq!(
            s.context(),
            [
                json!({"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"volume": 64, "muted": false}})
            ]
        );
    }

    #[test]
    fn manifest_declares_the_speaker_interface() {
        let m = Speaker::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("Speaker", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-speaker");
        assert!(m.events.iter().all(|e| e.must_deliver));
        assert_eq!(m.context, ["VolumeState"]);
    }

    #[test]
    fn local_buttons_need_a_volume_or_a_mute() {
        let mut s = Speaker::default();
        assert!(s.on_host_event("user.volume", "{}").is_err());
        assert!(s.on_host_event("user.volume", r#"{"volume": "up"}"#).is_err());
        assert!(s.on_host_event("user.unrelated", "not json").is_ok(), "other host events are not ours");
    }
}
