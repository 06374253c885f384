//! `avs demo`: the whole product in one run against an embedded avs-sim — code-based linking,
//! capabilities, a spoken question answered with speech, and a cloud-initiated volume change; then,
//! if asked, a live OTA upgrade (`--ota`) and the interfaces' scenarios (`--scenario`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use avs_core::config::Config;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::plugins::signature;
use avs_core::process;
use avs_core::runtime::{Runtime, RuntimeOptions};
use avs_core::template::DeviceTemplate;
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
    /// Start with System 1.0 and upgrade it live to 1.1 while directives stream (OTA); then measure
    /// memory over more swaps.
    #[arg(long)]
    ota: bool,
    /// Then run an avs-sim scenario (set-timer, play-music, weather, pair-phone, bass-up, volume-down,
    /// notification, switch-input) or `all`, on the screen-device template unless --template says otherwise.
    #[arg(long, value_name = "NAME|all")]
    scenario: Option<String>,
    /// The device template to run (default: minimal; screen-device with --scenario).
    #[arg(long)]
    template: Option<String>,
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

    let scenarios = args.scenario.as_deref().map(super::scenario::selected).transpose()?;
    let template = match (args.template, &scenarios) {
        (Some(template), _) => Some(template),
        (None, Some(_)) => Some("screen-device".to_string()),
        (None, None) => None,
    };
    let result = drive(&sim, &data_dir, args.plugin_dir, template, args.ota, scenarios, &step).await;
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
    template: Option<String>,
    ota: bool,
    scenarios: Option<Vec<&'static avs_sim::Scenario>>,
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
    let signed_dir = data_dir.join("signed-plugins");
    let signed = signature::copy_and_sign(&built, &signed_dir, &key)?;
    step(&format!(
        "{} plugins signed with a freshly generated Ed25519 key (the runtime refuses unsigned ones)",
        signed.len()
    ));
    config.plugin_dir = signed_dir.clone();
    config.plugin_trusted_keys = vec![public];
    if let Some(template) = template {
        config.template = template;
    }
    if ota {
        // The device as it shipped a year ago: System 1.0, which the OTA below upgrades to 1.1.
        let mut files = DeviceTemplate::resolve(&config.template)?.files();
        files.iter_mut().filter(|f| *f == "avs_system").for_each(|f| *f = "avs_system_1_0".into());
        config.plugins = files;
    }

    let observer = Observer::default();
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, RuntimeOptions::default(), observer).await?;
    let mut outcome = converse(sim, &runtime, &mut events, &device_dir, step).await;
    if ota && outcome.is_ok() {
        outcome = show_ota(sim, &runtime, &signed_dir, &key, data_dir, step).await;
    }
    if let (Some(scenarios), true) = (scenarios, outcome.is_ok()) {
        outcome = super::scenario::run(sim, &runtime, &scenarios, &device_dir.join("utterance.wav"), step).await;
    }
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

const OTA_DIRECTIVES: usize = 3_000;
/// Distinct rebuilt artifacts swapped in while idle, to measure memory per swap.
const MEMORY_SWAPS: usize = 6;

/// The published capability document as `Interface version, …`.
fn capability_list(document: Option<serde_json::Value>) -> String {
    let capabilities = document.map(|d| d["capabilities"].clone()).unwrap_or_default();
    let list = capabilities.as_array().cloned().unwrap_or_default();
    let names: Vec<String> = list
        .iter()
        .map(|c| format!("{} {}", c["interface"].as_str().unwrap_or("?"), c["version"].as_str().unwrap_or("?")))
        .collect();
    names.join(", ")
}

/// Live OTA: System directives stream from the cloud while System is upgraded from 1.0 to 1.1; then the
/// cloud uses what only 1.1 has.
async fn show_ota(
    sim: &SimHandle,
    runtime: &Runtime,
    plugins: &Path,
    key: &Path,
    data_dir: &Path,
    step: &impl Fn(&str),
) -> anyhow::Result<()> {
    let published = sim.capability_documents().len();
    step(&format!("OTA: capability document before: {}", capability_list(sim.capability_documents().last().cloned())));
    let mut events = runtime.observer().subscribe();
    let push = |n: usize| {
        let directive = json!({"directive": {"header": {"namespace": "System", "name": "ResetUserInactivity", "messageId": format!("ota-{n}")}, "payload": {}}});
        sim.push_directive(directive, Vec::new());
    };
    (0..OTA_DIRECTIVES / 2).for_each(push);
    let report = runtime.plugins().swap("System", &plugins.join("libavs_system.so")).await?;
    step(&format!(
        "OTA: System {} → {} committed while {} System directives were in flight",
        report.from_version,
        report.to_version,
        OTA_DIRECTIVES / 2
    ));
    (OTA_DIRECTIVES / 2..OTA_DIRECTIVES).for_each(push);

    // Every directive handled exactly once, and by which version.
    let mut handled = std::collections::HashMap::new();
    let mut by_version = std::collections::BTreeMap::<String, usize>::new();
    while handled.len() < OTA_DIRECTIVES {
        if let RuntimeEvent::DirectiveHandled { message_id, plugin, outcome, .. } = next(&mut events).await? {
            if let Some(n) = message_id.strip_prefix("ota-") {
                outcome.map_err(|e| anyhow::anyhow!("directive {message_id} failed: {e}"))?;
                if handled.insert(n.to_string(), ()).is_some() {
                    bail!("directive {message_id} was handled twice");
                }
                let file = Path::new(plugin.as_str())
                    .file_name()
                    .map_or(plugin.to_string(), |f| f.to_string_lossy().into_owned());
                *by_version.entry(file).or_default() += 1;
            }
        }
    }
    let split: Vec<String> = by_version.iter().map(|(file, n)| format!("{n} by {file}")).collect();
    step(&format!(
        "OTA: {OTA_DIRECTIVES} directives pushed, each handled exactly once ({}): zero lost",
        split.join(", ")
    ));
    let after = sim.wait_for_capabilities(published + 1, STEP_TIMEOUT).await?;
    step(&format!("OTA: capability document after: {}", capability_list(Some(after))));
    sim.push_directive(
        json!({"directive": {"header": {"namespace": "System", "name": "ReportSoftwareInfo", "messageId": "ota-info"}, "payload": {}}}),
        Vec::new(),
    );
    let info = sim.wait_for_event(|e| e.name == "SoftwareInfo", STEP_TIMEOUT).await?;
    step(&format!("OTA: the cloud asks what only 1.1 can answer: SoftwareInfo {}", info.json["event"]["payload"]));

    // Memory per swap, measured apart from the traffic: distinct Speaker artifacts swapped in while idle.
    let speaker = std::fs::read(plugins.join("libavs_speaker.so")).context("reading the Speaker plugin")?;
    // The sim shares this process, but it does not grow with swaps.
    let before = process::rss_bytes() / 1024;
    for n in 1..=MEMORY_SWAPS {
        let build = super::rebuilt_artifact(&speaker, "libavs_speaker", &data_dir.join("ota"), n, key)?;
        runtime.plugins().swap("Speaker", &build).await?;
    }
    let after = process::rss_bytes() / 1024;
    step(&format!(
        "OTA memory: RSS {before} KiB → {after} KiB over {MEMORY_SWAPS} swaps: {} KiB per swap ({} KiB plugin file; old versions stay mapped by design, which makes rollback instant)",
        after.saturating_sub(before) / MEMORY_SWAPS as u64,
        speaker.len() / 1024
    ));
    Ok(())
}
