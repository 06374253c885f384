//! Login with Amazon for a headless device: code-based linking, refresh tokens, and a token store that
//! only the device's user can read (avs-protocol §3). Tokens are `Secret`s: they print as `<redacted>`
//! everywhere.

pub(crate) mod lwa;
mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::https::{HttpsClient, HttpsError};
use lwa::PollStep;
use store::Tokens;

/// A token. Never printed: `Debug` and `Display` show `<redacted>`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The token itself, for an `authorization` header and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Login with Amazon unreachable: {0}")]
    Http(#[from] HttpsError),
    #[error(
        "Login with Amazon refused: {error}{}{}",
        description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default(),
        advice(error)
    )]
    Refused { error: String, description: Option<String> },
    #[error("Login with Amazon answered HTTP {status} with a body that is not a usable answer")]
    BadAnswer { status: u16 },
    #[error("the Login with Amazon URL {url:?} is not valid (config key lwa_url)")]
    BadUrl { url: String },
    #[error("the device is not linked (no refresh token): code-based linking is needed")]
    NotLinked,
    #[error("the refresh token was revoked or has expired (invalid_grant): the device must be linked again")]
    Revoked,
    #[error("token store {path}: {reason}")]
    Store { path: String, reason: String },
    #[error("token store {path} is readable or writable by others (mode {mode:o}); refusing to use it: chmod 600 it")]
    InsecureStore { path: String, mode: u32 },
}

/// What a device maker should check, for the errors that are configuration mistakes.
fn advice(error: &str) -> &'static str {
    match error {
        "invalid_client" | "unauthorized_client" => {
            ": check client_id (the security profile's client ID) and that the profile allows code-based linking"
        }
        "invalid_scope" => ": check product_id (the AVS product ID) and device_serial_number",
        "invalid_request" | "unsupported_grant_type" => ": is lwa_url really Login with Amazon?",
        _ => "",
    }
}

impl AuthError {
    /// Configuration errors no retry can fix.
    pub fn is_permanent(&self) -> bool {
        match self {
            AuthError::Refused { error, .. } => matches!(
                error.as_str(),
                "invalid_client"
                    | "unauthorized_client"
                    | "unsupported_grant_type"
                    | "invalid_request"
                    | "invalid_scope"
            ),
            AuthError::BadUrl { .. } | AuthError::InsecureStore { .. } => true,
            _ => false,
        }
    }
}

/// What the user must do to link the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePair {
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: Duration,
}

/// Authorization for every AVS request. Clones share the tokens.
#[derive(Clone)]
pub struct Authorizer {
    inner: Arc<Inner>,
}

struct Inner {
    https: HttpsClient,
    lwa_url: String,
    client_id: String,
    product_id: String,
    device_serial_number: String,
    locale: String,
    store: PathBuf,
    /// Refresh this many seconds before the access token expires.
    head_start_secs: AtomicU64,
    tokens: Mutex<Option<Tokens>>,
    /// Bumped by every change of the tokens, so a refresh that waited for another can tell it already
    /// happened.
    generation: AtomicU64,
    /// One refresh at a time: concurrent 403s must not race two refresh grants.
    refreshing: tokio::sync::Mutex<()>,
}

/// The default head start: a token is renewed in its last minute, before any request can carry a dead one.
const REFRESH_HEAD_START: Duration = Duration::from_secs(60);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Authorizer {
    /// Reads the token store in `config.data_dir`; refuses one that others can read.
    pub fn new(https: HttpsClient, config: &Config) -> Result<Self, AuthError> {
        let store = config.data_dir.join("tokens.json");
        let tokens = store::read(&store)?;
        Ok(Authorizer {
            inner: Arc::new(Inner {
                https,
                lwa_url: config.lwa_base_url(),
                client_id: config.client_id.clone(),
                product_id: config.product_id.clone(),
                device_serial_number: config.device_serial_number.clone(),
                locale: config.locale.clone(),
                store,
                head_start_secs: AtomicU64::new(REFRESH_HEAD_START.as_secs()),
                tokens: Mutex::new(tokens),
                generation: AtomicU64::new(0),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// How long before expiry `access_token` renews the token (default 60 s).
    pub fn set_refresh_head_start(&self, head_start: Duration) {
        self.inner.head_start_secs.store(head_start.as_secs(), Ordering::Relaxed);
    }

    /// A refresh token is stored.
    pub fn is_linked(&self) -> bool {
        self.tokens().is_some()
    }

    /// Code-based linking: get a code pair, show it (`on_code`), poll until the user approved it. A code
    /// pair that expires is replaced by a new one (shown again). Failing to get a code pair is returned:
    /// the caller retries with its own backoff and reports why. Once a code is shown, LWA and network
    /// failures are retried here with backoff, so the code the user is typing stays valid; configuration
    /// errors end it.
    pub async fn link(&self, on_code: impl Fn(&CodePair) + Send) -> Result<(), AuthError> {
        loop {
            let pair = self.code_pair().await?;
            on_code(&CodePair {
                user_code: pair.user_code.clone(),
                verification_uri: pair.verification_uri.clone(),
                expires_in: Duration::from_secs(pair.expires_in),
            });
            let deadline = tokio::time::Instant::now() + Duration::from_secs(pair.expires_in);
            let mut interval = Duration::from_secs(pair.interval.max(1));
            let mut wait = interval;
            let mut failures = 0;
            loop {
                tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + wait)).await;
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!("code pair expired before it was approved; requesting a new one");
                    break;
                }
                let form = [
                    ("grant_type", "device_code"),
                    ("device_code", pair.device_code.expose()),
                    ("user_code", pair.user_code.as_str()),
                ];
                let error = match self.token_request(&form).await {
                    Ok(answer) => {
                        let refresh_token = answer.refresh_token.ok_or(AuthError::BadAnswer { status: 200 })?;
                        let tokens = Tokens {
                            access_token: answer.access_token,
                            refresh_token,
                            expires_at: now() + answer.expires_in,
                        };
                        self.save(tokens, false)?;
                        tracing::info!("device linked");
                        return Ok(());
                    }
                    Err(error) => error,
                };
                wait = interval;
                match lwa::poll_step(&error) {
                    PollStep::Pending => failures = 0,
                    PollStep::SlowDown => {
                        interval = lwa::slow_down(interval);
                        wait = interval;
                        tracing::info!("Login with Amazon asked to slow down: polling every {interval:?}");
                    }
                    PollStep::NewCodePair => {
                        tracing::warn!("code pair no longer valid ({error}); requesting a new one");
                        break;
                    }
                    PollStep::Retry => {
                        wait = interval.max(lwa::retry_delay(failures));
                        failures += 1;
                        tracing::warn!("polling Login with Amazon failed ({error}); retrying in {wait:?}");
                    }
                    PollStep::Fail => return Err(error),
                }
            }
        }
    }

    /// A valid access token, refreshed first if it expires within the head start.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        match self.tokens().as_ref() {
            None => return Err(AuthError::NotLinked),
            Some(t) if self.fresh(t) => return Ok(t.access_token.clone()),
            Some(_) => {}
        }
        self.refresh_inner(false).await
    }

    /// Refreshes the access token now (after a 403). `invalid_grant` means the refresh token was revoked:
    /// the tokens are cleared and the device must be linked again.
    pub async fn refresh(&self) -> Result<Secret, AuthError> {
        self.refresh_inner(true).await
    }

    /// Forgets the tokens (System.RevokeAuthorization, or a revoked refresh token).
    pub fn revoke(&self) -> Result<(), AuthError> {
        let mut tokens = self.tokens();
        *tokens = None;
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        store::remove(&self.inner.store)
    }

    fn tokens(&self) -> MutexGuard<'_, Option<Tokens>> {
        // The tokens are replaced whole, so a panic elsewhere cannot leave them half-written.
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn fresh(&self, tokens: &Tokens) -> bool {
        tokens.expires_at > now() + self.inner.head_start_secs.load(Ordering::Relaxed)
    }

    async fn refresh_inner(&self, force: bool) -> Result<Secret, AuthError> {
        let seen = self.inner.generation.load(Ordering::Acquire);
        let _one_at_a_time = self.inner.refreshing.lock().await;
        let refresh_token = match self.tokens().as_ref() {
            None => return Err(AuthError::NotLinked),
            // Another caller refreshed while this one waited for the lock.
            Some(t) if self.inner.generation.load(Ordering::Acquire) != seen => return Ok(t.access_token.clone()),
            Some(t) if !force && self.fresh(t) => return Ok(t.access_token.clone()),
            Some(t) => t.refresh_token.clone(),
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.inner.client_id.as_str()),
        ];
        match self.token_request(&form).await {
            Ok(answer) => {
                let access = answer.access_token.clone();
                let tokens = Tokens {
                    access_token: answer.access_token,
                    // LWA may rotate the refresh token; when it does not send one, the current one stays.
                    refresh_token: answer.refresh_token.unwrap_or(refresh_token),
                    expires_at: now() + answer.expires_in,
                };
                self.save(tokens, true)?;
                tracing::info!("access token refreshed");
                Ok(access)
            }
            Err(AuthError::Refused { error, .. }) if error == "invalid_grant" => {
                tracing::warn!("refresh token revoked (invalid_grant): the device must be linked again");
                self.revoke()?;
                Err(AuthError::Revoked)
            }
            Err(e) => Err(e),
        }
    }

    async fn code_pair(&self) -> Result<lwa::CodePairAnswer, AuthError> {
        let scope_data = serde_json::json!({"alexa:all": {
            "productID": self.inner.product_id,
            "productInstanceAttributes": {"deviceSerialNumber": self.inner.device_serial_number},
        }})
        .to_string();
        let form = [
            ("response_type", "device_code"),
            ("client_id", self.inner.client_id.as_str()),
            ("scope", "alexa:all"),
            ("scope_data", scope_data.as_str()),
        ];
        let (status, body) = self.post("/auth/O2/create/codepair", &form).await?;
        lwa::parse_code_pair(status, &body)
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<lwa::TokenAnswer, AuthError> {
        let (status, body) = self.post("/auth/O2/token", form).await?;
        lwa::parse_tokens(status, &body)
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<(u16, Bytes), AuthError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let url = format!("{}{path}", self.inner.lwa_url);
        let request = http::Request::post(&url)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT_LANGUAGE, self.inner.locale.as_str())
            .body(Bytes::from(body))
            .map_err(|_| AuthError::BadUrl { url: self.inner.lwa_url.clone() })?;
        let (status, _, body) = self.inner.https.send(request).await?;
        Ok((status.as_u16(), body))
    }

    /// Stores new tokens. A refresh (`only_if_linked`) that finishes after a revoke must not bring the
    /// revoked tokens back.
    fn save(&self, tokens: Tokens, only_if_linked: bool) -> Result<(), AuthError> {
        let mut current = self.tokens();
        if only_if_linked && current.is_none() {
            return Err(AuthError::NotLinked);
        }
        store::write(&self.inner.store, &tokens)?;
        *current = Some(tokens);
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    fn config(dir: &std::path::Path, lwa_url: String) -> Config {
        Config { data_dir: dir.to_path_buf(), lwa_url: Some(lwa_url), ..Config::defaults() }
    }

    /// An LWA URL where nothing listens: a request to it fails at once, without the internet.
    fn nowhere() -> String {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        format!("https://127.0.0.1:{port}")
    }

    fn authorizer(dir: &std::path::Path, tokens: Option<Tokens>) -> Authorizer {
        if let Some(tokens) = tokens {
            store::write(&dir.join("tokens.json"), &tokens).unwrap();
        }
        let https = HttpsClient::new(crate::tls::client_config(None).unwrap());
        Authorizer::new(https, &config(dir, nowhere())).unwrap()
    }

    fn tokens(expires_in: u64) -> Tokens {
        Tokens {
            access_token: Secret::new("Atza|secret-access"),
            refresh_token: Secret::new("Atzr|secret-refresh"),
            expires_at: now() + expires_in,
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("Atza|abc");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "<redacted> <redacted> Some(<redacted>)");
        let debug = format!("{:?}", tokens(10));
        assert!(!debug.contains("Atz") && debug.contains("<redacted>"), "{debug}");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"Atza|abc\"", "stored as the plain string");
        let error = AuthError::Refused { error: "invalid_grant".into(), description: None };
        assert!(!format!("{error} {error:?}").contains("Atz"));
    }

    #[test]
    fn errors_tell_the_device_maker_what_to_check() {
        let error = AuthError::Refused { error: "invalid_client".into(), description: Some("Unknown client".into()) };
        let message = error.to_string();
        assert!(message.contains("invalid_client (Unknown client)") && message.contains("client_id"), "{message}");
        assert!(error.is_permanent());
        let scope = AuthError::Refused { error: "invalid_scope".into(), description: None };
        assert!(scope.to_string().contains("product_id") && scope.is_permanent());
        let pending = AuthError::Refused { error: "authorization_pending".into(), description: None };
        assert_eq!(pending.to_string(), "Login with Amazon refused: authorization_pending");
        assert!(!pending.is_permanent() && !AuthError::BadAnswer { status: 500 }.is_permanent());
        assert!(AuthError::Revoked.to_string().contains("linked again"));
    }

    #[tokio::test]
    async fn a_stored_fresh_token_is_used_without_asking_lwa() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authorizer(dir.path(), Some(tokens(3600)));
        assert!(auth.is_linked());
        assert_eq!(auth.access_token().await.unwrap().expose(), "Atza|secret-access");
        // Within the head start the token counts as expired: the refresh is attempted (and LWA is
        // unreachable here), and the stored tokens survive the failure.
        auth.set_refresh_head_start(Duration::from_secs(7200));
        let err = auth.access_token().await.unwrap_err();
        assert!(matches!(err, AuthError::Http(_)), "{err}");
        assert!(err.to_string().contains("/auth/O2/token"), "{err}");
        assert!(auth.is_linked());
        assert!(dir.path().join("tokens.json").exists());
    }

    #[tokio::test]
    async fn an_unlinked_or_revoked_device_has_no_token() {
        let dir = tempfile::tempdir().unwrap();
        let auth = authorizer(dir.path(), None);
        assert!(!auth.is_linked());
        assert!(matches!(auth.access_token().await, Err(AuthError::NotLinked)));
        assert!(matches!(auth.refresh().await, Err(AuthError::NotLinked)));
        // No code pair, nothing shown: the error goes to the caller, who retries and reports it.
        let err = auth.link(|_| panic!("no code pair was issued")).await.unwrap_err();
        assert!(matches!(err, AuthError::Http(_)) && err.to_string().contains("/auth/O2/create/codepair"), "{err}");

        let auth = authorizer(dir.path(), Some(tokens(3600)));
        let clone = auth.clone();
        clone.revoke().unwrap();
        assert!(!auth.is_linked(), "clones share the tokens");
        assert!(!dir.path().join("tokens.json").exists());
        assert!(matches!(auth.access_token().await, Err(AuthError::NotLinked)));
        assert!(matches!(auth.save(tokens(3600), true), Err(AuthError::NotLinked)), "a late refresh stays revoked");
        auth.revoke().unwrap();
    }

    type Form = std::collections::HashMap<String, String>;
    type Log = Arc<Mutex<Vec<(String, Form)>>>;

    const PENDING: &str = r#"{"error":"authorization_pending","error_description":"not yet"}"#;
    const LINKED: &str =
        r#"{"access_token":"Atza|1","refresh_token":"Atzr|1","token_type":"bearer","expires_in":3600}"#;
    const REFRESHED: &str = r#"{"access_token":"Atza|2","token_type":"bearer","expires_in":3600}"#;

    /// Login with Amazon, scripted: the first code pair's polls answer pending then expired; the second's
    /// answer 503 then approve; the first refresh succeeds without a new refresh token, later ones find
    /// it revoked. Every request's form (and Accept-Language) is logged.
    fn scripted_lwa(log: &Log, received: crate::https::testing::Received) -> (u16, http::HeaderMap, Bytes) {
        let mut form: Form = form_urlencoded::parse(&received.body).into_owned().collect();
        let language = received.headers.get("accept-language").and_then(|v| v.to_str().ok()).unwrap_or("");
        form.insert("accept-language".into(), language.into());
        let mut log = log.lock().unwrap();
        log.push((received.path.clone(), form.clone()));
        let times = |key: &str, value: &str| log.iter().filter(|(_, f)| f.get(key).is_some_and(|v| v == value)).count();
        let field = |key: &str| form.get(key).map(String::as_str).unwrap_or("");
        let (status, body) = match (received.path.as_str(), field("grant_type"), field("device_code")) {
            ("/auth/O2/create/codepair", _, _) => {
                let n = times("response_type", "device_code");
                let code = if n == 1 { "FIRST" } else { "SECOND" };
                let uri = "https://amazon.com/us/code";
                let pair = format!(
                    r#"{{"user_code":"{code}","device_code":"dc-{n}","verification_uri":"{uri}","expires_in":600,"interval":1}}"#
                );
                (200, pair)
            }
            ("/auth/O2/token", "device_code", "dc-1") if times("device_code", "dc-1") == 1 => (400, PENDING.into()),
            ("/auth/O2/token", "device_code", "dc-1") => (400, r#"{"error":"expired_token"}"#.into()),
            ("/auth/O2/token", "device_code", "dc-2") if times("device_code", "dc-2") == 1 => {
                (503, "<html>Service Unavailable</html>".into())
            }
            ("/auth/O2/token", "device_code", _) => (200, LINKED.into()),
            ("/auth/O2/token", "refresh_token", _) if times("grant_type", "refresh_token") == 1 => {
                (200, REFRESHED.into())
            }
            _ => (400, r#"{"error":"invalid_grant"}"#.into()),
        };
        (status, http::HeaderMap::new(), Bytes::from(body))
    }

    /// Code-based linking and refreshes against a scripted Login with Amazon: a pending poll, an expired
    /// code pair (a new one is shown), an LWA outage (retried), approval; then a refresh that keeps the
    /// refresh token, and one that finds it revoked. Takes about 4 s: LWA's poll interval is in seconds.
    #[tokio::test]
    async fn linking_polls_through_pending_expiry_and_outage_then_refreshes_until_revoked() {
        let log = Log::default();
        let seen = log.clone();
        let server = crate::https::testing::serve(move |received| scripted_lwa(&seen, received)).await;
        let dir = tempfile::tempdir().unwrap();
        let https = HttpsClient::new(crate::tls::client_config(Some(&server.ca)).unwrap());
        let auth = Authorizer::new(https, &config(dir.path(), server.url(""))).unwrap();

        let shown = Mutex::new(Vec::new());
        auth.link(|pair| shown.lock().unwrap().push(pair.clone())).await.unwrap();
        let shown = shown.into_inner().unwrap();
        let codes: Vec<_> =
            shown.iter().map(|p| (p.user_code.as_str(), p.verification_uri.as_str(), p.expires_in)).collect();
        let uri = "https://amazon.com/us/code";
        assert_eq!(codes, [("FIRST", uri, Duration::from_secs(600)), ("SECOND", uri, Duration::from_secs(600))]);
        assert!(auth.is_linked());
        assert_eq!(store::read(&dir.path().join("tokens.json")).unwrap().unwrap().refresh_token.expose(), "Atzr|1");
        assert_eq!(auth.access_token().await.unwrap().expose(), "Atza|1");

        let requests = log.lock().unwrap().clone();
        let paths: Vec<_> = requests.iter().map(|(path, _)| path.as_str()).collect();
        let (pair, token) = ("/auth/O2/create/codepair", "/auth/O2/token");
        assert_eq!(paths, [pair, token, token, pair, token, token], "cached token: no further request");
        let codepair = &requests[0].1;
        let defaults = Config::defaults();
        assert_eq!(codepair["response_type"], "device_code");
        assert_eq!(codepair["client_id"], defaults.client_id);
        assert_eq!(codepair["scope"], "alexa:all");
        assert_eq!(codepair["accept-language"], "en-US");
        let scope_data: serde_json::Value = serde_json::from_str(&codepair["scope_data"]).unwrap();
        assert_eq!(
            scope_data,
            serde_json::json!({"alexa:all": {"productID": defaults.product_id,
                "productInstanceAttributes": {"deviceSerialNumber": defaults.device_serial_number}}})
        );
        let poll = &requests[5].1;
        assert_eq!(
            (poll["grant_type"].as_str(), poll["device_code"].as_str(), poll["user_code"].as_str()),
            ("device_code", "dc-2", "SECOND")
        );

        assert_eq!(auth.refresh().await.unwrap().expose(), "Atza|2");
        let refresh = log.lock().unwrap()[6].1.clone();
        assert_eq!(
            (refresh["refresh_token"].as_str(), refresh["client_id"].as_str()),
            ("Atzr|1", defaults.client_id.as_str())
        );
        let stored = store::read(&dir.path().join("tokens.json")).unwrap().unwrap();
        assert_eq!(
            (stored.access_token.expose(), stored.refresh_token.expose()),
            ("Atza|2", "Atzr|1"),
            "refresh token kept"
        );

        assert!(matches!(auth.refresh().await, Err(AuthError::Revoked)));
        assert!(!auth.is_linked());
        assert!(!dir.path().join("tokens.json").exists());
    }

    #[test]
    fn a_world_readable_store_stops_the_authorizer() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        store::write(&path, &tokens(3600)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let https = HttpsClient::new(crate::tls::client_config(None).unwrap());
        let err = Authorizer::new(https, &config(dir.path(), nowhere())).err().unwrap();
        assert!(matches!(err, AuthError::InsecureStore { mode: 0o644, .. }), "{err}");
        assert!(err.is_permanent());
    }
}
