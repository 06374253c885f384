//! Realistic downchannel traffic: four directives as AVS sends them (compact JSON, UUID message ids,
//! opaque tokens, signed stream URLs) and the multipart/related stream avs-sim writes for them.
//!
//! The schema examples are pretty-printed with short ids, which would flatter every stage; these carry the
//! sizes and string shapes of real traffic. Every message is checked against its plugin's schema when the
//! bench starts, so the numbers are always for the path that succeeds.

use avs_core::multipart::MultipartWriter;
use bytes::{Bytes, BytesMut};

/// One kind of directive on the bench, and the library that handles it.
pub struct Message {
    /// Short name used in bench ids.
    pub kind: &'static str,
    /// File stem of the plugin library in target/<profile>/.
    pub library: &'static str,
    pub json: &'static str,
    /// `(Content-ID, body)` of the binary part that follows it on the downchannel.
    pub attachment: Option<(&'static str, Bytes)>,
}

const SPEAK: &str = concat!(
    r#"{"directive":{"header":{"namespace":"SpeechSynthesizer","name":"Speak","#,
    r#""messageId":"6b1f3c2e-9a4d-4c8e-b7f1-2d5e8a0c3f91","dialogRequestId":"c4e2a7d9-1b3f-4e6a-8c5d-7f9b0e2a4d16"},"#,
    r#""payload":{"url":"cid:DeviceTTSRendererV4_6b1f3c2e-9a4d-4c8e-b7f1-2d5e8a0c3f91_1846279307","#,
    r#""format":"AUDIO_MPEG","token":"amzn1.as-ct.v1.Domain:Application:Weather#ACRI#"#,
    r#"DeviceTTSRendererV4_6b1f3c2e-9a4d-4c8e-b7f1-2d5e8a0c3f91_1846279307#ACRI#"#,
    r#"[[ENCRYPTED_WITH_AlexaServiceKeyMasterUtil]]AAAAAAAAAAAQz3vxY0F1u9nKqQpXH2lTtAAAAAAAAAC8vN7"#,
    r#"k0mB1Rz7q4XhE2cWJ9sYpLdUa6fTgVb3oNiK","playBehavior":"REPLACE_ALL","#,
    r#""caption":{"content":"WEBVTT\n\n1\n00:00.000 --> 00:03.120\nRight now in Seattle, it's 54 degrees "#,
    r#"with light rain.\n\n2\n00:03.120 --> 00:05.480\nExpect a high of 57 and a low of 46.","type":"WEBVTT"}}}}"#
);

const PLAY: &str = concat!(
    r#"{"directive":{"header":{"namespace":"AudioPlayer","name":"Play","#,
    r#""messageId":"0e7d5a3b-2c6f-4f1a-9e8d-b3a5c7f9e2d4","dialogRequestId":"a8f3b6d1-5e2c-4a9f-b7e0-1c4d6f8a2b35"},"#,
    r#""payload":{"playBehavior":"REPLACE_ALL","audioItem":{"audioItemId":"amzn1.as-ct.v1.Domain:Music#ACRI#"#,
    r#"3f9a2c7e-8b1d-4e5f-a6c0-9d2b4e7f1a83","stream":{"url":"https://d1n7wxt5pnxq3a.cloudfront.net/"#,
    r#"tracks/B07QJ2KDM8/v2/segment-0.mp3?Expires=1796716800&Signature=Qm9vdHN0cmFwU2lnbmF0dXJlRXhh"#,
    r#"bXBsZQ~aGVsbG8gd29ybGQ_&Key-Pair-Id=K2JCJMDEHXQW5F","streamFormat":"AUDIO_MPEG","#,
    r#""offsetInMilliseconds":0,"expiryTime":"2026-12-01T09:00:00+0000","#,
    r#""progressReport":{"progressReportDelayInMilliseconds":15000,"progressReportIntervalInMilliseconds":30000},"#,
    r#""token":"amzn1.as-ct.v1.Domain:Music#ACRI#B07QJ2KDM8#ACRI#eyJzZXNzaW9uIjoiNWQ0YjJhIiwiaW5kZXgiOjB9","#,
    r#""expectedPreviousToken":""}},"playRequestor":{"type":"ALEXA","id":""}}}}"#
);

const SET_ALERT: &str = concat!(
    r#"{"directive":{"header":{"namespace":"Alerts","name":"SetAlert","#,
    r#""messageId":"9c2e4f6a-8b1d-4a3c-9e5f-7d0b2c4e6a81","dialogRequestId":"1f3b5d7e-9a2c-4e6f-8b0d-2c4e6a8b0d13"},"#,
    r#""payload":{"token":"amzn1.as-tt.v1.ThirdPartySdkSpeechlet#ACRI#ALARM_f7c2a9e4-3b6d-4f81-a0c5-9e2d7b4f1a36","#,
    r#""type":"ALARM","scheduledTime":"2030-11-26T07:30:00+0000","#,
    r#""assets":[{"assetId":"DEFAULT_ALARM","url":"https://s3.amazonaws.com/alexa-alerts/sounds/default_alarm.mp3"},"#,
    r#"{"assetId":"SIMPLE_ALARM","url":"https://s3.amazonaws.com/alexa-alerts/sounds/simple_alarm.mp3"}],"#,
    r#""assetPlayOrder":["DEFAULT_ALARM","SIMPLE_ALARM"],"backgroundAlertAsset":"SIMPLE_ALARM","#,
    r#""loopCount":2,"loopPauseInMilliSeconds":500}}}"#
);

const SET_VOLUME: &str = concat!(
    r#"{"directive":{"header":{"namespace":"Speaker","name":"SetVolume","#,
    r#""messageId":"4a6c8e0f-2b4d-4f6a-8c1e-3d5f7b9a1c24","dialogRequestId":"e5a7c9f1-3b5d-4e7a-9c2f-4e6b8d0a2c47"},"#,
    r#""payload":{"volume":40}}}"#
);

/// A few seconds of TTS MP3: how big the binary part after a Speak is (24 kbit/s mono for ~5 s).
const TTS_BYTES: usize = 16 << 10;

/// Bytes shaped like MPEG audio frames (sync words, then noise): nothing the boundary scan could skip
/// cheaply, and never the boundary itself.
fn tts_audio() -> Bytes {
    // A 4-byte frame header and 136 bytes of frame data.
    const FRAME: usize = 140;
    let mut audio = BytesMut::with_capacity(TTS_BYTES + FRAME);
    audio.extend_from_slice(b"ID3\x04\x00\x00\x00\x00\x00\x00");
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    while audio.len() < TTS_BYTES {
        audio.extend_from_slice(&[0xff, 0xf3, 0x44, 0xc4]);
        for _ in 0..(FRAME - 4) / 8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            audio.extend_from_slice(&seed.to_le_bytes());
        }
    }
    audio.truncate(TTS_BYTES);
    audio.freeze()
}

pub fn all() -> Vec<Message> {
    vec![
        Message {
            kind: "Speak",
            library: "libavs_speech_synthesizer",
            json: SPEAK,
            attachment: Some(("DeviceTTSRendererV4_6b1f3c2e-9a4d-4c8e-b7f1-2d5e8a0c3f91_1846279307", tts_audio())),
        },
        Message { kind: "Play", library: "libavs_audio_player", json: PLAY, attachment: None },
        Message { kind: "SetAlert", library: "libavs_alerts", json: SET_ALERT, attachment: None },
        Message { kind: "SetVolume", library: "libavs_speaker", json: SET_VOLUME, attachment: None },
    ]
}

/// What the downchannel carries for `rounds` rounds of every message, as avs-sim writes it.
pub struct Stream {
    pub boundary: String,
    /// The delimiter that opens the downchannel, sent once per connection.
    pub opening: Bytes,
    /// The parts, each closed by the delimiter after it (so it is complete as soon as it is read).
    pub body: Bytes,
    pub parts: u64,
    pub directives: u64,
}

impl Stream {
    /// `with_attachments`: the Speak's MP3 follows it (what the device really receives); without, only
    /// the JSON parts (the split cost per directive, undiluted by audio bytes).
    pub fn new(messages: &[Message], rounds: usize, with_attachments: bool) -> Stream {
        let writer = MultipartWriter::new("------avs-downchannel-boundary-3f9a2c7e8b1d");
        let mut body = BytesMut::new();
        let (mut parts, mut directives) = (0, 0);
        for _ in 0..rounds {
            for message in messages {
                body.extend_from_slice(&writer.stream_json_part(message.json.as_bytes()));
                parts += 1;
                directives += 1;
                if let (true, Some((content_id, audio))) = (with_attachments, &message.attachment) {
                    let delimiter = format!("\r\n--{}", writer.boundary());
                    assert!(
                        !audio.windows(delimiter.len()).any(|w| w == delimiter.as_bytes()),
                        "audio holds the delimiter"
                    );
                    body.extend_from_slice(&writer.stream_attachment_part(content_id, audio));
                    parts += 1;
                }
            }
        }
        Stream {
            boundary: writer.boundary().to_string(),
            opening: writer.open_stream(),
            body: body.freeze(),
            parts,
            directives,
        }
    }
}
