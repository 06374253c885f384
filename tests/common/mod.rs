//! A device runtime and an avs-sim on loopback, talking real TLS + HTTP/2, for integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::time::Duration;

use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::plugins::signature;
use avs_core::runtime::{Runtime, RuntimeOptions};
use avs_sim::{ReceivedEvent, Sim, SimConfig, SimHandle};
use tokio::sync::broadcast;

pub const WAIT: Duration = Duration::from_secs(20);

/// The directory `cargo build --workspace` put the plugin libraries in (next to `target/<profile>/deps`,
/// where this test binary runs from).
pub fn built_plugin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>").to_path_buf();
    assert!(
        dir.join("libavs_speaker.so").exists(),
        "plugin libraries missing in {} — run `cargo build --workspace` before the tests (see README)",
        dir.display()
    );
    dir
}

pub struct Device {
    pub sim: SimHandle,
    pub runtime: Option<Runtime>,
    pub events: broadcast::Receiver<RuntimeEvent>,
    pub dir: tempfile::TempDir,
}

impl Device {
    /// Starts avs-sim and a runtime loading the plugins of `plugin_dir`, and waits until it is connected.
    pub async fn connect(plugin_dir: PathBuf) -> Device {
        let mut device = Device::launch(plugin_dir).await;
        device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;
        device
    }

    /// Starts avs-sim and a runtime without waiting for anything.
    pub async fn launch(plugin_dir: PathBuf) -> Device {
        Device::launch_with(plugin_dir, |_| {}, test_options(), |_| {}).await
    }

    /// Like `connect`, with the sim's configuration changed, the runtime's options given and the
    /// device's configuration changed.
    pub async fn connect_with(
        plugin_dir: PathBuf,
        sim: impl FnOnce(&mut SimConfig),
        options: RuntimeOptions,
        configure: impl FnOnce(&mut Config),
    ) -> Device {
        let mut device = Device::launch_with(plugin_dir, sim, options, configure).await;
        device.wait_for(|e| matches!(e, RuntimeEvent::Connected { .. })).await;
        device
    }

    pub async fn launch_with(
        plugin_dir: PathBuf,
        change: impl FnOnce(&mut SimConfig),
        options: RuntimeOptions,
        configure: impl FnOnce(&mut Config),
    ) -> Device {
        let dir = tempfile::tempdir().unwrap();
        let mut config = SimConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().join("sim"));
        change(&mut config);
        let sim = Sim::start(config).await.unwrap();
        let observer = Observer::default();
        let events = observer.subscribe();
        let mut config = device_config(&sim, &dir, plugin_dir);
        configure(&mut config);
        let runtime = Runtime::start_observed(config, options, observer).await.unwrap();
        Device { sim, runtime: Some(runtime), events, dir }
    }

    /// The user asks something (the bundled utterance).
    pub fn speak_to_it(&self) {
        let utterance = self.dir.path().join("utterance.wav");
        if !utterance.exists() {
            std::fs::write(&utterance, include_bytes!("../../assets/utterance.wav")).unwrap();
        }
        let request = serde_json::json!({"profile": "CLOSE_TALK", "audio": {"file": utterance}});
        self.runtime().user_event("user.recognize", &request);
    }

    pub fn runtime(&self) -> &Runtime {
        self.runtime.as_ref().expect("running")
    }

    /// The next runtime event matching `pred`, skipping others.
    pub async fn wait_for(&mut self, pred: impl Fn(&RuntimeEvent) -> bool) -> RuntimeEvent {
        next_matching(&mut self.events, pred).await
    }

    pub async fn sim_event(&self, pred: impl Fn(&ReceivedEvent) -> bool) -> ReceivedEvent {
        match self.sim.wait_for_event(pred, WAIT).await {
            Ok(event) => event,
            Err(e) => {
                let received: Vec<String> =
                    self.sim.events().iter().map(|e| format!("{}.{}", e.namespace, e.name)).collect();
                panic!("event at avs-sim: {e}; received so far: {received:?}")
            }
        }
    }

    pub async fn stop(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown().await;
        }
        self.sim.clone().shutdown().await;
    }
}

/// The plugins of `plugin_dir`, copied into the test's own dir and signed with a fresh key, as a device
/// would receive them; returns the signed dir and the public key to trust.
pub fn sign_plugins(dir: &tempfile::TempDir, plugin_dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let keys = dir.path().join("keys");
    let (key, public) = match keys.join("plugin-signing.pub").exists() {
        true => (keys.join("plugin-signing.key"), keys.join("plugin-signing.pub")),
        false => signature::write_key_pair(&keys, "plugin-signing").unwrap(),
    };
    let signed = dir.path().join("signed-plugins");
    signature::copy_and_sign(plugin_dir, &signed, &key).unwrap();
    (signed, public)
}

/// A distinct build of a built plugin: the same code with bytes appended (a different file, hash and path,
/// as a rebuilt artifact would have), signed with the test's key (`sign_plugins` made it).
pub fn rebuilt(dir: &std::path::Path, library: &str, label: &str) -> PathBuf {
    let stem = library.trim_end_matches(".so");
    let path = dir.join("ota").join(format!("{stem}-{label}.so"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut bytes = std::fs::read(built_plugin_dir().join(library)).unwrap();
    bytes.extend_from_slice(format!("build {label}").as_bytes());
    std::fs::write(&path, bytes).unwrap();
    signature::sign_file(&path, &dir.join("keys/plugin-signing.key")).unwrap();
    path
}

pub fn device_config(sim: &SimHandle, dir: &tempfile::TempDir, plugin_dir: PathBuf) -> Config {
    let mut config = Config::defaults();
    config.endpoint = Some(sim.base_url());
    config.lwa_url = Some(sim.base_url());
    config.capabilities_url = Some(sim.base_url());
    config.ca_file = Some(sim.ca_pem_path());
    config.data_dir = dir.path().join("device");
    config.audio_sink = dir.path().join("played").display().to_string();
    let (signed, public) = sign_plugins(dir, &plugin_dir);
    config.plugin_dir = signed;
    config.plugin_trusted_keys = vec![public];
    config
}

pub fn test_options() -> RuntimeOptions {
    RuntimeOptions { playback_speed: 8.0, ..RuntimeOptions::default() }
}

pub fn payload(event: &ReceivedEvent) -> &serde_json::Value {
    &event.json["event"]["payload"]
}

/// The next event of `events` matching `pred`, skipping others; panics after [`WAIT`].
pub async fn next_matching(
    events: &mut broadcast::Receiver<RuntimeEvent>,
    pred: impl Fn(&RuntimeEvent) -> bool,
) -> RuntimeEvent {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Err(_) => panic!("runtime event not seen within {WAIT:?}"),
            Ok(Ok(event)) if pred(&event) => return event,
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) => panic!("runtime stopped"),
        }
    }
}

/// A runtime started from `config` with the tests' options, once connected, and its events from the
/// start (for tests that restart a device on the same data dir).
pub async fn start_connected(config: Config) -> (Runtime, broadcast::Receiver<RuntimeEvent>) {
    let observer = Observer::default();
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, test_options(), observer).await.unwrap();
    next_matching(&mut events, |e| matches!(e, RuntimeEvent::Connected { .. })).await;
    (runtime, events)
}
