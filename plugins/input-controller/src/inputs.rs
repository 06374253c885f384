//! The device's inputs and which one is selected. Plain Rust over [`HostApi`]: the selection is
//! persisted, and SelectInput has no event or context to report it (see the SelectInput schema).

use avs_plugin_sdk::{HostApi, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The storage key of the persisted selection.
pub const SELECTED_KEY: &str = "selected";

/// The storage key of the last configuration the host gave: the selection is restored against it on
/// start-up, before the host sends the configuration again.
pub const CONFIGURATION_KEY: &str = "configuration";

/// One entry of the capability's `inputs`; friendlyNames are the user's words for it (Alexa.InputController
/// 3.0 in the AVS docs), kept so that the configuration round-trips.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Input {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub friendly_names: Vec<String>,
}

/// The capability's `configurations` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Configuration {
    pub inputs: Vec<Input>,
}

impl Default for Configuration {
    /// A small set most audio products have, until the device template says otherwise.
    fn default() -> Self {
        let inputs = ["HDMI 1", "HDMI 2", "AUX 1"]
            .into_iter()
            .map(|name| Input { name: name.into(), friendly_names: Vec::new() })
            .collect();
        Configuration { inputs }
    }
}

impl Configuration {
    /// Like the AVS Device SDK (acsdkInputController checkInputs), an empty list and a friendly name given
    /// to two inputs are refused; so are blank and repeated names, which SelectInput could not tell apart.
    pub fn from_json(value: Value) -> Result<Self, PluginError> {
        let config: Configuration = serde_json::from_value(value)
            .map_err(|e| PluginError::invalid(format!("InputController configurations: {e}")))?;
        if config.inputs.is_empty() {
            return Err(PluginError::invalid("InputController configurations: no inputs"));
        }
        for (i, input) in config.inputs.iter().enumerate() {
            if input.name.trim().is_empty() {
                return Err(PluginError::invalid("InputController configurations: an input has no name"));
            }
            if config.inputs[..i].iter().any(|other| other.name == input.name) {
                return Err(PluginError::invalid(format!(
                    "InputController configurations: input {:?} is listed twice",
                    input.name
                )));
            }
            let earlier_friendly = config.inputs[..i].iter().flat_map(|other| &other.friendly_names);
            if let Some(shared) = earlier_friendly.into_iter().find(|name| input.friendly_names.contains(name)) {
                return Err(PluginError::invalid(format!(
                    "InputController configurations: friendly name {shared:?} is given to two inputs"
                )));
            }
        }
        Ok(config)
    }

    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).expect("a configuration always serialises")
    }

    fn has(&self, name: &str) -> bool {
        self.inputs.iter().any(|input| input.name == name)
    }
}

#[derive(Debug, Default)]
pub struct Inputs {
    configuration: Configuration,
    selected: Option<String>,
}

impl Inputs {
    /// A persisted or imported selection that the configuration no longer lists is dropped.
    pub fn new(configuration: Configuration, selected: Option<String>) -> Self {
        let selected = selected.filter(|name| configuration.has(name));
        Inputs { configuration, selected }
    }

    pub fn configuration(&self) -> &Configuration {
        &self.configuration
    }

    pub fn selected(&self) -> Option<&str> {
        self.selected.as_deref()
    }

    /// Selects `input`, which must be configured (matched exactly, as the AVS Device SDK does), and
    /// persists the choice before it takes effect.
    pub fn select(&mut self, host: &impl HostApi, input: &str) -> Result<(), PluginError> {
        if !self.configuration.has(input) {
            return Err(PluginError::invalid(format!("input {input:?} is not one of this device's inputs")));
        }
        host.store(SELECTED_KEY, &Value::from(input))?;
        self.selected = Some(input.to_string());
        Ok(())
    }

    /// Adopts a new configuration, persistently; a selection it no longer lists is cleared.
    pub fn reconfigure(&mut self, host: &impl HostApi, configuration: Configuration) -> Result<(), PluginError> {
        let selected = self.selected.clone().filter(|name| configuration.has(name));
        if configuration != self.configuration {
            host.store(CONFIGURATION_KEY, &configuration.to_json())?;
        }
        if selected != self.selected {
            host.store(SELECTED_KEY, &Value::Null)?;
        }
        self.configuration = configuration;
        self.selected = selected;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::FakeHost;
    use serde_json::json;

    use super::*;
    use crate::schema_check::SCHEMAS;

    fn configured(names: &[&str]) -> Configuration {
        Configuration::from_json(json!({"inputs": names.iter().map(|n| json!({"name": n})).collect::<Vec<_>>()}))
            .unwrap()
    }

    #[test]
    fn selecting_a_configured_input_persists_it() {
        let host = FakeHost::new(SCHEMAS);
        let mut inputs = Inputs::default();
        inputs.select(&host, "HDMI 2").unwrap();
        assert_eq!(inputs.selected(), Some("HDMI 2"));
        assert_eq!(host.stores(), [(SELECTED_KEY.to_string(), json!("HDMI 2"))]);
    }

    #[test]
    fn an_input_that_is_not_configured_is_refused() {
        let host = FakeHost::new(SCHEMAS);
        let mut inputs = Inputs::new(configured(&["HDMI 1"]), Some("HDMI 1".into()));
        for wrong in ["HDMI 3", "hdmi 1", ""] {
            let err = inputs.select(&host, wrong).unwrap_err();
            assert!(matches!(err, PluginError::Invalid(_)), "{wrong:?}: {err:?}");
        }
        assert_eq!(inputs.selected(), Some("HDMI 1"));
        assert!(host.stores().is_empty());
    }

    #[test]
    fn a_selection_that_cannot_be_persisted_is_not_made() {
        let failing = FakeHost::new(SCHEMAS).failing_store();
        let mut inputs = Inputs::default();
        assert!(inputs.select(&failing, "AUX 1").is_err());
        assert_eq!(inputs.selected(), None);
    }

    #[test]
    fn a_new_configuration_clears_a_selection_it_no_longer_lists() {
        let host = FakeHost::new(SCHEMAS);
        let mut inputs = Inputs::new(configured(&["HDMI 1", "TV"]), Some("TV".into()));
        inputs.reconfigure(&host, configured(&["TV", "PHONO"])).unwrap();
        assert_eq!(inputs.selected(), Some("TV"));
        assert_eq!(
            host.stores(),
            [(CONFIGURATION_KEY.to_string(), configured(&["TV", "PHONO"]).to_json())],
            "the configuration is persisted for the next start-up, the unchanged selection is not"
        );
        inputs.reconfigure(&host, configured(&["PHONO"])).unwrap();
        assert_eq!(inputs.selected(), None);
        assert_eq!(host.stores().last().unwrap(), &(SELECTED_KEY.to_string(), Value::Null));
        inputs.reconfigure(&host, configured(&["PHONO"])).unwrap();
        assert_eq!(host.stores().len(), 3, "nothing to persist when nothing changed");
    }

    #[test]
    fn configurations_need_distinct_named_inputs() {
        assert!(Configuration::from_json(json!({"inputs": []})).is_err());
        assert!(Configuration::from_json(json!({"inputs": [{"name": " "}]})).is_err());
        assert!(Configuration::from_json(json!({"inputs": [{"name": "CD"}, {"name": "CD"}]})).is_err());
        let shared = json!({"inputs": [{"name": "HDMI 1", "friendlyNames": ["TV"]}, {"name": "HDMI 2", "friendlyNames": ["TV"]}]});
        assert!(Configuration::from_json(shared).is_err());
        let with_friendly = json!({"inputs": [{"name": "HDMI 1", "friendlyNames": ["TV", "Television"]}]});
        crate::schema_check::assert_valid("capability.json", &with_friendly);
        assert_eq!(Configuration::from_json(with_friendly.clone()).unwrap().to_json(), with_friendly);
    }

    #[test]
    fn the_default_configuration_is_valid() {
        crate::schema_check::assert_valid("capability.json", &Configuration::default().to_json());
        assert!(Configuration::from_json(Configuration::default().to_json()).is_ok());
    }

    #[test]
    fn a_restored_selection_must_still_be_configured() {
        assert_eq!(Inputs::new(configured(&["CD"]), Some("DVD".into())).selected(), None);
    }
}
