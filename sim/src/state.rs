//! What a running sim shares between its connections and its handle: what it recorded, the LWA state,
//! the open downchannels and the dialog script.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::{mpsc, Notify};

use crate::faults::{Faults, RefusedEvent};
use crate::scenarios::{Cloud, Scenario};
use crate::{lwa, schemas, ReceivedEvent, SimConfig, Violation};

#[derive(Default)]
pub(crate) struct Recorded {
    pub events: Vec<ReceivedEvent>,
    /// Published with [`Recorded::publish_capabilities`], which keeps `declared` in step.
    pub capabilities: Vec<Value>,
    /// Interface → version, from the last capability document: read for every event, so kept rather
    /// than rebuilt from the document each time.
    declared: Arc<HashMap<String, String>>,
    pub violations: Vec<Violation>,
    pub deviations: Vec<String>,
    pub refused_events: Vec<RefusedEvent>,
    /// When each TCP connection was accepted, refused ones included.
    pub connection_attempts: Vec<tokio::time::Instant>,
    /// How many of them were closed at once because the sim was offline.
    pub refused_connection_attempts: usize,
}

impl Recorded {
    pub fn publish_capabilities(&mut self, document: Value) {
        let interfaces = document["capabilities"].as_array().into_iter().flatten();
        self.declared = Arc::new(
            interfaces
                .filter_map(|c| Some((c["interface"].as_str()?.to_string(), c["version"].as_str()?.to_string())))
                .collect(),
        );
        self.capabilities.push(document);
    }
}

pub(crate) enum DownchannelMessage {
    Data(Bytes),
    /// A load generator run, written by the downchannel's task as flow control allows.
    Load(std::sync::Arc<crate::load::LoadSpec>),
    End,
    /// RST_STREAM instead of an end (fault injection).
    Reset,
}

pub(crate) struct Shared {
    pub config: SimConfig,
    recorded: Mutex<Recorded>,
    /// Woken whenever something is recorded or a downchannel opens, for the `wait_*` APIs.
    pub changed: Notify,
    lwa: Mutex<lwa::Lwa>,
    downchannels: Mutex<Vec<mpsc::UnboundedSender<DownchannelMessage>>>,
    pub downchannels_opened: AtomicUsize,
    pub connections: AtomicU64,
    pub schemas: schemas::Schemas,
    pub faults: Faults,
    /// The scripted dialog answers a Recognize with ExpectSpeech after the Speak.
    pub expect_speech_after_speak: AtomicBool,
    /// What the user's next request is about, and how the cloud reacts to what follows.
    pub scenario: Mutex<Option<&'static Scenario>>,
    /// `https://localhost:PORT`, where the sim serves media.
    pub base_url: String,
}

/// A poisoned lock only means a handler panicked mid-update; the recorded data is still worth reading.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub(crate) fn new(config: SimConfig, base_url: String) -> Self {
        Shared {
            scenario: Mutex::default(),
            base_url,
            expect_speech_after_speak: AtomicBool::new(config.expect_speech_after_speak),
            config,
            recorded: Mutex::default(),
            changed: Notify::new(),
            lwa: Mutex::default(),
            downchannels: Mutex::default(),
            downchannels_opened: AtomicUsize::new(0),
            connections: AtomicU64::new(0),
            schemas: schemas::Schemas::default(),
            faults: Faults::default(),
        }
    }

    pub(crate) fn recorded(&self) -> MutexGuard<'_, Recorded> {
        lock(&self.recorded)
    }

    pub(crate) fn lwa(&self) -> MutexGuard<'_, lwa::Lwa> {
        lock(&self.lwa)
    }

    pub(crate) fn record(&self, f: impl FnOnce(&mut Recorded)) {
        f(&mut self.recorded());
        self.changed.notify_waiters();
    }

    /// Something a client did that AVS documents differently but the sim tolerates.
    pub(crate) fn deviation(&self, what: impl Into<String>) {
        let what = what.into();
        tracing::debug!("client deviation: {what}");
        self.record(|r| r.deviations.push(what));
    }

    /// Registers a new downchannel; what `broadcast_downchannel` sends arrives on the receiver.
    pub(crate) fn open_downchannel(&self) -> mpsc::UnboundedReceiver<DownchannelMessage> {
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.downchannels).push(tx);
        self.downchannels_opened.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.changed.notify_waiters();
        rx
    }

    /// Sends a message on every open downchannel; returns how many received it.
    pub(crate) fn broadcast_downchannel(&self, message: impl Fn() -> DownchannelMessage) -> usize {
        let mut channels = lock(&self.downchannels);
        channels.retain(|tx| tx.send(message()).is_ok());
        channels.len()
    }

    pub(crate) fn scenario(&self) -> Option<&'static Scenario> {
        *lock(&self.scenario)
    }

    /// Runs `f` with what a scenario may know of the cloud.
    pub(crate) fn with_cloud<T>(&self, f: impl FnOnce(&Cloud<'_>) -> T) -> T {
        let declared = self.declared_versions();
        f(&Cloud { base_url: &self.base_url, declared: &declared })
    }

    /// Interface → version, from the last capability document the device published.
    pub(crate) fn declared_versions(&self) -> Arc<HashMap<String, String>> {
        self.recorded().declared.clone()
    }
}
