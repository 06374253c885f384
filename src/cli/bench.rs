//! `avs bench`: directive throughput of the device runtime against avs-sim, next to the ceilings
//! measured in the same run on the same directives — what the transport alone, parse + validate alone
//! and (for the events the directives cause) a bare client sending them in order can do on this
//! machine — and `--footprint`, the device's memory per template and per OTA swap.

mod awake;
mod ceilings;
mod cores;
mod footprint;
mod plot;
mod sim;

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use avs_core::auth::Authorizer;
use avs_core::config::Config;
use avs_core::directives::DispatchSnapshot;
use avs_core::https::HttpsClient;
use avs_core::observe::{Observer, RuntimeEvent};
use avs_core::plugins::signature;
use avs_core::process;
use avs_core::runtime::{Runtime, RuntimeOptions};
use avs_sim::load::{LoadSpec, Mix};
use clap::Args;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use awake::KeepCoresAwake;
use ceilings::Validators;
use sim::{Admin, SimProcess};

const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Media plays this many times faster than real time: Play and Speak start playback, and a song that
/// ends quickly keeps the player from accumulating work the run did not ask for.
const PLAYBACK_SPEED: f64 = 1000.0;
/// How long the bench waits for the events a run caused to be sent.
const EVENT_DRAIN: Duration = Duration::from_secs(120);
/// At most this many of the run's events are sent again to measure the event ceiling.
const EVENT_SAMPLE: u64 = 10_000;
/// Broadcast capacity for the run's observer: failures and drops are counted from it.
const OBSERVER_CAPACITY: usize = 1 << 16;

const MODE: &str = "two processes: avs-sim runs as a child process (`avs sim`), so CPU time and peak RSS are \
                    the device runtime's alone (plus this command's bookkeeping)";

#[derive(Args)]
pub struct BenchArgs {
    /// How many directives the load generator sends.
    #[arg(long, default_value_t = 200_000)]
    directives: u64,
    /// The directive mix as Name:weight,… of SetVolume, SetAlert, Play, Speak. Default:
    /// SetVolume:50,SetAlert:25,Play:25 (with --attachments SetVolume:40,SetAlert:20,Play:20,Speak:20).
    /// Chosen so that the plugins do real work: each SetVolume changes the volume and sends
    /// VolumeChanged, each SetAlert (cycling 10 tokens, within maximumAlerts) persists to SQLite and sends
    /// SetAlertSucceeded, so three quarters of the directives also exercise the event path; Play is
    /// REPLACE_ENQUEUED (the next song: the queue changes, playback does not restart), Speak plays its
    /// attached MP3.
    #[arg(long, value_name = "NAME:WEIGHT,…", verbatim_doc_comment)]
    mix: Option<String>,
    /// Target rate (e.g. 20000 or 20000/s); default: as fast as the device reads.
    #[arg(long, value_name = "N/s")]
    rate: Option<String>,
    /// Speak directives carry their MP3 as a cid: attachment part (adds Speak to the default mix).
    #[arg(long)]
    attachments: bool,
    /// The device template the runtime loads.
    #[arg(long, default_value = "headless-speaker")]
    template: String,
    /// Plugin directory (default: next to the avs binary).
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// Print one JSON object instead of the report.
    #[arg(long)]
    json: bool,
    /// Draw throughput and dispatch latency over the run into this SVG file.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Instead of the throughput run: RSS after loading each device template, and after OTA swaps.
    #[arg(long)]
    footprint: bool,
    /// Run the device with `trim_code_pages = false`: plugin libraries keep the kernel's read-ahead
    /// (to compare footprint and throughput with trimming on, the default).
    #[arg(long)]
    keep_code_pages: bool,
    /// Run the device on cores left to go idle: without the nice-19 thread per core that keeps them
    /// awake during a full-speed run paced by its events (always during the event ceiling; never
    /// during a paced run). On a virtual machine waking an idle core costs tens of microseconds; see
    /// `awake.rs`.
    #[arg(long)]
    idle_cores: bool,
    /// Let the device's plugin threads run on any core. By default the bench runs them on the last core
    /// it may use (the device setting `plugin_cpus`), apart from the core the connection and the sim
    /// crowd onto; with a single core they run anywhere.
    #[arg(long)]
    plugins_anywhere: bool,
    /// Worker threads of the device's async runtime (the device setting `worker_threads`); default: the
    /// device's default. avs-sim keeps its own, one per core.
    #[arg(long, value_name = "N")]
    pub worker_threads: Option<NonZeroUsize>,
    /// How many OTA swaps --footprint measures (in the largest template).
    #[arg(long, default_value_t = 5)]
    swaps: usize,
    /// Internal: measure one template's footprint in this (fresh) process.
    #[arg(long, hide = true, requires_all = ["sim_url", "sim_ca", "signed_plugins", "signing_key"])]
    footprint_of: Option<String>,
    #[arg(long, hide = true)]
    sim_url: Option<String>,
    #[arg(long, hide = true)]
    sim_ca: Option<PathBuf>,
    #[arg(long, hide = true)]
    signed_plugins: Option<PathBuf>,
    #[arg(long, hide = true)]
    signing_key: Option<PathBuf>,
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    if let Some(template) = &args.footprint_of {
        let setup = footprint::Setup {
            sim_url: args.sim_url.clone().unwrap_or_default(),
            sim_ca: args.sim_ca.clone().unwrap_or_default(),
            signed_plugins: args.signed_plugins.clone().unwrap_or_default(),
            signing_key: args.signing_key.clone().unwrap_or_default(),
            trim_code_pages: !args.keep_code_pages,
        };
        return footprint::measure(template, args.swaps, &setup).await;
    }
    let plugin_dir = args.plugin_dir.clone().unwrap_or_else(super::default_plugin_dir);
    if args.footprint {
        return footprint::run(&plugin_dir, args.swaps, !args.keep_code_pages, args.worker_threads, args.json).await;
    }
    let spec = load_spec(&args)?;
    let report = throughput(&args, &plugin_dir, spec).await?;
    if let Some(path) = &args.plot {
        let title = format!(
            "avs bench: {} directives, {:.0}/s end to end ({})",
            report.spec.directives, report.directives_per_sec, report.spec.mix
        );
        plot::draw(path, &report.series, &title)?;
    }
    if args.json {
        println!("{}", report.to_json());
    } else {
        report.print(args.plot.as_deref());
    }
    Ok(())
}

fn load_spec(args: &BenchArgs) -> anyhow::Result<LoadSpec> {
    if args.directives == 0 {
        bail!("--directives must be at least 1");
    }
    let mix = match &args.mix {
        Some(text) => Mix::parse(text).map_err(|e| anyhow::anyhow!("--mix: {e}"))?,
        None => Mix::default_for(args.attachments),
    };
    let rate = args
        .rate
        .as_deref()
        .map(|r| {
            r.trim_end_matches("/s").trim().parse::<f64>().with_context(|| format!("--rate {r:?}: expected N or N/s"))
        })
        .transpose()?;
    let spec = LoadSpec { rate, ..plain_load(args.directives, mix, args.attachments, "bench")? };
    spec.check().map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(spec)
}

/// `directives` of `mix` at full speed; its media URL is filled in once the sim's address is known.
fn plain_load(directives: u64, mix: Mix, attachments: bool, message_prefix: &str) -> anyhow::Result<LoadSpec> {
    // Alerts due tomorrow: valid whenever the bench runs, and none sounds during it.
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    let alert_time =
        tomorrow.format(time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]+0000"))?;
    Ok(LoadSpec {
        directives,
        mix,
        rate: None,
        attachments,
        message_prefix: message_prefix.into(),
        alert_time,
        media_url: String::new(),
    })
}

/// The device's configuration against the sim, with signature-checked plugins.
fn device_config(
    sim_url: &str,
    sim_ca: &Path,
    data_dir: &Path,
    signed_plugins: &Path,
    trusted_key: &Path,
    template: &str,
    trim_code_pages: bool,
) -> Config {
    let mut config = Config::defaults();
    config.endpoint = Some(sim_url.to_string());
    config.lwa_url = Some(sim_url.to_string());
    config.capabilities_url = Some(sim_url.to_string());
    config.ca_file = Some(sim_ca.to_path_buf());
    config.data_dir = data_dir.join("device");
    config.audio_sink = "null".into();
    config.plugin_dir = signed_plugins.to_path_buf();
    config.plugin_trusted_keys = vec![trusted_key.to_path_buf()];
    config.template = template.to_string();
    config.trim_code_pages = trim_code_pages;
    config
}

/// Starts the runtime and waits until it is connected (downchannel open, SynchronizeState accepted).
async fn start_connected(
    config: Config,
    options: RuntimeOptions,
    observer_capacity: usize,
) -> anyhow::Result<(Runtime, broadcast::Receiver<RuntimeEvent>)> {
    let observer = Observer::with_capacity(observer_capacity);
    let mut events = observer.subscribe();
    let runtime = Runtime::start_observed(config, options, observer).await?;
    loop {
        match tokio::time::timeout(STEP_TIMEOUT, events.recv()).await {
            Ok(Ok(RuntimeEvent::Connected { .. })) => break,
            Ok(Ok(RuntimeEvent::PluginRejected { path, error })) => tracing::warn!("plugin rejected: {path}: {error}"),
            Ok(Ok(_)) | Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
            Ok(Err(broadcast::error::RecvError::Closed)) | Err(_) => {
                runtime.shutdown().await;
                bail!("the runtime did not connect to avs-sim within {STEP_TIMEOUT:?}");
            }
        }
    }
    if runtime.plugins().slots().is_empty() {
        runtime.shutdown().await;
        bail!("no plugin was loaded — build them first with `cargo build --workspace`");
    }
    Ok((runtime, events))
}

/// Failed and dropped directives, counted from the runtime's observer.
#[derive(Default)]
struct Outcomes {
    failed: AtomicU64,
    dropped: AtomicU64,
    /// Observer events missed because the counter fell behind (then the counts are lower bounds).
    missed: AtomicU64,
    /// Events plugins queued for AVS, and those that were sent (or given up on).
    events_queued: AtomicU64,
    events_settled: AtomicU64,
}

impl Outcomes {
    fn count(self: Arc<Self>, mut events: broadcast::Receiver<RuntimeEvent>) -> tokio::task::JoinHandle<()> {
        // Drained every millisecond rather than awaited: a receiver waiting in `recv` is woken for every
        // directive the runtime reports, and those wake-ups would be the bench's cost, charged to the
        // runtime. The channel holds far more than a millisecond of events.
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            loop {
                tick.tick().await;
                loop {
                    match events.try_recv() {
                        Ok(RuntimeEvent::DirectiveHandled { outcome: Err(_), .. }) => {
                            self.failed.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(RuntimeEvent::DirectiveDropped { .. }) => {
                            self.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(RuntimeEvent::EventQueued { .. }) => {
                            self.events_queued.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(RuntimeEvent::EventSent { .. } | RuntimeEvent::EventFailed { .. }) => {
                            self.events_settled.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(_) => {}
                        Err(broadcast::error::TryRecvError::Lagged(n)) => {
                            self.missed.fetch_add(n, Ordering::Relaxed);
                        }
                        Err(broadcast::error::TryRecvError::Empty) => break,
                        Err(broadcast::error::TryRecvError::Closed) => return,
                    }
                }
            }
        })
    }

    fn events(&self) -> (u64, u64) {
        (self.events_queued.load(Ordering::Relaxed), self.events_settled.load(Ordering::Relaxed))
    }

    /// Waits until every queued event was sent, up to `timeout`; false if it was not.
    async fn drain_events(&self, timeout: Duration, progress: &indicatif::ProgressBar) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let (queued, settled) = self.events();
            progress.set_position(settled);
            if settled >= queued {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn reset(&self) {
        for counter in [&self.failed, &self.dropped, &self.missed, &self.events_queued, &self.events_settled] {
            counter.store(0, Ordering::Relaxed);
        }
    }
}

struct Report {
    spec: LoadSpec,
    template: String,
    worker_threads: usize,
    plugin_cpus: Vec<usize>,
    warmup: u64,
    handled: u64,
    failed: u64,
    dropped: u64,
    observer_missed: u64,
    elapsed: Duration,
    directives_per_sec: f64,
    transport: ceilings::Transport,
    work: ceilings::Work,
    /// Measured when the run caused events.
    event_ceiling: Option<ceilings::EventCeiling>,
    p50_ns: u64,
    p99_ns: u64,
    p999_ns: u64,
    max_ns: u64,
    /// The runtime's: the threads keeping the cores awake are not counted.
    cpu_ns: u64,
    cores_kept_awake: bool,
    peak_rss_bytes: u64,
    series: Vec<avs_core::directives::stats::SeriesStep>,
    events: Events,
}

async fn throughput(args: &BenchArgs, plugin_dir: &Path, mut spec: LoadSpec) -> anyhow::Result<Report> {
    let temp = tempfile::tempdir().context("creating a temporary dir")?;
    let (key, public) = signature::write_key_pair(&temp.path().join("keys"), "plugin-signing")?;
    let signed = temp.path().join("signed-plugins");
    signature::copy_and_sign(plugin_dir, &signed, &key)?;
    let sim = SimProcess::start(&temp.path().join("sim")).await?;
    let admin = Admin::connect(&sim.base_url, &sim.ca).await?;
    spec.media_url = format!("{}/media/song-1.mp3", sim.base_url);
    let mut config =
        device_config(&sim.base_url, &sim.ca, temp.path(), &signed, &public, &args.template, !args.keep_code_pages);
    let cpus = avs_core::process::allowed_cpus();
    if !args.plugins_anywhere && cpus.len() > 1 {
        config.plugin_cpus = cpus.last().copied().into_iter().collect();
    }

    // The device links first, as the runtime would: the transport run reads with the device's token,
    // and the runtime then finds it stored and goes straight to connecting.
    std::fs::create_dir_all(&config.data_dir)?;
    let tls = avs_core::tls::client_config(Some(&sim.ca))?;
    let auth = Authorizer::new(HttpsClient::new(tls), &config)?;
    tokio::time::timeout(STEP_TIMEOUT, auth.link(|_| {})).await.context("linking with avs-sim timed out")??;
    let token = auth.access_token().await?;

    let progress = indicatif::ProgressBar::new(spec.directives);
    progress.set_style(
        indicatif::ProgressStyle::with_template("{prefix:>18} [{bar:40}] {pos}/{len} {per_sec}")?.progress_chars("=> "),
    );
    progress.set_prefix("transport ceiling");
    // The ceilings are what the machine can do: measured at full speed even when the run is paced.
    let full_speed = LoadSpec { rate: None, ..spec.clone() };
    let transport = ceilings::transport(&sim.base_url, &sim.ca, token.expose(), &admin, &full_speed).await?;
    progress.set_position(spec.directives);

    let options = RuntimeOptions { playback_speed: PLAYBACK_SPEED, ..RuntimeOptions::default() };
    let plugin_cpus = config.plugin_cpus.clone();
    let (runtime, events) = start_connected(config, options, OBSERVER_CAPACITY).await?;
    let outcomes = Arc::new(Outcomes::default());
    let counter = outcomes.clone().count(events);
    // Not for a paced run, judged on latency, which these threads would hurt (awake.rs).
    let keep_awake = spec.rate.is_none() && !args.idle_cores;
    let measured = end_to_end(&runtime, &admin, &spec, &outcomes, keep_awake, &progress).await;
    progress.finish_and_clear();
    let validators = validators(&runtime, &spec);
    runtime.shutdown().await;
    counter.abort();
    let run = measured?;
    // E is measured once the runtime is gone, on the events its run caused, so that nothing else
    // competes for the cores.
    let sample = run.events.queued.min(EVENT_SAMPLE) as usize;
    let event_ceiling = if sample == 0 {
        None
    } else {
        progress.set_prefix("event ceiling");
        let events = admin.recent_events(sample).await?;
        // The run wrote ~10 KB to SQLite per directive; the kernel writing it back would compete with E.
        // SAFETY: sync(2) takes no arguments and cannot fail.
        tokio::task::spawn_blocking(|| unsafe { libc::sync() }).await?;
        Some(ceilings::events(&sim.base_url, &sim.ca, token.expose(), events, sim.pid()).await?)
    };
    let validators = validators?;
    let work_spec = spec.clone();
    let work = tokio::task::spawn_blocking(move || ceilings::work(&work_spec, &validators)).await??;
    if work.invalid > 0 {
        bail!("{} generated directives failed their schema in the work loop", work.invalid);
    }
    let stats = run.stats;
    Ok(Report {
        template: args.template.clone(),
        worker_threads: tokio::runtime::Handle::current().metrics().num_workers(),
        plugin_cpus,
        warmup: run.warmup,
        handled: stats.recorded,
        failed: outcomes.failed.load(Ordering::Relaxed),
        dropped: outcomes.dropped.load(Ordering::Relaxed),
        observer_missed: outcomes.missed.load(Ordering::Relaxed),
        elapsed: run.elapsed,
        directives_per_sec: spec.directives as f64 / run.elapsed.as_secs_f64(),
        transport,
        work,
        event_ceiling,
        p50_ns: stats.p50_ns,
        p99_ns: stats.p99_ns,
        p999_ns: stats.p999_ns,
        max_ns: stats.max_ns,
        cpu_ns: run.cpu_ns,
        cores_kept_awake: run.cores_kept_awake,
        peak_rss_bytes: run.peak_rss_bytes,
        series: stats.series,
        events: run.events,
        spec,
    })
}

/// The events the measured directives caused.
struct Events {
    queued: u64,
    /// Sent when the last directive returned from its plugin.
    sent_by_end: u64,
    /// From the start of the run until the last of them was sent (`None`: not within [`EVENT_DRAIN`]).
    drained: Option<Duration>,
}

struct EndToEnd {
    /// By [`KeepCoresAwake`], during the measured run.
    cores_kept_awake: bool,
    events: Events,
    warmup: u64,
    elapsed: Duration,
    cpu_ns: u64,
    peak_rss_bytes: u64,
    stats: DispatchSnapshot,
}

/// A warm-up run (plugins' first calls, SQLite's first writes, allocator growth), then the measured one:
/// from the moment the sim is asked to start until the last directive returned from its plugin.
async fn end_to_end(
    runtime: &Runtime,
    admin: &Admin,
    spec: &LoadSpec,
    outcomes: &Outcomes,
    keep_awake: bool,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<EndToEnd> {
    let stats = runtime.plugins().dispatch_stats();
    let warmup = LoadSpec {
        directives: (spec.directives / 20).clamp(100, 5000),
        message_prefix: "warmup".into(),
        rate: None,
        ..spec.clone()
    };
    progress.set_prefix("warm-up");
    progress.set_length(warmup.directives);
    progress.set_position(0);
    push(admin, &warmup).await?;
    wait_handled(runtime, &warmup, outcomes, progress).await?;
    // The measured run starts with no event of the warm-up still waiting to be sent.
    progress.set_prefix("warm-up events");
    progress.set_length(outcomes.events().0);
    outcomes.drain_events(EVENT_DRAIN, progress).await;
    // Only a run paced by the event round trip leaves the cores idle between its steps (awake.rs): one
    // with an event per ten directives or more, whose round trips (e/E, E 10k–16k events/s here) then
    // take more of C than T and W together. (Play alone causes a few, as playback starts.)
    let paced_by_events = outcomes.events().0 * 10 >= warmup.directives;
    let awake = (keep_awake && paced_by_events).then(KeepCoresAwake::start);
    let runtime_cpu_ns = || process::cpu_ns().saturating_sub(awake.as_ref().map_or(0, KeepCoresAwake::cpu_ns));
    stats.reset();
    outcomes.reset();

    progress.set_prefix("end to end");
    progress.set_length(spec.directives);
    progress.set_position(0);
    let cpu = runtime_cpu_ns();
    let started = Instant::now();
    push(admin, spec).await?;
    wait_handled(runtime, spec, outcomes, progress).await?;
    let elapsed = started.elapsed();
    let cpu_ns = runtime_cpu_ns().saturating_sub(cpu);
    let cores_kept_awake = awake.is_some();
    drop(awake);
    let peak_rss_bytes = process::peak_rss_bytes();
    let stats = stats.snapshot();
    let (events_queued, events_sent_by_end) = outcomes.events();
    // The events the directives caused go out one at a time, each after the previous one's answer
    // (ARCHITECTURE.md): how long until the last one is out is the event path's figure.
    progress.set_prefix("events");
    progress.set_length(events_queued);
    let drained = outcomes.drain_events(EVENT_DRAIN, progress).await.then(|| started.elapsed());
    Ok(EndToEnd {
        cores_kept_awake,
        warmup: warmup.directives,
        elapsed,
        cpu_ns,
        peak_rss_bytes,
        stats,
        events: Events { queued: events_queued, sent_by_end: events_sent_by_end, drained },
    })
}

/// Starts a load run on the runtime's downchannel (the only one open).
async fn push(admin: &Admin, spec: &LoadSpec) -> anyhow::Result<()> {
    match admin.push_load(spec).await? {
        1 => Ok(()),
        n => bail!("the sim had {n} downchannels open instead of the runtime's one"),
    }
}

/// Waits until every directive of the run returned from its plugin or was dropped.
async fn wait_handled(
    runtime: &Runtime,
    spec: &LoadSpec,
    outcomes: &Outcomes,
    progress: &indicatif::ProgressBar,
) -> anyhow::Result<()> {
    let stats = runtime.plugins().dispatch_stats();
    let mut last = (0, Instant::now());
    loop {
        let done = stats.completed() + outcomes.dropped.load(Ordering::Relaxed);
        progress.set_position(done);
        if done >= spec.directives {
            return Ok(());
        }
        if done != last.0 {
            last = (done, Instant::now());
        } else if last.1.elapsed() > STEP_TIMEOUT {
            bail!(
                "the run stalled: {done} of {} directives handled after {STEP_TIMEOUT:?} without progress",
                spec.directives
            );
        }
        // Short: the end of the run is detected at most this late.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// W's validators for every namespace of the mix, from the plugins the runtime loaded.
fn validators(runtime: &Runtime, spec: &LoadSpec) -> anyhow::Result<Validators> {
    let mut validators = Validators::default();
    for (kind, _) in &spec.mix.0 {
        let slot = runtime
            .plugins()
            .slot(kind.namespace())
            .with_context(|| format!("the template loads no plugin for {}", kind.namespace()))?;
        validators.add_plugin(&slot.path)?;
    }
    Ok(validators)
}

impl Report {
    /// C without the events: what the directives alone cost the transport and the parse + validate.
    fn directive_ceiling(&self) -> f64 {
        1.0 / (1.0 / self.transport.per_sec + 1.0 / self.work.per_sec)
    }

    fn events_per_directive(&self) -> f64 {
        self.events.queued as f64 / self.spec.directives as f64
    }

    /// C = 1 / (1/T + 1/W + e/E): each directive costs its share of the transport and of the work, and
    /// the e events it causes cost their sequential round trips.
    fn combined_ceiling(&self) -> f64 {
        let events = self.event_ceiling.as_ref().map_or(0.0, |e| self.events_per_directive() / e.per_sec);
        1.0 / (1.0 / self.transport.per_sec + 1.0 / self.work.per_sec + events)
    }

    fn ratio(&self) -> f64 {
        self.directives_per_sec / self.combined_ceiling()
    }

    fn cpu_ns_per_directive(&self) -> f64 {
        self.cpu_ns as f64 / self.spec.directives as f64
    }

    fn to_json(&self) -> Value {
        let us = |ns: u64| ns as f64 / 1000.0;
        json!({
            "directives": self.spec.directives,
            "handled": self.handled,
            "failed": self.failed,
            "dropped": self.dropped,
            "observer_missed": self.observer_missed,
            "warmup_directives": self.warmup,
            "elapsed_s": self.elapsed.as_secs_f64(),
            "directives_per_sec": self.directives_per_sec,
            "transport_ceiling_per_sec": self.transport.per_sec,
            "work_ceiling_per_sec": self.work.per_sec,
            "event_ceiling_per_sec": self.event_ceiling.as_ref().map(|e| e.per_sec),
            "event_ceiling_events": self.event_ceiling.as_ref().map(|e| e.sent),
            "event_ceiling_passes_per_sec": self.event_ceiling.as_ref().map(|e| &e.passes),
            "event_ceiling_cores": self.event_ceiling.as_ref().and_then(|e| e.apart).map(|(client, sim)| json!({"client": client, "sim": sim})),
            "events_per_directive": self.events_per_directive(),
            "directive_ceiling_per_sec": self.directive_ceiling(),
            "combined_ceiling_per_sec": self.combined_ceiling(),
            "ratio": self.ratio(),
            "p50_us": us(self.p50_ns),
            "p99_us": us(self.p99_ns),
            "p999_us": us(self.p999_ns),
            "max_us": us(self.max_ns),
            "cpu_ns_per_directive": self.cpu_ns_per_directive(),
            "cpu_cores_used": self.cpu_ns as f64 / self.elapsed.as_nanos() as f64,
            "cores_kept_awake": self.cores_kept_awake,
            "peak_rss_bytes": self.peak_rss_bytes,
            "transport_bytes": self.transport.bytes,
            "events_queued": self.events.queued,
            "events_sent_by_end": self.events.sent_by_end,
            "events_drained_s": self.events.drained.map(|d| d.as_secs_f64()),
            "mix": self.spec.mix.to_string(),
            "attachments": self.spec.attachments,
            "rate_per_sec": self.spec.rate,
            "template": self.template,
            "runtime_worker_threads": self.worker_threads,
            "plugin_cpus": self.plugin_cpus,
            "mode": MODE,
        })
    }

    fn print(&self, plot: Option<&Path>) {
        let rate = self.spec.rate.map_or("full speed".to_string(), |r| format!("{r}/s"));
        let attachments = if self.spec.attachments { "with attachments" } else { "no attachments" };
        println!(
            "avs bench: {} directives ({}; {attachments}) at {rate}, template {}, after {} warm-up directives",
            self.spec.directives, self.spec.mix, self.template, self.warmup
        );
        let plugins = match self.plugin_cpus.as_slice() {
            [] => "on any core".to_string(),
            cpus => format!("on CPU {cpus:?} (plugin_cpus)"),
        };
        println!(
            "mode: {MODE}; the runtime's async runtime has {} worker threads; its plugin threads run {plugins}",
            self.worker_threads
        );
        println!(
            "cores: {}",
            if self.cores_kept_awake {
                "kept awake during the run and E by a nice-19 thread each (not counted in the CPU figures): its pace is the event round trip"
            } else {
                "left to go idle during the run (a paced run, one without events, or --idle-cores); kept awake during E"
            }
        );
        println!(
            "end to end        {:>10.0} directives/s  ({} handled, {} failed, {} dropped in {:.2} s)",
            self.directives_per_sec,
            self.handled,
            self.failed,
            self.dropped,
            self.elapsed.as_secs_f64()
        );
        if self.observer_missed > 0 {
            println!(
                "                  (the failure count missed {} observer events: lower bounds)",
                self.observer_missed
            );
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        println!(
            "dispatch latency  p50 {:.0} µs, p99 {:.0} µs, p99.9 {:.0} µs, max {:.0} µs (arrival of the part → plugin's return)",
            us(self.p50_ns),
            us(self.p99_ns),
            us(self.p999_ns),
            us(self.max_ns)
        );
        println!(
            "transport ceiling {:>10.0} directives/s  T: TLS + HTTP/2 + multipart split only ({:.1} MB, {} parts)",
            self.transport.per_sec,
            self.transport.bytes as f64 / 1e6,
            self.transport.parts
        );
        println!(
            "work ceiling      {:>10.0} directives/s  W: serde_json → Value + pre-compiled jsonschema validation, one core",
            self.work.per_sec
        );
        match &self.event_ceiling {
            Some(events) => {
                println!(
                    "event ceiling     {:>10.0} events/s      E: the run's last {} events sent again by a bare client, one at a time, {}; the best of {} passes ({})",
                    events.per_sec,
                    events.sent,
                    match events.apart {
                        Some((client, sim)) => format!("the client on core {client} and the sim on core {sim}"),
                        None => "the client and the sim where the scheduler put them".into(),
                    },
                    events.passes.len(),
                    events.passes.iter().map(|p| format!("{p:.0}")).collect::<Vec<_>>().join(", ")
                );
                println!(
                    "combined ceiling  {:>10.0} directives/s  C = 1 / (1/T + 1/W + e/E), e = {:.3} events per directive",
                    self.combined_ceiling(),
                    self.events_per_directive()
                );
            }
            None => println!(
                "combined ceiling  {:>10.0} directives/s  C = 1 / (1/T + 1/W), one core (the run caused no event)",
                self.combined_ceiling()
            ),
        }
        println!(
            "ratio             {:>10.3}              end to end ÷ C (above 1: the runtime used more than one core)",
            self.ratio()
        );
        println!(
            "CPU               {:>10.0} ns/directive  ({:.2} cores busy on average)",
            self.cpu_ns_per_directive(),
            self.cpu_ns as f64 / self.elapsed.as_nanos() as f64
        );
        println!("peak RSS          {:>10.1} MiB", self.peak_rss_bytes as f64 / 1048576.0);
        let drained = match self.events.drained {
            Some(d) => format!(
                "all sent {:.2} s after the start ({:.0} events/s)",
                d.as_secs_f64(),
                self.events.queued as f64 / d.as_secs_f64()
            ),
            None => format!("not all sent within {EVENT_DRAIN:?}"),
        };
        println!(
            "events            {} caused by the run, {} of them sent when the last directive returned; {drained}",
            self.events.queued, self.events.sent_by_end
        );
        if let Some(path) = plot {
            println!("plot: {}", path.display());
        }
    }
}
