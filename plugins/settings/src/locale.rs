//! The locale AVS last heard of, and the SettingsUpdated that tells it of a new one.

use avs_plugin_sdk::{HostApi, PluginError};
use serde_json::json;

/// The storage key of the locale last reported to AVS.
pub const REPORTED_KEY: &str = "reportedLocale";

/// The locales SettingsUpdated may carry (kept equal to the enum of events/SettingsUpdated.json, which
/// gives the sources; a unit test checks it).
pub const SUPPORTED_LOCALES: [&str; 15] = [
    "de-DE", "en-AU", "en-CA", "en-GB", "en-IN", "en-US", "es-ES", "es-MX", "es-US", "fr-CA", "fr-FR", "hi-IN",
    "it-IT", "ja-JP", "pt-BR",
];

#[derive(Debug, Default)]
pub struct LocaleReporter {
    /// `None` on first boot: nothing was ever reported.
    reported: Option<String>,
}

impl LocaleReporter {
    pub fn new(reported: Option<String>) -> Self {
        LocaleReporter { reported }
    }

    /// Tells AVS of `locale` unless it is what AVS last heard. The event is queued (must-deliver)
    /// before the locale is recorded as reported: a failed send is retried at the next `device.info`,
    /// while a failed record only costs a repeated event after a restart.
    pub fn report(&mut self, host: &impl HostApi, locale: &str) -> Result<(), PluginError> {
        if self.reported.as_deref() == Some(locale) {
            return Ok(());
        }
        if !SUPPORTED_LOCALES.contains(&locale) {
            return Err(PluginError::invalid(format!("device locale {locale:?} is not one AVS accepts")));
        }
        let payload = json!({"settings": [{"key": "locale", "value": locale}]});
        host.send_event("SettingsUpdated", &payload)?;
        host.store(REPORTED_KEY, &json!(locale))?;
        self.reported = Some(locale.to_string());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::FakeHost;

    use super::*;
    use crate::schema_check::SCHEMAS;

    #[test]
    fn first_boot_reports_the_locale_and_records_it() {
        let host = FakeHost::new(SCHEMAS);
        let mut reporter = LocaleReporter::default();
        reporter.report(&host, "en-US").unwrap();
        assert_eq!(
            host.events(),
            [("SettingsUpdated".to_string(), json!({"settings": [{"key": "locale", "value": "en-US"}]}))]
        );
        assert_eq!(host.stores(), [(REPORTED_KEY.to_string(), json!("en-US"))]);
        assert_eq!(reporter.reported.as_deref(), Some("en-US"));
    }

    #[test]
    fn an_unchanged_locale_is_not_reported_again_a_changed_one_is() {
        let host = FakeHost::new(SCHEMAS);
        let mut reporter = LocaleReporter::new(Some("en-US".into()));
        reporter.report(&host, "en-US").unwrap();
        assert!(host.events().is_empty());
        reporter.report(&host, "de-DE").unwrap();
        assert_eq!(host.events()[0].1["settings"][0]["value"], "de-DE");
        assert_eq!(reporter.reported.as_deref(), Some("de-DE"));
    }

    #[test]
    fn a_locale_avs_does_not_accept_is_refused_and_not_recorded() {
        let host = FakeHost::new(SCHEMAS);
        let mut reporter = LocaleReporter::new(Some("en-US".into()));
        assert!(matches!(reporter.report(&host, "xx-XX"), Err(PluginError::Invalid(_))));
        assert!(host.events().is_empty() && host.stores().is_empty());
        assert_eq!(reporter.reported.as_deref(), Some("en-US"));
    }

    #[test]
    fn a_failed_send_is_not_recorded_so_it_is_retried() {
        let failing = FakeHost::new(SCHEMAS).failing_send();
        let mut reporter = LocaleReporter::default();
        assert!(reporter.report(&failing, "en-GB").is_err());
        assert!(failing.stores().is_empty());
        let host = FakeHost::new(SCHEMAS);
        reporter.report(&host, "en-GB").unwrap();
        assert_eq!(host.events().len(), 1);
    }

    #[test]
    fn supported_locales_match_the_schema() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/Settings/1.0/events/SettingsUpdated.json");
        let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let values = &schema["properties"]["settings"]["items"]["properties"]["value"]["enum"];
        assert_eq!(values, &json!(SUPPORTED_LOCALES));
    }
}
