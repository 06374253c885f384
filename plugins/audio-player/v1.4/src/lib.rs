//! The AudioPlayer 1.4 plugin library: AVS-queued long-form audio on the Content channel. The
//! implementation is `avs-plugin-audio-player`.

avs_plugin_sdk::export_plugin!(
    avs_audio_player_plugin::AudioPlayer,
    "$CARGO_MANIFEST_DIR/../../../schemas/AudioPlayer/1.4"
);
