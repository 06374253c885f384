//! From a button or toggle on the device to the PlaybackController event that reports it, as the AVS
//! Device SDK maps them in 1.1: PLAY, PAUSE, NEXT and PREVIOUS keep their dedicated 1.0 events with an
//! empty payload; SKIPFORWARD and SKIPBACKWARD go out as ButtonCommandIssued; toggles as
//! ToggleCommandIssued.

use avs_plugin_sdk::{EventOptions, HostApi, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// `user.button` host event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Button {
    Play,
    Pause,
    Next,
    Previous,
    SkipForward,
    SkipBackward,
}

/// `user.toggle` host event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Toggle {
    Shuffle,
    Loop,
    Repeat,
    ThumbsUp,
    ThumbsDown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Action {
    Select,
    Deselect,
}

/// What the user did on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Button(Button),
    Toggle(Toggle, Action),
}

impl Command {
    /// The event name and payload that report this command.
    pub fn event(self) -> (&'static str, Value) {
        match self {
            Command::Button(Button::Play) => ("PlayCommandIssued", json!({})),
            Command::Button(Button::Pause) => ("PauseCommandIssued", json!({})),
            Command::Button(Button::Next) => ("NextCommandIssued", json!({})),
            Command::Button(Button::Previous) => ("PreviousCommandIssued", json!({})),
            Command::Button(button) => ("ButtonCommandIssued", json!({"name": button})),
            Command::Toggle(name, action) => ("ToggleCommandIssued", json!({"name": name, "action": action})),
        }
    }

    /// Sends the event with the device context: AVS decides what to play from the player state in it.
    pub fn send(self, host: &impl HostApi) -> Result<(), PluginError> {
        let (name, payload) = self.event();
        let options = EventOptions { context: true, ..EventOptions::default() };
        host.send_event_with(name, &payload, &options).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::FakeHost;

    use super::*;
    use crate::schema_check::SCHEMAS;

    fn sent(command: Command) -> (String, Value) {
        let host = FakeHost::new(SCHEMAS);
        command.send(&host).unwrap();
        host.events().remove(0)
    }

    #[test]
    fn the_four_transport_buttons_keep_their_dedicated_events() {
        for (button, event) in [
            (Button::Play, "PlayCommandIssued"),
            (Button::Pause, "PauseCommandIssued"),
            (Button::Next, "NextCommandIssued"),
            (Button::Previous, "PreviousCommandIssued"),
        ] {
            assert_eq!(sent(Command::Button(button)), (event.to_string(), json!({})));
        }
    }

    #[test]
    fn skip_buttons_are_button_commands() {
        assert_eq!(
            sent(Command::Button(Button::SkipForward)),
            ("ButtonCommandIssued".to_string(), json!({"name": "SKIPFORWARD"}))
        );
        assert_eq!(sent(Command::Button(Button::SkipBackward)).1, json!({"name": "SKIPBACKWARD"}));
    }

    #[test]
    fn toggles_carry_name_and_action() {
        assert_eq!(
            sent(Command::Toggle(Toggle::ThumbsUp, Action::Deselect)),
            ("ToggleCommandIssued".to_string(), json!({"name": "THUMBSUP", "action": "DESELECT"}))
        );
        assert_eq!(
            sent(Command::Toggle(Toggle::Shuffle, Action::Select)).1,
            json!({"name": "SHUFFLE", "action": "SELECT"})
        );
    }

    #[test]
    fn host_names_parse_in_avs_spelling_only() {
        assert_eq!(serde_json::from_value::<Button>(json!("SKIPBACKWARD")).unwrap(), Button::SkipBackward);
        assert_eq!(serde_json::from_value::<Toggle>(json!("THUMBSDOWN")).unwrap(), Toggle::ThumbsDown);
        assert!(serde_json::from_value::<Button>(json!("play")).is_err());
        assert!(serde_json::from_value::<Action>(json!("TOGGLE")).is_err());
    }
}
