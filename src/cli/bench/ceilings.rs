//! The two ceilings a run is judged against, measured on the same directives as the run itself.
//!
//! - Transport ceiling T: a bare client reads the run over the same TLS + HTTP/2 downchannel and only
//!   splits it into parts (no parse, no dispatch).
//! - Work ceiling W: each JSON part `serde_json::from_slice::<Value>`, then jsonschema's `is_valid` with
//!   the plugin's directive schema pre-compiled for `Value`, in a tight loop on one core: no runtime, no
//!   I/O. (The runtime validates its own borrowing parse of the payload instead, `schema::Document`.)

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use avs_core::multipart::{boundary_from_content_type, MultipartParser};
use avs_core::plugins::loader::{self, Trust};
use avs_core::transport::http2::{self, Endpoint};
use avs_sim::load::{DirectiveKind, LoadSpec};
use serde_json::Value;

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
    let endpoint = Endpoint::parse(base_url)?;
    let tls = avs_core::tls::client_config(Some(ca))?;
    let (send, connection) = http2::connect(&endpoint, tls, CONNECT_TIMEOUT).await?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
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
