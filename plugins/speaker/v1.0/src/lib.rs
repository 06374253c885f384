//! The Speaker 1.0 plugin library: volume and mute, persisted, with VolumeChanged / MuteChanged.
//! The implementation is `avs-plugin-speaker`.

avs_plugin_sdk::export_plugin!(avs_speaker_plugin::Speaker, "$CARGO_MANIFEST_DIR/../../../schemas/Speaker/1.0");
