//! System 1.1: user inactivity reports, software info. The connection-level System messages
//! (SynchronizeState, ExceptionEncountered, SetEndpoint, RevokeAuthorization) are the core's; they are
//! declared here so that the capability and the schemas are complete.

use std::time::{Duration, Instant};

use avs_plugin_sdk::{
    export_plugin, Directive, DirectiveSpec, EventSpec, Handling, Host, Interface, LogLevel, Manifest, PluginError,
};
use serde::Deserialize;
use serde_json::json;

/// AVS expects UserInactivityReport once an hour.
const REPORT_EVERY: Duration = Duration::from_secs(3600);

pub struct System {
    host: Option<Host>,
    last_activity: Instant,
    report_timer: Option<u64>,
    firmware_version: String,
}

impl Default for System {
    fn default() -> Self {
        System { host: None, last_activity: Instant::now(), report_timer: None, firmware_version: "1".into() }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInfo {
    firmware_version: String,
}

impl System {
    fn host(&self) -> Result<&Host, PluginError> {
        self.host.as_ref().ok_or_else(|| PluginError::internal("not initialised"))
    }

    fn inactive_seconds(&self) -> u64 {
        self.last_activity.elapsed().as_secs()
    }
}

/// SoftwareInfo wants a positive 32-bit integer, written as a string.
fn valid_firmware_version(version: &str) -> bool {
    version.parse::<u32>().is_ok_and(|v| (1..=i32::MAX as u32).contains(&v))
}

impl Interface for System {
    fn manifest() -> Manifest {
        let directives = ["ResetUserInactivity", "SetEndpoint", "RevokeAuthorization", "ReportSoftwareInfo"];
        Manifest {
            interface: "System".into(),
            version: "1.1".into(),
            plugin: env!("CARGO_PKG_NAME").into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            directives: directives.into_iter().map(DirectiveSpec::new).collect(),
            events: vec![
                EventSpec::new("SynchronizeState"),
                EventSpec::new("UserInactivityReport"),
                EventSpec::new("ExceptionEncountered").must_deliver(),
                EventSpec::new("SoftwareInfo").must_deliver(),
            ],
            context: Vec::new(),
            configurations: None,
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        let period = REPORT_EVERY.as_millis() as u64;
        self.report_timer = Some(host.start_timer(period, period));
        self.host = Some(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        match directive.name {
            "ResetUserInactivity" => self.last_activity = Instant::now(),
            "ReportSoftwareInfo" => {
                self.host()?.send_event("SoftwareInfo", &json!({"firmwareVersion": self.firmware_version}))?;
            }
            "SetEndpoint" | "RevokeAuthorization" => {
                self.host()?
                    .log(LogLevel::Warn, &format!("System.{} reached the plugin; the core handles it", directive.name));
            }
            other => return Err(PluginError::unsupported(format!("System 1.1 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        if Some(timer) == self.report_timer {
            self.host()?
                .send_event("UserInactivityReport", &json!({"inactiveTimeInSeconds": self.inactive_seconds()}))?;
        }
        Ok(())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "user.activity" => self.last_activity = Instant::now(),
            "device.info" => {
                let info: DeviceInfo =
                    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("device.info: {e}")))?;
                if !valid_firmware_version(&info.firmware_version) {
                    return Err(PluginError::invalid(format!(
                        "firmware version {:?} is not a positive 32-bit integer as AVS requires",
                        info.firmware_version
                    )));
                }
                self.firmware_version = info.firmware_version;
            }
            _ => {}
        }
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let (Some(host), Some(timer)) = (&self.host, self.report_timer.take()) {
            host.cancel_timer(timer);
        }
        Ok(())
    }
}

export_plugin!(System, "$CARGO_MANIFEST_DIR/../../schemas/System/1.1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firmware_versions_must_be_positive_32_bit_integers() {
        assert!(valid_firmware_version("1"));
        assert!(valid_firmware_version("2147483647"));
        assert!(!valid_firmware_version("2147483648"));
        assert!(!valid_firmware_version("0"));
        assert!(!valid_firmware_version("1.2"));
    }

    #[test]
    fn activity_resets_the_inactivity_clock() {
        let mut system = System { last_activity: Instant::now() - Duration::from_secs(7200), ..System::default() };
        assert!(system.inactive_seconds() >= 7200);
        system.on_host_event("user.activity", "{}").unwrap();
        assert!(system.inactive_seconds() < 5);
        assert!(system.on_host_event("device.info", r#"{"firmwareVersion":"abc"}"#).is_err());
        system.on_host_event("device.info", r#"{"firmwareVersion":"42"}"#).unwrap();
        assert_eq!(system.firmware_version, "42");
    }
}
