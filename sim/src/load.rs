//! The load generator: N directives of a configurable mix on the downchannel, at full speed or at a
//! target rate, for `avs bench`.
//!
//! The downchannel's own task writes the load (see `downchannel::open`), producing the parts lazily in
//! batches of about [`BATCH_BYTES`] and sending each batch only once HTTP/2 flow control grants room for
//! it: the sim then holds one batch, not the whole run, and goes exactly as fast as the device reads.
//! A directive's bytes depend only on the spec and its index, so every consumer of the same spec
//! (`avs bench`'s transport ceiling, the runtime, the work ceiling) sees the same directives.

use std::future::poll_fn;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use h2::SendStream;
use serde::{Deserialize, Serialize};

use crate::dialog::SPEAK_MP3;
use crate::wire::writer;

/// About the size of one write on the h2 stream.
pub const BATCH_BYTES: usize = 64 << 10;

/// How many distinct alert tokens SetAlert cycles through: well under Alerts' default maximumAlerts (15
/// timers, 15 alarms), so every SetAlert is scheduled (persisted, answered with SetAlertSucceeded) and
/// none is refused for lack of room.
const ALERT_TOKENS: u64 = 10;

/// The directives the generator can send, each a realistic cloud-initiated message (no dialogRequestId:
/// the sequencer runs them at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DirectiveKind {
    /// Speaker.SetVolume, alternating between two levels so that each one changes the volume.
    SetVolume,
    /// Alerts.SetAlert of a timer or alarm with an asset list, cycling through a few tokens.
    SetAlert,
    /// AudioPlayer.Play REPLACE_ENQUEUED with a nested audioItem and progress reports.
    Play,
    /// SpeechSynthesizer.Speak with its MP3 as a `cid:` attachment (only with attachments on).
    Speak,
}

impl DirectiveKind {
    pub const ALL: [DirectiveKind; 4] =
        [DirectiveKind::SetVolume, DirectiveKind::SetAlert, DirectiveKind::Play, DirectiveKind::Speak];

    pub fn namespace(self) -> &'static str {
        match self {
            DirectiveKind::SetVolume => "Speaker",
            DirectiveKind::SetAlert => "Alerts",
            DirectiveKind::Play => "AudioPlayer",
            DirectiveKind::Speak => "SpeechSynthesizer",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DirectiveKind::SetVolume => "SetVolume",
            DirectiveKind::SetAlert => "SetAlert",
            DirectiveKind::Play => "Play",
            DirectiveKind::Speak => "Speak",
        }
    }

    fn named(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// Weighted directive kinds, spread evenly over the run (smooth weighted round robin): every window of
/// `total weight` directives holds each kind exactly its weight times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mix(pub Vec<(DirectiveKind, u32)>);

impl Mix {
    /// Half SetVolume, a quarter each SetAlert and Play; with attachments a fifth of the run is Speak.
    pub fn default_for(attachments: bool) -> Mix {
        use DirectiveKind::*;
        if attachments {
            Mix(vec![(SetVolume, 40), (SetAlert, 20), (Play, 20), (Speak, 20)])
        } else {
            Mix(vec![(SetVolume, 50), (SetAlert, 25), (Play, 25)])
        }
    }

    /// `SetVolume:50,SetAlert:25,Play:25` (names case-insensitive, weights positive integers).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let mut mix = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, weight) = item.split_once(':').ok_or_else(|| format!("{item:?}: expected Name:weight"))?;
            let kind = DirectiveKind::named(name.trim()).ok_or_else(|| {
                let known: Vec<&str> = DirectiveKind::ALL.iter().map(|k| k.name()).collect();
                format!("no directive {name:?} in the load generator (there are: {})", known.join(", "))
            })?;
            let weight: u32 = weight.trim().parse().map_err(|_| format!("{item:?}: the weight is not an integer"))?;
            if weight == 0 {
                return Err(format!("{item:?}: a weight must be positive"));
            }
            if mix.iter().any(|(k, _)| *k == kind) {
                return Err(format!("{} is listed twice", kind.name()));
            }
            mix.push((kind, weight));
        }
        if mix.is_empty() {
            return Err("the mix names no directive".into());
        }
        Ok(Mix(mix))
    }

    fn total(&self) -> u64 {
        self.0.iter().map(|(_, w)| u64::from(*w)).sum()
    }

    /// The kinds of one period of `total` directives, in order.
    fn period(&self) -> Vec<DirectiveKind> {
        let total = self.total() as i64;
        let mut credit = vec![0i64; self.0.len()];
        (0..total)
            .map(|_| {
                for (c, (_, w)) in credit.iter_mut().zip(&self.0) {
                    *c += i64::from(*w);
                }
                let pick = (0..credit.len()).max_by_key(|&i| (credit[i], usize::MAX - i)).unwrap_or(0);
                credit[pick] -= total;
                self.0[pick].0
            })
            .collect()
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total = self.total() as f64;
        let items: Vec<String> =
            self.0.iter().map(|(k, w)| format!("{} {:.0}%", k.name(), f64::from(*w) * 100.0 / total)).collect();
        f.write_str(&items.join(", "))
    }
}

/// One run of the generator. Everything the directives' bytes depend on is in here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadSpec {
    pub directives: u64,
    pub mix: Mix,
    /// Directives per second; `None`: as fast as the device reads.
    pub rate: Option<f64>,
    /// Speak directives carry their MP3 as an attachment part (a Speak needs one, so `Speak` in the mix
    /// requires this).
    pub attachments: bool,
    /// Prefix of every messageId (`<prefix>-<index>`), so that runs can be told apart.
    pub message_prefix: String,
    /// When the SetAlert alerts are due: AVS's `2017-08-07T09:02:58+0000` form, in the future.
    pub alert_time: String,
    /// What AudioPlayer.Play streams.
    pub media_url: String,
}

impl LoadSpec {
    pub fn check(&self) -> Result<(), String> {
        if self.mix.0.iter().any(|(k, _)| *k == DirectiveKind::Speak) && !self.attachments {
            return Err("Speak needs its attachment: add --attachments or leave Speak out of the mix".into());
        }
        match self.rate {
            Some(rate) if !(rate.is_finite() && rate > 0.0) => Err(format!("rate {rate} is not a positive number")),
            _ => Ok(()),
        }
    }

    /// Which kind directive `index` is, for a whole run at once (cheap to index).
    pub fn kinds(&self) -> Kinds {
        Kinds { period: self.mix.period() }
    }

    /// Directive `index` as its JSON part body and, for Speak, its attachment (Content-ID, bytes).
    pub fn directive(&self, kinds: &Kinds, index: u64) -> (String, Option<(String, Bytes)>) {
        let kind = kinds.of(index);
        let id = format!("{}-{index}", self.message_prefix);
        // The n-th directive of its kind: alternates volumes, cycles alert tokens.
        let nth = kinds.nth_of_kind(index);
        let header = format!(r#"{{"namespace":"{}","name":"{}","messageId":"{id}"}}"#, kind.namespace(), kind.name());
        let (payload, attachment) = match kind {
            DirectiveKind::SetVolume => (format!(r#"{{"volume":{}}}"#, 30 + nth % 2 * 5), None),
            DirectiveKind::SetAlert => {
                let token = format!("bench-alert-{}", nth % ALERT_TOKENS);
                let kind = ["TIMER", "ALARM"][(nth % 2) as usize];
                let payload = format!(
                    r#"{{"token":"{token}","type":"{kind}","scheduledTime":"{}","assets":[{{"assetId":"{token}-tone","url":"{}/alerts/{token}.mp3"}}],"assetPlayOrder":["{token}-tone"],"backgroundAlertAsset":"{token}-tone","loopCount":2,"loopPauseInMilliSeconds":300}}"#,
                    self.alert_time, self.media_url
                );
                (payload, None)
            }
            DirectiveKind::Play => {
                let payload = format!(
                    r#"{{"playBehavior":"REPLACE_ENQUEUED","audioItem":{{"audioItemId":"bench-item-{nth}","stream":{{"url":"{}","streamFormat":"AUDIO_MPEG","offsetInMilliseconds":0,"token":"bench-song-{nth}","progressReport":{{"progressReportDelayInMilliseconds":15000,"progressReportIntervalInMilliseconds":30000}}}}}},"playRequestor":{{"type":"ALERT","id":"bench-requestor"}}}}"#,
                    self.media_url
                );
                (payload, None)
            }
            DirectiveKind::Speak => {
                let content_id = format!("{id}-speech");
                let payload = format!(
                    r#"{{"url":"cid:{content_id}","format":"AUDIO_MPEG","token":"bench-speak-{nth}","caption":{{"content":"WEBVTT\n\n1\n00:00.000 --> 00:01.500\nHere is the answer.","type":"WEBVTT"}}}}"#
                );
                (payload, Some((content_id, Bytes::from_static(SPEAK_MP3))))
            }
        };
        (format!(r#"{{"directive":{{"header":{header},"payload":{payload}}}}}"#), attachment)
    }

    /// Directive `index` as downchannel bytes: its parts, each followed by its delimiter.
    fn parts(&self, kinds: &Kinds, index: u64, out: &mut BytesMut) {
        let w = writer();
        let (json, attachment) = self.directive(kinds, index);
        out.extend_from_slice(&w.stream_json_part(json.as_bytes()));
        if let Some((content_id, body)) = attachment.filter(|_| self.attachments) {
            out.extend_from_slice(&w.stream_attachment_part(&content_id, &body));
        }
    }
}

/// The kind of each directive of a run, by index.
pub struct Kinds {
    period: Vec<DirectiveKind>,
}

impl Kinds {
    pub fn of(&self, index: u64) -> DirectiveKind {
        self.period[(index % self.period.len() as u64) as usize]
    }

    fn nth_of_kind(&self, index: u64) -> u64 {
        let len = self.period.len() as u64;
        let kind = self.of(index);
        let per_period = self.period.iter().filter(|k| **k == kind).count() as u64;
        let before_in_period = self.period[..(index % len) as usize].iter().filter(|k| **k == kind).count() as u64;
        index / len * per_period + before_in_period
    }
}

/// Writes the whole run on a downchannel stream: batches of about [`BATCH_BYTES`], each sent once flow
/// control has room for it, paced to the spec's rate if it has one.
pub(crate) async fn stream(spec: &LoadSpec, stream: &mut SendStream<Bytes>) -> Result<(), h2::Error> {
    let kinds = spec.kinds();
    let started = tokio::time::Instant::now();
    let mut next = 0;
    while next < spec.directives {
        // At a target rate, a batch holds only what is due by now: bursts would distort the latencies.
        let due = match spec.rate {
            None => spec.directives,
            Some(rate) => {
                let due = ((started.elapsed().as_secs_f64() * rate) as u64 + 1).min(spec.directives);
                if due <= next {
                    let at = started + Duration::from_secs_f64(next as f64 / rate);
                    tokio::time::sleep_until(at).await;
                    continue;
                }
                due
            }
        };
        let mut batch = BytesMut::with_capacity(BATCH_BYTES + 1024);
        while next < due && batch.len() < BATCH_BYTES {
            spec.parts(&kinds, next, &mut batch);
            next += 1;
        }
        send_when_granted(stream, batch.freeze()).await?;
    }
    Ok(())
}

/// Sends `data`, waiting for flow-control capacity: h2 would otherwise buffer without limit.
async fn send_when_granted(stream: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), h2::Error> {
    while !data.is_empty() {
        stream.reserve_capacity(data.len());
        let granted = match poll_fn(|cx| stream.poll_capacity(cx)).await {
            Some(granted) => granted?,
            None => return Err(h2::Error::from(h2::Reason::STREAM_CLOSED)),
        };
        stream.send_data(data.split_to(granted.min(data.len())), false)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use avs_core::multipart::MultipartParser;
    use serde_json::Value;

    use super::*;

    fn spec(directives: u64, attachments: bool) -> LoadSpec {
        LoadSpec {
            directives,
            mix: Mix::default_for(attachments),
            rate: None,
            attachments,
            message_prefix: "t".into(),
            alert_time: "2030-01-01T00:00:00+0000".into(),
            media_url: "https://localhost:1/media/song-1.mp3".into(),
        }
    }

    /// The run as a device receives it: every part, split by the real parser.
    fn received(spec: &LoadSpec) -> Vec<avs_core::multipart::Part> {
        let kinds = spec.kinds();
        let mut body = BytesMut::from(&writer().open_stream()[..]);
        (0..spec.directives).for_each(|i| spec.parts(&kinds, i, &mut body));
        let mut parser = MultipartParser::new(writer().boundary());
        let mut parts = Vec::new();
        // Network-sized chunks, so that parts straddle them.
        for chunk in body.chunks(1400) {
            parser.push(chunk).unwrap();
            while let Some(part) = parser.next_part().unwrap() {
                parts.push(part);
            }
        }
        parts
    }

    #[test]
    fn a_run_is_n_parseable_directives_in_the_mix_proportions() {
        let spec = spec(1000, false);
        let parts = received(&spec);
        assert_eq!(parts.len(), 1000);
        let mut counts = HashMap::new();
        for (i, part) in parts.iter().enumerate() {
            let json: Value = serde_json::from_slice(&part.body).unwrap();
            let header = &json["directive"]["header"];
            assert_eq!(header["messageId"], format!("t-{i}"));
            assert!(json["directive"]["payload"].is_object());
            *counts.entry(header["name"].as_str().unwrap().to_string()).or_insert(0) += 1;
            assert!((100..=1100).contains(&part.body.len()), "{} bytes: {}", part.body.len(), json);
        }
        assert_eq!((counts["SetVolume"], counts["SetAlert"], counts["Play"]), (500, 250, 250));
        // Spread evenly: any 100 in a row hold the mix too, not 50 SetVolumes in a block.
        let first: Vec<DirectiveKind> = (0..4).map(|i| spec.kinds().of(i)).collect();
        assert!(first.contains(&DirectiveKind::SetAlert) && first.contains(&DirectiveKind::Play), "{first:?}");
    }

    #[test]
    fn speak_brings_its_attachment_and_requires_attachments() {
        let spec = spec(10, true);
        let parts = received(&spec);
        let speaks: Vec<&avs_core::multipart::Part> =
            parts.iter().filter(|p| p.body.windows(7).any(|w| w == b"\"Speak\"")).collect();
        assert_eq!(speaks.len(), 2);
        let attachments: Vec<&avs_core::multipart::Part> =
            parts.iter().filter(|p| p.headers.content_id.is_some()).collect();
        assert_eq!(attachments.len(), 2);
        assert_eq!(attachments[0].body.len(), SPEAK_MP3.len());
        let json: Value = serde_json::from_slice(&speaks[0].body).unwrap();
        let url = json["directive"]["payload"]["url"].as_str().unwrap();
        assert_eq!(Some(url.trim_start_matches("cid:")), attachments[0].headers.content_id.as_deref());

        let mut without = spec.clone();
        without.attachments = false;
        assert!(without.check().unwrap_err().contains("--attachments"));
    }

    #[test]
    fn the_same_spec_gives_the_same_bytes_and_alerts_stay_within_maximum_alerts() {
        let spec = spec(400, false);
        let kinds = spec.kinds();
        assert_eq!(spec.directive(&kinds, 123), spec.directive(&spec.kinds(), 123));
        let tokens: std::collections::HashSet<String> = (0..400)
            .filter(|i| kinds.of(*i) == DirectiveKind::SetAlert)
            .map(|i| serde_json::from_str::<Value>(&spec.directive(&kinds, i).0).unwrap())
            .map(|v| v["directive"]["payload"]["token"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(tokens.len(), ALERT_TOKENS as usize);
    }

    #[test]
    fn mixes_parse_and_explain_mistakes() {
        let mix = Mix::parse("setvolume:3, Play:1").unwrap();
        assert_eq!(mix, Mix(vec![(DirectiveKind::SetVolume, 3), (DirectiveKind::Play, 1)]));
        assert_eq!(mix.to_string(), "SetVolume 75%, Play 25%");
        assert!(Mix::parse("Recognize:1").unwrap_err().contains("there are"));
        assert!(Mix::parse("Play:0").unwrap_err().contains("positive"));
        assert!(Mix::parse("Play:1,play:2").unwrap_err().contains("twice"));
        assert!(Mix::parse("").is_err());
    }
}
