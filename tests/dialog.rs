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
            RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } => Some(name),
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
