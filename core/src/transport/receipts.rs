//! What follows AVS's answer to an event: a must-deliver event's row leaves the outbox, then the
//! observer hears `EventSent`. Events go out one at a time, so the time between one event's answer and
//! the next event's request is the pace of every event-bound run: the SQLite write is kept out of it.
//! Answered events are written in batches (one transaction each) on a blocking thread, and reported in
//! the order they were answered.
//!
//! A batch is written once the connection has no event in flight, or once its oldest answer is
//! `BATCH_DELAY` old. Writing each answer as it came (a batch of one, mostly) woke a blocking thread
//! and committed a transaction per event: a fifth of the runtime's CPU on the default mix of
//! `avs bench`. The price is a wider window in which a crash sends answered events again
//! (duplicates, never a loss), and `EventSent` later by up to `BATCH_DELAY` while events stream.

use std::time::Duration;

use tokio::task::{JoinError, JoinHandle};
use tokio::time::Instant;

use crate::events::OutgoingEvent;
use crate::observe::{Observer, RuntimeEvent};
use crate::outbox::Outbox;
use crate::storage::StorageError;

/// How long an answered event may wait for the connection to fall idle before its batch is written.
const BATCH_DELAY: Duration = Duration::from_millis(10);

pub(crate) struct Receipts {
    outbox: Outbox,
    observer: Observer,
    /// Answered, not yet being written.
    answered: Vec<Answered>,
    /// When the batch in `answered` is written at the latest.
    due: Option<Instant>,
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
        Receipts { outbox, observer, answered: Vec::new(), due: None, writing: None }
    }

    /// AVS answered `event` with `status`; it is written with the next batch.
    pub(crate) fn answered(&mut self, event: &OutgoingEvent, status: u16) {
        tracing::debug!(event = ?event, status, "event sent");
        let answered = Answered {
            namespace: event.namespace.clone(),
            name: event.name.clone(),
            message_id: event.message_id.clone(),
            status,
            must_deliver: event.must_deliver,
        };
        if !answered.must_deliver && self.answered.is_empty() && self.writing.is_none() {
            // Nothing to write, and nothing answered before it waits to be reported.
            self.report(vec![answered], Ok(()));
            return;
        }
        self.answered.push(answered);
        self.due.get_or_insert_with(|| Instant::now() + BATCH_DELAY);
    }

    /// The connection has no event in flight: what was answered is written now, unless a batch is
    /// being written (it is next, then).
    pub(crate) fn write(&mut self) {
        if self.writing.is_some() || self.answered.is_empty() {
            return;
        }
        self.due = None;
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

    /// Resolves when a batch has been written, starting the waiting one when it is due; never while
    /// there is neither. Cancel-safe: a write it started goes on, and the next call awaits it.
    pub(crate) async fn written(&mut self) -> Result<Written, JoinError> {
        loop {
            if let Some(writing) = &mut self.writing {
                return writing.await;
            }
            match self.due {
                Some(due) => {
                    tokio::time::sleep_until(due).await;
                    self.write();
                }
                None => std::future::pending().await,
            }
        }
    }

    /// Reports a batch [`Receipts::written`] returned. The next batch waits for its turn (`write`, or
    /// its due time): starting it at once would write batches of one again.
    pub(crate) fn done(&mut self, written: Result<Written, JoinError>) {
        self.writing = None;
        match written {
            Ok(Written { batch, result }) => self.report(batch, result),
            // The batch is lost with the panic; its rows stay in the outbox and go again after a
            // restart: duplicates, never a loss.
            Err(e) => tracing::error!("removing delivered events from the outbox failed: {e}"),
        }
    }

    /// Waits until everything answered is written and reported: at the end of a connection, so that
    /// none of it waits for the next one (or is lost with the runtime's stop).
    pub(crate) async fn settle(&mut self) {
        loop {
            self.write();
            if self.writing.is_none() {
                return;
            }
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

    /// Receipts over an outbox in a fresh data dir (kept while the test runs), and what they report.
    fn receipts() -> (tempfile::TempDir, Outbox, Receipts, tokio::sync::broadcast::Receiver<RuntimeEvent>) {
        let dir = tempfile::tempdir().unwrap();
        let outbox = Outbox::open(Storage::open(&dir.path().join("avs.db")).unwrap()).unwrap();
        let observer = Observer::with_capacity(16);
        let reported = observer.subscribe();
        (dir, outbox.clone(), Receipts::new(outbox, observer), reported)
    }

    fn pending(outbox: &Outbox) -> Vec<String> {
        outbox.pending().unwrap().into_iter().map(|e| e.name).collect()
    }

    fn assert_reported(reported: &mut tokio::sync::broadcast::Receiver<RuntimeEvent>, expected: &[&OutgoingEvent]) {
        for expected in expected {
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

    #[tokio::test]
    async fn answered_events_leave_the_outbox_and_are_reported_in_the_order_answered() {
        let (_dir, outbox, mut receipts, mut reported) = receipts();
        let events = [event("VolumeChanged", true), event("SpeechStarted", false), event("MuteChanged", true)];
        for e in events.iter().filter(|e| e.must_deliver) {
            outbox.keep(e).unwrap();
        }
        outbox.keep(&event("NotYetAnswered", true)).unwrap();

        // While events are in flight, answers wait to be written together, SpeechStarted (nothing to
        // write) included, so that the order holds.
        for e in &events {
            receipts.answered(e, 204);
        }
        assert_eq!(pending(&outbox), ["VolumeChanged", "MuteChanged", "NotYetAnswered"]);
        assert_reported(&mut reported, &[]);

        receipts.settle().await;
        assert_eq!(pending(&outbox), ["NotYetAnswered"]);
        assert_reported(&mut reported, &events.iter().collect::<Vec<_>>());

        // With nothing waiting, an answer with nothing to write is reported at once.
        let alone = event("SpeechFinished", false);
        receipts.answered(&alone, 204);
        assert_reported(&mut reported, &[&alone]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_is_written_when_due_while_events_stay_in_flight() {
        let (_dir, outbox, mut receipts, mut reported) = receipts();
        let (first, second) = (event("VolumeChanged", true), event("MuteChanged", true));
        outbox.keep(&first).unwrap();
        outbox.keep(&second).unwrap();

        let answered_at = Instant::now();
        receipts.answered(&first, 204);
        receipts.answered(&second, 204);
        let written = receipts.written().await;
        assert!(answered_at.elapsed() >= BATCH_DELAY, "written before it was due");
        receipts.done(written);

        assert!(pending(&outbox).is_empty());
        assert_reported(&mut reported, &[&first, &second]);
    }
}
