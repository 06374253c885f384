//! The audio indicator: each SetIndicator's asset played once, in order, on the Alert channel.
//!
//! Alert, because the AVS docs (implement-avs-notifications.html) map notifications to the Alerts channel of
//! the interaction model: the user must hear them even while Alexa speaks or music plays. The chime
//! therefore plays in the BACKGROUND too (as the AVS Device SDK's NotificationRenderer does on its
//! mixable channel), and only losing the channel altogether (NONE, e.g. an alarm taking it) silences it.

use std::collections::VecDeque;

use avs_plugin_sdk::{FocusState, HostApi, LogLevel, PluginError};
use serde::Deserialize;
use serde_json::json;

pub const CHANNEL: &str = "Alert";

/// SetIndicator's `asset`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    pub asset_id: String,
    pub url: String,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Idle,
    AwaitingFocus(Asset),
    Playing(Asset, u64),
}

#[derive(Debug)]
pub struct Chime {
    queue: VecDeque<Asset>,
    stage: Stage,
}

impl Default for Chime {
    fn default() -> Self {
        Chime { queue: VecDeque::new(), stage: Stage::Idle }
    }
}

impl Chime {
    /// Queues `asset`; the same asset as the one being rendered is not played twice (as in the AVS
    /// Device SDK, which ignores a SetIndicator repeating the current assetId).
    pub fn enqueue(&mut self, host: &impl HostApi, asset: Asset) -> Result<(), PluginError> {
        let current = match &self.stage {
            Stage::AwaitingFocus(current) | Stage::Playing(current, _) => Some(current),
            Stage::Idle => None,
        };
        if current.is_some_and(|c| c.asset_id == asset.asset_id) {
            return Ok(());
        }
        self.queue.push_back(asset);
        if self.stage != Stage::Idle {
            return Ok(());
        }
        let next = self.queue.pop_front().expect("just queued");
        host.acquire_focus(CHANNEL)?;
        self.stage = Stage::AwaitingFocus(next);
        Ok(())
    }

    pub fn on_focus(&mut self, host: &impl HostApi, focus: FocusState) {
        match (std::mem::replace(&mut self.stage, Stage::Idle), focus) {
            (Stage::AwaitingFocus(asset), FocusState::Foreground | FocusState::Background) => {
                self.play_from(host, Some(asset))
            }
            // The answer to an earlier release, delivered late: a request is answered with FOREGROUND
            // or BACKGROUND, never NONE, so the real answer is still to come.
            (waiting @ Stage::AwaitingFocus(_), FocusState::None) => self.stage = waiting,
            (Stage::Playing(asset, media), FocusState::None) => {
                // Someone else took the channel; taking it back would silence them in turn.
                host.stop_media(media);
                let dropped = self.queue.len();
                self.queue.clear();
                host.log(
                    LogLevel::Warn,
                    &format!(
                        "audio indicator {} cut off: lost the Alert channel ({dropped} more dropped)",
                        asset.asset_id
                    ),
                );
            }
            (playing @ Stage::Playing(..), _) => self.stage = playing,
            // Granted after everything was cleared: give it back.
            (Stage::Idle, FocusState::Foreground | FocusState::Background) => host.release_focus(CHANNEL),
            (Stage::Idle, FocusState::None) => {}
        }
    }

    /// A `media` host event of the player.
    pub fn on_media(&mut self, host: &impl HostApi, media: u64, state: &str, error: Option<&str>) {
        let Stage::Playing(asset, playing) = &self.stage else {
            return;
        };
        if *playing != media {
            return; // a late event of a chime already stopped
        }
        match state {
            "finished" | "stopped" => {}
            "failed" => {
                let error = error.unwrap_or("playback failed");
                host.log(LogLevel::Warn, &format!("audio indicator {} failed: {error}", asset.asset_id));
            }
            _ => return,
        }
        self.stage = Stage::Idle;
        self.play_from(host, None);
    }

    /// Stops the chime, forgets the queue and gives the channel back (ClearIndicator, shutdown).
    pub fn clear(&mut self, host: &impl HostApi) {
        self.queue.clear();
        match std::mem::replace(&mut self.stage, Stage::Idle) {
            Stage::Playing(_, media) => {
                host.stop_media(media);
                host.release_focus(CHANNEL);
            }
            Stage::AwaitingFocus(_) => host.release_focus(CHANNEL),
            Stage::Idle => {}
        }
    }

    /// With the channel held: plays `first`, else the next queued asset, skipping those the player
    /// refuses, and releases the channel when nothing is left. A failing asset is the user's loss, not
    /// an error of its directive (there is no local fallback sound on this device).
    fn play_from(&mut self, host: &impl HostApi, first: Option<Asset>) {
        let mut next = first.or_else(|| self.queue.pop_front());
        while let Some(asset) = next {
            match host.play(&asset.url, &json!({})) {
                Ok(media) => {
                    self.stage = Stage::Playing(asset, media);
                    return;
                }
                Err(e) => host.log(LogLevel::Warn, &format!("audio indicator {} not played: {e}", asset.asset_id)),
            }
            next = self.queue.pop_front();
        }
        self.stage = Stage::Idle;
        host.release_focus(CHANNEL);
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::SCHEMAS;

    fn asset(id: &str) -> Asset {
        Asset { asset_id: id.into(), url: format!("/sounds/{id}.wav") }
    }

    #[test]
    fn plays_once_the_alert_channel_is_granted_and_releases_it_when_finished() {
        let host = FakeHost::new(SCHEMAS);
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into())], "nothing plays before the channel is granted");
        chime.on_focus(&host, FocusState::Background);
        assert_eq!(
            host.take(),
            [Call::Play("/sounds/a.wav".into(), json!({}))],
            "a notification is heard under speech too"
        );
        chime.on_media(&host, 1, "started", None);
        assert!(host.take().is_empty());
        chime.on_media(&host, 1, "finished", None);
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())]);
    }

    #[test]
    fn queued_assets_play_in_order_on_the_same_grant_and_a_repeat_of_the_current_is_ignored() {
        let host = FakeHost::new(SCHEMAS);
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        chime.on_focus(&host, FocusState::Foreground);
        chime.enqueue(&host, asset("a")).unwrap();
        chime.enqueue(&host, asset("b")).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), Call::Play("/sounds/a.wav".into(), json!({}))]);
        chime.on_media(&host, 1, "finished", None);
        assert_eq!(host.take(), [Call::Play("/sounds/b.wav".into(), json!({}))]);
        chime.on_media(&host, 2, "finished", None);
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())]);
    }

    #[test]
    fn a_failing_asset_is_logged_and_the_queue_goes_on() {
        let host = FakeHost::new(SCHEMAS).unplayable("/sounds/b.wav");
        let mut chime = Chime::default();
        for id in ["a", "b", "c"] {
            chime.enqueue(&host, asset(id)).unwrap();
        }
        chime.on_focus(&host, FocusState::Foreground);
        chime.on_media(&host, 1, "failed", Some("decoder error"));
        assert_eq!(
            host.take(),
            [
                Call::Acquire(CHANNEL.into()),
                Call::Play("/sounds/a.wav".into(), json!({})),
                Call::Play("/sounds/c.wav".into(), json!({}))
            ]
        );
        let warnings = host.logs(LogLevel::Warn);
        assert!(warnings[0].contains("a failed: decoder error"), "{warnings:?}");
        assert!(warnings[1].contains("b not played"), "{warnings:?}");
        chime.on_media(&host, 2, "finished", None);
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())]);
    }

    #[test]
    fn an_unplayable_only_asset_gives_the_channel_back() {
        let host = FakeHost::new(SCHEMAS).unplayable("/sounds/a.wav");
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        chime.on_focus(&host, FocusState::Foreground);
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into()), Call::Release(CHANNEL.into())]);
        chime.enqueue(&host, asset("b")).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into())], "idle again: the next one asks anew");
    }

    #[test]
    fn losing_the_channel_stops_the_chime_and_drops_the_queue_without_taking_it_back() {
        let host = FakeHost::new(SCHEMAS);
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        chime.enqueue(&host, asset("b")).unwrap();
        chime.on_focus(&host, FocusState::Foreground);
        host.take();
        chime.on_focus(&host, FocusState::None);
        assert_eq!(host.take(), [Call::Stop(1)]);
        chime.on_media(&host, 1, "stopped", None);
        assert!(host.take().is_empty(), "the stop it caused is not a reason to play b");
    }

    #[test]
    fn a_late_none_from_an_earlier_release_does_not_cancel_a_new_request() {
        let host = FakeHost::new(SCHEMAS);
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        chime.on_focus(&host, FocusState::Foreground);
        chime.on_media(&host, 1, "finished", None);
        chime.enqueue(&host, asset("b")).unwrap();
        host.take();
        chime.on_focus(&host, FocusState::None);
        chime.on_focus(&host, FocusState::Foreground);
        assert_eq!(host.take(), [Call::Play("/sounds/b.wav".into(), json!({}))]);
    }

    #[test]
    fn clear_stops_the_chime_and_a_grant_after_it_is_given_back() {
        let host = FakeHost::new(SCHEMAS);
        let mut chime = Chime::default();
        chime.enqueue(&host, asset("a")).unwrap();
        chime.enqueue(&host, asset("b")).unwrap();
        chime.on_focus(&host, FocusState::Foreground);
        chime.clear(&host);
        assert_eq!(
            host.take(),
            [
                Call::Acquire(CHANNEL.into()),
                Call::Play("/sounds/a.wav".into(), json!({})),
                Call::Stop(1),
                Call::Release(CHANNEL.into())
            ]
        );
        chime.on_media(&host, 1, "stopped", None);
        assert!(host.take().is_empty());

        chime.enqueue(&host, asset("c")).unwrap();
        chime.clear(&host);
        chime.on_focus(&host, FocusState::Foreground);
        assert_eq!(
            host.take(),
            [Call::Acquire(CHANNEL.into()), Call::Release(CHANNEL.into()), Call::Release(CHANNEL.into())]
        );
    }
}
