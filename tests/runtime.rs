//! The runtime against avs-sim over real TLS + HTTP/2: connection, capabilities, dialogs, directives,
//! reconnects and token refresh.

mod common;

use avs_core::observe::RuntimeEvent;
use common::{built_plugin_dir, payload, Device};
use serde_json::{json, Value};

fn directive(namespace: &str, name: &str, message_id: &str, payload: Value) -> Value {
    json!({"directive": {"header": {"namespace": namespace, "name": name, "messageId": message_id}, "payload": payload}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn synchronize_state_opens_every_connection_including_after_the_downchannel_drops() {
    let mut device = Device::connect(built_plugin_dir()).await;
    let first = device.sim_event(|e| e.name == "SynchronizeState").await;
    assert_eq!(first.seq_on_connection, 0, "SynchronizeState must be the first event on the connection");
    assert!(first.json["context"].as_array().is_some_and(|c| !c.is_empty()), "SynchronizeState carries the context");

    device.sim.drop_downchannels();
    device.wait_for(|e| matches!(e, RuntimeEvent::Disconnected { .. })).await;
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { connection: 2 })).await;
    let second = device.sim_event(|e| e.name == "SynchronizeState" && e.connection != first.connection).await;
    assert_eq!(second.seq_on_connection, 0);
    assert!(device.sim.downchannel_count() >= 2);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_published_capabilities_are_exactly_the_loaded_plugins() {
    let device = Device::connect(built_plugin_dir()).await;
    let documents = device.sim.capability_documents();
    let document = documents.last().expect("a capability document was published");
    let mut published: Vec<(String, String)> = document["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["interface"].as_str().unwrap().to_string(), c["version"].as_str().unwrap().to_string()))
        .collect();
    published.sort();
    let mut loaded: Vec<(String, String)> = device
        .runtime()
        .plugins()
        .slots()
        .iter()
        .map(|s| (s.manifest.interface.clone(), s.manifest.version.clone()))
        .collect();
    loaded.sort();
    assert_eq!(published, loaded);
    let names: Vec<&str> = loaded.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(names, ["Speaker", "SpeechRecognizer", "SpeechSynthesizer", "System"]);
    assert_eq!(document["envelopeVersion"], "20160207");
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recognize_is_answered_with_speak_which_plays_and_reports_start_and_finish() {
    let device = Device::connect(built_plugin_dir()).await;
    device.speak_to_it();
    let recognize = device.sim_event(|e| e.name == "Recognize").await;
    assert!(recognize.audio_bytes > 16_000, "the utterance was streamed ({} bytes)", recognize.audio_bytes);
    assert!(recognize.dialog_request_id.is_some());
    assert!(recognize.json["context"].is_array(), "Recognize carries context");
    let started = device.sim_event(|e| e.name == "SpeechStarted").await;
    let finished = device.sim_event(|e| e.name == "SpeechFinished").await;
    assert_eq!(payload(&started)["token"], payload(&finished)["token"]);
    assert!(payload(&started)["token"].as_str().is_some_and(|t| !t.is_empty()));

    let played: Vec<_> = std::fs::read_dir(device.dir.path().join("played")).unwrap().collect();
    assert_eq!(played.len(), 1, "the Speak attachment was played to the sink");
    assert!(device.sim.violations().is_empty(), "schema violations: {:?}", device.sim.violations());
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_volume_from_the_cloud_changes_the_volume_and_reports_it() {
    let mut device = Device::connect(built_plugin_dir()).await;
    device.sim.push_directive(directive("Speaker", "SetVolume", "v-1", json!({"volume": 25})), vec![]);
    let changed = device.sim_event(|e| e.name == "VolumeChanged").await;
    assert_eq!(payload(&changed)["volume"], 25);
    device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } if name == "SetVolume"))
        .await;
    let context = device.runtime().plugins().context().await;
    let volume = context.iter().find(|c| c["header"]["name"] == "VolumeState").expect("VolumeState in context");
    assert_eq!(volume["payload"]["volume"], 25);
    assert!(device.sim.violations().is_empty(), "schema violations: {:?}", device.sim.violations());
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_invalid_directives_are_answered_with_exception_encountered() {
    let device = Device::connect(built_plugin_dir()).await;
    device.sim.push_directive(directive("Weather", "Forecast", "unknown-1", json!({})), vec![]);
    let unknown = device.sim_event(|e| e.name == "ExceptionEncountered").await;
    assert_eq!(payload(&unknown)["error"]["type"], "UNSUPPORTED_OPERATION");
    assert!(payload(&unknown)["unparsedDirective"].as_str().unwrap().contains("unknown-1"));

    device.sim.push_directive(directive("Speaker", "SetVolume", "bad-1", json!({"volume": 300})), vec![]);
    let invalid = device.sim_event(|e| e.name == "ExceptionEncountered" && e.json.to_string().contains("bad-1")).await;
    assert_eq!(payload(&invalid)["error"]["type"], "UNEXPECTED_INFORMATION_RECEIVED");

    // The runtime keeps serving: a valid directive after the bad ones still works.
    device.sim.push_directive(directive("Speaker", "SetMute", "m-1", json!({"mute": true})), vec![]);
    let muted = device.sim_event(|e| e.name == "MuteChanged").await;
    assert_eq!(payload(&muted)["muted"], true);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_access_token_is_refreshed_after_a_403_and_nothing_is_lost() {
    let mut device = Device::connect(built_plugin_dir()).await;
    device.sim.expire_access_tokens();
    device.sim.push_directive(directive("Speaker", "SetVolume", "v-403", json!({"volume": 61})), vec![]);
    // The VolumeChanged event meets a 403; the runtime refreshes the token, reconnects and resends it.
    device.wait_for(|e| matches!(e, RuntimeEvent::Disconnected { reason } if reason.contains("403"))).await;
    let changed = device.sim_event(|e| e.name == "VolumeChanged" && payload(e)["volume"] == 61).await;
    let resync = device.sim_event(|e| e.name == "SynchronizeState" && e.connection == changed.connection).await;
    assert!(resync.seq_on_connection < changed.seq_on_connection);
    device.stop().await;
}
