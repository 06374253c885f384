//! VisualActivityTracker 1.0: context only. While an interface holds the Visual channel (from the host's
//! `focus.changed` events) it is reported as `{"focused": {"interface": …}}`; otherwise there is no entry,
//! as in the AVS Device SDK.

#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{context_entry, Directive, Handling, Host, Interface, Manifest, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const INTERFACE: &str = "VisualActivityTracker";

/// `focus.changed` host event; only the Visual channel's concern this interface.
#[derive(Deserialize)]
struct FocusChanged {
    channel: String,
    interface: String,
    focus: Focus,
}

#[derive(Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Focus {
    Foreground,
    Background,
    None,
}

/// The ActivityState payload, also the state handed over on an OTA swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivityState {
    focused: Focused,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Focused {
    interface: String,
}

#[derive(Default)]
pub struct VisualActivityTracker {
    /// `None` while the Visual channel is idle.
    state: Option<ActivityState>,
}

impl VisualActivityTracker {
    fn on_focus_changed(&mut self, payload: &str) -> Result<(), PluginError> {
        let event: FocusChanged =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("focus.changed: {e}")))?;
        if event.interface.is_empty() {
            return Err(PluginError::invalid("focus.changed names no interface"));
        }
        if event.channel != "Visual" {
            return Ok(());
        }
        self.state = match event.focus {
            // BACKGROUND still counts: the SDK reports the channel's owner whenever its focus is not NONE.
            Focus::Foreground | Focus::Background => {
                Some(ActivityState { focused: Focused { interface: event.interface } })
            }
            Focus::None => None,
        };
        Ok(())
    }
}

impl Interface for VisualActivityTracker {
    fn manifest() -> Manifest {
        Manifest { context: vec!["ActivityState".into()], ..avs_plugin_sdk::manifest!(INTERFACE, "1.0") }
    }

    fn init(&mut self, _host: Host) -> Result<(), PluginError> {
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        Err(PluginError::unsupported(format!("VisualActivityTracker 1.0 has no directive {}", directive.name)))
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "focus.changed" => self.on_focus_changed(payload),
            _ => Ok(()),
        }
    }

    fn context(&self) -> Vec<Value> {
        self.state
            .iter()
            .map(|state| context_entry(INTERFACE, "ActivityState", serde_json::to_value(state).unwrap_or_default()))
            .collect()
    }

    fn export_state(&self) -> Value {
        serde_json::to_value(&self.state).unwrap_or_default()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.state = serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn focus(tracker: &mut VisualActivityTracker, channel: &str, interface: &str, focus: &str) {
        let payload = json!({"channel": channel, "interface": interface, "focus": focus}).to_string();
        tracker.on_host_event("focus.changed", &payload).unwrap();
    }

    #[test]
    fn manifest_declares_the_context_only() {
        let m = VisualActivityTracker::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("VisualActivityTracker", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-visual-activity-tracker");
        assert!(m.directives.is_empty() && m.events.is_empty() && m.configurations.is_none());
        assert_eq!(m.context, ["ActivityState"]);
    }

    #[test]
    fn reports_the_visual_channel_owner_until_it_lets_go() {
        let mut tracker = VisualActivityTracker::default();
        assert!(tracker.context().is_empty(), "nothing displayed, no entry");
        focus(&mut tracker, "Visual", "TemplateRuntime", "FOREGROUND");
        let context = tracker.context();
        crate::schema_check::assert_valid("context/ActivityState.json", &context[0]["payload"]);
        assert_eq!(
            context,
            [json!({"header": {"namespace": "VisualActivityTracker", "name": "ActivityState"},
                    "payload": {"focused": {"interface": "TemplateRuntime"}}})]
        );
        focus(&mut tracker, "Visual", "Alexa.Presentation.APL", "BACKGROUND");
        assert_eq!(tracker.context()[0]["payload"]["focused"]["interface"], "Alexa.Presentation.APL");
        focus(&mut tracker, "Visual", "Alexa.Presentation.APL", "NONE");
        assert!(tracker.context().is_empty());
    }

    #[test]
    fn audio_channels_are_not_ours() {
        let mut tracker = VisualActivityTracker::default();
        focus(&mut tracker, "Content", "AudioPlayer", "FOREGROUND");
        assert!(tracker.context().is_empty());
        focus(&mut tracker, "Visual", "TemplateRuntime", "FOREGROUND");
        focus(&mut tracker, "Dialog", "SpeechSynthesizer", "NONE");
        assert_eq!(tracker.context().len(), 1);
    }

    #[test]
    fn malformed_focus_events_are_refused_and_other_host_events_ignored() {
        let mut tracker = VisualActivityTracker::default();
        let bad_focus = r#"{"channel": "Visual", "interface": "TemplateRuntime", "focus": "HALF"}"#;
        assert!(matches!(tracker.on_host_event("focus.changed", bad_focus), Err(PluginError::Invalid(_))));
        let no_interface = r#"{"channel": "Visual", "interface": "", "focus": "FOREGROUND"}"#;
        assert!(tracker.on_host_event("focus.changed", no_interface).is_err());
        assert!(tracker.on_host_event("media", "not json").is_ok());
        assert!(tracker.context().is_empty());
    }

    #[test]
    fn state_round_trips_through_export_and_import() {
        let mut a = VisualActivityTracker::default();
        focus(&mut a, "Visual", "TemplateRuntime", "FOREGROUND");
        let mut b = VisualActivityTracker::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.context(), a.context());
        b.import_state(VisualActivityTracker::default().export_state()).unwrap();
        assert!(b.context().is_empty(), "an idle channel hands over as idle");
        a.import_state(json!({"focused": {"interface": "X", "extra": 1}})).unwrap_err();
        assert_eq!(
            a.context()[0]["payload"]["focused"]["interface"],
            "TemplateRuntime",
            "a rejected import changes nothing"
        );
    }
}
