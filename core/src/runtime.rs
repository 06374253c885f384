//! The device runtime: wires the plugin host, the dialog sequencer, authorization, capability
//! publishing and the AVS connection together, and owns every task it starts until `shutdown`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

use crate::auth::Authorizer;
use crate::capabilities;
use crate::config::Config;
use crate::devices::{bluetooth::Bluetooth, display::Display, DeviceServices};
use crate::directives::sequencer::SequencerHandle;
use crate::directives::{ConnectionDirective, Router};
use crate::events::EventSender;
use crate::focus::FocusManager;
use crate::https::HttpsClient;
use crate::media::{AttachmentStore, Player, Sink};
use crate::observe::{Observer, RuntimeEvent};
use crate::outbox::Outbox;
use crate::plugins::services::{Hub, Timers};
use crate::plugins::store::PluginStore;
use crate::plugins::{CallTimeouts, PluginHost, Trust};
use crate::storage::Storage;
use crate::template::DeviceTemplate;
use crate::transport::http2::Endpoint;
use crate::transport::{Backoff, Inbound, ReconnectPolicy, Timing, Transport};
use crate::{tls, transport};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("data dir {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("AVS endpoint: {0}")]
    Endpoint(#[from] transport::http2::Http2Error),
    #[error(transparent)]
    Plugins(std::io::Error),
    #[error("plugin trust: {0}")]
    Trust(#[from] crate::plugins::signature::SignatureError),
    #[error("plugin_cpus lists CPU {cpu}, but this process may run only on {allowed:?}")]
    PluginCpu { cpu: usize, allowed: Vec<usize> },
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
}

/// Knobs that are not device configuration: timing for tests and benchmarks.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub timing: Timing,
    pub call_timeouts: CallTimeouts,
    /// 1.0 plays audio in real time; tests may play faster.
    pub playback_speed: f64,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions { timing: Timing::default(), call_timeouts: CallTimeouts::default(), playback_speed: 1.0 }
    }
}

pub struct Runtime {
    plugins: Arc<PluginHost>,
    hub: Arc<Hub>,
    display: Arc<Display>,
    observer: Observer,
    shutdown: watch::Sender<bool>,
    supervisor: JoinHandle<()>,
    /// Gives up on plugin calls that hang (see `PluginHost::watch_for_hung_calls`).
    watchdog: JoinHandle<()>,
    control: JoinHandle<()>,
}

impl Runtime {
    /// Loads the plugins and starts working: link the device if it has no tokens yet, publish the
    /// capabilities, then keep the connection to AVS up until `shutdown`. Progress is reported through
    /// the observer (subscribe before calling to see everything, or use `start_observed`).
    pub async fn start(config: Config, options: RuntimeOptions) -> Result<Runtime, RuntimeError> {
        Self::start_observed(config, options, Observer::default()).await
    }

    pub async fn start_observed(
        config: Config,
        options: RuntimeOptions,
        observer: Observer,
    ) -> Result<Runtime, RuntimeError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| RuntimeError::DataDir { path: config.data_dir.display().to_string(), source })?;
        let storage = Storage::open(&config.data_dir.join("avs.db"))?;
        let tls = tls::client_config(config.ca_file.as_deref())?;
        let https = HttpsClient::new(tls.clone());
        let auth = Authorizer::new(https.clone(), &config)?;
        let endpoint = Endpoint::parse(&avs_endpoint(&config, &storage))?;

        let outbox = Outbox::open(storage.clone())?;
        // What the last run could not deliver goes first. Read before any plugin starts: what plugins
        // send from now on is in the queue already.
        let undelivered = VecDeque::from(outbox.pending()?);
        if !undelivered.is_empty() {
            tracing::info!("{} must-deliver events from before the restart wait for AVS", undelivered.len());
        }
        let (events, event_queue) = EventSender::channel(config.limits.max_queued_events, outbox.clone());
        let runtime = tokio::runtime::Handle::current();
        let sequencer = SequencerHandle::new(events.clone(), observer.clone(), runtime.clone());
        let attachments =
            AttachmentStore::with_limits(config.limits.max_pending_attachments, config.limits.max_attachment_bytes);
        let display = Display::new(observer.clone());
        let devices =
            DeviceServices::default().with("display", display.clone()).with("bluetooth", Bluetooth::simulated());
        let hub = Arc::new(Hub {
            events: events.clone(),
            sequencer: sequencer.clone(),
            focus: FocusManager::default(),
            player: Player::new(
                attachments.clone(),
                https.clone(),
                Sink::from_config(&config.audio_sink),
                options.playback_speed,
                runtime.clone(),
            ),
            storage,
            timers: Timers::new(runtime),
            observer: observer.clone(),
            devices,
        });
        let device_info = json!({
            "firmwareVersion": config.firmware_version,
            "locale": config.locale,
            "deviceSerialNumber": config.device_serial_number,
        });
        let trust = Trust::from_config(&config)?;
        let allowed = crate::process::allowed_cpus();
        if let Some(&cpu) = config.plugin_cpus.iter().find(|cpu| !allowed.contains(cpu)) {
            return Err(RuntimeError::PluginCpu { cpu, allowed });
        }
        let store = PluginStore::in_data_dir(&config.data_dir, hub.storage.clone());
        let plugins = Arc::new(
            PluginHost::new(hub.clone(), options.call_timeouts, device_info, observer.clone(), trust)
                .with_store(store)
                .trimming_code_pages(config.trim_code_pages)
                .with_plugin_cpus(&config.plugin_cpus),
        );
        if config.plugins.is_empty() {
            let template = DeviceTemplate::resolve(&config.template)?;
            plugins.configure(&template);
            plugins.load_dir(&config.plugin_dir, &template.files()).await.map_err(RuntimeError::Plugins)?;
            plugins.check_template(&template);
        } else {
            plugins.load_dir(&config.plugin_dir, &config.plugins).await.map_err(RuntimeError::Plugins)?;
        }
        plugins.restore_committed().await;

        sequencer.serve(&plugins);
        let watchdog = tokio::spawn(plugins.clone().watch_for_hung_calls());
        let (connection_tx, connection_rx) = mpsc::unbounded_channel();
        let router = Router::new(plugins.clone(), sequencer.clone(), events.clone(), observer.clone(), connection_tx);
        let reconnect = options.timing.reconnect.clone();
        let transport = Transport {
            endpoint,
            tls,
            timing: options.timing,
            auth: auth.clone(),
            inbound: Arc::new(Inbound {
                router,
                attachments,
                in_flight: Arc::new(Semaphore::new(transport::directives_in_flight(&config.limits))),
                events,
                limits: config.limits.clone(),
            }),
            plugins: plugins.clone(),
            observer: observer.clone(),
            events: event_queue,
            receipts: transport::Receipts::new(outbox.clone(), observer.clone()),
            outbox,
            retry: undelivered,
            connections: 0,
            trim_code_pages: config.trim_code_pages,
        };
        let (shutdown, shutdown_rx) = watch::channel(false);
        let supervisor = Supervisor {
            auth: auth.clone(),
            https,
            capabilities_url: config.capabilities_endpoint(),
            plugins: plugins.clone(),
            storage: hub.storage.clone(),
            observer: observer.clone(),
            connection_directives: connection_rx,
            reconnect,
        };
        let control = crate::control::bind(&crate::control::socket_path(&config.data_dir))
            .map_err(|source| RuntimeError::DataDir { path: config.data_dir.display().to_string(), source })?;
        let control =
            tokio::spawn(crate::control::serve(control, plugins.clone(), display.clone(), shutdown_rx.clone()));
        let supervisor = tokio::spawn(supervisor.run(transport, shutdown_rx));
        Ok(Runtime { plugins, hub, display, observer, shutdown, supervisor, watchdog, control })
    }

    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// The device's screen: the card it shows, if any.
    pub fn display(&self) -> &Display {
        &self.display
    }

    pub fn plugins(&self) -> &PluginHost {
        &self.plugins
    }

    /// User input (a button, the microphone, a local volume change) for whichever plugin handles it.
    pub fn user_event(&self, kind: &str, payload: &Value) {
        self.plugins.user_input(kind, payload);
    }

    /// Stops the connection, every plugin and every task the runtime started.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.supervisor.await;
        let _ = self.control.await;
        self.plugins.shutdown().await;
        self.hub.player.shutdown();
        self.hub.timers.shutdown();
        self.watchdog.abort();
        let _ = self.watchdog.await;
        self.hub.sequencer.shutdown();
    }
}

/// The runtime's lifecycle: linked → capabilities published → connected, and back when AVS revokes
/// the authorization.
struct Supervisor {
    auth: Authorizer,
    https: HttpsClient,
    capabilities_url: String,
    plugins: Arc<PluginHost>,
    storage: Storage,
    observer: Observer,
    connection_directives: mpsc::UnboundedReceiver<ConnectionDirective>,
    reconnect: ReconnectPolicy,
}

const CORE_NAMESPACE: &str = "avs-core";
const PUBLISHED_KEY: &str = "published-capabilities";
/// The gateway AVS moved the device to with System.SetEndpoint; it outlasts restarts.
const ENDPOINT_KEY: &str = "endpoint";

/// The AVS gateway to dial: the one AVS last set, else the configured one.
fn avs_endpoint(config: &Config, storage: &Storage) -> String {
    let configured = config.avs_base_url();
    match storage.get(CORE_NAMESPACE, ENDPOINT_KEY) {
        Ok(Some(set)) => {
            if set != configured {
                tracing::info!("AVS endpoint {set} (set by System.SetEndpoint; configured: {configured})");
            }
            set
        }
        Ok(None) => configured,
        Err(e) => {
            tracing::warn!("reading the endpoint AVS set: {e}; using {configured}");
            configured
        }
    }
}

/// What the supervisor does when a connection ends.
enum Next {
    Stop,
    /// AVS revoked the authorization: forget the tokens and link again.
    Relink,
    /// AVS moved the device to another gateway.
    MoveTo(Endpoint),
}

impl Supervisor {
    async fn run(mut self, mut transport: Transport, mut shutdown: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.prepare() => {}
                _ = crate::tasks::raised(&mut shutdown) => return,
            }
            let (stop_connection, stop_rx) = watch::channel(false);
            let transport_endpoint = transport.endpoint.clone();
            let mut running = tokio::spawn(transport.run(stop_rx));
            let (next, finished) = loop {
                tokio::select! {
                    // An OTA swap changed the interfaces: AVS must hear about it.
                    _ = self.plugins.capabilities_changed() => {
                        tokio::select! {
                            _ = self.publish_capabilities() => continue,
                            _ = crate::tasks::raised(&mut shutdown) => break (Next::Stop, None),
                        }
                    }
                    _ = crate::tasks::raised(&mut shutdown) => break (Next::Stop, None),
                    // The connection gave up by itself: the tokens are gone, link again.
                    result = &mut running => break (Next::Relink, Some(result)),
                    directive = self.connection_directives.recv() => match directive {
                        Some(ConnectionDirective::RevokeAuthorization) => break (Next::Relink, None),
                        Some(ConnectionDirective::SetEndpoint(url)) => match self.move_to(&url, &transport_endpoint) {
                            Some(endpoint) => break (Next::MoveTo(endpoint), None),
                            None => continue,
                        },
                        None => {}
                    },
                }
            };
            let _ = stop_connection.send(true);
            let result = match finished {
                Some(result) => result,
                None => running.await,
            };
            transport = match result {
                Ok(transport) => transport,
                Err(_) => return,
            };
            match next {
                Next::Stop => return,
                Next::MoveTo(endpoint) => {
                    tracing::warn!("AVS moved this device to {}: reconnecting there", endpoint.authority);
                    transport.endpoint = endpoint;
                }
                Next::Relink => {
                    tracing::warn!("authorization revoked by AVS: clearing tokens, linking again");
                    if let Err(e) = self.auth.revoke() {
                        tracing::error!("clearing tokens: {e}");
                    }
                    // The next user's device publishes its capabilities afresh; the gateway stays.
                    let _ = self.storage.delete(CORE_NAMESPACE, PUBLISHED_KEY);
                }
            }
        }
    }

    /// The gateway of a SetEndpoint, persisted, unless the device is already there.
    fn move_to(&self, url: &str, current: &Endpoint) -> Option<Endpoint> {
        let endpoint = Endpoint::parse(url).ok()?;
        if endpoint == *current {
            return None;
        }
        if let Err(e) = self.storage.put(CORE_NAMESPACE, ENDPOINT_KEY, url) {
            tracing::error!("persisting the endpoint AVS set: {e}");
        }
        Some(endpoint)
    }

    /// Links the device if needed and publishes its capabilities, retrying until both succeed.
    async fn prepare(&mut self) {
        let mut backoff = Backoff::new(self.reconnect.clone());
        if !self.auth.is_linked() {
            let observer = self.observer.clone();
            loop {
                backoff.attempt();
                let linked = self
                    .auth
                    .link(|code| {
                        tracing::info!(
                            "to link this device, visit {} and enter the code {}",
                            code.verification_uri,
                            code.user_code
                        );
                        observer.emit(RuntimeEvent::LinkingCode {
                            user_code: code.user_code.clone(),
                            verification_uri: code.verification_uri.clone(),
                        });
                    })
                    .await;
                match linked {
                    Ok(()) => break,
                    Err(e) => self.retry_later("linking", e.to_string(), backoff.next_delay()).await,
                }
            }
            self.observer.emit(RuntimeEvent::Linked);
        }
        self.publish_capabilities().await;
    }

    /// Publishes the capabilities of the loaded plugins unless exactly this document was published
    /// last; retries until it succeeds.
    async fn publish_capabilities(&self) {
        let mut backoff = Backoff::new(self.reconnect.clone());
        let document = capabilities::document(&self.plugins.slots());
        let published = self.storage.get(CORE_NAMESPACE, PUBLISHED_KEY).ok().flatten();
        if published.as_deref() == Some(document.to_string().as_str()) {
            tracing::debug!("capabilities unchanged since the last publish");
            return;
        }
        loop {
            backoff.attempt();
            match self.publish(&document).await {
                Ok(()) => break,
                Err(e) => self.retry_later("publishing capabilities", e, backoff.next_delay()).await,
            }
        }
        if let Err(e) = self.storage.put(CORE_NAMESPACE, PUBLISHED_KEY, &document.to_string()) {
            tracing::warn!("remembering the published capabilities: {e}");
        }
        self.observer.emit(RuntimeEvent::CapabilitiesPublished { interfaces: capabilities::interfaces(&document) });
    }

    async fn retry_later(&self, what: &str, error: String, delay: Duration) {
        tracing::error!("{what} failed: {error}; retrying in {} ms", delay.as_millis());
        self.observer.emit(RuntimeEvent::Retrying { what: what.into(), error, delay_ms: delay.as_millis() as u64 });
        tokio::time::sleep(delay).await;
    }

    async fn publish(&self, document: &Value) -> Result<(), String> {
        let token = self.auth.access_token().await.map_err(|e| e.to_string())?;
        match capabilities::publish(&self.https, &self.capabilities_url, token.expose(), document).await {
            Err(capabilities::CapabilitiesError::Forbidden) => {
                self.auth.refresh().await.map_err(|e| e.to_string())?;
                Err("capabilities refused (403); token refreshed".into())
            }
            other => other.map_err(|e| e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_avs_set_wins_over_the_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(&dir.path().join("avs.db")).unwrap();
        let mut config = Config::defaults();
        config.endpoint = Some("https://localhost:8443/".into());
        assert_eq!(avs_endpoint(&config, &storage), "https://localhost:8443");
        storage.put(CORE_NAMESPACE, ENDPOINT_KEY, "https://alexa.eu.gateway.devices.a2z.com").unwrap();
        assert_eq!(avs_endpoint(&config, &storage), "https://alexa.eu.gateway.devices.a2z.com");
    }
}
