//! The channel focus manager: which interface may use the speaker (and the screen) right now.
//!
//! Audio channels in priority order Dialog > Communications > Alert > Content: the highest-priority
//! channel in use is in the FOREGROUND, every other channel in use is in the BACKGROUND (content ducks or
//! pauses, an alert attenuates). The Visual channel is independent. A plugin asks through host services
//! and is told of every change of its own focus by an `on_focus` call; every plugin also hears of every
//! change on any channel (`focus.changed`), which is what AudioActivityTracker and VisualActivityTracker
//! report from — as plugins, since the core knows no interface by name.

use std::collections::HashMap;
use std::sync::Mutex;

use avs_plugin_api::FocusState;

use crate::plugins::slot::{SlotCall, SlotSender};

pub const AUDIO_CHANNELS: [&str; 4] = ["Dialog", "Communications", "Alert", "Content"];
pub const VISUAL_CHANNEL: &str = "Visual";

#[derive(Debug, thiserror::Error)]
#[error("unknown focus channel {0:?} (known: Dialog, Communications, Alert, Content, Visual)")]
pub struct UnknownChannel(pub String);

/// Who holds each channel, and the plugins that hear of every change.
#[derive(Default)]
struct Channels {
    owners: HashMap<&'static str, SlotSender>,
    watchers: Vec<SlotSender>,
}

#[derive(Default)]
pub struct FocusManager {
    channels: Mutex<Channels>,
}

fn channel_name(channel: &str) -> Result<&'static str, UnknownChannel> {
    AUDIO_CHANNELS
        .iter()
        .chain(std::iter::once(&VISUAL_CHANNEL))
        .find(|c| c.eq_ignore_ascii_case(channel))
        .copied()
        .ok_or_else(|| UnknownChannel(channel.to_string()))
}

impl Channels {
    fn focus_of(&self, channel: &'static str) -> FocusState {
        if !self.owners.contains_key(channel) {
            return FocusState::None;
        }
        if channel == VISUAL_CHANNEL {
            return FocusState::Foreground;
        }
        let top = AUDIO_CHANNELS.iter().find(|c| self.owners.contains_key(*c));
        if top == Some(&channel) {
            FocusState::Foreground
        } else {
            FocusState::Background
        }
    }

    /// Each channel in use with its owner and focus, in priority order (Visual last).
    fn snapshot(&self) -> Vec<(&'static str, String, FocusState)> {
        let mut snapshot: Vec<_> = self
            .owners
            .iter()
            .map(|(channel, owner)| (*channel, owner.interface().to_string(), self.focus_of(channel)))
            .collect();
        snapshot.sort_by_key(|(channel, ..)| AUDIO_CHANNELS.iter().position(|c| c == channel).unwrap_or(usize::MAX));
        snapshot
    }
}

impl FocusManager {
    /// `slot` hears of every focus change from now on, as `focus.changed` host events.
    pub(crate) fn watch(&self, slot: SlotSender) {
        self.channels.lock().unwrap_or_else(|e| e.into_inner()).watchers.push(slot);
    }

    pub(crate) fn acquire(&self, channel: &str, owner: SlotSender) -> Result<(), UnknownChannel> {
        let channel = channel_name(channel)?;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        let before = channels.snapshot();
        let interface = owner.interface().to_string();
        if let Some(previous) = channels.owners.insert(channel, owner) {
            if previous.interface() != interface {
                previous.post(SlotCall::Focus(channel.to_string(), FocusState::None));
            }
        }
        let after = channels.snapshot();
        notify_changes(&mut channels, &before, &after, Some((channel, interface.as_str())));
        Ok(())
    }

    pub(crate) fn release(&self, channel: &str, interface: &str) -> Result<(), UnknownChannel> {
        let channel = channel_name(channel)?;
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if channels.owners.get(channel).map(|o| o.interface()) != Some(interface) {
            return Ok(());
        }
        let before = channels.snapshot();
        if let Some(owner) = channels.owners.remove(channel) {
            owner.post(SlotCall::Focus(channel.to_string(), FocusState::None));
        }
        let after = channels.snapshot();
        notify_changes(&mut channels, &before, &after, None);
        Ok(())
    }

    /// The focus an interface currently has on a channel.
    pub fn focus(&self, channel: &str, interface: &str) -> FocusState {
        let Ok(channel) = channel_name(channel) else {
            return FocusState::None;
        };
        let channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        match channels.owners.get(channel) {
            Some(owner) if owner.interface() == interface => channels.focus_of(channel),
            _ => FocusState::None,
        }
    }
}

/// Tells every owner whose focus changed (the acquirer always: its request is answered even if its
/// focus is what it was), and every watcher of every change, including a channel falling idle.
fn notify_changes(
    channels: &mut Channels,
    before: &[(&'static str, String, FocusState)],
    after: &[(&'static str, String, FocusState)],
    acquired: Option<(&'static str, &str)>,
) {
    // Who lost a channel first, then who gained or changed focus.
    let mut changes: Vec<(&str, &str, FocusState)> = before
        .iter()
        .filter(|(channel, interface, _)| !after.iter().any(|(c, i, _)| c == channel && i == interface))
        .map(|(channel, interface, _)| (*channel, interface.as_str(), FocusState::None))
        .collect();
    for (channel, interface, focus) in after {
        let was = before.iter().find(|(c, i, _)| c == channel && i == interface).map(|(_, _, f)| *f);
        let is_acquirer = acquired == Some((channel, interface.as_str()));
        if was != Some(*focus) || is_acquirer {
            if let Some(owner) = channels.owners.get(channel) {
                owner.post(SlotCall::Focus(channel.to_string(), *focus));
            }
        }
        if was != Some(*focus) {
            changes.push((*channel, interface.as_str(), *focus));
        }
    }
    // Slots that have shut down drop out of the watchers here.
    channels.watchers.retain(|watcher| {
        changes.iter().all(|(channel, interface, focus)| {
            let change = serde_json::json!({"channel": channel, "interface": interface, "focus": focus_name(*focus)});
            watcher.try_post(SlotCall::HostEvent("focus.changed".into(), change.to_string()))
        })
    });
}

fn focus_name(focus: FocusState) -> &'static str {
    match focus {
        FocusState::Foreground => "FOREGROUND",
        FocusState::Background => "BACKGROUND",
        FocusState::None => "NONE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugins::queue::CallQueue;

    fn focus_calls(queue: &CallQueue) -> Vec<(String, FocusState)> {
        let mut calls = Vec::new();
        while let Some(call) = queue.try_pop() {
            if let SlotCall::Focus(channel, focus) = call {
                calls.push((channel, focus));
            }
        }
        calls
    }

    #[test]
    fn dialog_pushes_content_to_the_background_and_gives_it_back() {
        let focus = FocusManager::default();
        let (player, player_rx) = SlotSender::for_test("AudioPlayer");
        let (speech, speech_rx) = SlotSender::for_test("SpeechSynthesizer");

        focus.acquire("Content", player.clone()).unwrap();
        assert_eq!(focus_calls(&player_rx), [("Content".to_string(), FocusState::Foreground)]);

        focus.acquire("Dialog", speech.clone()).unwrap();
        assert_eq!(focus_calls(&speech_rx), [("Dialog".to_string(), FocusState::Foreground)]);
        assert_eq!(focus_calls(&player_rx), [("Content".to_string(), FocusState::Background)]);
        assert_eq!(focus.focus("Content", "AudioPlayer"), FocusState::Background);

        focus.release("Dialog", "SpeechSynthesizer").unwrap();
        assert_eq!(focus_calls(&speech_rx), [("Dialog".to_string(), FocusState::None)]);
        assert_eq!(focus_calls(&player_rx), [("Content".to_string(), FocusState::Foreground)]);
    }

    fn focus_changes(queue: &CallQueue) -> Vec<String> {
        std::iter::from_fn(|| queue.try_pop())
            .filter_map(|call| match call {
                SlotCall::HostEvent(kind, change) if kind == "focus.changed" => Some(change),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn watchers_hear_of_every_change_on_every_channel() {
        let focus = FocusManager::default();
        let (tracker, changes) = SlotSender::for_test("AudioActivityTracker");
        focus.watch(tracker);
        let (player, _) = SlotSender::for_test("AudioPlayer");
        let (speech, _) = SlotSender::for_test("SpeechSynthesizer");
        focus.acquire("Content", player).unwrap();
        focus.acquire("Dialog", speech).unwrap();
        focus.release("Dialog", "SpeechSynthesizer").unwrap();
        let change = |channel: &str, interface: &str, focus: &str| {
            serde_json::json!({"channel": channel, "interface": interface, "focus": focus}).to_string()
        };
        assert_eq!(
            focus_changes(&changes),
            [
                change("Content", "AudioPlayer", "FOREGROUND"),
                change("Dialog", "SpeechSynthesizer", "FOREGROUND"),
                change("Content", "AudioPlayer", "BACKGROUND"),
                change("Dialog", "SpeechSynthesizer", "NONE"),
                change("Content", "AudioPlayer", "FOREGROUND"),
            ]
        );
    }

    #[test]
    fn a_new_owner_takes_the_channel_and_the_old_one_loses_focus() {
        let focus = FocusManager::default();
        let (a, a_rx) = SlotSender::for_test("Alerts");
        let (n, n_rx) = SlotSender::for_test("Notifications");
        focus.acquire("alert", a).unwrap();
        focus_calls(&a_rx);
        focus.acquire("Alert", n).unwrap();
        assert_eq!(focus_calls(&a_rx), [("Alert".to_string(), FocusState::None)]);
        assert_eq!(focus_calls(&n_rx), [("Alert".to_string(), FocusState::Foreground)]);
        // Releasing a channel one does not own changes nothing.
        focus.release("Alert", "Alerts").unwrap();
        assert_eq!(focus.focus("Alert", "Notifications"), FocusState::Foreground);
        assert!(focus.acquire("Radio", SlotSender::for_test("X").0).is_err());
    }
}
