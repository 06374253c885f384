//! AudioPlayer 1.4: long-form audio (music, podcasts, audiobooks) that AVS queues on the device and the
//! device plays on the Content channel, reporting how playback goes. The state machine is [`player`];
//! this file connects it to the host.

mod audio_item;
mod failure;
mod player;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventSpec, FocusState, Handling, Host, HostCell, Interface, Manifest,
    MediaEvent, Medium, PluginError,
};
use serde_json::Value;

use audio_item::{ClearQueue, Play};
use player::{Player, CHANNEL};

const INTERFACE: &str = "AudioPlayer";

#[derive(Default)]
pub struct AudioPlayer {
    host: HostCell,
    player: Player,
}

impl Interface for AudioPlayer {
    fn manifest() -> Manifest {
        // Non-blocking on the AUDIO medium, as the SDK's AudioPlayer declares them: a Play after a Speak
        // of the same dialog waits for the Speak, and is complete once queued.
        let directive = |name: &str| DirectiveSpec { medium: Medium::Audio, ..DirectiveSpec::new(name) };
        let directives = vec![directive("Play").on_channel(CHANNEL), directive("Stop"), directive("ClearQueue")];
        // Every event must reach AVS: music services account playback by them, and AVS follows the
        // player's state through them.
        let events = [
            "PlaybackStarted",
            "PlaybackNearlyFinished",
            "ProgressReportDelayElapsed",
            "ProgressReportIntervalElapsed",
            "PlaybackFinished",
            "PlaybackStopped",
            "PlaybackPaused",
            "PlaybackResumed",
            "PlaybackFailed",
            "PlaybackQueueCleared",
        ]
        .into_iter()
        .map(|e| EventSpec::new(e).must_deliver())
        .collect();
        Manifest {
            directives,
            events,
            context: vec!["PlaybackState".into()],
            ..avs_plugin_sdk::manifest!(INTERFACE, "1.4")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        self.host.set(host);
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        let host = self.host.get()?;
        match directive.name {
            "Play" => self.player.play(host, directive.payload::<Play>()?)?,
            "Stop" => self.player.stop(host)?,
            "ClearQueue" => self.player.clear_queue(host, directive.payload::<ClearQueue>()?.clear_behavior)?,
            other => return Err(PluginError::unsupported(format!("AudioPlayer 1.4 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel != CHANNEL {
            return Ok(());
        }
        self.player.on_focus(self.host.get()?, focus)
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != "media" {
            return Ok(());
        }
        self.player.on_media(self.host.get()?, MediaEvent::parse(payload)?)
    }

    fn context(&self) -> Vec<Value> {
        vec![context_entry(INTERFACE, "PlaybackState", self.player.context())]
    }

    fn export_state(&self) -> Value {
        self.player.export()
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        self.player.import(self.host.get()?, state)
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        if let Ok(host) = self.host.get() {
            self.player.shutdown(host);
        }
        Ok(())
    }
}
