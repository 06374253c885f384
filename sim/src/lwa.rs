//! Login with Amazon, as a device doing code-based linking sees it: code pairs, polling for tokens
//! (authorization_pending, slow_down, expired_token), the refresh grant (invalid_grant once revoked).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::RecvStream;
use http::{Request, StatusCode};
use serde_json::{json, Value};

use crate::state::Shared;
use crate::wire::{read_body, reply_json, BodyError};
use crate::Approval;

struct CodePair {
    user_code: String,
    device_code: String,
    issued: Instant,
    approved: bool,
    last_poll: Option<Instant>,
}

#[derive(Default)]
pub(crate) struct Lwa {
    pairs: Vec<CodePair>,
    /// Access token → when it expires.
    access: HashMap<String, Instant>,
    refresh: HashSet<String>,
}

impl Lwa {
    pub(crate) fn approve(&mut self, user_code: &str) -> bool {
        match self.pairs.iter_mut().find(|p| p.user_code == user_code) {
            Some(pair) => {
                pair.approved = true;
                true
            }
            None => false,
        }
    }

    pub(crate) fn expire_access_tokens(&mut self) {
        self.access.clear();
    }

    pub(crate) fn revoke_refresh_tokens(&mut self) {
        self.refresh.clear();
    }

    pub(crate) fn is_valid_access_token(&self, token: &str) -> bool {
        self.access.get(token).is_some_and(|expiry| Instant::now() < *expiry)
    }

    fn issue(&mut self, shared_lifetime: std::time::Duration, refresh_token: Option<String>) -> Value {
        let access = format!("Atza|{}", uuid::Uuid::new_v4().simple());
        let refresh = refresh_token.unwrap_or_else(|| format!("Atzr|{}", uuid::Uuid::new_v4().simple()));
        self.access.insert(access.clone(), Instant::now() + shared_lifetime);
        self.refresh.insert(refresh.clone());
        json!({"access_token": access, "refresh_token": refresh, "token_type": "bearer", "expires_in": shared_lifetime.as_secs()})
    }
}

fn error(respond: SendResponse<Bytes>, error: &str, description: &str) -> Result<(), h2::Error> {
    reply_json(respond, StatusCode::BAD_REQUEST, &json!({"error": error, "error_description": description}))
}

/// The request's parameters: form-encoded as documented, JSON tolerated (and counted).
async fn params(shared: &Shared, request: Request<RecvStream>) -> Result<HashMap<String, String>, BodyError> {
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = read_body(&mut request.into_body(), 64 * 1024).await?;
    if content_type.starts_with("application/json") {
        shared.deviation("LWA request sent as JSON instead of application/x-www-form-urlencoded");
        let json: Value = serde_json::from_slice(&body).unwrap_or_default();
        let map = json.as_object().cloned().unwrap_or_default();
        return Ok(map
            .into_iter()
            .map(|(k, v)| (k, v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
            .collect());
    }
    if !content_type.starts_with("application/x-www-form-urlencoded") {
        shared.deviation(format!("LWA request with content type {content_type:?}"));
    }
    Ok(form_urlencoded::parse(&body).into_owned().collect())
}

pub(crate) async fn code_pair(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let params = match params(shared, request).await {
        Ok(params) => params,
        Err(e) => return e.reply(respond),
    };
    if params.get("response_type").map(String::as_str) != Some("device_code") {
        return error(respond, "invalid_request", "response_type must be device_code");
    }
    if params.get("client_id").is_none_or(|c| c.is_empty()) {
        return error(respond, "invalid_client", "client_id is required");
    }
    if params.get("scope").map(String::as_str) != Some("alexa:all") {
        return error(respond, "invalid_scope", "scope must be alexa:all");
    }
    let scope_ok = params.get("scope_data").and_then(|s| serde_json::from_str::<Value>(s).ok()).is_some_and(|s| {
        s["alexa:all"]["productID"].is_string()
            && s["alexa:all"]["productInstanceAttributes"]["deviceSerialNumber"].is_string()
    });
    if !scope_ok {
        return error(respond, "invalid_request", "scope_data must name alexa:all productID and deviceSerialNumber");
    }
    let user_code: String = uuid::Uuid::new_v4().simple().to_string()[..6].to_ascii_uppercase();
    let device_code = uuid::Uuid::new_v4().to_string();
    shared.lwa().pairs.push(CodePair {
        user_code: user_code.clone(),
        device_code: device_code.clone(),
        issued: Instant::now(),
        approved: false,
        last_poll: None,
    });
    let config = &shared.config;
    reply_json(
        respond,
        StatusCode::OK,
        &json!({
            "user_code": user_code,
            "device_code": device_code,
            "verification_uri": "https://amazon.com/us/code",
            "expires_in": config.code_pair_lifetime.as_secs(),
            "interval": config.poll_interval.as_secs().max(1),
        }),
    )
}

pub(crate) async fn token(
    shared: &Shared,
    request: Request<RecvStream>,
    respond: SendResponse<Bytes>,
) -> Result<(), h2::Error> {
    let params = match params(shared, request).await {
        Ok(params) => params,
        Err(e) => return e.reply(respond),
    };
    let config = &shared.config;
    let answer = {
        let mut lwa = shared.lwa();
        match params.get("grant_type").map(String::as_str) {
            Some("device_code") => {
                let device_code = params.get("device_code").cloned().unwrap_or_default();
                let Some(index) = lwa.pairs.iter().position(|p| p.device_code == device_code) else {
                    return error(respond, "invalid_grant", "unknown or already used device_code");
                };
                let now = Instant::now();
                let pair = &mut lwa.pairs[index];
                if now.duration_since(pair.issued) > config.code_pair_lifetime {
                    lwa.pairs.remove(index);
                    return error(respond, "expired_token", "the code pair expired");
                }
                // Half the interval of slack: clients' timers are not exact.
                let too_fast = pair.last_poll.is_some_and(|last| now.duration_since(last) < config.poll_interval / 2);
                pair.last_poll = Some(now);
                if too_fast {
                    return error(respond, "slow_down", "polling faster than the interval");
                }
                let approved = pair.approved
                    || matches!(config.approval, Approval::Auto(after) if now.duration_since(pair.issued) >= after);
                if !approved {
                    return error(respond, "authorization_pending", "the user has not entered the code yet");
                }
                lwa.pairs.remove(index);
                lwa.issue(config.token_lifetime, None)
            }
            Some("refresh_token") => {
                let refresh = params.get("refresh_token").cloned().unwrap_or_default();
                if params.get("client_id").is_none_or(|c| c.is_empty()) {
                    shared.deviation("refresh_token grant without client_id");
                }
                if !lwa.refresh.contains(&refresh) {
                    return error(respond, "invalid_grant", "the refresh token is invalid or revoked");
                }
                lwa.issue(config.token_lifetime, Some(refresh))
            }
            other => return error(respond, "unsupported_grant_type", &format!("grant_type {other:?}")),
        }
    };
    reply_json(respond, StatusCode::OK, &answer)
}
