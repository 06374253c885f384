//! The Notifications 1.0 plugin library: the persisted notification indicator and its chime on the Alert
//! channel. The implementation is `avs-plugin-notifications`.

avs_plugin_sdk::export_plugin!(
    avs_notifications_plugin::Notifications,
    "$CARGO_MANIFEST_DIR/../../../schemas/Notifications/1.0"
);
