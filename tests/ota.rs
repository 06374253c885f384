//! OTA swaps under load: directives stream from avs-sim while System is swapped between its real
//! versions several times; nothing is lost, nothing runs twice, order holds, and state is handed over.

mod common;

use std::path::{Path, PathBuf};

use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::plugins::signature;
use avs_core::runtime::Runtime;
use avs_sim::{Sim, SimConfig};
use common::{built_plugin_dir, device_config, next_matching, payload, test_options};
use serde_json::json;

fn speaker_build(dir: &Path, label: &str) -> PathBuf {
    common::rebuilt(dir, "libavs_speaker.so", label)
}

/// The version of `interface` in a published capability document.
fn published_version(document: &serde_json::Value, interface: &str) -> Option<String> {
    let capabilities = document["capabilities"].as_array()?;
    let capability = capabilities.iter().find(|c| c["interface"] == interface)?;
    capability["version"].as_str().map(str::to_string)
}

const DIRECTIVES: usize = 10_000;
const WAIT: std::time::Duration = std::time::Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_directives_survive_four_version_swaps_exactly_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    let config = device_config(&sim, &dir, built_plugin_dir());
    // System 1.1 is the template's; the OTA goes down to the real 1.0 library and back up, twice.
    let (v1_1, v1_0) = (config.plugin_dir.join("libavs_system.so"), config.plugin_dir.join("libavs_system_1_0.so"));
    let observer = Observer::with_capacity(1 << 16);
    let mut events = observer.subscribe();
    let mut progress = observer.subscribe();
    let runtime = Runtime::start_observed(config, test_options(), observer).await.unwrap();
    loop {
        if let Ok(RuntimeEvent::Connected { .. }) = events.recv().await {
            break;
        }
    }
    let first = sim.wait_for_capabilities(1, WAIT).await.unwrap();
    assert_eq!(published_version(&first, "System").as_deref(), Some("1.1"));

    // Record every handled directive (in the order the runtime reports them) while the load runs.
    let recorder = tokio::spawn(async move {
        let mut handled = Vec::new();
        while handled.len() < DIRECTIVES {
            match events.recv().await {
                Ok(RuntimeEvent::DirectiveHandled { message_id, plugin, sequence, outcome, .. }) => {
                    handled.push((sequence, message_id, plugin, outcome))
                }
                Ok(_) => {}
                Err(e) => panic!("observer: {e}"),
            }
        }
        handled
    });
    // Push in five slices with a swap between slices: the swaps happen while directives are in flight.
    // A swap waits until the slice's first directive is handled, so every version serves at least
    // one directive (on a loaded machine a whole slice could otherwise still be on its way to the
    // runtime when the next swap commits).
    let push = |from: usize, to: usize| {
        for i in from..to {
            let directive = json!({"directive": {"header": {"namespace": "System", "name": "ResetUserInactivity", "messageId": format!("r-{i}")},
                                                 "payload": {}}});
            sim.push_directive(directive, vec![]);
        }
    };
    let slice = DIRECTIVES / 5;
    let mut swapped_to = vec![v1_1.display().to_string()];
    for (n, (target, version)) in
        [(&v1_0, "1.0"), (&v1_1, "1.1"), (&v1_0, "1.0"), (&v1_1, "1.1")].into_iter().enumerate()
    {
        push(n * slice, (n + 1) * slice);
        let first = format!("r-{}", n * slice);
        next_matching(
            &mut progress,
            |e| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if *message_id == first),
        )
        .await;
        let documents = sim.capability_documents().len();
        let swap = runtime.plugins().swap("System", target);
        let report = tokio::time::timeout(WAIT, swap).await.expect("swap in time").expect("swap commits");
        assert_eq!(report.to_version, version);
        swapped_to.push(target.display().to_string());
        // Each commit is announced to AVS with the version now serving.
        let published = sim.wait_for_capabilities(documents + 1, WAIT).await.expect("capabilities re-published");
        assert_eq!(published_version(&published, "System").as_deref(), Some(version), "{published}");
    }
    push(4 * slice, DIRECTIVES);
    let handled = tokio::time::timeout(WAIT * 3, recorder).await.expect("all handled in time").unwrap();

    // Exactly once, each successfully, executed in the order they arrived (sequence = the order in
    // which plugin threads ran them, taken on those threads).
    assert!(handled.iter().all(|(_, _, _, outcome)| outcome.is_ok()), "a directive failed");
    let mut handled = handled;
    handled.sort_by_key(|(sequence, ..)| *sequence);
    for (i, (_, id, _, _)) in handled.iter().enumerate() {
        assert_eq!(id, &format!("r-{i}"), "execution #{i} out of order or duplicated");
    }
    // By the version active when each was dequeued: the versions follow the swaps, never going back.
    let mut runs: Vec<String> = Vec::new();
    for (_, _, plugin, _) in &handled {
        if runs.last().map(String::as_str) != Some(plugin.as_str()) {
            runs.push(plugin.to_string());
        }
    }
    assert_eq!(runs, swapped_to, "the handling versions follow the swaps");

    // The 1.1 library serves again: it answers what only 1.1 has.
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "System", "name": "ReportSoftwareInfo", "messageId": "info"}, "payload": {}}}),
        vec![],
    );
    let info = sim.wait_for_event(|e| e.name == "SoftwareInfo", WAIT).await.expect("SoftwareInfo from 1.1");
    assert_eq!(payload(&info)["firmwareVersion"], "1");
    assert!(sim.violations().is_empty(), "{:?}", sim.violations().first());
    runtime.shutdown().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_to_a_plugin_for_another_interface_is_refused_and_the_old_one_keeps_serving() {
    let mut device = common::Device::connect(built_plugin_dir()).await;
    let signed = device.runtime().plugins().slot("System").unwrap().path.clone();
    let error = device.runtime().plugins().swap("Speaker", &signed).await.expect_err("refused").to_string();
    assert!(error.contains("names System, not Speaker"), "{error}");
    device.sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "after"}, "payload": {"volume": 3}}}),
        vec![],
    );
    device.sim_event(|e| e.name == "VolumeChanged").await;
    let rollback =
        device.runtime().plugins().rollback("Speaker", "test").await.expect_err("nothing to roll back").to_string();
    assert!(rollback.contains("no previous version"), "{rollback}");
    device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if message_id == "after")).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_returns_to_the_previous_version_with_the_state() {
    let mut device = common::Device::connect(built_plugin_dir()).await;
    let build = speaker_build(device.dir.path(), "next");
    device.sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "before"}, "payload": {"volume": 42}}}),
        vec![],
    );
    device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { message_id, .. } if message_id == "before")).await;
    let before = device.runtime().plugins().slot("Speaker").unwrap().path.clone();
    device.runtime().plugins().swap("Speaker", &build).await.unwrap();
    assert_eq!(device.runtime().plugins().slot("Speaker").unwrap().path, build);
    device.runtime().plugins().rollback("Speaker", "test").await.unwrap();
    assert_eq!(device.runtime().plugins().slot("Speaker").unwrap().path, before);
    let context = device.runtime().plugins().context().await;
    let volume = context.iter().find(|c| c["header"]["name"] == "VolumeState").unwrap();
    assert_eq!(volume["payload"]["volume"], 42, "state handed over and back");
    device.wait_for(|e| matches!(e, RuntimeEvent::PluginRolledBack { .. })).await;
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_swap_loads_the_committed_version_with_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"))).await.unwrap();
    let config = device_config(&sim, &dir, built_plugin_dir());
    let runtime = Runtime::start(config.clone(), test_options()).await.unwrap();
    let build = speaker_build(dir.path(), "committed");
    runtime.plugins().swap("Speaker", &build).await.unwrap();
    let stored = runtime.plugins().slot("Speaker").unwrap();
    assert_eq!(stored.path, build, "the swapped-in artifact serves right away");
    // Connected (the downchannel opens before SynchronizeState is sent).
    sim.wait_for_event(|e| e.name == "SynchronizeState", WAIT).await.unwrap();
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "after-swap"}, "payload": {"volume": 77}}}),
        vec![],
    );
    sim.wait_for_event(|e| e.name == "VolumeChanged", WAIT).await.unwrap();
    runtime.shutdown().await;

    // The same device starts again: the committed version comes back from the store, with the volume.
    let runtime = Runtime::start(config.clone(), test_options()).await.unwrap();
    let speaker = runtime.plugins().slot("Speaker").unwrap();
    let store = config.data_dir.join("plugins");
    assert!(speaker.path.starts_with(&store), "{} should be loaded from {}", speaker.path.display(), store.display());
    let name = speaker.path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("Speaker-1.0-") && name.ends_with(".so") && name.contains(&speaker.sha256[..12]),
        "{name}"
    );
    let context = runtime.plugins().context().await;
    let volume = context.iter().find(|c| c["header"]["name"] == "VolumeState").unwrap();
    assert_eq!(volume["payload"]["volume"], 77);

    // Rolling back is persisted too: the next start is back on the built-in version.
    runtime.plugins().rollback("Speaker", "test").await.unwrap();
    runtime.shutdown().await;
    let runtime = Runtime::start(config, test_options()).await.unwrap();
    assert!(!runtime.plugins().slot("Speaker").unwrap().path.starts_with(&store));
    runtime.shutdown().await;
    sim.shutdown().await;
}

/// One request over the runtime's control socket.
async fn control(data_dir: &Path, request: serde_json::Value) -> serde_json::Value {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::UnixStream::connect(avs_core::control::socket_path(data_dir)).await.unwrap();
    let (read, mut write) = stream.into_split();
    write.write_all(format!("{request}\n").as_bytes()).await.unwrap();
    let line = BufReader::new(read).lines().next_line().await.unwrap().unwrap();
    serde_json::from_str(&line).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_socket_reports_status_swaps_and_rolls_back() {
    use std::os::unix::fs::PermissionsExt;
    let device = common::Device::connect(built_plugin_dir()).await;
    let data_dir = device.dir.path().join("device");
    let mode = std::fs::metadata(avs_core::control::socket_path(&data_dir)).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "only the device's user may control it");

    let status = control(&data_dir, json!({"cmd": "status"})).await;
    assert_eq!(status["ok"], true, "{status}");
    assert_eq!(status["interfaces"].as_array().unwrap().len(), 4);
    assert!(status["rssKib"].as_u64().unwrap() > 0);
    let images = |status: &serde_json::Value| status["mappedImages"].as_array().unwrap().clone();
    assert_eq!(images(&status).len(), 4, "{status}");
    assert!(images(&status).iter().all(|i| i["mappedKib"].as_u64().unwrap() > 0), "{status}");

    let build = speaker_build(device.dir.path(), "ctl");
    let swapped = control(&data_dir, json!({"cmd": "swap", "interface": "Speaker", "path": build})).await;
    assert_eq!((swapped["ok"].as_bool(), swapped["to"].as_str()), (Some(true), Some("1.0")), "{swapped}");
    let status = control(&data_dir, json!({"cmd": "status"})).await;
    let new_image = images(&status).into_iter().find(|i| i["path"] == json!(build)).expect("the new image is mapped");
    assert_eq!(new_image["provides"], "Speaker 1.0");
    assert_eq!(images(&status).len(), 5, "the old version stays mapped too");
    let status = control(&data_dir, json!({"cmd": "plugins"})).await;
    let speaker =
        status["interfaces"].as_array().unwrap().iter().find(|i| i["interface"] == "Speaker").unwrap().clone();
    assert_eq!(speaker["path"], json!(build));
    assert!(speaker["previous"]["path"].as_str().unwrap().ends_with("libavs_speaker.so"));

    let refused =
        control(&data_dir, json!({"cmd": "swap", "interface": "Speaker", "path": "/nonexistent/lib.so"})).await;
    assert_eq!(refused["ok"], false);
    assert!(refused["error"].as_str().unwrap().contains("/nonexistent/lib.so"), "{refused}");
    let bad = control(&data_dir, json!({"cmd": "reboot"})).await;
    assert!(bad["error"].as_str().unwrap().contains("bad request"), "{bad}");

    let rolled = control(&data_dir, json!({"cmd": "rollback", "interface": "Speaker"})).await;
    assert_eq!(rolled["ok"], true, "{rolled}");
    assert!(device.runtime().plugins().slot("Speaker").unwrap().path.ends_with("libavs_speaker.so"));
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swap_during_speech_lets_it_finish_and_the_new_version_speaks_as_1_0() {
    // Real-time playback: the answer lasts about 2.7 s, so the swap arrives while it plays.
    let options = avs_core::runtime::RuntimeOptions { playback_speed: 1.0, ..test_options() };
    let mut device = common::Device::connect_with(built_plugin_dir(), |_| {}, options, |_| {}).await;
    let v1_0 = device.dir.path().join("signed-plugins/libavs_speech_synthesizer_1_0.so");
    device.speak_to_it();
    let started = device.sim_event(|e| e.name == "SpeechStarted").await;
    let report = device.runtime().plugins().swap("SpeechSynthesizer", &v1_0).await.expect("swap commits");
    assert_eq!((report.from_version.as_str(), report.to_version.as_str()), ("1.3", "1.0"));

    // The Speak in progress ran to its end on 1.3 before 1.0 took over: nothing cut off, nothing lost.
    let finished = device.sim_event(|e| e.name == "SpeechFinished").await;
    assert_eq!(payload(&finished)["token"], payload(&started)["token"]);
    let handled =
        device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, .. } if name == "Speak")).await;
    let RuntimeEvent::DirectiveHandled { plugin, outcome, .. } = handled else { unreachable!() };
    assert_eq!(outcome, Ok(()));
    assert!(plugin.ends_with("libavs_speech_synthesizer.so"), "{plugin}");
    let published = device.sim.wait_for_capabilities(2, WAIT).await.unwrap();
    assert_eq!(published_version(&published, "SpeechSynthesizer").as_deref(), Some("1.0"));

    // 1.0 has no SpeechInterrupted: a barge-in stops the speech silently.
    device.speak_to_it();
    let second =
        device.sim_event(|e| e.name == "SpeechStarted" && payload(e)["token"] != payload(&started)["token"]).await;
    device.speak_to_it();
    let cancelled = device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Err(why), .. } if name == "Speak" && why.contains("new dialog")))
        .await;
    let RuntimeEvent::DirectiveHandled { plugin, .. } = cancelled else { unreachable!() };
    assert!(plugin.ends_with("libavs_speech_synthesizer_1_0.so"), "{plugin}");
    let third = device
        .sim_event(|e| {
            e.name == "SpeechFinished"
                && payload(e)["token"] != payload(&started)["token"]
                && payload(e)["token"] != payload(&second)["token"]
        })
        .await;
    assert!(payload(&third)["token"].is_string());
    let speech_events: Vec<String> =
        device.sim.events().iter().filter(|e| e.namespace == "SpeechSynthesizer").map(|e| e.name.clone()).collect();
    assert!(!speech_events.iter().any(|n| n == "SpeechInterrupted"), "{speech_events:?}");
    assert!(device.sim.violations().is_empty(), "{:?}", device.sim.violations());
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_speak_that_outlasts_the_drain_time_is_failed_and_the_dialogs_go_on() {
    let mut options = avs_core::runtime::RuntimeOptions { playback_speed: 1.0, ..test_options() };
    options.call_timeouts.drain = std::time::Duration::ZERO;
    let mut device = common::Device::connect_with(built_plugin_dir(), |_| {}, options, |_| {}).await;
    let v1_0 = device.dir.path().join("signed-plugins/libavs_speech_synthesizer_1_0.so");
    device.speak_to_it();
    device.sim_event(|e| e.name == "SpeechStarted").await;
    device.runtime().plugins().swap("SpeechSynthesizer", &v1_0).await.expect("swap commits");
    let failed = device.wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, .. } if name == "Speak")).await;
    let RuntimeEvent::DirectiveHandled { outcome, .. } = failed else { unreachable!() };
    assert_eq!(outcome, Err("interrupted by the OTA update of SpeechSynthesizer".to_string()));
    // The dialog is not left waiting for a Speak nobody will finish: the next question is answered.
    device.speak_to_it();
    let done = device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } if name == "Speak"))
        .await;
    let RuntimeEvent::DirectiveHandled { plugin, .. } = done else { unreachable!() };
    assert!(plugin.ends_with("libavs_speech_synthesizer_1_0.so"), "{plugin}");
    device.stop().await;
}

#[test]
fn avs_plugin_install_verifies_and_stores_under_interface_version_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let (key, public) = signature::write_key_pair(&keys, "plugin-signing").unwrap();
    // The artifact as it arrives, with its signature somewhere else.
    let artifact = dir.path().join("download/update.so");
    std::fs::create_dir_all(artifact.parent().unwrap()).unwrap();
    std::fs::copy(built_plugin_dir().join("libavs_speech_synthesizer_1_0.so"), &artifact).unwrap();
    let sig = signature::sign_file(&artifact, &key).unwrap();
    let moved_sig = dir.path().join("update.sig");
    std::fs::rename(&sig, &moved_sig).unwrap();
    let data = dir.path().join("device");
    let config = dir.path().join("avs.toml");
    std::fs::write(&config, format!("data_dir = {:?}\nplugin_trusted_keys = [{:?}]\n", data, public)).unwrap();
    let install = |sig: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_avs"))
            .args(["plugin", "install"])
            .arg(&artifact)
            .arg("--sig")
            .arg(sig)
            .arg("--config")
            .arg(&config)
            .output()
            .unwrap()
    };

    let output = install(&moved_sig);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let stored: Vec<String> = std::fs::read_dir(data.join("plugins"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let library = stored.iter().find(|n| n.ends_with(".so")).expect("the library is in the store");
    let sha = avs_core::plugins::loader::sha256_hex(&std::fs::read(&artifact).unwrap());
    assert_eq!(library, &format!("SpeechSynthesizer-1.0-{}.so", &sha[..12]));
    assert!(stored.contains(&format!("{library}.sig")), "{stored:?}");
    assert_eq!(stored.len(), 2, "no staging leftovers: {stored:?}");
    assert!(stdout.contains("installed SpeechSynthesizer 1.0") && stdout.contains("avs ctl swap"), "{stdout}");

    // A signature by another key: refused before the library is opened, nothing stored.
    let (foreign, _) = signature::write_key_pair(&dir.path().join("other"), "other").unwrap();
    std::fs::remove_dir_all(data.join("plugins")).unwrap();
    let forged = signature::sign_file(&artifact, &foreign).unwrap();
    let output = install(&forged);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("refused before loading") && stderr.contains("does not verify"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(data.join("plugins")).unwrap().collect();
    assert!(left.is_empty(), "nothing stored: {left:?}");
}
