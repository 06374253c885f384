//! Settings 1.0: reports the device locale to AVS with SettingsUpdated, on first boot and whenever the
//! locale differs from the one AVS last heard. The locale reported is kept in the plugin's storage,
//! which every version of the interface shares, so restarts and OTA swaps need nothing more.

mod locale;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{Directive, EventSpec, Handling, Host, HostApi, HostCell, Interface, Manifest, PluginError};
use serde::Deserialize;

use locale::{LocaleReporter, REPORTED_KEY};

/// The part of the host's `device.info` that Settings uses.
#[derive(Deserialize)]
struct DeviceInfo {
    locale: String,
}

#[derive(Default)]
pub struct Settings {
    host: HostCell,
    reporter: LocaleReporter,
}

impl Interface for Settings {
    fn manifest() -> Manifest {
        Manifest {
            // AVS must learn the locale even if the device restarts before it is connected.
            events: vec![EventSpec::new("SettingsUpdated").must_deliver()],
            // The AVS Device SDK registers no Settings context state.
            ..avs_plugin_sdk::manifest!("Settings", "1.0")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.reporter = LocaleReporter::new(host.load::<String>(REPORTED_KEY));
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        Err(PluginError::unsupported(format!("Settings 1.0 has no directive {}", directive.name)))
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "device.info" {
            return Ok(());
        }
        let info: DeviceInfo =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("device.info: {e}")))?;
        let host = self.host.get()?;
        self.reporter.report(host, &info.locale)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_declares_one_must_deliver_event_and_nothing_else() {
        let m = Settings::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("Settings", "1.0"));
        assert_eq!(m.plugin, "avs-plugin-settings");
        assert_eq!(m.events, [EventSpec::new("SettingsUpdated").must_deliver()]);
        assert!(m.directives.is_empty() && m.context.is_empty());
    }

    #[test]
    fn device_info_must_name_a_locale_and_other_host_events_are_ignored() {
        let mut s = Settings::default();
        assert!(matches!(s.on_host_event("device.info", r#"{"firmwareVersion":"1"}"#), Err(PluginError::Invalid(_))));
        assert!(s.on_host_event("user.button", "not json").is_ok());
    }
}
