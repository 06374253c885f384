//! What the screen shows and for how long. One card at a time, the newest: a RenderTemplate stays while
//! the Dialog channel is in use (Alexa speaks its answer), a now-playing card while the Content channel is;
//! once that channel is idle the card is cleared after a fixed time, as the AVS Device SDK's TemplateRuntime
//! does (TTS_FINISHED_TIMEOUT_MS, AUDIO_FINISHED_TIMEOUT_MS). The Visual channel is held while a card is
//! shown, so that VisualActivityTracker reports it.

use avs_plugin_sdk::{FocusState, HostApi, PluginError};
use serde_json::{json, Value};

pub const CHANNEL: &str = "Visual";

/// The host's device service that shows cards.
const DISPLAY: &str = "display";

/// How long a card stays once its channel is idle: the AVS Device SDK's TemplateRuntime clears a card 2000 ms
/// after its speech or its audio finished (CapabilityAgents/TemplateRuntime/src/TemplateRuntime.cpp).
pub const CARD_TIMEOUT_MS: u64 = 2_000;

/// A card for the `display` device service: `text` for a terminal, `card` for a GUI.
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    pub token: String,
    pub text: String,
    pub card: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Template,
    PlayerInfo,
}

impl Kind {
    /// The audio channel whose activity keeps a card of this kind on screen.
    fn channel(self) -> &'static str {
        match self {
            Kind::Template => "Dialog",
            Kind::PlayerInfo => "Content",
        }
    }
}

impl Card {
    fn show(&self, host: &impl HostApi) -> Result<(), PluginError> {
        let request = json!({"op": "show", "token": self.token, "text": self.text, "card": self.card});
        host.request(DISPLAY, &request).map(drop)
    }
}

fn clear(host: &impl HostApi, token: &str) -> Result<(), PluginError> {
    host.request(DISPLAY, &json!({"op": "clear", "token": token})).map(drop)
}

/// The Visual channel as this plugin holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Visual {
    Idle,
    /// Asked for, not answered yet: a NONE now is the late answer to an earlier release.
    Requested,
    Held,
}

#[derive(Debug)]
struct Shown {
    token: String,
    kind: Kind,
    /// Running while the card's channel is idle.
    timer: Option<u64>,
}

#[derive(Debug)]
pub struct Screen {
    timeout_ms: u64,
    shown: Option<Shown>,
    /// The latest RenderPlayerInfo: shown again when its audio resumes or a template in front of it goes.
    now_playing: Option<Card>,
    dialog_busy: bool,
    content_busy: bool,
    visual: Visual,
}

impl Default for Screen {
    fn default() -> Self {
        Screen::new(CARD_TIMEOUT_MS)
    }
}

impl Screen {
    pub fn new(timeout_ms: u64) -> Self {
        Screen {
            timeout_ms,
            shown: None,
            now_playing: None,
            dialog_busy: false,
            content_busy: false,
            visual: Visual::Idle,
        }
    }

    pub fn show_template(&mut self, host: &impl HostApi, card: Card) -> Result<(), PluginError> {
        self.show(host, card, Kind::Template)
    }

    /// A RenderPlayerInfo: it replaces the one kept (another item's, or an update of the same item's).
    pub fn show_player_info(&mut self, host: &impl HostApi, card: Card) -> Result<(), PluginError> {
        self.now_playing = Some(card.clone());
        self.show(host, card, Kind::PlayerInfo)
    }

    /// An audio channel came into use or went idle (`focus.changed`).
    pub fn on_channel_activity(&mut self, host: &impl HostApi, channel: &str, busy: bool) -> Result<(), PluginError> {
        match channel {
            "Dialog" => self.dialog_busy = busy,
            "Content" => self.content_busy = busy,
            _ => return Ok(()),
        }
        match &mut self.shown {
            Some(shown) if shown.kind.channel() == channel => {
                if busy {
                    if let Some(timer) = shown.timer.take() {
                        host.cancel_timer(timer);
                    }
                } else {
                    self.arm(host);
                }
                Ok(())
            }
            None if channel == "Content" && busy => match self.now_playing.clone() {
                Some(card) => self.show(host, card, Kind::PlayerInfo),
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    pub fn on_timer(&mut self, host: &impl HostApi, timer: u64) -> Result<(), PluginError> {
        if self.shown.as_ref().and_then(|s| s.timer) != Some(timer) {
            return Ok(()); // the timer of a card replaced meanwhile
        }
        let shown = self.shown.take().expect("a card with this timer");
        if shown.kind == Kind::Template && self.content_busy {
            if let Some(card) = self.now_playing.clone() {
                return self.show(host, card, Kind::PlayerInfo);
            }
        }
        self.release(host);
        clear(host, &shown.token)
    }

    pub fn on_visual_focus(&mut self, host: &impl HostApi, focus: FocusState) -> Result<(), PluginError> {
        match (self.visual, focus) {
            (Visual::Requested, FocusState::Foreground | FocusState::Background) => self.visual = Visual::Held,
            (Visual::Requested, FocusState::None) | (Visual::Held, FocusState::Foreground | FocusState::Background) => {
            }
            (Visual::Held, FocusState::None) => {
                // Another interface took the screen: what it shows is in front of this card.
                self.visual = Visual::Idle;
                if let Some(shown) = self.shown.take() {
                    if let Some(timer) = shown.timer {
                        host.cancel_timer(timer);
                    }
                    clear(host, &shown.token)?;
                }
            }
            // Granted after the card was cleared: give it back.
            (Visual::Idle, FocusState::Foreground | FocusState::Background) => host.release_focus(CHANNEL),
            (Visual::Idle, FocusState::None) => {}
        }
        Ok(())
    }

    /// Clears the screen (shutdown).
    pub fn clear(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        self.release(host);
        match self.shown.take() {
            Some(shown) => {
                if let Some(timer) = shown.timer {
                    host.cancel_timer(timer);
                }
                clear(host, &shown.token)
            }
            None => Ok(()),
        }
    }

    fn show(&mut self, host: &impl HostApi, card: Card, kind: Kind) -> Result<(), PluginError> {
        let acquired = self.visual == Visual::Idle;
        if acquired {
            host.acquire_focus(CHANNEL)?;
            self.visual = Visual::Requested;
        }
        if let Err(e) = card.show(host) {
            if acquired {
                self.release(host);
            }
            return Err(e);
        }
        if let Some(timer) = self.shown.take().and_then(|old| old.timer) {
            host.cancel_timer(timer);
        }
        self.shown = Some(Shown { token: card.token, kind, timer: None });
        self.arm(host);
        Ok(())
    }

    /// Starts the shown card's timer if its channel is idle.
    fn arm(&mut self, host: &impl HostApi) {
        let (dialog_busy, content_busy) = (self.dialog_busy, self.content_busy);
        if let Some(shown) = &mut self.shown {
            let busy = match shown.kind {
                Kind::Template => dialog_busy,
                Kind::PlayerInfo => content_busy,
            };
            if !busy && shown.timer.is_none() {
                shown.timer = Some(host.start_timer(self.timeout_ms, 0));
            }
        }
    }

    fn release(&mut self, host: &impl HostApi) {
        if self.visual != Visual::Idle {
            host.release_focus(CHANNEL);
            self.visual = Visual::Idle;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::SCHEMAS;

    fn card(token: &str) -> Card {
        Card { token: token.into(), text: format!("[{token}]"), card: json!({}) }
    }

    /// The display request that shows `card(token)`.
    fn show(token: &str) -> Call {
        Call::Request(DISPLAY.into(), json!({"op": "show", "token": token, "text": format!("[{token}]"), "card": {}}))
    }

    fn clear(token: &str) -> Call {
        Call::Request(DISPLAY.into(), json!({"op": "clear", "token": token}))
    }

    const T: u64 = 500;

    #[test]
    fn a_template_stays_while_alexa_speaks_and_goes_a_fixed_time_after() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.on_channel_activity(&host, "Dialog", true).unwrap();
        screen.show_template(&host, card("a")).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), show("a")], "no timer while the dialog is busy");
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        screen.on_channel_activity(&host, "Content", false).unwrap();
        assert!(host.take().is_empty(), "other channels do not matter to a template");
        screen.on_channel_activity(&host, "Dialog", false).unwrap();
        assert_eq!(host.take(), [Call::Timer(T, 0)]);
        screen.on_timer(&host, 1).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into()), clear("a")]);
    }

    #[test]
    fn speech_starting_again_stops_the_clock() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.show_template(&host, card("a")).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), show("a"), Call::Timer(T, 0)], "dialog already idle");
        screen.on_channel_activity(&host, "Dialog", true).unwrap();
        assert_eq!(host.take(), [Call::CancelTimer(1)]);
        screen.on_timer(&host, 1).unwrap();
        assert!(host.take().is_empty(), "a cancelled timer that fired anyway changes nothing");
        screen.on_channel_activity(&host, "Dialog", false).unwrap();
        assert_eq!(host.take(), [Call::Timer(T, 0)]);
    }

    #[test]
    fn a_newer_card_replaces_the_older_and_cancels_its_timer() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.show_template(&host, card("a")).unwrap();
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        host.take();
        screen.show_template(&host, card("b")).unwrap();
        assert_eq!(host.take(), [show("b"), Call::CancelTimer(1), Call::Timer(T, 0)], "the channel is kept");
        screen.on_timer(&host, 1).unwrap();
        assert!(host.take().is_empty(), "the old card's late timer does not clear the new one");
        screen.on_timer(&host, 2).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into()), clear("b")]);
    }

    #[test]
    fn now_playing_stays_while_content_plays_and_comes_back_after_a_template() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.on_channel_activity(&host, "Content", true).unwrap();
        screen.show_player_info(&host, card("item-1")).unwrap();
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), show("item-1")]);

        screen.on_channel_activity(&host, "Dialog", true).unwrap();
        screen.show_template(&host, card("weather")).unwrap();
        screen.on_channel_activity(&host, "Dialog", false).unwrap();
        assert_eq!(host.take(), [show("weather"), Call::Timer(T, 0)]);
        screen.on_timer(&host, 1).unwrap();
        assert_eq!(host.take(), [show("item-1")], "music still plays: its card returns, no timer");

        screen.on_channel_activity(&host, "Content", false).unwrap();
        assert_eq!(host.take(), [Call::Timer(T, 0)]);
        screen.on_timer(&host, 2).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into()), clear("item-1")]);
        screen.on_channel_activity(&host, "Content", true).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), show("item-1")], "playback resumed: shown again");
    }

    #[test]
    fn a_player_info_for_another_item_replaces_the_kept_one() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.on_channel_activity(&host, "Content", true).unwrap();
        screen.show_player_info(&host, card("item-1")).unwrap();
        screen.show_player_info(&host, card("item-2")).unwrap();
        screen.on_channel_activity(&host, "Content", false).unwrap();
        screen.on_timer(&host, 1).unwrap();
        host.take();
        screen.on_channel_activity(&host, "Content", true).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), show("item-2")]);
    }

    #[test]
    fn losing_the_visual_channel_clears_the_card_and_a_late_none_after_a_release_does_not() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.show_template(&host, card("a")).unwrap();
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        screen.on_timer(&host, 1).unwrap();
        screen.show_template(&host, card("b")).unwrap();
        host.take();
        screen.on_visual_focus(&host, FocusState::None).unwrap(); // the answer to a's release
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        assert!(host.take().is_empty(), "b stays");
        screen.on_visual_focus(&host, FocusState::None).unwrap();
        assert_eq!(host.take(), [Call::CancelTimer(2), clear("b")]);
        screen.on_visual_focus(&host, FocusState::Foreground).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())], "granted with nothing to show: given back");
    }

    #[test]
    fn a_card_the_display_refuses_leaves_no_trace() {
        let host = FakeHost::new(SCHEMAS).answering(DISPLAY, Err(PluginError::internal("display: no screen")));
        let mut screen = Screen::new(T);
        assert!(screen.show_template(&host, card("a")).is_err());
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), Call::Release(CHANNEL.into())]);
        assert!(screen.shown.is_none());
    }

    #[test]
    fn clear_takes_the_card_and_the_channel_away() {
        let host = FakeHost::new(SCHEMAS);
        let mut screen = Screen::new(T);
        screen.show_template(&host, card("a")).unwrap();
        host.take();
        screen.clear(&host).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into()), Call::CancelTimer(1), clear("a")]);
        screen.clear(&host).unwrap();
        assert!(host.take().is_empty());
    }
}
