//! System 1.0 and 1.1: user inactivity reports, and from 1.1 on software info. The connection-level System messages
//! (SynchronizeState, ExceptionEncountered, SetEndpoint, RevokeAuthorization) are the core's; they are
//! declared here so that the capability and the schemas are complete.

mod agent;
mod inactivity;
#[cfg(test)]
mod schema_check;

use std::time::Instant;

use avs_plugin_sdk::{Directive, DirectiveSpec, EventSpec, Handling, Host, HostCell, Interface, Manifest, PluginError};
use serde::Deserialize;
use serde_json::Value;

use agent::SystemAgent;

/// System 1.`MINOR`; the plugin libraries export `System<0>` and `System<1>`.
pub struct System<const MINOR: u8> {
    host: HostCell,
    agent: SystemAgent,
}

impl<const MINOR: u8> Default for System<MINOR> {
    fn default() -> Self {
        System { host: HostCell::default(), agent: SystemAgent::new(MINOR, Instant::now()) }
    }
}

/// The part of the host's `device.info` that System uses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInfo {
    firmware_version: String,
}

impl<const MINOR: u8> Interface for System<MINOR> {
    fn manifest() -> Manifest {
        let mut directives = vec!["ResetUserInactivity", "SetEndpoint", "RevokeAuthorization"];
        let mut events = vec![
            EventSpec::new("SynchronizeState"),
            EventSpec::new("UserInactivityReport"),
            EventSpec::new("ExceptionEncountered").must_deliver(),
        ];
        if MINOR >= 1 {
            directives.push("ReportSoftwareInfo");
            events.push(EventSpec::new("SoftwareInfo").must_deliver());
        }
        Manifest {
            directives: directives.into_iter().map(DirectiveSpec::new).collect(),
            events,
            ..avs_plugin_sdk::manifest!("System", format!("1.{MINOR}"))
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.agent.start(&host);
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        self.agent.handle_directive(self.host.get()?, directive.name, Instant::now())?;
        Ok(Handling::Completed)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.agent.on_timer(self.host.get()?, timer, Instant::now())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "user.activity" => self.agent.user_activity(Instant::now()),
            "device.info" => {
                let info: DeviceInfo =
                    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("device.info: {e}")))?;
                self.agent.device_info(&info.firmware_version)?;
            }
            _ => {}
        }
        Ok(())
    }

    fn export_state(&self) -> Value {
        self.agent.export(Instant::now())
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.agent.import(&state, Instant::now())
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let Ok(host) = self.host.get() {
            self.agent.stop(host);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_marks_software_info_and_exceptions_must_deliver() {
        let m = System::<1>::manifest();
        assert_eq!(
            (m.interface.as_str(), m.version.as_str(), m.plugin.as_str()),
            ("System", "1.1", "avs-plugin-system")
        );
        let must: Vec<&str> = m.events.iter().filter(|e| e.must_deliver).map(|e| e.name.as_str()).collect();
        assert_eq!(must, ["ExceptionEncountered", "SoftwareInfo"]);
        assert_eq!(m.directives.len(), 4);
        assert!(m.directives.iter().all(|d| !d.blocking));
    }

    #[test]
    fn system_1_0_declares_no_software_info() {
        let m = System::<0>::manifest();
        assert_eq!(m.version, "1.0");
        assert!(m.directives.iter().all(|d| d.name != "ReportSoftwareInfo"));
        assert!(m.events.iter().all(|e| e.name != "SoftwareInfo"));
    }

    #[test]
    fn device_info_must_carry_a_firmware_version() {
        let mut s = System::<1>::default();
        assert!(s.on_host_event("device.info", r#"{"locale":"en-US"}"#).is_err());
        assert!(s.on_host_event("device.info", r#"{"firmwareVersion":"7","locale":"en-US"}"#).is_ok());
    }
}
