//! The Content channel for the A2DP source's audio. As the AVS Device SDK does (acsdkBluetooth
//! Bluetooth.cpp, executeEnterForeground/Background/None): the channel is acquired while the source
//! streams; in the BACKGROUND the source is paused (AVRCP) and resumed when the channel comes back to
//! the FOREGROUND; at NONE it is paused and the channel is gone. What to do is returned as [`Action`]s so
//! that the decisions can be tested without a host.

use avs_plugin_sdk::FocusState;

pub const CHANNEL: &str = "Content";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Acquire,
    Release,
    /// Pause the source with this MAC address.
    Pause(String),
    /// Resume the source this channel paused.
    Resume(String),
}

#[derive(Debug, Default)]
pub struct Content {
    /// Asked for or granted, and not given back.
    held: bool,
    /// The source paused because another activity took the foreground.
    paused_for_focus: Option<String>,
}

impl Content {
    pub fn streaming_started(&mut self) -> Vec<Action> {
        self.paused_for_focus = None;
        match std::mem::replace(&mut self.held, true) {
            true => Vec::new(),
            false => vec![Action::Acquire],
        }
    }

    /// The stream ended: give the channel back, unless it ended because the channel paused it and the
    /// foreground is still to come back.
    pub fn streaming_ended(&mut self) -> Vec<Action> {
        if self.paused_for_focus.is_some() {
            return Vec::new();
        }
        self.release()
    }

    /// The user (or AVS) stopped the source, or it went away.
    pub fn release(&mut self) -> Vec<Action> {
        self.paused_for_focus = None;
        match std::mem::take(&mut self.held) {
            true => vec![Action::Release],
            false => Vec::new(),
        }
    }

    /// `streaming`: the MAC of the source streaming now, if any.
    pub fn on_focus(&mut self, focus: FocusState, streaming: Option<&str>) -> Vec<Action> {
        match focus {
            FocusState::Foreground => self.paused_for_focus.take().map(Action::Resume).into_iter().collect(),
            FocusState::Background => match streaming {
                Some(mac) if self.held => {
                    self.paused_for_focus = Some(mac.to_string());
                    vec![Action::Pause(mac.to_string())]
                }
                _ => Vec::new(),
            },
            // Either the answer to our own release (nothing held) or the channel taken away.
            FocusState::None => {
                let was_held = std::mem::take(&mut self.held);
                self.paused_for_focus = None;
                match streaming {
                    Some(mac) if was_held => vec![Action::Pause(mac.to_string())],
                    _ => Vec::new(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PHONE: &str = "F4:60:E2:11:22:33";

    #[test]
    fn the_channel_is_held_while_the_source_streams() {
        let mut content = Content::default();
        assert_eq!(content.streaming_started(), [Action::Acquire]);
        assert!(content.streaming_started().is_empty(), "asked once");
        assert!(content.on_focus(FocusState::Foreground, Some(PHONE)).is_empty());
        assert_eq!(content.streaming_ended(), [Action::Release]);
        assert!(content.on_focus(FocusState::None, None).is_empty(), "the answer to our release");
    }

    #[test]
    fn the_background_pauses_the_source_and_the_foreground_resumes_it() {
        let mut content = Content::default();
        content.streaming_started();
        content.on_focus(FocusState::Foreground, Some(PHONE));
        assert_eq!(content.on_focus(FocusState::Background, Some(PHONE)), [Action::Pause(PHONE.into())]);
        assert!(content.streaming_ended().is_empty(), "paused by us: the channel is kept");
        assert_eq!(content.on_focus(FocusState::Foreground, None), [Action::Resume(PHONE.into())]);
        assert!(content.streaming_started().is_empty(), "still held");
    }

    #[test]
    fn losing_the_channel_pauses_the_source_for_good() {
        let mut content = Content::default();
        content.streaming_started();
        content.on_focus(FocusState::Foreground, Some(PHONE));
        assert_eq!(content.on_focus(FocusState::None, Some(PHONE)), [Action::Pause(PHONE.into())]);
        assert!(content.streaming_ended().is_empty(), "nothing left to release");
        assert!(content.on_focus(FocusState::Foreground, None).is_empty(), "nothing to resume");
        assert_eq!(content.streaming_started(), [Action::Acquire], "a new stream asks again");
    }

    #[test]
    fn a_stop_gives_the_channel_back_and_forgets_a_pause() {
        let mut content = Content::default();
        content.streaming_started();
        content.on_focus(FocusState::Background, Some(PHONE));
        assert_eq!(content.release(), [Action::Release]);
        assert!(content.on_focus(FocusState::Foreground, None).is_empty());
        assert!(content.release().is_empty());
    }
}
