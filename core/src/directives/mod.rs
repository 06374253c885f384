//! Directives from AVS: parse the envelope once, route by namespace to the plugin slot, validate the
//! payload against that plugin's schema, and hand it to the dialog sequencer. Whatever cannot be handled
//! is answered with `System.ExceptionEncountered`, and the runtime keeps going.

mod dedup;
mod message;
pub(crate) mod sequencer;
pub mod stats;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
pub use message::{DirectiveMessage, EnvelopeError};
pub use stats::{DispatchSnapshot, DispatchStats};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::events::{exception_encountered, EventSender};
use crate::observe::{Observer, RuntimeEvent};
use crate::plugins::PluginHost;
use crate::protocol;
use dedup::RecentDirectives;
use sequencer::{Routed, SequencerHandle};

/// Directives about the connection itself, handled by the runtime rather than a plugin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionDirective {
    RevokeAuthorization,
    SetEndpoint(String),
}

#[derive(Clone)]
pub(crate) struct Router {
    plugins: Arc<PluginHost>,
    sequencer: SequencerHandle,
    events: EventSender,
    observer: Observer,
    connection: mpsc::UnboundedSender<ConnectionDirective>,
    recent: Arc<Mutex<RecentDirectives>>,
}

impl Router {
    pub(crate) fn new(
        plugins: Arc<PluginHost>,
        sequencer: SequencerHandle,
        events: EventSender,
        observer: Observer,
        connection: mpsc::UnboundedSender<ConnectionDirective>,
    ) -> Self {
        let recent = Arc::new(Mutex::new(RecentDirectives::new(dedup::WINDOW)));
        Router { plugins, sequencer, events, observer, connection, recent }
    }

    /// Routes one directive JSON part, which holds `in_flight` until it is done with. Its plugin's
    /// thread is woken by the next [`Router::wake_plugins`].
    pub(crate) fn route(&self, raw: Bytes, in_flight: OwnedSemaphorePermit) {
        let arrived = Instant::now();
        let refuse = |e: EnvelopeError| {
            tracing::warn!("directive rejected: {e}");
            self.events.send_or_log(exception_encountered(&raw, "UNEXPECTED_INFORMATION_RECEIVED", &e.to_string()));
        };
        let document = match DirectiveMessage::document(&raw) {
            Ok(document) => document,
            Err(e) => return refuse(e),
        };
        let (mut directive, payload) = match DirectiveMessage::from_document(&raw, &document, arrived) {
            Ok(parsed) => parsed,
            Err(e) => return refuse(e),
        };
        let first_time = self.recent.lock().unwrap_or_else(|e| e.into_inner()).first_time(directive.message_id());
        if !first_time {
            tracing::warn!(message_id = directive.message_id(), "directive received again: ignored");
            self.observer.emit(RuntimeEvent::DirectiveDropped {
                namespace: directive.namespace().into(),
                name: directive.name().into(),
                message_id: directive.message_id().into(),
                reason: "a directive with this messageId was already received".into(),
            });
            return;
        }
        directive.hold(in_flight);
        let Some(slot) = self.plugins.slot(directive.namespace()) else {
            return self.reject(
                &directive,
                "UNSUPPORTED_OPERATION",
                format!("no plugin handles {}", directive.namespace()),
            );
        };
        let Some(spec) = slot.manifest.directives.iter().find(|d| d.name == directive.name()) else {
            let why = format!("{} {} does not support {}", slot.interface(), slot.manifest.version, directive.name());
            return self.reject(&directive, "UNSUPPORTED_OPERATION", why);
        };
        let blocking = spec.blocking;
        if let Err(why) = slot.schemas.check_directive_node(directive.name(), payload) {
            return self.reject(&directive, "UNEXPECTED_INFORMATION_RECEIVED", why.0);
        }
        // Checked against the System plugin's schema like any directive, then the runtime's to carry out.
        match connection_directive(&directive) {
            Some(Ok(control)) => {
                tracing::info!("connection directive {}.{}", directive.namespace(), directive.name());
                let _ = self.connection.send(control);
                return;
            }
            Some(Err(why)) => return self.reject(&directive, "UNEXPECTED_INFORMATION_RECEIVED", why),
            None => {}
        }
        self.sequencer.submit(Routed { directive: Arc::new(directive), blocking });
    }

    /// Wakes the plugins whose directives [`Router::route`] queued since the last call: routing a burst
    /// of directives costs one wake-up per plugin, not one per directive.
    pub(crate) fn wake_plugins(&self) {
        self.sequencer.wake_plugins()
    }

    fn reject(&self, directive: &DirectiveMessage, error_type: &str, why: String) {
        tracing::warn!(directive = %format!("{}.{}", directive.namespace(), directive.name()), "rejected: {why}");
        self.observer.emit(RuntimeEvent::DirectiveDropped {
            namespace: directive.namespace().into(),
            name: directive.name().into(),
            message_id: directive.message_id().into(),
            reason: why.clone(),
        });
        self.events.send_or_log(exception_encountered(directive.raw(), error_type, &why));
    }
}

fn connection_directive(directive: &DirectiveMessage) -> Option<Result<ConnectionDirective, String>> {
    if directive.namespace() != protocol::SYSTEM {
        return None;
    }
    match directive.name() {
        protocol::REVOKE_AUTHORIZATION => Some(Ok(ConnectionDirective::RevokeAuthorization)),
        protocol::SET_ENDPOINT => Some(set_endpoint(directive.payload())),
        _ => None,
    }
}

/// The gateway AVS moves the device to: only an https URL the transport can dial.
fn set_endpoint(payload: &str) -> Result<ConnectionDirective, String> {
    let payload: serde_json::Value = serde_json::from_str(payload).map_err(|e| e.to_string())?;
    let url = payload["endpoint"].as_str().ok_or("SetEndpoint without an endpoint")?.trim_end_matches('/');
    crate::transport::http2::Endpoint::parse(url).map_err(|e| format!("SetEndpoint: {e} (an https URL)"))?;
    Ok(ConnectionDirective::SetEndpoint(url.to_string()))
}
