//! The runtime killed with SIGKILL while events wait for AVS and alerts are set: after a restart every
//! waiting event is delivered exactly once and every alert is still set.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use avs_core::outbox::Outbox;
use avs_core::storage::Storage;
use avs_sim::{Fault, Sim, SimConfig, SimHandle};
use common::{built_plugin_dir, device_config, WAIT};
use serde_json::json;

/// `avs run` on the configuration the tests use, written as the TOML file a device maker would write.
fn avs_run(sim: &SimHandle, dir: &tempfile::TempDir) -> Child {
    let config = device_config(sim, dir, built_plugin_dir());
    let file = dir.path().join("avs.toml");
    let toml = format!(
        "endpoint = {:?}\nlwa_url = {:?}\ncapabilities_url = {:?}\nca_file = {:?}\ndata_dir = {:?}\n\
         plugin_dir = {:?}\nplugin_trusted_keys = [{:?}]\naudio_sink = \"null\"\ntemplate = \"headless-speaker\"\n",
        sim.base_url(),
        sim.base_url(),
        sim.base_url(),
        config.ca_file.unwrap(),
        config.data_dir,
        config.plugin_dir,
        config.plugin_trusted_keys[0],
    );
    std::fs::write(&file, toml).unwrap();
    Command::new(env!("CARGO_BIN_EXE_avs"))
        .args(["run", "--config"])
        .arg(&file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn set_alert(sim: &SimHandle, token: &str, in_hours: u64) {
    let at = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() + in_hours * 3600;
    let at = time::OffsetDateTime::from_unix_timestamp(at as i64).unwrap();
    let at = at.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000"));
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "Alerts", "name": "SetAlert", "messageId": format!("set-{token}")},
                             "payload": {"token": token, "type": "TIMER", "scheduledTime": at.unwrap()}}}),
        vec![],
    );
}

/// The outbox of the killed runtime's data dir, read as the next run will read it.
fn pending(data_dir: &Path) -> Vec<(String, String)> {
    let outbox = Outbox::open(Storage::open(&data_dir.join("avs.db")).unwrap()).unwrap();
    outbox.pending().unwrap().into_iter().map(|e| (e.name, e.payload.get().to_string())).collect()
}

/// Polls `check` until it yields: the runtime is another process, whose outbox is read from its file.
async fn poll_until<T>(what: &str, check: impl Fn() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_waiting_when_the_runtime_is_killed_are_delivered_once_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    let data_dir = dir.path().join("device");
    let mut runtime = avs_run(&sim, &dir);
    sim.wait_for_event(|e| e.name == "SynchronizeState", WAIT).await.unwrap();

    // Events go out one at a time, in order: once this one is accepted, whatever the first boot sent is too.
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "settled"},
                             "payload": {"volume": 30}}}),
        vec![],
    );
    sim.wait_for_event(|e| e.name == "VolumeChanged", WAIT).await.unwrap();

    // AVS stops answering: the first SetAlertSucceeded hangs in flight, the others queue behind it.
    sim.inject(Fault::StallNextEventAnswer);
    for (n, token) in ["alarm-a", "alarm-b", "alarm-c"].into_iter().enumerate() {
        set_alert(&sim, token, n as u64 + 1);
    }
    let waiting = poll_until("SetAlertSucceeded ×3 in the outbox", || {
        let waiting: Vec<_> = pending(&data_dir).into_iter().filter(|(name, _)| name == "SetAlertSucceeded").collect();
        (waiting.len() == 3).then_some(waiting)
    })
    .await;
    // The outbox may hold all three before the first reached avs-sim: the kill waits for that too.
    sim.wait_for_refused_event(|e| e.name == "SetAlertSucceeded" && e.status.is_none(), WAIT)
        .await
        .expect("the first SetAlertSucceeded in flight");
    runtime.kill().unwrap(); // SIGKILL: no shutdown, no flush
    runtime.wait().unwrap();
    assert!(sim.events().iter().all(|e| e.name != "SetAlertSucceeded"), "none got through before the kill");

    sim.inject(Fault::Heal);
    let mut runtime = avs_run(&sim, &dir);
    let delivered = sim.wait_for_events(|e| e.name == "SetAlertSucceeded", 3, WAIT).await.unwrap();
    let tokens: Vec<_> = delivered.iter().map(|e| e.json["event"]["payload"]["token"].as_str().unwrap()).collect();
    assert_eq!(tokens, ["alarm-a", "alarm-b", "alarm-c"], "in the order they were first queued");
    for (_, payload) in &waiting {
        let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
        assert!(delivered.iter().any(|e| e.json["event"]["payload"] == payload), "{payload}");
    }

    // Every alert survived: the restarted runtime's context lists all three.
    let sync = sim.events().into_iter().rev().find(|e| e.name == "SynchronizeState").unwrap();
    let alerts = sync.json["context"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["header"]["namespace"] == "Alerts")
        .expect("Alerts context")["payload"]["allAlerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["token"].as_str().unwrap().to_string())
        .collect::<Vec<_>>();
    assert_eq!(alerts, ["alarm-a", "alarm-b", "alarm-c"]);

    // Exactly once: a later event gets through, and still no SetAlertSucceeded came twice.
    set_alert(&sim, "alarm-d", 4);
    sim.wait_for_events(|e| e.name == "SetAlertSucceeded", 4, WAIT).await.unwrap();
    assert_eq!(sim.events().iter().filter(|e| e.name == "SetAlertSucceeded").count(), 4);
    // The runtime hears of the last acceptance a moment after avs-sim recorded it.
    poll_until("an empty outbox", || pending(&data_dir).is_empty().then_some(())).await;
    runtime.kill().unwrap();
    runtime.wait().unwrap();
    sim.shutdown().await;
}
