//! The minimal template's interfaces (System, Speaker, SpeechRecognizer, SpeechSynthesizer) against
//! avs-sim: every directive, the events it causes, and nothing else. The runtime checks each directive
//! against its plugin's schema before a plugin sees it (a failure is an ExceptionEncountered); avs-sim
//! checks every event against the schemas of the declared versions (a failure is a violation).

mod common;

use std::io::Write;

use avs_core::observe::RuntimeEvent;
use avs_sim::ReceivedEvent;
use bytes::Bytes;
use common::{built_plugin_dir, payload, Device, WAIT};
use serde_json::{json, Value};

const SPEAK_MP3: &[u8] = include_bytes!("../sim/assets/speak.mp3");

/// The capture's chunk: 100 ms of 16 kHz, 16-bit mono PCM.
const CHUNK: usize = 3_200;

/// What Linux holds in a pipe by default before a writer blocks.
const PIPE_CAPACITY: usize = 65_536;

fn directive(namespace: &str, name: &str, message_id: &str, payload: Value) -> Value {
    json!({"directive": {"header": {"namespace": namespace, "name": name, "messageId": message_id}, "payload": payload}})
}

/// A cloud-initiated Speak (no dialogRequestId, so it is handled at once, beside any other) of `copies`
/// × speak.mp3 (2664 ms each), with its attachment.
fn speak(token: &str, play_behavior: Option<&str>, copies: usize) -> (Value, Vec<(String, Bytes)>) {
    let content_id = format!("speech-{token}");
    let mut body = json!({"url": format!("cid:{content_id}"), "format": "AUDIO_MPEG", "token": token});
    if let Some(behavior) = play_behavior {
        body["playBehavior"] = json!(behavior);
    }
    let directive = directive("SpeechSynthesizer", "Speak", &format!("speak-{token}"), body);
    (directive, vec![(content_id, Bytes::from(SPEAK_MP3.repeat(copies)))])
}

fn push_speak(device: &Device, token: &str, play_behavior: Option<&str>, copies: usize) {
    let (directive, attachments) = speak(token, play_behavior, copies);
    device.sim.push_directive(directive, attachments);
}

/// `namespace`'s events AVS received so far, with their payloads, in the order received.
fn heard(device: &Device, namespace: &str) -> Vec<(String, Value)> {
    let events = device.sim.events();
    events.iter().filter(|e| e.namespace == namespace).map(|e| (e.name.clone(), payload(e).clone())).collect()
}

fn event(name: &str, payload: Value) -> (String, Value) {
    (name.to_string(), payload)
}

fn exceptions(device: &Device) -> Vec<ReceivedEvent> {
    device.sim.events().into_iter().filter(|e| e.name == "ExceptionEncountered").collect()
}

/// How the directives `message_ids` ended, in that order. Directives without a dialogRequestId are
/// handled beside each other, so their outcomes may be reported in any order.
async fn outcomes(device: &mut Device, message_ids: &[&str]) -> Vec<Result<(), String>> {
    let mut outcomes: Vec<Option<Result<(), String>>> = vec![None; message_ids.len()];
    while outcomes.iter().any(Option::is_none) {
        let wanted = |e: &RuntimeEvent| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if message_ids.contains(&message_id.as_str()));
        if let RuntimeEvent::DirectiveHandled { message_id, outcome, .. } = device.wait_for(wanted).await {
            let at = message_ids.iter().position(|id| *id == message_id).unwrap();
            outcomes[at] = Some(outcome);
        }
    }
    outcomes.into_iter().flatten().collect()
}

async fn handled(device: &mut Device, message_id: &str) -> Result<(), String> {
    outcomes(device, &[message_id]).await.remove(0)
}

async fn context_of(device: &Device, namespace: &str, name: &str) -> Option<Value> {
    let context = device.runtime().plugins().context().await;
    context
        .into_iter()
        .find(|c| c["header"]["namespace"] == namespace && c["header"]["name"] == name)
        .map(|c| c["payload"].clone())
}

fn assert_schema_clean(device: &Device) {
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speaker_set_adjust_and_mute_each_confirm_the_whole_volume_state() {
    let mut device = Device::connect(built_plugin_dir()).await;
    let steps = [
        ("set", "SetVolume", json!({"volume": 40})),
        ("mute", "SetMute", json!({"mute": true})),
        ("up", "AdjustVolume", json!({"volume": 15})),
        ("down", "AdjustVolume", json!({"volume": -100})),
    ];
    for (message_id, name, body) in &steps {
        device.sim.push_directive(directive("Speaker", name, message_id, body.clone()), vec![]);
    }
    let message_ids: Vec<&str> = steps.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(outcomes(&mut device, &message_ids).await, vec![Ok(()); steps.len()]);
    device.sim.wait_for_events(|e| e.namespace == "Speaker", steps.len(), WAIT).await.unwrap();
    assert_eq!(
        heard(&device, "Speaker"),
        [
            event("VolumeChanged", json!({"volume": 40, "muted": false})),
            event("MuteChanged", json!({"volume": 40, "muted": true})),
            // A volume change unmutes, as the AVS Device SDK's SpeakerManager does.
            event("VolumeChanged", json!({"volume": 55, "muted": false})),
            event("VolumeChanged", json!({"volume": 0, "muted": false})),
        ],
        "clamped at 0"
    );
    assert_eq!(context_of(&device, "Speaker", "VolumeState").await, Some(json!({"volume": 0, "muted": false})));
    assert!(exceptions(&device).is_empty());
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_recognizer_settings_are_confirmed_and_an_unsupported_wake_word_is_refused() {
    let mut device = Device::connect(built_plugin_dir()).await;
    let steps = [
        (
            "eos",
            "SetEndOfSpeechOffset",
            json!({"endOfSpeechOffsetInMilliseconds": 1200, "startOfSpeechTimestamp": "1700000000000"}),
        ),
        ("speech", "SetSpeechConfirmation", json!({"speechConfirmation": "TONE"})),
        ("wake-word", "SetWakeWordConfirmation", json!({"wakeWordConfirmation": "TONE"})),
        ("alexa", "SetWakeWords", json!({"wakeWords": ["ALEXA"]})),
        ("computer", "SetWakeWords", json!({"wakeWords": ["ALEXA", "COMPUTER"]})),
    ];
    for (message_id, name, body) in &steps {
        device.sim.push_directive(directive("SpeechRecognizer", name, message_id, body.clone()), vec![]);
    }
    let message_ids: Vec<&str> = steps.iter().map(|(id, _, _)| *id).collect();
    let mut handled = outcomes(&mut device, &message_ids).await;
    let refused = handled.pop().unwrap().expect_err("this device only detects ALEXA");
    assert_eq!(handled, vec![Ok(()); 4]);
    assert!(refused.contains("COMPUTER"), "{refused}");

    device.sim.wait_for_events(|e| e.namespace == "SpeechRecognizer", 4, WAIT).await.unwrap();
    let exception = device.sim_event(|e| e.name == "ExceptionEncountered").await;
    assert_eq!(payload(&exception)["error"]["type"], "UNSUPPORTED_OPERATION");
    assert!(payload(&exception)["unparsedDirective"].as_str().unwrap().contains("computer"));
    assert_eq!(
        heard(&device, "SpeechRecognizer"),
        [
            // SetEndOfSpeechOffset is metrics: nothing to confirm.
            event("SpeechConfirmationChanged", json!({"speechConfirmation": "TONE"})),
            event("WakeWordConfirmationChanged", json!({"wakeWordConfirmation": "TONE"})),
            event("WakeWordsChanged", json!({"wakeWords": ["ALEXA"]})),
            // The refusal tells AVS which wake words are still active.
            event("WakeWordsReport", json!({"wakeWords": ["ALEXA"]})),
        ]
    );
    assert_eq!(exceptions(&device).len(), 1);
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_capture_ends_a_near_field_recognize_that_would_stream_on() {
    let mut device = Device::connect(built_plugin_dir()).await;
    // A microphone that never runs dry: a FIFO whose writer stays open, so only StopCapture can end the
    // capture.
    let microphone = device.dir.path().join("microphone.pcm");
    let made = std::process::Command::new("mkfifo").arg(&microphone).status().expect("mkfifo");
    assert!(made.success());
    // More than the pipe holds: once written, all but PIPE_CAPACITY bytes were captured.
    let spoken = 32 * CHUNK;
    let (opened, speaking) = tokio::sync::oneshot::channel();
    let path = microphone.clone();
    // A thread of its own: opening a FIFO blocks until the other end is opened too.
    std::thread::spawn(move || {
        let mut fifo = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        fifo.write_all(&vec![0u8; spoken]).unwrap();
        let _ = opened.send(fifo);
    });
    device.runtime().user_event("user.recognize", &json!({"profile": "NEAR_FIELD", "audio": {"raw": microphone}}));
    let fifo = tokio::time::timeout(WAIT, speaking).await.expect("the capture reads the microphone").unwrap();

    device.sim.push_directive(directive("SpeechRecognizer", "StopCapture", "stop", json!({})), vec![]);
    assert_eq!(handled(&mut device, "stop").await, Ok(()));
    let recognize = device.sim_event(|e| e.name == "Recognize").await;
    assert_eq!(payload(&recognize)["profile"], "NEAR_FIELD");
    assert!(recognize.dialog_request_id.is_some());
    let captured = (spoken - PIPE_CAPACITY) / CHUNK * CHUNK;
    assert!(
        (captured..=spoken).contains(&recognize.audio_bytes),
        "{} bytes streamed before StopCapture, {captured}..={spoken} expected",
        recognize.audio_bytes
    );
    // The Recognize ended while the microphone was still open, and the dialog went on: AVS's answer plays.
    device.sim_event(|e| e.name == "SpeechFinished").await;
    device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } if name == "Speak"))
        .await;
    drop(fifo);
    assert!(exceptions(&device).is_empty());
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_directives_for_the_plugin_reset_inactivity_and_report_the_software() {
    let mut device = Device::connect(built_plugin_dir()).await;
    device.sim.push_directive(directive("System", "ResetUserInactivity", "reset", json!({})), vec![]);
    device.sim.push_directive(directive("System", "ReportSoftwareInfo", "info", json!({})), vec![]);
    assert_eq!(outcomes(&mut device, &["reset", "info"]).await, [Ok(()), Ok(())]);
    let info = device.sim_event(|e| e.name == "SoftwareInfo").await;
    assert_eq!(payload(&info), &json!({"firmwareVersion": "1"}), "the configured firmware version");
    let system: Vec<(String, Value)> =
        heard(&device, "System").into_iter().filter(|(name, _)| name != "SynchronizeState").collect();
    assert_eq!(
        system,
        [event("SoftwareInfo", json!({"firmwareVersion": "1"}))],
        "ResetUserInactivity is answered by nothing"
    );
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_endpoint_moves_the_device_to_the_new_gateway_and_remembers_it() {
    let mut device = Device::connect(built_plugin_dir()).await;
    let port = device.sim.addr().port();
    let set_endpoint = |id: &str, url: String| directive("System", "SetEndpoint", id, json!({ "endpoint": url }));
    // The gateway it is on already: nothing to do. Not https, or no endpoint at all: refused.
    device.sim.push_directive(set_endpoint("same", device.sim.base_url()), vec![]);
    device.sim.push_directive(set_endpoint("plain", format!("http://127.0.0.1:{port}")), vec![]);
    device.sim.push_directive(directive("System", "SetEndpoint", "no-endpoint", json!({})), vec![]);
    device.sim.push_directive(directive("Speaker", "SetVolume", "fence", json!({"volume": 33})), vec![]);
    assert_eq!(handled(&mut device, "fence").await, Ok(()));
    device.sim.wait_for_events(|e| e.name == "ExceptionEncountered", 2, WAIT).await.unwrap();
    let refused: Vec<String> = exceptions(&device)
        .iter()
        .map(|e| {
            assert_eq!(payload(e)["error"]["type"], "UNEXPECTED_INFORMATION_RECEIVED");
            payload(e)["unparsedDirective"].as_str().unwrap().to_string()
        })
        .collect();
    assert!(refused.iter().any(|d| d.contains("\"plain\"")) && refused.iter().any(|d| d.contains("no-endpoint")));
    assert_eq!(refused.len(), 2, "the SetEndpoint to where it is already is no error");
    assert_eq!(device.sim.downchannel_count(), 1, "and no reason to reconnect");

    // Another gateway (the same avs-sim by its address): the device reconnects there, SynchronizeState first.
    let moved = format!("https://127.0.0.1:{port}");
    device.sim.push_directive(set_endpoint("moved", moved.clone()), vec![]);
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { connection: 2 })).await;
    let synced = device.sim.wait_for_events(|e| e.name == "SynchronizeState", 2, WAIT).await.unwrap();
    assert_eq!(synced[1].seq_on_connection, 0);
    assert_ne!(synced[1].connection, synced[0].connection);
    device.sim.push_directive(directive("Speaker", "SetVolume", "after", json!({"volume": 44})), vec![]);
    assert_eq!(handled(&mut device, "after").await, Ok(()));
    // Remembered for the next start.
    let storage = avs_core::storage::Storage::open(&device.dir.path().join("device/avs.db")).unwrap();
    assert_eq!(storage.get("avs-core", "endpoint").unwrap(), Some(moved));
    assert_schema_clean(&device);
    device.stop().await;
}

/// The refresh token the device stores: a new one means the device was linked anew.
fn stored_refresh_token(device: &Device) -> String {
    let path = device.dir.path().join("device/tokens.json");
    let tokens: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    tokens["refresh_token"].as_str().expect("a refresh token").to_string()
}

fn linking_code(event: RuntimeEvent) -> String {
    match event {
        RuntimeEvent::LinkingCode { user_code, .. } => user_code,
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_authorization_forgets_the_tokens_links_again_and_reconnects_with_synchronize_state_first() {
    let mut device = Device::launch(built_plugin_dir()).await;
    let first_code = linking_code(device.wait_for(|e| matches!(e, RuntimeEvent::LinkingCode { .. })).await);
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;
    let first_sync = device.sim_event(|e| e.name == "SynchronizeState").await;
    let first_refresh_token = stored_refresh_token(&device);

    device.sim.push_directive(directive("System", "RevokeAuthorization", "revoke", json!({})), vec![]);
    let second_code = linking_code(device.wait_for(|e| matches!(e, RuntimeEvent::LinkingCode { .. })).await);
    assert_ne!(first_code, second_code, "a new code pair");
    device.wait_for(|e| matches!(e, RuntimeEvent::Linked)).await;
    assert!(stored_refresh_token(&device) != first_refresh_token, "new tokens");
    // The capabilities are published for the newly linked account too.
    device.wait_for(|e| matches!(e, RuntimeEvent::CapabilitiesPublished { .. })).await;
    assert_eq!(device.sim.capability_documents().len(), 2);
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;

    let second_sync = device.sim_event(|e| e.name == "SynchronizeState" && e.connection != first_sync.connection).await;
    assert_eq!(second_sync.seq_on_connection, 0, "SynchronizeState opens the new connection");
    device.sim.push_directive(directive("Speaker", "SetVolume", "after", json!({"volume": 12})), vec![]);
    let changed = device.sim_event(|e| e.name == "VolumeChanged").await;
    assert_eq!(changed.connection, second_sync.connection, "served on the new connection");
    assert!(exceptions(&device).is_empty(), "RevokeAuthorization is the core's, never an error");
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_enqueue_waits_for_the_current_speech_and_replace_enqueued_drops_the_queue() {
    let device = Device::connect(built_plugin_dir()).await;
    // All four reach the plugin in this order before the first (32 s of speech) has ended.
    push_speak(&device, "first", None, 12);
    push_speak(&device, "dropped-1", Some("ENQUEUE"), 1);
    push_speak(&device, "dropped-2", Some("ENQUEUE"), 1);
    push_speak(&device, "next", Some("REPLACE_ENQUEUED"), 1);
    device.sim_event(|e| e.name == "SpeechFinished" && payload(e)["token"] == "next").await;
    assert_eq!(
        heard(&device, "SpeechSynthesizer"),
        [
            event("SpeechStarted", json!({"token": "first"})),
            event("SpeechFinished", json!({"token": "first"})),
            event("SpeechStarted", json!({"token": "next"})),
            event("SpeechFinished", json!({"token": "next"})),
        ],
        "the enqueued speech was replaced before it started, and the current one was not cut"
    );
    let state = context_of(&device, "SpeechSynthesizer", "SpeechState").await;
    assert_eq!(state, Some(json!({"token": "next", "offsetInMilliseconds": 0, "playerActivity": "FINISHED"})));
    assert!(exceptions(&device).is_empty(), "dropped Speaks are completed, not failed");
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speak_replace_all_interrupts_the_current_speech_and_drops_the_queue() {
    let device = Device::connect(built_plugin_dir()).await;
    // 64 s of speech, 8 s at the tests' playback speed: still playing when the others arrive.
    push_speak(&device, "long", Some("REPLACE_ALL"), 24);
    device.sim_event(|e| e.name == "SpeechStarted" && payload(e)["token"] == "long").await;
    push_speak(&device, "queued", Some("ENQUEUE"), 1);
    push_speak(&device, "urgent", Some("REPLACE_ALL"), 1);
    device.sim_event(|e| e.name == "SpeechFinished" && payload(e)["token"] == "urgent").await;

    let interrupted = device.sim_event(|e| e.name == "SpeechInterrupted").await;
    let offset = payload(&interrupted)["offsetInMilliseconds"].as_u64().expect("an offset");
    assert!(offset < 64_000, "{offset} ms into the speech");
    assert_eq!(
        heard(&device, "SpeechSynthesizer"),
        [
            event("SpeechStarted", json!({"token": "long"})),
            event("SpeechInterrupted", json!({"token": "long", "offsetInMilliseconds": offset})),
            event("SpeechStarted", json!({"token": "urgent"})),
            event("SpeechFinished", json!({"token": "urgent"})),
        ],
        "the queued speech never started"
    );
    let state = context_of(&device, "SpeechSynthesizer", "SpeechState").await;
    assert_eq!(state, Some(json!({"token": "urgent", "offsetInMilliseconds": 0, "playerActivity": "FINISHED"})));
    assert!(exceptions(&device).is_empty());
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speak_outside_any_dialog_is_reported_handled_when_it_has_finished() {
    let mut device = Device::connect(built_plugin_dir()).await;
    push_speak(&device, "solo", None, 2);
    let mut finished_first = false;
    loop {
        let event = tokio::time::timeout(WAIT, device.events.recv()).await.expect("in time").unwrap();
        match event {
            RuntimeEvent::EventQueued { name, .. } if name == "SpeechFinished" => finished_first = true,
            RuntimeEvent::DirectiveHandled { message_id, outcome, .. } if message_id == "speak-solo" => {
                assert_eq!(outcome, Ok(()));
                break;
            }
            _ => {}
        }
    }
    assert!(finished_first, "reported handled only once the speech finished, not when the plugin took it");
    assert_schema_clean(&device);
    device.stop().await;
}
