//! Notifications 1.0: the indicator that tells the user new content is waiting — a visual indicator
//! (shown in the log on this headless device) kept across restarts and OTA swaps, and an audio chime
//! played on the Alert channel.

mod chime;
mod indicator;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, FocusState, Handling, Host, HostApi, HostCell, Interface, Manifest,
    MediaEvent, PluginError,
};
use serde::Deserialize;
use serde_json::Value;

use chime::{Asset, Chime, CHANNEL};
use indicator::{Indicator, IndicatorState, STATE_KEY};

const INTERFACE: &str = "Notifications";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetIndicator {
    persist_visual_indicator: bool,
    play_audio_indicator: bool,
    asset: Option<Asset>,
}

#[derive(Default)]
pub struct Notifications {
    host: HostCell,
    indicator: Indicator,
    chime: Chime,
}

impl Notifications {
    fn set_indicator(&mut self, payload: SetIndicator) -> Result<(), PluginError> {
        // Checked before anything changes: a directive refused must leave no trace.
        let audio = match (payload.play_audio_indicator, payload.asset) {
            (true, Some(asset)) => Some(asset),
            (true, None) => return Err(PluginError::invalid("SetIndicator plays audio but names no asset")),
            (false, _) => None,
        };
        let host = self.host.get()?;
        self.indicator.set(host, payload.persist_visual_indicator)?;
        match audio {
            Some(asset) => self.chime.enqueue(host, asset),
            None => Ok(()),
        }
    }
}

impl Interface for Notifications {
    fn manifest() -> Manifest {
        Manifest {
            // Non-blocking, no medium: the AVS Device SDK handles both immediately and plays the chime
            // independently of the dialog.
            directives: vec![
                DirectiveSpec::new("SetIndicator").on_channel(CHANNEL),
                DirectiveSpec::new("ClearIndicator"),
            ],
            context: vec!["IndicatorState".into()],
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.0")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(state) = host.load::<IndicatorState>(STATE_KEY) {
            self.indicator = Indicator::new(state);
        }
        self.indicator.restore(&host);
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        match directive.name {
            "SetIndicator" => self.set_indicator(directive.payload()?)?,
            "ClearIndicator" => {
                let host = self.host.get()?;
                self.indicator.clear(host)?;
                self.chime.clear(host);
            }
            other => return Err(PluginError::unsupported(format!("Notifications 1.0 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel == CHANNEL {
            self.chime.on_focus(self.host.get()?, focus);
        }
        Ok(())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "media" {
            return Ok(());
        }
        let event = MediaEvent::parse(payload)?;
        self.chime.on_media(self.host.get()?, event.id, &event.state, event.error.as_deref());
        Ok(())
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "IndicatorState", self.indicator.state().to_json())]
    }

    fn export_state(&self) -> Value {
        self.indicator.state().to_json()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        let state: IndicatorState =
            serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        self.indicator = Indicator::new(state);
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let Ok(host) = self.host.get() {
            self.chime.clear(host);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn state_round_trips_through_export_and_import() {
        let mut a = Notifications::default();
        a.import_state(json!({"isEnabled": true, "isVisualIndicatorPersisted": true})).unwrap();
        let mut b = Notifications::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.indicator.state(), IndicatorState { is_enabled: true, is_visual_indicator_persisted: true });
        assert!(b.import_state(json!({"isEnabled": "yes"})).is_err());
        assert!(b.indicator.state().is_enabled, "a rejected import leaves the state alone");
    }

    #[test]
    fn context_reports_the_indicator_state() {
        let mut n = Notifications::default();
        n.import_state(json!({"isEnabled": true, "isVisualIndicatorPersisted": false})).unwrap();
        let context = n.context();
        crate::schema_check::assert_valid("context/IndicatorState.json", &context[0]["payload"]);
        assert_eq!(
            context,
            [json!({"header": {"namespace": "Notifications", "name": "IndicatorState"},
                    "payload": {"isEnabled": true, "isVisualIndicatorPersisted": false}})]
        );
    }

    #[test]
    fn set_indicator_with_audio_needs_an_asset_and_is_refused_before_any_change() {
        let mut n = Notifications::default();
        let payload = SetIndicator { persist_visual_indicator: true, play_audio_indicator: true, asset: None };
        assert!(matches!(n.set_indicator(payload), Err(PluginError::Invalid(_))));
        assert_eq!(n.indicator.state(), IndicatorState::default());
    }

    #[test]
    fn manifest_declares_two_directives_one_context_and_no_events() {
        let m = Notifications::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("Notifications", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-notifications");
        let names: Vec<&str> = m.directives.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["SetIndicator", "ClearIndicator"]);
        assert!(m.directives.iter().all(|d| !d.blocking));
        assert!(m.events.is_empty());
        assert_eq!(m.context, ["IndicatorState"]);
    }

    #[test]
    fn other_host_events_are_ignored() {
        let mut n = Notifications::default();
        assert!(n.on_host_event("user.button", "not json").is_ok());
        assert!(n.on_host_event("media", "not json").is_err());
    }
}
