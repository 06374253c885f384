//! What the device's equalizer supports: bands, their level range and named modes. Published as the
//! capability's `configurations` object and replaced by the `capability.configuration` host event.

use std::collections::BTreeSet;

use avs_plugin_sdk::PluginError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The bands AVS knows, in order from low to high frequencies (the AVS Device SDK reports them in this
/// order too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Band {
    Bass,
    Midrange,
    Treble,
}

/// The named presets AVS knows. "No mode" is the absence of one, never a value on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    Movie,
    Music,
    Night,
    Sport,
    Tv,
}

/// Band level bounds in dB, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    pub minimum: i64,
    pub maximum: i64,
}

impl Range {
    pub fn clamp(self, level: i64) -> i64 {
        level.clamp(self.minimum, self.maximum)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configuration {
    pub bands: BTreeSet<Band>,
    pub range: Range,
    pub modes: BTreeSet<Mode>,
}

/// The AVS Device SDK's default (InMemoryEqualizerConfiguration::createDefault): all three bands,
/// -6..6 dB, no modes.
impl Default for Configuration {
    fn default() -> Self {
        Configuration {
            bands: [Band::Bass, Band::Midrange, Band::Treble].into(),
            range: Range { minimum: -6, maximum: 6 },
            modes: BTreeSet::new(),
        }
    }
}

/// The wire shape of `configurations` (schemas/EqualizerController/1.0/capability.json).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    bands: WireBands,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modes: Option<WireModes>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireBands {
    supported: Vec<Named<Band>>,
    range: Range,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireModes {
    supported: Vec<Named<Mode>>,
}

#[derive(Serialize, Deserialize)]
struct Named<T> {
    name: T,
}

impl Configuration {
    pub fn from_json(value: Value) -> Result<Self, PluginError> {
        let wire: Wire = serde_json::from_value(value)
            .map_err(|e| PluginError::invalid(format!("EqualizerController configurations: {e}")))?;
        let range = wire.bands.range;
        if range.minimum > range.maximum {
            return Err(PluginError::invalid(format!(
                "EqualizerController configurations: range minimum {} above maximum {}",
                range.minimum, range.maximum
            )));
        }
        Ok(Configuration {
            bands: wire.bands.supported.into_iter().map(|b| b.name).collect(),
            range,
            modes: wire.modes.map(|m| m.supported.into_iter().map(|m| m.name).collect()).unwrap_or_default(),
        })
    }

    /// Like the AVS Device SDK, `modes` is left out when the device supports none.
    pub fn to_json(&self) -> Value {
        let wire = Wire {
            bands: WireBands { supported: self.bands.iter().map(|&name| Named { name }).collect(), range: self.range },
            modes: (!self.modes.is_empty())
                .then(|| WireModes { supported: self.modes.iter().map(|&name| Named { name }).collect() }),
        };
        serde_json::to_value(wire).expect("a configuration always serialises")
    }

    /// The level a band starts at and returns to on ResetBands: flat (0 dB), or the nearest level the
    /// range allows.
    pub fn default_level(&self) -> i64 {
        self.range.clamp(0)
    }

    pub fn check_band(&self, band: Band) -> Result<(), PluginError> {
        if self.bands.contains(&band) {
            Ok(())
        } else {
            Err(PluginError::invalid(format!("equalizer band {} is not supported by this device", name(band))))
        }
    }

    pub fn check_mode(&self, mode: Mode) -> Result<(), PluginError> {
        if self.modes.contains(&mode) {
            Ok(())
        } else {
            Err(PluginError::invalid(format!("equalizer mode {} is not supported by this device", name(mode))))
        }
    }
}

/// The AVS spelling of a band or mode, for messages.
pub fn name(value: impl Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn default_is_the_sdk_default_and_round_trips() {
        let default = Configuration::default();
        let wire = default.to_json();
        crate::schema_check::assert_valid("capability.json", &wire);
        assert_eq!(
            wire,
            json!({"bands": {"supported": [{"name": "BASS"}, {"name": "MIDRANGE"}, {"name": "TREBLE"}],
                              "range": {"minimum": -6, "maximum": 6}}})
        );
        assert_eq!(Configuration::from_json(wire).unwrap(), default);
    }

    #[test]
    fn modes_are_published_only_when_supported() {
        let wire = json!({"bands": {"supported": [{"name": "BASS"}], "range": {"minimum": -10, "maximum": 10}},
                          "modes": {"supported": [{"name": "NIGHT"}, {"name": "MOVIE"}]}});
        crate::schema_check::assert_valid("capability.json", &wire);
        let config = Configuration::from_json(wire).unwrap();
        assert_eq!(config.modes, [Mode::Movie, Mode::Night].into());
        assert_eq!(config.to_json()["modes"]["supported"], json!([{"name": "MOVIE"}, {"name": "NIGHT"}]));
        assert!(config.check_mode(Mode::Tv).is_err());
        assert!(config.check_band(Band::Treble).is_err());
    }

    #[test]
    fn nonsense_configurations_are_refused() {
        let inverted = json!({"bands": {"supported": [], "range": {"minimum": 3, "maximum": -3}}});
        assert!(Configuration::from_json(inverted).is_err());
        let unknown_band =
            json!({"bands": {"supported": [{"name": "SUBWOOFER"}], "range": {"minimum": 0, "maximum": 1}}});
        assert!(Configuration::from_json(unknown_band).is_err());
        assert!(Configuration::from_json(json!({"modes": {"supported": []}})).is_err());
    }

    #[test]
    fn default_level_is_flat_unless_the_range_excludes_it() {
        let mut config = Configuration::default();
        assert_eq!(config.default_level(), 0);
        config.range = Range { minimum: 2, maximum: 8 };
        assert_eq!(config.default_level(), 2);
    }
}
