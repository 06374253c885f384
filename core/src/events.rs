//! Events on their way to AVS: what a plugin (or the core) asked to send, and the JSON it becomes once
//! the device context is attached.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::media::CaptureRequest;
use crate::outbox::Outbox;

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

    /// A copy to send again should this one's connection end before its answer; none for an event
    /// streaming audio, which cannot be replayed.
    pub fn replay_copy(&self) -> Option<OutgoingEvent> {
        if self.audio.is_some() || !self.replayable {
            return None;
        }
        Some(OutgoingEvent {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            message_id: self.message_id.clone(),
            dialog_request_id: self.dialog_request_id.clone(),
            payload: self.payload.clone(),
            with_context: self.with_context,
            audio: None,
            must_deliver: self.must_deliver,
            replayable: true,
        })
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

/// The event queue is full: the connection is down or slower than events are made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the event queue is full ({capacity} events wait for the connection to AVS)")]
    Full { capacity: usize },
    #[error("the runtime is shutting down")]
    Closed,
}

/// Where events are queued for the connection; cheap to clone. Must-deliver events are written to the
/// outbox before they are queued.
#[derive(Clone)]
pub struct EventSender {
    tx: mpsc::Sender<OutgoingEvent>,
    outbox: Outbox,
    taken: Arc<Taken>,
}

/// The connection's end of the queue.
pub struct EventReceiver {
    rx: mpsc::Receiver<OutgoingEvent>,
    taken: Arc<Taken>,
}

/// Tells those waiting for room that the connection took events, once there is as much room as the
/// most modest of them waits for: an event-bound run would otherwise wake the downchannel reader for
/// every event sent, only for it to find the room still short and wait again.
struct Taken {
    notify: Notify,
    /// The least room a waiter asked for; `usize::MAX` when nobody waits.
    wanted: AtomicUsize,
}

impl EventReceiver {
    pub async fn recv(&mut self) -> Option<OutgoingEvent> {
        let event = self.rx.recv().await;
        self.tell_waiters(event.is_none());
        event
    }

    /// The next queued event, if there is one now.
    pub fn try_recv(&mut self) -> Option<OutgoingEvent> {
        let event = self.rx.try_recv().ok()?;
        self.tell_waiters(false);
        Some(event)
    }

    fn tell_waiters(&self, closed: bool) {
        if closed || self.rx.capacity() >= self.taken.wanted.load(Ordering::SeqCst) {
            self.taken.wanted.store(usize::MAX, Ordering::SeqCst);
            self.taken.notify.notify_waiters();
        }
    }
}

impl EventSender {
    /// A queue of at most `capacity` events.
    pub fn channel(capacity: usize, outbox: Outbox) -> (EventSender, EventReceiver) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let taken = Arc::new(Taken { notify: Notify::new(), wanted: AtomicUsize::new(usize::MAX) });
        (EventSender { tx, outbox, taken: taken.clone() }, EventReceiver { rx, taken })
    }

    /// A place in the queue, or why there is none.
    pub fn reserve(&self) -> Result<EventSlot<'_>, QueueError> {
        let permit = self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => QueueError::Full { capacity: self.tx.max_capacity() },
            mpsc::error::TrySendError::Closed(()) => QueueError::Closed,
        })?;
        Ok(EventSlot { permit, outbox: &self.outbox })
    }

    /// Queues `event`, or says why it cannot be.
    pub fn send(&self, event: OutgoingEvent) -> Result<(), QueueError> {
        self.reserve()?.send(event);
        Ok(())
    }

    /// Sends an event the runtime itself raised; a full queue costs only this event, and says so.
    pub fn send_or_log(&self, event: OutgoingEvent) {
        match self.reserve() {
            Ok(slot) => slot.send(event),
            Err(e) => tracing::error!(event = ?event, "event dropped: {e}"),
        }
    }

    /// Waits until at least `room` events could be queued: directives are read only while the events
    /// they cause can be queued too, so a flood of them waits in the cloud rather than in memory.
    pub async fn room_for(&self, room: usize) {
        // Not `reserve_many`: a waiter for many places collects each freed one as it comes, and the queue
        // looks full to every plugin meanwhile.
        let room = room.clamp(1, self.tx.max_capacity());
        loop {
            if self.has_room(room) {
                return;
            }
            let taken = self.taken.notify.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            // After enabling, before looking again: the receiver either sees what is wanted or took the
            // event before that second look, which then finds the room.
            self.taken.wanted.fetch_min(room, Ordering::SeqCst);
            if self.has_room(room) {
                return;
            }
            taken.await;
        }
    }

    /// Whether [`EventSender::room_for`] would return at once.
    pub fn has_room(&self, room: usize) -> bool {
        self.tx.capacity() >= room.clamp(1, self.tx.max_capacity()) || self.tx.is_closed()
    }
}

/// A reserved place in the event queue.
pub struct EventSlot<'a> {
    permit: mpsc::Permit<'a, OutgoingEvent>,
    outbox: &'a Outbox,
}

impl EventSlot<'_> {
    pub fn send(self, event: OutgoingEvent) {
        if event.must_deliver && event.audio.is_none() {
            // Still sent when the disk fails: better delivered unpersisted than not at all.
            if let Err(e) = self.outbox.keep(&event) {
                tracing::error!(event = ?event, "must-deliver event not persisted: {e}");
            }
        }
        self.permit.send(event);
    }
}

/// An ExceptionEncountered quotes the directive, but never more than this of it.
const MAX_QUOTED_DIRECTIVE: usize = 4 << 10;

/// `System.ExceptionEncountered` for a directive the device could not handle.
pub fn exception_encountered(unparsed_directive: &[u8], error_type: &str, message: &str) -> OutgoingEvent {
    let quoted = &unparsed_directive[..unparsed_directive.len().min(MAX_QUOTED_DIRECTIVE)];
    let payload = serde_json::json!({
        "unparsedDirective": String::from_utf8_lossy(quoted),
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

    #[tokio::test]
    async fn a_full_queue_refuses_clearly_and_must_deliver_events_are_kept_before_queueing() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(crate::storage::Storage::open(&dir.path().join("avs.db")).unwrap()).unwrap();
        let (sender, mut queue) = EventSender::channel(2, outbox.clone());
        let mut must = OutgoingEvent::new("Alerts", "AlertStarted", empty_payload());
        must.must_deliver = true;
        let must_id = must.message_id.clone();
        sender.send(must).unwrap();
        sender.send(OutgoingEvent::new("Speaker", "VolumeChanged", empty_payload())).unwrap();
        let refused = sender.send(OutgoingEvent::new("Speaker", "MuteChanged", empty_payload())).unwrap_err();
        assert_eq!(refused, QueueError::Full { capacity: 2 });
        assert!(refused.to_string().contains("full (2 events"), "{refused}");
        let kept: Vec<_> = outbox.pending().unwrap().into_iter().map(|e| e.message_id).collect();
        assert_eq!(kept, [must_id], "only the must-deliver event is kept");

        // Room for one again once the connection takes an event; room_for(2) waits for both.
        assert_eq!(queue.recv().await.unwrap().name, "AlertStarted");
        sender.room_for(1).await;
        let waiting = sender.room_for(2);
        tokio::pin!(waiting);
        assert!(futures_poll_once(waiting.as_mut()).await.is_none(), "one place is not room for two");
        // Waiting for room takes none of it: a plugin's event still fits meanwhile.
        sender.send(OutgoingEvent::new("Speaker", "MuteChanged", empty_payload())).unwrap();
        queue.recv().await.unwrap();
        queue.recv().await.unwrap();
        waiting.await;
    }

    #[test]
    fn a_waiter_for_room_is_woken_once_there_is_as_much_room_as_it_wants() {
        use std::future::Future;
        use std::task::{Context, Wake, Waker};

        #[derive(Default)]
        struct Wakes(AtomicUsize);
        impl Wake for Wakes {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }

        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(crate::storage::Storage::open(&dir.path().join("avs.db")).unwrap()).unwrap();
        let (sender, mut queue) = EventSender::channel(4, outbox);
        for name in ["A", "B", "C", "D"] {
            sender.send(OutgoingEvent::new("Speaker", name, empty_payload())).unwrap();
        }
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());
        let mut cx = Context::from_waker(&waker);
        let mut waiting = std::pin::pin!(sender.room_for(2));
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        queue.try_recv().unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "one free place is not the two it waits for");
        queue.try_recv().unwrap();
        assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
    }

    /// Polls a future once: Some(output) if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(f: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            out = f => Some(out),
            _ = std::future::ready(()) => None,
        }
    }
}
