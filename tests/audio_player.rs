//! AudioPlayer 1.4 against avs-sim: a queue played through with its progress reports, Stop and
//! ClearQueue, a song the music service does not have, and music paused by a dialog and resumed after it.

mod common;

use avs_core::config::Config;
use avs_sim::ReceivedEvent;
use bytes::Bytes;
use common::{built_plugin_dir, payload, test_options, Device};
use serde_json::{json, Value};

const SPEAK_MP3: &[u8] = include_bytes!("../sim/assets/speak.mp3");
/// speak.mp3 plays 2664 ms (48 kbps CBR); copies of it make longer songs.
const COPY_MS: u64 = 2_664;

fn with_audio_player(config: &mut Config) {
    config.plugins =
        ["avs_system", "avs_speech_recognizer", "avs_speech_synthesizer", "avs_speaker", "avs_audio_player"]
            .map(String::from)
            .to_vec();
}

/// A song of `copies` × speak.mp3, as the attachment part of a Play.
fn song(content_id: &str, copies: usize) -> (String, Bytes) {
    (content_id.to_string(), Bytes::from(SPEAK_MP3.repeat(copies)))
}

fn play(behavior: &str, token: &str, url: &str, stream: Value) -> Value {
    let mut full = json!({"url": url, "token": token, "offsetInMilliseconds": 0});
    for (key, value) in stream.as_object().cloned().unwrap_or_default() {
        full[key] = value;
    }
    directive(
        "Play",
        &format!("play-{token}"),
        json!({"playBehavior": behavior, "audioItem": {"audioItemId": token, "stream": full}}),
    )
}

fn directive(name: &str, message_id: &str, payload: Value) -> Value {
    json!({"directive": {"header": {"namespace": "AudioPlayer", "name": name, "messageId": message_id}, "payload": payload}})
}

fn is(name: &'static str, token: &'static str) -> impl Fn(&ReceivedEvent) -> bool {
    move |e| e.namespace == "AudioPlayer" && e.name == name && payload(e)["token"] == token
}

/// The AudioPlayer events AVS received about `token`, by name, in order.
fn heard(device: &Device, token: &str) -> Vec<String> {
    device
        .sim
        .events()
        .iter()
        .filter(|e| e.namespace == "AudioPlayer" && payload(e)["token"] == token)
        .map(|e| e.name.clone())
        .collect()
}

fn assert_schema_clean(device: &Device) {
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_plays_through_with_its_progress_reports_and_stop_and_clear_queue_are_answered() {
    let device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_audio_player).await;
    // 4 copies: 10656 ms of playback; marks at 2000 (delay) and 3000, 6000, 9000 (interval).
    let report = json!({"progressReport": {"progressReportDelayInMilliseconds": 2000, "progressReportIntervalInMilliseconds": 3000}});
    device.sim.push_directive(play("REPLACE_ALL", "song-1", "cid:song-1", report), vec![song("song-1", 4)]);
    device.sim_event(is("PlaybackStarted", "song-1")).await;
    let next = json!({"expectedPreviousToken": "song-1"});
    device.sim.push_directive(play("ENQUEUE", "song-2", "cid:song-2", next), vec![song("song-2", 24)]);
    device.sim_event(is("PlaybackFinished", "song-1")).await;
    let song_1 = [
        "PlaybackStarted",
        "PlaybackNearlyFinished",
        "ProgressReportDelayElapsed",
        "ProgressReportIntervalElapsed",
        "ProgressReportIntervalElapsed",
        "ProgressReportIntervalElapsed",
        "PlaybackFinished",
    ];
    assert_eq!(heard(&device, "song-1"), song_1, "each once per item, in the order they happened");
    let offsets: Vec<u64> = device
        .sim
        .events()
        .iter()
        .filter(|e| e.name.starts_with("ProgressReport"))
        .map(|e| payload(e)["offsetInMilliseconds"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [2000, 3000, 6000, 9000], "measured in playback offset");

    // The enqueued song follows; Stop ends it where it is.
    device.sim_event(is("PlaybackStarted", "song-2")).await;
    device.sim.push_directive(directive("Stop", "stop-1", json!({})), vec![]);
    let stopped = device.sim_event(is("PlaybackStopped", "song-2")).await;
    let at = payload(&stopped)["offsetInMilliseconds"].as_u64().unwrap();
    assert!(at < 24 * COPY_MS, "stopped at {at} ms, before its end");
    device.sim.push_directive(directive("ClearQueue", "clear-1", json!({"clearBehavior": "CLEAR_ALL"})), vec![]);
    device.sim_event(|e| e.namespace == "AudioPlayer" && e.name == "PlaybackQueueCleared").await;
    assert_eq!(heard(&device, "song-2"), ["PlaybackStarted", "PlaybackNearlyFinished", "PlaybackStopped"]);
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn songs_are_fetched_over_https_and_a_missing_one_fails_as_an_invalid_request() {
    let device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_audio_player).await;
    let base = device.sim.base_url();
    device.sim.push_directive(play("REPLACE_ALL", "song-1", &format!("{base}/media/song-1.mp3"), json!({})), vec![]);
    device.sim_event(is("PlaybackFinished", "song-1")).await;
    device.sim.push_directive(play("REPLACE_ALL", "nope", &format!("{base}/media/nope.mp3"), json!({})), vec![]);
    let failed = device.sim_event(is("PlaybackFailed", "nope")).await;
    let failed = payload(&failed);
    assert_eq!(failed["error"]["type"], "MEDIA_ERROR_INVALID_REQUEST", "{failed}");
    assert!(failed["error"]["message"].as_str().unwrap().contains("404"), "{failed}");
    assert_eq!(failed["currentPlaybackState"]["token"], "nope");
    assert_eq!(heard(&device, "nope"), ["PlaybackFailed"], "it never started");
    assert_schema_clean(&device);
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn music_pauses_while_alexa_answers_and_resumes_after_it() {
    let device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_audio_player).await;
    // A cid: song: its attachment stays readable for the resume. 8 copies: 21 s of music, under 3 s at the
    // tests' playback speed; the pause comes at once.
    device.sim.push_directive(play("REPLACE_ALL", "song-1", "cid:song-1", json!({})), vec![song("song-1", 8)]);
    device.sim_event(is("PlaybackStarted", "song-1")).await;
    device.speak_to_it();
    device.sim_event(is("PlaybackPaused", "song-1")).await;
    device.sim_event(|e| e.namespace == "SpeechSynthesizer" && e.name == "SpeechFinished").await;
    device.sim_event(is("PlaybackResumed", "song-1")).await;
    device.sim_event(is("PlaybackFinished", "song-1")).await;
    let order: Vec<String> = device
        .sim
        .events()
        .iter()
        .filter(|e| {
            (e.namespace == "AudioPlayer" && e.name != "PlaybackNearlyFinished") || (e.namespace == "SpeechSynthesizer")
        })
        .map(|e| e.name.clone())
        .collect();
    // The pause and the start of speech happen on two plugin threads at once: either may be reported first.
    let at = |name: &str| order.iter().position(|n| n == name).unwrap_or_else(|| panic!("no {name} in {order:?}"));
    assert_eq!(order.len(), 6, "{order:?}");
    assert_eq!((at("PlaybackStarted"), at("PlaybackFinished")), (0, 5), "{order:?}");
    assert!(
        at("PlaybackPaused") < at("SpeechFinished") && at("SpeechStarted") < at("SpeechFinished"),
        "the music is paused (Content in the background) while the Speak plays: {order:?}"
    );
    assert_eq!(at("PlaybackResumed"), 4, "and resumed only after it: {order:?}");
    let events = device.sim.events();
    let offset = |name: &str| {
        let event = events.iter().find(|e| e.name == name).unwrap();
        payload(event)["offsetInMilliseconds"].as_u64().unwrap()
    };
    assert_eq!(offset("PlaybackResumed"), offset("PlaybackPaused"), "it resumes where it paused");
    assert_schema_clean(&device);
    device.stop().await;
}
