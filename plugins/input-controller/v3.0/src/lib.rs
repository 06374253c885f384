//! The Alexa.InputController 3.0 plugin library: SelectInput among the configured inputs, persisted.
//! The implementation is `avs-plugin-input-controller`.

avs_plugin_sdk::export_plugin!(
    avs_input_controller_plugin::InputController,
    "$CARGO_MANIFEST_DIR/../../../schemas/Alexa.InputController/3.0"
);
