//! SpeechSynthesizer 1.0 and 1.3: plays Alexa's speech (Speak, an MP3 `cid:` attachment) on the Dialog
//! channel and reports SpeechStarted / SpeechFinished, and from 1.3 on SpeechInterrupted; 1.3 also adds
//! Speak's playBehavior.
//!
//! Speak is a blocking directive: the host holds the rest of the dialog (ExpectSpeech, Play…) until this
//! plugin completes it, which it does when playback ends — naturally, interrupted, or failed.

#[cfg(test)]
mod schema_check;
mod synthesizer;

use std::time::Instant;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventSpec, FocusState, Handling, Host, HostCell, Interface, Manifest,
    MediaEvent, Medium, PluginError,
};
use serde::Deserialize;
use serde_json::Value;

use synthesizer::{PlayBehavior, Speech, Synthesizer, CHANNEL};

const INTERFACE: &str = "SpeechSynthesizer";

/// The Speak payload fields this device uses (`format` is always AUDIO_MPEG, checked by the schema;
/// `caption` has nowhere to be shown on a headless device).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Speak {
    url: String,
    token: String,
    #[serde(default)]
    play_behavior: PlayBehavior,
}

/// SpeechSynthesizer 1.`MINOR`; the plugin libraries export `SpeechSynthesizer<0>` and `SpeechSynthesizer<3>`.
pub struct SpeechSynthesizer<const MINOR: u8> {
    host: HostCell,
    synthesizer: Synthesizer,
}

impl<const MINOR: u8> Default for SpeechSynthesizer<MINOR> {
    fn default() -> Self {
        SpeechSynthesizer { host: HostCell::default(), synthesizer: Synthesizer::new(MINOR) }
    }
}

impl<const MINOR: u8> Interface for SpeechSynthesizer<MINOR> {
    fn manifest() -> Manifest {
        Manifest {
            directives: vec![DirectiveSpec::new("Speak").blocking(Medium::Audio).on_channel(CHANNEL)],
            // Worthless after a restart: the dialog they describe is gone.
            events: ["SpeechStarted", "SpeechFinished", "SpeechInterrupted"]
                .into_iter()
                .take(if MINOR >= 3 { 3 } else { 2 })
                .map(EventSpec::new)
                .collect(),
            context: vec!["SpeechState".into()],
            ..avs_plugin_sdk::manifest!(INTERFACE, format!("1.{MINOR}"))
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        if directive.name != "Speak" {
            let name = directive.name;
            return Err(PluginError::unsupported(format!("SpeechSynthesizer 1.{MINOR} has no directive {name}")));
        }
        let speak: Speak = directive.payload()?;
        // Before 1.3 there is no playBehavior; a field the version does not define is ignored.
        let play_behavior = if MINOR >= 3 { speak.play_behavior } else { PlayBehavior::default() };
        let speech = Speech { message_id: directive.message_id.into(), token: speak.token, url: speak.url };
        self.synthesizer.speak(self.host.get()?, speech, play_behavior, Instant::now())?;
        Ok(Handling::Pending)
    }

    fn cancel(&mut self, message_id: &str) -> Result<(), PluginError> {
        self.synthesizer.cancel(self.host.get()?, message_id, Instant::now())
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel != CHANNEL {
            return Ok(());
        }
        self.synthesizer.on_focus(self.host.get()?, focus, Instant::now())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "media" {
            return Ok(());
        }
        let event = MediaEvent::parse(payload)?;
        let host = self.host.get()?;
        let now = Instant::now();
        self.synthesizer.on_media(
            host,
            event.id,
            &event.state,
            event.offset_in_milliseconds.unwrap_or(0),
            event.error,
            now,
        )
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "SpeechState", self.synthesizer.speech_state(Instant::now()))]
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let Ok(host) = self.host.get() {
            self.synthesizer.stop(host);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn play_behaviors_parse_and_default_to_replace_all() {
        let speak: Speak = serde_json::from_str(r#"{"url":"cid:a","format":"AUDIO_MPEG","token":"t"}"#).unwrap();
        assert_eq!(speak.play_behavior, PlayBehavior::ReplaceAll);
        let speak: Speak =
            serde_json::from_str(r#"{"url":"cid:a","token":"t","playBehavior":"REPLACE_ENQUEUED"}"#).unwrap();
        assert_eq!(speak.play_behavior, PlayBehavior::ReplaceEnqueued);
        assert!(serde_json::from_str::<Speak>(r#"{"url":"cid:a","token":"t","playBehavior":"LATER"}"#).is_err());
    }

    #[test]
    fn speak_is_a_blocking_audio_directive_on_the_dialog_channel() {
        let m = SpeechSynthesizer::<3>::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("SpeechSynthesizer", "1.3"));
        assert_eq!(m.events.len(), 3);
        let old = SpeechSynthesizer::<0>::manifest();
        assert_eq!(old.version, "1.0");
        assert!(old.events.iter().all(|e| e.name != "SpeechInterrupted"), "SpeechInterrupted is new in 1.3");
        let speak = &m.directives[0];
        assert_eq!((speak.name.as_str(), speak.blocking, speak.medium), ("Speak", true, Medium::Audio));
        assert_eq!(speak.channel.as_deref(), Some("Dialog"));
    }

    #[test]
    fn the_initial_context_is_finished_with_no_token() {
        let s = SpeechSynthesizer::<3>::default();
        let context = s.context();
        assert_eq!(context[0]["header"], json!({"namespace": "SpeechSynthesizer", "name": "SpeechState"}));
        assert_eq!(
            context[0]["payload"],
            json!({"token": "", "offsetInMilliseconds": 0, "playerActivity": "FINISHED"})
        );
    }
}
