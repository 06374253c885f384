//! Events on their way to AVS: what a plugin (or the core) asked to send, and the JSON it becomes once
//! the device context is attached.

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::media::CaptureRequest;

/// An event queued for the connection.
pub struct OutgoingEvent {
    pub namespace: String,
    pub name: String,
    pub message_id: String,
    pub dialog_request_id: Option<String>,
    /// The payload object's JSON text.
    pub payload: Box<RawValue>,
    /// Attach the full device context when sending.
    pub with_context: bool,
    /// Streamed as the `audio` part (Recognize).
    pub audio: Option<CaptureRequest>,
    /// Declared must-deliver by the plugin's manifest: retried until AVS accepted it.
    pub must_deliver: bool,
    /// False once its audio was streamed: a resend could not carry the same audio.
    pub replayable: bool,
}

impl std::fmt::Debug for OutgoingEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{} ({})", self.namespace, self.name, self.message_id)
    }
}

impl OutgoingEvent {
    pub fn new(namespace: &str, name: &str, payload: Box<RawValue>) -> Self {
        OutgoingEvent {
            namespace: namespace.to_string(),
            name: name.to_string(),
            message_id: new_message_id(),
            dialog_request_id: None,
            payload,
            with_context: false,
            audio: None,
            must_deliver: false,
            replayable: true,
        }
    }

    /// The `metadata` part: `{"context":[…],"event":{"header":{…},"payload":{…}}}`.
    pub fn metadata(&self, context: Option<&[Value]>) -> Vec<u8> {
        #[derive(serde::Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Header<'a> {
            namespace: &'a str,
            name: &'a str,
            message_id: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            dialog_request_id: Option<&'a str>,
        }
        #[derive(serde::Serialize)]
        struct Event<'a> {
            header: Header<'a>,
            payload: &'a RawValue,
        }
        #[derive(serde::Serialize)]
        struct Metadata<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            context: Option<&'a [Value]>,
            event: Event<'a>,
        }
        let metadata = Metadata {
            context,
            event: Event {
                header: Header {
                    namespace: &self.namespace,
                    name: &self.name,
                    message_id: &self.message_id,
                    dialog_request_id: self.dialog_request_id.as_deref(),
                },
                payload: &self.payload,
            },
        };
        // Serialising borrowed strings and already-valid raw JSON cannot fail.
        serde_json::to_vec(&metadata).unwrap_or_default()
    }
}

pub fn new_message_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Where events are queued for the connection; cheap to clone.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::UnboundedSender<OutgoingEvent>,
}

pub type EventReceiver = mpsc::UnboundedReceiver<OutgoingEvent>;

impl EventSender {
    pub fn channel() -> (EventSender, EventReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        (EventSender { tx }, rx)
    }

    pub fn send(&self, event: OutgoingEvent) {
        if let Err(e) = self.tx.send(event) {
            tracing::warn!(event = ?e.0, "event dropped: the runtime is shutting down");
        }
    }
}

/// `System.ExceptionEncountered` for a directive the device could not handle.
pub fn exception_encountered(unparsed_directive: &[u8], error_type: &str, message: &str) -> OutgoingEvent {
    let payload = serde_json::json!({
        "unparsedDirective": String::from_utf8_lossy(unparsed_directive),
        "error": {"type": error_type, "message": message},
    });
    let payload = RawValue::from_string(payload.to_string()).unwrap_or_else(|_| empty_payload());
    let mut event = OutgoingEvent::new(crate::protocol::SYSTEM, crate::protocol::EXCEPTION_ENCOUNTERED, payload);
    event.with_context = true;
    event.must_deliver = true;
    event
}

pub fn empty_payload() -> Box<RawValue> {
    RawValue::from_string("{}".to_string()).unwrap_or_else(|_| unreachable!("{{}} is valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_has_the_avs_event_shape() {
        let mut event = OutgoingEvent::new(
            "Speaker",
            "VolumeChanged",
            RawValue::from_string(r#"{"volume":3,"muted":false}"#.into()).unwrap(),
        );
        event.dialog_request_id = Some("d".into());
        let json: Value = serde_json::from_slice(&event.metadata(None)).unwrap();
        assert_eq!(json["event"]["header"]["namespace"], "Speaker");
        assert_eq!(json["event"]["header"]["dialogRequestId"], "d");
        assert_eq!(json["event"]["header"]["messageId"].as_str().unwrap().len(), 36);
        assert_eq!(json["event"]["payload"]["volume"], 3);
        assert!(json.get("context").is_none());

        let context = [serde_json::json!({"header":{"namespace":"Speaker","name":"VolumeState"},"payload":{}})];
        let json: Value = serde_json::from_slice(&event.metadata(Some(&context))).unwrap();
        assert_eq!(json["context"][0]["header"]["name"], "VolumeState");
    }

    #[test]
    fn exception_carries_the_directive_as_a_string() {
        let event = exception_encountered(b"{\"directive\":1}", "UNSUPPORTED_OPERATION", "no plugin");
        let json: Value = serde_json::from_slice(&event.metadata(None)).unwrap();
        assert_eq!(json["event"]["header"]["name"], "ExceptionEncountered");
        assert_eq!(json["event"]["payload"]["unparsedDirective"], "{\"directive\":1}");
        assert_eq!(json["event"]["payload"]["error"]["type"], "UNSUPPORTED_OPERATION");
        assert!(event.with_context);
    }
}
