//! The SpeechRecognizer state machine over [`HostApi`]:
//! IDLE → RECOGNIZING (audio streaming) → BUSY (capture over, answer pending) → IDLE, and
//! EXPECTING_SPEECH while an ExpectSpeech timer runs.

use avs_plugin_sdk::{EventOptions, HostApi, LogLevel, PluginError};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::settings::{unsupported_wake_word, Confirmation, Settings};

/// The storage key of the persisted [`Settings`].
pub const SETTINGS_KEY: &str = "settings";

/// 16 kHz, 16-bit little-endian, mono LPCM: what the host's capture sources produce.
pub const FORMAT: &str = "AUDIO_L16_RATE_16000_CHANNELS_1";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Idle,
    /// Streaming the microphone as the audio part of a Recognize.
    Recognizing,
    /// Capture over; the cloud is working on the answer.
    Busy,
    /// An ExpectSpeech timer runs: the next Recognize answers it.
    ExpectingSpeech,
}

/// Recognize's `profile`: how far the user is and who decides the end of speech.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Profile {
    /// Push-and-hold or tap; the device ends the capture (AVS sends no StopCapture).
    #[default]
    CloseTalk,
    NearField,
    FarField,
}

impl Profile {
    fn as_str(self) -> &'static str {
        match self {
            Profile::CloseTalk => "CLOSE_TALK",
            Profile::NearField => "NEAR_FIELD",
            Profile::FarField => "FAR_FIELD",
        }
    }
}

/// `user.recognize` host event: the user started speaking (button, tap or wake word).
#[derive(Debug, Deserialize)]
pub struct UserRecognize {
    #[serde(default)]
    pub profile: Profile,
    /// The audio source the host streams (`{"file":…}`, `{"stdin":true}`, `{"raw":…}`), passed through.
    pub audio: Value,
    pub initiator: Option<Value>,
}

#[derive(Debug)]
struct Capture {
    media: u64,
    profile: Profile,
}

#[derive(Debug)]
struct Expectation {
    timer: u64,
    /// Opaque; the Recognize that answers the ExpectSpeech echoes it verbatim.
    initiator: Option<Value>,
}

#[derive(Debug)]
pub struct Recognizer {
    state: State,
    settings: Settings,
    capture: Option<Capture>,
    expectation: Option<Expectation>,
}

impl Recognizer {
    pub fn new(settings: Settings) -> Self {
        Recognizer { state: State::Idle, settings, capture: None, expectation: None }
    }

    #[cfg(test)]
    pub fn state(&self) -> State {
        self.state
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    pub fn recognize(&mut self, host: &impl HostApi, request: UserRecognize) -> Result<(), PluginError> {
        if let Some(capture) = &self.capture {
            // Barge-in on our own capture only where the device owns the end of speech (as the AVS
            // Device SDK does); a near/far-field capture is ended by AVS with StopCapture.
            if capture.profile != Profile::CloseTalk {
                return Err(PluginError::invalid(format!(
                    "a {} capture is still streaming; AVS ends it with StopCapture",
                    capture.profile.as_str()
                )));
            }
            host.stop_media(capture.media);
            self.capture = None;
        }
        let echoed = self.expectation.take().and_then(|expectation| {
            host.cancel_timer(expectation.timer);
            expectation.initiator
        });
        let initiator = echoed.or(request.initiator).unwrap_or_else(|| json!({"type": "TAP", "payload": {}}));
        let payload = json!({"profile": request.profile.as_str(), "format": FORMAT, "initiator": initiator});
        let options =
            EventOptions { context: true, new_dialog: true, audio: Some(request.audio), ..EventOptions::default() };
        let sent = match host.send_event_with("Recognize", &payload, &options) {
            Ok(sent) => sent,
            Err(e) => {
                self.state = State::Idle;
                return Err(e);
            }
        };
        match sent.audio_stream {
            Some(media) => {
                self.capture = Some(Capture { media, profile: request.profile });
                self.state = State::Recognizing;
            }
            None => self.state = State::Busy,
        }
        Ok(())
    }

    /// A `media` host event; only the end of our own capture matters.
    pub fn media(&mut self, media: u64, state: &str) {
        let ours = self.capture.as_ref().is_some_and(|c| c.media == media);
        if ours && matches!(state, "finished" | "stopped" | "failed") {
            self.capture = None;
            self.state = State::Busy;
        }
    }

    pub fn stop_capture(&mut self, host: &impl HostApi) {
        match self.capture.take() {
            Some(capture) => {
                host.stop_media(capture.media);
                self.state = State::Busy;
            }
            None => host.log(LogLevel::Debug, "StopCapture with no capture running, ignored"),
        }
    }

    pub fn expect_speech(
        &mut self,
        host: &impl HostApi,
        timeout_ms: u64,
        initiator: Option<Value>,
    ) -> Result<(), PluginError> {
        if self.state == State::Recognizing {
            return Err(PluginError::invalid("ExpectSpeech while RECOGNIZING"));
        }
        if let Some(previous) = self.expectation.take() {
            host.cancel_timer(previous.timer);
        }
        let timer = host.start_timer(timeout_ms, 0);
        self.expectation = Some(Expectation { timer, initiator });
        self.state = State::ExpectingSpeech;
        Ok(())
    }

    pub fn on_timer(&mut self, host: &impl HostApi, timer: u64) -> Result<(), PluginError> {
        if self.expectation.as_ref().is_none_or(|e| e.timer != timer) {
            return Ok(());
        }
        self.expectation = None;
        self.state = State::Idle;
        host.send_event_with("ExpectSpeechTimedOut", &json!({}), &EventOptions::default()).map(drop)
    }

    pub fn set_wake_word_confirmation(&mut self, host: &impl HostApi, value: Confirmation) -> Result<(), PluginError> {
        let next = Settings { wake_word_confirmation: value, ..self.settings.clone() };
        self.commit(host, next)?;
        confirm(host, "WakeWordConfirmationChanged", json!({"wakeWordConfirmation": value}))
    }

    pub fn set_speech_confirmation(&mut self, host: &impl HostApi, value: Confirmation) -> Result<(), PluginError> {
        let next = Settings { speech_confirmation: value, ..self.settings.clone() };
        self.commit(host, next)?;
        confirm(host, "SpeechConfirmationChanged", json!({"speechConfirmation": value}))
    }

    /// Unsupported wake words are refused as a whole; the report tells AVS what is still active.
    pub fn set_wake_words(&mut self, host: &impl HostApi, wake_words: Vec<String>) -> Result<(), PluginError> {
        if let Some(unknown) = unsupported_wake_word(&wake_words) {
            let error = PluginError::unsupported(format!("wake word {unknown} is not supported by this device"));
            confirm(host, "WakeWordsReport", json!({"wakeWords": self.settings.wake_words}))?;
            return Err(error);
        }
        let next = Settings { wake_words, ..self.settings.clone() };
        self.commit(host, next)?;
        confirm(host, "WakeWordsChanged", json!({"wakeWords": self.settings.wake_words}))
    }

    /// Persisted first: a setting that would be lost on restart is refused rather than confirmed.
    fn commit(&mut self, host: &impl HostApi, next: Settings) -> Result<(), PluginError> {
        let value = serde_json::to_value(&next).map_err(|e| PluginError::internal(format!("settings: {e}")))?;
        host.store(SETTINGS_KEY, &value)?;
        self.settings = next;
        Ok(())
    }
}

fn confirm(host: &impl HostApi, event: &str, payload: Value) -> Result<(), PluginError> {
    host.send_event_with(event, &payload, &EventOptions::default()).map(drop)
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::SCHEMAS;

    fn user(profile: Profile, initiator: Option<Value>) -> UserRecognize {
        UserRecognize { profile, audio: json!({"file": "/tmp/u.wav"}), initiator }
    }

    #[test]
    fn a_tap_sends_recognize_with_context_a_new_dialog_and_the_audio() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.recognize(&host, user(Profile::CloseTalk, None)).unwrap();
        assert!(matches!(host.calls()[0], Call::Event(..)), "{:?}", host.calls());
        let sent = host.sent();
        let (name, payload, options) = &sent[0];
        assert_eq!(name, "Recognize");
        assert_eq!(
            payload,
            &json!({"profile": "CLOSE_TALK", "format": FORMAT, "initiator": {"type": "TAP", "payload": {}}})
        );
        assert_eq!(options, &json!({"context": true, "newDialog": true, "audio": {"file": "/tmp/u.wav"}}));
        assert_eq!(r.state(), State::Recognizing);
    }

    #[test]
    fn the_end_of_the_capture_makes_the_recognizer_busy() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.recognize(&host, user(Profile::NearField, None)).unwrap();
        r.media(8, "finished");
        assert_eq!(r.state(), State::Recognizing, "another stream's end is not ours");
        r.media(host.last_media(), "started");
        assert_eq!(r.state(), State::Recognizing);
        r.media(host.last_media(), "finished");
        assert_eq!(r.state(), State::Busy);
    }

    #[test]
    fn stop_capture_stops_the_audio_stream() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.stop_capture(&host);
        assert!(host.calls().is_empty(), "nothing to stop");
        r.recognize(&host, user(Profile::FarField, None)).unwrap();
        r.stop_capture(&host);
        assert!(host.has(&Call::Stop(host.last_media())));
        assert_eq!(r.state(), State::Busy);
    }

    #[test]
    fn expect_speech_times_out_with_an_event_when_nobody_speaks() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.expect_speech(&host, 8000, None).unwrap();
        assert!(host.has(&Call::Timer(8000, 0)));
        assert_eq!(r.state(), State::ExpectingSpeech);
        r.on_timer(&host, 55).unwrap();
        assert!(host.events().is_empty(), "not our timer");
        r.on_timer(&host, host.last_timer()).unwrap();
        assert_eq!(host.events(), [("ExpectSpeechTimedOut".to_string(), json!({}))]);
        assert_eq!(r.state(), State::Idle);
        r.on_timer(&host, host.last_timer()).unwrap();
        assert_eq!(host.events().len(), 1, "a stale firing sends nothing");
    }

    #[test]
    fn speech_after_expect_speech_echoes_its_initiator_and_cancels_the_timeout() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        let opaque = json!({"type": "WAKEWORD", "payload": {"token": "x"}, "token": "t-42"});
        r.expect_speech(&host, 8000, Some(opaque.clone())).unwrap();
        r.recognize(&host, user(Profile::CloseTalk, Some(json!({"type": "PRESS_AND_HOLD"})))).unwrap();
        assert!(host.has(&Call::CancelTimer(host.last_timer())));
        assert_eq!(host.events()[0].1["initiator"], opaque);
        r.on_timer(&host, host.last_timer()).unwrap();
        assert_eq!(host.events().len(), 1, "no ExpectSpeechTimedOut after the user spoke");
        r.recognize(&host, user(Profile::CloseTalk, Some(json!({"type": "PRESS_AND_HOLD"})))).unwrap();
        assert_eq!(host.events()[1].1["initiator"], json!({"type": "PRESS_AND_HOLD"}), "echoed only once");
    }

    #[test]
    fn expect_speech_is_refused_while_recognizing() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.recognize(&host, user(Profile::NearField, None)).unwrap();
        assert!(r.expect_speech(&host, 5000, None).is_err());
        assert_eq!(r.state(), State::Recognizing);
    }

    #[test]
    fn barge_in_is_allowed_on_close_talk_captures_only() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.recognize(&host, user(Profile::CloseTalk, None)).unwrap();
        let old = host.last_media();
        r.recognize(&host, user(Profile::CloseTalk, None)).unwrap();
        assert!(host.has(&Call::Stop(old)), "the old capture is stopped");
        assert_eq!(host.events().len(), 2);

        let mut far = Recognizer::new(Settings::default());
        let host = FakeHost::new(SCHEMAS);
        far.recognize(&host, user(Profile::FarField, None)).unwrap();
        assert!(far.recognize(&host, user(Profile::CloseTalk, None)).is_err());
        assert_eq!(host.events().len(), 1);
    }

    #[test]
    fn settings_are_persisted_then_confirmed() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        r.set_wake_word_confirmation(&host, Confirmation::Tone).unwrap();
        r.set_speech_confirmation(&host, Confirmation::Tone).unwrap();
        let stores = host.stores();
        assert!(matches!(&stores[0], (key, v) if key == SETTINGS_KEY && v["wakeWordConfirmation"] == "TONE"));
        let events = host.events();
        assert!(matches!(&events[0], (name, p)
            if name == "WakeWordConfirmationChanged" && p == &json!({"wakeWordConfirmation": "TONE"})));
        assert!(matches!(&events[1], (name, p)
            if name == "SpeechConfirmationChanged" && p == &json!({"speechConfirmation": "TONE"})));
        assert_eq!(r.settings().speech_confirmation, Confirmation::Tone);

        let failing = FakeHost::new(SCHEMAS).failing_store();
        assert!(r.set_speech_confirmation(&failing, Confirmation::None).is_err());
        assert!(failing.events().is_empty(), "a setting that was not persisted is not confirmed");
    }

    #[test]
    fn unsupported_wake_words_are_refused_with_a_report_of_the_active_ones() {
        let host = FakeHost::new(SCHEMAS);
        let mut r = Recognizer::new(Settings::default());
        let refused = r.set_wake_words(&host, vec!["ALEXA".into(), "COMPUTER".into()]);
        assert!(matches!(refused, Err(PluginError::Unsupported(m)) if m.contains("COMPUTER")));
        assert_eq!(host.events(), [("WakeWordsReport".to_string(), json!({"wakeWords": ["ALEXA"]}))]);
        assert_eq!(r.settings().wake_words, ["ALEXA"]);
        r.set_wake_words(&host, vec!["ALEXA".into()]).unwrap();
        assert_eq!(host.events()[1], ("WakeWordsChanged".to_string(), json!({"wakeWords": ["ALEXA"]})));
    }
}
