//! Bluetooth 2.0 against avs-sim, over the host's simulated radio (a phone that streams to us, a
//! speaker): every directive answered by its events with schema-valid payloads, the pairing state in
//! the context of a Recognize, and uniqueDeviceIds that survive a restart of the runtime.

mod common;

use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::runtime::Runtime;
use avs_sim::{ReceivedEvent, Sim, SimConfig, SimHandle};
use common::{built_plugin_dir, device_config, payload, WAIT};
use serde_json::{json, Value};
use tokio::sync::broadcast;

const UNKNOWN_ID: &str = "00000000-0000-4000-8000-000000000000";

struct Speaker {
    sim: SimHandle,
    config: Config,
    runtime: Option<Runtime>,
    events: broadcast::Receiver<RuntimeEvent>,
    _dir: tempfile::TempDir,
    pushed: u32,
}

impl Speaker {
    async fn start() -> Speaker {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
        let mut config = device_config(&sim, &dir, built_plugin_dir());
        config.plugins = vec![
            "avs_system".into(),
            "avs_speech_recognizer".into(),
            "avs_speech_synthesizer".into(),
            "avs_speaker".into(),
            "avs_bluetooth".into(),
        ];
        let mut speaker =
            Speaker { sim, config, runtime: None, events: Observer::default().subscribe(), _dir: dir, pushed: 0 };
        speaker.restart().await;
        speaker
    }

    /// Starts (again) the runtime on the same data dir — with a fresh radio — and waits until it is
    /// connected.
    async fn restart(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        let (runtime, events) = common::start_connected(self.config.clone()).await;
        (self.runtime, self.events) = (Some(runtime), events);
    }

    async fn wait_for(&mut self, pred: impl Fn(&RuntimeEvent) -> bool) -> RuntimeEvent {
        common::next_matching(&mut self.events, pred).await
    }

    /// Pushes a Bluetooth directive and waits until the plugin handled it.
    async fn push(&mut self, name: &str, payload: Value) {
        self.pushed += 1;
        let message_id = format!("bt-{}", self.pushed);
        self.sim.push_directive(
            json!({"directive": {"header": {"namespace": "Bluetooth", "name": name, "messageId": message_id},
                                 "payload": payload}}),
            vec![],
        );
        let id = message_id.clone();
        let handled = self
            .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if *message_id == id))
            .await;
        let RuntimeEvent::DirectiveHandled { outcome, .. } = handled else { unreachable!() };
        assert_eq!(outcome, Ok(()), "{name}");
    }

    /// The `n`-th (from 1) Bluetooth event called `name` avs-sim received.
    async fn nth(&self, name: &str, n: usize) -> ReceivedEvent {
        let name = name.to_string();
        let matching = self
            .sim
            .wait_for_events(|e| e.namespace == "Bluetooth" && e.name == name, n, WAIT)
            .await
            .unwrap_or_else(|e| panic!("{name} #{n}: {e}; received: {:?}", self.received()));
        matching[n - 1].clone()
    }

    fn count(&self, name: &str) -> usize {
        self.sim.events().iter().filter(|e| e.namespace == "Bluetooth" && e.name == name).count()
    }

    fn received(&self) -> Vec<String> {
        self.sim.events().iter().map(|e| format!("{}.{}", e.namespace, e.name)).collect()
    }

    /// The ScanDevicesReports avs-sim received, with `hasMore` as given.
    fn reports(&self, has_more: bool) -> usize {
        let reports = self.sim.events();
        reports.iter().filter(|e| e.name == "ScanDevicesReport" && payload(e)["hasMore"] == has_more).count()
    }

    /// Scans and returns the uniqueDeviceIds of the phone and the speaker from the report that ends the
    /// scan (events travel on concurrent streams: avs-sim may receive them in another order).
    async fn scan(&mut self) -> (String, String) {
        let finished = self.reports(false);
        self.push("ScanDevices", json!({})).await;
        let last = self
            .sim
            .wait_for_events(|e| e.name == "ScanDevicesReport" && payload(e)["hasMore"] == false, finished + 1, WAIT)
            .await
            .unwrap_or_else(|e| panic!("the final ScanDevicesReport: {e}; received: {:?}", self.received()));
        let report = payload(&last[finished]).clone();
        let id_of = |name: &str| {
            let found = report["discoveredDevices"].as_array().unwrap().iter().find(|d| d["friendlyName"] == name);
            found.unwrap_or_else(|| panic!("{name} not in {report}"))["uniqueDeviceId"].as_str().unwrap().to_string()
        };
        (id_of("Pixel Phone"), id_of("Kitchen Speaker"))
    }

    async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        assert!(self.sim.violations().is_empty(), "{:?}", self.sim.violations());
        self.sim.shutdown().await;
    }
}

fn devices(ids: &[&str]) -> Value {
    json!({"devices": ids.iter().map(|id| json!({"uniqueDeviceId": id})).collect::<Vec<_>>()})
}

fn device(id: &str) -> Value {
    json!({"device": {"uniqueDeviceId": id}})
}

fn bluetooth_state(event: &ReceivedEvent) -> Value {
    let context = event.json["context"].as_array().expect("the event carries context");
    let entry =
        context.iter().find(|c| c["header"]["namespace"] == "Bluetooth" && c["header"]["name"] == "BluetoothState");
    entry.expect("BluetoothState in the context")["payload"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_directive_is_answered_and_the_ids_survive_a_restart() {
    let mut speaker = Speaker::start().await;

    speaker.push("EnterDiscoverableMode", json!({"durationInSeconds": 120})).await;
    assert_eq!(payload(&speaker.nth("EnterDiscoverableModeSucceeded", 1).await), &json!({}));

    let (phone, kitchen) = speaker.scan().await;
    assert_ne!(phone, kitchen);
    // Reported too: the start of the scan and each device found.
    speaker.nth("ScanDevicesReport", 4).await;
    assert_eq!(speaker.reports(true), 3);

    speaker.push("PairDevices", devices(&[&phone, &kitchen, UNKNOWN_ID])).await;
    let failed = speaker.nth("PairDevicesFailed", 1).await;
    assert_eq!(payload(&failed), &devices(&[UNKNOWN_ID]));
    speaker.nth("PairDevicesSucceeded", 2).await;
    let paired: Vec<Value> = speaker
        .sim
        .events()
        .iter()
        .filter(|e| e.name == "PairDevicesSucceeded")
        .map(|e| payload(e)["devices"][0].clone())
        .collect();
    let paired_phone = paired.iter().find(|d| d["uniqueDeviceId"] == phone.as_str()).expect("the phone paired");
    assert!(paired.iter().any(|d| d["uniqueDeviceId"] == kitchen.as_str()), "the speaker paired");
    assert_eq!(paired_phone["profiles"][0]["name"], "A2DP-SOURCE");

    speaker
        .push(
            "SetDeviceCategories",
            json!({"devices": [{"uniqueDeviceId": phone, "deviceCategory": "PHONE"},
                               {"uniqueDeviceId": UNKNOWN_ID, "deviceCategory": "GADGET"}]}),
        )
        .await;
    let set = speaker.nth("SetDeviceCategoriesSucceeded", 1).await;
    assert_eq!(payload(&set)["devices"], json!([{"uniqueDeviceId": phone, "deviceCategory": "PHONE"}]));
    assert_eq!(payload(&speaker.nth("SetDeviceCategoriesFailed", 1).await)["devices"][0]["uniqueDeviceId"], UNKNOWN_ID);

    speaker.push("ConnectByDeviceIds", devices(&[&phone, UNKNOWN_ID])).await;
    let connected = speaker.nth("ConnectByDeviceIdsSucceeded", 1).await;
    assert_eq!(
        payload(&connected),
        &json!({"devices": [{"uniqueDeviceId": phone, "friendlyName": "Pixel Phone"}], "requester": "CLOUD"})
    );
    assert_eq!(payload(&speaker.nth("ConnectByDeviceIdsFailed", 1).await)["devices"][0]["friendlyName"], "");

    speaker.push("Play", device(&phone)).await;
    assert_eq!(payload(&speaker.nth("MediaControlPlaySucceeded", 1).await), &device(&phone));
    let started = speaker.nth("StreamingStarted", 1).await;
    assert_eq!(payload(&started), &json!({"device": {"uniqueDeviceId": phone, "profileName": "A2DP-SOURCE"}}));
    assert_eq!(bluetooth_state(&started)["pairedDevices"].as_array().unwrap().len(), 2);
    speaker.push("Next", device(&phone)).await;
    assert_eq!(payload(&speaker.nth("MediaControlNextSucceeded", 1).await), &device(&phone));
    speaker.push("Previous", device(&phone)).await;
    assert_eq!(payload(&speaker.nth("MediaControlPreviousSucceeded", 1).await), &device(&phone));
    speaker.push("Stop", device(&phone)).await;
    assert_eq!(payload(&speaker.nth("MediaControlStopSucceeded", 1).await), &device(&phone));
    assert_eq!(payload(&speaker.nth("StreamingEnded", 1).await)["device"]["uniqueDeviceId"], phone.as_str());
    speaker.push("Play", device(UNKNOWN_ID)).await;
    assert_eq!(payload(&speaker.nth("MediaControlPlayFailed", 1).await), &device(UNKNOWN_ID));
    speaker.push("Next", device(&kitchen)).await;
    assert_eq!(payload(&speaker.nth("MediaControlNextFailed", 1).await), &device(&kitchen), "not connected");

    // The source's audio is on the Content channel: the user's question pauses it, and it resumes
    // once Alexa has answered. The pairing state travels in the question's context.
    speaker.push("Play", device(&phone)).await;
    speaker.nth("StreamingStarted", 2).await;
    speak_to(&speaker);
    let recognize = speaker
        .sim
        .wait_for_event(|e| e.namespace == "SpeechRecognizer" && e.name == "Recognize", WAIT)
        .await
        .unwrap_or_else(|e| panic!("Recognize: {e}; received: {:?}", speaker.received()));
    let state = bluetooth_state(&recognize);
    assert_eq!(state["alexaDevice"]["friendlyName"], "avs-runtime");
    let paired = state["pairedDevices"].as_array().unwrap();
    assert_eq!(paired.len(), 2, "{state}");
    let paired_state = |id: &str| paired.iter().find(|d| d["uniqueDeviceId"] == id).unwrap().clone();
    assert_eq!(paired_state(&phone)["connectionState"], "CONNECTED");
    assert_eq!(paired_state(&phone)["deviceCategory"], "PHONE");
    assert_eq!(paired_state(&kitchen)["connectionState"], "DISCONNECTED");

    speaker.nth("StreamingEnded", 2).await;
    speaker.nth("StreamingStarted", 3).await;

    speaker.push("ConnectByProfile", json!({"profile": {"name": "A2DP-SINK", "version": "1.3"}})).await;
    let by_profile = speaker.nth("ConnectByProfileSucceeded", 1).await;
    assert_eq!(
        payload(&by_profile),
        &json!({"device": {"uniqueDeviceId": kitchen}, "profileName": "A2DP-SINK", "requester": "CLOUD"})
    );
    speaker.push("ConnectByProfile", json!({"profile": {"name": "HID"}})).await;
    assert_eq!(
        payload(&speaker.nth("ConnectByProfileFailed", 1).await),
        &json!({"profileName": "HID", "requester": "CLOUD"})
    );

    speaker.push("DisconnectDevices", devices(&[&kitchen])).await;
    let disconnected = speaker.nth("DisconnectDevicesSucceeded", 1).await;
    assert_eq!(payload(&disconnected)["devices"][0]["uniqueDeviceId"], kitchen.as_str());
    speaker.push("DisconnectDevices", devices(&[&kitchen])).await;
    assert_eq!(
        payload(&speaker.nth("DisconnectDevicesFailed", 1).await)["devices"][0]["uniqueDeviceId"],
        kitchen.as_str()
    );

    speaker.push("UnpairDevices", devices(&[&kitchen])).await;
    assert_eq!(payload(&speaker.nth("UnpairDevicesSucceeded", 1).await), &devices(&[&kitchen]));
    speaker.push("UnpairDevices", devices(&[&kitchen])).await;
    assert_eq!(payload(&speaker.nth("UnpairDevicesFailed", 1).await), &devices(&[&kitchen]), "no longer paired");

    speaker.push("ExitDiscoverableMode", json!({})).await;

    // A restart brings a fresh radio; the devices it finds again keep their uniqueDeviceIds.
    speaker.restart().await;
    assert_eq!(speaker.scan().await, (phone, kitchen));
    assert_eq!(speaker.count("ScanDevicesFailed"), 0);
    assert_eq!(speaker.count("EnterDiscoverableModeFailed"), 0);

    speaker.stop().await;
}

/// The user asks something (the bundled utterance), as `common::Device::speak_to_it` does.
fn speak_to(speaker: &Speaker) {
    let dir = speaker.config.data_dir.parent().unwrap();
    let utterance = dir.join("utterance.wav");
    if !utterance.exists() {
        std::fs::write(&utterance, include_bytes!("../assets/utterance.wav")).unwrap();
    }
    let request = json!({"profile": "CLOSE_TALK", "audio": {"file": utterance}});
    speaker.runtime.as_ref().unwrap().user_event("user.recognize", &request);
}
