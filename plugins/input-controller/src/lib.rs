//! Alexa.InputController 3.0 (the only version AVS documents; avs-protocol.md called it InputController 1.0): the cloud selects one of the device's configured inputs (HDMI 1, AUX 1…). The
//! interface has one directive and, as documented, neither events nor context; the selection is kept
//! across restarts and OTA swaps.

mod inputs;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    Directive, DirectiveSpec, Handling, Host, HostApi, HostCell, Interface, LogLevel, Manifest, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use inputs::{Configuration, Inputs, CONFIGURATION_KEY, SELECTED_KEY};

const INTERFACE: &str = "Alexa.InputController";

#[derive(Deserialize)]
struct SelectInput {
    input: String,
}

#[derive(Default)]
pub struct InputController {
    host: HostCell,
    inputs: Inputs,
}

impl Interface for InputController {
    fn manifest() -> Manifest {
        Manifest {
            // Non-blocking, no medium, as in the AVS Device SDK's InputControllerCapabilityAgent.
            directives: vec![DirectiveSpec::new("SelectInput")],
            configurations: Some(Configuration::default().to_json()),
            ..avs_plugin_sdk::manifest!(INTERFACE, "3.0")
        }
    }

    /// Restores the selection against the configuration it was made in; the host's
    /// `capability.configuration` follows and clears it if the device template no longer lists it.
    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        let configuration = match host.load::<Value>(CONFIGURATION_KEY).map(Configuration::from_json) {
            Some(Ok(configuration)) => configuration,
            Some(Err(e)) => {
                host.log(LogLevel::Warn, &format!("stored input configuration ignored: {e}"));
                Configuration::default()
            }
            None => Configuration::default(),
        };
        let selected = host.load::<Option<String>>(SELECTED_KEY).flatten();
        self.inputs = Inputs::new(configuration, selected);
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        if directive.name != "SelectInput" {
            return Err(PluginError::unsupported(format!(
                "Alexa.InputController 3.0 has no directive {}",
                directive.name
            )));
        }
        let input = directive.payload::<SelectInput>()?.input;
        let host = self.host.get()?;
        self.inputs.select(host, &input)?;
        host.log(LogLevel::Info, &format!("input {input} selected"));
        Ok(Handling::Completed)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "capability.configuration" {
            return Ok(());
        }
        let value: Value = serde_json::from_str(payload)
            .map_err(|e| PluginError::invalid(format!("capability.configuration: {e}")))?;
        let configuration = Configuration::from_json(value)?;
        self.inputs.reconfigure(self.host.get()?, configuration)
    }

    /// The configuration travels with the selection: the next version must not drop a selection its
    /// default configuration lacks before the host re-sends the device's configuration.
    fn export_state(&self) -> Value {
        json!({"configuration": self.inputs.configuration().to_json(), "selected": self.inputs.selected()})
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        #[derive(Deserialize)]
        struct Exported {
            configuration: Option<Value>,
            selected: Option<String>,
        }
        let exported: Exported =
            serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("input state: {e}")))?;
        let configuration = match exported.configuration {
            Some(value) => Configuration::from_json(value)?,
            None => self.inputs.configuration().clone(),
        };
        self.inputs = Inputs::new(configuration, exported.selected);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_one_directive_and_nothing_to_report() {
        let m = InputController::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("Alexa.InputController", "3.0"));
        assert_eq!(m.plugin, "avs-plugin-input-controller");
        assert_eq!(m.directives.len(), 1);
        assert!(!m.directives[0].blocking);
        assert!(m.events.is_empty() && m.context.is_empty());
        crate::schema_check::assert_valid("capability.json", m.configurations.as_ref().unwrap());
    }

    #[test]
    fn unknown_directives_are_unsupported() {
        let mut ic = InputController::default();
        let directive = Directive { name: "NextInput", message_id: "m-1", dialog_request_id: None, payload: "{}" };
        assert!(matches!(ic.handle_directive(directive), Err(PluginError::Unsupported(_))));
    }

    #[test]
    fn a_bad_configuration_is_refused_and_other_host_events_ignored() {
        let mut ic = InputController::default();
        assert!(matches!(
            ic.on_host_event("capability.configuration", r#"{"inputs": []}"#),
            Err(PluginError::Invalid(_))
        ));
        assert!(ic.on_host_event("capability.configuration", "[").is_err());
        assert!(ic.on_host_event("user.button", "not json").is_ok());
    }

    #[test]
    fn selection_and_configuration_round_trip_through_export_and_import() {
        let mut a = InputController::default();
        let exported = json!({"configuration": {"inputs": [{"name": "PHONO"}, {"name": "CD"}]}, "selected": "CD"});
        a.import_state(exported.clone()).unwrap();
        assert_eq!(a.export_state(), exported, "an input outside the default configuration survives the swap");
        let mut b = InputController::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.inputs.selected(), Some("CD"));
        assert!(b.import_state(json!({"configuration": {"inputs": []}, "selected": "CD"})).is_err());
        assert_eq!(b.inputs.selected(), Some("CD"), "a rejected import leaves the state alone");
        assert!(b.context().is_empty());
    }
}
