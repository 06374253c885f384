//! The smaller interfaces against avs-sim, loaded from a device template of the device maker's own (with
//! capability configurations): every directive and the events it causes, schema-checked by avs-sim,
//! state that survives a restart, and the published capability document.

mod common;

use std::path::{Path, PathBuf};

use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::runtime::Runtime;
use avs_sim::{ReceivedEvent, Sim, SimConfig, SimHandle};
use common::{built_plugin_dir, device_config, payload, WAIT};
use serde_json::{json, Value};
use tokio::sync::broadcast;

const TEMPLATE: &str = r#"
description = "a soundbar with an equalizer and inputs"

[[plugin]]
interface = "System"
version = "1.1"
file = "avs_system"

[[plugin]]
interface = "SpeechRecognizer"
version = "2.3"
file = "avs_speech_recognizer"

[[plugin]]
interface = "SpeechSynthesizer"
version = "1.3"
file = "avs_speech_synthesizer"

[[plugin]]
interface = "Speaker"
version = "1.0"
file = "avs_speaker"

[[plugin]]
interface = "Notifications"
version = "1.0"
file = "avs_notifications"

[[plugin]]
interface = "Settings"
version = "1.0"
file = "avs_settings"

[[plugin]]
interface = "PlaybackController"
version = "1.1"
file = "avs_playback_controller"

[[plugin]]
interface = "EqualizerController"
version = "1.0"
file = "avs_equalizer_controller"
configurations = { bands = { supported = [{ name = "BASS" }, { name = "TREBLE" }], range = { minimum = -10, maximum = 10 } }, modes = { supported = [{ name = "MOVIE" }, { name = "MUSIC" }] } }

[[plugin]]
interface = "Alexa.InputController"
version = "3.0"
file = "avs_input_controller"
configurations = { inputs = [{ name = "HDMI 1" }, { name = "AUX 1", friendlyNames = ["record player"] }] }

[[plugin]]
interface = "AudioActivityTracker"
version = "1.0"
file = "avs_audio_activity_tracker"

[[plugin]]
interface = "VisualActivityTracker"
version = "1.0"
file = "avs_visual_activity_tracker"
"#;

struct Soundbar {
    sim: SimHandle,
    config: Config,
    runtime: Option<Runtime>,
    events: broadcast::Receiver<RuntimeEvent>,
    dir: tempfile::TempDir,
}

impl Soundbar {
    async fn start() -> Soundbar {
        let dir = tempfile::tempdir().unwrap();
        let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
        let mut config = device_config(&sim, &dir, built_plugin_dir());
        let template = dir.path().join("soundbar.toml");
        std::fs::write(&template, TEMPLATE).unwrap();
        config.template = template.display().to_string();
        let mut soundbar = Soundbar { sim, config, runtime: None, events: Observer::default().subscribe(), dir };
        soundbar.restart().await;
        soundbar
    }

    /// Starts (again) the runtime on the same data dir, and waits until it is connected.
    async fn restart(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        let (runtime, events) = common::start_connected(self.config.clone()).await;
        (self.runtime, self.events) = (Some(runtime), events);
    }

    fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().unwrap()
    }

    async fn wait_for(&mut self, pred: impl Fn(&RuntimeEvent) -> bool) -> RuntimeEvent {
        common::next_matching(&mut self.events, pred).await
    }

    fn push(&self, namespace: &str, name: &str, message_id: &str, payload: Value) {
        self.sim.push_directive(
            json!({"directive": {"header": {"namespace": namespace, "name": name, "messageId": message_id}, "payload": payload}}),
            vec![],
        );
    }

    async fn handled(&mut self, message_id: &str) -> Result<(), String> {
        let id = message_id.to_string();
        match self
            .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if *message_id == id))
            .await
        {
            RuntimeEvent::DirectiveHandled { outcome, .. } => outcome,
            _ => unreachable!(),
        }
    }

    async fn sim_event(&self, pred: impl Fn(&ReceivedEvent) -> bool) -> ReceivedEvent {
        self.sim.wait_for_event(pred, WAIT).await.expect("event at avs-sim")
    }

    async fn context_of(&self, namespace: &str, name: &str) -> Option<Value> {
        let context = self.runtime().plugins().context().await;
        context
            .into_iter()
            .find(|c| c["header"]["namespace"] == namespace && c["header"]["name"] == name)
            .map(|c| c["payload"].clone())
    }

    async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        assert!(self.sim.violations().is_empty(), "{:?}", self.sim.violations());
        self.sim.shutdown().await;
    }

    fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

fn context_entry<'a>(event: &'a ReceivedEvent, namespace: &str, name: &str) -> Option<&'a Value> {
    event.json["context"]
        .as_array()?
        .iter()
        .find(|c| c["header"]["namespace"] == namespace && c["header"]["name"] == name)
        .map(|c| &c["payload"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_document_lists_exactly_the_templates_interfaces_and_configurations() {
    let soundbar = Soundbar::start().await;
    let document = soundbar.sim.wait_for_capabilities(1, WAIT).await.unwrap();
    let mut published: Vec<String> = document["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c["interface"].as_str().unwrap(), c["version"].as_str().unwrap()))
        .collect();
    published.sort();
    let mut expected: Vec<String> = avs_core::template::DeviceTemplate::resolve(&soundbar.config.template)
        .unwrap()
        .plugins
        .iter()
        .map(|p| format!("{} {}", p.interface, p.version))
        .collect();
    expected.sort();
    assert_eq!(published, expected);
    let equalizer =
        document["capabilities"].as_array().unwrap().iter().find(|c| c["interface"] == "EqualizerController").unwrap();
    assert_eq!(equalizer["configurations"]["bands"]["range"], json!({"minimum": -10, "maximum": 10}));
    let inputs = document["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["interface"] == "Alexa.InputController")
        .unwrap();
    assert_eq!(inputs["configurations"]["inputs"][1]["friendlyNames"], json!(["record player"]));
    soundbar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_reported_on_first_boot_and_not_again_after_a_restart() {
    let mut soundbar = Soundbar::start().await;
    let updated = soundbar.sim_event(|e| e.name == "SettingsUpdated").await;
    assert_eq!(payload(&updated), &json!({"settings": [{"key": "locale", "value": "en-US"}]}));
    soundbar.restart().await;
    soundbar.sim.wait_for_events(|e| e.name == "SynchronizeState", 2, WAIT).await.unwrap();
    soundbar.push("Speaker", "SetVolume", "fence", json!({"volume": 5}));
    soundbar.sim_event(|e| e.name == "VolumeChanged").await;
    let settings = soundbar.sim.events().iter().filter(|e| e.name == "SettingsUpdated").count();
    assert_eq!(settings, 1, "the locale did not change");
    soundbar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_notification_indicator_is_set_cleared_and_survives_a_restart() {
    let mut soundbar = Soundbar::start().await;
    let indicator = json!({"persistVisualIndicator": true, "playAudioIndicator": true,
                           "asset": {"assetId": "chime", "url": "https://example.com/chime.mp3"}});
    soundbar.push("Notifications", "SetIndicator", "set", indicator);
    assert_eq!(soundbar.handled("set").await, Ok(()), "an asset out of reach is no failure of the directive");
    let on = json!({"isEnabled": true, "isVisualIndicatorPersisted": true});
    assert_eq!(soundbar.context_of("Notifications", "IndicatorState").await, Some(on.clone()));

    soundbar.restart().await;
    let sync = soundbar.sim.wait_for_events(|e| e.name == "SynchronizeState", 2, WAIT).await.unwrap();
    assert_eq!(
        context_entry(sync.last().unwrap(), "Notifications", "IndicatorState"),
        Some(&on),
        "reported after the restart"
    );

    soundbar.push("Notifications", "ClearIndicator", "clear", json!({}));
    assert_eq!(soundbar.handled("clear").await, Ok(()));
    let off = json!({"isEnabled": false, "isVisualIndicatorPersisted": false});
    assert_eq!(soundbar.context_of("Notifications", "IndicatorState").await, Some(off));
    soundbar.stop().await;
}

/// One request over the runtime's control socket, as `avs ctl` sends it.
async fn control(data_dir: &Path, request: Value) -> Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::UnixStream::connect(avs_core::control::socket_path(data_dir)).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await.unwrap();
    let line = BufReader::new(read).lines().next_line().await.unwrap().unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buttons_become_playback_commands_with_the_device_context() {
    let soundbar = Soundbar::start().await;
    let press = |kind: &str, payload: Value| json!({"cmd": "user", "kind": kind, "payload": payload});
    for (kind, button, event) in [
        ("user.button", json!({"name": "PLAY"}), "PlayCommandIssued"),
        ("user.button", json!({"name": "NEXT"}), "NextCommandIssued"),
        ("user.button", json!({"name": "SKIPFORWARD"}), "ButtonCommandIssued"),
        ("user.toggle", json!({"name": "SHUFFLE", "action": "SELECT"}), "ToggleCommandIssued"),
    ] {
        let answer = control(soundbar.data_dir(), press(kind, button.clone())).await;
        assert_eq!(answer["ok"], true, "{answer}");
        let sent = soundbar.sim_event(|e| e.name == event).await;
        assert!(sent.json["context"].as_array().is_some_and(|c| !c.is_empty()), "{event} carries the context");
        if event == "ButtonCommandIssued" {
            assert_eq!(payload(&sent), &json!({"name": "SKIPFORWARD"}));
        }
        if event == "ToggleCommandIssued" {
            assert_eq!(payload(&sent), &json!({"name": "SHUFFLE", "action": "SELECT"}));
        }
    }
    let refused = control(soundbar.data_dir(), press("media", json!({"id": 1, "state": "finished"}))).await;
    assert_eq!(refused["ok"], false, "only user input goes over the control socket: {refused}");
    soundbar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn equalizer_directives_answer_with_the_new_state_within_the_configured_range() {
    let mut soundbar = Soundbar::start().await;
    let changed = |soundbar: &Soundbar, n: usize| {
        let sim = soundbar.sim.clone();
        async move {
            let events = sim.wait_for_events(|e| e.name == "EqualizerChanged", n, WAIT).await.unwrap();
            payload(events.last().unwrap()).clone()
        }
    };
    soundbar.push("EqualizerController", "SetBands", "set", json!({"bands": [{"name": "BASS", "level": 12}]}));
    let state = changed(&soundbar, 1).await;
    assert_eq!(
        state["bands"],
        json!([{"name": "BASS", "level": 10}, {"name": "TREBLE", "level": 0}]),
        "clamped to the template's range"
    );
    soundbar.push(
        "EqualizerController",
        "AdjustBands",
        "adjust",
        json!({"bands": [{"name": "TREBLE", "levelDelta": 3, "levelDirection": "DOWN"}]}),
    );
    assert_eq!(changed(&soundbar, 2).await["bands"][1], json!({"name": "TREBLE", "level": -3}));
    soundbar.push("EqualizerController", "ResetBands", "reset", json!({"bands": [{"name": "BASS"}]}));
    assert_eq!(changed(&soundbar, 3).await["bands"][0], json!({"name": "BASS", "level": 0}));
    soundbar.push("EqualizerController", "SetMode", "mode", json!({"mode": "MOVIE"}));
    assert_eq!(changed(&soundbar, 4).await["mode"], "MOVIE");
    soundbar.push("EqualizerController", "SetMode", "no-such-mode", json!({"mode": "NIGHT"}));
    assert!(soundbar.handled("no-such-mode").await.is_err(), "NIGHT is not in the template's modes");
    let exception = soundbar.sim_event(|e| e.name == "ExceptionEncountered").await;
    assert!(payload(&exception)["unparsedDirective"].as_str().unwrap().contains("no-such-mode"));
    let context = soundbar.context_of("EqualizerController", "EqualizerState").await.unwrap();
    assert_eq!(context["mode"], "MOVIE");
    soundbar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn select_input_takes_only_the_configured_inputs() {
    let mut soundbar = Soundbar::start().await;
    soundbar.push("Alexa.InputController", "SelectInput", "aux", json!({"input": "AUX 1"}));
    assert_eq!(soundbar.handled("aux").await, Ok(()));
    soundbar.push("Alexa.InputController", "SelectInput", "tape", json!({"input": "TAPE"}));
    assert!(soundbar.handled("tape").await.is_err());
    let exception = soundbar.sim_event(|e| e.name == "ExceptionEncountered").await;
    assert_eq!(payload(&exception)["error"]["type"], "UNEXPECTED_INFORMATION_RECEIVED");
    soundbar.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_activity_reports_the_dialog_that_last_used_the_speaker() {
    let mut soundbar = Soundbar::start().await;
    let sync = soundbar.sim_event(|e| e.name == "SynchronizeState").await;
    assert_eq!(context_entry(&sync, "AudioActivityTracker", "ActivityState"), None, "no channel used yet");
    let utterance: PathBuf = soundbar.dir.path().join("utterance.wav");
    std::fs::write(&utterance, include_bytes!("../assets/utterance.wav")).unwrap();
    soundbar.runtime().user_event("user.recognize", &json!({"profile": "CLOSE_TALK", "audio": {"file": utterance}}));
    soundbar.sim_event(|e| e.name == "SpeechFinished").await;
    soundbar.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, .. } if name == "Speak")).await;
    soundbar.runtime().user_event("user.button", &json!({"name": "PAUSE"}));
    let paused = soundbar.sim_event(|e| e.name == "PauseCommandIssued").await;
    let activity =
        context_entry(&paused, "AudioActivityTracker", "ActivityState").expect("the dialog channel was used");
    assert_eq!(activity["dialog"]["interface"], "SpeechSynthesizer", "{activity}");
    assert!(activity.get("content").is_none(), "content was never used: {activity}");
    assert_eq!(context_entry(&paused, "VisualActivityTracker", "ActivityState"), None, "nothing is on a screen");
    soundbar.stop().await;
}
