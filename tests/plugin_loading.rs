//! Plugin files that are not plugins are refused with a clear error naming the file; the others load.

mod common;

use avs_core::observe::RuntimeEvent;
use common::{built_plugin_dir, Device};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_plugin_file_is_refused_by_name_and_the_rest_still_load_and_serve() {
    let plugins = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(built_plugin_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("libavs_") && name.ends_with(".so") {
            std::fs::copy(&path, plugins.path().join(&name)).unwrap();
        }
    }
    // A library of the device template is corrupt (a bad flash, a truncated download).
    std::fs::write(plugins.path().join("libavs_speech_recognizer.so"), b"\x7fELF but not really").unwrap();

    let mut device = Device::launch(plugins.path().to_path_buf()).await;
    let rejected = device.wait_for(|e| matches!(e, RuntimeEvent::PluginRejected { .. })).await;
    let RuntimeEvent::PluginRejected { path, error } = rejected else { unreachable!() };
    assert!(
        path.ends_with("libavs_speech_recognizer.so") && error.contains("not an avs-runtime plugin"),
        "{path}: {error}"
    );
    device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;
    assert_eq!(device.runtime().plugins().slots().len(), 3, "the three good plugins load despite the broken file");
    device.sim.push_directive(
        serde_json::json!({"directive": {"header": {"namespace": "Speaker", "name": "SetMute", "messageId": "m"}, "payload": {"mute": true}}}),
        vec![],
    );
    device
        .wait_for(|e| matches!(e, RuntimeEvent::DirectiveHandled { name, outcome: Ok(()), .. } if name == "SetMute"))
        .await;
    device.stop().await;
}

#[test]
fn the_loader_names_the_file_and_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("libbroken.so");
    std::fs::write(&path, b"\x7fELF but not really").unwrap();
    let error = avs_core::plugins::loader::load(&path, &avs_core::plugins::Trust::AllowUnsigned)
        .err()
        .expect("not a plugin")
        .to_string();
    assert!(error.contains("libbroken.so") && error.contains("not an avs-runtime plugin"), "{error}");
}

/// Loads the plugins of `plugin_dir` with `config` changes; returns the loaded interfaces and the
/// rejections, once the runtime has loaded what it could.
async fn load_with(
    dir: &tempfile::TempDir,
    change: impl FnOnce(&mut avs_core::config::Config),
) -> (Vec<String>, Vec<(String, String)>) {
    let sim = avs_sim::Sim::start(avs_sim::SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim")))
        .await
        .unwrap();
    let mut config = common::device_config(&sim, dir, built_plugin_dir());
    change(&mut config);
    let observer = avs_core::observe::Observer::default();
    let mut events = observer.subscribe();
    let runtime = avs_core::runtime::Runtime::start_observed(config, common::test_options(), observer).await.unwrap();
    let loaded = runtime.plugins().slots().iter().map(|s| s.manifest.interface.clone()).collect();
    let mut rejected = Vec::new();
    while let Ok(event) = events.try_recv() {
        if let RuntimeEvent::PluginRejected { path, error } = event {
            rejected.push((path, error));
        }
    }
    runtime.shutdown().await;
    sim.shutdown().await;
    (loaded, rejected)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_tampered_plugins_are_refused_before_loading_and_the_rest_load() {
    let dir = tempfile::tempdir().unwrap();
    let (loaded, rejected) = load_with(&dir, |config| {
        // One library loses its signature, another is modified after signing.
        std::fs::remove_file(config.plugin_dir.join("libavs_speaker.so.sig")).unwrap();
        let system = config.plugin_dir.join("libavs_system.so");
        let mut bytes = std::fs::read(&system).unwrap();
        bytes.extend_from_slice(b"appended after signing");
        std::fs::write(&system, bytes).unwrap();
    })
    .await;
    assert_eq!(loaded, ["SpeechRecognizer", "SpeechSynthesizer"]);
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    let speaker = rejected.iter().find(|(p, _)| p.ends_with("libavs_speaker.so")).expect("speaker refused");
    assert!(speaker.1.contains("no signature"), "{}", speaker.1);
    let system = rejected.iter().find(|(p, _)| p.ends_with("libavs_system.so")).expect("system refused");
    assert!(system.1.contains("does not verify"), "{}", system.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_loads_unsigned_plugins() {
    let dir = tempfile::tempdir().unwrap();
    let (loaded, rejected) = load_with(&dir, |config| {
        for entry in std::fs::read_dir(&config.plugin_dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "sig") {
                std::fs::remove_file(path).unwrap();
            }
        }
        config.plugin_trusted_keys.clear();
        config.allow_unsigned_plugins = true;
    })
    .await;
    assert_eq!(loaded.len(), 4, "{rejected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_keys_or_development_mode_the_runtime_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let sim = avs_sim::Sim::start(avs_sim::SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim")))
        .await
        .unwrap();
    let mut config = common::device_config(&sim, &dir, built_plugin_dir());
    config.plugin_trusted_keys.clear();
    let error =
        avs_core::runtime::Runtime::start(config, common::test_options()).await.err().expect("must refuse").to_string();
    assert!(error.contains("no trusted plugin keys"), "{error}");
    sim.shutdown().await;
}
