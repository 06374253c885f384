//! avs-sim as a second process (`avs sim`), and the admin requests `avs bench` makes of it.
//!
//! The sim runs apart so that this process is the device alone: its CPU time and peak RSS are the
//! runtime's, not the sim's (which records and validates every event the directives cause).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use avs_core::transport::http2::{self, Endpoint};
use avs_sim::load::LoadSpec;
use bytes::Bytes;
use h2::client::SendRequest;
use serde_json::Value;
use tokio::task::JoinHandle;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub struct SimProcess {
    child: Child,
    /// Kept open: the sim prints more after its first line, and a closed pipe would fail its writes.
    _stdout: BufReader<ChildStdout>,
    pub base_url: String,
    pub ca: PathBuf,
}

impl SimProcess {
    /// Starts `avs sim` on a free loopback port, keeping its data under `data_dir`.
    pub async fn start(data_dir: &Path) -> anyhow::Result<SimProcess> {
        let exe = std::env::current_exe().context("locating the avs binary")?;
        let mut child = Command::new(exe)
            .args(["sim", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting `avs sim`")?;
        let stdout = child.stdout.take().context("the sim's stdout")?;
        let (stdout, line) = tokio::task::spawn_blocking(move || {
            let mut stdout = BufReader::new(stdout);
            let mut line = String::new();
            stdout.read_line(&mut line).map(|_| (stdout, line))
        })
        .await??;
        // "avs-sim listening on https://localhost:PORT (CA certificate: PATH)"
        let parsed = line
            .trim()
            .strip_prefix("avs-sim listening on ")
            .and_then(|rest| rest.strip_suffix(')'))
            .and_then(|rest| rest.split_once(" (CA certificate: "));
        let Some((base_url, ca)) = parsed else {
            let _ = child.kill();
            bail!("`avs sim` did not start: it said {line:?}");
        };
        Ok(SimProcess { base_url: base_url.to_string(), ca: PathBuf::from(ca), child, _stdout: stdout })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for SimProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/2 connection to the sim's admin surface.
/// The largest admin answer read: the events sampled for the event ceiling, a few hundred bytes each.
const MAX_ANSWER_BYTES: usize = 64 << 20;

pub struct Admin {
    endpoint: Endpoint,
    send: SendRequest<Bytes>,
    driver: JoinHandle<()>,
}

impl Admin {
    pub async fn connect(base_url: &str, ca: &Path) -> anyhow::Result<Admin> {
        let endpoint = Endpoint::parse(base_url)?;
        let tls = avs_core::tls::client_config(Some(ca))?;
        let (send, connection) = http2::connect(&endpoint, tls, CONNECT_TIMEOUT).await?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Admin { endpoint, send, driver })
    }

    /// Starts a load run on every open downchannel; returns how many there were.
    pub async fn push_load(&self, spec: &LoadSpec) -> anyhow::Result<u64> {
        let answer = self.post("/admin/load", serde_json::to_vec(spec)?).await?;
        answer["downchannels"].as_u64().with_context(|| format!("the sim answered {answer}"))
    }

    /// The metadata of the last `n` events the sim accepted (audio, if any, is not recorded).
    pub async fn recent_events(&self, n: usize) -> anyhow::Result<Vec<Value>> {
        let answer = self.request(http::Method::GET, &format!("/admin/events?last={n}"), None).await?;
        let events = answer.as_array().with_context(|| format!("the sim answered {answer}"))?;
        Ok(events.iter().map(|event| event["json"].clone()).collect())
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> anyhow::Result<Value> {
        self.request(http::Method::POST, path, Some(body)).await
    }

    async fn request(&self, method: http::Method, path: &str, body: Option<Vec<u8>>) -> anyhow::Result<Value> {
        let request = http::Request::builder()
            .method(method)
            .uri(self.endpoint.uri(path))
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(())?;
        let mut ready = self.send.clone().ready().await?;
        let (response, mut stream) = ready.send_request(request, body.is_none())?;
        if let Some(body) = body {
            http2::send_all(&mut stream, Bytes::from(body), true).await?;
        }
        let response = response.await?;
        let status = response.status();
        let body = http2::read_to_end(&mut response.into_body(), MAX_ANSWER_BYTES).await?;
        let answer: Value = serde_json::from_slice(&body).with_context(|| format!("{path} answered {status}"))?;
        if !status.is_success() {
            bail!("{path}: {status}: {answer}");
        }
        Ok(answer)
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        self.driver.abort();
    }
}
