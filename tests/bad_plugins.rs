//! The bad-plugin suite: each case is a real library built in the workspace (tests/plugins/) or a real
//! plugin with a signature problem, offered to a running device as an OTA update of Speaker. Each gives a
//! clear error; the old version keeps serving; no directive is lost.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use avs_core::observe::RuntimeEvent;
use avs_core::plugins::signature;
use avs_core::runtime::RuntimeOptions;
use common::{built_plugin_dir, payload, test_options, Device};
use serde_json::json;

/// A copy of a built library in its own directory: unsigned, or signed with `key`.
fn copy_of(dir: &Path, library: &str, label: &str, key: Option<&Path>) -> PathBuf {
    let path = dir.join(label).join(library);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::copy(built_plugin_dir().join(library), &path).unwrap();
    if let Some(key) = key {
        signature::sign_file(&path, key).unwrap();
    }
    path
}

/// A library as the device received it: signed with the key the device trusts.
fn signed(device: &Device, library: &str) -> PathBuf {
    let path = device.dir.path().join("signed-plugins").join(library);
    assert!(path.exists(), "{} missing", path.display());
    path
}

fn set_volume(device: &Device, message_id: &str, volume: u64) {
    device.sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": message_id}, "payload": {"volume": volume}}}),
        vec![],
    );
}

async fn volume_changed_to(device: &Device, volume: u64) {
    device.sim_event(|e| e.name == "VolumeChanged" && payload(e)["volume"] == volume).await;
}

/// How many VolumeChanged events avs-sim received per volume.
fn volume_changes(device: &Device) -> HashMap<u64, usize> {
    let mut counts = HashMap::new();
    for event in device.sim.events().iter().filter(|e| e.name == "VolumeChanged") {
        *counts.entry(payload(event)["volume"].as_u64().unwrap()).or_default() += 1;
    }
    counts
}

fn speaker_path(device: &Device) -> PathBuf {
    device.runtime().plugins().slot("Speaker").unwrap().path.clone()
}

fn options(probation: Duration) -> RuntimeOptions {
    let mut options = test_options();
    options.call_timeouts.directive = Duration::from_millis(800);
    options.call_timeouts.probation = probation;
    options
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_updates_name_the_reason_and_the_old_version_keeps_serving() {
    let device = Device::connect(built_plugin_dir()).await;
    let original = speaker_path(&device);
    device.sim.wait_for_capabilities(1, common::WAIT).await.unwrap();
    let documents = device.sim.capability_documents().len();
    let dir = device.dir.path();
    let (foreign_key, _) = signature::write_key_pair(&dir.join("foreign-keys"), "foreign").unwrap();
    let cases = [
        (
            "unsigned",
            copy_of(dir, "libavs_speaker.so", "unsigned", None),
            vec!["refused before loading", "no signature"],
        ),
        (
            "signed by an untrusted key",
            copy_of(dir, "libavs_speaker.so", "foreign", Some(&foreign_key)),
            vec!["refused before loading", "does not verify"],
        ),
        (
            "built against plugin ABI 2",
            signed(&device, "libavs_test_wrong_abi_major.so"),
            vec!["incompatible plugin ABI", "2.0.0"],
        ),
        (
            "a root module of another layout",
            signed(&device, "libavs_test_layout_mismatch.so"),
            vec!["incompatible plugin ABI", "type layouts differ"],
        ),
        ("a plugin of another interface", signed(&device, "libavs_system.so"), vec!["names System, not Speaker"]),
        (
            "a context its own schema rejects",
            signed(&device, "libavs_test_inconsistent_speaker.so"),
            vec!["self-test", "its context", "VolumeState"],
        ),
    ];
    for (n, (case, path, expected)) in cases.into_iter().enumerate() {
        let error = device.runtime().plugins().swap("Speaker", &path).await.expect_err(case).to_string();
        assert!(error.contains(&*path.display().to_string()), "{case}: the error names the file: {error}");
        for fragment in expected {
            assert!(error.contains(fragment), "{case}: {error:?} should say {fragment:?}");
        }
        assert_eq!(speaker_path(&device), original, "{case}: the old version still serves");
        let volume = 10 + n as u64;
        set_volume(&device, &format!("after-{n}"), volume);
        volume_changed_to(&device, volume).await;
    }
    assert_eq!(device.sim.capability_documents().len(), documents, "no refused update was announced");
    device.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_directive_in_probation_rolls_back_and_loses_nothing() {
    let mut options = options(Duration::from_secs(60));
    // A panic is answered once the plugin has caught it, and with RUST_BACKTRACE set the plugin's own std
    // first symbolises a backtrace: in a debug build on a busy machine that took longer than the 800 ms
    // hang limit (CI saw the panic reported as a hang). This test is about the panic, not about hangs.
    options.call_timeouts.directive = Duration::from_secs(30);
    let mut device = Device::connect_with(built_plugin_dir(), |_| {}, options, |_| {}).await;
    let original = speaker_path(&device);
    let faulty = signed(&device, "libavs_test_faulty_speaker.so");
    device.runtime().plugins().swap("Speaker", &faulty).await.expect("the faulty plugin passes the self-test");
    set_volume(&device, "boom", 13);
    set_volume(&device, "next-1", 14);
    set_volume(&device, "next-2", 15);

    let exception = device.sim_event(|e| e.name == "ExceptionEncountered").await;
    let exception = payload(&exception);
    assert!(exception["unparsedDirective"].as_str().unwrap().contains("boom"), "{exception}");
    assert_eq!(exception["error"]["type"], "INTERNAL_ERROR");
    assert!(exception["error"]["message"].as_str().unwrap().contains("fault injected: SetVolume 13"), "{exception}");
    let rolled = device.wait_for(|e| matches!(e, RuntimeEvent::PluginRolledBack { .. })).await;
    let RuntimeEvent::PluginRolledBack { reason, .. } = rolled else { unreachable!() };
    assert!(reason.contains("failed during probation"), "{reason}");
    volume_changed_to(&device, 14).await;
    volume_changed_to(&device, 15).await;
    assert_eq!(speaker_path(&device), original);
    set_volume(&device, "fence", 16);
    volume_changed_to(&device, 16).await;
    device.runtime.take().unwrap().shutdown().await;
    let changes = volume_changes(&device);
    assert_eq!((changes.get(&14), changes.get(&15), changes.get(&13)), (Some(&1), Some(&1), None), "{changes:?}");
    device.sim.clone().shutdown().await;
}

/// Swaps Speaker to the faulty plugin, hangs it, and sends two more directives behind the hung one.
/// Returns the device and the path of the version that served them.
async fn hang_behind_two_directives(probation: Duration) -> (Device, PathBuf, PathBuf) {
    let device = Device::connect_with(built_plugin_dir(), |_| {}, options(probation), |_| {}).await;
    let original = speaker_path(&device);
    set_volume(&device, "before", 42);
    volume_changed_to(&device, 42).await;
    let faulty = signed(&device, "libavs_test_faulty_speaker.so");
    device.runtime().plugins().swap("Speaker", &faulty).await.unwrap();
    set_volume(&device, "stuck", 66);
    set_volume(&device, "behind-1", 67);
    set_volume(&device, "behind-2", 68);

    let exception = device.sim_event(|e| e.name == "ExceptionEncountered").await;
    let exception = payload(&exception);
    assert!(exception["unparsedDirective"].as_str().unwrap().contains("stuck"), "{exception}");
    assert!(exception["error"]["message"].as_str().unwrap().contains("stuck in it"), "{exception}");
    volume_changed_to(&device, 67).await;
    volume_changed_to(&device, 68).await;
    (device, original, faulty)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_directive_in_probation_rolls_back_and_the_directives_behind_it_still_run() {
    let (mut device, original, _) = hang_behind_two_directives(Duration::from_secs(60)).await;
    let rolled = device.wait_for(|e| matches!(e, RuntimeEvent::PluginRolledBack { .. })).await;
    let RuntimeEvent::PluginRolledBack { reason, to_version, .. } = rolled else { unreachable!() };
    assert!(reason.contains("stuck in directive stuck"), "{reason}");
    assert_eq!(to_version, "1.0");
    assert_eq!(speaker_path(&device), original, "the previous version serves again");
    let context = device.runtime().plugins().context().await;
    let volume = context.iter().find(|c| c["header"]["name"] == "VolumeState").unwrap();
    assert_eq!(volume["payload"]["volume"], 68, "the directives behind the hung one ran, in order");
    device.runtime.take().unwrap().shutdown().await;
    let changes = volume_changes(&device);
    assert_eq!((changes.get(&67), changes.get(&68), changes.get(&66)), (Some(&1), Some(&1), None), "{changes:?}");
    device.sim.clone().shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_directive_after_probation_restarts_the_same_version() {
    let (mut device, _, faulty) = hang_behind_two_directives(Duration::ZERO).await;
    let restarted = device.wait_for(|e| matches!(e, RuntimeEvent::PluginRestarted { .. })).await;
    let RuntimeEvent::PluginRestarted { interface, reason } = restarted else { unreachable!() };
    assert_eq!(interface, "Speaker");
    assert!(reason.contains("stuck in directive stuck"), "{reason}");
    assert_eq!(speaker_path(&device), faulty, "a fresh instance of the committed version serves");
    set_volume(&device, "fresh", 30);
    volume_changed_to(&device, 30).await;
    device.stop().await;
}
