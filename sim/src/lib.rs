//! avs-sim: a local AVS-compatible cloud for the demo, the tests and the benchmarks.
//!
//! A real server, not a mock: HTTP/2 over TLS on loopback with its own CA, the AVS paths (downchannel,
//! events, ping), Login with Amazon emulation, the Capabilities API, a scripted dialog, fault injection
//! ([`faults`]), and an admin surface — the Rust API of [`SimHandle`] and HTTP under `/admin/`. It
//! validates everything a device sends against the workspace's JSON Schemas and records what it received.

mod admin;
mod capabilities;
mod cert;
mod dialog;
mod downchannel;
mod events;
pub mod faults;
pub mod load;
mod lwa;
mod media;
mod routes;
mod scenarios;
mod schemas;
mod server;
mod state;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultOutcome, Refusal, RefusedEvent};
pub use media::SONGS;
pub use scenarios::{Scenario, SCENARIOS};
use state::{DownchannelMessage, Recorded, Shared};

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: std::io::Error },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("nothing matching arrived within {0:?}")]
    Timeout(Duration),
}

impl SimError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SimError::Io { path: path.display().to_string(), source }
    }
}

/// How code pairs get approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Approval {
    /// As if the user entered the code this long after it was issued.
    Auto(Duration),
    /// Only through [`SimHandle::approve`] or `POST /admin/approve?user_code=…`.
    Manual,
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub token_lifetime: Duration,
    pub approval: Approval,
    pub code_pair_lifetime: Duration,
    /// The polling interval LWA asks for; polling faster gets `slow_down`.
    pub poll_interval: Duration,
    /// The scripted dialog answers a Recognize with Speak and then ExpectSpeech (changeable while running
    /// with [`SimHandle::set_expect_speech_after_speak`]).
    pub expect_speech_after_speak: bool,
    /// The ExpectSpeech timeout it asks for.
    pub expect_speech_timeout: Duration,
}

impl SimConfig {
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        SimConfig {
            listen,
            data_dir,
            token_lifetime: Duration::from_secs(3600),
            approval: Approval::Auto(Duration::from_secs(1)),
            code_pair_lifetime: Duration::from_secs(600),
            poll_interval: Duration::from_secs(1),
            expect_speech_after_speak: false,
            expect_speech_timeout: Duration::from_secs(8),
        }
    }
}

/// An event as avs-sim received it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedEvent {
    pub namespace: String,
    pub name: String,
    pub message_id: String,
    pub dialog_request_id: Option<String>,
    /// The whole `metadata` part.
    pub json: Value,
    pub audio_bytes: usize,
    /// Which connection (1, 2, …) it came on, and its position among that connection's events.
    pub connection: u64,
    pub seq_on_connection: u64,
}

/// A message that failed its schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub message: String,
    pub error: String,
}

fn unknown_scenario(name: &str) -> String {
    let known: Vec<&str> = SCENARIOS.iter().map(|s| s.name).collect();
    format!("no scenario {name:?} (there are: {})", known.join(", "))
}

pub struct Sim;

impl Sim {
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        let tls = cert::server_config(&config.data_dir)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| SimError::Listen { addr: config.listen, source })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen { addr: config.listen, source })?;
        let shared = Arc::new(Shared::new(config, format!("https://localhost:{}", addr.port())));
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, tls, shared.clone(), stopped));
        tracing::info!("avs-sim listening on https://localhost:{}", addr.port());
        Ok(SimHandle { inner: Arc::new(HandleInner { addr, shared, stop, server: Mutex::new(Some(server)) }) })
    }
}

struct HandleInner {
    addr: SocketAddr,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

/// The running sim: its address, and the admin API tests and the demo use.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<HandleInner>,
}

impl SimHandle {
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// `https://localhost:PORT`: the certificate names `localhost`.
    pub fn base_url(&self) -> String {
        format!("https://localhost:{}", self.inner.addr.port())
    }

    pub fn ca_pem_path(&self) -> PathBuf {
        self.inner.shared.config.data_dir.join("ca.pem")
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// Scripts the dialog: whether the next Recognize answers end with an ExpectSpeech.
    pub fn set_expect_speech_after_speak(&self, expect: bool) {
        self.shared().expect_speech_after_speak.store(expect, Ordering::Relaxed);
    }

    /// Selects the scenario the next user request is about (`None`: the plain spoken answer). Fails
    /// for a name that is not in [`SCENARIOS`].
    pub fn set_scenario(&self, name: Option<&str>) -> Result<(), String> {
        let scenario = name.map(|n| Scenario::named(n).ok_or_else(|| unknown_scenario(n))).transpose()?;
        *self.shared().scenario.lock().unwrap_or_else(|e| e.into_inner()) = scenario;
        Ok(())
    }

    /// Pushes a directive (and its attachments) on every open downchannel; returns how many got it.
    pub fn push_directive(&self, directive: Value, attachments: Vec<(String, Bytes)>) -> usize {
        let parts = downchannel::directive_parts(&directive, &attachments);
        self.shared().broadcast_downchannel(|| DownchannelMessage::Data(parts.clone()))
    }

    /// Starts a load generator run on every open downchannel; returns how many got it. Each one writes
    /// the run as fast as its device reads (or at the spec's rate).
    pub fn push_load(&self, spec: load::LoadSpec) -> usize {
        let spec = Arc::new(spec);
        self.shared().broadcast_downchannel(|| DownchannelMessage::Load(spec.clone()))
    }

    /// Pushes raw bytes on every open downchannel (fault injection: malformed multipart).
    pub fn push_raw(&self, bytes: Bytes) -> usize {
        self.shared().broadcast_downchannel(|| DownchannelMessage::Data(bytes.clone()))
    }

    /// The events accepted so far; those answered with a fault are in [`SimHandle::refused_events`].
    pub fn events(&self) -> Vec<ReceivedEvent> {
        self.shared().recorded().events.clone()
    }

    /// The first received event (from the start) matching `pred`, waiting for it up to `timeout`.
    pub async fn wait_for_event(
        &self,
        pred: impl Fn(&ReceivedEvent) -> bool,
        timeout: Duration,
    ) -> Result<ReceivedEvent, SimError> {
        self.wait_until(timeout, |r| r.events.iter().find(|e| pred(e)).cloned()).await
    }

    /// Waits until `count` received events match `pred`; returns them in the order received.
    pub async fn wait_for_events(
        &self,
        pred: impl Fn(&ReceivedEvent) -> bool,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedEvent>, SimError> {
        self.wait_until(timeout, |r| {
            let matching: Vec<&ReceivedEvent> = r.events.iter().filter(|e| pred(e)).collect();
            (matching.len() >= count).then(|| matching.into_iter().cloned().collect())
        })
        .await
    }

    pub fn capability_documents(&self) -> Vec<Value> {
        self.shared().recorded().capabilities.clone()
    }

    /// Waits until at least `n` capability documents were published; returns the latest.
    pub async fn wait_for_capabilities(&self, n: usize, timeout: Duration) -> Result<Value, SimError> {
        self.wait_until(timeout, |r| (r.capabilities.len() >= n).then(|| r.capabilities.last().cloned()).flatten())
            .await
    }

    async fn wait_until<T>(&self, timeout: Duration, check: impl Fn(&Recorded) -> Option<T>) -> Result<T, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let changed = self.shared().changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(found) = check(&self.shared().recorded()) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(SimError::Timeout(timeout));
            }
        }
    }

    pub fn violations(&self) -> Vec<Violation> {
        self.shared().recorded().violations.clone()
    }

    pub fn deviations(&self) -> Vec<String> {
        self.shared().recorded().deviations.clone()
    }

    /// Approves a pending code pair, as the user entering it would; false if there is no such code.
    pub fn approve(&self, user_code: &str) -> bool {
        self.shared().lwa().approve(user_code)
    }

    /// Every access token issued so far becomes invalid: the next AVS request gets a 403.
    pub fn expire_access_tokens(&self) {
        self.inject(Fault::ExpireAccessTokens);
    }

    /// Every refresh token is revoked: the next refresh gets `invalid_grant`.
    pub fn revoke_refresh_tokens(&self) {
        self.inject(Fault::RevokeRefreshTokens);
    }

    /// Makes `fault` happen (see [`faults`] for the catalogue and its admin JSON).
    pub fn inject(&self, fault: Fault) -> FaultOutcome {
        faults::inject(self.shared(), fault)
    }

    /// The events answered with a fault instead of being accepted, in the order they came.
    pub fn refused_events(&self) -> Vec<RefusedEvent> {
        self.shared().recorded().refused_events.clone()
    }

    /// The first refused event (from the start) matching `pred`, waiting for it up to `timeout`.
    pub async fn wait_for_refused_event(
        &self,
        pred: impl Fn(&RefusedEvent) -> bool,
        timeout: Duration,
    ) -> Result<RefusedEvent, SimError> {
        self.wait_until(timeout, |r| r.refused_events.iter().find(|e| pred(e)).cloned()).await
    }

    /// How many TCP connections were accepted so far, those refused while offline included.
    pub fn connection_attempts(&self) -> usize {
        self.shared().recorded().connection_attempts.len()
    }

    /// How many TCP connections got through: accepted and not closed at once for being offline.
    pub fn connections_let_through(&self) -> usize {
        let recorded = self.shared().recorded();
        recorded.connection_attempts.len() - recorded.refused_connection_attempts
    }

    /// When each TCP connection was accepted, in order: for bounding reconnects in a sliding window.
    pub fn connection_attempt_times(&self) -> Vec<tokio::time::Instant> {
        self.shared().recorded().connection_attempts.clone()
    }

    /// Waits until at least `n` TCP connections were accepted; returns when each was.
    pub async fn wait_for_connection_attempts(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<tokio::time::Instant>, SimError> {
        self.wait_until(timeout, |r| (r.connection_attempts.len() >= n).then(|| r.connection_attempts.clone())).await
    }

    /// Ends every open downchannel stream, as AVS does now and then; the client must reconnect.
    pub fn drop_downchannels(&self) {
        self.shared().broadcast_downchannel(|| DownchannelMessage::End);
    }

    /// How many downchannels were opened so far.
    pub fn downchannel_count(&self) -> usize {
        self.shared().downchannels_opened.load(Ordering::Relaxed)
    }

    /// Stops accepting, closes every connection and waits for the server's tasks to end.
    pub async fn shutdown(self) {
        let _ = self.inner.stop.send(true);
        let server = self.inner.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(server) = server {
            let _ = server.await;
        }
    }
}
