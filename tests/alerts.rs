//! Alerts against avs-sim: every directive and the events it causes, an alert that sounds on time while
//! the cloud is down (its events reach AVS when it is back), and alerts that survive a restart.

mod common;

use std::time::{Duration, SystemTime};

use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::runtime::Runtime;
use avs_sim::{Sim, SimConfig, SimHandle};
use common::{built_plugin_dir, device_config, next_matching, payload, test_options, Device, WAIT};
use serde_json::json;
use time::macros::format_description;

/// The minimal device plus Alerts.
fn with_alerts(config: &mut Config) {
    config.plugins = ["avs_system", "avs_speech_recognizer", "avs_speech_synthesizer", "avs_speaker", "avs_alerts"]
        .map(String::from)
        .to_vec();
}

/// An AVS scheduledTime `seconds` from now (whole seconds, as AVS sends them), and when that is.
fn in_seconds(seconds: u64) -> (String, SystemTime) {
    let now = SystemTime::now();
    let whole = now.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + seconds + 1;
    let at = time::OffsetDateTime::from_unix_timestamp(whole as i64).unwrap();
    let text = at.format(format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000")).unwrap();
    (text, SystemTime::UNIX_EPOCH + Duration::from_secs(whole))
}

fn set_alert(sim: &SimHandle, token: &str, kind: &str, scheduled_time: &str) {
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "Alerts", "name": "SetAlert", "messageId": format!("set-{token}")},
                             "payload": {"token": token, "type": kind, "scheduledTime": scheduled_time}}}),
        vec![],
    );
}

fn queued(name: &'static str) -> impl Fn(&RuntimeEvent) -> bool {
    move |e| matches!(e, RuntimeEvent::EventQueued { namespace, name: n, .. } if namespace == "Alerts" && n == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_sounds_on_time_with_the_cloud_down_and_avs_hears_of_it_when_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let sim_dir = dir.path().join("sim");
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), sim_dir.clone())).await.unwrap();
    let address = sim.addr();
    let mut config = device_config(&sim, &dir, built_plugin_dir());
    with_alerts(&mut config);
    let observer = Observer::with_capacity(4096);
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, test_options(), observer).await.unwrap();
    next_matching(&mut events, |e| matches!(e, RuntimeEvent::Connected { .. })).await;

    let (scheduled, due) = in_seconds(2);
    set_alert(&sim, "timer-1", "TIMER", &scheduled);
    sim.wait_for_event(|e| e.name == "SetAlertSucceeded", WAIT).await.unwrap();
    sim.clone().shutdown().await; // AVS is gone

    next_matching(&mut events, queued("AlertStarted")).await;
    let late = SystemTime::now().duration_since(due).expect("not before its time");
    assert!(late < Duration::from_millis(1_500), "sounded {late:?} after its time");
    runtime.user_event("user.stop", &json!({}));
    next_matching(&mut events, queued("AlertStopped")).await;

    // AVS is back on the same address: the device reconnects and delivers what happened meanwhile.
    let sim = Sim::start(SimConfig::new(address, sim_dir)).await.unwrap();
    let heard = sim
        .wait_for_events(|e| e.name == "AlertStarted" || e.name == "AlertStopped", 2, Duration::from_secs(60))
        .await
        .expect("the alert's events after reconnection");
    let mut names: Vec<&str> = heard.iter().map(|e| e.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["AlertStarted", "AlertStopped"]);
    assert!(heard.iter().all(|e| payload(e)["token"] == "timer-1"));
    let context = runtime.plugins().context().await;
    let alerts = context.iter().find(|c| c["header"]["name"] == "AlertsState").unwrap();
    assert_eq!(alerts["payload"], json!({"allAlerts": [], "activeAlerts": []}), "a stopped alert is gone");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    runtime.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_directive_is_answered_with_its_events_all_schema_valid() {
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_alerts).await;
    let (later, _) = in_seconds(3_600);
    set_alert(&device.sim, "alarm-1", "ALARM", &later);
    set_alert(&device.sim, "reminder-1", "REMINDER", &later);
    set_alert(&device.sim, "timer-2", "TIMER", &later);
    set_alert(&device.sim, "too-old", "TIMER", "2020-01-01T00:00:00+0000");
    let directive = |name: &str, payload: serde_json::Value| json!({"directive": {"header": {"namespace": "Alerts", "name": name, "messageId": format!("m-{name}")}, "payload": payload}});
    device.sim.push_directive(directive("DeleteAlert", json!({"token": "alarm-1"})), vec![]);
    device.sim.push_directive(directive("DeleteAlerts", json!({"tokens": ["reminder-1", "timer-2"]})), vec![]);
    device.sim.push_directive(directive("SetVolume", json!({"volume": 70})), vec![]);
    device.sim.push_directive(directive("AdjustVolume", json!({"volume": -30})), vec![]);
    let events =
        device.sim.wait_for_events(|e| e.namespace == "Alerts", 8, WAIT).await.expect("an answer to every directive");
    let mut answers: Vec<String> = events.iter().map(|e| format!("{} {}", e.name, payload(e))).collect();
    answers.sort();
    assert_eq!(
        answers,
        [
            r#"DeleteAlertSucceeded {"token":"alarm-1"}"#,
            r#"DeleteAlertsSucceeded {"tokens":["reminder-1","timer-2"]}"#,
            r#"SetAlertFailed {"token":"too-old"}"#,
            r#"SetAlertSucceeded {"token":"alarm-1"}"#,
            r#"SetAlertSucceeded {"token":"reminder-1"}"#,
            r#"SetAlertSucceeded {"token":"timer-2"}"#,
            r#"VolumeChanged {"volume":40}"#,
            r#"VolumeChanged {"volume":70}"#,
        ]
    );
    let context = device.runtime().plugins().context().await;
    let alerts = context.iter().find(|c| c["header"]["name"] == "AlertsState").unwrap();
    assert_eq!(alerts["payload"]["allAlerts"], json!([]));
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, .. } if name == "AdjustVolume")).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dialog_sends_a_sounding_alert_to_the_background_and_it_comes_back() {
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_alerts).await;
    let (now, _) = in_seconds(0);
    set_alert(&device.sim, "alarm-now", "ALARM", &now);
    device.sim_event(|e| e.name == "AlertStarted").await;
    device.speak_to_it();
    device.sim_event(|e| e.name == "AlertEnteredBackground").await;
    device.sim_event(|e| e.name == "SpeechFinished").await;
    device.sim_event(|e| e.name == "AlertEnteredForeground").await;
    device.runtime().user_event("user.stop", &json!({}));
    let stopped = device.sim_event(|e| e.name == "AlertStopped").await;
    assert_eq!(payload(&stopped)["token"], "alarm-now");
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.wait_for(|e| matches!(e, RuntimeEvent::EventSent { name, .. } if name == "AlertStopped")).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    let mut config = device_config(&sim, &dir, built_plugin_dir());
    with_alerts(&mut config);
    let runtime = Runtime::start(config.clone(), test_options()).await.unwrap();
    // Connected: the downchannel opens before SynchronizeState is sent.
    sim.wait_for_event(|e| e.name == "SynchronizeState", WAIT).await.unwrap();
    let (tomorrow, _) = in_seconds(86_400);
    set_alert(&sim, "alarm-tomorrow", "ALARM", &tomorrow);
    sim.wait_for_event(|e| e.name == "SetAlertSucceeded", WAIT).await.unwrap();
    runtime.shutdown().await;

    let runtime = Runtime::start(config, test_options()).await.unwrap();
    let context = runtime.plugins().context().await;
    let alerts = context.iter().find(|c| c["header"]["name"] == "AlertsState").unwrap();
    assert_eq!(
        alerts["payload"]["allAlerts"],
        json!([{"token": "alarm-tomorrow", "type": "ALARM", "scheduledTime": tomorrow}])
    );
    runtime.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_survive_an_ota_swap_and_a_sounding_one_sounds_on() {
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, test_options(), with_alerts).await;
    let (tomorrow, _) = in_seconds(86_400);
    let (now, _) = in_seconds(0);
    set_alert(&device.sim, "alarm-tomorrow", "ALARM", &tomorrow);
    set_alert(&device.sim, "timer-now", "TIMER", &now);
    device.sim_event(|e| e.name == "AlertStarted").await;

    let build = common::rebuilt(device.dir.path(), "libavs_alerts.so", "next");
    device.runtime().plugins().swap("Alerts", &build).await.expect("swap commits");
    let context = device.runtime().plugins().context().await;
    let alerts = &context.iter().find(|c| c["header"]["name"] == "AlertsState").unwrap()["payload"];
    let tokens: Vec<&str> =
        alerts["allAlerts"].as_array().unwrap().iter().map(|a| a["token"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["timer-now", "alarm-tomorrow"], "{alerts}");
    assert_eq!(alerts["activeAlerts"][0]["token"], "timer-now", "the new version sounds it on");

    device.runtime().user_event("user.stop", &json!({}));
    device.sim_event(|e| e.name == "AlertStopped").await;
    device.wait_for(|e| matches!(e, RuntimeEvent::EventSent { name, .. } if name == "AlertStopped")).await;
    let started = device.sim.events().iter().filter(|e| e.name == "AlertStarted").count();
    assert_eq!(started, 1, "the hand-over started nothing twice");
    device.stop().await;
}
