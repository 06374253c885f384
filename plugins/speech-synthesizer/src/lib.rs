//! SpeechSynthesizer 1.3: plays Alexa's speech (Speak, an MP3 `cid:` attachment) on the Dialog channel
//! and reports SpeechStarted / SpeechFinished / SpeechInterrupted.
//!
//! Speak is a blocking directive: the host holds the rest of the dialog (ExpectSpeech, Play…) until this
//! plugin completes it, which it does when playback ends — naturally, interrupted, or failed.

use std::collections::VecDeque;
use std::time::Instant;

use avs_plugin_sdk::{
    context_entry, export_plugin, Directive, DirectiveSpec, EventSpec, FocusState, Handling, Host, Interface, Manifest,
    Medium, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

const INTERFACE: &str = "SpeechSynthesizer";
const CHANNEL: &str = "Dialog";

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Speak {
    url: String,
    token: String,
    #[serde(default)]
    play_behavior: PlayBehavior,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum PlayBehavior {
    #[default]
    ReplaceAll,
    Enqueue,
    ReplaceEnqueued,
}

#[derive(Debug, Clone)]
struct Item {
    message_id: String,
    token: String,
    url: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activity {
    Playing,
    Finished,
    Interrupted,
}

impl Activity {
    fn as_str(self) -> &'static str {
        match self {
            Activity::Playing => "PLAYING",
            Activity::Finished => "FINISHED",
            Activity::Interrupted => "INTERRUPTED",
        }
    }
}

/// The item being spoken: waiting for focus (no media yet) or playing.
#[derive(Debug)]
struct Current {
    item: Item,
    media: Option<u64>,
    started: Option<Instant>,
    /// Stopped on purpose: its `stopped` media event means interrupted.
    interrupting: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MediaEvent {
    id: u64,
    state: String,
    #[serde(default)]
    offset_in_milliseconds: u64,
    error: Option<String>,
}

pub struct SpeechSynthesizer {
    host: Option<Host>,
    queue: VecDeque<Item>,
    current: Option<Current>,
    last_token: String,
    last_offset_ms: u64,
    activity: Activity,
}

impl Default for SpeechSynthesizer {
    fn default() -> Self {
        SpeechSynthesizer {
            host: None,
            queue: VecDeque::new(),
            current: None,
            last_token: String::new(),
            last_offset_ms: 0,
            activity: Activity::Finished,
        }
    }
}

impl SpeechSynthesizer {
    fn host(&self) -> Result<Host, PluginError> {
        self.host.clone().ok_or_else(|| PluginError::internal("not initialised"))
    }

    /// Starts the next queued item: ask for the Dialog channel; playback starts when it is granted.
    fn start_next(&mut self) -> Result<(), PluginError> {
        if self.current.is_some() {
            return Ok(());
        }
        let Some(item) = self.queue.pop_front() else {
            self.host()?.release_focus(CHANNEL);
            return Ok(());
        };
        self.current = Some(Current { item, media: None, started: None, interrupting: false });
        self.host()?.acquire_focus(CHANNEL)
    }

    /// Stops the current item (barge-in, REPLACE_ALL, lost focus); the player's `stopped` event finishes it.
    fn interrupt(&mut self) -> Result<(), PluginError> {
        let host = self.host()?;
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        current.interrupting = true;
        match current.media {
            Some(media) => host.stop_media(media),
            None => {
                // Never started playing: nothing to stop, finish it now.
                self.finish(Err("interrupted before it started".into()), 0)?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, outcome: Result<(), String>, offset_ms: u64) -> Result<(), PluginError> {
        let Some(current) = self.current.take() else {
            return Ok(());
        };
        let host = self.host()?;
        self.last_token = current.item.token.clone();
        self.last_offset_ms = offset_ms;
        let token = json!({"token": current.item.token});
        if current.interrupting {
            self.activity = Activity::Interrupted;
            if current.started.is_some() {
                host.send_event(
                    "SpeechInterrupted",
                    &json!({"token": current.item.token, "offsetInMilliseconds": offset_ms}),
                )?;
            }
        } else if outcome.is_ok() {
            self.activity = Activity::Finished;
            host.send_event("SpeechFinished", &token)?;
        } else {
            self.activity = Activity::Finished;
        }
        host.complete_directive(&current.item.message_id, if current.interrupting { Ok(()) } else { outcome });
        self.start_next()
    }

    fn on_media(&mut self, event: MediaEvent) -> Result<(), PluginError> {
        let host = self.host()?;
        let Some(current) = &mut self.current else {
            return Ok(());
        };
        if current.media != Some(event.id) {
            return Ok(()); // a late event of an item already finished
        }
        match event.state.as_str() {
            "started" => {
                current.started = Some(Instant::now());
                self.activity = Activity::Playing;
                host.send_event("SpeechStarted", &json!({"token": current.item.token}))?;
                Ok(())
            }
            "finished" | "stopped" => self.finish(Ok(()), event.offset_in_milliseconds),
            "failed" => {
                let error = event.error.unwrap_or_else(|| "playback failed".into());
                self.finish(Err(error), event.offset_in_milliseconds)
            }
            _ => Ok(()),
        }
    }

    fn offset_ms(&self) -> u64 {
        match &self.current {
            Some(Current { started: Some(started), .. }) => started.elapsed().as_millis() as u64,
            _ => self.last_offset_ms,
        }
    }
}

impl Interface for SpeechSynthesizer {
    fn manifest() -> Manifest {
        Manifest {
            interface: INTERFACE.into(),
            version: "1.3".into(),
            plugin: env!("CARGO_PKG_NAME").into(),
            plugin_version: env!("CARGO_PKG_VERSION").into(),
            directives: vec![DirectiveSpec::new("Speak").blocking(Medium::Audio).on_channel(CHANNEL)],
            events: ["SpeechStarted", "SpeechFinished", "SpeechInterrupted"].into_iter().map(EventSpec::new).collect(),
            context: vec!["SpeechState".into()],
            configurations: None,
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host = Some(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        if directive.name != "Speak" {
            return Err(PluginError::unsupported(format!("SpeechSynthesizer 1.3 has no directive {}", directive.name)));
        }
        let speak: Speak = directive.payload()?;
        let item = Item { message_id: directive.message_id.into(), token: speak.token, url: speak.url };
        match speak.play_behavior {
            PlayBehavior::ReplaceAll => {
                self.drop_queue();
                self.queue.push_back(item);
                self.interrupt()?;
            }
            PlayBehavior::Enqueue => self.queue.push_back(item),
            PlayBehavior::ReplaceEnqueued => {
                self.drop_queue();
                self.queue.push_back(item);
            }
        }
        self.start_next()?;
        Ok(Handling::Pending)
    }

    fn cancel(&mut self, message_id: &str) -> Result<(), PluginError> {
        self.queue.retain(|item| item.message_id != message_id);
        if self.current.as_ref().is_some_and(|c| c.item.message_id == message_id) {
            self.interrupt()?;
        }
        Ok(())
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel != CHANNEL {
            return Ok(());
        }
        let host = self.host()?;
        match (focus, &mut self.current) {
            (FocusState::Foreground, Some(current)) if current.media.is_none() && !current.interrupting => {
                match host.play(&current.item.url, &json!({})) {
                    Ok(media) => current.media = Some(media),
                    Err(e) => self.finish(Err(e.to_string()), 0)?,
                }
            }
            // Speech never plays under something else: losing the foreground interrupts it.
            (FocusState::Background | FocusState::None, Some(_)) => self.interrupt()?,
            _ => {}
        }
        Ok(())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "media" {
            return Ok(());
        }
        let event: MediaEvent =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("media event: {e}")))?;
        self.on_media(event)
    }

    fn context(&self) -> Vec<Value> {
        let token = self.current.as_ref().map_or(self.last_token.as_str(), |c| c.item.token.as_str());
        vec![context_entry(
            INTERFACE,
            "SpeechState",
            json!({"token": token, "offsetInMilliseconds": self.offset_ms(), "playerActivity": self.activity.as_str()}),
        )]
    }
}

impl SpeechSynthesizer {
    /// Queued items that will never play: their directives complete (the dialog moves on).
    fn drop_queue(&mut self) {
        if let Some(host) = &self.host {
            for item in self.queue.drain(..) {
                host.complete_directive(&item.message_id, Err("replaced before it played".into()));
            }
        }
    }
}

export_plugin!(SpeechSynthesizer, "$CARGO_MANIFEST_DIR/../../schemas/SpeechSynthesizer/1.3");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn play_behaviors_parse_and_default_to_replace_all() {
        let speak: Speak = serde_json::from_str(r#"{"url":"cid:a","format":"AUDIO_MPEG","token":"t"}"#).unwrap();
        assert_eq!(speak.play_behavior, PlayBehavior::ReplaceAll);
        let speak: Speak =
            serde_json::from_str(r#"{"url":"cid:a","token":"t","playBehavior":"REPLACE_ENQUEUED"}"#).unwrap();
        assert_eq!(speak.play_behavior, PlayBehavior::ReplaceEnqueued);
    }

    #[test]
    fn context_reports_the_last_token_and_activity() {
        let mut s = SpeechSynthesizer::default();
        assert_eq!(s.context()[0]["payload"]["playerActivity"], "FINISHED");
        s.last_token = "t9".into();
        s.activity = Activity::Interrupted;
        s.last_offset_ms = 420;
        let payload = &s.context()[0]["payload"];
        assert_eq!((payload["token"].as_str(), payload["offsetInMilliseconds"].as_u64()), (Some("t9"), Some(420)));
        assert_eq!(payload["playerActivity"], "INTERRUPTED");
    }
}
