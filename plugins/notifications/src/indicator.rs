//! The notification indicator: whether unretrieved notifications exist and whether the visual indicator
//! stays on, persisted before it is acted on so that the LED and the context survive a restart.

use avs_plugin_sdk::{Host, LogLevel, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The storage key of the persisted [`IndicatorState`].
pub const STATE_KEY: &str = "indicator";

/// What the indicator needs from the host.
pub trait IndicatorHost {
    fn store(&self, key: &str, value: &Value) -> Result<(), PluginError>;
    fn log(&self, level: LogLevel, message: &str);
}

impl IndicatorHost for Host {
    fn store(&self, key: &str, value: &Value) -> Result<(), PluginError> {
        Host::store(self, key, value)
    }

    fn log(&self, level: LogLevel, message: &str) {
        Host::log(self, level, message)
    }
}

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
    pub fn set(&mut self, host: &impl IndicatorHost, persist_visual: bool) -> Result<(), PluginError> {
        self.change(host, IndicatorState { is_enabled: true, is_visual_indicator_persisted: persist_visual })?;
        let visual = if persist_visual { "on until cleared" } else { "flashed, not persisted" };
        host.log(LogLevel::Info, &format!("new notification: visual indicator {visual}"));
        Ok(())
    }

    /// A ClearIndicator arrived.
    pub fn clear(&mut self, host: &impl IndicatorHost) -> Result<(), PluginError> {
        self.change(host, IndicatorState::default())?;
        host.log(LogLevel::Info, "notifications retrieved: visual indicator off");
        Ok(())
    }

    /// Shows a persisted indicator again after a restart or a swap.
    pub fn restore(&self, host: &impl IndicatorHost) {
        if self.state.is_visual_indicator_persisted {
            host.log(LogLevel::Info, "visual indicator on (restored): notifications are waiting");
        }
    }

    /// Persisted first: an indicator the device would forget on restart would make the context lie.
    fn change(&mut self, host: &impl IndicatorHost, next: IndicatorState) -> Result<(), PluginError> {
        host.store(STATE_KEY, &next.to_json())?;
        self.state = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    #[derive(Default)]
    struct FakeHost {
        stored: RefCell<Vec<(String, Value)>>,
        logs: RefCell<Vec<String>>,
        fail_store: bool,
    }

    impl IndicatorHost for FakeHost {
        fn store(&self, key: &str, value: &Value) -> Result<(), PluginError> {
            if self.fail_store {
                return Err(PluginError::internal("disk full"));
            }
            self.stored.borrow_mut().push((key.into(), value.clone()));
            Ok(())
        }

        fn log(&self, _level: LogLevel, message: &str) {
            self.logs.borrow_mut().push(message.into());
        }
    }

    #[test]
    fn set_then_clear_is_persisted_and_shown() {
        let host = FakeHost::default();
        let mut indicator = Indicator::default();
        indicator.set(&host, true).unwrap();
        assert_eq!(indicator.state(), IndicatorState { is_enabled: true, is_visual_indicator_persisted: true });
        crate::schema_check::assert_valid("context/IndicatorState.json", &indicator.state().to_json());
        indicator.clear(&host).unwrap();
        assert_eq!(
            host.stored.borrow().as_slice(),
            [
                (STATE_KEY.to_string(), json!({"isEnabled": true, "isVisualIndicatorPersisted": true})),
                (STATE_KEY.to_string(), json!({"isEnabled": false, "isVisualIndicatorPersisted": false})),
            ]
        );
        let logs = host.logs.borrow();
        assert!(logs[0].contains("on until cleared"), "{logs:?}");
        assert!(logs[1].contains("off"), "{logs:?}");
    }

    #[test]
    fn a_later_non_persisted_indicator_turns_the_visual_indicator_off_but_stays_enabled() {
        let host = FakeHost::default();
        let mut indicator = Indicator::default();
        indicator.set(&host, true).unwrap();
        indicator.set(&host, false).unwrap();
        assert_eq!(indicator.state(), IndicatorState { is_enabled: true, is_visual_indicator_persisted: false });
    }

    #[test]
    fn an_indicator_that_cannot_be_persisted_is_refused() {
        let host = FakeHost { fail_store: true, ..FakeHost::default() };
        let mut indicator = Indicator::default();
        assert!(indicator.set(&host, true).is_err());
        assert_eq!(indicator.state(), IndicatorState::default());
        assert!(host.logs.borrow().is_empty(), "nothing shown that the context would not report");
    }

    #[test]
    fn only_a_persisted_visual_indicator_is_restored() {
        let host = FakeHost::default();
        Indicator::new(IndicatorState { is_enabled: true, is_visual_indicator_persisted: false }).restore(&host);
        assert!(host.logs.borrow().is_empty());
        Indicator::new(IndicatorState { is_enabled: true, is_visual_indicator_persisted: true }).restore(&host);
        assert_eq!(host.logs.borrow().len(), 1);
    }
}
