//! The SpeechSynthesizer state machine over [`HostApi`]: a queue of Speaks played one at a
//! time on the Dialog channel, with the playBehavior rules and the events AVS expects.
//!
//! Rules taken from the AVS Device SDK's SpeechSynthesizer: REPLACE_ALL and REPLACE_ENQUEUED complete
//! the queued Speaks they drop (no failure); REPLACE_ALL and a cancel interrupt the current one; losing
//! the foreground interrupts it and fails its directive; a playback error fails it and every queued one.

use std::collections::VecDeque;
use std::time::Instant;

use avs_plugin_sdk::{FocusState, HostApi, PluginError};
use serde::Deserialize;
use serde_json::{json, Value};

pub const CHANNEL: &str = "Dialog";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlayBehavior {
    /// The default when a Speak names none (as in the AVS Device SDK).
    #[default]
    ReplaceAll,
    Enqueue,
    ReplaceEnqueued,
}

/// One Speak directive to play.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Speech {
    pub message_id: String,
    pub token: String,
    pub url: String,
}

/// SpeechState.playerActivity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activity {
    Playing,
    Finished,
    Interrupted,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Playing => "PLAYING",
            Activity::Finished => "FINISHED",
            Activity::Interrupted => "INTERRUPTED",
        }
    }
}

/// The Speak being handled: waiting for focus (no media), started to play, or playing.
#[derive(Debug)]
struct Current {
    speech: Speech,
    media: Option<u64>,
    started: Option<Instant>,
}

/// How the current Speak ended.
enum End {
    Finished,
    /// Stopped early; `Err` fails its directive, `Ok` completes it.
    Interrupted {
        offset_ms: u64,
        outcome: Result<(), String>,
    },
    Failed(String),
}

#[derive(Debug)]
pub struct Synthesizer {
    /// 1.3 added the INTERRUPTED state and SpeechInterrupted; 1.0 reports an interrupted Speak as
    /// FINISHED and sends nothing for it.
    reports_interruptions: bool,
    queue: VecDeque<Speech>,
    current: Option<Current>,
    focus: FocusState,
    focus_requested: bool,
    last_token: String,
    last_offset_ms: u64,
    last_activity: Activity,
}

impl Synthesizer {
    /// The state machine of SpeechSynthesizer 1.`minor`.
    pub fn new(minor: u8) -> Self {
        Synthesizer {
            reports_interruptions: minor >= 3,
            queue: VecDeque::new(),
            current: None,
            focus: FocusState::None,
            focus_requested: false,
            last_token: String::new(),
            last_offset_ms: 0,
            last_activity: Activity::Finished,
        }
    }
}

fn elapsed_ms(started: Option<Instant>, now: Instant) -> u64 {
    started.map_or(0, |s| now.saturating_duration_since(s).as_millis() as u64)
}

impl Synthesizer {
    pub fn speak(
        &mut self,
        host: &impl HostApi,
        speech: Speech,
        behavior: PlayBehavior,
        now: Instant,
    ) -> Result<(), PluginError> {
        match behavior {
            PlayBehavior::Enqueue => self.queue.push_back(speech),
            PlayBehavior::ReplaceEnqueued => {
                self.drop_queue(host);
                self.queue.push_back(speech);
            }
            PlayBehavior::ReplaceAll => {
                self.drop_queue(host);
                self.queue.push_back(speech);
                if self.current.is_some() {
                    return self.interrupt(host, Ok(()), now);
                }
            }
        }
        self.start_next(host, now)
    }

    /// The host cancelled a Speak (barge-in: its dialog was replaced).
    pub fn cancel(&mut self, host: &impl HostApi, message_id: &str, now: Instant) -> Result<(), PluginError> {
        self.queue.retain(|speech| speech.message_id != message_id);
        if self.current.as_ref().is_some_and(|c| c.speech.message_id == message_id) {
            self.interrupt(host, Ok(()), now)?;
        }
        Ok(())
    }

    pub fn on_focus(&mut self, host: &impl HostApi, focus: FocusState, now: Instant) -> Result<(), PluginError> {
        if focus == FocusState::None && self.focus_requested {
            // The answer to a release made before this request, delivered late: the host answers a
            // request with FOREGROUND or BACKGROUND, never NONE, so the real answer is still to come.
            return Ok(());
        }
        self.focus = focus;
        self.focus_requested = false;
        match focus {
            FocusState::Foreground => match &self.current {
                Some(current) if current.media.is_none() => self.play_current(host, now),
                Some(_) => Ok(()),
                // Granted after everything was cancelled: give it back.
                None => {
                    self.release(host);
                    Ok(())
                }
            },
            // Speech never plays under something else.
            FocusState::Background | FocusState::None if self.current.is_some() => {
                self.interrupt(host, Err("interrupted: lost the Dialog focus".into()), now)
            }
            FocusState::Background | FocusState::None => Ok(()),
        }
    }

    /// A `media` host event of the player.
    pub fn on_media(
        &mut self,
        host: &impl HostApi,
        media: u64,
        state: &str,
        offset_ms: u64,
        error: Option<String>,
        now: Instant,
    ) -> Result<(), PluginError> {
        let Some(current) = self.current.as_mut().filter(|c| c.media == Some(media)) else {
            return Ok(()); // a late event of a Speak already ended
        };
        match state {
            "started" => {
                current.started = Some(now);
                self.last_activity = Activity::Playing;
                host.send_event("SpeechStarted", &json!({"token": current.speech.token})).map(drop)
            }
            "finished" => self.end(host, End::Finished, now),
            // Stopped by someone else than us (we forget the media when we stop it).
            "stopped" => self.end(host, End::Interrupted { offset_ms, outcome: Ok(()) }, now),
            "failed" => self.end(host, End::Failed(error.unwrap_or_else(|| "playback failed".into())), now),
            _ => Ok(()),
        }
    }

    /// Stops playback and releases the channel, for shutdown or an OTA swap.
    pub fn stop(&mut self, host: &impl HostApi) {
        if let Some(media) = self.current.take().and_then(|c| c.media) {
            host.stop_media(media);
        }
        self.queue.clear();
        self.release(host);
    }

    /// The SpeechState context payload.
    pub fn speech_state(&self, now: Instant) -> Value {
        let (token, offset_ms, activity) = match &self.current {
            Some(Current { speech, started: Some(started), .. }) => {
                (speech.token.as_str(), elapsed_ms(Some(*started), now), Activity::Playing)
            }
            // Waiting for focus: not playing yet (the AVS Device SDK reports FINISHED).
            Some(Current { speech, .. }) => (speech.token.as_str(), 0, Activity::Finished),
            None => (self.last_token.as_str(), self.last_offset_ms, self.last_activity),
        };
        json!({"token": token, "offsetInMilliseconds": offset_ms, "playerActivity": activity.as_str()})
    }

    fn start_next(&mut self, host: &impl HostApi, now: Instant) -> Result<(), PluginError> {
        if self.current.is_some() {
            return Ok(());
        }
        let Some(speech) = self.queue.pop_front() else {
            self.release(host);
            return Ok(());
        };
        self.current = Some(Current { speech, media: None, started: None });
        if self.focus == FocusState::Foreground {
            return self.play_current(host, now);
        }
        if !self.focus_requested {
            if let Err(e) = host.acquire_focus(CHANNEL) {
                return self.end(host, End::Failed(format!("Dialog focus: {e}")), now);
            }
            self.focus_requested = true;
        }
        Ok(())
    }

    fn play_current(&mut self, host: &impl HostApi, now: Instant) -> Result<(), PluginError> {
        let Some(current) = self.current.as_mut() else {
            return Ok(());
        };
        match host.play(&current.speech.url, &json!({})) {
            Ok(media) => {
                current.media = Some(media);
                Ok(())
            }
            Err(e) => self.end(host, End::Failed(e.to_string()), now),
        }
    }

    fn interrupt(&mut self, host: &impl HostApi, outcome: Result<(), String>, now: Instant) -> Result<(), PluginError> {
        let Some(current) = &self.current else {
            return Ok(());
        };
        if let Some(media) = current.media {
            host.stop_media(media);
        }
        let offset_ms = elapsed_ms(current.started, now);
        self.end(host, End::Interrupted { offset_ms, outcome }, now)
    }

    /// Ends the current Speak: its event, its directive's completion, then the next Speak.
    fn end(&mut self, host: &impl HostApi, end: End, now: Instant) -> Result<(), PluginError> {
        let Some(Current { speech, started, .. }) = self.current.take() else {
            return Ok(());
        };
        let (event, outcome) = match end {
            End::Finished => {
                self.remember(&speech.token, 0, Activity::Finished);
                (Some(("SpeechFinished", json!({"token": speech.token}))), Ok(()))
            }
            End::Interrupted { offset_ms, outcome } => {
                self.remember(&speech.token, offset_ms, self.interrupted());
                // Nothing of a Speak that never started was heard: no event for it.
                let payload = json!({"token": speech.token, "offsetInMilliseconds": offset_ms});
                let reported = started.is_some() && self.reports_interruptions;
                (reported.then_some(("SpeechInterrupted", payload)), outcome)
            }
            End::Failed(error) => {
                self.remember(&speech.token, 0, self.interrupted());
                for queued in std::mem::take(&mut self.queue) {
                    host.complete_directive(&queued.message_id, Err(error.clone()));
                }
                (None, Err(error))
            }
        };
        let sent = event.map_or(Ok(()), |(name, payload)| host.send_event(name, &payload).map(drop));
        host.complete_directive(&speech.message_id, outcome);
        let next = self.start_next(host, now);
        sent.and(next)
    }

    fn interrupted(&self) -> Activity {
        match self.reports_interruptions {
            true => Activity::Interrupted,
            false => Activity::Finished,
        }
    }

    fn remember(&mut self, token: &str, offset_ms: u64, activity: Activity) {
        self.last_token = token.to_string();
        self.last_offset_ms = offset_ms;
        self.last_activity = activity;
    }

    /// Queued Speaks replaced before they played complete normally: the dialog simply moved on.
    fn drop_queue(&mut self, host: &impl HostApi) {
        for speech in self.queue.drain(..) {
            host.complete_directive(&speech.message_id, Ok(()));
        }
    }

    fn release(&mut self, host: &impl HostApi) {
        if self.focus != FocusState::None || self.focus_requested {
            host.release_focus(CHANNEL);
        }
        self.focus = FocusState::None;
        self.focus_requested = false;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use avs_plugin_sdk::testing::{Call, FakeHost};

    use super::*;
    use crate::schema_check::schemas;

    fn speech(n: u32) -> Speech {
        Speech { message_id: format!("m{n}"), token: format!("t{n}"), url: format!("cid:a{n}") }
    }

    fn event(name: &str, payload: Value) -> Call {
        Call::Event(name.into(), payload)
    }

    fn ok(n: u32) -> Call {
        Call::Complete(format!("m{n}"), Ok(()))
    }

    /// A synthesizer playing speech 1 (started at `t0`), with the calls so far discarded.
    fn playing(host: &FakeHost, t0: Instant) -> Synthesizer {
        let mut s = Synthesizer::new(3);
        s.speak(host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        s.on_focus(host, FocusState::Foreground, t0).unwrap();
        s.on_media(host, 1, "started", 0, None, t0).unwrap();
        host.take();
        s
    }

    #[test]
    fn a_speak_plays_on_the_dialog_channel_and_reports_start_and_finish() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = Synthesizer::new(3);
        s.speak(&host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        assert_eq!(host.take(), [Call::Acquire(CHANNEL.into())], "nothing plays before the focus is granted");
        s.on_focus(&host, FocusState::Foreground, t0).unwrap();
        assert_eq!(host.take(), [Call::Play("cid:a1".into(), json!({}))]);
        s.on_media(&host, 1, "started", 0, None, t0).unwrap();
        assert_eq!(host.take(), [event("SpeechStarted", json!({"token": "t1"}))]);
        let state = s.speech_state(t0 + Duration::from_millis(1500));
        crate::schema_check::assert_valid(3, "context/SpeechState.json", &state);
        assert_eq!(state, json!({"token": "t1", "offsetInMilliseconds": 1500, "playerActivity": "PLAYING"}));
        s.on_media(&host, 1, "finished", 2300, None, t0).unwrap();
        assert_eq!(
            host.take(),
            [event("SpeechFinished", json!({"token": "t1"})), ok(1), Call::Release(CHANNEL.into())]
        );
        assert_eq!(s.speech_state(t0), json!({"token": "t1", "offsetInMilliseconds": 0, "playerActivity": "FINISHED"}));
    }

    #[test]
    fn version_1_0_reports_an_interrupted_speak_as_finished_and_sends_nothing_for_it() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = Synthesizer::new(0);
        s.speak(&host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        s.on_focus(&host, FocusState::Foreground, t0).unwrap();
        s.on_media(&host, 1, "started", 0, None, t0).unwrap();
        host.take();
        s.cancel(&host, "m1", t0 + Duration::from_millis(700)).unwrap();
        assert_eq!(host.take(), [Call::Stop(1), ok(1), Call::Release(CHANNEL.into())], "no SpeechInterrupted in 1.0");
        let state = s.speech_state(t0);
        crate::schema_check::assert_valid(0, "context/SpeechState.json", &state);
        assert_eq!(state, json!({"token": "t1", "offsetInMilliseconds": 700, "playerActivity": "FINISHED"}));
    }

    #[test]
    fn a_cancel_while_playing_stops_and_reports_the_offset() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.cancel(&host, "m1", t0 + Duration::from_millis(700)).unwrap();
        let interrupted = event("SpeechInterrupted", json!({"token": "t1", "offsetInMilliseconds": 700}));
        assert_eq!(host.take(), [Call::Stop(1), interrupted, ok(1), Call::Release(CHANNEL.into())]);
        let state = s.speech_state(t0);
        crate::schema_check::assert_valid(3, "context/SpeechState.json", &state);
        assert_eq!(state, json!({"token": "t1", "offsetInMilliseconds": 700, "playerActivity": "INTERRUPTED"}));
        s.on_media(&host, 1, "stopped", 700, None, t0).unwrap();
        assert!(host.take().is_empty(), "the player's late stopped event is ignored");
    }

    #[test]
    fn a_late_none_from_an_earlier_release_does_not_interrupt_the_next_speak() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        // Barge-in: speech 1 is cancelled and the channel released; the host's NONE for that release is
        // still queued when the new dialog's Speak arrives and asks for the channel again.
        s.cancel(&host, "m1", t0).unwrap();
        s.speak(&host, speech(2), PlayBehavior::ReplaceAll, t0).unwrap();
        host.take();
        s.on_focus(&host, FocusState::None, t0).unwrap();
        assert!(host.take().is_empty(), "the stale NONE must not interrupt speech 2");
        s.on_focus(&host, FocusState::Foreground, t0).unwrap();
        assert_eq!(host.take(), [Call::Play("cid:a2".into(), json!({}))]);
    }

    #[test]
    fn losing_the_foreground_interrupts_and_fails_the_directive() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.on_focus(&host, FocusState::Background, t0 + Duration::from_millis(200)).unwrap();
        let calls = host.take();
        assert_eq!(calls[0], Call::Stop(1));
        assert_eq!(calls[1], event("SpeechInterrupted", json!({"token": "t1", "offsetInMilliseconds": 200})));
        assert!(matches!(&calls[2], Call::Complete(id, Err(_)) if id == "m1"));
    }

    #[test]
    fn a_playback_failure_fails_the_speak_and_the_queued_ones() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.speak(&host, speech(2), PlayBehavior::Enqueue, t0).unwrap();
        s.on_media(&host, 1, "failed", 10, Some("bad mp3".into()), t0).unwrap();
        let failed = |n: u32| Call::Complete(format!("m{n}"), Err("bad mp3".into()));
        assert_eq!(host.take(), [failed(2), failed(1), Call::Release(CHANNEL.into())]);
        assert_eq!(s.speech_state(t0)["playerActivity"], "INTERRUPTED");
    }

    #[test]
    fn enqueued_speech_plays_in_order_without_giving_up_the_channel() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.speak(&host, speech(2), PlayBehavior::Enqueue, t0).unwrap();
        assert!(host.take().is_empty(), "queued behind the current one");
        s.on_media(&host, 1, "finished", 0, None, t0).unwrap();
        assert_eq!(
            host.take(),
            [event("SpeechFinished", json!({"token": "t1"})), ok(1), Call::Play("cid:a2".into(), json!({}))]
        );
        s.on_media(&host, 2, "started", 0, None, t0).unwrap();
        s.on_media(&host, 2, "finished", 0, None, t0).unwrap();
        assert_eq!(host.take().last(), Some(&Call::Release(CHANNEL.into())));
    }

    #[test]
    fn replace_enqueued_drops_the_queue_but_not_the_current_speech() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.speak(&host, speech(2), PlayBehavior::Enqueue, t0).unwrap();
        s.speak(&host, speech(3), PlayBehavior::ReplaceEnqueued, t0).unwrap();
        assert_eq!(host.take(), [ok(2)], "the replaced Speak completes without playing");
        s.on_media(&host, 1, "finished", 0, None, t0).unwrap();
        assert_eq!(host.take().last(), Some(&Call::Play("cid:a3".into(), json!({}))));
    }

    #[test]
    fn replace_all_interrupts_the_current_speech_and_plays_the_new_one() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = playing(&host, t0);
        s.speak(&host, speech(2), PlayBehavior::Enqueue, t0).unwrap();
        s.speak(&host, speech(3), PlayBehavior::ReplaceAll, t0 + Duration::from_millis(50)).unwrap();
        let interrupted = event("SpeechInterrupted", json!({"token": "t1", "offsetInMilliseconds": 50}));
        assert_eq!(host.take(), [ok(2), Call::Stop(1), interrupted, ok(1), Call::Play("cid:a3".into(), json!({}))]);
    }

    #[test]
    fn a_speak_cancelled_before_it_started_sends_no_event() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = Synthesizer::new(3);
        s.speak(&host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        s.on_focus(&host, FocusState::Foreground, t0).unwrap();
        host.take();
        s.cancel(&host, "m1", t0).unwrap();
        assert_eq!(host.take(), [Call::Stop(1), ok(1), Call::Release(CHANNEL.into())]);
        s.on_media(&host, 1, "started", 0, None, t0).unwrap();
        assert!(host.take().is_empty(), "a start after the cancel is ignored");
    }

    #[test]
    fn a_refused_focus_fails_the_speak() {
        let (host, t0) = (FakeHost::new(schemas(3)).refusing_focus(), Instant::now());
        let mut s = Synthesizer::new(3);
        s.speak(&host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        let calls = host.take();
        assert!(matches!(&calls[0], Call::Complete(id, Err(e)) if id == "m1" && e.contains("focus")), "{calls:?}");
    }

    #[test]
    fn a_focus_granted_after_everything_was_cancelled_is_given_back() {
        let (host, t0) = (FakeHost::new(schemas(3)), Instant::now());
        let mut s = Synthesizer::new(3);
        s.speak(&host, speech(1), PlayBehavior::ReplaceAll, t0).unwrap();
        s.cancel(&host, "m1", t0).unwrap();
        host.take();
        s.on_focus(&host, FocusState::Foreground, t0).unwrap();
        assert_eq!(host.take(), [Call::Release(CHANNEL.into())]);
    }
}
