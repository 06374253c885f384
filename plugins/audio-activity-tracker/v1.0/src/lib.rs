//! The AudioActivityTracker 1.0 plugin library: the ActivityState context from the host's focus changes.
//! The implementation is `avs-plugin-audio-activity-tracker`.

avs_plugin_sdk::export_plugin!(
    avs_audio_activity_tracker_plugin::AudioActivityTracker,
    "$CARGO_MANIFEST_DIR/../../../schemas/AudioActivityTracker/1.0"
);
