//! `avs bench --footprint`: resident memory of the device after loading each device template, and
//! after each of several OTA swaps.
//!
//! Each template is measured in a fresh process (`avs bench --footprint-of TEMPLATE`, connected to the
//! one avs-sim process): libraries are never unloaded, so measuring templates one after the other in
//! one process would count the earlier ones in the later. Last, it handles directives of every kind the
//! load generator sends and measures again: RSS in operation, with the code they run and the
//! attachments, alerts and buffers they leave.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use avs_core::plugins::signature;
use avs_core::runtime::RuntimeOptions;
use serde_json::{json, Value};

use super::sim::{Admin, SimProcess};
use avs_core::process::rss_bytes;
use avs_core::runtime::Runtime;
use avs_sim::load::{LoadSpec, Mix};

pub const TEMPLATES: [&str; 3] = ["minimal", "headless-speaker", "screen-device"];

/// What a measuring process needs: the sim and the signed plugins.
pub struct Setup {
    pub sim_url: String,
    pub sim_ca: PathBuf,
    pub signed_plugins: PathBuf,
    pub signing_key: PathBuf,
    pub trim_code_pages: bool,
}

/// Measures every template, each in its own process; OTA swaps in the last (the largest) one.
pub async fn run(
    plugin_dir: &Path,
    swaps: usize,
    trim_code_pages: bool,
    worker_threads: Option<NonZeroUsize>,
    as_json: bool,
) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary dir")?;
    let (key, _) = signature::write_key_pair(&temp.path().join("keys"), "plugin-signing")?;
    let signed = temp.path().join("signed-plugins");
    signature::copy_and_sign(plugin_dir, &signed, &key)?;
    // The device runs from a copy of this executable that no other process maps, as on a device: pages
    // of a file another process maps (this one, the sim) stay cached in the large folios exec read them
    // into, and a page the device faults back after trimming its code maps its whole folio. Copied
    // before any child is spawned, so no child inherits the file open for writing.
    let exe = temp.path().join("avs-device");
    std::fs::copy(std::env::current_exe()?, &exe).context("copying the executable for the device")?;
    let sim = SimProcess::start(&temp.path().join("sim")).await?;
    let mut measured = Vec::new();
    for (i, template) in TEMPLATES.iter().enumerate() {
        let swaps = if i + 1 == TEMPLATES.len() { swaps } else { 0 };
        let mut command = Command::new(&exe);
        command
            .args(["bench", "--footprint-of", template, "--swaps", &swaps.to_string(), "--sim-url", &sim.base_url])
            .arg("--sim-ca")
            .arg(&sim.ca)
            .arg("--signed-plugins")
            .arg(&signed)
            .arg("--signing-key")
            .arg(&key)
            .env("RUST_LOG", "warn");
        if !trim_code_pages {
            command.arg("--keep-code-pages");
        }
        if let Some(threads) = worker_threads {
            command.arg("--worker-threads").arg(threads.to_string());
        }
        let output = tokio::task::spawn_blocking(move || command.output()).await??;
        if !output.status.success() {
            bail!("measuring {template} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let result: Value = serde_json::from_str(line.trim()).with_context(|| format!("{template}: {line:?}"))?;
        measured.push(result);
    }
    drop(sim);
    if as_json {
        println!("{}", json!({"mode": MODE, "templates": measured}));
        return Ok(());
    }
    println!("avs bench --footprint ({MODE})");
    for m in &measured {
        println!(
            "{:<17} {:>2} plugins loaded, connected: RSS {:.1} MiB",
            m["template"].as_str().unwrap_or("?"),
            m["plugins"],
            mib(&m["rss_bytes"])
        );
        let swaps = m["swaps"].as_array().cloned().unwrap_or_default();
        let mut before = m["rss_bytes"].as_u64().unwrap_or(0);
        for (n, rss) in swaps.iter().enumerate() {
            let now = rss.as_u64().unwrap_or(0);
            println!(
                "{:<17} after OTA swap {} of Speaker: RSS {:.1} MiB ({:+.2} MiB)",
                "",
                n + 1,
                mib(rss),
                (now as f64 - before as f64) / 1048576.0
            );
            before = now;
        }
        println!(
            "{:<17} after {} directives of the default mix: RSS {:.1} MiB",
            "",
            m["directives"],
            mib(&m["rss_after_directives_bytes"])
        );
    }
    println!("(each swap keeps the previous library mapped and parked for an instant rollback, by design)");
    Ok(())
}

const MODE: &str =
    "each template in a fresh device process, from its own copy of the executable; avs-sim in another process";

fn mib(bytes: &Value) -> f64 {
    bytes.as_u64().unwrap_or(0) as f64 / 1048576.0
}

/// In the measuring process: load `template`, connect, report RSS; then swap Speaker `swaps` times with
/// distinct rebuilt artifacts and report RSS after each; then handle [`EXERCISE`] directives and report
/// RSS in operation. Prints one JSON line.
pub async fn measure(template: &str, swaps: usize, setup: &Setup) -> anyhow::Result<()> {
    let temp = tempfile::tempdir().context("creating a temporary dir")?;
    let config = super::device_config(
        &setup.sim_url,
        &setup.sim_ca,
        temp.path(),
        &setup.signed_plugins,
        &setup.signing_key.with_extension("pub"),
        template,
        setup.trim_code_pages,
    );
    let (runtime, _) = super::start_connected(config, RuntimeOptions::default(), 256).await?;
    // Read before the first measurement: the bench's own copy of the library is not the runtime's growth.
    let speaker =
        std::fs::read(setup.signed_plugins.join("libavs_speaker.so")).context("reading the Speaker plugin")?;
    let interfaces: Vec<String> = runtime.plugins().slots().iter().map(|s| s.interface().to_string()).collect();
    let measured = async {
        let loaded = rss_bytes();
        let mut after_swaps = Vec::new();
        for n in 1..=swaps {
            let path = super::super::rebuilt_artifact(&speaker, "libavs_speaker", temp.path(), n, &setup.signing_key)?;
            runtime.plugins().swap("Speaker", &path).await.map_err(|e| anyhow::anyhow!("OTA swap {n}: {e}"))?;
            after_swaps.push(rss_bytes());
        }
        // In operation: the default mix's directives whose interface the template has.
        let mix = Mix(Mix::default_for(true)
            .0
            .into_iter()
            .filter(|(kind, _)| interfaces.iter().any(|i| i == kind.namespace()))
            .collect());
        let load = LoadSpec {
            media_url: format!("{}/media/song-1.mp3", setup.sim_url),
            ..super::plain_load(EXERCISE, mix, true, "footprint")?
        };
        handle(&runtime, &Admin::connect(&setup.sim_url, &setup.sim_ca).await?, &load).await?;
        anyhow::Ok((loaded, after_swaps, rss_bytes()))
    }
    .await;
    runtime.shutdown().await;
    let (loaded, after_swaps, operating) = measured?;
    println!(
        "{}",
        json!({"template": template, "plugins": interfaces.len(), "rss_bytes": loaded, "swaps": after_swaps,
               "rss_after_directives_bytes": operating, "directives": EXERCISE})
    );
    Ok(())
}

/// Directives of the default mix (with Speak; those of the template's interfaces) handled before RSS
/// in operation is measured.
const EXERCISE: u64 = 2_000;

/// Streams `load` to the runtime and waits until its plugins handled all of it.
async fn handle(runtime: &Runtime, admin: &Admin, load: &LoadSpec) -> anyhow::Result<()> {
    runtime.plugins().dispatch_stats().reset();
    super::push(admin, load).await?;
    super::wait_handled(runtime, load, &super::Outcomes::default(), &indicatif::ProgressBar::hidden()).await
}
