//! The admin surface over HTTP (the same operations as `SimHandle`), for poking a running `avs sim`
//! by hand: push a directive, read what was received, approve a code, inject a fault (the JSON is in
//! [`crate::faults`]). It needs no token: the sim listens on loopback and these paths are not AVS's.

use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::downchannel::directive_parts;
use crate::faults::{self, Fault};
use crate::load::LoadSpec;
use crate::scenarios::Scenario;
use crate::state::{DownchannelMessage, Shared};
use crate::wire::{read_body, reply_json};

const MAX_DIRECTIVE_BYTES: usize = 1 << 20;

pub(crate) async fn route(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let path = request.uri().path().to_string();
    let query = request.uri().query().unwrap_or("").to_string();
    let method = request.method().as_str().to_string();
    match (method.as_str(), path.as_str()) {
        ("GET", "/admin/events") => {
            // `?last=N`: only the N most recent, so that a long run's record need not travel whole.
            let last = query_param(&query, "last")
                .map(|v| v.parse::<usize>().map_err(|e| format!("last={v}: {e}")))
                .transpose();
            match last {
                Ok(last) => {
                    let recorded = shared.recorded();
                    let from = last.map_or(0, |n| recorded.events.len().saturating_sub(n));
                    reply_json(respond, StatusCode::OK, &json!(recorded.events[from..]))
                }
                Err(e) => reply_json(respond, StatusCode::BAD_REQUEST, &json!({ "error": e })),
            }
        }
        ("GET", "/admin/capabilities") => reply_json(respond, StatusCode::OK, &json!(shared.recorded().capabilities)),
        ("GET", "/admin/violations") => reply_json(respond, StatusCode::OK, &json!(shared.recorded().violations)),
        ("GET", "/admin/deviations") => reply_json(respond, StatusCode::OK, &json!(shared.recorded().deviations)),
        ("GET", "/admin/refused-events") => {
            reply_json(respond, StatusCode::OK, &json!(shared.recorded().refused_events))
        }
        ("GET", "/admin/connection-attempts") => {
            reply_json(respond, StatusCode::OK, &json!({"attempts": shared.recorded().connection_attempts.len()}))
        }
        ("POST", "/admin/fault") => {
            let body = match read_body(&mut request.into_body(), MAX_DIRECTIVE_BYTES).await {
                Ok(body) => body,
                Err(e) => return e.reply(respond),
            };
            match serde_json::from_slice::<Fault>(&body) {
                Ok(fault) => reply_json(respond, StatusCode::OK, &json!(faults::inject(shared, fault))),
                Err(e) => reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": format!("fault: {e}")})),
            }
        }
        ("POST", "/admin/directive") => {
            let body = match read_body(&mut request.into_body(), MAX_DIRECTIVE_BYTES).await {
                Ok(body) => body,
                Err(e) => return e.reply(respond),
            };
            let directive: Value = match serde_json::from_slice(&body) {
                Ok(directive) => directive,
                Err(e) => {
                    return reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": format!("not JSON: {e}")}))
                }
            };
            let parts = directive_parts(&directive, &[]);
            let delivered = shared.broadcast_downchannel(|| DownchannelMessage::Data(parts.clone()));
            reply_json(respond, StatusCode::OK, &json!({ "downchannels": delivered }))
        }
        ("POST", "/admin/load") => {
            let body = match read_body(&mut request.into_body(), MAX_DIRECTIVE_BYTES).await {
                Ok(body) => body,
                Err(e) => return e.reply(respond),
            };
            match serde_json::from_slice::<LoadSpec>(&body)
                .map_err(|e| e.to_string())
                .and_then(|s| s.check().map(|_| s))
            {
                Ok(spec) => {
                    let delivered = shared.broadcast_downchannel(|| DownchannelMessage::Load(Arc::new(spec.clone())));
                    reply_json(respond, StatusCode::OK, &json!({ "downchannels": delivered }))
                }
                Err(e) => reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": format!("load spec: {e}")})),
            }
        }
        ("POST", "/admin/scenario") => {
            let name = query_param(&query, "name");
            let scenario = name.as_deref().filter(|n| !n.is_empty()).map(|n| Scenario::named(n).ok_or(n));
            match scenario.transpose() {
                Ok(scenario) => {
                    *shared.scenario.lock().unwrap_or_else(|e| e.into_inner()) = scenario;
                    reply_json(respond, StatusCode::OK, &json!({"scenario": scenario.map(|s| s.name)}))
                }
                Err(unknown) => {
                    reply_json(respond, StatusCode::NOT_FOUND, &json!({"error": crate::unknown_scenario(unknown)}))
                }
            }
        }
        ("POST", "/admin/approve") => {
            let user_code = query_param(&query, "user_code");
            let approved = user_code.is_some_and(|code| shared.lwa().approve(&code));
            let status = if approved { StatusCode::OK } else { StatusCode::NOT_FOUND };
            reply_json(respond, status, &json!({ "approved": approved }))
        }
        _ => reply_json(respond, StatusCode::NOT_FOUND, &json!({"error": format!("no admin route {method} {path}")})),
    }
}

/// The first value of `name` in a URL query string, decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}
