//! The settings AVS manages on the device (SpeechRecognizer 2.1–2.3): confirmation tones and wake words.
//! Persisted so that they survive restarts; each change is confirmed with its *Changed event.

use serde::{Deserialize, Serialize};

/// The wake words this device can detect; also published in the capability configuration.
pub const SUPPORTED_WAKE_WORDS: &[&str] = &["ALEXA"];

/// The value of wakeWordConfirmation and speechConfirmation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Confirmation {
    #[default]
    None,
    Tone,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub wake_word_confirmation: Confirmation,
    pub speech_confirmation: Confirmation,
    pub wake_words: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            wake_word_confirmation: Confirmation::None,
            speech_confirmation: Confirmation::None,
            wake_words: SUPPORTED_WAKE_WORDS.iter().map(|w| w.to_string()).collect(),
        }
    }
}

/// The first requested wake word this device cannot detect, if any.
pub fn unsupported_wake_word(requested: &[String]) -> Option<&str> {
    requested.iter().map(String::as_str).find(|w| !SUPPORTED_WAKE_WORDS.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_use_the_avs_spelling() {
        assert_eq!(serde_json::to_value(Confirmation::Tone).unwrap(), "TONE");
        assert_eq!(serde_json::from_str::<Confirmation>(r#""NONE""#).unwrap(), Confirmation::None);
        assert!(serde_json::from_str::<Confirmation>(r#""BEEP""#).is_err());
    }

    #[test]
    fn only_alexa_is_supported() {
        assert_eq!(unsupported_wake_word(&["ALEXA".into()]), None);
        assert_eq!(unsupported_wake_word(&["ALEXA".into(), "COMPUTER".into()]), Some("COMPUTER"));
    }
}
