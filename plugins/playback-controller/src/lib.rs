//! PlaybackController 1.1: the device's own playback buttons and toggles, reported to AVS as events with
//! the device context (AVS answers with AudioPlayer directives). No directives, no context.

mod command;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{Directive, EventSpec, Handling, Host, HostCell, Interface, Manifest, PluginError};
use serde::Deserialize;

use command::{Action, Button, Command, Toggle};

#[derive(Deserialize)]
struct ButtonPress {
    name: Button,
}

#[derive(Deserialize)]
struct TogglePress {
    name: Toggle,
    action: Action,
}

fn parse<'a, T: Deserialize<'a>>(kind: &str, payload: &'a str) -> Result<T, PluginError> {
    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("{kind}: {e}")))
}

#[derive(Default)]
pub struct PlaybackController {
    host: HostCell,
}

impl Interface for PlaybackController {
    fn manifest() -> Manifest {
        Manifest {
            // Not must-deliver: a button pressed before a restart must not replay afterwards, against
            // whatever is playing by then.
            events: [
                "PlayCommandIssued",
                "PauseCommandIssued",
                "NextCommandIssued",
                "PreviousCommandIssued",
                "ButtonCommandIssued",
                "ToggleCommandIssued",
            ]
            .into_iter()
            .map(EventSpec::new)
            .collect(),
            ..avs_plugin_sdk::manifest!("PlaybackController", "1.1")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        Err(PluginError::unsupported(format!("PlaybackController 1.1 has no directive {}", directive.name)))
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        let command = match kind {
            "user.button" => Command::Button(parse::<ButtonPress>(kind, payload)?.name),
            "user.toggle" => {
                let toggle: TogglePress = parse(kind, payload)?;
                Command::Toggle(toggle.name, toggle.action)
            }
            _ => return Ok(()),
        };
        command.send(self.host.get()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_six_events_and_nothing_else() {
        let m = PlaybackController::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("PlaybackController", "1.1"));
        assert_eq!(m.plugin, "avs-plugin-playback-controller");
        assert_eq!(m.events.len(), 6);
        assert!(m.events.iter().all(|e| !e.must_deliver));
        assert!(m.directives.is_empty() && m.context.is_empty());
    }

    #[test]
    fn unknown_buttons_and_toggles_are_refused_and_other_host_events_ignored() {
        let mut p = PlaybackController::default();
        assert!(matches!(p.on_host_event("user.button", r#"{"name":"EJECT"}"#), Err(PluginError::Invalid(_))));
        assert!(matches!(
            p.on_host_event("user.toggle", r#"{"name":"LOOP","action":"FLIP"}"#),
            Err(PluginError::Invalid(_))
        ));
        assert!(matches!(p.on_host_event("user.toggle", r#"{"name":"LOOP"}"#), Err(PluginError::Invalid(_))));
        assert!(p.on_host_event("device.info", "{}").is_ok());
    }
}
