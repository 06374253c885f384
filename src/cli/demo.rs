//! `avs demo`: the whole product in one run against an embedded avs-sim — code-based linking,
//! capabilities, a spoken question answered with speech, and a cloud-initiated volume change.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::plugins::signature;
use avs_core::runtime::{Runtime, RuntimeOptions};
use avs_sim::{ReceivedEvent, Sim, SimConfig, SimHandle};
use clap::Args;
use serde_json::json;
use tokio::sync::broadcast;

/// "What's the weather?", 16 kHz / 16-bit / mono, spoken by espeak-ng (see sim/assets/README.md).
const UTTERANCE: &[u8] = include_bytes!("../../assets/utterance.wav");

const STEP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Args)]
pub struct DemoArgs {
    /// Keep the device's and the sim's data here instead of a temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Plugin directory (default: next to the avs binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let temp;
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => {
            temp = tempfile::tempdir().context("creating a temporary data dir")?;
            temp.path().to_path_buf()
        }
    };
    let started = Instant::now();
    let step = |text: &str| println!("[{:>6.2}s] {text}", started.elapsed().as_secs_f64());

    let sim = Sim::start(SimConfig::new("127.0.0.1:0".parse()?, data_dir.join("sim"))).await?;
    step(&format!("avs-sim up at {} (HTTP/2 over TLS; CA {})", sim.base_url(), sim.ca_pem_path().display()));

    let result = drive(&sim, &data_dir, args.plugin_dir, &step).await;
    let violations = sim.violations();
    sim.shutdown().await;
    result?;
    if !violations.is_empty() {
        bail!("avs-sim found {} schema violation(s) in what the device sent: {violations:?}", violations.len());
    }
    step("avs-sim validated every event against the schemas: 0 violations");
    step("demo finished");
    Ok(())
}

async fn drive(
    sim: &SimHandle,
    data_dir: &Path,
    plugin_dir: Option<PathBuf>,
    step: &impl Fn(&str),
) -> anyhow::Result<()> {
    let device_dir = data_dir.join("device");
    let mut config = Config::defaults();
    config.endpoint = Some(sim.base_url());
    config.lwa_url = Some(sim.base_url());
    config.capabilities_url = Some(sim.base_url());
    config.ca_file = Some(sim.ca_pem_path());
    config.data_dir = device_dir.clone();
    config.audio_sink = device_dir.join("played").display().to_string();
    let (key, public) = signature::write_key_pair(&data_dir.join("keys"), "plugin-signing")?;
    let built = plugin_dir.unwrap_or_else(super::default_plugin_dir);
    let signed = signature::copy_and_sign(&built, &device_dir.join("plugins"), &key)?;
    step(&format!(
        "{} plugins signed with a freshly generated Ed25519 key (the runtime refuses unsigned ones)",
        signed.len()
    ));
    config.plugin_dir = device_dir.join("plugins");
    config.plugin_trusted_keys = vec![public];

    let observer = Observer::default();
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, RuntimeOptions::default(), observer).await?;
    let outcome = converse(sim, &runtime, &mut events, &device_dir, step).await;
    runtime.shutdown().await;
    step("runtime shut down cleanly");
    outcome
}

async fn converse(
    sim: &SimHandle,
    runtime: &Runtime,
    events: &mut broadcast::Receiver<RuntimeEvent>,
    device_dir: &Path,
    step: &impl Fn(&str),
) -> anyhow::Result<()> {
    let mut plugins = 0;
    let connected = loop {
        match next(events).await? {
            RuntimeEvent::PluginLoaded { interface, version, path } => {
                plugins += 1;
                step(&format!("plugin loaded: {interface} {version} from {path}"));
            }
            RuntimeEvent::PluginRejected { path, error } => step(&format!("plugin rejected: {path}: {error}")),
            RuntimeEvent::LinkingCode { user_code, verification_uri } => step(&format!(
                "code-based linking: visit {verification_uri} and enter {user_code} (avs-sim approves it)"
            )),
            RuntimeEvent::Linked => step("linked: access and refresh tokens stored (mode 0600)"),
            RuntimeEvent::CapabilitiesPublished { interfaces } => {
                let list: Vec<String> = interfaces.iter().map(|(i, v)| format!("{i} {v}")).collect();
                step(&format!("capabilities published: {}", list.join(", ")));
            }
            RuntimeEvent::Connected { connection } => break connection,
            RuntimeEvent::Disconnected { reason } => step(&format!("not connected yet: {reason}")),
            _ => {}
        }
    };
    if plugins == 0 {
        bail!("no plugin was loaded — build them first with `cargo build --workspace`");
    }
    let sync = sim.wait_for_event(|e| e.name == "SynchronizeState", STEP_TIMEOUT).await?;
    step(&format!(
        "connected (connection {connected}): downchannel open, SynchronizeState sent with {} context entries",
        context_len(&sync)
    ));

    let utterance = device_dir.join("utterance.wav");
    std::fs::write(&utterance, UTTERANCE).context("writing the bundled utterance")?;
    step("user asks \"What's the weather?\" (bundled 16 kHz PCM utterance)");
    runtime.user_event("user.recognize", &json!({"profile": "CLOSE_TALK", "audio": {"file": utterance}}));
    let recognize = sim.wait_for_event(|e| e.name == "Recognize", STEP_TIMEOUT).await?;
    step(&format!(
        "SpeechRecognizer.Recognize sent: {} bytes of audio, dialogRequestId {}",
        recognize.audio_bytes,
        recognize.dialog_request_id.as_deref().unwrap_or("-")
    ));
    let started = sim.wait_for_event(|e| e.name == "SpeechStarted", STEP_TIMEOUT).await?;
    step(&format!(
        "SpeechSynthesizer.Speak received with an MP3 attachment; SpeechStarted (token {})",
        token(&started)
    ));
    sim.wait_for_event(|e| e.name == "SpeechFinished", STEP_TIMEOUT).await?;
    let played = played_files(&device_dir.join("played"));
    step(&format!("answer played to {}; SpeechFinished sent", played.join(", ")));

    step("the cloud sets the volume to 25 (Speaker.SetVolume on the downchannel)");
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": "demo-volume-1"}, "payload": {"volume": 25}}}),
        Vec::new(),
    );
    let changed = sim.wait_for_event(|e| e.name == "VolumeChanged", STEP_TIMEOUT).await?;
    step(&format!("Speaker.VolumeChanged sent: {}", changed.json["event"]["payload"]));
    Ok(())
}

async fn next(events: &mut broadcast::Receiver<RuntimeEvent>) -> anyhow::Result<RuntimeEvent> {
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, events.recv()).await {
            Err(_) => bail!("the runtime made no progress for {STEP_TIMEOUT:?}"),
            Ok(Ok(event)) => return Ok(event),
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => continue,
            Ok(Err(broadcast::error::RecvError::Closed)) => bail!("the runtime stopped"),
        }
    }
}

fn context_len(event: &ReceivedEvent) -> usize {
    event.json["context"].as_array().map_or(0, Vec::len)
}

fn token(event: &ReceivedEvent) -> String {
    event.json["event"]["payload"]["token"].as_str().unwrap_or("-").to_string()
}

fn played_files(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| format!("{} ({} bytes)", e.path().display(), e.metadata().map(|m| m.len()).unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}
