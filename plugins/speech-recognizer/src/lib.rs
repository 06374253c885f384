//! SpeechRecognizer 2.3: turns the user's speech into a Recognize event (the host streams the audio),
//! handles ExpectSpeech (listen again, or time out), StopCapture, and the 2.1–2.3 settings directives.

mod recognizer;
#[cfg(test)]
mod schema_check;
mod settings;

use avs_plugin_sdk::{
    export_plugin, Directive, DirectiveSpec, EventSpec, Handling, Host, HostApi, HostCell, Interface, LogLevel,
    Manifest, MediaEvent, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use recognizer::{Recognizer, UserRecognize, SETTINGS_KEY};
use settings::{Confirmation, Settings, SUPPORTED_WAKE_WORDS};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExpectSpeech {
    timeout_in_milliseconds: u64,
    initiator: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetWakeWordConfirmation {
    wake_word_confirmation: Confirmation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetSpeechConfirmation {
    speech_confirmation: Confirmation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SetWakeWords {
    wake_words: Vec<String>,
}

pub struct SpeechRecognizer {
    host: HostCell,
    recognizer: Recognizer,
}

impl Default for SpeechRecognizer {
    fn default() -> Self {
        SpeechRecognizer { host: HostCell::default(), recognizer: Recognizer::new(Settings::default()) }
    }
}

fn parse<'a, T: Deserialize<'a>>(what: &str, payload: &'a str) -> Result<T, PluginError> {
    serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("{what}: {e}")))
}

impl Interface for SpeechRecognizer {
    fn manifest() -> Manifest {
        // All non-blocking with no medium, as in the AVS Device SDK: ExpectSpeech still runs only after
        // the Speak before it, because the host holds a dialog behind a blocking Speak.
        let directives = [
            "StopCapture",
            "ExpectSpeech",
            "SetEndOfSpeechOffset",
            "SetWakeWordConfirmation",
            "SetSpeechConfirmation",
            "SetWakeWords",
        ];
        // A confirmation of a settings change must not be lost, or the cloud and device disagree.
        let confirmations = ["WakeWordConfirmationChanged", "SpeechConfirmationChanged", "WakeWordsChanged"];
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
        let event = |name: &str| {
            let spec = EventSpec::new(name);
            if confirmations.contains(&name) {
                spec.must_deliver()
            } else {
                spec
            }
        };
        Manifest {
            directives: directives.into_iter().map(DirectiveSpec::new).collect(),
            events: events.into_iter().map(event).collect(),
            // The AVS Device SDK publishes maximumConcurrentWakeWords next to the wake words.
            configurations: Some(json!({
                "wakeWords": [{"scopes": ["DEFAULT"], "values": [SUPPORTED_WAKE_WORDS]}],
                "maximumConcurrentWakeWords": 1,
            })),
            // No context: 2.3 removed the RecognizerState context.
            ..avs_plugin_sdk::manifest!("SpeechRecognizer", "2.3")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(settings) = host.load::<Settings>(SETTINGS_KEY) {
            self.recognizer.set_settings(settings);
        }
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let host = self.host.get()?;
        let r = &mut self.recognizer;
        match directive.name {
            "StopCapture" => r.stop_capture(host),
            "ExpectSpeech" => {
                let expect: ExpectSpeech = directive.payload()?;
                r.expect_speech(host, expect.timeout_in_milliseconds, expect.initiator)?;
            }
            // Metrics only on a device; nothing to act on.
            "SetEndOfSpeechOffset" => host.log(LogLevel::Debug, &format!("SetEndOfSpeechOffset {}", directive.payload)),
            "SetWakeWordConfirmation" => {
                let set: SetWakeWordConfirmation = directive.payload()?;
                r.set_wake_word_confirmation(host, set.wake_word_confirmation)?;
            }
            "SetSpeechConfirmation" => {
                let set: SetSpeechConfirmation = directive.payload()?;
                r.set_speech_confirmation(host, set.speech_confirmation)?;
            }
            "SetWakeWords" => {
                let set: SetWakeWords = directive.payload()?;
                r.set_wake_words(host, set.wake_words)?;
            }
            other => return Err(PluginError::unsupported(format!("SpeechRecognizer 2.3 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_timer(&mut self, timer: u64) -> Result<(), PluginError> {
        self.recognizer.on_timer(self.host.get()?, timer)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        match kind {
            "user.recognize" => {
                let request: UserRecognize = parse("user.recognize", payload)?;
                self.recognizer.recognize(self.host.get()?, request)
            }
            "media" => {
                let event = MediaEvent::parse(payload)?;
                self.recognizer.media(event.id, &event.state);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn export_state(&self) -> Value {
        json!(self.recognizer.settings())
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        let settings = serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        self.recognizer.set_settings(settings);
        Ok(())
    }
}

export_plugin!(SpeechRecognizer, "$CARGO_MANIFEST_DIR/../../schemas/SpeechRecognizer/2.3");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_recognize_defaults_to_close_talk_and_needs_audio() {
        let r: UserRecognize = serde_json::from_str(r#"{"audio":{"file":"/tmp/u.wav"}}"#).unwrap();
        assert_eq!(r.profile, recognizer::Profile::CloseTalk);
        assert!(r.initiator.is_none());
        assert!(parse::<UserRecognize>("user.recognize", r#"{"profile":"CLOSE_TALK"}"#).is_err());
        assert!(parse::<UserRecognize>("user.recognize", r#"{"profile":"LOUD","audio":{}}"#).is_err());
    }

    #[test]
    fn settings_round_trip_through_export_and_import() {
        let mut a = SpeechRecognizer::default();
        a.import_state(json!({"wakeWordConfirmation": "TONE", "speechConfirmation": "NONE", "wakeWords": ["ALEXA"]}))
            .unwrap();
        let mut b = SpeechRecognizer::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.recognizer.settings().wake_word_confirmation, Confirmation::Tone);
        assert!(b.import_state(json!({"wakeWordConfirmation": "LOUD"})).is_err());
    }

    #[test]
    fn manifest_publishes_the_wake_word_configuration() {
        let m = SpeechRecognizer::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("SpeechRecognizer", "2.3"));
        let configurations = m.configurations.unwrap();
        crate::schema_check::assert_valid("capability.json", &configurations);
        assert_eq!(configurations["wakeWords"], json!([{"scopes": ["DEFAULT"], "values": [["ALEXA"]]}]));
        assert_eq!(configurations["maximumConcurrentWakeWords"], 1);
        assert!(m.context.is_empty());
        assert!(m.directives.iter().all(|d| !d.blocking), "ExpectSpeech is sequenced by the Speak before it");
        let recognize = m.events.iter().find(|e| e.name == "Recognize").unwrap();
        assert!(!recognize.must_deliver, "a stale Recognize is worthless after a restart");
    }
}
