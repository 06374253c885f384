//! The EqualizerController 1.0 plugin library: band levels and modes, persisted, with EqualizerChanged.
//! The implementation is `avs-plugin-equalizer-controller`.

avs_plugin_sdk::export_plugin!(
    avs_equalizer_controller_plugin::EqualizerController,
    "$CARGO_MANIFEST_DIR/../../../schemas/EqualizerController/1.0"
);
