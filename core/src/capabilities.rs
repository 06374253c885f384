//! The capabilities document — which interfaces at which versions this device implements — built from
//! the loaded plugins' manifests and published to AVS whenever it changes.

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{json, Value};

use crate::https::HttpsClient;
use crate::plugins::Slot;
use crate::protocol;

#[derive(Debug, thiserror::Error)]
pub enum CapabilitiesError {
    #[error("publishing capabilities to {url}: {error}")]
    Transport { url: String, error: String },
    #[error("publishing capabilities: access token refused (403)")]
    Forbidden,
    #[error("publishing capabilities: AVS rejected the document (HTTP {status}): {body}")]
    Rejected { status: u16, body: String },
    #[error("publishing capabilities: HTTP {status}, will retry")]
    Retry { status: u16 },
}

/// `{"envelopeVersion":"20160207","capabilities":[…]}`, interfaces in name order.
pub fn document(slots: &[Arc<Slot>]) -> Value {
    let mut capabilities: Vec<Value> = slots
        .iter()
        .map(|slot| {
            let m = &slot.manifest;
            let mut entry = json!({"type": "AlexaInterface", "interface": m.interface, "version": m.version});
            if let Some(configurations) = &m.configurations {
                entry["configurations"] = configurations.clone();
            }
            entry
        })
        .collect();
    capabilities.sort_by(|a, b| a["interface"].as_str().cmp(&b["interface"].as_str()));
    json!({"envelopeVersion": protocol::ENVELOPE_VERSION, "capabilities": capabilities})
}

/// The (interface, version) pairs of a document, for reporting.
pub fn interfaces(document: &Value) -> Vec<(String, String)> {
    document["capabilities"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|c| {
                    (c["interface"].as_str().unwrap_or("").to_string(), c["version"].as_str().unwrap_or("").to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `PUT /v1/devices/@self/capabilities`; 204 (or 200) means accepted.
pub async fn publish(https: &HttpsClient, url: &str, token: &str, document: &Value) -> Result<(), CapabilitiesError> {
    let request = http::Request::put(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Bytes::from(document.to_string()))
        .map_err(|e| CapabilitiesError::Transport { url: url.to_string(), error: e.to_string() })?;
    let (status, _headers, body) = https
        .send(request)
        .await
        .map_err(|e| CapabilitiesError::Transport { url: url.to_string(), error: e.to_string() })?;
    match status.as_u16() {
        200 | 204 => Ok(()),
        403 => Err(CapabilitiesError::Forbidden),
        status @ 400..=499 if status != 429 => {
            Err(CapabilitiesError::Rejected { status, body: String::from_utf8_lossy(&body).into_owned() })
        }
        status => Err(CapabilitiesError::Retry { status }),
    }
}
