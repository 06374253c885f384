//! The notification indicator: whether unretrieved notifications exist and whether the visual indicator
//! stays on, persisted before it is acted on so that the LED and the context survive a restart.

use avs_plugin_sdk::{HostApi, LogLevel, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The storage key of the persisted [`IndicatorState`].
pub const STATE_KEY: &str = "indicator";

/// The Notifications.IndicatorState context payload, also the persisted and exported state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IndicatorState {
    /// A SetIndicator not cleared yet: the user has notifications to retrieve.
    pub is_enabled: bool,
    pub is_visual_indicator_persisted: bool,
}

impl IndicatorState {
    pub fn to_json(self) -> Value {
        serde_json::to_value(self).expect("two booleans serialise")
    }
}

#[derive(Debug, Default)]
pub struct Indicator {
    state: IndicatorState,
}

impl Indicator {
    pub fn new(state: IndicatorState) -> Self {
        Indicator { state }
    }

    pub fn state(&self) -> IndicatorState {
        self.state
    }

    /// A SetIndicator arrived.
    pub fn set(&mut self, host: &impl HostApi, persist_visual: bool) -> Result<(), PluginError> {
        self.change(host, IndicatorState { is_enabled: true, is_visual_indicator_persisted: persist_visual })?;
        let visual = if persist_visual { "on until cleared" } else { "flashed, not persisted" };
        host.log(LogLevel::Info, &format!("new notification: visual indicator {visual}"));
        Ok(())
    }

    /// A ClearIndicator arrived.
    pub fn clear(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        self.change(host, IndicatorState::default())?;
        host.log(LogLevel::Info, "notifications retrieved: visual indicator off");
        Ok(())
    }

    /// Shows a persisted indicator again after a restart or a swap.
    pub fn restore(&self, host: &impl HostApi) {
        if self.state.is_visual_indicator_persisted {
            host.log(LogLevel::Info, "visual indicator on (restored): notifications are waiting");
        }
    }

    /// Persisted first: an indicator the device would forget on restart would make the context lie.
    fn change(&mut self, host: &impl HostApi, next: IndicatorState) -> Result<(), PluginError> {
        host.store(STATE_KEY, &next.to_json())?;
        self.state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use avs_plugin_sdk::testing::FakeHost;

    use super::*;
    use crate::schema_check::SCHEMAS;

    #[test]
    fn set_then_clear_is_persisted_and_shown() {
        let host = FakeHost::new(SCHEMAS);
        let mut indicator = Indicator::default();
        indicator.set(&host, true).unwrap();
        assert_eq!(indicator.state(), IndicatorState { is_enabled: true, is_visual_indicator_persisted: true });
        crate::schema_check::assert_valid("context/IndicatorState.json", &indicator.state().to_json());
        indicator.clear(&host).unwrap();
        assert_eq!(
            host.stores().as_slice(),
            [
                (STATE_KEY.to_string(), json!({"isEnabled": true, "isVisualIndicatorPersisted": true})),
                (STATE_KEY.to_string(), json!({"isEnabled": false, "isVisualIndicatorPersisted": false})),
            ]
        );
        let logs = host.logs(LogLevel::Info);
        assert!(logs[0].contains("on until cleared"), "{logs:?}");
        assert!(logs[1].contains("off"), "{logs:?}");
    }

    #[test]
    fn a_later_non_persisted_indicator_turns_the_visual_indicator_off_but_stays_enabled() {
        let host = FakeHost::new(SCHEMAS);
        let mut indicator = Indicator::default();
        indicator.set(&host, true).unwrap();
        indicator.set(&host, false).unwrap();
        assert_eq!(indicator.state(), IndicatorState { is_enabled: true, is_visual_indicator_persisted: false });
    }

    #[test]
    fn an_indicator_that_cannot_be_persisted_is_refused() {
        let host = FakeHost::new(SCHEMAS).failing_store();
        let mut indicator = Indicator::default();
        assert!(indicator.set(&host, true).is_err());
        assert_eq!(indicator.state(), IndicatorState::default());
        assert!(host.logs(LogLevel::Info).is_empty(), "nothing shown that the context would not report");
    }

    #[test]
    fn only_a_persisted_visual_indicator_is_restored() {
        let host = FakeHost::new(SCHEMAS);
        Indicator::new(IndicatorState { is_enabled: true, is_visual_indicator_persisted: false }).restore(&host);
        assert!(host.logs(LogLevel::Info).is_empty());
        Indicator::new(IndicatorState { is_enabled: true, is_visual_indicator_persisted: true }).restore(&host);
        assert_eq!(host.logs(LogLevel::Info).len(), 1);
    }
}
