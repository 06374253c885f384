//! The PlaybackController 1.1 plugin library: device buttons and toggles as *CommandIssued events with
//! context. The implementation is `avs-plugin-playback-controller`.

avs_plugin_sdk::export_plugin!(
    avs_playback_controller_plugin::PlaybackController,
    "$CARGO_MANIFEST_DIR/../../../schemas/PlaybackController/1.1"
);
