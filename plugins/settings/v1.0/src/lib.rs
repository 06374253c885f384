//! The Settings 1.0 plugin library: SettingsUpdated with the device locale, on first boot and on change.
//! The implementation is `avs-plugin-settings`.

avs_plugin_sdk::export_plugin!(avs_settings_plugin::Settings, "$CARGO_MANIFEST_DIR/../../../schemas/Settings/1.0");
