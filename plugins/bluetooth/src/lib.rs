//! Bluetooth 2.0: scanning, pairing, connecting and media control of the device's Bluetooth radio, which
//! the host owns as its `bluetooth` device service (known there by MAC address). AVS knows peers only by
//! uniqueDeviceId, a UUID this plugin generates per MAC and persists ([`ids`]). Directives become
//! requests to the radio; their outcomes, and what the radio reports by itself (devices found, streams
//! starting and ending), become events. The A2DP source's audio plays on the Content channel ([`content`]).

mod content;
mod ids;
mod payloads;
mod radio;
#[cfg(test)]
mod schema_check;

use avs_plugin_sdk::{
    context_entry, Directive, DirectiveSpec, EventOptions, EventSpec, FocusState, Handling, Host, HostApi, HostCell,
    Interface, LogLevel, Manifest, PluginError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use content::{Action, Content, CHANNEL};
use ids::{DeviceIds, STORE_KEY};
use payloads::{Streaming, A2DP_SOURCE, AVRCP, CLOUD};
use radio::{AdapterState, Command, Device, Note, Request};

const INTERFACE: &str = "Bluetooth";
const SERVICE: &str = "bluetooth";

const DIRECTIVES: [&str; 13] = [
    "ScanDevices",
    "EnterDiscoverableMode",
    "ExitDiscoverableMode",
    "PairDevices",
    "UnpairDevices",
    "SetDeviceCategories",
    "ConnectByDeviceIds",
    "ConnectByProfile",
    "DisconnectDevices",
    "Play",
    "Stop",
    "Next",
    "Previous",
];

const EVENTS: [&str; 26] = [
    "ScanDevicesReport",
    "ScanDevicesFailed",
    "EnterDiscoverableModeSucceeded",
    "EnterDiscoverableModeFailed",
    "PairDevicesSucceeded",
    "PairDevicesFailed",
    "UnpairDevicesSucceeded",
    "UnpairDevicesFailed",
    "SetDeviceCategoriesSucceeded",
    "SetDeviceCategoriesFailed",
    "ConnectByDeviceIdsSucceeded",
    "ConnectByDeviceIdsFailed",
    "ConnectByProfileSucceeded",
    "ConnectByProfileFailed",
    "DisconnectDevicesSucceeded",
    "DisconnectDevicesFailed",
    "MediaControlPlaySucceeded",
    "MediaControlPlayFailed",
    "MediaControlStopSucceeded",
    "MediaControlStopFailed",
    "MediaControlNextSucceeded",
    "MediaControlNextFailed",
    "MediaControlPreviousSucceeded",
    "MediaControlPreviousFailed",
    "StreamingStarted",
    "StreamingEnded",
];

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeviceRef {
    unique_device_id: String,
}

#[derive(Deserialize)]
struct Devices {
    devices: Vec<DeviceRef>,
}

#[derive(Deserialize)]
struct OneDevice {
    device: DeviceRef,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Categorised {
    unique_device_id: String,
    device_category: String,
}

#[derive(Deserialize)]
struct SetDeviceCategories {
    devices: Vec<Categorised>,
}

#[derive(Deserialize)]
struct ProfileRef {
    name: String,
}

#[derive(Deserialize)]
struct ConnectByProfile {
    profile: ProfileRef,
}

#[derive(Default)]
pub struct Bluetooth {
    host: HostCell,
    ids: DeviceIds,
    /// The radio as last reported.
    radio: AdapterState,
    content: Content,
    /// The source that streamed last while still connected: AVS sees its stream as PAUSED.
    last_streamed: Option<String>,
    /// Requests of the plugin's own (focus handling, leaving discoverable mode) whose outcome AVS does
    /// not hear about.
    quiet: Vec<Request>,
}

/// The MediaControl event family of a media command.
fn media_event(command: Command) -> &'static str {
    match command {
        Command::Play => "MediaControlPlay",
        Command::Pause => "MediaControlStop",
        Command::Next => "MediaControlNext",
        Command::Previous => "MediaControlPrevious",
    }
}

fn outcome(ok: bool) -> &'static str {
    if ok {
        "Succeeded"
    } else {
        "Failed"
    }
}

impl Bluetooth {
    fn send(&self, name: &str, payload: Value) {
        // Context with the events the SDK sends with it (executeQueueEventAndRequestContext).
        let context = matches!(
            name,
            "StreamingStarted" | "StreamingEnded" | "SetDeviceCategoriesSucceeded" | "SetDeviceCategoriesFailed"
        );
        let Ok(host) = self.host.get() else { return };
        let options = EventOptions { context, ..EventOptions::default() };
        if let Err(e) = host.send_event_with(name, &payload, &options) {
            host.log(LogLevel::Warn, &format!("{name} not sent: {e}"));
        }
    }

    fn store_ids(&self) {
        if let Ok(host) = self.host.get() {
            if let Err(e) = host.store(STORE_KEY, &self.ids) {
                host.log(LogLevel::Warn, &format!("uniqueDeviceIds not stored: {e}"));
            }
        }
    }

    /// Takes the radio's state, giving every device it knows a uniqueDeviceId.
    fn absorb(&mut self, state: &AdapterState) {
        let mut changed = false;
        for device in &state.devices {
            changed |= self.ids.id_for(&device.mac).1;
        }
        if changed {
            self.store_ids();
        }
        if let Some(mac) = &self.last_streamed {
            if !state.device(mac).is_some_and(|d| d.connected) {
                self.last_streamed = None;
            }
        }
        self.radio = state.clone();
    }

    fn id_of(&self, mac: &str) -> String {
        self.ids.get(mac).map(|k| k.unique_device_id.clone()).unwrap_or_default()
    }

    fn streaming_of(&self, device: &Device) -> Streaming {
        match (device.streaming, self.last_streamed.as_deref() == Some(device.mac.as_str())) {
            (true, _) => Streaming::Active,
            (false, true) => Streaming::Paused,
            (false, false) => Streaming::Inactive,
        }
    }

    /// Asks the radio; a request the host refuses is handled as a failed outcome.
    fn ask(&mut self, request: Request) {
        let answer = self.host.get().and_then(|host| host.request(SERVICE, &request.to_json()));
        if let Err(e) = answer {
            let state = self.radio.clone();
            self.on_result(request, false, Some(e.to_string()), None, &state);
        }
    }

    fn ask_quietly(&mut self, request: Request) {
        self.quiet.push(request.clone());
        self.ask(request);
    }

    /// The MAC address of a uniqueDeviceId AVS named, if this device generated it.
    fn mac_of(&self, unique_device_id: &str) -> Option<String> {
        self.ids.mac_of(unique_device_id).map(str::to_string)
    }

    fn for_each_device(
        &mut self,
        devices: Devices,
        failed: &str,
        failure: impl Fn(&str) -> Value,
        mut request: impl FnMut(&mut Self, String) -> Option<Request>,
    ) {
        for device in devices.devices {
            match self.mac_of(&device.unique_device_id) {
                Some(mac) => {
                    if let Some(request) = request(self, mac) {
                        self.ask(request);
                    }
                }
                None => self.send(failed, failure(&device.unique_device_id)),
            }
        }
    }

    fn media(&mut self, directive: OneDevice, command: Command) {
        let family = media_event(command);
        let id = directive.device.unique_device_id;
        let mac = self.mac_of(&id).filter(|mac| self.radio.device(mac).is_some_and(|d| d.supports(AVRCP)));
        match mac {
            Some(mac) => {
                if command == Command::Pause {
                    // Stopping releases the channel even if the source fails to pause (as the SDK does).
                    let actions = self.content.release();
                    self.act(actions);
                }
                self.ask(Request::Media { mac, command })
            }
            None => self.send(&format!("{family}Failed"), payloads::media_control(&id)),
        }
    }

    fn set_device_categories(&mut self, payload: SetDeviceCategories) {
        let (mut set, mut unknown) = (Vec::new(), Vec::new());
        for device in payload.devices {
            match self.ids.set_category(&device.unique_device_id, &device.device_category) {
                true => set.push((device.unique_device_id, device.device_category)),
                false => unknown.push(device.unique_device_id),
            }
        }
        if !set.is_empty() {
            self.store_ids();
            self.send("SetDeviceCategoriesSucceeded", payloads::categories_succeeded(&set));
        }
        if !unknown.is_empty() {
            self.send("SetDeviceCategoriesFailed", payloads::categories_failed(&unknown, &self.radio, &self.ids));
        }
    }

    fn on_result(
        &mut self,
        request: Request,
        ok: bool,
        error: Option<String>,
        mac: Option<String>,
        state: &AdapterState,
    ) {
        if let Some(at) = self.quiet.iter().position(|q| *q == request) {
            self.quiet.remove(at);
            if let (false, Some(e), Ok(host)) = (ok, &error, self.host.get()) {
                host.log(LogLevel::Warn, &format!("bluetooth {request:?} failed: {e}"));
            }
            return;
        }
        if let (false, Some(e), Ok(host)) = (ok, &error, self.host.get()) {
            host.log(LogLevel::Info, &format!("bluetooth {request:?} failed: {e}"));
        }
        let device = |mac: &str| state.device(mac).cloned();
        match request {
            Request::State => {}
            Request::Scan { on: true } => match ok {
                true => self.send("ScanDevicesReport", payloads::scan_report(state, &self.ids, true)),
                false => self.send("ScanDevicesFailed", json!({})),
            },
            Request::Scan { on: false } | Request::Discoverable { on: false } => {}
            Request::Discoverable { on: true } => {
                self.send(&format!("EnterDiscoverableMode{}", outcome(ok)), json!({}))
            }
            Request::Pair { mac } => {
                let paired =
                    device(&mac).filter(|_| ok).and_then(|d| payloads::paired(&d, &self.ids, self.streaming_of(&d)));
                match paired {
                    Some(payload) => self.send("PairDevicesSucceeded", payload),
                    None => self.send("PairDevicesFailed", payloads::ids_only(&self.id_of(&mac))),
                }
            }
            Request::Unpair { mac } => {
                self.send(&format!("UnpairDevices{}", outcome(ok)), payloads::ids_only(&self.id_of(&mac)))
            }
            Request::Connect { ref mac } | Request::Disconnect { ref mac } => {
                let family =
                    if matches!(request, Request::Connect { .. }) { "ConnectByDeviceIds" } else { "DisconnectDevices" };
                // A failure names no device: the SDK sends an empty friendlyName.
                let name = device(mac).filter(|_| ok).map(|d| d.friendly_name).unwrap_or_default();
                let payload = payloads::connection(&self.id_of(mac), &name, CLOUD);
                self.send(&format!("{family}{}", outcome(ok)), payload);
            }
            Request::ConnectByProfile { profile } => match mac.filter(|_| ok) {
                Some(mac) => self.send(
                    "ConnectByProfileSucceeded",
                    payloads::connect_by_profile_succeeded(&self.id_of(&mac), &profile),
                ),
                None => self.send("ConnectByProfileFailed", payloads::connect_by_profile_failed(&profile)),
            },
            Request::Media { mac, command } => {
                let event = format!("{}{}", media_event(command), outcome(ok));
                self.send(&event, payloads::media_control(&self.id_of(&mac)));
            }
        }
    }

    fn on_streaming(&mut self, mac: String, active: bool) {
        let Some(device) = self.radio.device(&mac).cloned() else { return };
        let payload = payloads::streaming(&device, &self.id_of(&mac));
        let actions = if active {
            self.last_streamed = Some(mac);
            self.send("StreamingStarted", payload);
            self.content.streaming_started()
        } else {
            self.send("StreamingEnded", payload);
            self.content.streaming_ended()
        };
        self.act(actions);
    }

    fn act(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Acquire => {
                    if let Err(e) = self.host.get().and_then(|h| h.acquire_focus(CHANNEL)) {
                        if let Ok(host) = self.host.get() {
                            host.log(LogLevel::Warn, &format!("Content channel not acquired: {e}"));
                        }
                    }
                }
                Action::Release => {
                    if let Ok(host) = self.host.get() {
                        host.release_focus(CHANNEL);
                    }
                }
                Action::Pause(mac) => self.ask_quietly(Request::Media { mac, command: Command::Pause }),
                Action::Resume(mac) => self.ask_quietly(Request::Media { mac, command: Command::Play }),
            }
        }
    }

    fn streaming_source(&self) -> Option<&str> {
        self.radio.devices.iter().find(|d| d.streaming && d.supports(A2DP_SOURCE)).map(|d| d.mac.as_str())
    }
}

impl Interface for Bluetooth {
    fn manifest() -> Manifest {
        Manifest {
            // All non-blocking, as in the SDK (Bluetooth::getConfiguration); the media controls may
            // bring the source's audio onto the Content channel.
            directives: DIRECTIVES
                .iter()
                .map(|name| match *name {
                    "Play" | "Stop" | "Next" | "Previous" => DirectiveSpec::new(name).on_channel(CHANNEL),
                    _ => DirectiveSpec::new(name),
                })
                .collect(),
            events: EVENTS.iter().map(|name| EventSpec::new(name)).collect(),
            context: vec!["BluetoothState".into()],
            configurations: Some(json!({"profiles": ["AVRCP", "A2DP_SINK", "A2DP_SOURCE"]})),
            ..avs_plugin_sdk::manifest!(INTERFACE, "2.0")
        }
    }

    fn init(&mut self, host: Host) -> Result<(), PluginError> {
        if let Some(ids) = host.load::<DeviceIds>(STORE_KEY) {
            self.ids = ids;
        }
        let state = host.request(SERVICE, &Request::State.to_json());
        self.host.set(host);
        match state.and_then(|s| {
            serde_json::from_value::<AdapterState>(s).map_err(|e| PluginError::internal(format!("adapter state: {e}")))
        }) {
            Ok(state) => self.absorb(&state),
            Err(e) => self.host.get()?.log(LogLevel::Warn, &format!("no Bluetooth radio: {e}")),
        }
        Ok(())
    }

    fn handle_directive(&mut self, directive: Directive<'_>) -> Result<Handling, PluginError> {
        self.host.get()?;
        match directive.name {
            "ScanDevices" => self.ask(Request::Scan { on: true }),
            "EnterDiscoverableMode" => self.ask(Request::Discoverable { on: true }),
            "ExitDiscoverableMode" => {
                self.ask_quietly(Request::Scan { on: false });
                self.ask_quietly(Request::Discoverable { on: false });
            }
            "PairDevices" => {
                let devices: Devices = directive.payload()?;
                // As the SDK: no more scanning or discoverability while pairing.
                self.ask_quietly(Request::Scan { on: false });
                self.ask_quietly(Request::Discoverable { on: false });
                self.for_each_device(devices, "PairDevicesFailed", payloads::ids_only, |_, mac| {
                    Some(Request::Pair { mac })
                });
            }
            "UnpairDevices" => {
                let devices = directive.payload()?;
                self.for_each_device(devices, "UnpairDevicesFailed", payloads::ids_only, |_, mac| {
                    Some(Request::Unpair { mac })
                });
            }
            "SetDeviceCategories" => self.set_device_categories(directive.payload()?),
            "ConnectByDeviceIds" => {
                let devices = directive.payload()?;
                let failure = |id: &str| payloads::connection(id, "", CLOUD);
                self.for_each_device(devices, "ConnectByDeviceIdsFailed", failure, |this, mac| {
                    match this.radio.device(&mac).filter(|d| d.connected) {
                        // Already connected: succeeded at once, as the SDK answers.
                        Some(d) => {
                            let payload = payloads::connection(&this.id_of(&mac), &d.friendly_name, CLOUD);
                            this.send("ConnectByDeviceIdsSucceeded", payload);
                            None
                        }
                        None => Some(Request::Connect { mac }),
                    }
                });
            }
            "ConnectByProfile" => {
                let payload: ConnectByProfile = directive.payload()?;
                self.ask(Request::ConnectByProfile { profile: payload.profile.name });
            }
            "DisconnectDevices" => {
                let devices = directive.payload()?;
                let failure = |id: &str| payloads::connection(id, "", CLOUD);
                self.for_each_device(devices, "DisconnectDevicesFailed", failure, |_, mac| {
                    Some(Request::Disconnect { mac })
                });
            }
            "Play" => self.media(directive.payload()?, Command::Play),
            "Stop" => self.media(directive.payload()?, Command::Pause),
            "Next" => self.media(directive.payload()?, Command::Next),
            "Previous" => self.media(directive.payload()?, Command::Previous),
            other => return Err(PluginError::unsupported(format!("Bluetooth 2.0 has no directive {other}"))),
        }
        Ok(Handling::Completed)
    }

    fn on_focus(&mut self, channel: &str, focus: FocusState) -> Result<(), PluginError> {
        if channel == CHANNEL {
            let streaming = self.streaming_source().map(str::to_string);
            let actions = self.content.on_focus(focus, streaming.as_deref());
            self.act(actions);
        }
        Ok(())
    }

    fn on_host_event(&mut self, kind: &str, payload: &str) -> Result<(), PluginError> {
        if kind != SERVICE {
            return Ok(());
        }
        let note: Note =
            serde_json::from_str(payload).map_err(|e| PluginError::invalid(format!("bluetooth note: {e}")))?;
        self.absorb(note.state());
        match note {
            Note::Result { request, ok, error, mac, state } => self.on_result(request, ok, error, mac, &state),
            Note::Found { state } => self.send("ScanDevicesReport", payloads::scan_report(&state, &self.ids, true)),
            Note::ScanFinished { state } => {
                self.send("ScanDevicesReport", payloads::scan_report(&state, &self.ids, false))
            }
            Note::Streaming { mac, active, .. } => self.on_streaming(mac, active),
        }
        Ok(())
    }

    fn context(&self) -> Vec<Value> {
        let state = payloads::bluetooth_state(&self.radio, &self.ids, |d| self.streaming_of(d));
        vec![context_entry(INTERFACE, "BluetoothState", state)]
    }

    fn export_state(&self) -> Value {
        json!({"devices": self.ids})
    }

    fn import_state(&mut self, state: Value) -> Result<(), PluginError> {
        #[derive(Deserialize)]
        struct Exported {
            devices: DeviceIds,
        }
        let state: Exported = serde_json::from_value(state).map_err(|e| PluginError::invalid(format!("state: {e}")))?;
        self.ids = state.devices;
        self.store_ids();
        Ok(())
    }

    fn shutdown(&mut self) -> Result<(), PluginError> {
        let actions = self.content.release();
        self.act(actions);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_names(folder: &str) -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/Bluetooth/2.0/").to_string() + folder;
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn the_manifest_declares_exactly_the_schemas_messages() {
        let m = Bluetooth::manifest();
        assert_eq!((m.interface.as_str(), m.version.as_str()), ("Bluetooth", "2.0"));
        let mut directives: Vec<String> = m.directives.iter().map(|d| d.name.clone()).collect();
        directives.sort();
        assert_eq!(directives, schema_names("directives"));
        assert!(m.directives.iter().all(|d| !d.blocking));
        let mut events: Vec<String> = m.events.iter().map(|e| e.name.clone()).collect();
        events.sort();
        assert_eq!(events, schema_names("events"));
        assert_eq!(m.context, ["BluetoothState"]);
        avs_plugin_sdk::testing::assert_valid(
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/Bluetooth/2.0"),
            "capability.json",
            m.configurations.as_ref().unwrap(),
        );
    }

    #[test]
    fn the_ids_travel_in_the_exported_state() {
        let mut a = Bluetooth::default();
        let (phone, _) = a.ids.id_for("F4:60:E2:11:22:33");
        a.ids.set_category(&phone, "PHONE");
        let mut b = Bluetooth::default();
        b.import_state(a.export_state()).unwrap();
        assert_eq!(b.ids, a.ids);
        assert!(b.import_state(json!({"devices": {"F4:60:E2:11:22:33": {"uniqueDeviceId": 1}}})).is_err());
        assert_eq!(b.ids, a.ids, "a rejected import leaves the ids alone");
    }

    #[test]
    fn the_context_before_any_radio_report_is_valid() {
        let context = Bluetooth::default().context();
        schema_check::assert_valid("context/BluetoothState.json", &context[0]["payload"]);
    }

    #[test]
    fn the_services_notifications_are_understood() {
        let state = json!({"friendlyName": "avs-runtime", "discoverable": false, "scanning": false, "devices": [{
            "mac": "F4:60:E2:11:22:33", "friendlyName": "Pixel Phone", "classOfDevice": 5898764,
            "profiles": [{"name": "A2DP-SOURCE", "version": "1.3"}], "paired": true, "connected": true, "streaming": true}]});
        let result = json!({"kind": "result", "request": {"op": "media", "mac": "F4:60:E2:11:22:33", "command": "pause"},
                            "ok": false, "error": "gone", "state": state});
        let Note::Result { request, ok, .. } = serde_json::from_value(result).unwrap() else { panic!("a result") };
        assert_eq!(request, Request::Media { mac: "F4:60:E2:11:22:33".into(), command: Command::Pause });
        assert!(!ok);
        let streaming: Note = serde_json::from_value(
            json!({"kind": "streaming", "mac": "F4:60:E2:11:22:33", "active": true, "state": state}),
        )
        .unwrap();
        assert!(streaming.state().devices[0].streaming);

        let mut plugin = Bluetooth::default();
        plugin.absorb(streaming.state());
        assert!(plugin.ids.get("F4:60:E2:11:22:33").is_some(), "every device the radio reports gets an id");
        let context = plugin.context();
        schema_check::assert_valid("context/BluetoothState.json", &context[0]["payload"]);
        assert_eq!(context[0]["payload"]["pairedDevices"][0]["supportedProfiles"][0]["state"]["streaming"], "ACTIVE");
        assert_eq!(plugin.streaming_source(), Some("F4:60:E2:11:22:33"));
    }

    #[test]
    fn media_commands_map_to_their_event_families() {
        assert_eq!(media_event(Command::Play), "MediaControlPlay");
        assert_eq!(media_event(Command::Pause), "MediaControlStop", "Stop pauses the source, as in the SDK");
        assert_eq!(media_event(Command::Next), "MediaControlNext");
        assert_eq!(media_event(Command::Previous), "MediaControlPrevious");
    }
}
