//! System 1.1: user inactivity reports and software info. The connection-level System messages
//! (SynchronizeState, ExceptionEncountered, SetEndpoint, RevokeAuthorization) are the core's; they are
//! declared here so that the capability and the schemas are complete.

mod agent;
mod inactivity;
#[cfg(test)]
mod schema_check;

use std::time::Instant;

use avs_plugin_sdk::{
    export_plugin, Directive, DirectiveSpec, EventSpec, Handling, Host, Interface, Manifest, PluginError,
};
use serde::Deserialize;
use serde_json::Value;

use agent::SystemAgent;

pub struct System {
    host: Option<Host>,
    agent: SystemAgent,
}

impl Default for System {
    fn default() -> Self {
        System { host: None, agent: SystemAgent::new(Instant::now()) }
    }
}

/// The part of the host's `device.info` that System uses.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceInfo {
    firmware_version: String,
}

fn initialised(host: &Option<Host>) -> Result<&Host, PluginError> {
    host.as_ref().ok_or_else(|| PluginError::internal("not initialised"))
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
        self.agent.start(&host);
        self.host = Some(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        self.agent.handle_directive(initialised(&self.host)?, directive.name, Instant::now())?;
        Ok(Handling::Completed)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.agent.on_timer(initialised(&self.host)?, timer, Instant::now())
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
        if let Some(host) = &self.host {
            self.agent.stop(host);
        }
        Ok(())
    }
}

export_plugin!(System, "$CARGO_MANIFEST_DIR/../../schemas/System/1.1");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_marks_software_info_and_exceptions_must_deliver() {
        let m = System::manifest();
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
    fn device_info_must_carry_a_firmware_version() {
        let mut s = System::default();
        assert!(s.on_host_event("device.info", r#"{"locale":"en-US"}"#).is_err());
        assert!(s.on_host_event("device.info", r#"{"firmwareVersion":"7","locale":"en-US"}"#).is_ok());
    }
}
