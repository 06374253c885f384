//! The AudioPlayer state machine over [`HostApi`]: a queue of audio items played one at a time on
//! the Content channel, with the events AVS expects. Behaviour follows the AVS Device SDK's AudioPlayer:
//! - Play REPLACE_ALL stops what plays (PlaybackStopped) and clears the queue; ENQUEUE appends, dropping
//!   an item whose expectedPreviousToken is not the token before it; REPLACE_ENQUEUED keeps the playing
//!   item and replaces the queue.
//! - Stop stops the playing item and releases the channel; what is queued stays queued (the next Play
//!   starts it). Losing the channel (NONE) stops and clears the queue.
//! - BACKGROUND pauses (PlaybackPaused), FOREGROUND again resumes from there (PlaybackResumed).
//! - A failed item: PlaybackFailed, and the channel is released.
//!
//! A stop is asynchronous: the media's `stopped` event carries the offset AVS is told, and nothing new
//! starts before it has come (so that AVS hears PlaybackStopped before the next PlaybackStarted).

use std::collections::VecDeque;

use avs_plugin_sdk::{FocusState, HostApi, LogLevel, MediaEvent, PluginError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::audio_item::{ClearBehavior, Item, Play, PlayBehavior};
use crate::failure;

pub const CHANNEL: &str = "Content";

/// `playerActivity` of the context. BUFFER_UNDERRUN is never reported: the host's player has the whole
/// item before it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Activity {
    Idle,
    Playing,
    Paused,
    Finished,
    Stopped,
}

/// The item being played (or about to be, or paused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Current {
    item: Item,
    /// Playback offset of its last media event: where a resume starts.
    offset_ms: u64,
    media: Option<u64>,
    /// AVS heard PlaybackStarted for it.
    started: bool,
    /// AVS heard PlaybackPaused for it: its next start is a PlaybackResumed.
    paused: bool,
    buffered: bool,
    nearly_finished: bool,
}

impl Current {
    fn new(item: Item) -> Self {
        Current {
            offset_ms: item.offset_ms,
            item,
            media: None,
            started: false,
            paused: false,
            buffered: false,
            nearly_finished: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Ending {
    Pause,
    Stop,
}

/// A media the player asked the host to stop, whose `stopped` event has not come yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Halting {
    media: u64,
    token: String,
    offset_ms: u64,
    ending: Ending,
    /// AVS heard it start: only then does it hear it stop.
    announced: bool,
}

/// What the PlaybackState context reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reported {
    token: String,
    offset_ms: u64,
    activity: Activity,
}

#[derive(Debug)]
pub struct Player {
    queue: VecDeque<Item>,
    current: Option<Current>,
    halting: Option<Halting>,
    reported: Reported,
    focus: FocusState,
    /// Content was asked for and not answered yet.
    acquiring: bool,
    /// Content was released: the NONE that answers it is ours, not a loss.
    releasing: bool,
}

impl Default for Player {
    fn default() -> Self {
        Player {
            queue: VecDeque::new(),
            current: None,
            halting: None,
            reported: Reported { token: String::new(), offset_ms: 0, activity: Activity::Idle },
            focus: FocusState::None,
            acquiring: false,
            releasing: false,
        }
    }
}

/// What an OTA swap hands over.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Exported {
    queue: VecDeque<Item>,
    current: Option<Current>,
    halting: Option<Halting>,
    reported: Reported,
}

fn token_and_offset(token: &str, offset_ms: u64) -> Value {
    json!({"token": token, "offsetInMilliseconds": offset_ms})
}

impl Player {
    pub fn play(&mut self, host: &impl HostApi, play: Play) -> Result<(), PluginError> {
        let expected = play.audio_item.stream.expected_previous_token.clone();
        let item = Item::from(play.audio_item.stream);
        match play.play_behavior {
            PlayBehavior::ReplaceAll => {
                self.queue.clear();
                self.stop_current(host)?;
            }
            PlayBehavior::Enqueue => {
                let previous = self
                    .queue
                    .back()
                    .map(|i| i.token.as_str())
                    .or(self.current.as_ref().map(|c| c.item.token.as_str()))
                    .unwrap_or(&self.reported.token);
                if let Some(expected) = expected.filter(|e| e != previous) {
                    // AVS docs and the SDK: such an item is dropped, not an error.
                    host.log(
                        LogLevel::Info,
                        &format!(
                            "Play ENQUEUE of {} dropped: it expects to follow {expected}, not {previous}",
                            item.token
                        ),
                    );
                    return Ok(());
                }
            }
            PlayBehavior::ReplaceEnqueued => self.queue.clear(),
        }
        self.queue.push_back(item);
        if self.current.is_none() {
            self.current = self.queue.pop_front().map(Current::new);
        }
        self.advance(host)
    }

    pub fn stop(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        self.stop_current(host)?;
        self.advance(host)
    }

    pub fn clear_queue(&mut self, host: &impl HostApi, behavior: ClearBehavior) -> Result<(), PluginError> {
        if behavior == ClearBehavior::ClearAll {
            self.stop_current(host)?;
        }
        self.queue.clear();
        host.send_event("PlaybackQueueCleared", &json!({}))?;
        self.advance(host)
    }

    pub fn on_focus(&mut self, host: &impl HostApi, focus: FocusState) -> Result<(), PluginError> {
        if focus == FocusState::None && self.releasing {
            self.releasing = false;
            self.focus = FocusState::None;
            return Ok(());
        }
        if focus != FocusState::None {
            self.acquiring = false;
        }
        self.focus = focus;
        match focus {
            FocusState::Foreground => self.advance(host),
            FocusState::Background => {
                self.pause(host);
                Ok(())
            }
            FocusState::None => {
                // Another content source took the channel: this playback is over, queue and all.
                self.queue.clear();
                self.stop_current(host)?;
                self.advance(host)
            }
        }
    }

    pub fn on_media(&mut self, host: &impl HostApi, event: MediaEvent) -> Result<(), PluginError> {
        if self.halting.as_ref().is_some_and(|h| h.media == event.id) {
            return self.on_halting_media(host, event);
        }
        let Some(current) = self.current.as_mut().filter(|c| c.media == Some(event.id)) else {
            return Ok(()); // an item this player no longer cares about
        };
        if let Some(offset) = event.offset_in_milliseconds {
            current.offset_ms = offset;
            self.reported.offset_ms = offset;
        }
        let token = current.item.token.clone();
        let offset = current.offset_ms;
        match event.state.as_str() {
            "buffered" => {
                current.buffered = true;
                self.nearly_finished(host)
            }
            "started" => {
                let event = if !current.started {
                    Some("PlaybackStarted")
                } else if current.paused {
                    Some("PlaybackResumed")
                } else {
                    None // the same playback, restarted by a new version after an OTA swap
                };
                current.started = true;
                current.paused = false;
                self.reported = Reported { token: token.clone(), offset_ms: offset, activity: Activity::Playing };
                if let Some(name) = event {
                    host.send_event(name, &token_and_offset(&token, offset))?;
                }
                self.nearly_finished(host)
            }
            "progress" => {
                let name = match event.mark.as_deref() {
                    Some("delay") => "ProgressReportDelayElapsed",
                    Some("interval") => "ProgressReportIntervalElapsed",
                    other => return Err(PluginError::invalid(format!("media progress mark {other:?}"))),
                };
                host.send_event(name, &token_and_offset(&token, offset)).map(drop)
            }
            "finished" => self.finish(host),
            "failed" => {
                let error = event.error.unwrap_or_default();
                self.fail(host, &error)
            }
            "stopped" => {
                // Not asked for by this player: reported as a stop all the same.
                current.media = None;
                let announced = current.started;
                self.current = None;
                self.stopped(host, &token, offset, announced)?;
                self.advance(host)
            }
            other => Err(PluginError::invalid(format!("media state {other:?}"))),
        }
    }

    /// The PlaybackState context.
    pub fn context(&self) -> Value {
        json!({
            "token": self.reported.token,
            "offsetInMilliseconds": self.reported.offset_ms,
            "playerActivity": self.reported.activity,
        })
    }

    /// For an OTA swap.
    pub fn export(&self) -> Value {
        let exported = Exported {
            queue: self.queue.clone(),
            current: self.current.clone(),
            halting: self.halting.clone(),
            reported: self.reported.clone(),
        };
        serde_json::to_value(exported).unwrap_or(Value::Null)
    }

    /// Takes over from the previous version. The host's player is shared, but its media events go to the
    /// version that started the media, which no longer listens: so the item that was playing is stopped
    /// and played on by this version from its last known offset, with no second PlaybackStarted (for AVS
    /// it is the same playback, and its context said PLAYING all along). A stop the old version was
    /// waiting for is reported now, at the offset it knew.
    pub fn import(&mut self, host: &impl HostApi, state: Value) -> Result<(), PluginError> {
        if state.is_null() {
            return Ok(()); // nothing handed over: a fresh start
        }
        let exported: Exported =
            serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("AudioPlayer state: {e}")))?;
        self.queue = exported.queue;
        self.current = exported.current;
        self.reported = exported.reported;
        if let Some(halting) = exported.halting {
            host.stop_media(halting.media);
            self.halting = Some(halting.clone());
            self.on_halting_media(
                host,
                MediaEvent {
                    id: halting.media,
                    state: "stopped".into(),
                    offset_in_milliseconds: Some(halting.offset_ms),
                    mark: None,
                    error: None,
                },
            )?;
        }
        if let Some(media) = self.current.as_mut().and_then(|c| c.media.take()) {
            host.stop_media(media);
        }
        if self.current.is_none() {
            // The old version may still hold Content for a stop that has now ended; its NONE answer goes
            // to the old version.
            host.release_focus(CHANNEL);
            return Ok(());
        }
        self.advance(host)
    }

    /// Silences everything, for shutdown (the host is going away: no events).
    pub fn shutdown(&mut self, host: &impl HostApi) {
        let media = self.current.as_mut().and_then(|c| c.media.take());
        for media in media.into_iter().chain(self.halting.take().map(|h| h.media)) {
            host.stop_media(media);
        }
    }

    /// Starts, resumes or waits for what is current, or gives the channel back when nothing is.
    fn advance(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        if self.halting.is_some() {
            return Ok(()); // its `stopped` comes first
        }
        let Some(current) = self.current.as_mut() else {
            if self.focus != FocusState::None || self.acquiring {
                self.focus = FocusState::None;
                self.acquiring = false;
                self.releasing = true;
                host.release_focus(CHANNEL);
            }
            return Ok(());
        };
        if current.media.is_some() {
            return Ok(());
        }
        match self.focus {
            FocusState::Foreground => {
                let options = current.item.play_options(current.offset_ms);
                match host.play(&current.item.url, &options) {
                    Ok(media) => {
                        current.media = Some(media);
                        if !current.started {
                            self.reported.token = current.item.token.clone();
                            self.reported.offset_ms = current.offset_ms;
                        }
                        Ok(())
                    }
                    Err(e) => self.fail(host, &e.to_string()),
                }
            }
            FocusState::Background => Ok(()), // it plays when the foreground is back
            FocusState::None if self.acquiring => Ok(()),
            FocusState::None => {
                self.acquiring = true;
                host.acquire_focus(CHANNEL)
            }
        }
    }

    /// BACKGROUND: the playing item stops where it is, to be resumed from there.
    fn pause(&mut self, host: &impl HostApi) {
        let Some(current) = self.current.as_mut() else { return };
        if let Some(media) = current.media.take() {
            host.stop_media(media);
            self.halting = Some(Halting {
                media,
                token: current.item.token.clone(),
                offset_ms: current.offset_ms,
                ending: Ending::Pause,
                announced: current.started,
            });
        }
    }

    /// Ends the current item for good (Stop, REPLACE_ALL, CLEAR_ALL, the channel lost).
    fn stop_current(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        if let Some(current) = self.current.take() {
            match current.media {
                Some(media) => {
                    host.stop_media(media);
                    self.halting = Some(Halting {
                        media,
                        token: current.item.token,
                        offset_ms: current.offset_ms,
                        ending: Ending::Stop,
                        announced: current.started,
                    });
                }
                None if current.paused => self.stopped(host, &current.item.token, current.offset_ms, true)?,
                None => {} // never started: AVS heard nothing of it
            }
        }
        // A pause on its way becomes a stop.
        if let Some(halting) = self.halting.as_mut() {
            halting.ending = Ending::Stop;
        }
        Ok(())
    }

    fn on_halting_media(&mut self, host: &impl HostApi, event: MediaEvent) -> Result<(), PluginError> {
        let Some(halting) = self.halting.as_ref() else { return Ok(()) };
        let offset = event.offset_in_milliseconds.unwrap_or(halting.offset_ms);
        match event.state.as_str() {
            "stopped" => {}
            // It reached its end before the stop: that is what happened.
            "finished" if halting.ending == Ending::Pause => {
                self.halting = None;
                if let Some(current) = self.current.as_mut() {
                    current.offset_ms = offset;
                }
                return self.finish(host);
            }
            "finished" | "failed" => {}
            _ => return Ok(()), // buffered/started/progress of a media being stopped
        }
        let halting = self.halting.take().expect("checked above");
        if event.state == "failed" {
            let error = event.error.unwrap_or_default();
            self.send_failed(host, &halting.token, &error)?;
            if halting.ending == Ending::Pause {
                self.current = None;
            }
            return self.advance(host);
        }
        match halting.ending {
            Ending::Pause => {
                if let Some(current) = self.current.as_mut() {
                    current.offset_ms = offset;
                    current.paused = halting.announced;
                }
                self.reported =
                    Reported { token: halting.token.clone(), offset_ms: offset, activity: Activity::Paused };
                if halting.announced {
                    host.send_event("PlaybackPaused", &token_and_offset(&halting.token, offset))?;
                }
            }
            Ending::Stop => self.stopped(host, &halting.token, offset, halting.announced)?,
        }
        self.advance(host)
    }

    fn stopped(
        &mut self,
        host: &impl HostApi,
        token: &str,
        offset_ms: u64,
        announced: bool,
    ) -> Result<(), PluginError> {
        if !announced {
            return Ok(());
        }
        self.reported = Reported { token: token.to_string(), offset_ms, activity: Activity::Stopped };
        host.send_event("PlaybackStopped", &token_and_offset(token, offset_ms)).map(drop)
    }

    /// PlaybackNearlyFinished once per item, when the host has all of it (AVS may send the next item
    /// now), and never before PlaybackStarted.
    fn nearly_finished(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        let Some(current) = self.current.as_mut() else { return Ok(()) };
        if !current.buffered || !current.started || current.nearly_finished {
            return Ok(());
        }
        current.nearly_finished = true;
        host.send_event("PlaybackNearlyFinished", &token_and_offset(&current.item.token, current.offset_ms)).map(drop)
    }

    fn finish(&mut self, host: &impl HostApi) -> Result<(), PluginError> {
        let Some(current) = self.current.as_mut() else { return Ok(()) };
        // An item that ends before its media said it was buffered still owes AVS this cue.
        current.buffered = true;
        current.started = true;
        self.nearly_finished(host)?;
        let current = self.current.take().expect("checked above");
        let (token, offset) = (current.item.token, current.offset_ms);
        self.reported = Reported { token: token.clone(), offset_ms: offset, activity: Activity::Finished };
        host.send_event("PlaybackFinished", &token_and_offset(&token, offset))?;
        self.current = self.queue.pop_front().map(Current::new);
        self.advance(host)
    }

    /// The current item cannot be played: PlaybackFailed, and the channel goes back (the SDK's
    /// behaviour; AVS decides what comes next). Queued items stay for the next Play.
    fn fail(&mut self, host: &impl HostApi, error: &str) -> Result<(), PluginError> {
        let Some(current) = self.current.take() else { return Ok(()) };
        host.log(LogLevel::Info, &format!("{} cannot be played: {error}", current.item.token));
        self.send_failed(host, &current.item.token, error)?;
        self.advance(host)
    }

    fn send_failed(&mut self, host: &impl HostApi, token: &str, error: &str) -> Result<(), PluginError> {
        let payload = json!({
            "token": token,
            "currentPlaybackState": self.context(),
            "error": {"type": failure::error_type(error), "message": error},
        });
        self.reported.activity = Activity::Stopped;
        host.send_event("PlaybackFailed", &payload).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::audio_item::ClearBehavior;
    use crate::schema_check::SCHEMAS;

    fn play_payload(behavior: &str, token: &str, extra: Value) -> Play {
        let mut stream = json!({"url": format!("cid:{token}"), "token": token});
        for (k, v) in extra.as_object().cloned().unwrap_or_default() {
            stream[k] = v;
        }
        let payload = json!({"playBehavior": behavior, "audioItem": {"audioItemId": "a", "stream": stream}});
        crate::schema_check::assert_valid("directives/Play.json", &payload);
        serde_json::from_value(payload).unwrap()
    }

    fn media(id: u64, state: &str, offset: u64) -> MediaEvent {
        MediaEvent { id, state: state.into(), offset_in_milliseconds: Some(offset), mark: None, error: None }
    }

    fn progress(id: u64, mark: &str, offset: u64) -> MediaEvent {
        MediaEvent { mark: Some(mark.into()), ..media(id, "progress", offset) }
    }

    fn event(name: &str, token: &str, offset: u64) -> (String, Value) {
        (name.to_string(), json!({"token": token, "offsetInMilliseconds": offset}))
    }

    fn context_of(p: &Player) -> Value {
        let context = p.context();
        crate::schema_check::assert_valid("context/PlaybackState.json", &context);
        context
    }

    /// A player playing `song-1` (media 1) in the foreground, PlaybackStarted sent.
    fn playing(host: &FakeHost) -> Player {
        let mut p = Player::default();
        p.play(host, play_payload("REPLACE_ALL", "song-1", json!({}))).unwrap();
        p.on_focus(host, FocusState::Foreground).unwrap();
        p.on_media(host, media(1, "buffered", 0)).unwrap();
        p.on_media(host, media(1, "started", 0)).unwrap();
        host.take();
        p
    }

    #[test]
    fn a_play_takes_content_plays_reports_progress_and_gives_the_channel_back() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = Player::default();
        assert_eq!(context_of(&p), json!({"token": "", "offsetInMilliseconds": 0, "playerActivity": "IDLE"}));
        let report = json!({"progressReportDelayInMilliseconds": 1000, "progressReportIntervalInMilliseconds": 2000});
        p.play(&host, play_payload("REPLACE_ALL", "song-1", json!({"progressReport": report}))).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into())], "nothing plays before the channel is granted");
        p.on_focus(&host, FocusState::Foreground).unwrap();
        let options = json!({"offsetInMilliseconds": 0, "progressReport": report});
        assert_eq!(host.take(), [Call::Play("cid:song-1".into(), options)]);
        p.on_media(&host, media(1, "buffered", 0)).unwrap();
        assert_eq!(host.take(), [], "not nearly finished before it started");
        p.on_media(&host, media(1, "started", 0)).unwrap();
        p.on_media(&host, progress(1, "delay", 1000)).unwrap();
        p.on_media(&host, progress(1, "interval", 2000)).unwrap();
        assert_eq!(
            context_of(&p),
            json!({"token": "song-1", "offsetInMilliseconds": 2000, "playerActivity": "PLAYING"})
        );
        p.on_media(&host, media(1, "finished", 2664)).unwrap();
        let calls = host.take();
        assert_eq!(calls.last(), Some(&Call::Release(CHANNEL.into())), "{calls:?}");
        let events: Vec<(String, Value)> =
            calls.into_iter().filter_map(|c| if let Call::Event(n, p) = c { Some((n, p)) } else { None }).collect();
        assert_eq!(
            events,
            [
                event("PlaybackStarted", "song-1", 0),
                event("PlaybackNearlyFinished", "song-1", 0),
                event("ProgressReportDelayElapsed", "song-1", 1000),
                event("ProgressReportIntervalElapsed", "song-1", 2000),
                event("PlaybackFinished", "song-1", 2664),
            ]
        );
        assert_eq!(context_of(&p)["playerActivity"], "FINISHED");
        p.on_focus(&host, FocusState::None).unwrap();
        assert_eq!(host.take(), [], "the NONE answering our own release is no loss");
    }

    #[test]
    fn enqueued_items_play_in_turn_and_a_wrong_expected_previous_token_is_dropped() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        let wrong = json!({"expectedPreviousToken": "song-7"});
        p.play(&host, play_payload("ENQUEUE", "song-x", wrong)).unwrap();
        p.play(&host, play_payload("ENQUEUE", "song-2", json!({"expectedPreviousToken": "song-1"}))).unwrap();
        p.play(&host, play_payload("ENQUEUE", "song-3", json!({"expectedPreviousToken": "song-2"}))).unwrap();
        assert_eq!(host.take(), [], "the playing item plays on");
        p.on_media(&host, media(1, "finished", 2664)).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play("cid:song-2".into(), json!({"offsetInMilliseconds": 0}))), "{calls:?}");
        assert!(!calls.contains(&Call::Release(CHANNEL.into())));
        p.on_media(&host, media(2, "started", 0)).unwrap();
        p.on_media(&host, media(2, "finished", 100)).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play("cid:song-3".into(), json!({"offsetInMilliseconds": 0}))), "{calls:?}");
        assert!(!calls.iter().any(|c| matches!(c, Call::Play(url, _) if url == "cid:song-x")));
    }

    #[test]
    fn replace_all_stops_the_playing_item_before_the_new_one_starts() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.play(&host, play_payload("ENQUEUE", "song-2", json!({}))).unwrap();
        p.play(&host, play_payload("REPLACE_ALL", "song-3", json!({"offsetInMilliseconds": 500}))).unwrap();
        assert_eq!(host.take(), [Call::Stop(1)], "the new item waits for the stop");
        p.on_media(&host, media(1, "stopped", 1234)).unwrap();
        assert_eq!(
            host.take(),
            [
                Call::Event("PlaybackStopped".into(), json!({"token": "song-1", "offsetInMilliseconds": 1234})),
                Call::Play("cid:song-3".into(), json!({"offsetInMilliseconds": 500})),
            ]
        );
        p.on_media(&host, media(2, "started", 500)).unwrap();
        assert_eq!(host.take_events(), [event("PlaybackStarted", "song-3", 500)]);
        p.on_media(&host, media(2, "finished", 900)).unwrap();
        let calls = host.take();
        assert_eq!(calls.last(), Some(&Call::Release(CHANNEL.into())), "song-2 was replaced too: {calls:?}");
    }

    #[test]
    fn replace_enqueued_keeps_the_playing_item() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.play(&host, play_payload("ENQUEUE", "song-2", json!({}))).unwrap();
        p.play(&host, play_payload("REPLACE_ENQUEUED", "song-3", json!({}))).unwrap();
        assert_eq!(host.take(), []);
        p.on_media(&host, media(1, "finished", 2664)).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play("cid:song-3".into(), json!({"offsetInMilliseconds": 0}))), "{calls:?}");
    }

    #[test]
    fn nearly_finished_is_sent_once_per_item_even_across_a_pause() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = Player::default();
        p.play(&host, play_payload("REPLACE_ALL", "song-1", json!({}))).unwrap();
        p.on_focus(&host, FocusState::Foreground).unwrap();
        for _ in 0..2 {
            p.on_media(&host, media(1, "buffered", 0)).unwrap();
        }
        p.on_media(&host, media(1, "started", 0)).unwrap();
        p.on_focus(&host, FocusState::Background).unwrap();
        p.on_media(&host, media(1, "stopped", 300)).unwrap();
        p.on_focus(&host, FocusState::Foreground).unwrap();
        p.on_media(&host, media(2, "buffered", 300)).unwrap();
        p.on_media(&host, media(2, "started", 300)).unwrap();
        p.on_media(&host, media(2, "finished", 2664)).unwrap();
        let nearly = host.take_events().into_iter().filter(|(n, _)| n == "PlaybackNearlyFinished").count();
        assert_eq!(nearly, 1);
    }

    #[test]
    fn background_pauses_at_the_stopped_offset_and_foreground_resumes_from_there() {
        let host = FakeHost::new(SCHEMAS);
        let report = json!({"progressReportIntervalInMilliseconds": 1000});
        let mut p = Player::default();
        p.play(&host, play_payload("REPLACE_ALL", "song-1", json!({"progressReport": report}))).unwrap();
        p.on_focus(&host, FocusState::Foreground).unwrap();
        p.on_media(&host, media(1, "started", 0)).unwrap();
        host.take();
        p.on_focus(&host, FocusState::Background).unwrap();
        assert_eq!(host.take(), [Call::Stop(1)]);
        p.on_media(&host, media(1, "stopped", 1500)).unwrap();
        assert_eq!(host.take_events(), [event("PlaybackPaused", "song-1", 1500)]);
        assert_eq!(context_of(&p)["playerActivity"], "PAUSED");
        p.on_focus(&host, FocusState::Foreground).unwrap();
        let report = json!({"progressReportDelayInMilliseconds": 0, "progressReportIntervalInMilliseconds": 1000});
        let options = json!({"offsetInMilliseconds": 1500, "progressReport": report});
        assert_eq!(host.take(), [Call::Play("cid:song-1".into(), options)]);
        p.on_media(&host, media(2, "started", 1500)).unwrap();
        assert_eq!(host.take_events(), [event("PlaybackResumed", "song-1", 1500)]);
        assert_eq!(context_of(&p)["playerActivity"], "PLAYING");
    }

    #[test]
    fn losing_the_channel_stops_and_forgets_the_queue() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.play(&host, play_payload("ENQUEUE", "song-2", json!({}))).unwrap();
        p.on_focus(&host, FocusState::None).unwrap();
        assert_eq!(host.take(), [Call::Stop(1)]);
        p.on_media(&host, media(1, "stopped", 700)).unwrap();
        assert_eq!(
            host.take(),
            [Call::Event("PlaybackStopped".into(), json!({"token": "song-1", "offsetInMilliseconds": 700}))]
        );
        assert_eq!(
            context_of(&p),
            json!({"token": "song-1", "offsetInMilliseconds": 700, "playerActivity": "STOPPED"})
        );
    }

    #[test]
    fn stop_while_paused_is_reported_at_once_and_gives_the_channel_back() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.on_focus(&host, FocusState::Background).unwrap();
        p.on_media(&host, media(1, "stopped", 800)).unwrap();
        host.take();
        p.stop(&host).unwrap();
        assert_eq!(
            host.take(),
            [
                Call::Event("PlaybackStopped".into(), json!({"token": "song-1", "offsetInMilliseconds": 800})),
                Call::Release(CHANNEL.into())
            ]
        );
        p.on_focus(&host, FocusState::Foreground).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())], "a late grant is given back");
    }

    #[test]
    fn stop_while_playing_waits_for_the_offset_then_releases() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.stop(&host).unwrap();
        assert_eq!(host.take(), [Call::Stop(1)]);
        p.on_media(&host, media(1, "stopped", 900)).unwrap();
        assert_eq!(
            host.take(),
            [
                Call::Event("PlaybackStopped".into(), json!({"token": "song-1", "offsetInMilliseconds": 900})),
                Call::Release(CHANNEL.into())
            ]
        );
    }

    #[test]
    fn clear_queue_clears_the_queue_or_everything() {
        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.play(&host, play_payload("ENQUEUE", "song-2", json!({}))).unwrap();
        p.clear_queue(&host, ClearBehavior::ClearEnqueued).unwrap();
        assert_eq!(host.take(), [Call::Event("PlaybackQueueCleared".into(), json!({}))]);
        p.on_media(&host, media(1, "finished", 2664)).unwrap();
        assert_eq!(host.take().last(), Some(&Call::Release(CHANNEL.into())), "song-2 is gone");

        let host = FakeHost::new(SCHEMAS);
        let mut p = playing(&host);
        p.clear_queue(&host, ClearBehavior::ClearAll).unwrap();
        let id = host.last_media();
        assert_eq!(host.take(), [Call::Stop(id), Call::Event("PlaybackQueueCleared".into(), json!({}))]);
        p.on_media(&host, media(id, "stopped", 10)).unwrap();
        assert_eq!(host.take_events(), [event("PlaybackStopped", "song-1", 10)]);
    }

    #[test]
    fn failures_are_reported_with_the_avs_error_type_and_the_channel_goes_back() {
        let host = FakeHost::new(SCHEMAS).unplayable("http://music.example.com/a.mp3");
        let mut p = Player::default();
        let mut play = play_payload("REPLACE_ALL", "song-9", json!({}));
        play.audio_item.stream.url = "https://localhost/media/song-9.mp3".into();
        p.play(&host, play).unwrap();
        p.on_focus(&host, FocusState::Foreground).unwrap();
        host.take();
        let error = "fetching https://localhost/media/song-9.mp3: HTTP 404 Not Found";
        p.on_media(&host, MediaEvent { error: Some(error.into()), ..media(1, "failed", 0) }).unwrap();
        let calls = host.take();
        assert_eq!(
            calls[0],
            Call::Event(
                "PlaybackFailed".into(),
                json!({"token": "song-9",
                       "currentPlaybackState": {"token": "song-9", "offsetInMilliseconds": 0, "playerActivity": "IDLE"},
                       "error": {"type": "MEDIA_ERROR_INVALID_REQUEST", "message": error}})
            )
        );
        assert_eq!(calls.last(), Some(&Call::Release(CHANNEL.into())));
        assert_eq!(context_of(&p)["playerActivity"], "STOPPED");

        // A URL the host refuses outright fails the same way.
        let mut play = play_payload("REPLACE_ALL", "song-h", json!({}));
        play.audio_item.stream.url = "http://music.example.com/a.mp3".into();
        p.play(&host, play).unwrap();
        p.on_focus(&host, FocusState::None).unwrap(); // our release's answer
        p.on_focus(&host, FocusState::Foreground).unwrap();
        let events = host.take_events();
        assert_eq!(events[0].0, "PlaybackFailed");
        assert_eq!(events[0].1["error"]["type"], "MEDIA_ERROR_INTERNAL_DEVICE_ERROR");
    }

    #[test]
    fn after_an_ota_swap_the_playing_item_plays_on_without_a_second_playback_started() {
        let host = FakeHost::new(SCHEMAS);
        let mut old = playing(&host);
        old.play(&host, play_payload("ENQUEUE", "song-2", json!({}))).unwrap();
        old.on_media(&host, progress(1, "interval", 1000)).unwrap();
        host.take();
        let handed_over = old.export();
        let mut new = Player::default();
        new.import(&host, handed_over).unwrap();
        assert_eq!(
            host.take(),
            [Call::Stop(1), Call::Acquire(CHANNEL.into())],
            "the old media is stopped, the channel taken over"
        );
        assert_eq!(context_of(&new)["playerActivity"], "PLAYING", "nothing changed for AVS");
        new.on_focus(&host, FocusState::Foreground).unwrap();
        assert_eq!(host.take(), [Call::Play("cid:song-1".into(), json!({"offsetInMilliseconds": 1000}))]);
        new.on_media(&host, media(2, "buffered", 1000)).unwrap();
        new.on_media(&host, media(2, "started", 1000)).unwrap();
        assert_eq!(host.take_events(), [], "no second PlaybackStarted, NearlyFinished was sent already");
        new.on_media(&host, media(2, "finished", 2664)).unwrap();
        let calls = host.take();
        assert!(calls.contains(&Call::Play("cid:song-2".into(), json!({"offsetInMilliseconds": 0}))), "{calls:?}");
    }

    #[test]
    fn a_stop_the_old_version_was_waiting_for_is_reported_by_the_new_one() {
        let host = FakeHost::new(SCHEMAS);
        let mut old = playing(&host);
        old.stop(&host).unwrap();
        host.take();
        let mut new = Player::default();
        new.import(&host, old.export()).unwrap();
        let calls = host.take();
        assert_eq!(calls[0], Call::Stop(1));
        assert_eq!(
            calls[1],
            Call::Event("PlaybackStopped".into(), json!({"token": "song-1", "offsetInMilliseconds": 0}))
        );
        assert_eq!(context_of(&new)["playerActivity"], "STOPPED");
    }
}
