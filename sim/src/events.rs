//! `POST /v20160207/events`: parse the multipart/form-data body as it streams in, record the event,
//! validate it against the schemas of the versions the device declared, and answer it.

use std::sync::atomic::Ordering;

use avs_core::multipart::{boundary_from_content_type, MultipartParser};
use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, StatusCode};
use serde_json::Value;

use crate::downchannel::directive_parts;
use crate::faults;
use crate::routes::authorize;
use crate::server::Connection;
use crate::state::{DownchannelMessage, Shared};
use crate::wire::{reply, reply_exception};
use crate::{capabilities, dialog, ReceivedEvent, Violation};

const INVALID_REQUEST: &str = "INVALID_REQUEST_EXCEPTION";

/// The parts of an event body the sim cares about.
struct EventBody {
    metadata: Bytes,
    audio_bytes: usize,
}

pub(crate) async fn receive(
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
        return reply_exception(respond, StatusCode::BAD_REQUEST, INVALID_REQUEST, &why);
    };
    if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
        shared.deviation(format!("event body sent as {content_type:?} instead of multipart/form-data"));
    }
    let body = match read_parts(shared, &boundary, request.into_body()).await {
        Ok(body) => body,
        Err(why) => return reply_exception(respond, StatusCode::BAD_REQUEST, INVALID_REQUEST, &why),
    };
    let json: Value = match serde_json::from_slice(&body.metadata) {
        Ok(json) => json,
        Err(e) => {
            let why = format!("metadata is not JSON: {e}");
            shared
                .record(|r| r.violations.push(Violation { message: "(unparsable event)".into(), error: why.clone() }));
            return reply_exception(respond, StatusCode::BAD_REQUEST, INVALID_REQUEST, &why);
        }
    };
    // A refused event was never accepted: it is not recorded, checked or reacted to.
    if let Some(fault) = shared.faults.next_event_fault() {
        return faults::answer_event(shared, &json, fault, respond).await;
    }

    let errors = shared.schemas.check_event(&json, &shared.declared_versions());
    let event = received(json, body.audio_bytes, connection);
    let label = format!("{}.{} ({})", event.namespace, event.name, event.message_id);
    if !errors.is_empty() {
        tracing::warn!("{label} violates its schema: {}", errors.join("; "));
    }
    let envelope_ok = !event.namespace.is_empty() && !event.name.is_empty() && !event.message_id.is_empty();
    let discovery = (event.namespace == "Alexa.Discovery" && event.name == "AddOrUpdateReport")
        .then(|| capabilities::from_discovery(&event.json));
    let (is_recognize, dialog_request_id) =
        (event.namespace == "SpeechRecognizer" && event.name == "Recognize", event.dialog_request_id.clone());
    if is_recognize && event.audio_bytes == 0 {
        shared.deviation(format!("{label} without audio"));
    }
    // Decided on the event before it moves into the record, sent after it is recorded.
    let reaction = shared.scenario().map(|scenario| shared.with_cloud(|cloud| scenario.react(cloud, &event)));
    shared.record(|r| {
        r.violations.extend(errors.into_iter().map(|error| Violation { message: label.clone(), error }));
        if let Some(None) = &discovery {
            r.violations.push(Violation { message: label.clone(), error: "no endpoints[0].capabilities list".into() });
        }
        if let Some(Some(document)) = &discovery {
            r.publish_capabilities(document.clone());
        }
        r.events.push(event);
    });
    for (namespace, name, payload) in reaction.into_iter().flatten() {
        let parts = directive_parts(&dialog::directive(namespace, name, None, payload), &[]);
        shared.broadcast_downchannel(|| DownchannelMessage::Data(parts.clone()));
    }

    if !envelope_ok {
        let why = "the event header needs namespace, name and messageId";
        return reply_exception(respond, StatusCode::BAD_REQUEST, INVALID_REQUEST, why);
    }
    match discovery {
        Some(Some(_)) => reply(respond, StatusCode::ACCEPTED, "", Bytes::new()),
        Some(None) => reply_exception(respond, StatusCode::BAD_REQUEST, INVALID_REQUEST, "no capabilities reported"),
        None if is_recognize => dialog::answer_recognize(shared, respond, dialog_request_id.as_deref()),
        None => reply(respond, StatusCode::NO_CONTENT, "", Bytes::new()),
    }
}

fn received(json: Value, audio_bytes: usize, connection: &Connection) -> ReceivedEvent {
    let header = &json["event"]["header"];
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    ReceivedEvent {
        namespace: text(&header["namespace"]),
        name: text(&header["name"]),
        message_id: text(&header["messageId"]),
        dialog_request_id: header["dialogRequestId"].as_str().map(str::to_string),
        json,
        audio_bytes,
        connection: connection.id,
        seq_on_connection: connection.events.fetch_add(1, Ordering::Relaxed),
    }
}

/// Streams the body through the parser; audio is counted, never kept.
async fn read_parts(shared: &Shared, boundary: &str, mut body: RecvStream) -> Result<EventBody, String> {
    let mut parser = MultipartParser::new(boundary);
    let (mut metadata, mut audio_bytes) = (None, 0);
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
                Some("audio") => audio_bytes += part.body.len(),
                other => {
                    shared.deviation(format!("event part named {other:?}"));
                    // Tolerated: the first JSON part is the metadata, anything else counts as audio.
                    let is_json =
                        part.headers.content_type.as_deref().is_some_and(|c| c.starts_with("application/json"));
                    if is_json && metadata.is_none() {
                        metadata = Some(part.body);
                    } else {
                        audio_bytes += part.body.len();
                    }
                }
            }
        }
    }
    parser.finish().map_err(|e| e.to_string())?;
    if !parser.is_finished() {
        shared.deviation("event body without a close-delimiter");
    }
    let metadata = metadata.ok_or_else(|| "no metadata part".to_string())?;
    Ok(EventBody { metadata, audio_bytes })
}
