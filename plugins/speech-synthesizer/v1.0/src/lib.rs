//! The SpeechSynthesizer 1.0: Speak with SpeechStarted / SpeechFinished; an interrupted Speak reports nothing.
//! The implementation, shared by every version, is `avs-plugin-speech-synthesizer`.

avs_plugin_sdk::export_plugin!(
    avs_speech_synthesizer_plugin::SpeechSynthesizer<0>,
    "$CARGO_MANIFEST_DIR/../../../schemas/SpeechSynthesizer/1.0"
);
