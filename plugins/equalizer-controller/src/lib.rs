//! EqualizerController 1.0: band levels and modes of the device's equalizer, set by the cloud or by the
//! device's own controls, reported back to AVS with EqualizerChanged and kept across restarts and OTA swaps.

mod configuration;
mod equalizer;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventSpec, Handling, Host, HostApi, HostCell, Interface, LogLevel,
    Manifest, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use configuration::{Band, Configuration, Mode};
use equalizer::{BandLevel, Change, Equalizer, EqualizerState, CONFIGURATION_KEY, STATE_KEY};

const INTERFACE: &str = "EqualizerController";

/// The AVS Device SDK's default step when AdjustBands gives no levelDelta ("Alexa, raise the bass").
const DEFAULT_LEVEL_DELTA: i64 = 1;

#[derive(Deserialize)]
struct SetBands {
    bands: Vec<BandLevel>,
}

#[derive(Deserialize)]
struct AdjustBands {
    bands: Vec<BandAdjustment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BandAdjustment {
    name: Band,
    #[serde(default = "default_level_delta")]
    level_delta: i64,
    level_direction: Direction,
}

fn default_level_delta() -> i64 {
    DEFAULT_LEVEL_DELTA
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum Direction {
    Up,
    Down,
}

#[derive(Deserialize)]
struct ResetBands {
    bands: Vec<NamedBand>,
}

#[derive(Deserialize)]
struct NamedBand {
    name: Band,
}

#[derive(Deserialize)]
struct SetMode {
    mode: Mode,
}

/// `user.equalizer` host event: the device's own controls set band levels, a mode, or both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalChange {
    bands: Option<Vec<BandLevel>>,
    mode: Option<Mode>,
}

fn levels(bands: Vec<BandLevel>) -> Vec<(Band, i64)> {
    bands.into_iter().map(|b| (b.name, b.level)).collect()
}

fn parse<'a, T: Deserialize<'a>>(kind: &str, payload: &'a str) -> Result<T, PluginError> {
    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("{kind}: {e}")))
}

#[derive(Default)]
pub struct EqualizerController {
    host: HostCell,
    equalizer: Equalizer,
}

impl EqualizerController {
    fn apply(&mut self, changes: &[Change]) -> Result<(), PluginError> {
        self.equalizer.apply(self.host.get()?, changes)
    }

    fn directive_change(directive: &Directive<'_>) -> Result<Change, PluginError> {
        Ok(match directive.name {
            "SetBands" => Change::Set(levels(directive.payload::<SetBands>()?.bands)),
            "AdjustBands" => Change::Adjust(
                directive
                    .payload::<AdjustBands>()?
                    .bands
                    .into_iter()
                    .map(|b| {
                        let delta = match b.level_direction {
                            Direction::Up => b.level_delta,
                            Direction::Down => b.level_delta.saturating_neg(),
                        };
                        (b.name, delta)
                    })
                    .collect(),
            ),
            "ResetBands" => {
                Change::Reset(directive.payload::<ResetBands>()?.bands.into_iter().map(|b| b.name).collect())
            }
            "SetMode" => Change::SetMode(directive.payload::<SetMode>()?.mode),
            other => return Err(PluginError::unsupported(format!("EqualizerController 1.0 has no directive {other}"))),
        })
    }

    fn on_local_change(&mut self, payload: &str) -> Result<(), PluginError> {
        let local: LocalChange = parse("user.equalizer", payload)?;
        let mut changes = Vec::new();
        if let Some(bands) = local.bands.filter(|b| !b.is_empty()) {
            changes.push(Change::Set(levels(bands)));
        }
        if let Some(mode) = local.mode {
            changes.push(Change::SetMode(mode));
        }
        if changes.is_empty() {
            return Err(PluginError::invalid("user.equalizer names neither bands nor a mode"));
        }
        self.apply(&changes)
    }

    fn on_configuration(&mut self, payload: &str) -> Result<(), PluginError> {
        let configuration = Configuration::from_json(parse("capability.configuration", payload)?)?;
        self.equalizer.reconfigure(self.host.get()?, configuration)
    }
}

impl Interface for EqualizerController {
    fn manifest() -> Manifest {
        Manifest {
            // Non-blocking, no medium: the AVS Device SDK's EqualizerCapabilityAgent handles them at once.
            directives: ["SetBands", "AdjustBands", "ResetBands", "SetMode"]
                .into_iter()
                .map(DirectiveSpec::new)
                .collect(),
            // The cloud's idea of the equalizer must converge with the device's, even across a restart.
            events: vec![EventSpec::new("EqualizerChanged").must_deliver()],
            context: vec!["EqualizerState".into()],
            configurations: Some(Configuration::default().to_json()),
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.0")
        }
    }

    /// Restores the state against the configuration it was last fitted to; the host's
    /// `capability.configuration` follows and refits it if the device template changed.
    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        let configuration = match host.load::<Value>(CONFIGURATION_KEY).map(Configuration::from_json) {
            Some(Ok(configuration)) => configuration,
            Some(Err(e)) => {
                host.log(LogLevel::Warn, &format!("stored equalizer configuration ignored: {e}"));
                Configuration::default()
            }
            None => Configuration::default(),
        };
        let state = match host.load::<Value>(STATE_KEY).map(EqualizerState::from_json) {
            Some(Ok(state)) => state,
            Some(Err(e)) => {
                host.log(LogLevel::Warn, &format!("stored equalizer state ignored: {e}"));
                EqualizerState::default()
            }
            None => EqualizerState::default(),
        };
        self.equalizer = Equalizer::new(configuration, state);
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let change = Self::directive_change(&directive)?;
        self.apply(&[change])?;
        Ok(Handling::Completed)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "user.equalizer" => self.on_local_change(payload),
            "capability.configuration" => self.on_configuration(payload),
            _ => Ok(()),
        }
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "EqualizerState", self.equalizer.state().to_json())]
    }

    /// The configuration travels with the state: the next version must not clamp levels to its own
    /// default range before the host re-sends the device's configuration.
    fn export_state(&self) -> Value {
        json!({"configuration": self.equalizer.configuration().to_json(), "state": self.equalizer.state().to_json()})
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        let Value::Object(mut exported) = state else {
            return Err(PluginError::invalid("equalizer state: not an object"));
        };
        let configuration = match exported.remove("configuration") {
            Some(value) => Configuration::from_json(value)?,
            None => self.equalizer.configuration().clone(),
        };
        let state = EqualizerState::from_json(exported.remove("state").unwrap_or(Value::Null))?;
        self.equalizer = Equalizer::new(configuration, state);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directive<'a>(name: &'a str, payload: &'a str) -> Directive<'a> {
        Directive { name, message_id: "m-1", dialog_request_id: None, payload }
    }

    #[test]
    fn manifest_publishes_the_sdk_default_configuration() {
        let m = EqualizerController::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("EqualizerController", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-equalizer-controller");
        crate::schema_check::assert_valid("capability.json", m.configurations.as_ref().unwrap());
        assert!(m.directives.iter().all(|d| !d.blocking && d.channel.is_none()));
        assert!(m.events.iter().all(|e| e.must_deliver));
        assert_eq!(m.context, ["EqualizerState"]);
    }

    #[test]
    fn adjust_bands_takes_the_direction_and_defaults_the_delta_to_one() {
        let payload = r#"{"bands": [{"name": "BASS", "levelDirection": "DOWN", "levelDelta": 3},
                                    {"name": "TREBLE", "levelDirection": "UP"}]}"#;
        let change = EqualizerController::directive_change(&directive("AdjustBands", payload)).unwrap();
        assert_eq!(change, Change::Adjust(vec![(Band::Bass, -3), (Band::Treble, 1)]));
        let no_direction = r#"{"bands": [{"name": "BASS", "levelDelta": 3}]}"#;
        assert!(EqualizerController::directive_change(&directive("AdjustBands", no_direction)).is_err());
    }

    #[test]
    fn directives_parse_into_changes_and_unknown_ones_are_unsupported() {
        let reset =
            EqualizerController::directive_change(&directive("ResetBands", r#"{"bands": [{"name": "MIDRANGE"}]}"#));
        assert_eq!(reset.unwrap(), Change::Reset(vec![Band::Midrange]));
        let mode = EqualizerController::directive_change(&directive("SetMode", r#"{"mode": "TV"}"#));
        assert_eq!(mode.unwrap(), Change::SetMode(Mode::Tv));
        let bad_band = directive("SetBands", r#"{"bands": [{"name": "SUBWOOFER", "level": 1}]}"#);
        assert!(matches!(EqualizerController::directive_change(&bad_band), Err(PluginError::Invalid(_))));
        assert!(matches!(
            EqualizerController::directive_change(&directive("SetLoudness", "{}")),
            Err(PluginError::Unsupported(_))
        ));
    }

    #[test]
    fn local_changes_need_bands_or_a_mode() {
        let mut eq = EqualizerController::default();
        assert!(eq.on_host_event("user.equalizer", "{}").is_err());
        assert!(eq.on_host_event("user.equalizer", r#"{"bands": []}"#).is_err());
        assert!(eq.on_host_event("user.equalizer", r#"{"volume": 3}"#).is_err());
        assert!(eq.on_host_event("user.unrelated", "not json").is_ok(), "other host events are not ours");
    }

    #[test]
    fn a_bad_configuration_is_refused() {
        let mut eq = EqualizerController::default();
        let inverted = r#"{"bands": {"supported": [{"name": "BASS"}], "range": {"minimum": 1, "maximum": -1}}}"#;
        assert!(matches!(eq.on_host_event("capability.configuration", inverted), Err(PluginError::Invalid(_))));
    }

    #[test]
    fn state_and_configuration_round_trip_through_export_and_import() {
        let mut a = EqualizerController::default();
        let exported = json!({
            "configuration": {"bands": {"supported": [{"name": "BASS"}], "range": {"minimum": -10, "maximum": 10}},
                              "modes": {"supported": [{"name": "MUSIC"}]}},
            "state": {"bands": [{"name": "BASS", "level": 9}], "mode": "MUSIC"}
        });
        a.import_state(exported.clone()).unwrap();
        assert_eq!(a.export_state(), exported, "a level outside the default range survives the swap");
        let mut b = EqualizerController::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.equalizer.state(), a.equalizer.state());
        assert!(b.import_state(json!({"state": {"bands": "loud"}})).is_err());
        assert_eq!(b.equalizer.state(), a.equalizer.state(), "a rejected import leaves the state alone");
    }

    #[test]
    fn context_reports_the_equalizer_state() {
        let eq = EqualizerController::default();
        let context = eq.context();
        crate::schema_check::assert_valid("context/EqualizerState.json", &context[0]["payload"]);
        assert_eq!(context[0]["header"], json!({"namespace": "EqualizerController", "name": "EqualizerState"}));
        assert_eq!(context[0]["payload"]["bands"][1], json!({"name": "MIDRANGE", "level": 0}));
        assert!(context[0]["payload"].get("mode").is_none(), "no mode is reported as none");
    }
}
