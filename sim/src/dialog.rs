//! The scripted dialog: every Recognize is answered, on its own event stream, with a Speak of a fixed
//! MP3, the selected scenario's directives and, when the script says so, an ExpectSpeech after them.

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use serde_json::{json, Value};

use crate::state::Shared;
use crate::wire::{answer_parts, start_related, writer};

/// The spoken answer (see assets/README.md).
pub(crate) const SPEAK_MP3: &[u8] = include_bytes!("../assets/speak.mp3");

pub(crate) fn directive(namespace: &str, name: &str, dialog_request_id: Option<&str>, payload: Value) -> Value {
    let mut header = json!({"namespace": namespace, "name": name, "messageId": uuid::Uuid::new_v4().to_string()});
    if let Some(dialog) = dialog_request_id {
        header["dialogRequestId"] = json!(dialog);
    }
    json!({"directive": {"header": header, "payload": payload}})
}

pub(crate) fn answer_recognize(
    shared: &Shared,
    mut respond: SendResponse<Bytes>,
    dialog_request_id: Option<&str>,
) -> Result<(), h2::Error> {
    static SPOKEN: AtomicU64 = AtomicU64::new(0);
    let n = SPOKEN.fetch_add(1, Ordering::Relaxed) + 1;
    let content_id = format!("sim-speak-{n}-{}", uuid::Uuid::new_v4().simple());
    let speak = directive(
        "SpeechSynthesizer",
        "Speak",
        dialog_request_id,
        json!({"url": format!("cid:{content_id}"), "format": "AUDIO_MPEG", "token": format!("sim-speak-{n}")}),
    );
    let (before, after) = shared.scenario().map(|s| shared.with_cloud(|cloud| s.answer(cloud))).unwrap_or_default();
    let mut body = BytesMut::new();
    for (namespace, name, payload) in before {
        body.extend_from_slice(&answer_parts(&directive(namespace, name, dialog_request_id, payload), &[]));
    }
    body.extend_from_slice(&answer_parts(&speak, &[(content_id, Bytes::from_static(SPEAK_MP3))]));
    for (namespace, name, payload) in after {
        body.extend_from_slice(&answer_parts(&directive(namespace, name, dialog_request_id, payload), &[]));
    }
    if shared.expect_speech_after_speak.load(Ordering::Relaxed) {
        let timeout = u64::try_from(shared.config.expect_speech_timeout.as_millis()).unwrap_or(u64::MAX);
        let expect = directive(
            "SpeechRecognizer",
            "ExpectSpeech",
            dialog_request_id,
            json!({ "timeoutInMilliseconds": timeout }),
        );
        body.extend_from_slice(&answer_parts(&expect, &[]));
    }
    body.extend_from_slice(&writer().close());
    start_related(&mut respond)?.send_data(body.freeze(), true)
}
