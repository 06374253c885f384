//! The AVS paths: the downchannel, events (with the scripted dialog), ping and the Capabilities API.

use std::sync::atomic::{AtomicU64, Ordering};

use avs_core::multipart::{boundary_from_content_type, MultipartParser, MultipartWriter};
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::server::{read_body, reply, reply_json};
use crate::{DownchannelMessage, ReceivedEvent, Shared, Violation};

/// The spoken answer of the scripted dialog (see assets/README.md).
const SPEAK_MP3: &[u8] = include_bytes!("../assets/speak.mp3");

/// One boundary for everything the sim writes: random per process, so it cannot occur in the data.
fn writer() -> &'static MultipartWriter {
    static WRITER: std::sync::OnceLock<MultipartWriter> = std::sync::OnceLock::new();
    WRITER.get_or_init(MultipartWriter::random)
}

/// Per-connection bookkeeping.
pub(crate) struct Connection {
    pub id: u64,
    events: AtomicU64,
}

impl Connection {
    pub(crate) fn new(id: u64) -> Self {
        Connection { id, events: AtomicU64::new(0) }
    }
}

/// The System.Exception body AVS answers non-2xx event requests with.
fn exception(code: &str, description: &str) -> Value {
    json!({
        "header": {"namespace": "System", "name": "Exception", "messageId": uuid::Uuid::new_v4().to_string()},
        "payload": {"code": code, "description": description},
    })
}

/// Checks `authorization: Bearer <token>`; answers 403 itself when it fails.
fn authorize(
    shared: &Shared,
    request: &Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<SendResponse<Bytes>, Result<(), h2::Error>> {
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            if scheme != "Bearer" {
                shared.deviation(format!("authorization scheme spelled {scheme:?}"));
            }
            token.trim()
        }
        _ => "",
    };
    let valid = shared.lwa.lock().unwrap_or_else(|e| e.into_inner()).is_valid_access_token(token);
    if valid {
        return Ok(respond);
    }
    let description = if token.is_empty() { "no bearer token" } else { "the access token is invalid or expired" };
    Err(reply_json(respond, StatusCode::FORBIDDEN, &exception("UNAUTHORIZED_REQUEST_EXCEPTION", description)))
}

/// A directive and its attachments as multipart/related parts of an answer (delimiter first).
fn answer_parts(directive: &Value, attachments: &[(String, Bytes)]) -> BytesMut {
    let w = writer();
    let mut out = BytesMut::from(&w.json_part(directive.to_string().as_bytes())[..]);
    for (content_id, body) in attachments {
        out.extend_from_slice(&w.attachment_part(content_id, body));
    }
    out
}

/// A directive and its attachments for the downchannel, which never closes: each part is followed by
/// its delimiter so the device can act on it at once.
pub(crate) fn directive_parts(directive: &Value, attachments: &[(String, Bytes)]) -> Bytes {
    let w = writer();
    let mut out = BytesMut::from(&w.stream_json_part(directive.to_string().as_bytes())[..]);
    for (content_id, body) in attachments {
        out.extend_from_slice(&w.stream_attachment_part(content_id, body));
    }
    out.freeze()
}

pub(crate) async fn downchannel(
    shared: &Shared,
    _connection: &Connection,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let mut respond = match authorize(shared, &request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, writer().related_content_type())
        .body(())
        .expect("static response parts are valid");
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(writer().open_stream(), false)?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    shared.downchannels.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
    shared.downchannels_opened.fetch_add(1, Ordering::Relaxed);
    shared.changed.notify_waiters();
    loop {
        match rx.recv().await {
            Some(DownchannelMessage::Data(bytes)) => stream.send_data(bytes, false)?,
            Some(DownchannelMessage::End) | None => return stream.send_data(Bytes::new(), true),
        }
    }
}

pub(crate) async fn ping(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    match authorize(shared, &request, respond) {
        Ok(respond) => reply(respond, StatusCode::NO_CONTENT, "", Bytes::new()),
        Err(answered) => answered,
    }
}

pub(crate) async fn capabilities(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let respond = match authorize(shared, &request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    let body = read_body(&mut request.into_body(), 1 << 20).await?;
    let document: Value = match serde_json::from_slice(&body) {
        Ok(document) => document,
        Err(e) => return reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": format!("not JSON: {e}")})),
    };
    let well_formed = document["envelopeVersion"] == "20160207"
        && document["capabilities"].as_array().is_some_and(|caps| {
            caps.iter().all(|c| c["type"] == "AlexaInterface" && c["interface"].is_string() && c["version"].is_string())
        });
    if !well_formed {
        return reply_json(
            respond,
            StatusCode::BAD_REQUEST,
            &json!({"error": "expected envelopeVersion 20160207 and AlexaInterface capabilities"}),
        );
    }
    shared.record(|r| r.capabilities.push(document));
    reply(respond, StatusCode::NO_CONTENT, "", Bytes::new())
}

pub(crate) async fn event(
    shared: &Shared,
    connection: &Connection,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let respond = match authorize(shared, &request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    let content_type =
        request.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let Some(boundary) = boundary_from_content_type(&content_type) else {
        let why = format!("events need multipart/form-data with a boundary, got {content_type:?}");
        return reply_json(respond, StatusCode::BAD_REQUEST, &exception("INVALID_REQUEST_EXCEPTION", &why));
    };
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        shared.deviation(format!("event body sent as {content_type:?} instead of multipart/form-data"));
    }
    let (metadata, audio_bytes) = match read_parts(shared, &boundary, request.into_body()).await {
        Ok(parts) => parts,
        Err(why) => return reply_json(respond, StatusCode::BAD_REQUEST, &exception("INVALID_REQUEST_EXCEPTION", &why)),
    };
    let json: Value = match serde_json::from_slice(&metadata) {
        Ok(json) => json,
        Err(e) => {
            let why = format!("metadata is not JSON: {e}");
            shared
                .record(|r| r.violations.push(Violation { message: "(unparsable event)".into(), error: why.clone() }));
            return reply_json(respond, StatusCode::BAD_REQUEST, &exception("INVALID_REQUEST_EXCEPTION", &why));
        }
    };
    let header = &json["event"]["header"];
    let text = |v: &Value| v.as_str().unwrap_or("").to_string();
    let event = ReceivedEvent {
        namespace: text(&header["namespace"]),
        name: text(&header["name"]),
        message_id: text(&header["messageId"]),
        dialog_request_id: header["dialogRequestId"].as_str().map(str::to_string),
        json: json.clone(),
        audio_bytes,
        connection: connection.id,
        seq_on_connection: connection.events.fetch_add(1, Ordering::Relaxed),
    };
    let declared = declared_versions(shared);
    let errors = shared.schemas.check_event(&json, &declared);
    let label = format!("{}.{} ({})", event.namespace, event.name, event.message_id);
    if !errors.is_empty() {
        tracing::warn!("{label} violates its schema: {}", errors.join("; "));
    }
    let (namespace, name, dialog) = (event.namespace.clone(), event.name.clone(), event.dialog_request_id.clone());
    if namespace == "Alexa.Discovery" && name == "AddOrUpdateReport" {
        let capabilities = json["event"]["payload"]["endpoints"][0]["capabilities"].clone();
        shared.record(|r| r.capabilities.push(json!({"envelopeVersion": "20160207", "capabilities": capabilities})));
    }
    shared.record(|r| {
        r.violations.extend(errors.into_iter().map(|error| Violation { message: label.clone(), error }));
        r.events.push(event);
    });
    match (namespace.as_str(), name.as_str()) {
        ("SpeechRecognizer", "Recognize") => answer_recognize(shared, respond, dialog),
        ("Alexa.Discovery", "AddOrUpdateReport") => reply(respond, StatusCode::ACCEPTED, "", Bytes::new()),
        _ => reply(respond, StatusCode::NO_CONTENT, "", Bytes::new()),
    }
}

/// The metadata part and the size of the audio part of an event body.
async fn read_parts(shared: &Shared, boundary: &str, mut body: RecvStream) -> Result<(Bytes, usize), String> {
    let mut parser = MultipartParser::new(boundary);
    let (mut metadata, mut audio) = (None, 0);
    loop {
        let chunk = match body.data().await {
            None => break,
            Some(Err(e)) => return Err(format!("body: {e}")),
            Some(Ok(chunk)) => chunk,
        };
        let _ = body.flow_control().release_capacity(chunk.len());
        parser.push(&chunk).map_err(|e| e.to_string())?;
        while let Some(part) = parser.next_part().map_err(|e| e.to_string())? {
            for deviation in &part.headers.deviations {
                shared.deviation(deviation.clone());
            }
            match part.headers.name.as_deref() {
                Some("metadata") => metadata = Some(part.body),
                Some("audio") => audio += part.body.len(),
                other => {
                    shared.deviation(format!("event part named {other:?}"));
                    let is_json =
                        part.headers.content_type.as_deref().is_some_and(|c| c.starts_with("application/json"));
                    if is_json && metadata.is_none() {
                        metadata = Some(part.body);
                    } else {
                        audio += part.body.len();
                    }
                }
            }
        }
    }
    parser.finish().map_err(|e| e.to_string())?;
    if !parser.is_finished() {
        shared.deviation("event body without a close-delimiter");
    }
    metadata.map(|m| (m, audio)).ok_or_else(|| "no metadata part".to_string())
}

/// Interface → version, from the last capability document the device published.
fn declared_versions(shared: &Shared) -> std::collections::HashMap<String, String> {
    let recorded = shared.recorded.lock().unwrap_or_else(|e| e.into_inner());
    recorded
        .capabilities
        .last()
        .and_then(|doc| doc["capabilities"].as_array())
        .map(|caps| {
            caps.iter()
                .filter_map(|c| Some((c["interface"].as_str()?.to_string(), c["version"].as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// The scripted dialog: any Recognize is answered with speech, and by script with ExpectSpeech.
fn answer_recognize(
    shared: &Shared,
    mut respond: SendResponse<Bytes>,
    dialog: Option<String>,
) -> Result<(), h2::Error> {
    static SPOKEN: AtomicU64 = AtomicU64::new(0);
    let n = SPOKEN.fetch_add(1, Ordering::Relaxed) + 1;
    let content_id = format!("sim-speak-{n}-{}", uuid::Uuid::new_v4().simple());
    let header = |name: &str| {
        let mut h = json!({"namespace": "", "name": name, "messageId": uuid::Uuid::new_v4().to_string()});
        if let Some(dialog) = &dialog {
            h["dialogRequestId"] = json!(dialog);
        }
        h
    };
    let mut speak_header = header("Speak");
    speak_header["namespace"] = json!("SpeechSynthesizer");
    let speak = json!({"directive": {"header": speak_header, "payload": {
        "url": format!("cid:{content_id}"), "format": "AUDIO_MPEG", "token": format!("sim-speak-{n}")
    }}});
    let mut body = answer_parts(&speak, &[(content_id, Bytes::from_static(SPEAK_MP3))]);
    if shared.config.expect_speech_after_speak {
        let mut expect_header = header("ExpectSpeech");
        expect_header["namespace"] = json!("SpeechRecognizer");
        let expect = json!({"directive": {"header": expect_header, "payload": {"timeoutInMilliseconds": shared.config.expect_speech_timeout.as_millis() as u64}}});
        body.extend_from_slice(&answer_parts(&expect, &[]));
    }
    body.extend_from_slice(&writer().close());
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, writer().related_content_type())
        .body(())
        .expect("static response parts are valid");
    let mut stream = respond.send_response(response, false)?;
    stream.send_data(body.freeze(), true)
}
