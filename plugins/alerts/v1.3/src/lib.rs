//! The Alerts 1.3 plugin library: timers, alarms and reminders that sound on time, connected or not.
//! The implementation is `avs-plugin-alerts`.

avs_plugin_sdk::export_plugin!(avs_alerts_plugin::Alerts, "$CARGO_MANIFEST_DIR/../../../schemas/Alerts/1.3");
