//! The System 1.0: inactivity reports; no software info (ReportSoftwareInfo / SoftwareInfo came with 1.1).
//! The implementation, shared by every version, is `avs-plugin-system`.

avs_plugin_sdk::export_plugin!(avs_system_plugin::System<0>, "$CARGO_MANIFEST_DIR/../../../schemas/System/1.0");
