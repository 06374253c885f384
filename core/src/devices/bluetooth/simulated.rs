//! An in-memory Bluetooth radio with two devices in range: a phone that streams to us (A2DP source with
//! AVRCP and HFP) and a speaker we could stream to (A2DP sink with AVRCP). A scan finds both at once
//! and then ends by itself; every operation completes at once, in the order a real radio reports it.

use std::sync::{Arc, Mutex};

use super::adapter::{
    AdapterEvent, AdapterState, BluetoothAdapter, Completion, DeviceInfo, Listener, MediaCommand, Profile, A2DP_SINK,
    A2DP_SOURCE, AVRCP, HFP,
};

pub const PHONE_MAC: &str = "F4:60:E2:11:22:33";
pub const SPEAKER_MAC: &str = "00:1A:7D:44:55:66";

struct Remote {
    info: DeviceInfo,
    /// Seen by a scan (or paired): only these are reported.
    known: bool,
    /// When it last connected, for "most recently connected first".
    last_connected: u64,
}

struct Radio {
    friendly_name: String,
    discoverable: bool,
    scanning: bool,
    remotes: Vec<Remote>,
    connections: u64,
}

pub struct SimulatedAdapter {
    radio: Mutex<Radio>,
    listener: Mutex<Option<Listener>>,
}

/// What an operation reports once the radio's lock is released: events before the completion (a
/// stream ends before its device is reported disconnected), the outcome, events after it.
struct Outcome {
    before: Vec<AdapterEvent>,
    result: Result<(), String>,
    after: Vec<AdapterEvent>,
}

impl Outcome {
    fn done(result: Result<(), String>) -> Self {
        Outcome { before: Vec::new(), result, after: Vec::new() }
    }
}

fn remote(mac: &str, name: &str, class_of_device: u32, profiles: Vec<Profile>) -> Remote {
    let info = DeviceInfo {
        mac: mac.into(),
        friendly_name: name.into(),
        class_of_device,
        profiles,
        paired: false,
        connected: false,
        streaming: false,
    };
    Remote { info, known: false, last_connected: 0 }
}

impl SimulatedAdapter {
    pub fn new(friendly_name: &str) -> Arc<Self> {
        let remotes = vec![
            // Class 0x5A020C: phone, smartphone; 0x240414: audio/video, loudspeaker.
            remote(
                PHONE_MAC,
                "Pixel Phone",
                0x5A020C,
                vec![Profile::new(A2DP_SOURCE, "1.3"), Profile::new(AVRCP, "1.6"), Profile::new(HFP, "1.7")],
            ),
            remote(
                SPEAKER_MAC,
                "Kitchen Speaker",
                0x240414,
                vec![Profile::new(A2DP_SINK, "1.3"), Profile::new(AVRCP, "1.6")],
            ),
        ];
        Arc::new(SimulatedAdapter {
            radio: Mutex::new(Radio {
                friendly_name: friendly_name.into(),
                discoverable: false,
                scanning: false,
                remotes,
                connections: 0,
            }),
            listener: Mutex::new(None),
        })
    }

    fn radio(&self) -> std::sync::MutexGuard<'_, Radio> {
        self.radio.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `operation` on the radio, then reports what it did with no lock held.
    fn run(&self, done: Completion, operation: impl FnOnce(&mut Radio) -> Outcome) {
        let outcome = operation(&mut self.radio());
        let listener = self.listener.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let report = |events: Vec<AdapterEvent>| {
            if let Some(listener) = &listener {
                events.into_iter().for_each(|e| listener(e));
            }
        };
        report(outcome.before);
        done(outcome.result);
        report(outcome.after);
    }
}

impl Radio {
    fn known(&mut self, mac: &str) -> Result<&mut Remote, String> {
        self.remotes
            .iter_mut()
            .find(|r| r.known && r.info.mac == mac)
            .ok_or_else(|| format!("no device {mac} in range"))
    }

    fn paired(&mut self, mac: &str) -> Result<&mut Remote, String> {
        let remote = self.known(mac)?;
        match remote.info.paired {
            true => Ok(remote),
            false => Err(format!("{mac} is not paired")),
        }
    }
}

/// Drops `remote`'s connection, reporting the end of its stream.
fn drop_connection(remote: &mut Remote) -> Vec<AdapterEvent> {
    remote.info.connected = false;
    match std::mem::take(&mut remote.info.streaming) {
        true => vec![AdapterEvent::StreamingChanged { mac: remote.info.mac.clone(), active: false }],
        false => Vec::new(),
    }
}

impl BluetoothAdapter for SimulatedAdapter {
    fn state(&self) -> AdapterState {
        let radio = self.radio();
        let mut known: Vec<&Remote> = radio.remotes.iter().filter(|r| r.known).collect();
        known.sort_by_key(|r| std::cmp::Reverse(r.last_connected));
        AdapterState {
            friendly_name: radio.friendly_name.clone(),
            discoverable: radio.discoverable,
            scanning: radio.scanning,
            devices: known.into_iter().map(|r| r.info.clone()).collect(),
        }
    }

    fn listen(&self, listener: Listener) {
        *self.listener.lock().unwrap_or_else(|e| e.into_inner()) = Some(listener);
    }

    fn set_scanning(&self, on: bool, done: Completion) {
        self.run(done, |radio| {
            if !on {
                radio.scanning = false;
                return Outcome::done(Ok(()));
            }
            let mut after = Vec::new();
            for remote in radio.remotes.iter_mut().filter(|r| !r.known) {
                remote.known = true;
                after.push(AdapterEvent::DeviceFound(remote.info.clone()));
            }
            // Everything in range answered the inquiry: the scan is over.
            after.push(AdapterEvent::ScanFinished);
            Outcome { before: Vec::new(), result: Ok(()), after }
        })
    }

    fn set_discoverable(&self, on: bool, done: Completion) {
        self.run(done, |radio| {
            radio.discoverable = on;
            Outcome::done(Ok(()))
        })
    }

    fn pair(&self, mac: &str, done: Completion) {
        self.run(done, |radio| Outcome::done(radio.known(mac).map(|remote| remote.info.paired = true)))
    }

    fn unpair(&self, mac: &str, done: Completion) {
        self.run(done, |radio| match radio.paired(mac) {
            Ok(remote) => {
                let before = drop_connection(remote);
                remote.info.paired = false;
                Outcome { before, result: Ok(()), after: Vec::new() }
            }
            Err(e) => Outcome::done(Err(e)),
        })
    }

    fn connect(&self, mac: &str, done: Completion) {
        self.run(done, |radio| {
            radio.connections += 1;
            let order = radio.connections;
            Outcome::done(radio.paired(mac).map(|remote| {
                remote.info.connected = true;
                remote.last_connected = order;
            }))
        })
    }

    fn disconnect(&self, mac: &str, done: Completion) {
        self.run(done, |radio| match radio.known(mac) {
            Ok(remote) if remote.info.connected => {
                let before = drop_connection(remote);
                Outcome { before, result: Ok(()), after: Vec::new() }
            }
            Ok(_) => Outcome::done(Err(format!("{mac} is not connected"))),
            Err(e) => Outcome::done(Err(e)),
        })
    }

    fn media(&self, mac: &str, command: MediaCommand, done: Completion) {
        self.run(done, |radio| {
            let remote = match radio.known(mac) {
                Ok(remote) if remote.info.connected && remote.info.supports(AVRCP) => remote,
                Ok(_) => return Outcome::done(Err(format!("{mac} is not connected with AVRCP"))),
                Err(e) => return Outcome::done(Err(e)),
            };
            // Only a source streams to us; a sink merely obeys.
            let streams = remote.info.supports(A2DP_SOURCE);
            let streaming = match command {
                MediaCommand::Play => streams,
                MediaCommand::Pause => false,
                MediaCommand::Next | MediaCommand::Previous => remote.info.streaming,
            };
            let mut after = Vec::new();
            if streaming != remote.info.streaming {
                remote.info.streaming = streaming;
                after.push(AdapterEvent::StreamingChanged { mac: mac.into(), active: streaming });
            }
            Outcome { before: Vec::new(), result: Ok(()), after }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(adapter: &SimulatedAdapter) -> Arc<Mutex<Vec<AdapterEvent>>> {
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        adapter.listen(Arc::new(move |e| sink.lock().unwrap().push(e)));
        events
    }

    fn call(op: impl FnOnce(Completion)) -> Result<(), String> {
        let outcome = Arc::new(Mutex::new(None));
        let slot = outcome.clone();
        op(Box::new(move |r| *slot.lock().unwrap() = Some(r)));
        let result = outcome.lock().unwrap().take();
        result.expect("the simulated radio completes at once")
    }

    #[test]
    fn a_scan_finds_both_devices_and_ends_by_itself() {
        let adapter = SimulatedAdapter::new("Test Device");
        let events = recorded(&adapter);
        assert!(adapter.state().devices.is_empty(), "nothing is known before a scan");
        call(|done| adapter.set_scanning(true, done)).unwrap();
        let events = events.lock().unwrap();
        assert!(matches!(&events[0], AdapterEvent::DeviceFound(d) if d.mac == PHONE_MAC));
        assert!(matches!(&events[1], AdapterEvent::DeviceFound(d) if d.mac == SPEAKER_MAC));
        assert_eq!(events[2], AdapterEvent::ScanFinished);
        assert_eq!(adapter.state().devices.len(), 2);
    }

    #[test]
    fn pairing_connecting_and_unpairing_change_the_state() {
        let adapter = SimulatedAdapter::new("Test Device");
        assert!(call(|done| adapter.pair(PHONE_MAC, done)).is_err(), "not found yet");
        call(|done| adapter.set_scanning(true, done)).unwrap();
        assert!(call(|done| adapter.connect(SPEAKER_MAC, done)).is_err(), "not paired");
        call(|done| adapter.pair(SPEAKER_MAC, done)).unwrap();
        call(|done| adapter.pair(PHONE_MAC, done)).unwrap();
        call(|done| adapter.connect(SPEAKER_MAC, done)).unwrap();
        let state = adapter.state();
        assert_eq!(state.devices[0].mac, SPEAKER_MAC, "most recently connected first");
        assert!(state.devices[0].paired && state.devices[0].connected);
        call(|done| adapter.unpair(SPEAKER_MAC, done)).unwrap();
        let speaker = adapter.state().devices.into_iter().find(|d| d.mac == SPEAKER_MAC).unwrap();
        assert!(!speaker.paired && !speaker.connected, "unpairing disconnects");
        assert!(call(|done| adapter.disconnect(SPEAKER_MAC, done)).is_err());
    }

    #[test]
    fn the_phone_streams_on_play_and_stops_on_pause_or_disconnect() {
        let adapter = SimulatedAdapter::new("Test Device");
        call(|done| adapter.set_scanning(true, done)).unwrap();
        call(|done| adapter.pair(PHONE_MAC, done)).unwrap();
        assert!(call(|done| adapter.media(PHONE_MAC, MediaCommand::Play, done)).is_err(), "not connected");
        call(|done| adapter.connect(PHONE_MAC, done)).unwrap();
        let events = recorded(&adapter);
        call(|done| adapter.media(PHONE_MAC, MediaCommand::Play, done)).unwrap();
        call(|done| adapter.media(PHONE_MAC, MediaCommand::Next, done)).unwrap();
        call(|done| adapter.media(PHONE_MAC, MediaCommand::Pause, done)).unwrap();
        call(|done| adapter.media(PHONE_MAC, MediaCommand::Play, done)).unwrap();
        call(|done| adapter.disconnect(PHONE_MAC, done)).unwrap();
        let streaming = |active| AdapterEvent::StreamingChanged { mac: PHONE_MAC.into(), active };
        assert_eq!(*events.lock().unwrap(), [streaming(true), streaming(false), streaming(true), streaming(false)]);
    }
}
