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
    /// Then swap the Speaker plugin live, several times, while directives stream (OTA).
    #[arg(long)]
    ota: bool,
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

    let result = drive(&sim, &data_dir, args.plugin_dir, args.ota, &step).await;
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
    ota: bool,
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
    let signed = signature::copy_and_sign(&built, &data_dir.join("signed-plugins"), &key)?;
    step(&format!(
        "{} plugins signed with a freshly generated Ed25519 key (the runtime refuses unsigned ones)",
        signed.len()
    ));
    config.plugin_dir = data_dir.join("signed-plugins");
    config.plugin_trusted_keys = vec![public];

    let observer = Observer::default();
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, RuntimeOptions::default(), observer).await?;
    let mut outcome = converse(sim, &runtime, &mut events, &device_dir, step).await;
    if ota && outcome.is_ok() {
        outcome = show_ota(sim, &runtime, &built.join("libavs_speaker.so"), &key, data_dir, step).await;
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

/// Distinct rebuilt artifacts swapped in one after the other, as successive OTA updates would be.
const OTA_SWAPS: usize = 6;
const OTA_DIRECTIVES: usize = 3_000;

/// Live OTA: directives stream from the cloud while the Speaker plugin is replaced `OTA_SWAPS` times.
async fn show_ota(
    sim: &SimHandle,
    runtime: &Runtime,
    speaker: &Path,
    key: &Path,
    data_dir: &Path,
    step: &impl Fn(&str),
) -> anyhow::Result<()> {
    let document = |doc: Option<serde_json::Value>| -> String {
        let caps = doc.map(|d| d["capabilities"].clone()).unwrap_or_default();
        caps.as_array()
            .map(|list| {
                list.iter()
                    .map(|c| {
                        format!("{} {}", c["interface"].as_str().unwrap_or("?"), c["version"].as_str().unwrap_or("?"))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    step(&format!("OTA: capability document before: {}", document(sim.capability_documents().last().cloned())));
    // Each update is a distinct signed artifact (rebuilt Speaker 1.0 plugins: same interface version,
    // different files, as a bug-fix release would be).
    let mut builds = Vec::new();
    let bytes = std::fs::read(speaker).with_context(|| format!("reading {}", speaker.display()))?;
    for n in 1..=OTA_SWAPS {
        builds.push(rebuild(&bytes, data_dir, n, key)?);
    }
    let already = sim.events().iter().filter(|e| e.name == "VolumeChanged").count();
    let slice = OTA_DIRECTIVES / (OTA_SWAPS + 1);
    let mut pushed = 0;
    for (n, build) in builds.iter().enumerate() {
        for _ in 0..slice {
            let directive = json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": format!("ota-{pushed}")}, "payload": {"volume": pushed % 101}}});
            sim.push_directive(directive, Vec::new());
            pushed += 1;
        }
        let report = runtime.plugins().swap("Speaker", build).await?;
        step(&format!(
            "OTA swap {}: Speaker {} → {} from {} committed while directives flow ({pushed} pushed so far)",
            n + 1,
            report.from_version,
            report.to_version,
            build.file_name().map(|f| f.to_string_lossy()).unwrap_or_default()
        ));
    }
    while pushed < OTA_DIRECTIVES {
        let directive = json!({"directive": {"header": {"namespace": "Speaker", "name": "SetVolume", "messageId": format!("ota-{pushed}")}, "payload": {"volume": pushed % 101}}});
        sim.push_directive(directive, Vec::new());
        pushed += 1;
    }
    let changed = sim.wait_for_events(|e| e.name == "VolumeChanged", already + pushed, Duration::from_secs(60)).await?;
    let answered = changed.len() - already;
    if answered != pushed {
        bail!("{pushed} directives pushed but {answered} VolumeChanged events arrived");
    }
    step(&format!(
        "OTA: {pushed} directives pushed, {answered} VolumeChanged events at the cloud: zero lost, none twice"
    ));
    // Memory per swap, measured apart from the traffic: more distinct artifacts, swapped in while idle.
    let rss_before = rss_kib();
    for n in 0..OTA_SWAPS {
        let build = rebuild(&bytes, data_dir, OTA_SWAPS + 1 + n, key)?;
        runtime.plugins().swap("Speaker", &build).await?;
    }
    if let (Some(before), Some(after)) = (rss_before, rss_kib()) {
        step(&format!(
            "OTA memory: RSS {before} KiB → {after} KiB over {OTA_SWAPS} more idle swaps: {} KiB per swap ({} KiB plugin file; old versions stay mapped by design, which makes rollback instant)",
            after.saturating_sub(before) / OTA_SWAPS as u64,
            bytes.len() / 1024
        ));
    }
    step(&format!("OTA: capability document after: {} (re-published on every commit; unchanged here because a rebuild keeps the interface version)", document(sim.capability_documents().last().cloned())));
    Ok(())
}

/// A distinct signed artifact of the same plugin (bytes appended: another file, hash and path).
fn rebuild(bytes: &[u8], data_dir: &Path, n: usize, key: &Path) -> anyhow::Result<PathBuf> {
    let path = data_dir.join("ota").join(format!("libavs_speaker-rebuild-{n}.so"));
    std::fs::create_dir_all(path.parent().unwrap_or(data_dir))?;
    let mut rebuilt = bytes.to_vec();
    rebuilt.extend_from_slice(format!("rebuild {n}").as_bytes());
    std::fs::write(&path, rebuilt)?;
    signature::sign_file(&path, key)?;
    Ok(path)
}

/// This process's resident set size, from /proc (the sim shares the process; it does not grow with swaps).
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}
