//! The equalizer state machine: band levels and mode within the device's [`Configuration`], the
//! EqualizerChanged event that confirms each change, and persistence. Plain Rust over [`HostApi`].

use std::collections::BTreeMap;

use avs_plugin_sdk::{HostApi, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::configuration::{Band, Configuration, Mode};

/// The storage key of the persisted [`EqualizerState`].
pub const STATE_KEY: &str = "state";

/// The storage key of the last configuration the host gave: the state is restored against it on start-up,
/// before the host sends the configuration again.
pub const CONFIGURATION_KEY: &str = "configuration";

/// The level of every supported band and the current mode, if any. Its JSON form is both the
/// EqualizerState context payload and the EqualizerChanged payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EqualizerState {
    pub bands: BTreeMap<Band, i64>,
    pub mode: Option<Mode>,
}

#[derive(Serialize, Deserialize)]
pub struct BandLevel {
    pub name: Band,
    pub level: i64,
}

#[derive(Serialize, Deserialize)]
struct Wire {
    bands: Vec<BandLevel>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mode: Option<Mode>,
}

impl EqualizerState {
    pub fn to_json(&self) -> Value {
        let wire = Wire {
            bands: self.bands.iter().map(|(&name, &level)| BandLevel { name, level }).collect(),
            mode: self.mode,
        };
        serde_json::to_value(wire).expect("an equalizer state always serialises")
    }

    pub fn from_json(value: Value) -> Result<Self, PluginError> {
        let wire: Wire =
            serde_json::from_value(value).map_err(|e| PluginError::invalid(format!("equalizer state: {e}")))?;
        Ok(EqualizerState { bands: wire.bands.into_iter().map(|b| (b.name, b.level)).collect(), mode: wire.mode })
    }
}

/// One requested change, from a directive or the device's own controls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// SetBands: absolute levels.
    Set(Vec<(Band, i64)>),
    /// AdjustBands: signed deltas (levelDirection already applied).
    Adjust(Vec<(Band, i64)>),
    /// ResetBands: back to the default level.
    Reset(Vec<Band>),
    SetMode(Mode),
}

#[derive(Debug)]
pub struct Equalizer {
    configuration: Configuration,
    state: EqualizerState,
}

/// Flat levels on the default configuration's bands.
impl Default for Equalizer {
    fn default() -> Self {
        Equalizer::new(Configuration::default(), EqualizerState::default())
    }
}

impl Equalizer {
    pub fn new(configuration: Configuration, state: EqualizerState) -> Self {
        let state = fitted(&configuration, &state);
        Equalizer { configuration, state }
    }

    pub fn state(&self) -> &EqualizerState {
        &self.state
    }

    pub fn configuration(&self) -> &Configuration {
        &self.configuration
    }

    /// Adopts a new configuration: bands it drops are forgotten, bands it adds start at the default
    /// level, levels are clamped to its range and a mode it lacks is cleared. The configuration and the
    /// refitted state are persisted when they differ; no event, since AVS learns the new configuration
    /// from the capabilities.
    pub fn reconfigure(&mut self, host: &impl HostApi, configuration: Configuration) -> Result<(), PluginError> {
        let next = fitted(&configuration, &self.state);
        if configuration != self.configuration {
            host.store(CONFIGURATION_KEY, &configuration.to_json())?;
        }
        if next != self.state {
            host.store(STATE_KEY, &next.to_json())?;
        }
        self.configuration = configuration;
        self.state = next;
        Ok(())
    }

    /// Applies `changes` as one step: all are checked first, so a directive naming one unsupported band
    /// changes nothing. The result is persisted, then confirmed with one EqualizerChanged, which goes out
    /// even when nothing changed (the AVS Device SDK reports an unchanged state the same way).
    pub fn apply(&mut self, host: &impl HostApi, changes: &[Change]) -> Result<(), PluginError> {
        let mut next = self.state.clone();
        for change in changes {
            self.apply_one(&mut next, change)?;
        }
        // Persisted first: a change that would be lost on restart is refused rather than confirmed.
        host.store(STATE_KEY, &next.to_json())?;
        self.state = next;
        host.send_event("EqualizerChanged", &self.state.to_json()).map(drop)
    }

    fn apply_one(&self, next: &mut EqualizerState, change: &Change) -> Result<(), PluginError> {
        let config = &self.configuration;
        match change {
            Change::Set(levels) => {
                for &(band, level) in levels {
                    config.check_band(band)?;
                    next.bands.insert(band, config.range.clamp(level));
                }
            }
            Change::Adjust(deltas) => {
                for &(band, delta) in deltas {
                    config.check_band(band)?;
                    let level = next.bands.entry(band).or_insert_with(|| config.default_level());
                    *level = config.range.clamp(level.saturating_add(delta));
                }
            }
            Change::Reset(bands) => {
                for &band in bands {
                    config.check_band(band)?;
                    next.bands.insert(band, config.default_level());
                }
            }
            Change::SetMode(mode) => {
                config.check_mode(*mode)?;
                next.mode = Some(*mode);
            }
        }
        Ok(())
    }
}

/// `state` made to fit `configuration`; a persisted or imported state may come from another one.
fn fitted(configuration: &Configuration, state: &EqualizerState) -> EqualizerState {
    let bands = configuration
        .bands
        .iter()
        .map(|&band| {
            let level = state.bands.get(&band).copied().unwrap_or_else(|| configuration.default_level());
            (band, configuration.range.clamp(level))
        })
        .collect();
    let mode = state.mode.filter(|mode| configuration.modes.contains(mode));
    EqualizerState { bands, mode }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use avs_plugin_sdk::testing::FakeHost;

    use super::*;
    use crate::configuration::Range;
    use crate::schema_check::SCHEMAS;

    fn with_modes() -> Configuration {
        Configuration { modes: [Mode::Movie, Mode::Night].into(), ..Configuration::default() }
    }

    fn levels(eq: &Equalizer) -> Vec<i64> {
        eq.state().bands.values().copied().collect()
    }

    #[test]
    fn starts_flat_with_every_supported_band() {
        let eq = Equalizer::new(Configuration::default(), EqualizerState::default());
        assert_eq!(
            eq.state().to_json(),
            json!({"bands": [{"name": "BASS", "level": 0}, {"name": "MIDRANGE", "level": 0}, {"name": "TREBLE", "level": 0}]})
        );
    }

    #[test]
    fn set_bands_clamps_to_the_range_and_confirms() {
        let host = FakeHost::new(SCHEMAS);
        let mut eq = Equalizer::new(Configuration::default(), EqualizerState::default());
        eq.apply(&host, &[Change::Set(vec![(Band::Bass, 4), (Band::Treble, 40)])]).unwrap();
        assert_eq!(levels(&eq), [4, 0, 6]);
        let events = host.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].0, "EqualizerChanged");
        assert_eq!(events[0].1["bands"][2], json!({"name": "TREBLE", "level": 6}));
    }

    #[test]
    fn adjust_bands_moves_from_the_current_level_and_stops_at_the_bounds() {
        let host = FakeHost::new(SCHEMAS);
        let mut eq = Equalizer::new(Configuration::default(), EqualizerState::default());
        eq.apply(&host, &[Change::Adjust(vec![(Band::Bass, 2), (Band::Midrange, -1)])]).unwrap();
        eq.apply(&host, &[Change::Adjust(vec![(Band::Bass, 3)])]).unwrap();
        assert_eq!(levels(&eq), [5, -1, 0]);
        eq.apply(&host, &[Change::Adjust(vec![(Band::Bass, i64::MAX), (Band::Midrange, i64::MIN)])]).unwrap();
        assert_eq!(levels(&eq), [6, -6, 0], "no overflow on absurd deltas");
    }

    #[test]
    fn reset_bands_returns_only_the_named_bands_to_flat_and_keeps_the_mode() {
        let host = FakeHost::new(SCHEMAS);
        let start = EqualizerState {
            bands: [(Band::Bass, 3), (Band::Midrange, -2), (Band::Treble, 5)].into(),
            mode: Some(Mode::Night),
        };
        let mut eq = Equalizer::new(with_modes(), start);
        eq.apply(&host, &[Change::Reset(vec![Band::Bass, Band::Treble])]).unwrap();
        assert_eq!(levels(&eq), [0, -2, 0]);
        assert_eq!(eq.state().mode, Some(Mode::Night));
    }

    #[test]
    fn unsupported_band_or_mode_changes_nothing() {
        let host = FakeHost::new(SCHEMAS);
        let config = Configuration { bands: [Band::Bass].into(), ..Configuration::default() };
        let mut eq = Equalizer::new(config, EqualizerState::default());
        let err = eq.apply(&host, &[Change::Set(vec![(Band::Bass, 3), (Band::Treble, 1)])]).unwrap_err();
        assert!(matches!(&err, PluginError::Invalid(m) if m.contains("TREBLE")), "{err:?}");
        assert_eq!(levels(&eq), [0], "the supported band in the same directive is not applied either");
        let err = eq.apply(&host, &[Change::SetMode(Mode::Tv)]).unwrap_err();
        assert!(matches!(&err, PluginError::Invalid(m) if m.contains("TV")), "{err:?}");
        assert!(host.events().is_empty());
        assert!(host.stores().is_empty());
    }

    #[test]
    fn set_mode_is_reported_with_the_bands() {
        let host = FakeHost::new(SCHEMAS);
        let mut eq = Equalizer::new(with_modes(), EqualizerState::default());
        eq.apply(&host, &[Change::SetMode(Mode::Movie)]).unwrap();
        assert_eq!(host.events()[0].1["mode"], "MOVIE");
        assert_eq!(host.events()[0].1["bands"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn an_unchanged_state_is_still_confirmed() {
        let host = FakeHost::new(SCHEMAS);
        let mut eq = Equalizer::new(Configuration::default(), EqualizerState::default());
        eq.apply(&host, &[Change::Reset(vec![Band::Bass])]).unwrap();
        assert_eq!(host.events().len(), 1);
    }

    #[test]
    fn every_change_is_persisted_before_it_is_reported() {
        let host = FakeHost::new(SCHEMAS);
        let mut eq = Equalizer::new(Configuration::default(), EqualizerState::default());
        eq.apply(&host, &[Change::Set(vec![(Band::Midrange, 2)])]).unwrap();
        assert_eq!(host.stores()[0], (STATE_KEY.to_string(), eq.state().to_json()));

        let failing = FakeHost::new(SCHEMAS).failing_store();
        assert!(eq.apply(&failing, &[Change::Set(vec![(Band::Midrange, 5)])]).is_err());
        assert!(failing.events().is_empty(), "a change that was not persisted is not confirmed");
        assert_eq!(levels(&eq), [0, 2, 0], "nor applied");
    }

    #[test]
    fn a_new_configuration_refits_the_state() {
        let host = FakeHost::new(SCHEMAS);
        let start = EqualizerState { bands: [(Band::Bass, 5), (Band::Treble, -4)].into(), mode: Some(Mode::Night) };
        let mut eq = Equalizer::new(with_modes(), start);
        let narrower = Configuration {
            bands: [Band::Bass, Band::Midrange].into(),
            range: Range { minimum: -2, maximum: 2 },
            modes: [Mode::Movie].into(),
        };
        eq.reconfigure(&host, narrower.clone()).unwrap();
        assert_eq!(eq.state(), &EqualizerState { bands: [(Band::Bass, 2), (Band::Midrange, 0)].into(), mode: None });
        let stored: Vec<String> = host.stores().iter().map(|(key, _)| key.clone()).collect();
        assert_eq!(stored, [CONFIGURATION_KEY, STATE_KEY], "both are persisted for the next start-up");
        assert_eq!(host.stores()[0].1, narrower.to_json());
        assert!(host.events().is_empty());

        eq.reconfigure(&host, narrower).unwrap();
        assert_eq!(host.stores().len(), 2, "nothing to persist when nothing changed");
    }

    #[test]
    fn state_json_round_trips_and_refuses_unknown_bands() {
        let state = EqualizerState { bands: [(Band::Treble, -3)].into(), mode: Some(Mode::Sport) };
        assert_eq!(EqualizerState::from_json(state.to_json()).unwrap(), state);
        assert!(EqualizerState::from_json(json!({"bands": [{"name": "SUB", "level": 1}]})).is_err());
    }
}
