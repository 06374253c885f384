//! Dialog sequencing through the real sequencer and plugins: a blocking Speak holds the ExpectSpeech
//! after it; a new Recognize (barge-in) interrupts the speech of the old dialog.

mod common;

use std::time::Duration;

use avs_core::observe::RuntimeEvent;
use avs_core::runtime::RuntimeOptions;
use common::{built_plugin_dir, payload, Device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_speech_waits_for_the_speak_before_it_then_times_out() {
    let sim = |c: &mut avs_sim::SimConfig| {
        c.expect_speech_after_speak = true;
        c.expect_speech_timeout = Duration::from_millis(300);
    };
    let mut device = Device::connect_with(built_plugin_dir(), sim, common::test_options(), |_| {}).await;
    device.speak_to_it();
    let finished = device.sim_event(|e| e.name == "SpeechFinished").await;
    let timed_out = device.sim_event(|e| e.name == "ExpectSpeechTimedOut").await;
    // ExpectSpeech only started (and its 300 ms timer with it) once Speak had completed.
    let handled: Vec<String> = std::iter::from_fn(|| device.events.try_recv().ok())
        .filter_map(|e| match e {
            RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } => Some(name.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(handled, ["Speak", "ExpectSpeech"], "Speak completes before ExpectSpeech is handled");
    assert!(timed_out.seq_on_connection > finished.seq_on_connection);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_recognize_interrupts_the_speech_of_the_previous_dialog() {
    // Real-time playback: the answer lasts about 2.7 s, plenty of time to barge in.
    let options = RuntimeOptions { playback_speed: 1.0, ..common::test_options() };
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, options, |_| {}).await;
    device.speak_to_it();
    let first = device.sim_event(|e| e.name == "Recognize").await;
    let started = device.sim_event(|e| e.name == "SpeechStarted").await;
    device.speak_to_it();
    let interrupted = device.sim_event(|e| e.name == "SpeechInterrupted").await;
    assert_eq!(payload(&interrupted)["token"], payload(&started)["token"]);
    assert!(payload(&interrupted)["offsetInMilliseconds"].as_u64().unwrap() < 2_000);
    let second = device.sim_event(|e| e.name == "Recognize" && e.dialog_request_id != first.dialog_request_id).await;
    assert!(second.dialog_request_id.is_some());
    // The old Speak was cancelled, never finished; the new dialog's Speak plays to the end.
    device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Err(why), .. } if name == "Speak" && why.contains("new dialog"))).await;
    let finished = device.sim_event(|e| e.name == "SpeechFinished").await;
    assert_ne!(payload(&finished)["token"], payload(&started)["token"]);
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_directives_makes_the_downchannel_wait_instead_of_queueing_without_bound() {
    // Real-time playback: the answer lasts about 2.7 s, and the flood waits behind it in its dialog.
    let options = RuntimeOptions { playback_speed: 1.0, ..common::test_options() };
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, options, |_| {}).await;
    device.speak_to_it();
    let started = device.sim_event(|e| e.name == "SpeechStarted").await;
    let dialog = started.dialog_request_id.clone().or_else(|| {
        let recognize = device.sim.events().into_iter().find(|e| e.name == "Recognize")?;
        recognize.dialog_request_id
    });
    let dialog = dialog.expect("the dialog of the answer");
    // More directives than the runtime holds at once, all queued behind the Speak of their dialog...
    for n in 0..1100 {
        let header = serde_json::json!({"namespace": "Speaker", "name": "SetVolume", "messageId": format!("flood-{n}"), "dialogRequestId": dialog});
        device.sim.push_directive(
            serde_json::json!({"directive": {"header": header, "payload": {"volume": n % 100}}}),
            vec![],
        );
    }
    // ...then one outside any dialog, which would run at once if the reader had read on.
    let probe = serde_json::json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "probe"}, "payload": {"volume": 7}}});
    device.sim.push_directive(probe, vec![]);
    let mut speech_finished = false;
    loop {
        let event = tokio::time::timeout(common::WAIT, device.events.recv()).await.expect("in time").unwrap();
        match event {
            RuntimeEvent::EventQueued { name, .. } if name == "SpeechFinished" => speech_finished = true,
            RuntimeEvent::DirectiveHandled { message_id, .. } if message_id == "probe" => break,
            _ => {}
        }
    }
    assert!(speech_finished, "the probe was read only once the Speak had finished and freed the dialog's hold");
    device.stop().await;
}
