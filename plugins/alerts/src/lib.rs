//! Alerts 1.3: timers, alarms and reminders set by the cloud, kept on the device (they survive a
//! restart and an OTA swap) and sounded at their time on the Alert channel whether or not the device
//! is connected, with the events AVS expects.

mod clock;
mod scheduler;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventSpec, FocusState, Handling, Host, HostApi, HostCell, Interface,
    Manifest, MediaEvent, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use scheduler::{Limits, Persisted, Scheduler, Token, CHANNEL, STATE_KEY};

const INTERFACE: &str = "Alerts";

#[derive(Deserialize)]
struct Tokens {
    tokens: Vec<String>,
}

#[derive(Deserialize)]
struct Volume {
    volume: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Configuration {
    maximum_alerts: Limits,
}

#[derive(Default)]
pub struct Alerts {
    host: HostCell,
    scheduler: Scheduler,
    /// The stored alerts are taken back with the first `device.info`, which comes after `init` on a
    /// start and after the state hand-over on an OTA swap — so that a new version never sounds an alert
    /// the old one is still sounding.
    restored: bool,
}

impl Alerts {
    fn take_over(&mut self, handed_over: &Value) -> Result<(), PluginError> {
        let host = self.host.get()?;
        self.restored = true;
        let persisted = host.load::<Persisted>(STATE_KEY).unwrap_or(Persisted { alerts: Vec::new(), volume: 50 });
        self.scheduler.take_over(host, persisted, handed_over, clock::now_ms())
    }
}

impl Interface for Alerts {
    fn manifest() -> Manifest {
        let directives = ["SetAlert", "DeleteAlert", "DeleteAlerts", "SetVolume", "AdjustVolume"];
        // Every Alerts event matters to the user's alarms in the cloud: none may be lost.
        let events = [
            "SetAlertSucceeded",
            "SetAlertFailed",
            "DeleteAlertSucceeded",
            "DeleteAlertFailed",
            "AlertStarted",
            "AlertStopped",
            "AlertEnteredForeground",
            "AlertEnteredBackground",
            "DeleteAlertsSucceeded",
            "DeleteAlertsFailed",
            "VolumeChanged",
        ];
        Manifest {
            directives: directives.into_iter().map(DirectiveSpec::new).collect(),
            events: events.into_iter().map(|e| EventSpec::new(e).must_deliver()).collect(),
            context: vec!["AlertsState".into()],
            configurations: Some(json!({"maximumAlerts": Limits::default()})),
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.3")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let host = self.host.get()?;
        let now = clock::now_ms();
        let s = &mut self.scheduler;
        match directive.name {
            "SetAlert" => s.set_alert(host, directive.payload, now)?,
            "DeleteAlert" => s.delete_alert(host, &directive.payload::<Token>()?.token, now)?,
            "DeleteAlerts" => s.delete_alerts(host, &directive.payload::<Tokens>()?.tokens, now)?,
            "SetVolume" => s.set_volume(host, directive.payload::<Volume>()?.volume)?,
            "AdjustVolume" => s.adjust_volume(host, directive.payload::<Volume>()?.volume)?,
            other => return Err(PluginError::unsupported(format!("Alerts 1.3 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel != CHANNEL {
            return Ok(());
        }
        self.scheduler.on_focus(self.host.get()?, focus, clock::now_ms())
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.scheduler.on_timer(self.host.get()?, timer, clock::now_ms())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        let host = self.host.get()?;
        let parse = |what: &str| PluginError::invalid(format!("{kind}: {what}"));
        match kind {
            "device.info" if !self.restored => self.take_over(&Value::Null),
            "media" => {
                let event = MediaEvent::parse(payload)?;
                self.scheduler.on_media(host, event.id, &event.state, clock::now_ms())
            }
            "user.stop" => self.scheduler.stop_by_user(host, clock::now_ms()),
            "capability.configuration" => {
                let configuration: Configuration = serde_json::from_str(payload).map_err(|e| parse(&e.to_string()))?;
                self.scheduler.set_limits(configuration.maximum_alerts);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "AlertsState", self.scheduler.context())]
    }

    fn export_state(&self) -> Value {
        self.scheduler.export()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.take_over(&state)
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let Ok(host) = self.host.get() {
            self.scheduler.stop(host);
        }
        Ok(())
    }
}
