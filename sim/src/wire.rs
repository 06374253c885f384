//! How the sim writes answers: complete responses, the System.Exception body, multipart/related bodies,
//! and reading small request bodies.

use std::sync::OnceLock;

use avs_core::multipart::MultipartWriter;
use bytes::{Bytes, BytesMut};
use h2::server::SendResponse;
use h2::{RecvStream, SendStream};
use http::{Response, StatusCode};
use serde_json::{json, Value};

/// One boundary for everything the sim writes: random per process, so it cannot occur in the data.
pub(crate) fn writer() -> &'static MultipartWriter {
    static WRITER: OnceLock<MultipartWriter> = OnceLock::new();
    WRITER.get_or_init(MultipartWriter::random)
}

/// The System.Exception body AVS answers failed requests with (avs-protocol §1.7).
pub(crate) fn exception(code: &str, description: &str) -> Value {
    json!({
        "header": {"namespace": "System", "name": "Exception", "messageId": uuid::Uuid::new_v4().to_string()},
        "payload": {"code": code, "description": description},
    })
}

/// A complete response with a body (or none).
pub(crate) fn reply(
    mut respond: SendResponse<Bytes>,
    status: StatusCode,
    content_type: &str,
    body: Bytes,
) -> Result<(), h2::Error> {
    let mut response = Response::builder().status(status);
    if !body.is_empty() {
        response = response.header(http::header::CONTENT_TYPE, content_type);
    }
    let response = response.body(()).expect("static response parts are valid");
    let mut stream = respond.send_response(response, body.is_empty())?;
    if !body.is_empty() {
        stream.send_data(body, true)?;
    }
    Ok(())
}

pub(crate) fn reply_json(respond: SendResponse<Bytes>, status: StatusCode, json: &Value) -> Result<(), h2::Error> {
    reply(respond, status, "application/json", Bytes::from(json.to_string()))
}

pub(crate) fn reply_exception(
    respond: SendResponse<Bytes>,
    status: StatusCode,
    code: &str,
    description: &str,
) -> Result<(), h2::Error> {
    reply_json(respond, status, &exception(code, description))
}

/// Starts a 200 `multipart/related` answer (an event's directives, or the downchannel).
pub(crate) fn start_related(respond: &mut SendResponse<Bytes>) -> Result<SendStream<Bytes>, h2::Error> {
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, writer().related_content_type())
        .body(())
        .expect("static response parts are valid");
    respond.send_response(response, false)
}

/// A directive and its attachments as the parts of a closed multipart/related body (delimiter first).
pub(crate) fn answer_parts(directive: &Value, attachments: &[(String, Bytes)]) -> BytesMut {
    let w = writer();
    let mut out = BytesMut::from(&w.json_part(directive.to_string().as_bytes())[..]);
    for (content_id, body) in attachments {
        out.extend_from_slice(&w.attachment_part(content_id, body));
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("request body larger than {0} bytes")]
    TooLarge(usize),
    #[error("request body: {0}")]
    Stream(#[from] h2::Error),
}

impl BodyError {
    /// Answers the request the body belonged to: 413 when it was too large; a broken stream cannot be answered.
    pub(crate) fn reply(self, respond: SendResponse<Bytes>) -> Result<(), h2::Error> {
        match self {
            BodyError::TooLarge(_) => {
                reply_exception(respond, StatusCode::PAYLOAD_TOO_LARGE, "INVALID_REQUEST_EXCEPTION", &self.to_string())
            }
            BodyError::Stream(e) => Err(e),
        }
    }
}

/// Reads a whole (small) request body.
pub(crate) async fn read_body(body: &mut RecvStream, limit: usize) -> Result<Bytes, BodyError> {
    let mut all = BytesMut::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk?;
        let _ = body.flow_control().release_capacity(chunk.len());
        if all.len() + chunk.len() > limit {
            return Err(BodyError::TooLarge(limit));
        }
        all.extend_from_slice(&chunk);
    }
    Ok(all.freeze())
}
