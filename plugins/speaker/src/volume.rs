//! The Speaker state machine: volume and mute, the event that confirms each change, and persistence.
//! Plain Rust over [`HostApi`], so that it is tested without a runtime.

use avs_plugin_sdk::{HostApi, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The storage key of the persisted [`VolumeState`].
pub const STATE_KEY: &str = "state";

/// AVS volume scale.
const MAX_VOLUME: i64 = 100;

/// The Speaker.VolumeState context payload, and also the VolumeChanged/MuteChanged payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeState {
    pub volume: u8,
    pub muted: bool,
}

impl Default for VolumeState {
    fn default() -> Self {
        VolumeState { volume: 50, muted: false }
    }
}

impl VolumeState {
    /// A persisted or imported state written by an older or buggy version may be out of range.
    pub fn sanitised(self) -> Self {
        VolumeState { volume: self.volume.min(MAX_VOLUME as u8), ..self }
    }

    pub fn to_json(self) -> Value {
        serde_json::json!({"volume": self.volume, "muted": self.muted})
    }
}

/// One requested change, from a directive or a local button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Set(i64),
    Adjust(i64),
    Mute(bool),
}

impl Change {
    /// The event that confirms the change to AVS.
    pub fn event(self) -> &'static str {
        match self {
            Change::Mute(_) => "MuteChanged",
            Change::Set(_) | Change::Adjust(_) => "VolumeChanged",
        }
    }
}

#[derive(Debug, Default)]
pub struct Speaker {
    state: VolumeState,
}

impl Speaker {
    pub fn new(state: VolumeState) -> Self {
        Speaker { state: state.sanitised() }
    }

    pub fn state(&self) -> VolumeState {
        self.state
    }

    /// Applies `change`, persists the result, then confirms it. The event goes out even when nothing
    /// changed: it is how AVS learns that the directive took effect.
    ///
    /// A volume change also unmutes, without a MuteChanged: the AVS Device SDK's SpeakerManager does
    /// the same (users expect "volume up" to make the device audible).
    pub fn apply(&mut self, host: &impl HostApi, change: Change) -> Result<(), PluginError> {
        let mut next = self.state;
        match change {
            Change::Set(volume) => {
                next.volume = volume.clamp(0, MAX_VOLUME) as u8;
                next.muted = false;
            }
            Change::Adjust(delta) => {
                next.volume = i64::from(next.volume).saturating_add(delta).clamp(0, MAX_VOLUME) as u8;
                next.muted = false;
            }
            Change::Mute(muted) => next.muted = muted,
        }
        // Persisted first: a change that would be lost on restart is refused rather than confirmed.
        host.store(STATE_KEY, &next)?;
        self.state = next;
        host.send_event(change.event(), &next).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use avs_plugin_sdk::testing::FakeHost;

    use super::*;
    use crate::schema_check::SCHEMAS;

    #[test]
    fn adjust_volume_clamps_to_0_100_and_confirms_each_time() {
        let host = FakeHost::new(SCHEMAS);
        let mut speaker = Speaker::new(VolumeState { volume: 90, muted: false });
        speaker.apply(&host, Change::Adjust(30)).unwrap();
        assert_eq!(speaker.state().volume, 100);
        speaker.apply(&host, Change::Adjust(-250)).unwrap();
        assert_eq!(speaker.state().volume, 0);
        speaker.apply(&host, Change::Adjust(i64::MIN)).unwrap();
        assert_eq!(speaker.state().volume, 0, "no overflow on absurd deltas");
        let events = host.events();
        assert_eq!(events.len(), 3, "an unchanged volume is still confirmed");
        assert_eq!(events[0], ("VolumeChanged".into(), json!({"volume": 100, "muted": false})));
        assert_eq!(events[1].1, json!({"volume": 0, "muted": false}));
    }

    #[test]
    fn set_volume_unmutes_without_a_mute_event() {
        let host = FakeHost::new(SCHEMAS);
        let mut speaker = Speaker::new(VolumeState { volume: 10, muted: true });
        speaker.apply(&host, Change::Set(40)).unwrap();
        assert_eq!(speaker.state(), VolumeState { volume: 40, muted: false });
        let events = host.events();
        assert_eq!(events.as_slice(), [("VolumeChanged".to_string(), json!({"volume": 40, "muted": false}))]);
    }

    #[test]
    fn mute_keeps_the_volume_and_reports_mute_changed() {
        let host = FakeHost::new(SCHEMAS);
        let mut speaker = Speaker::new(VolumeState { volume: 33, muted: false });
        speaker.apply(&host, Change::Mute(true)).unwrap();
        assert_eq!(host.events()[0], ("MuteChanged".into(), json!({"volume": 33, "muted": true})));
    }

    #[test]
    fn every_change_is_persisted_before_it_is_reported() {
        let host = FakeHost::new(SCHEMAS);
        let mut speaker = Speaker::default();
        speaker.apply(&host, Change::Set(7)).unwrap();
        assert_eq!(host.stores(), [(STATE_KEY.to_string(), json!({"volume": 7, "muted": false}))]);

        let failing = FakeHost::new(SCHEMAS).failing_store();
        assert!(speaker.apply(&failing, Change::Set(8)).is_err());
        assert!(failing.events().is_empty(), "a change that was not persisted is not confirmed");
        assert_eq!(speaker.state().volume, 7, "nor applied");
    }

    #[test]
    fn out_of_range_restored_state_is_clamped() {
        let speaker = Speaker::new(VolumeState { volume: 250, muted: true });
        assert_eq!(speaker.state(), VolumeState { volume: 100, muted: true });
    }
}
