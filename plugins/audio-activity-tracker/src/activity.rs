//! Which interface last used each audio channel, and for how long the channel has been idle. Time is
//! passed in as an [`Instant`] so that the tests decide what "now" is.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use avs_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The audio channels AVS wants reported, under their context keys (the AVS Device SDK lower-cases the
/// channel name). The Visual channel is VisualActivityTracker's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Dialog,
    Communications,
    Alert,
    Content,
}

impl Channel {
    /// The channel of a `focus.changed` event, or `None` for one this interface does not report.
    pub fn from_host(name: &str) -> Option<Channel> {
        match name {
            "Dialog" => Some(Channel::Dialog),
            "Communications" => Some(Channel::Communications),
            "Alert" => Some(Channel::Alert),
            "Content" => Some(Channel::Content),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Focus {
    Foreground,
    Background,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Usage {
    interface: String,
    /// When the channel went to NONE; `None` while the interface holds it.
    idle_since: Option<Instant>,
}

/// One channel's context entry, also the shape handed over on an OTA swap (with `active`).
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reported {
    interface: String,
    idle_time_in_milliseconds: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    active: bool,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AudioActivity {
    channels: BTreeMap<Channel, Usage>,
}

impl AudioActivity {
    /// Records a focus change of `channel`. SpeechRecognizer on the Dialog channel is not recorded: the
    /// AVS Device SDK's AudioActivityTracker skips it, as the focus-management requirements ask, so that
    /// the dialog entry names the interface that answered.
    pub fn on_focus_changed(&mut self, channel: Channel, interface: &str, focus: Focus, now: Instant) {
        if channel == Channel::Dialog && interface == "SpeechRecognizer" {
            return;
        }
        let idle_since = match focus {
            Focus::Foreground | Focus::Background => None,
            // A repeated NONE does not restart the idle clock.
            Focus::None => self.channels.get(&channel).and_then(|usage| usage.idle_since).or(Some(now)),
        };
        self.channels.insert(channel, Usage { interface: interface.to_string(), idle_since });
    }

    /// The ActivityState payload at `now`, or `None` while no channel has been used: the SDK then
    /// reports no state at all rather than an empty one.
    pub fn payload(&self, now: Instant) -> Option<Value> {
        (!self.channels.is_empty()).then(|| self.to_json(now, false))
    }

    /// The state handed to the next version on an OTA swap; idle times are relative, since an
    /// [`Instant`] means nothing outside this process.
    pub fn export(&self, now: Instant) -> Value {
        self.to_json(now, true)
    }

    pub fn import(state: Value, now: Instant) -> Result<Self, PluginError> {
        if state.is_null() {
            return Ok(AudioActivity::default());
        }
        let reported: BTreeMap<Channel, Reported> =
            serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("activity state: {e}")))?;
        let channels = reported
            .into_iter()
            .map(|(channel, r)| {
                let idle = Duration::from_millis(r.idle_time_in_milliseconds);
                let idle_since = (!r.active).then(|| now.checked_sub(idle).unwrap_or(now));
                (channel, Usage { interface: r.interface, idle_since })
            })
            .collect();
        Ok(AudioActivity { channels })
    }

    fn to_json(&self, now: Instant, with_activity: bool) -> Value {
        let reported: BTreeMap<Channel, Reported> = self
            .channels
            .iter()
            .map(|(&channel, usage)| {
                let idle = usage.idle_since.map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
                let reported = Reported {
                    interface: usage.interface.clone(),
                    idle_time_in_milliseconds: u64::try_from(idle.as_millis()).unwrap_or(u64::MAX),
                    active: with_activity && usage.idle_since.is_none(),
                };
                (channel, reported)
            })
            .collect();
        serde_json::to_value(reported).expect("activity always serialises")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn nothing_is_reported_before_any_channel_is_used() {
        assert_eq!(AudioActivity::default().payload(Instant::now()), None);
    }

    #[test]
    fn idle_time_is_zero_while_held_and_counts_from_the_release() {
        let t0 = Instant::now();
        let mut activity = AudioActivity::default();
        activity.on_focus_changed(Channel::Content, "AudioPlayer", Focus::Foreground, t0);
        activity.on_focus_changed(Channel::Content, "AudioPlayer", Focus::Background, t0 + ms(500));
        let held = activity.payload(t0 + ms(9_000)).unwrap();
        crate::schema_check::assert_valid("context/ActivityState.json", &held);
        assert_eq!(held, json!({"content": {"interface": "AudioPlayer", "idleTimeInMilliseconds": 0}}));

        activity.on_focus_changed(Channel::Content, "AudioPlayer", Focus::None, t0 + ms(10_000));
        let idle = activity.payload(t0 + ms(12_500)).unwrap();
        assert_eq!(idle["content"]["idleTimeInMilliseconds"], 2_500);
    }

    #[test]
    fn a_repeated_none_keeps_the_first_release_time() {
        let t0 = Instant::now();
        let mut activity = AudioActivity::default();
        activity.on_focus_changed(Channel::Alert, "Alerts", Focus::Foreground, t0);
        activity.on_focus_changed(Channel::Alert, "Alerts", Focus::None, t0 + ms(100));
        activity.on_focus_changed(Channel::Alert, "Alerts", Focus::None, t0 + ms(900));
        assert_eq!(activity.payload(t0 + ms(1_100)).unwrap()["alert"]["idleTimeInMilliseconds"], 1_000);
    }

    #[test]
    fn each_channel_names_its_last_interface_and_unused_ones_are_left_out() {
        let t0 = Instant::now();
        let mut activity = AudioActivity::default();
        activity.on_focus_changed(Channel::Dialog, "SpeechSynthesizer", Focus::Foreground, t0);
        activity.on_focus_changed(Channel::Dialog, "SpeechSynthesizer", Focus::None, t0 + ms(200));
        activity.on_focus_changed(Channel::Communications, "SipUserAgent", Focus::Foreground, t0 + ms(300));
        activity.on_focus_changed(Channel::Content, "AudioPlayer", Focus::Foreground, t0);
        activity.on_focus_changed(Channel::Content, "Bluetooth", Focus::Foreground, t0 + ms(400));
        let payload = activity.payload(t0 + ms(1_200)).unwrap();
        crate::schema_check::assert_valid("context/ActivityState.json", &payload);
        assert_eq!(
            payload,
            json!({
                "dialog": {"interface": "SpeechSynthesizer", "idleTimeInMilliseconds": 1_000},
                "communications": {"interface": "SipUserAgent", "idleTimeInMilliseconds": 0},
                "content": {"interface": "Bluetooth", "idleTimeInMilliseconds": 0}
            })
        );
    }

    #[test]
    fn speech_recognizer_on_the_dialog_channel_is_not_recorded() {
        let t0 = Instant::now();
        let mut activity = AudioActivity::default();
        activity.on_focus_changed(Channel::Dialog, "SpeechSynthesizer", Focus::None, t0);
        activity.on_focus_changed(Channel::Dialog, "SpeechRecognizer", Focus::Foreground, t0 + ms(50));
        let payload = activity.payload(t0 + ms(300)).unwrap();
        assert_eq!(payload["dialog"], json!({"interface": "SpeechSynthesizer", "idleTimeInMilliseconds": 300}));
    }

    #[test]
    fn export_and_import_keep_interfaces_activity_and_idle_times() {
        let t0 = Instant::now();
        let mut activity = AudioActivity::default();
        activity.on_focus_changed(Channel::Alert, "Alerts", Focus::None, t0);
        activity.on_focus_changed(Channel::Content, "AudioPlayer", Focus::Foreground, t0);
        let exported = activity.export(t0 + ms(700));
        assert_eq!(exported["content"]["active"], true);

        let t1 = t0 + ms(5_000);
        let imported = AudioActivity::import(exported, t1).unwrap();
        let payload = imported.payload(t1 + ms(300)).unwrap();
        assert_eq!(payload["alert"]["idleTimeInMilliseconds"], 1_000, "idle time continues from the export");
        assert_eq!(payload["content"]["idleTimeInMilliseconds"], 0, "an active channel stays active");
        assert_eq!(AudioActivity::import(Value::Null, t1).unwrap(), AudioActivity::default());
        assert!(AudioActivity::import(json!({"visual": {"interface": "X", "idleTimeInMilliseconds": 0}}), t1).is_err());
    }
}
