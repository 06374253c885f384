//! The `bluetooth` device service: the device's Bluetooth radio, behind a [`BluetoothAdapter`] (an
//! in-memory [`SimulatedAdapter`] today, BlueZ over D-Bus later). The Bluetooth plugin drives it; it knows
//! devices by MAC address only — AVS's uniqueDeviceIds are the plugin's business.
//!
//! # JSON contract
//!
//! Requests (`Host::request("bluetooth", …)`), each answered at once:
//! - `{"op":"state"}` → the adapter state (below).
//! - `{"op":"scan","on":bool}`, `{"op":"discoverable","on":bool}`,
//!   `{"op":"pair"|"unpair"|"connect"|"disconnect","mac":"XX:XX:XX:XX:XX:XX"}`,
//!   `{"op":"connectByProfile","profile":"A2DP-SOURCE"|"A2DP-SINK"|"A2DP"|"AVRCP"|"HFP"|…}` (connects the
//!   most recently connected paired device offering it, trying at most two),
//!   `{"op":"media","mac":…,"command":"play"|"pause"|"next"|"previous"}` → `{"accepted":true}`; the
//!   outcome follows as a notification.
//!
//! Notifications (host event `bluetooth`), each with the adapter state after the fact as `state`:
//! - `{"kind":"result","request":{…the request…},"ok":bool,"error"?:string,"mac"?:string,"state":{…}}`
//!   (`mac`: the device a `connectByProfile` connected);
//! - `{"kind":"found","device":{…},"state":{…}}`: a scan found a device;
//! - `{"kind":"scanFinished","state":{…}}`: a scan ended by itself;
//! - `{"kind":"streaming","mac":…,"active":bool,"state":{…}}`: an A2DP stream started or ended.
//!
//! Unsolicited notifications go to the plugin instance that made the latest request (after an OTA swap,
//! the new one).
//!
//! The adapter state: `{"friendlyName":string,"discoverable":bool,"scanning":bool,"devices":[device]}`,
//! a device being `{"mac","friendlyName","classOfDevice":u32,"profiles":[{"name","version"}],"paired",
//! "connected","streaming"}`, most recently connected first.

mod adapter;
mod simulated;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use adapter::{
    AdapterEvent, AdapterState, BluetoothAdapter, Completion, DeviceInfo, Listener, MediaCommand, Profile,
};
pub use simulated::{SimulatedAdapter, PHONE_MAC, SPEAKER_MAC};

use super::{DeviceService, Notifier};

/// How many paired devices a `connectByProfile` tries, as the AVS Device SDK does
/// (acsdkBluetooth Bluetooth.cpp, MAX_CONNECT_BY_PROFILE_COUNT).
const CONNECT_BY_PROFILE_TRIES: usize = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "camelCase", deny_unknown_fields)]
enum Request {
    State,
    Scan { on: bool },
    Discoverable { on: bool },
    Pair { mac: String },
    Unpair { mac: String },
    Connect { mac: String },
    Disconnect { mac: String },
    ConnectByProfile { profile: String },
    Media { mac: String, command: MediaCommand },
}

pub struct Bluetooth {
    adapter: Arc<dyn BluetoothAdapter>,
    subscriber: Arc<Mutex<Option<Notifier>>>,
}

impl Bluetooth {
    /// The service over the in-memory radio.
    pub fn simulated() -> Arc<Self> {
        Bluetooth::new(SimulatedAdapter::new("avs-runtime"))
    }

    pub fn new(adapter: Arc<dyn BluetoothAdapter>) -> Arc<Self> {
        let subscriber: Arc<Mutex<Option<Notifier>>> = Arc::default();
        let to = subscriber.clone();
        // Weak: the adapter owns the listener, which must not keep the adapter alive.
        let radio: Weak<dyn BluetoothAdapter> = Arc::downgrade(&adapter);
        adapter.listen(Arc::new(move |event| {
            let Some(radio) = radio.upgrade() else { return };
            let Some(notify) = to.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return };
            let mut note = match event {
                AdapterEvent::DeviceFound(device) => json!({"kind": "found", "device": device}),
                AdapterEvent::ScanFinished => json!({"kind": "scanFinished"}),
                AdapterEvent::StreamingChanged { mac, active } => {
                    json!({"kind": "streaming", "mac": mac, "active": active})
                }
            };
            note["state"] = state_json(&radio.state());
            notify.notify(note);
        }));
        Arc::new(Bluetooth { adapter, subscriber })
    }
}

fn state_json(state: &AdapterState) -> Value {
    serde_json::to_value(state).expect("adapter state serialises")
}

/// The completion that notifies `notify` of `request`'s outcome.
fn report(adapter: &Arc<dyn BluetoothAdapter>, notify: Notifier, request: &Request) -> Completion {
    let adapter = adapter.clone();
    let request = serde_json::to_value(request).expect("request serialises");
    Box::new(move |result| notify.notify(result_note(&adapter.state(), request, result, None)))
}

fn result_note(state: &AdapterState, request: Value, result: Result<(), String>, mac: Option<String>) -> Value {
    let mut note = json!({"kind": "result", "request": request, "ok": result.is_ok(), "state": state_json(state)});
    if let Err(e) = result {
        note["error"] = e.into();
    }
    if let Some(mac) = mac {
        note["mac"] = mac.into();
    }
    note
}

/// Connects the first of `candidates` that connects; reports which one, or the last failure.
fn connect_first(
    adapter: Arc<dyn BluetoothAdapter>,
    mut candidates: VecDeque<String>,
    finish: Box<dyn FnOnce(Result<String, String>) + Send>,
) {
    let Some(mac) = candidates.pop_front() else {
        return finish(Err("no paired device offers that profile".into()));
    };
    let next = adapter.clone();
    adapter.connect(
        &mac.clone(),
        Box::new(move |result| match result {
            Ok(()) => finish(Ok(mac)),
            Err(e) if candidates.is_empty() => finish(Err(e)),
            Err(_) => connect_first(next, candidates, finish),
        }),
    );
}

impl DeviceService for Bluetooth {
    fn request(&self, request: &Value, notify: Notifier) -> Result<Value, String> {
        let request = Request::deserialize(request).map_err(|e| format!("bluetooth request: {e}"))?;
        *self.subscriber.lock().unwrap_or_else(|e| e.into_inner()) = Some(notify.clone());
        let adapter = &self.adapter;
        match &request {
            Request::State => return Ok(state_json(&adapter.state())),
            Request::Scan { on } => adapter.set_scanning(*on, report(adapter, notify, &request)),
            Request::Discoverable { on } => adapter.set_discoverable(*on, report(adapter, notify, &request)),
            Request::Pair { mac } => adapter.pair(mac, report(adapter, notify, &request)),
            Request::Unpair { mac } => adapter.unpair(mac, report(adapter, notify, &request)),
            Request::Connect { mac } => adapter.connect(mac, report(adapter, notify, &request)),
            Request::Disconnect { mac } => adapter.disconnect(mac, report(adapter, notify, &request)),
            Request::Media { mac, command } => adapter.media(mac, *command, report(adapter, notify, &request)),
            Request::ConnectByProfile { profile } => {
                let candidates: VecDeque<String> = adapter
                    .state()
                    .devices
                    .into_iter()
                    .filter(|d| d.paired && d.supports(profile))
                    .take(CONNECT_BY_PROFILE_TRIES)
                    .map(|d| d.mac)
                    .collect();
                let radio = adapter.clone();
                let echo = serde_json::to_value(&request).expect("request serialises");
                connect_first(
                    adapter.clone(),
                    candidates,
                    Box::new(move |result| {
                        let (result, mac) = match result {
                            Ok(mac) => (Ok(()), Some(mac)),
                            Err(e) => (Err(e), None),
                        };
                        notify.notify(result_note(&radio.state(), echo, result, mac));
                    }),
                );
            }
        }
        Ok(json!({"accepted": true}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> (Arc<Bluetooth>, Arc<Mutex<Vec<Value>>>, Notifier) {
        let notes = Arc::new(Mutex::new(Vec::new()));
        let sink = notes.clone();
        let notify = Notifier::new(move |v| sink.lock().unwrap().push(v));
        (Bluetooth::simulated(), notes, notify)
    }

    fn ask(bluetooth: &Bluetooth, notify: &Notifier, request: Value) -> Value {
        bluetooth.request(&request, notify.clone()).unwrap()
    }

    fn take(notes: &Mutex<Vec<Value>>) -> Vec<Value> {
        std::mem::take(&mut *notes.lock().unwrap())
    }

    #[test]
    fn state_is_answered_at_once_and_operations_are_reported_later() {
        let (bt, notes, notify) = service();
        let state = ask(&bt, &notify, json!({"op": "state"}));
        assert_eq!(
            state,
            json!({"friendlyName": "avs-runtime", "discoverable": false, "scanning": false, "devices": []})
        );
        assert_eq!(ask(&bt, &notify, json!({"op": "discoverable", "on": true})), json!({"accepted": true}));
        let notes = take(&notes);
        assert_eq!(notes[0]["kind"], "result");
        assert_eq!(notes[0]["request"], json!({"op": "discoverable", "on": true}));
        assert_eq!(notes[0]["ok"], true);
        assert_eq!(notes[0]["state"]["discoverable"], true);
    }

    #[test]
    fn a_scan_reports_each_device_found_and_its_end() {
        let (bt, notes, notify) = service();
        ask(&bt, &notify, json!({"op": "scan", "on": true}));
        let kinds: Vec<Value> = take(&notes).iter().map(|n| n["kind"].clone()).collect();
        assert_eq!(kinds, ["result", "found", "found", "scanFinished"]);
    }

    #[test]
    fn a_failure_carries_its_reason() {
        let (bt, notes, notify) = service();
        ask(&bt, &notify, json!({"op": "pair", "mac": PHONE_MAC}));
        let note = &take(&notes)[0];
        assert_eq!(note["ok"], false);
        assert!(note["error"].as_str().unwrap().contains("in range"), "{note}");
    }

    #[test]
    fn connect_by_profile_connects_a_paired_device_offering_it() {
        let (bt, notes, notify) = service();
        ask(&bt, &notify, json!({"op": "scan", "on": true}));
        ask(&bt, &notify, json!({"op": "connectByProfile", "profile": "A2DP-SOURCE"}));
        let notes_now = take(&notes);
        assert_eq!(notes_now.last().unwrap()["ok"], false, "nothing paired yet");
        ask(&bt, &notify, json!({"op": "pair", "mac": PHONE_MAC}));
        ask(&bt, &notify, json!({"op": "pair", "mac": SPEAKER_MAC}));
        take(&notes);
        ask(&bt, &notify, json!({"op": "connectByProfile", "profile": "A2DP-SOURCE"}));
        let note = &take(&notes)[0];
        assert_eq!((note["ok"].clone(), note["mac"].clone()), (json!(true), json!(PHONE_MAC)));
        assert_eq!(note["state"]["devices"][0]["connected"], true);
    }

    #[test]
    fn streaming_is_reported_to_the_latest_requester() {
        let (bt, notes, notify) = service();
        ask(&bt, &notify, json!({"op": "scan", "on": true}));
        ask(&bt, &notify, json!({"op": "pair", "mac": PHONE_MAC}));
        ask(&bt, &notify, json!({"op": "connect", "mac": PHONE_MAC}));
        take(&notes);
        ask(&bt, &notify, json!({"op": "media", "mac": PHONE_MAC, "command": "play"}));
        let notes = take(&notes);
        assert_eq!(notes[0]["kind"], "result");
        assert_eq!(
            notes[1],
            json!({"kind": "streaming", "mac": PHONE_MAC, "active": true, "state": notes[1]["state"]})
        );
        assert_eq!(notes[1]["state"]["devices"][0]["streaming"], true);
    }

    #[test]
    fn a_malformed_request_is_refused_with_the_reason() {
        let (bt, _, notify) = service();
        let error = bt.request(&json!({"op": "media", "mac": PHONE_MAC, "command": "rewind"}), notify).unwrap_err();
        assert!(error.contains("rewind"), "{error}");
    }
}
