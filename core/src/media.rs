//! Audio for plugins: the store of `cid:` attachments that arrive with directives, a player that renders
//! to the configured sink, and the audio sources a Recognize streams from.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{watch, Notify};

use crate::https::HttpsClient;
use crate::tasks::OwnedTasks;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    #[error("attachment {0} did not arrive within {1:?}")]
    AttachmentMissing(String, Duration),
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{0} is not a 16 kHz, 16-bit, mono PCM WAV file")]
    WavFormat(String),
    #[error("unsupported media URL {0} (supported: cid:, https://, file paths, tone:<ms>)")]
    UnsupportedUrl(String),
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("bad play options {0}")]
    Options(String),
    #[error("cannot write to the audio sink {path}: {source}")]
    Sink { path: String, source: std::io::Error },
}

/// Binary parts (`Content-ID`) of directive responses. Parts may arrive before or after their directive,
/// so a reader waits for a missing one for a while; and a part stays readable after it was first played
/// (an AudioPlayer item paused by a Speak is played again from its offset), until newer parts push it out.
#[derive(Clone)]
pub struct AttachmentStore {
    inner: Arc<AttachmentsInner>,
}

struct AttachmentsInner {
    parts: Mutex<(HashMap<String, Bytes>, VecDeque<String>)>,
    arrived: Notify,
    /// Kept at most, by count and by bytes (the newest is always kept); the oldest go first.
    max_count: usize,
    max_bytes: usize,
}

impl Default for AttachmentStore {
    fn default() -> Self {
        let limits = crate::config::Limits::default();
        AttachmentStore::with_limits(limits.max_pending_attachments, limits.max_attachment_bytes)
    }
}

impl AttachmentStore {
    pub fn with_limits(max_count: usize, max_bytes: usize) -> Self {
        AttachmentStore {
            inner: Arc::new(AttachmentsInner {
                parts: Mutex::default(),
                arrived: Notify::new(),
                max_count: max_count.max(1),
                max_bytes,
            }),
        }
    }

    pub fn insert(&self, content_id: &str, body: Bytes) {
        let mut guard = self.inner.parts.lock().unwrap_or_else(|e| e.into_inner());
        let (parts, order) = &mut *guard;
        if parts.insert(content_id.to_string(), body).is_none() {
            order.push_back(content_id.to_string());
        }
        let mut kept_bytes: usize = parts.values().map(Bytes::len).sum();
        let (max_count, max_bytes) = (self.inner.max_count, self.inner.max_bytes);
        while order.len() > max_count || (kept_bytes > max_bytes && order.len() > 1) {
            if let Some(oldest) = order.pop_front() {
                tracing::debug!(content_id = %oldest, "attachment dropped to make room");
                kept_bytes -= parts.remove(&oldest).map_or(0, |b| b.len());
            }
        }
        drop(guard);
        self.inner.arrived.notify_waiters();
    }

    /// The attachment `content_id` (without `cid:`), waiting up to `timeout` for it to arrive.
    pub async fn get(&self, content_id: &str, timeout: Duration) -> Result<Bytes, MediaError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            {
                let guard = self.inner.parts.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(body) = guard.0.get(content_id) {
                    return Ok(body.clone());
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(MediaError::AttachmentMissing(content_id.to_string(), timeout));
            }
        }
    }
}

/// Where played audio goes: nowhere, or one file per played item in a directory (what the demo and the
/// tests inspect; a real audio device would be another variant behind a cargo feature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sink {
    Null,
    Directory(PathBuf),
}

impl Sink {
    pub fn from_config(value: &str) -> Sink {
        match value {
            "" | "null" => Sink::Null,
            dir => Sink::Directory(PathBuf::from(dir)),
        }
    }
}

/// What a player reports about one item, delivered to the plugin that started it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// The whole item is on the device (AudioPlayer's cue for PlaybackNearlyFinished).
    Buffered {
        duration_ms: u64,
    },
    Started {
        offset_ms: u64,
    },
    /// Playback reached a progress mark the plugin asked for (`delay` once, `interval` repeatedly).
    Progress {
        mark: ProgressMark,
        offset_ms: u64,
    },
    Finished {
        offset_ms: u64,
    },
    Stopped {
        offset_ms: u64,
    },
    Failed {
        offset_ms: u64,
        error: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProgressMark {
    Delay,
    Interval,
}

/// How to play an item (the `options` of `HostServices::play`), in AVS's own terms: where to start, and
/// the progress report marks, both in playback time — which is what AVS measures them in, whatever the
/// playback speed.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct PlayOptions {
    pub offset_in_milliseconds: u64,
    pub progress_report: Option<ProgressReport>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct ProgressReport {
    pub progress_report_delay_in_milliseconds: u64,
    pub progress_report_interval_in_milliseconds: u64,
}

impl PlayOptions {
    pub fn parse(json: &str) -> Result<PlayOptions, MediaError> {
        if json.trim().is_empty() {
            return Ok(PlayOptions::default());
        }
        serde_json::from_str(json).map_err(|e| MediaError::Options(format!("{json}: {e}")))
    }

    /// The progress marks after `from` and up to `end` (playback milliseconds), in order.
    fn marks(&self, from: u64, end: u64) -> Vec<(u64, ProgressMark)> {
        let Some(report) = self.progress_report else { return Vec::new() };
        let mut marks = Vec::new();
        let delay = report.progress_report_delay_in_milliseconds;
        if delay > from && delay <= end {
            marks.push((delay, ProgressMark::Delay));
        }
        let interval = report.progress_report_interval_in_milliseconds;
        if let Some(passed) = from.checked_div(interval) {
            let mut at = (passed + 1) * interval;
            while at <= end {
                marks.push((at, ProgressMark::Interval));
                at += interval;
            }
        }
        marks.sort_by_key(|(at, _)| *at);
        marks
    }
}

impl MediaEvent {
    pub fn to_json(&self, id: u64) -> serde_json::Value {
        use serde_json::json;
        match self {
            MediaEvent::Buffered { duration_ms } => {
                json!({"id": id, "state": "buffered", "durationInMilliseconds": duration_ms})
            }
            MediaEvent::Started { offset_ms } => {
                json!({"id": id, "state": "started", "offsetInMilliseconds": offset_ms})
            }
            MediaEvent::Progress { mark, offset_ms } => {
                let mark = match mark {
                    ProgressMark::Delay => "delay",
                    ProgressMark::Interval => "interval",
                };
                json!({"id": id, "state": "progress", "mark": mark, "offsetInMilliseconds": offset_ms})
            }
            MediaEvent::Finished { offset_ms } => {
                json!({"id": id, "state": "finished", "offsetInMilliseconds": offset_ms})
            }
            MediaEvent::Stopped { offset_ms } => {
                json!({"id": id, "state": "stopped", "offsetInMilliseconds": offset_ms})
            }
            MediaEvent::Failed { offset_ms, error } => {
                json!({"id": id, "state": "failed", "offsetInMilliseconds": offset_ms, "error": error})
            }
        }
    }
}

pub type MediaListener = Box<dyn Fn(MediaEvent) + Send + Sync>;

/// Renders media items. Items play in real time (`speed` 1.0) so that focus, barge-in and
/// progress behave as on a device; tests may speed it up.
pub struct Player {
    attachments: AttachmentStore,
    https: HttpsClient,
    sink: Sink,
    speed: f64,
    next_id: Arc<AtomicU64>,
    playing: Arc<Mutex<HashMap<u64, watch::Sender<bool>>>>,
    tasks: OwnedTasks,
}

/// How long a `cid:` URL may wait for its attachment part.
const ATTACHMENT_WAIT: Duration = Duration::from_secs(10);

impl Player {
    pub(crate) fn new(
        attachments: AttachmentStore,
        https: HttpsClient,
        sink: Sink,
        speed: f64,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Player {
            attachments,
            https,
            sink,
            speed: if speed > 0.0 { speed } else { 1.0 },
            next_id: Arc::new(AtomicU64::new(1)),
            playing: Arc::default(),
            tasks: OwnedTasks::new(runtime),
        }
    }

    /// Starts playing `url`; `listener` is made for the item's id and hears how it goes.
    pub fn play(
        &self,
        url: &str,
        options: PlayOptions,
        listener: impl FnOnce(u64) -> MediaListener,
    ) -> Result<u64, MediaError> {
        let source = MediaSource::parse(url)?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let listener = listener(id);
        let (stop_tx, stop_rx) = watch::channel(false);
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).insert(id, stop_tx);
        let fetch = Fetch { attachments: self.attachments.clone(), https: self.https.clone() };
        let sink = self.sink.clone();
        let speed = self.speed;
        let playing = self.playing.clone();
        self.tasks.spawn(async move {
            let outcome = render(id, source, &fetch, &sink, speed, &options, stop_rx, &listener).await;
            playing.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
            listener(outcome);
        });
        Ok(id)
    }

    /// Registers an audio capture so that `stop(id)` reaches it; `end_capture` forgets it.
    pub fn register_capture(&self) -> (u64, watch::Receiver<bool>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (stop_tx, stop_rx) = watch::channel(false);
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).insert(id, stop_tx);
        (id, stop_rx)
    }

    pub fn end_capture(&self, id: u64) {
        self.playing.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
    }

    /// Stops a playing item or an audio capture.
    pub fn stop(&self, id: u64) {
        if let Some(stop) = self.playing.lock().unwrap_or_else(|e| e.into_inner()).get(&id) {
            let _ = stop.send(true);
        }
    }

    pub(crate) fn shutdown(&self) {
        self.tasks.abort_all();
    }
}

enum MediaSource {
    Attachment(String),
    /// Fetched whole over HTTPS (HTTP/2, the device's TLS trust) before it plays.
    Https(String),
    File(PathBuf),
    /// A beep generated on the device, for alerts that must sound when their assets cannot be fetched.
    Tone {
        ms: u64,
    },
}

/// The longest `tone:` the host generates.
const MAX_TONE_MS: u64 = 60_000;
const TONE_RATE: u32 = 16_000;

/// 16 kHz / 16-bit / mono PCM samples as a WAV file.
fn pcm16_wav(samples: &[i16]) -> Vec<u8> {
    let data = (samples.len() * 2) as u32;
    let mut wav = Vec::with_capacity(44 + data as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&TONE_RATE.to_le_bytes());
    wav.extend_from_slice(&(TONE_RATE * 2).to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

/// An 880 Hz beep of `ms` milliseconds, half on and half off, as a WAV file.
fn tone(ms: u64) -> Vec<u8> {
    let count = (ms * TONE_RATE as u64 / 1000) as usize;
    let samples: Vec<i16> = (0..count)
        .map(|n| {
            let on = (n * 1000 / TONE_RATE as usize) % 500 < 250;
            let phase = n as f64 * 880.0 * std::f64::consts::TAU / TONE_RATE as f64;
            if on {
                (phase.sin() * 8_000.0) as i16
            } else {
                0
            }
        })
        .collect();
    pcm16_wav(&samples)
}

impl MediaSource {
    fn parse(url: &str) -> Result<Self, MediaError> {
        if let Some(id) = url.strip_prefix("cid:") {
            return Ok(MediaSource::Attachment(id.to_string()));
        }
        if url.starts_with("https://") {
            return Ok(MediaSource::Https(url.to_string()));
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(MediaSource::File(PathBuf::from(path)));
        }
        if url.starts_with('/') {
            return Ok(MediaSource::File(PathBuf::from(url)));
        }
        if let Some(ms) = url.strip_prefix("tone:") {
            return match ms.parse::<u64>() {
                Ok(ms) if (1..=MAX_TONE_MS).contains(&ms) => Ok(MediaSource::Tone { ms }),
                _ => Err(MediaError::UnsupportedUrl(format!("{url} (tone:<1..{MAX_TONE_MS} ms>)"))),
            };
        }
        Err(MediaError::UnsupportedUrl(url.to_string()))
    }
}

/// Where an item's bytes come from besides files.
struct Fetch {
    attachments: AttachmentStore,
    https: HttpsClient,
}

impl Fetch {
    async fn bytes(&self, source: MediaSource) -> Result<(String, Bytes), MediaError> {
        match source {
            MediaSource::Attachment(cid) => Ok((sanitize(&cid), self.attachments.get(&cid, ATTACHMENT_WAIT).await?)),
            MediaSource::Https(url) => {
                let fetch_err = |reason: String| MediaError::Fetch { url: url.clone(), reason };
                let request = http::Request::get(&url).body(Bytes::new()).map_err(|e| fetch_err(e.to_string()))?;
                let (status, _, body) = self.https.send(request).await.map_err(|e| fetch_err(e.to_string()))?;
                if !status.is_success() {
                    return Err(fetch_err(format!("HTTP {status}")));
                }
                Ok((sanitize(&url), body))
            }
            MediaSource::Tone { ms } => Ok((format!("tone-{ms}ms"), Bytes::from(tone(ms)))),
            MediaSource::File(path) => match tokio::fs::read(&path).await {
                Ok(bytes) => Ok((sanitize(&path.to_string_lossy()), Bytes::from(bytes))),
                Err(source) => Err(MediaError::Read { path: path.display().to_string(), source }),
            },
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn render(
    id: u64,
    source: MediaSource,
    fetch: &Fetch,
    sink: &Sink,
    speed: f64,
    options: &PlayOptions,
    mut stop: watch::Receiver<bool>,
    listener: &MediaListener,
) -> MediaEvent {
    let (name, bytes) = match fetch.bytes(source).await {
        Ok(fetched) => fetched,
        Err(e) => return MediaEvent::Failed { offset_ms: 0, error: e.to_string() },
    };
    let duration_ms = audio_duration_ms(&bytes);
    listener(MediaEvent::Buffered { duration_ms });
    if let Sink::Directory(dir) = sink {
        let extension = if Wav::parse(&bytes).is_some() {
            ".wav"
        } else if mp3_duration_ms(&bytes).is_some() {
            ".mp3"
        } else {
            ""
        };
        let path = dir.join(format!("{id:04}-{name}{extension}"));
        if let Err(source) = write_file(&path, &bytes).await {
            let error = MediaError::Sink { path: path.display().to_string(), source }.to_string();
            return MediaEvent::Failed { offset_ms: 0, error };
        }
    }
    let from = options.offset_in_milliseconds.min(duration_ms);
    listener(MediaEvent::Started { offset_ms: from });
    let started = tokio::time::Instant::now();
    // Playback time `at` happens at this wall-clock instant.
    let when = |at: u64| started + Duration::from_secs_f64(at.saturating_sub(from) as f64 / 1000.0 / speed);
    let offset_now = || (from + (started.elapsed().as_secs_f64() * speed * 1000.0) as u64).min(duration_ms);
    for (at, mark) in options.marks(from, duration_ms) {
        tokio::select! {
            _ = tokio::time::sleep_until(when(at)) => listener(MediaEvent::Progress { mark, offset_ms: at }),
            _ = stop.wait_for(|stopped| *stopped) => return MediaEvent::Stopped { offset_ms: offset_now() },
        }
    }
    tokio::select! {
        _ = tokio::time::sleep_until(when(duration_ms)) => MediaEvent::Finished { offset_ms: duration_ms },
        _ = stop.wait_for(|stopped| *stopped) => MediaEvent::Stopped { offset_ms: offset_now() },
    }
}

async fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir).await?;
    }
    tokio::fs::write(path, bytes).await
}

fn sanitize(name: &str) -> String {
    let tail = name.rsplit('/').next().unwrap_or(name);
    tail.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' }).take(80).collect()
}

/// Playing time of an MP3 (constant bit rate, from the first frame header) or a WAV; 0 when unknown.
pub fn audio_duration_ms(bytes: &[u8]) -> u64 {
    if let Some(wav) = Wav::parse(bytes) {
        return wav.data.len() as u64 * 1000 / (wav.sample_rate as u64 * wav.block_align as u64).max(1);
    }
    mp3_duration_ms(bytes).unwrap_or(0)
}

fn mp3_duration_ms(bytes: &[u8]) -> Option<u64> {
    let mut start = 0;
    // An ID3v2 tag: 10-byte header whose size is a 28-bit synch-safe integer.
    if bytes.len() > 10 && &bytes[..3] == b"ID3" {
        let size = bytes[6..10].iter().fold(0usize, |acc, b| (acc << 7) | (*b as usize & 0x7f));
        start = 10 + size;
    }
    let frame = bytes.get(start..)?.windows(4).position(|w| w[0] == 0xff && w[1] & 0xe0 == 0xe0)? + start;
    let header = &bytes[frame..frame + 4];
    let version = (header[1] >> 3) & 0x03; // 3 = MPEG-1, 2 = MPEG-2, 0 = MPEG-2.5
    let layer = (header[1] >> 1) & 0x03; // 1 = Layer III
    if layer != 1 {
        return None;
    }
    const MPEG1_L3: [u32; 15] = [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320];
    const MPEG2_L3: [u32; 15] = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];
    let index = (header[2] >> 4) as usize;
    let kbps = if version == 3 { MPEG1_L3.get(index)? } else { MPEG2_L3.get(index)? };
    if *kbps == 0 {
        return None;
    }
    Some(((bytes.len() - frame) as u64 * 8) / *kbps as u64)
}

struct Wav<'a> {
    sample_rate: u32,
    channels: u16,
    bits: u16,
    block_align: u16,
    data: &'a [u8],
}

impl<'a> Wav<'a> {
    fn parse(bytes: &'a [u8]) -> Option<Wav<'a>> {
        if bytes.len() < 12 || &bytes[..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
            return None;
        }
        let (mut pos, mut format, mut data) = (12, None, None);
        while pos + 8 <= bytes.len() {
            let id = &bytes[pos..pos + 4];
            let size = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().ok()?) as usize;
            let body = bytes.get(pos + 8..(pos + 8 + size).min(bytes.len()))?;
            match id {
                b"fmt " if body.len() >= 16 => format = Some(body),
                b"data" => data = Some(body),
                _ => {}
            }
            pos += 8 + size + (size & 1);
        }
        let format = format?;
        let u16_at = |i: usize| u16::from_le_bytes([format[i], format[i + 1]]);
        Some(Wav {
            channels: u16_at(2),
            sample_rate: u32::from_le_bytes(format[4..8].try_into().ok()?),
            block_align: u16_at(12),
            bits: u16_at(14),
            data: data?,
        })
    }
}

/// Where a Recognize's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AudioSource {
    /// A 16 kHz / 16-bit / mono WAV file.
    File(PathBuf),
    /// Raw 16 kHz / 16-bit LE / mono PCM.
    Raw(PathBuf),
    /// Raw PCM on standard input.
    Stdin(bool),
}

/// An audio capture a plugin asked for, opened by the connection when it streams the event. The plugin
/// stops it (StopCapture) through its media id and hears `finished` when the last chunk went out.
pub struct CaptureRequest {
    pub id: u64,
    pub source: AudioSource,
    pub stop: watch::Receiver<bool>,
    pub on_end: Option<Box<dyn FnOnce(MediaEvent) + Send + Sync>>,
}

impl CaptureRequest {
    /// Reports how the capture ended (once).
    pub fn end(&mut self, event: MediaEvent) {
        if let Some(on_end) = self.on_end.take() {
            on_end(event);
        }
    }
}

/// One audio capture streamed as the `audio` part of an event.
pub struct AudioCapture {
    pub id: u64,
    reader: Box<dyn AsyncRead + Send + Unpin>,
    stop: watch::Receiver<bool>,
    sent: u64,
}

/// 100 ms of 16 kHz / 16-bit mono audio per chunk.
const CAPTURE_CHUNK: usize = 3200;

impl AudioCapture {
    pub async fn open(id: u64, source: &AudioSource, stop: watch::Receiver<bool>) -> Result<Self, MediaError> {
        let read_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| MediaError::Read { path, source }
        };
        let reader: Box<dyn AsyncRead + Send + Unpin> = match source {
            AudioSource::File(path) => {
                let bytes = tokio::fs::read(path).await.map_err(read_err(path))?;
                let wav = Wav::parse(&bytes).ok_or_else(|| MediaError::WavFormat(path.display().to_string()))?;
                if (wav.sample_rate, wav.channels, wav.bits) != (16_000, 1, 16) {
                    return Err(MediaError::WavFormat(path.display().to_string()));
                }
                Box::new(std::io::Cursor::new(wav.data.to_vec()))
            }
            AudioSource::Raw(path) => Box::new(tokio::fs::File::open(path).await.map_err(read_err(path))?),
            AudioSource::Stdin(_) => Box::new(tokio::io::stdin()),
        };
        Ok(AudioCapture { id, reader, stop, sent: 0 })
    }

    /// Milliseconds of audio streamed so far (16 kHz, 16-bit mono: 32 bytes per millisecond).
    pub fn offset_ms(&self) -> u64 {
        self.sent / 32
    }

    /// The next chunk of audio; `None` at the end of the source or once the capture was stopped.
    pub async fn next_chunk(&mut self) -> std::io::Result<Option<Bytes>> {
        if *self.stop.borrow() {
            return Ok(None);
        }
        let mut buf = vec![0u8; CAPTURE_CHUNK];
        let mut filled = 0;
        while filled < buf.len() {
            let n = tokio::select! {
                n = self.reader.read(&mut buf[filled..]) => n?,
                _ = self.stop.wait_for(|s| *s) => return Ok(None),
            };
            if n == 0 {
                break;
            }
            filled += n;
        }
        buf.truncate(filled);
        self.sent += filled as u64;
        Ok((filled > 0).then(|| Bytes::from(buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(samples: usize) -> Vec<u8> {
        pcm16_wav(&vec![0x0707; samples])
    }

    #[test]
    fn progress_marks_are_in_playback_time_after_the_start_offset() {
        let report = ProgressReport {
            progress_report_delay_in_milliseconds: 1_500,
            progress_report_interval_in_milliseconds: 1_000,
        };
        let options = PlayOptions { offset_in_milliseconds: 0, progress_report: Some(report) };
        use ProgressMark::{Delay, Interval};
        assert_eq!(options.marks(0, 3_500), [(1_000, Interval), (1_500, Delay), (2_000, Interval), (3_000, Interval)]);
        assert_eq!(options.marks(1_200, 2_500), [(1_500, Delay), (2_000, Interval)], "resumed past the first mark");
        assert_eq!(PlayOptions::default().marks(0, 10_000), []);
        assert!(PlayOptions::parse(r#"{"offset": 3}"#).is_err(), "unknown option names are refused");
        let parsed = PlayOptions::parse(r#"{"offsetInMilliseconds": 3000}"#).unwrap();
        assert_eq!(parsed.offset_in_milliseconds, 3_000);
    }

    #[test]
    fn a_tone_is_a_wav_of_the_length_asked_and_bad_tones_are_refused() {
        assert_eq!(audio_duration_ms(&tone(1_500)), 1_500);
        assert!(matches!(MediaSource::parse("tone:800"), Ok(MediaSource::Tone { ms: 800 })));
        for bad in ["tone:0", "tone:abc", "tone:3600000"] {
            assert!(MediaSource::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_of_wav_and_cbr_mp3() {
        assert_eq!(audio_duration_ms(&wav(16_000)), 1000);
        // MPEG-2 Layer III, 48 kbps (index 6), 24 kHz: 6000 bytes = 1 s.
        let mut mp3 = vec![0xff, 0xf3, 0x64, 0xc4];
        mp3.resize(6000, 0);
        assert_eq!(audio_duration_ms(&mp3), 1000);
        assert_eq!(audio_duration_ms(b"no audio here"), 0);
    }

    #[tokio::test]
    async fn attachments_can_arrive_after_the_reader_asks() {
        let store = AttachmentStore::default();
        let reader = tokio::spawn({
            let store = store.clone();
            async move { store.get("tts-1", Duration::from_secs(5)).await }
        });
        tokio::task::yield_now().await;
        store.insert("tts-1", Bytes::from_static(b"mp3"));
        assert_eq!(reader.await.unwrap().unwrap(), Bytes::from_static(b"mp3"));
        let missing = store.get("tts-2", Duration::from_millis(10)).await.unwrap_err();
        assert!(missing.to_string().contains("tts-2"));
    }

    #[tokio::test]
    async fn attachments_stay_readable_until_newer_ones_push_them_out() {
        let store = AttachmentStore::with_limits(32, 1_000);
        store.insert("song", Bytes::from_static(b"mp3"));
        let wait = Duration::from_millis(10);
        assert_eq!(store.get("song", wait).await.unwrap(), store.get("song", wait).await.unwrap());
        for n in 0..32 {
            store.insert(&format!("later-{n}"), Bytes::from_static(b"x"));
        }
        assert!(store.get("song", wait).await.is_err(), "the oldest goes first");
        store.insert("big-1", Bytes::from(vec![0; 501]));
        store.insert("big-2", Bytes::from(vec![0; 501]));
        assert!(store.get("big-1", wait).await.is_err(), "bytes are bounded too");
        assert!(store.get("big-2", wait).await.is_ok());
    }

    #[tokio::test]
    async fn capture_streams_the_wav_data_and_stops_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("u.wav");
        std::fs::write(&path, wav(8_000)).unwrap();
        let (stop_tx, stop) = watch::channel(false);
        let mut capture = AudioCapture::open(1, &AudioSource::File(path.clone()), stop).await.unwrap();
        let first = capture.next_chunk().await.unwrap().unwrap();
        assert_eq!(first.len(), CAPTURE_CHUNK);
        stop_tx.send(true).unwrap();
        assert!(capture.next_chunk().await.unwrap().is_none());

        let (_keep, stop) = watch::channel(false);
        let mut capture = AudioCapture::open(2, &AudioSource::File(path), stop).await.unwrap();
        let mut total = 0;
        while let Some(chunk) = capture.next_chunk().await.unwrap() {
            total += chunk.len();
        }
        assert_eq!(total, 16_000);

        std::fs::write(dir.path().join("bad.wav"), b"RIFF....WAVE").unwrap();
        let (_keep, stop) = watch::channel(false);
        let err = AudioCapture::open(3, &AudioSource::File(dir.path().join("bad.wav")), stop).await.err().unwrap();
        assert!(err.to_string().contains("bad.wav"));
    }
}
