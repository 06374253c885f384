//! A directive parsed once from the bytes of its multipart part. The envelope is parsed with borrowed
//! strings and the payload is kept as a byte range of the original buffer, so routing copies nothing
//! and the plugin is handed slices of the same bytes.

use std::ops::Range;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("directive is not UTF-8")]
    NotUtf8,
    #[error("directive envelope is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug)]
pub struct DirectiveMessage {
    raw: Bytes,
    namespace: String,
    name: String,
    message_id: String,
    dialog_request_id: Option<String>,
    payload: Range<usize>,
    /// When its part arrived (was parsed), for dispatch latency.
    arrived: Instant,
    /// Its place among the directives the runtime holds at once, given back when the last reference to
    /// the directive goes (it was handled, dropped or refused): what makes the downchannel reader wait.
    in_flight: Option<OwnedSemaphorePermit>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    directive: Body<'a>,
}

#[derive(Deserialize)]
struct Body<'a> {
    header: Header,
    #[serde(borrow)]
    payload: &'a RawValue,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    namespace: String,
    name: String,
    message_id: String,
    #[serde(default)]
    dialog_request_id: Option<String>,
}

impl DirectiveMessage {
    pub fn parse(raw: Bytes) -> Result<Self, EnvelopeError> {
        let arrived = Instant::now();
        let text = std::str::from_utf8(&raw).map_err(|_| EnvelopeError::NotUtf8)?;
        let envelope: Envelope<'_> = serde_json::from_str(text).map_err(|e| EnvelopeError::Invalid(e.to_string()))?;
        let payload = envelope.directive.payload.get();
        if !payload.starts_with('{') {
            return Err(EnvelopeError::Invalid("payload is not a JSON object".into()));
        }
        let header = envelope.directive.header;
        if header.namespace.is_empty() || header.name.is_empty() || header.message_id.is_empty() {
            return Err(EnvelopeError::Invalid("header namespace, name and messageId must not be empty".into()));
        }
        // A borrowed RawValue points into `text`, so its offset is plain pointer arithmetic.
        let start = payload.as_ptr() as usize - text.as_ptr() as usize;
        let payload = start..start + payload.len();
        Ok(DirectiveMessage {
            namespace: header.namespace,
            name: header.name,
            message_id: header.message_id,
            dialog_request_id: header.dialog_request_id.filter(|d| !d.is_empty()),
            payload,
            raw,
            arrived,
            in_flight: None,
        })
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn message_id(&self) -> &str {
        &self.message_id
    }

    pub fn dialog_request_id(&self) -> Option<&str> {
        self.dialog_request_id.as_deref()
    }

    /// The payload object's JSON text.
    pub fn payload(&self) -> &str {
        // parse() checked UTF-8 and the range lies on the RawValue's char boundaries.
        std::str::from_utf8(&self.raw[self.payload.clone()]).unwrap_or("{}")
    }

    /// Takes `permit` along until the directive is dropped.
    pub(crate) fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.in_flight = Some(permit);
    }

    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// The whole directive as received (for `unparsedDirective` in ExceptionEncountered).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_keeps_the_payload_text() {
        let raw = br#"{"directive":{"header":{"namespace":"Speaker","name":"SetVolume","messageId":"m-1","dialogRequestId":"d-1"},"payload":{"volume":25}}}"#;
        let d = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!((d.namespace(), d.name(), d.message_id()), ("Speaker", "SetVolume", "m-1"));
        assert_eq!(d.dialog_request_id(), Some("d-1"));
        assert_eq!(d.payload(), r#"{"volume":25}"#);
    }

    #[test]
    fn payload_before_header_and_escaped_strings_work() {
        let raw = br#"{"directive":{"payload":{"url":"cid:a\"b"},"header":{"namespace":"Speech\u0053ynthesizer","name":"Speak","messageId":"x"}}}"#;
        let d = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(d.namespace(), "SpeechSynthesizer");
        assert_eq!(d.payload(), r#"{"url":"cid:a\"b"}"#);
        assert_eq!(d.dialog_request_id(), None);
    }

    #[test]
    fn rejects_broken_envelopes_with_a_reason() {
        for (raw, want) in [
            (&b"{\"directive\":{}}"[..], "missing field"),
            (b"not json", "expected"),
            (
                b"{\"directive\":{\"header\":{\"namespace\":\"A\",\"name\":\"B\",\"messageId\":\"\"},\"payload\":{}}}",
                "must not be empty",
            ),
            (
                b"{\"directive\":{\"header\":{\"namespace\":\"A\",\"name\":\"B\",\"messageId\":\"m\"},\"payload\":[]}}",
                "not a JSON object",
            ),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let err = DirectiveMessage::parse(Bytes::copy_from_slice(raw)).unwrap_err();
            assert!(err.to_string().contains(want), "{err} should mention {want}");
        }
    }
}
