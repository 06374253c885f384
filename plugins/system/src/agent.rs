//! System 1.x as a state machine over [`HostApi`]: the hourly inactivity report, software info, and
//! the connection-level directives that only reach a plugin if the core did not intercept them.

use std::time::Instant;

use avs_plugin_sdk::{HostApi, LogLevel, PluginError};
use serde_json::{json, Value};

use crate::inactivity::{InactivityClock, REPORT_PERIOD};

/// SoftwareInfo's firmwareVersion: a positive 32-bit signed integer, written as a string.
pub fn valid_firmware_version(version: &str) -> bool {
    !version.starts_with('+') && version.parse::<i32>().is_ok_and(|v| v > 0)
}

#[derive(Debug)]
pub struct SystemAgent {
    /// The interface's minor version: software info exists from 1.1 on.
    minor: u8,
    clock: InactivityClock,
    report_timer: Option<u64>,
    /// From the host's `device.info`; `None` until a valid one arrived.
    firmware_version: Option<String>,
}

impl SystemAgent {
    pub fn new(minor: u8, now: Instant) -> Self {
        SystemAgent { minor, clock: InactivityClock::new(now), report_timer: None, firmware_version: None }
    }

    pub fn start(&mut self, host: &impl HostApi) {
        let period = REPORT_PERIOD.as_millis() as u64;
        self.report_timer = Some(host.start_timer(period, period));
    }

    pub fn stop(&mut self, host: &impl HostApi) {
        if let Some(timer) = self.report_timer.take() {
            host.cancel_timer(timer);
        }
    }

    pub fn user_activity(&mut self, now: Instant) {
        self.clock.reset(now);
    }

    pub fn on_timer(&mut self, host: &impl HostApi, timer: u64, now: Instant) -> Result<(), PluginError> {
        if Some(timer) != self.report_timer {
            return Ok(());
        }
        host.send_event("UserInactivityReport", &self.clock.report(now)).map(drop)
    }

    pub fn device_info(&mut self, firmware_version: &str) -> Result<(), PluginError> {
        if !valid_firmware_version(firmware_version) {
            return Err(PluginError::invalid(format!(
                "firmware version {firmware_version:?} is not a positive 32-bit integer as SoftwareInfo requires"
            )));
        }
        self.firmware_version = Some(firmware_version.to_string());
        Ok(())
    }

    pub fn handle_directive(&mut self, host: &impl HostApi, name: &str, now: Instant) -> Result<(), PluginError> {
        match name {
            "ResetUserInactivity" => self.clock.reset(now),
            "ReportSoftwareInfo" if self.minor >= 1 => {
                let version = self
                    .firmware_version
                    .as_deref()
                    .ok_or_else(|| PluginError::internal("no valid firmware version known (device.info)"))?;
                host.send_event("SoftwareInfo", &json!({"firmwareVersion": version}))?;
            }
            // The core owns the connection and intercepts both; reaching here means it did not.
            "SetEndpoint" | "RevokeAuthorization" => {
                host.log(LogLevel::Warn, &format!("System.{name} reached the plugin; the core handles it, ignored"))
            }
            other => return Err(PluginError::unsupported(format!("System 1.{} has no directive {other}", self.minor))),
        }
        Ok(())
    }

    /// For an OTA swap: the inactivity clock is the only state worth carrying over.
    pub fn export(&self, now: Instant) -> Value {
        self.clock.report(now)
    }

    pub fn import(&mut self, state: &Value, now: Instant) -> Result<(), PluginError> {
        let seconds = state["inactiveTimeInSeconds"]
            .as_u64()
            .ok_or_else(|| PluginError::invalid("state: inactiveTimeInSeconds must be a non-negative integer"))?;
        self.clock = InactivityClock::inactive_for(seconds, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::schemas;

    #[test]
    fn firmware_versions_must_be_positive_32_bit_integers() {
        assert!(valid_firmware_version("1"));
        assert!(valid_firmware_version("2147483647"));
        for bad in ["2147483648", "0", "-3", "+5", "1.2", "", "abc"] {
            assert!(!valid_firmware_version(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_hourly_timer_reports_seconds_since_the_last_activity() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(1, t0);
        system.start(&host);
        assert_eq!(host.calls(), [Call::Timer(3_600_000, 3_600_000)]);
        system.user_activity(t0 + Duration::from_secs(100));
        system.on_timer(&host, host.last_timer(), t0 + Duration::from_secs(3600)).unwrap();
        system.on_timer(&host, 7, t0 + Duration::from_secs(3600)).unwrap();
        let events = host.events();
        assert_eq!(events.as_slice(), [("UserInactivityReport".into(), json!({"inactiveTimeInSeconds": 3500}))]);
    }

    #[test]
    fn reset_user_inactivity_restarts_the_clock() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(1, t0);
        system.start(&host);
        system.handle_directive(&host, "ResetUserInactivity", t0 + Duration::from_secs(3000)).unwrap();
        system.on_timer(&host, host.last_timer(), t0 + Duration::from_secs(3600)).unwrap();
        assert_eq!(host.events()[0].1, json!({"inactiveTimeInSeconds": 600}));
    }

    #[test]
    fn report_software_info_sends_the_device_firmware_version() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(1, t0);
        assert!(system.handle_directive(&host, "ReportSoftwareInfo", t0).is_err(), "no version known yet");
        assert!(system.device_info("1.0.3").is_err());
        system.device_info("42").unwrap();
        system.handle_directive(&host, "ReportSoftwareInfo", t0).unwrap();
        assert_eq!(host.events().as_slice(), [("SoftwareInfo".into(), json!({"firmwareVersion": "42"}))]);
    }

    #[test]
    fn system_1_0_has_no_software_info() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(0, t0);
        system.device_info("42").unwrap();
        assert_eq!(
            system.handle_directive(&host, "ReportSoftwareInfo", t0),
            Err(PluginError::unsupported("System 1.0 has no directive ReportSoftwareInfo"))
        );
        assert!(host.events().is_empty());
    }

    #[test]
    fn connection_directives_are_logged_and_unknown_ones_refused() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(1, t0);
        system.handle_directive(&host, "SetEndpoint", t0).unwrap();
        system.handle_directive(&host, "RevokeAuthorization", t0).unwrap();
        assert_eq!(host.logs(LogLevel::Warn).len(), 2);
        assert!(host.events().is_empty());
        assert_eq!(
            system.handle_directive(&host, "Reboot", t0),
            Err(PluginError::unsupported("System 1.1 has no directive Reboot"))
        );
    }

    #[test]
    fn stop_cancels_the_report_timer_once() {
        let (host, t0) = (FakeHost::new(schemas(1)), Instant::now());
        let mut system = SystemAgent::new(1, t0);
        system.start(&host);
        host.take();
        system.stop(&host);
        system.stop(&host);
        assert_eq!(host.take(), [Call::CancelTimer(host.last_timer())]);
    }

    #[test]
    fn the_inactivity_clock_survives_export_and_import() {
        let t0 = Instant::now();
        let old = SystemAgent::new(1, t0);
        let exported = old.export(t0 + Duration::from_secs(900));
        let later = t0 + Duration::from_secs(5000);
        let mut new = SystemAgent::new(1, later);
        new.import(&exported, later).unwrap();
        assert_eq!(new.export(later + Duration::from_secs(100)), json!({"inactiveTimeInSeconds": 1000}));
        assert!(new.import(&json!({"inactiveTimeInSeconds": -1}), later).is_err());
    }
}
