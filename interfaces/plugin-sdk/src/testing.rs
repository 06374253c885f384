//! For plugins' own unit tests (feature `testing`): what a plugin produces must pass the schemas it
//! embeds, since the host refuses to send an event whose payload does not; and [`FakeHost`], the host
//! its state machines run against in those tests.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::{EventOptions, HostApi, LogLevel, PluginError, SentEvent};

/// Panics unless `payload` is valid against `relative` (e.g. `events/VolumeChanged.json`) below
/// `schema_dir`.
pub fn assert_valid(schema_dir: &str, relative: &str, payload: &Value) {
    let path = format!("{schema_dir}/{relative}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Err(e) = validator.validate(payload) {
        panic!("{relative} rejects {payload}: {e}");
    }
}

/// What a plugin asked of the host, in order. Stores and logs are kept apart ([`FakeHost::stores`],
/// [`FakeHost::logs`]): they are state and diagnostics, not the actions tests compare sequences of.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// An event sent: its name and payload (its options: [`FakeHost::sent`]).
    Event(String, Value),
    Complete(String, Result<(), String>),
    /// A timer started: delay and period in milliseconds.
    Timer(u64, u64),
    CancelTimer(u64),
    Acquire(String),
    Release(String),
    /// Playback started: URL and options.
    Play(String, Value),
    Stop(u64),
    /// A device-service request: service and request.
    Request(String, Value),
}

/// An in-memory host that records everything a plugin does. Every event is checked against the
/// plugin's event schema; timers and media get ids from one count from 1, so that every id is unique; the
/// builder methods inject the failures a real host can answer with. A failed call leaves no record.
pub struct FakeHost {
    schema_dir: String,
    calls: RefCell<Vec<Call>>,
    sent: RefCell<Vec<(String, Value, Value)>>,
    /// (key, JSON text as the plugin stored it), as the host's storage keeps text.
    stores: RefCell<Vec<(String, String)>>,
    logs: RefCell<Vec<(LogLevel, String)>>,
    last_id: Cell<u64>,
    last_timer: Cell<u64>,
    last_media: Cell<u64>,
    fail_send: bool,
    fail_store: bool,
    refuse_focus: bool,
    unplayable: Vec<String>,
    answers: HashMap<String, Result<Value, PluginError>>,
}

impl FakeHost {
    /// A host checking events against `{schema_dir}/events/<name>.json`.
    pub fn new(schema_dir: impl Into<String>) -> Self {
        FakeHost {
            schema_dir: schema_dir.into(),
            calls: RefCell::default(),
            sent: RefCell::default(),
            stores: RefCell::default(),
            logs: RefCell::default(),
            last_id: Cell::new(0),
            last_timer: Cell::new(0),
            last_media: Cell::new(0),
            fail_send: false,
            fail_store: false,
            refuse_focus: false,
            unplayable: Vec::new(),
            answers: HashMap::new(),
        }
    }

    /// Every send_event fails, as when the host's outbox is full.
    pub fn failing_send(mut self) -> Self {
        self.fail_send = true;
        self
    }

    /// Every store fails, as on a full disk.
    pub fn failing_store(mut self) -> Self {
        self.fail_store = true;
        self
    }

    /// Every acquire_focus fails, as for a channel the host does not know.
    pub fn refusing_focus(mut self) -> Self {
        self.refuse_focus = true;
        self
    }

    /// Playing `url` fails at once, as for a URL the host's player does not support.
    pub fn unplayable(mut self, url: &str) -> Self {
        self.unplayable.push(url.into());
        self
    }

    /// Requests to `service` get `answer` (by default `null`).
    pub fn answering(mut self, service: &str, answer: Result<Value, PluginError>) -> Self {
        self.answers.insert(service.into(), answer);
        self
    }

    /// The calls recorded so far, leaving them recorded.
    pub fn calls(&self) -> Vec<Call> {
        self.calls.borrow().clone()
    }

    /// The calls recorded since the last take.
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.borrow_mut())
    }

    /// The events among the calls recorded since the last take (which this is).
    pub fn take_events(&self) -> Vec<(String, Value)> {
        let events = self.take().into_iter().filter_map(|call| match call {
            Call::Event(name, payload) => Some((name, payload)),
            _ => None,
        });
        events.collect()
    }

    /// Whether `call` was recorded since the last take.
    pub fn has(&self, call: &Call) -> bool {
        self.calls.borrow().contains(call)
    }

    /// Every event sent, as (name, payload), whatever was taken.
    pub fn events(&self) -> Vec<(String, Value)> {
        self.sent.borrow().iter().map(|(name, payload, _)| (name.clone(), payload.clone())).collect()
    }

    /// Every event sent, as (name, payload, options as JSON).
    pub fn sent(&self) -> Vec<(String, Value, Value)> {
        self.sent.borrow().clone()
    }

    /// Every store, as (key, value), in order.
    pub fn stores(&self) -> Vec<(String, Value)> {
        self.stores.borrow().iter().map(|(key, json)| (key.clone(), parse_stored(json))).collect()
    }

    /// The value last stored under `key`.
    pub fn stored(&self, key: &str) -> Option<Value> {
        self.stored_text(key).as_deref().map(parse_stored)
    }

    /// The JSON text last stored under `key`, as the plugin wrote it.
    pub fn stored_text(&self, key: &str) -> Option<String> {
        self.stores.borrow().iter().rev().find(|(k, _)| k == key).map(|(_, json)| json.clone())
    }

    /// The messages logged at `level`.
    pub fn logs(&self, level: LogLevel) -> Vec<String> {
        self.logs.borrow().iter().filter(|(l, _)| *l == level).map(|(_, message)| message.clone()).collect()
    }

    /// The id of the timer started last.
    pub fn last_timer(&self) -> u64 {
        self.last_timer.get()
    }

    /// The id of the media (playback or audio capture) started last.
    pub fn last_media(&self) -> u64 {
        self.last_media.get()
    }

    fn record(&self, call: Call) {
        self.calls.borrow_mut().push(call);
    }

    /// A new id, remembered as the last of its kind in `last`.
    fn next_id(&self, last: &Cell<u64>) -> u64 {
        self.last_id.set(self.last_id.get() + 1);
        last.set(self.last_id.get());
        last.get()
    }
}

fn parse_stored(json: &str) -> Value {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("a plugin stored text that is not JSON ({e}): {json}"))
}

fn to_value(value: &impl Serialize) -> Value {
    serde_json::to_value(value).expect("a plugin's JSON serialises")
}

impl HostApi for FakeHost {
    fn send_event_with(
        &self,
        name: &str,
        payload: &impl Serialize,
        options: &EventOptions,
    ) -> Result<SentEvent, PluginError> {
        if self.fail_send {
            return Err(PluginError::internal("outbox full"));
        }
        let payload = to_value(payload);
        assert_valid(&self.schema_dir, &format!("events/{name}.json"), &payload);
        self.record(Call::Event(name.into(), payload.clone()));
        self.sent.borrow_mut().push((name.into(), payload, to_value(options)));
        let message_id = format!("message-{}", self.sent.borrow().len());
        let dialog_request_id = match (&options.dialog_request_id, options.new_dialog) {
            (Some(dialog), _) => Some(dialog.clone()),
            (None, true) => Some(format!("dialog-{message_id}")),
            (None, false) => None,
        };
        let audio_stream = options.audio.as_ref().map(|_| self.next_id(&self.last_media));
        Ok(SentEvent { message_id, dialog_request_id, audio_stream })
    }

    fn complete_directive(&self, message_id: &str, outcome: Result<(), String>) {
        self.record(Call::Complete(message_id.into(), outcome));
    }

    fn start_timer(&self, delay_ms: u64, period_ms: u64) -> u64 {
        self.record(Call::Timer(delay_ms, period_ms));
        self.next_id(&self.last_timer)
    }

    fn cancel_timer(&self, timer: u64) {
        self.record(Call::CancelTimer(timer));
    }

    fn acquire_focus(&self, channel: &str) -> Result<(), PluginError> {
        if self.refuse_focus {
            return Err(PluginError::internal(format!("no such channel {channel}")));
        }
        self.record(Call::Acquire(channel.into()));
        Ok(())
    }

    fn release_focus(&self, channel: &str) {
        self.record(Call::Release(channel.into()));
    }

    fn play(&self, url: &str, options: &Value) -> Result<u64, PluginError> {
        if self.unplayable.iter().any(|u| u == url) {
            return Err(PluginError::internal(format!("unsupported media URL {url}")));
        }
        self.record(Call::Play(url.into(), options.clone()));
        Ok(self.next_id(&self.last_media))
    }

    fn stop_media(&self, media: u64) {
        self.record(Call::Stop(media));
    }

    fn load_raw(&self, key: &str) -> Option<String> {
        self.stored_text(key)
    }

    fn store_raw(&self, key: &str, json: &str) -> Result<(), PluginError> {
        if self.fail_store {
            return Err(PluginError::internal("disk full"));
        }
        // A plugin that stores text it did not serialise must still store JSON: checked here.
        parse_stored(json);
        self.stores.borrow_mut().push((key.into(), json.into()));
        Ok(())
    }

    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.into()));
    }

    fn request(&self, service: &str, request: &Value) -> Result<Value, PluginError> {
        let answer = self.answers.get(service).cloned().unwrap_or(Ok(Value::Null));
        if answer.is_ok() {
            self.record(Call::Request(service.into(), request.clone()));
        }
        answer
    }
}
