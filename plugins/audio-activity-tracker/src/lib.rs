//! AudioActivityTracker 1.0: context only. For each audio channel it reports the interface that last
//! used it and how long it has been idle, derived from the host's `focus.changed` events; AVS uses it to
//! decide what a request like "stop" refers to.

mod activity;
#[cfg(test)]
mod schema_check;

use std::time::Instant;

use avs_plugin_sdk::{context_entry, Directive, Handling, Host, Interface, Manifest, PluginError};
use serde::Deserialize;
use serde_json::Value;

use activity::{AudioActivity, Channel, Focus};

const INTERFACE: &str = "AudioActivityTracker";

/// `focus.changed` host event.
#[derive(Deserialize)]
struct FocusChanged {
    channel: String,
    interface: String,
    focus: Focus,
}

#[derive(Default)]
pub struct AudioActivityTracker {
    activity: AudioActivity,
}

impl AudioActivityTracker {
    fn on_focus_changed(&mut self, payload: &str, now: Instant) -> Result<(), PluginError> {
        let event: FocusChanged =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("focus.changed: {e}")))?;
        if event.interface.is_empty() {
            return Err(PluginError::invalid("focus.changed names no interface"));
        }
        if let Some(channel) = Channel::from_host(&event.channel) {
            self.activity.on_focus_changed(channel, &event.interface, event.focus, now);
        }
        Ok(())
    }

    fn context_at(&self, now: Instant) -> Vec<Value> {
        self.activity
            .payload(now)
            .map(|payload| context_entry(INTERFACE, "ActivityState", payload))
            .into_iter()
            .collect()
    }
}

impl Interface for AudioActivityTracker {
    fn manifest() -> Manifest {
        Manifest { context: vec!["ActivityState".into()], ..avs_plugin_sdk::manifest!(INTERFACE, "1.0") }
    }

    fn init(&mut self, _host: Host) -> Result<(), PluginError> {
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        Err(PluginError::unsupported(format!("AudioActivityTracker 1.0 has no directive {}", directive.name)))
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "focus.changed" => self.on_focus_changed(payload, Instant::now()),
            _ => Ok(()),
        }
    }

    fn context(&self) -> Vec<Value> {
        self.context_at(Instant::now())
    }

    fn export_state(&self) -> Value {
        self.activity.export(Instant::now())
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.activity = AudioActivity::import(state, Instant::now())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn manifest_declares_the_context_only() {
        let m = AudioActivityTracker::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("AudioActivityTracker", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-audio-activity-tracker");
        assert!(m.directives.is_empty() && m.events.is_empty() && m.configurations.is_none());
        assert_eq!(m.context, ["ActivityState"]);
    }

    #[test]
    fn focus_changes_become_the_activity_state_context() {
        let t0 = Instant::now();
        let mut tracker = AudioActivityTracker::default();
        assert!(tracker.context_at(t0).is_empty(), "no entry before any channel is used");
        let released = r#"{"channel": "Alert", "interface": "Alerts", "focus": "NONE"}"#;
        tracker.on_focus_changed(released, t0).unwrap();
        let visual = r#"{"channel": "Visual", "interface": "TemplateRuntime", "focus": "FOREGROUND"}"#;
        tracker.on_focus_changed(visual, t0).unwrap();
        let context = tracker.context_at(t0 + Duration::from_millis(40));
        crate::schema_check::assert_valid("context/ActivityState.json", &context[0]["payload"]);
        assert_eq!(
            context,
            [json!({"header": {"namespace": "AudioActivityTracker", "name": "ActivityState"},
                    "payload": {"alert": {"interface": "Alerts", "idleTimeInMilliseconds": 40}}})]
        );
    }

    #[test]
    fn malformed_focus_events_are_refused_and_other_host_events_ignored() {
        let mut tracker = AudioActivityTracker::default();
        let now = Instant::now();
        assert!(tracker.on_focus_changed(r#"{"channel": "Dialog", "interface": "X", "focus": "LOUD"}"#, now).is_err());
        assert!(tracker.on_focus_changed(r#"{"channel": "Dialog", "interface": "", "focus": "NONE"}"#, now).is_err());
        assert!(tracker.on_focus_changed(r#"{"channel": "Dialog"}"#, now).is_err());
        assert!(tracker.on_host_event("user.button", "not json").is_ok());
        assert!(tracker.context_at(now).is_empty());
    }

    #[test]
    fn directives_are_unsupported() {
        let mut tracker = AudioActivityTracker::default();
        let directive = Directive { name: "Anything", message_id: "m-1", dialog_request_id: None, payload: "{}" };
        assert!(matches!(tracker.handle_directive(directive), Err(PluginError::Unsupported(_))));
    }
}
