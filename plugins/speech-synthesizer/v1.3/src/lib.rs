//! The SpeechSynthesizer 1.3: Speak with playBehavior and caption; SpeechInterrupted on barge-in.
//! The implementation, shared by every version, is `avs-plugin-speech-synthesizer`.

avs_plugin_sdk::export_plugin!(
    avs_speech_synthesizer_plugin::SpeechSynthesizer<3>,
    "$CARGO_MANIFEST_DIR/../../../schemas/SpeechSynthesizer/1.3"
);
