//! Which handler answers a request, and the bearer-token check every AVS path makes.

use std::sync::Arc;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, StatusCode};

use crate::faults::{self, PingAnswer};
use crate::server::Connection;
use crate::state::Shared;
use crate::wire::{reply, reply_exception};
use crate::{admin, capabilities, downchannel, events, lwa, media};

pub(crate) async fn route(
    shared: Arc<Shared>,
    connection: Arc<Connection>,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let result = match (method.as_str(), path.as_str()) {
        ("POST", "/auth/O2/create/codepair") => lwa::code_pair(&shared, request, respond).await,
        ("POST", "/auth/O2/token") => lwa::token(&shared, request, respond).await,
        ("GET", "/v20160207/directives") => downchannel::open(&shared, request, respond).await,
        ("POST", "/v20160207/events") => events::receive(&shared, &connection, request, respond).await,
        ("GET", "/ping") => ping(&shared, &request, respond).await,
        ("PUT", "/v1/devices/@self/capabilities") => capabilities::put(&shared, request, respond).await,
        (_, p) if p.starts_with("/admin/") => admin::route(&shared, request, respond).await,
        ("GET", p) if p.starts_with("/media/") => media::serve(p, respond),
        _ => reply(respond, StatusCode::NOT_FOUND, "text/plain", Bytes::from(format!("no route for {method} {path}"))),
    };
    if let Err(e) = result {
        tracing::debug!(connection = connection.id, "{method} {path}: {e}");
    }
}

async fn ping(shared: &Shared, request: &Request<RecvStream>, respond: SendResponse<Bytes>) -> Result<(), h2::Error> {
    let respond = match authorize(shared, request, respond) {
        Ok(respond) => respond,
        Err(answered) => return answered,
    };
    match shared.faults.ping_answer() {
        PingAnswer::After(delay) => {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            reply(respond, StatusCode::NO_CONTENT, "", Bytes::new())
        }
        PingAnswer::Never => faults::hold(respond).await,
    }
}

/// Checks `authorization: Bearer <token>` against the tokens LWA issued. On failure it answers 403
/// itself and hands back the result of that answer.
pub(crate) fn authorize(
    shared: &Shared,
    request: &Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<SendResponse<Bytes>, Result<(), h2::Error>> {
    let header = request.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let token = match header.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => {
            if scheme != "Bearer" {
                shared.deviation(format!("authorization scheme spelled {scheme:?}"));
            }
            token.trim()
        }
        _ => "",
    };
    if shared.lwa().is_valid_access_token(token) {
        return Ok(respond);
    }
    let description = if token.is_empty() { "no bearer token" } else { "the access token is invalid or expired" };
    Err(reply_exception(respond, StatusCode::FORBIDDEN, "UNAUTHORIZED_REQUEST_EXCEPTION", description))
}
