//! TemplateRuntime against avs-sim: every template type and the now-playing card reach the device's screen
//! as readable text (and as JSON on the control socket), a newer card replaces the older, a card goes a
//! fixed time after its channel is idle, and a template the device cannot know is refused without harm.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use avs_core::config::Config;
use avs_core::observe::RuntimeEvent;
use common::{built_plugin_dir, payload, test_options, Device};
use serde_json::{json, Value};

fn with_display(config: &mut Config) {
    config.plugins = [
        "avs_system",
        "avs_speech_recognizer",
        "avs_speech_synthesizer",
        "avs_speaker",
        "avs_template_runtime",
        "avs_visual_activity_tracker",
    ]
    .map(String::from)
    .to_vec();
}

/// The payload of one of the schema's valid examples.
fn example(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/TemplateRuntime/1.2/examples/valid").join(file);
    let example: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    example["directive"]["payload"].clone()
}

/// A TemplateRuntime directive outside any dialog (handled at once).
fn push(device: &Device, name: &str, message_id: &str, payload: Value) {
    let header = json!({"namespace": "TemplateRuntime", "name": name, "messageId": message_id});
    device.sim.push_directive(json!({"directive": {"header": header, "payload": payload}}), vec![]);
}

async fn shown(device: &mut Device, expected: &str) -> (String, Value) {
    match device.wait_for(|e| matches!(e, RuntimeEvent::CardShown { token, .. } if token == expected)).await {
        RuntimeEvent::CardShown { text, card, .. } => (text, card),
        _ => unreachable!(),
    }
}

/// `{"cmd":"display"}` on the runtime's control socket.
async fn display(device: &Device) -> Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let socket = avs_core::control::socket_path(&device.dir.path().join("device"));
    let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(b"{\"cmd\":\"display\"}\n").await.unwrap();
    let line = BufReader::new(read).lines().next_line().await.unwrap().unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_is_shown_readably_replaced_by_the_next_and_cleared_after_the_timeout() {
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_display).await;
    for (file, token, line) in [
        ("RenderTemplate.json", "card-body-1", "│ Who is Usain Bolt?"),
        ("RenderTemplate-body-with-image.json", "card-body-2", "│ [image: Mount Everest at dawn]"),
        ("RenderTemplate-list.json", "card-list-1", "│ 3.  Coffee beans"),
        ("RenderTemplate-weather.json", "card-weather-1", "│ Wed Jun 13  71° / 54°"),
    ] {
        push(&device, "RenderTemplate", &format!("render-{token}"), example(file));
        let (text, card) = shown(&mut device, token).await;
        assert!(text.lines().any(|l| l.starts_with(line)), "{token}:\n{text}");
        assert_eq!(card["name"], "RenderTemplate");
        assert_eq!(card["payload"]["token"], token);
    }
    let since = Instant::now();

    let answer = display(&device).await;
    assert_eq!(answer["ok"], true, "{answer}");
    assert_eq!(answer["token"], "card-weather-1", "the newest card is on screen: {answer}");
    assert_eq!(answer["card"]["payload"]["type"], "WeatherTemplate");
    assert!(answer["text"].as_str().unwrap().contains("Now 64° · Partly cloudy"), "{answer}");

    // No dialog speaks: the card goes the SDK's 2 s after it was shown, and only it is cleared.
    let cleared = device.wait_for(|e| matches!(e, RuntimeEvent::CardCleared { .. })).await;
    assert!(matches!(&cleared, RuntimeEvent::CardCleared { token } if token == "card-weather-1"), "{cleared:?}");
    assert!(since.elapsed() >= Duration::from_millis(1_500), "cleared after {:?}", since.elapsed());
    assert_eq!(display(&device).await["card"], Value::Null);

    // A template this version does not know is refused, and the screen keeps working.
    let mut unknown = example("RenderTemplate.json");
    unknown["type"] = json!("BodyTemplate9");
    push(&device, "RenderTemplate", "render-unknown", unknown);
    let exception =
        device.sim_event(|e| e.name == "ExceptionEncountered" && e.json.to_string().contains("render-unknown")).await;
    assert_eq!(payload(&exception)["error"]["type"], "UNEXPECTED_INFORMATION_RECEIVED");
    push(&device, "RenderTemplate", "render-again", example("RenderTemplate-list.json"));
    shown(&mut device, "card-list-1").await;

    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_now_playing_card_shows_the_item_and_its_controls_and_a_newer_item_replaces_it() {
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_display).await;
    push(&device, "RenderPlayerInfo", "player-1", example("RenderPlayerInfo.json"));
    let (text, card) = shown(&mut device, "item-1").await;
    for line in ["│ Now playing · Example Music", "│ Float On", "│ Modest Mouse", "│ Length 3:28"] {
        assert!(text.lines().any(|l| l.starts_with(line)), "{line}:\n{text}");
    }
    assert!(text.contains("[Previous: disabled]") && text.contains("[Shuffle: on]"), "{text}");
    assert_eq!(card["name"], "RenderPlayerInfo");

    push(&device, "RenderPlayerInfo", "player-2", example("RenderPlayerInfo-minimal.json"));
    let (text, _) = shown(&mut device, "item-2").await;
    assert!(text.contains("Morning News") && !text.contains("Float On"), "{text}");
    assert_eq!(display(&device).await["token"], "item-2");

    // Nothing plays on the Content channel: the card goes after the timeout.
    let cleared = device.wait_for(|e| matches!(e, RuntimeEvent::CardCleared { .. })).await;
    assert!(matches!(&cleared, RuntimeEvent::CardCleared { token } if token == "item-2"), "{cleared:?}");
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.stop().await;
}
