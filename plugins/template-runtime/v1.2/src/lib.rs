//! The TemplateRuntime 1.2 plugin library: display cards (RenderTemplate, RenderPlayerInfo) on the device's
//! screen. The implementation is `avs-plugin-template-runtime`.

avs_plugin_sdk::export_plugin!(
    avs_template_runtime_plugin::TemplateRuntime,
    "$CARGO_MANIFEST_DIR/../../../schemas/TemplateRuntime/1.2"
);
