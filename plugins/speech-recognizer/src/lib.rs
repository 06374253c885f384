//! SpeechRecognizer 2.3: turns the user's speech into a Recognize event (the host streams the audio),
//! handles ExpectSpeech (listen again, or time out), StopCapture, and the 2.1–2.3 settings directives.

use avs_plugin_sdk::{
    export_plugin, Directive, DirectiveSpec, EventOptions, EventSpec, Handling, Host, Interface, Manifest, PluginError,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const FORMAT: &str = "AUDIO_L16_RATE_16000_CHANNELS_1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    /// Streaming audio as the `audio` part of a Recognize.
    Recognizing,
    /// ExpectSpeech's timer runs: the next Recognize answers it.
    ExpectingSpeech,
}

/// Settings that survive restarts (SetWakeWordConfirmation, SetSpeechConfirmation, SetWakeWords).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Settings {
    wake_word_confirmation: String,
    speech_confirmation: String,
    wake_words: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wake_word_confirmation: "NONE".into(),
            speech_confirmation: "NONE".into(),
            wake_words: vec!["ALEXA".into()],
        }
    }
}

/// `user.recognize` host event: the user started speaking (button, tap or wake word).
#[derive(Debug, Deserialize)]
struct UserRecognize {
    #[serde(default = "close_talk")]
    profile: String,
    audio: Value,
    initiator: Option<Value>,
}

fn close_talk() -> String {
    "CLOSE_TALK".into()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpectSpeech {
    timeout_in_milliseconds: u64,
    initiator: Option<Value>,
}

#[derive(Deserialize)]
struct MediaEvent {
    id: u64,
    state: String,
}

pub struct SpeechRecognizer {
    host: Option<Host>,
    state: State,
    settings: Settings,
    /// The audio stream of the Recognize in progress.
    capture: Option<u64>,
    expect_timer: Option<u64>,
    /// ExpectSpeech's initiator, echoed verbatim by the Recognize that answers it.
    expect_initiator: Option<Value>,
}

impl Default for SpeechRecognizer {
    fn default() -> Self {
        SpeechRecognizer {
            host: None,
            state: State::Idle,
            settings: Settings::default(),
            capture: None,
            expect_timer: None,
            expect_initiator: None,
        }
    }
}

impl SpeechRecognizer {
    fn host(&self) -> Result<Host, PluginError> {
        self.host.clone().ok_or_else(|| PluginError::internal("not initialised"))
    }

    fn recognize(&mut self, request: UserRecognize) -> Result<(), PluginError> {
        let host = self.host()?;
        if self.state == State::Recognizing {
            // Barge-in on our own capture: the new Recognize replaces it.
            if let Some(capture) = self.capture.take() {
                host.stop_media(capture);
            }
        }
        if let Some(timer) = self.expect_timer.take() {
            host.cancel_timer(timer);
        }
        let initiator = self.expect_initiator.take().or(request.initiator).unwrap_or_else(|| json!({"type": "TAP"}));
        let payload = json!({"profile": request.profile, "format": FORMAT, "initiator": initiator});
        let options =
            EventOptions { context: true, new_dialog: true, audio: Some(request.audio), ..EventOptions::default() };
        let sent = host.send_event_with("Recognize", &payload, &options)?;
        self.capture = sent.audio_stream;
        self.state = State::Recognizing;
        Ok(())
    }

    fn reply(&self, event: &str, payload: Value) -> Result<(), PluginError> {
        self.host()?.send_event(event, &payload)?;
        Ok(())
    }

    fn save(&self) -> Result<(), PluginError> {
        self.host()?.store("settings", &self.settings)
    }
}

impl Interface for SpeechRecognizer {
    fn manifest() -> Manifest {
        let directives = [
            "StopCapture",
            "ExpectSpeech",
            "SetEndOfSpeechOffset",
            "SetWakeWordConfirmation",
            "SetSpeechConfirmation",
            "SetWakeWords",
        ];
        let events = [
            "Recognize",
            "ExpectSpeechTimedOut",
            "WakeWordConfirmationChanged",
            "WakeWordConfirmationReport",
            "SpeechConfirmationChanged",
            "SpeechConfirmationReport",
            "WakeWordsChanged",
            "WakeWordsReport",
        ];
        Manifest {
            interface: "SpeechRecognizer".into(),
            version: "2.3".into(),
            plugin: env!("CARGO_PKG_NAME").into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            directives: directives.into_iter().map(DirectiveSpec::new).collect(),
            events: events.into_iter().map(EventSpec::new).collect(),
            context: Vec::new(),
            configurations: Some(json!({
                "wakeWords": [{"scopes": ["DEFAULT"], "values": [["ALEXA"]]}],
                "maximumConcurrentWakeWords": 1
            })),
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(settings) = host.load::<Settings>("settings") {
            self.settings = settings;
        }
        self.host = Some(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        match directive.name {
            "StopCapture" => {
                if let Some(capture) = self.capture.take() {
                    self.host()?.stop_media(capture);
                }
            }
            "ExpectSpeech" => {
                let expect: ExpectSpeech = directive.payload()?;
                let host = self.host()?;
                if let Some(timer) = self.expect_timer.take() {
                    host.cancel_timer(timer);
                }
                self.expect_initiator = expect.initiator;
                self.expect_timer = Some(host.start_timer(expect.timeout_in_milliseconds, 0));
                self.state = State::ExpectingSpeech;
            }
            "SetEndOfSpeechOffset" => {}
            "SetWakeWordConfirmation" => {
                let value: Value = directive.payload()?;
                self.settings.wake_word_confirmation = value["wakeWordConfirmation"].as_str().unwrap_or("NONE").into();
                self.save()?;
                self.reply(
                    "WakeWordConfirmationChanged",
                    json!({"wakeWordConfirmation": self.settings.wake_word_confirmation}),
                )?;
            }
            "SetSpeechConfirmation" => {
                let value: Value = directive.payload()?;
                self.settings.speech_confirmation = value["speechConfirmation"].as_str().unwrap_or("NONE").into();
                self.save()?;
                self.reply(
                    "SpeechConfirmationChanged",
                    json!({"speechConfirmation": self.settings.speech_confirmation}),
                )?;
            }
            "SetWakeWords" => {
                #[derive(Deserialize)]
                #[serde(rename_all = "camelCase")]
                struct SetWakeWords {
                    wake_words: Vec<String>,
                }
                let set: SetWakeWords = directive.payload()?;
                let supported = ["ALEXA"];
                if let Some(unknown) = set.wake_words.iter().find(|w| !supported.contains(&w.as_str())) {
                    self.reply("WakeWordsReport", json!({"wakeWords": self.settings.wake_words}))?;
                    return Err(PluginError::unsupported(format!(
                        "wake word {unknown} is not supported by this device"
                    )));
                }
                self.settings.wake_words = set.wake_words;
                self.save()?;
                self.reply("WakeWordsChanged", json!({"wakeWords": self.settings.wake_words}))?;
            }
            other => return Err(PluginError::unsupported(format!("SpeechRecognizer 2.3 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        if self.expect_timer == Some(timer) {
            self.expect_timer = None;
            self.expect_initiator = None;
            self.state = State::Idle;
            self.reply("ExpectSpeechTimedOut", json!({}))?;
        }
        Ok(())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "user.recognize" => {
                let request: UserRecognize =
                    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("user.recognize: {e}")))?;
                self.recognize(request)
            }
            "media" => {
                let event: MediaEvent =
                    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("media: {e}")))?;
                if self.capture == Some(event.id) && event.state != "started" {
                    self.capture = None;
                    self.state = State::Idle;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn export_state(&self) -> Value {
        json!(self.settings)
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.settings = serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        Ok(())
    }
}

export_plugin!(SpeechRecognizer, "$CARGO_MANIFEST_DIR/../../schemas/SpeechRecognizer/2.3");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_recognize_defaults_to_close_talk() {
        let r: UserRecognize = serde_json::from_str(r#"{"audio":{"file":"/tmp/u.wav"}}"#).unwrap();
        assert_eq!(r.profile, "CLOSE_TALK");
        assert!(r.initiator.is_none());
    }

    #[test]
    fn settings_round_trip_through_export_and_import() {
        let settings = Settings { speech_confirmation: "TONE".into(), ..Settings::default() };
        let a = SpeechRecognizer { settings, ..SpeechRecognizer::default() };
        let mut b = SpeechRecognizer::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.settings, a.settings);
    }
}
