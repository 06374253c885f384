//! The Play and ClearQueue payloads, and the audio item as the player keeps it.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PlayBehavior {
    /// Stop what plays, forget the queue, play this.
    ReplaceAll,
    /// Play this after the last queued item.
    Enqueue,
    /// Keep what plays, replace the rest of the queue with this.
    ReplaceEnqueued,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ClearBehavior {
    ClearEnqueued,
    ClearAll,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Play {
    pub play_behavior: PlayBehavior,
    pub audio_item: AudioItemPayload,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioItemPayload {
    pub stream: Stream,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stream {
    pub url: String,
    pub token: String,
    #[serde(default)]
    pub offset_in_milliseconds: u64,
    #[serde(default)]
    pub expected_previous_token: Option<String>,
    #[serde(default)]
    pub progress_report: Option<ProgressReport>,
}

/// Progress marks in playback time; 0 or absent means none (AVS: no event then).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressReport {
    #[serde(default)]
    pub progress_report_delay_in_milliseconds: u64,
    #[serde(default)]
    pub progress_report_interval_in_milliseconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearQueue {
    pub clear_behavior: ClearBehavior,
}

/// One item to play, as queued and handed over on an OTA swap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Item {
    pub token: String,
    pub url: String,
    /// Where playback of this item starts (the directive's offset).
    pub offset_ms: u64,
    pub progress_report: Option<ProgressReport>,
}

impl From<Stream> for Item {
    fn from(stream: Stream) -> Self {
        let report = stream
            .progress_report
            .filter(|r| r.progress_report_delay_in_milliseconds > 0 || r.progress_report_interval_in_milliseconds > 0);
        Item { token: stream.token, url: stream.url, offset_ms: stream.offset_in_milliseconds, progress_report: report }
    }
}

impl Item {
    /// The host's play options for playing this item from `offset_ms`.
    pub fn play_options(&self, offset_ms: u64) -> Value {
        let mut options = json!({"offsetInMilliseconds": offset_ms});
        if let Some(report) = self.progress_report {
            options["progressReport"] = json!(report);
        }
        options
    }
}
