//! What follows AVS's answer to an event: a must-deliver event's row leaves the outbox, then the
//! observer hears `EventSent`. Events go out one at a time, so the time between one event's answer and
//! the next event's request is the pace of every event-bound run: the SQLite write is kept out of it.
//! Answered events are written in batches (one transaction each) on a blocking thread while the
//! connection's task sends the next event, and reported in the order they were answered.

use tokio::task::{JoinError, JoinHandle};

use crate::events::OutgoingEvent;
use crate::observe::{Observer, RuntimeEvent};
use crate::outbox::Outbox;
use crate::storage::StorageError;

pub(crate) struct Receipts {
    outbox: Outbox,
    observer: Observer,
    /// Answered, not yet being written.
    answered: Vec<Answered>,
    writing: Option<JoinHandle<Written>>,
}

struct Answered {
    namespace: String,
    name: String,
    message_id: String,
    status: u16,
    must_deliver: bool,
}

/// A batch whose outbox rows were deleted, or failed to be.
pub(crate) struct Written {
    batch: Vec<Answered>,
    result: Result<(), StorageError>,
}

impl Receipts {
    pub(crate) fn new(outbox: Outbox, observer: Observer) -> Self {
        Receipts { outbox, observer, answered: Vec::new(), writing: None }
    }

    /// AVS answered `event` with `status`.
    pub(crate) fn answered(&mut self, event: &OutgoingEvent, status: u16) {
        tracing::debug!(event = ?event, status, "event sent");
        self.answered.push(Answered {
            namespace: event.namespace.clone(),
            name: event.name.clone(),
            message_id: event.message_id.clone(),
            status,
            must_deliver: event.must_deliver,
        });
        self.write();
    }

    /// Starts writing what was answered, unless a batch is being written (it is next, then).
    fn write(&mut self) {
        if self.writing.is_some() || self.answered.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.answered);
        if !batch.iter().any(|a| a.must_deliver) {
            self.report(batch, Ok(()));
            return;
        }
        let outbox = self.outbox.clone();
        self.writing = Some(tokio::task::spawn_blocking(move || {
            let result = outbox.delivered(batch.iter().filter(|a| a.must_deliver).map(|a| a.message_id.as_str()));
            Written { batch, result }
        }));
    }

    /// Resolves when the batch being written is done; never while none is.
    pub(crate) async fn written(&mut self) -> Result<Written, JoinError> {
        match &mut self.writing {
            Some(writing) => writing.await,
            None => std::future::pending().await,
        }
    }

    /// Reports a batch [`Receipts::written`] returned, and starts on the next.
    pub(crate) fn done(&mut self, written: Result<Written, JoinError>) {
        self.writing = None;
        match written {
            Ok(Written { batch, result }) => self.report(batch, result),
            // The batch is lost with the panic; its rows stay in the outbox and go again after a
            // restart: duplicates, never a loss.
            Err(e) => tracing::error!("removing delivered events from the outbox failed: {e}"),
        }
        self.write();
    }

    /// Waits until everything answered is written and reported: at the end of a connection, so that
    /// none of it waits for the next one (or is lost with the runtime's stop).
    pub(crate) async fn settle(&mut self) {
        while self.writing.is_some() {
            let written = self.written().await;
            self.done(written);
        }
    }

    fn report(&self, batch: Vec<Answered>, result: Result<(), StorageError>) {
        if let Err(e) = &result {
            // They would be sent again after a restart: duplicates, never a loss.
            tracing::error!(events = batch.len(), "delivered, but still in the outbox: {e}");
        }
        for answered in batch {
            self.observer.emit(RuntimeEvent::EventSent {
                namespace: answered.namespace,
                name: answered.name,
                message_id: answered.message_id,
                status: answered.status,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;

    use super::*;
    use crate::storage::Storage;

    fn event(name: &str, must_deliver: bool) -> OutgoingEvent {
        let mut event = OutgoingEvent::new("Speaker", name, RawValue::from_string("{}".into()).unwrap());
        event.must_deliver = must_deliver;
        event
    }

    #[tokio::test]
    async fn answered_events_leave_the_outbox_and_are_reported_in_the_order_answered() {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(Storage::open(&dir.path().join("avs.db")).unwrap()).unwrap();
        let observer = Observer::with_capacity(16);
        let mut reported = observer.subscribe();
        let mut receipts = Receipts::new(outbox.clone(), observer);
        let events = [event("VolumeChanged", true), event("MuteChanged", true), event("SpeechStarted", false)];
        for e in events.iter().filter(|e| e.must_deliver) {
            outbox.keep(e).unwrap();
        }
        outbox.keep(&event("NotYetAnswered", true)).unwrap();

        // The first starts a write; the two answered meanwhile wait for it and go as the next batch.
        for e in &events {
            receipts.answered(e, 204);
        }
        receipts.settle().await;

        let pending: Vec<_> = outbox.pending().unwrap().into_iter().map(|e| e.name).collect();
        assert_eq!(pending, ["NotYetAnswered"]);
        for expected in &events {
            match reported.try_recv() {
                Ok(RuntimeEvent::EventSent { name, message_id, status, .. }) => {
                    assert_eq!(
                        (name.as_str(), message_id.as_str(), status),
                        (expected.name.as_str(), expected.message_id.as_str(), 204)
                    );
                }
                other => panic!("expected EventSent for {}, got {other:?}", expected.name),
            }
        }
        assert!(reported.try_recv().is_err(), "each answered event is reported once");
    }
}
