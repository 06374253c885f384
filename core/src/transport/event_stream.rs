//! One event on its own HTTP/2 stream: the multipart/form-data body (metadata, then the audio part
//! streamed as it is captured), and the answer — directives and attachments to route, or a status.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use serde_json::Value;

use super::http2::{self, Endpoint, Http2Error};
use super::Inbound;
use crate::events::OutgoingEvent;
use crate::media::{AudioCapture, MediaEvent};
use crate::multipart::{boundary_from_content_type, MultipartWriter};
use crate::protocol;

#[derive(Debug, thiserror::Error)]
pub(crate) enum EventError {
    /// The connection failed under the event: it was not (known to be) delivered.
    #[error("connection failed while sending: {0}")]
    Connection(#[from] Http2Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("HTTP {status}: {body}")]
    Status { status: u16, body: String },
    #[error("audio source: {0}")]
    Audio(String),
    #[error(transparent)]
    Inbound(#[from] super::InboundError),
}

impl EventError {
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            EventError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The largest non-multipart answer body read (an exception JSON is a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 * 1024;

/// Sends `event` and handles its answer; returns the HTTP status of a successful answer.
pub(crate) async fn send(
    send_request: SendRequest<Bytes>,
    endpoint: &Endpoint,
    token: &str,
    event: &mut OutgoingEvent,
    context: Option<Vec<Value>>,
    inbound: &Arc<Inbound>,
    answer_timeout: Duration,
) -> Result<u16, EventError> {
    let writer = MultipartWriter::random();
    let request = http::Request::post(endpoint.uri(protocol::EVENTS_PATH))
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, writer.form_data_content_type())
        .body(())
        .map_err(|e| EventError::Status { status: 0, body: e.to_string() })?;
    let mut ready = send_request.ready().await.map_err(Http2Error::from)?;
    let (answer, mut body) = ready.send_request(request, false).map_err(Http2Error::from)?;

    let metadata = event.metadata(context.as_deref());
    let capture = event.audio.take();
    event.replayable &= capture.is_none();
    let upload = async {
        let mut head =
            bytes::BytesMut::from(&writer.form_data_part("metadata", "application/json; charset=UTF-8", &metadata)[..]);
        if capture.is_none() {
            head.extend_from_slice(&writer.close());
            // Handed to h2 whole, without waiting for flow-control capacity: the body is already in
            // memory, and queued before the connection's task runs, the HEADERS and DATA frames leave in
            // one write. Waiting for capacity (granted only once the HEADERS are out) cost a second
            // write and a second wake-up of the server per event.
            return body.send_data(head.freeze(), true).map_err(|e| EventError::from(Http2Error::from(e)));
        }
        head.extend_from_slice(&writer.form_data_part_head("audio", "application/octet-stream"));
        http2::send_all(&mut body, head.freeze(), false).await?;
        let mut request = capture.expect("checked above");
        let streamed = stream_audio(&mut body, &mut request).await;
        let end = match &streamed {
            Ok(offset_ms) => MediaEvent::Finished { offset_ms: *offset_ms },
            Err(e) => MediaEvent::Failed { offset_ms: 0, error: e.to_string() },
        };
        request.end(end);
        streamed?;
        http2::send_all(&mut body, writer.close(), true).await.map_err(EventError::from)
    };
    let receive = async {
        let response = tokio::time::timeout(answer_timeout, answer)
            .await
            .map_err(|_| EventError::Timeout(answer_timeout))?
            .map_err(Http2Error::from)?;
        let (parts, mut response_body) = response.into_parts();
        let status = parts.status.as_u16();
        match status {
            200 => {
                let content_type =
                    parts.headers.get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
                match boundary_from_content_type(content_type) {
                    Some(boundary) => {
                        inbound
                            .read_multipart(&boundary, &mut response_body, Some(inbound.limits.max_parts_per_response))
                            .await?
                    }
                    None => {
                        let _ = http2::read_to_end(&mut response_body, MAX_ERROR_BODY).await;
                        tracing::warn!("200 answer without a multipart boundary ({content_type:?}); ignored");
                    }
                }
                Ok(status)
            }
            202 | 204 => Ok(status),
            _ => {
                let body = http2::read_to_end(&mut response_body, MAX_ERROR_BODY).await.unwrap_or_default();
                Err(EventError::Status { status, body: String::from_utf8_lossy(&body).into_owned() })
            }
        }
    };
    // The answer may start before the upload ends (StopCapture while streaming audio).
    let (uploaded, received) = tokio::join!(upload, receive);
    let status = received?;
    if let Err(e) = uploaded {
        // The server answered; a failure to finish the upload after that does not undo the answer.
        tracing::debug!("event upload ended early after the answer: {e}");
    }
    Ok(status)
}

async fn stream_audio(
    body: &mut h2::SendStream<Bytes>,
    request: &mut crate::media::CaptureRequest,
) -> Result<u64, EventError> {
    let mut capture = AudioCapture::open(request.id, &request.source, request.stop.clone())
        .await
        .map_err(|e| EventError::Audio(e.to_string()))?;
    while let Some(chunk) = capture.next_chunk().await.map_err(|e| EventError::Audio(e.to_string()))? {
        http2::send_all(body, chunk, false).await?;
    }
    Ok(capture.offset_ms())
}
