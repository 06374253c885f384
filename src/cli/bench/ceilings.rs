//! The ceilings a run is judged against, measured on the same directives as the run itself.
//!
//! - Transport ceiling T: a bare client reads the run over the same TLS + HTTP/2 downchannel and only
//!   splits it into parts (no parse, no dispatch).
//! - Work ceiling W: each JSON part `serde_json::from_slice::<Value>`, then jsonschema's `is_valid` with
//!   the plugin's directive schema pre-compiled for `Value`, in a tight loop on one core: no runtime, no
//!   I/O. (The runtime validates its own borrowing parse of the payload instead, `schema::Document`.)
//! - Event ceiling E: the events the run caused, sent again one at a time on a connection of its own,
//!   each after the previous one's answer: the order AVS needs costs a round trip per event, work the
//!   runtime cannot avoid and T and W do not count. C = 1 / (1/T + 1/W + e/E), e events per directive.
//!   Measured with the cores kept awake (`awake.rs`), the run's writes synced to disk first, and the
//!   client (one thread) and the sim on cores of their own (`cores.rs`).

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use avs_core::multipart::{boundary_from_content_type, MultipartParser, MultipartWriter};
use avs_core::plugins::loader::{self, Trust};
use avs_core::transport::http2::{self, Endpoint};
use avs_sim::load::{DirectiveKind, LoadSpec};
use bytes::{Bytes, BytesMut};
use h2::client::SendRequest;
use serde_json::Value;
use tokio::task::JoinHandle;

use super::awake::KeepCoresAwake;
use super::cores::{self, Apart};
use super::sim::Admin;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A transport run that stalls this long has failed.
const STALL: Duration = Duration::from_secs(30);
/// Parts prepared (untimed) before each timed stretch of the work loop: the loop's input stays in cache
/// like a part just read from the network would be, and memory stays small whatever N is.
const WORK_BATCH: u64 = 4096;

pub struct Transport {
    pub per_sec: f64,
    pub bytes: u64,
    pub parts: u64,
}

/// Reads `spec`'s run on a downchannel of its own and splits it into parts.
pub async fn transport(
    base_url: &str,
    ca: &Path,
    token: &str,
    admin: &Admin,
    spec: &LoadSpec,
) -> anyhow::Result<Transport> {
    let (endpoint, send, driver) = connect(base_url, ca).await?;
    let result = async {
        let request = http::Request::get(endpoint.uri(avs_core::protocol::DIRECTIVES_PATH))
            .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
            .body(())?;
        let (response, _) = send.clone().ready().await?.send_request(request, true)?;
        let response = response.await?;
        if response.status() != http::StatusCode::OK {
            bail!("the downchannel answered {}", response.status());
        }
        let content_type =
            response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
        let boundary = boundary_from_content_type(content_type).context("the downchannel has no boundary")?;
        let mut body = response.into_body();
        let expected = expected_parts(spec);

        let started = Instant::now();
        let downchannels = admin.push_load(spec).await?;
        if downchannels != 1 {
            bail!("the sim had {downchannels} downchannels open for the transport run, not 1");
        }
        let mut parser = MultipartParser::new(&boundary);
        let (mut parts, mut bytes) = (0, 0);
        while parts < expected {
            let chunk = match tokio::time::timeout(STALL, http2::next_chunk(&mut body)).await {
                Err(_) => bail!("the transport run stalled after {parts} of {expected} parts"),
                Ok(chunk) => chunk?.context("the sim ended the downchannel")?,
            };
            bytes += chunk.len() as u64;
            parser.push(&chunk)?;
            while parser.next_part()?.is_some() {
                parts += 1;
            }
        }
        Ok(Transport { per_sec: spec.directives as f64 / started.elapsed().as_secs_f64(), bytes, parts })
    }
    .await;
    driver.abort();
    result
}

/// A bare HTTP/2 connection of the ceiling's own, and the task that drives it.
async fn connect(base_url: &str, ca: &Path) -> anyhow::Result<(Endpoint, SendRequest<Bytes>, JoinHandle<()>)> {
    let endpoint = Endpoint::parse(base_url)?;
    let tls = avs_core::tls::client_config(Some(ca))?;
    let (send, connection) = http2::connect(&endpoint, tls, CONNECT_TIMEOUT).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok((endpoint, send, driver))
}

/// How many times the event ceiling sends the sample: E is the fastest pass. A pass lasts well under a
/// second; on this project's VM the passes of a run agree within 8 %, and the best is the one least held
/// up by the rest of the machine, which a ceiling must not count.
const EVENT_PASSES: usize = 3;

pub struct EventCeiling {
    /// The fastest pass.
    pub per_sec: f64,
    /// Every pass, in the order run.
    pub passes: Vec<f64>,
    /// Events per pass.
    pub sent: u64,
    /// The cores the client and the sim ran on, if they were kept apart (`cores.rs`).
    pub apart: Option<(usize, usize)>,
}

/// Sends `events` (each one's metadata JSON) to the sim (process `sim`) on a connection of its own,
/// one at a time, each after the previous one's answer, as the runtime must to keep them in order: no
/// runtime, no outbox, the bodies built before the clock starts. [`EVENT_PASSES`] passes.
///
/// The client is one thread of its own, which drives the connection too, as the runtime's one worker
/// thread does: with its requests on one thread and its connection on another, each event cost two
/// more wake-ups (most runs 14.4k–15.7k events/s, against 16.0k–16.6k on one thread). That thread and
/// the sim are kept on different cores (`cores.rs`).
pub async fn events(
    base_url: &str,
    ca: &Path,
    token: &str,
    events: Vec<Value>,
    sim: u32,
) -> anyhow::Result<EventCeiling> {
    let (base_url, ca, token) = (base_url.to_string(), ca.to_path_buf(), token.to_string());
    let sent = events.len() as u64;
    let _awake = KeepCoresAwake::start();
    let apart = Apart::sim_and_client(sim);
    let client_core = apart.as_ref().map(|apart| apart.client_core);
    let client = std::thread::Builder::new().name("event-ceiling".into()).spawn(move || {
        if let Some(core) = client_core {
            cores::pin_this_thread(core).context("pinning the event ceiling's client")?;
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(passes(&base_url, &ca, &token, &events))
    })?;
    let passes = tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the event ceiling's client panicked"))??;
    let per_sec = passes.iter().copied().fold(0.0, f64::max);
    Ok(EventCeiling { per_sec, passes, sent, apart: apart.as_ref().map(|a| (a.client_core, a.sim_core)) })
}

async fn passes(base_url: &str, ca: &Path, token: &str, events: &[Value]) -> anyhow::Result<Vec<f64>> {
    let (endpoint, send, driver) = connect(base_url, ca).await?;
    let writer = MultipartWriter::random();
    let uri = endpoint.uri(avs_core::protocol::EVENTS_PATH);
    let (authorization, content_type) = (format!("Bearer {token}"), writer.form_data_content_type());
    let bodies = events
        .iter()
        .map(|event| {
            let mut body = BytesMut::from(
                &writer.form_data_part("metadata", "application/json; charset=UTF-8", &serde_json::to_vec(event)?)[..],
            );
            body.extend_from_slice(&writer.close());
            Ok(body.freeze())
        })
        .collect::<anyhow::Result<Vec<Bytes>>>()?;
    let pass = |bodies: Vec<Bytes>| async {
        let started = Instant::now();
        for body in bodies {
            let request = http::Request::post(uri.clone())
                .header(http::header::AUTHORIZATION, &authorization)
                .header(http::header::CONTENT_TYPE, &content_type)
                .body(())?;
            let (answer, mut stream) = send.clone().ready().await?.send_request(request, false)?;
            // Whole, as the runtime sends an event without audio: HEADERS and DATA in one write.
            stream.send_data(body, true)?;
            let answer = tokio::time::timeout(STALL, answer).await.context("an event was not answered")??;
            let status = answer.status();
            let body = http2::read_to_end(&mut answer.into_body(), 1 << 20).await?;
            if !status.is_success() {
                bail!("the sim refused a replayed event ({status}): {}", String::from_utf8_lossy(&body));
            }
        }
        anyhow::Ok(events.len() as f64 / started.elapsed().as_secs_f64())
    };
    let passes = async {
        let mut passes = Vec::with_capacity(EVENT_PASSES);
        for _ in 0..EVENT_PASSES {
            // `Bytes` clones share the bodies: nothing is built while a pass is timed.
            passes.push(pass(bodies.clone()).await?);
        }
        anyhow::Ok(passes)
    }
    .await;
    driver.abort();
    passes
}

/// JSON parts plus, with attachments, one attachment part per Speak.
fn expected_parts(spec: &LoadSpec) -> u64 {
    if !spec.attachments {
        return spec.directives;
    }
    let kinds = spec.kinds();
    spec.directives + (0..spec.directives).filter(|i| kinds.of(*i) == DirectiveKind::Speak).count() as u64
}

pub struct Work {
    pub per_sec: f64,
    /// Parts that failed their schema (a generator bug if not 0).
    pub invalid: u64,
}

/// W's validators by namespace, then directive name: looked up with the part's own strings.
#[derive(Default)]
pub struct Validators(HashMap<String, HashMap<String, jsonschema::Validator>>);

impl Validators {
    /// Compiles the directive schemas the plugin library at `path` exports: the runtime's copy, which the
    /// runtime verified when it loaded it.
    pub fn add_plugin(&mut self, path: &Path) -> anyhow::Result<()> {
        let plugin = loader::load(path, &Trust::AllowUnsigned)?;
        let documents = plugin.instance.schemas().into_result().map_err(|e| anyhow::anyhow!("{e}"))?;
        let documents: serde_json::Map<String, Value> = serde_json::from_str(&documents)?;
        for (file, schema) in &documents {
            let Some(name) = file.strip_prefix("directives/").and_then(|f| f.strip_suffix(".json")) else {
                continue;
            };
            let validator = jsonschema::validator_for(schema).map_err(|e| anyhow::anyhow!("{file}: {e}"))?;
            self.0.entry(plugin.manifest.interface.clone()).or_default().insert(name.to_string(), validator);
        }
        Ok(())
    }

    fn get(&self, namespace: &str, name: &str) -> Option<&jsonschema::Validator> {
        self.0.get(namespace)?.get(name)
    }
}

/// Parses and validates every JSON part of `spec`'s run on this thread.
pub fn work(spec: &LoadSpec, validators: &Validators) -> anyhow::Result<Work> {
    let kinds = spec.kinds();
    let mut timed = Duration::ZERO;
    let mut invalid = 0;
    let mut batch: Vec<Vec<u8>> = Vec::with_capacity(WORK_BATCH as usize);
    let mut next = 0;
    while next < spec.directives {
        batch.clear();
        let end = (next + WORK_BATCH).min(spec.directives);
        batch.extend((next..end).map(|i| spec.directive(&kinds, i).0.into_bytes()));
        next = end;
        let started = Instant::now();
        for part in &batch {
            let message: Value = serde_json::from_slice(part)?;
            let directive = &message["directive"];
            let namespace = directive["header"]["namespace"].as_str().unwrap_or("");
            let name = directive["header"]["name"].as_str().unwrap_or("");
            let validator =
                validators.get(namespace, name).with_context(|| format!("no schema for {namespace}.{name}"))?;
            if !validator.is_valid(&directive["payload"]) {
                invalid += 1;
            }
        }
        timed += started.elapsed();
    }
    Ok(Work { per_sec: spec.directives as f64 / timed.as_secs_f64(), invalid })
}
