//! The System 1.1: inactivity reports and software info.
//! The implementation, shared by every version, is `avs-plugin-system`.

avs_plugin_sdk::export_plugin!(avs_system_plugin::System<1>, "$CARGO_MANIFEST_DIR/../../../schemas/System/1.1");
