//! Login with Amazon for a headless device: code-based linking, refresh tokens, and a token store that
//! only the device's user can read. Tokens are `Secret`s: they print as `<redacted>` everywhere.

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::https::{HttpsClient, HttpsError};

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
    #[error("Login with Amazon refused: {error}{}", description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { error: String, description: Option<String> },
    #[error("Login with Amazon answered HTTP {status} with an unreadable body")]
    BadAnswer { status: u16 },
    #[error("the device is not linked (no refresh token): code-based linking is needed")]
    NotLinked,
    #[error("token store {path}: {reason}")]
    Store { path: String, reason: String },
    #[error("token store {path} is readable by others (mode {mode:o}); refusing to use it — chmod 600 it")]
    InsecureStore { path: String, mode: u32 },
}

impl AuthError {
    /// Configuration errors no retry can fix.
    pub fn is_permanent(&self) -> bool {
        matches!(self, AuthError::Refused { error, .. }
            if matches!(error.as_str(), "invalid_client" | "unauthorized_client" | "unsupported_grant_type" | "invalid_request"))
    }
}

/// What the user must do to link the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePair {
    pub user_code: String,
    pub verification_uri: String,
    pub expires_in: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Tokens {
    access_token: Secret,
    refresh_token: Secret,
    /// Seconds since the Unix epoch.
    expires_at: u64,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Secret,
    refresh_token: Secret,
    expires_in: u64,
}

#[derive(Deserialize)]
struct CodePairAnswer {
    user_code: String,
    device_code: Secret,
    verification_uri: String,
    expires_in: u64,
    #[serde(default = "default_interval")]
    interval: u64,
}

fn default_interval() -> u64 {
    5
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// The longest pause between two polls, however often LWA says slow_down.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

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
    store: PathBuf,
    /// Refresh this long before the access token expires.
    head_start: Duration,
    tokens: Mutex<Option<Tokens>>,
    /// Bumped by every save, so a refresh that waited for another can tell it already happened.
    generation: std::sync::atomic::AtomicU64,
    /// One refresh at a time: concurrent 403s must not race two refresh grants.
    refreshing: tokio::sync::Mutex<()>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Authorizer {
    pub fn new(https: HttpsClient, config: &Config) -> Result<Self, AuthError> {
        let store = config.data_dir.join("tokens.json");
        let tokens = read_store(&store)?;
        Ok(Authorizer {
            inner: Arc::new(Inner {
                https,
                lwa_url: config.lwa_base_url(),
                client_id: config.client_id.clone(),
                product_id: config.product_id.clone(),
                device_serial_number: config.device_serial_number.clone(),
                store,
                head_start: Duration::from_secs(60),
                tokens: Mutex::new(tokens),
                generation: std::sync::atomic::AtomicU64::new(0),
                refreshing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    pub fn is_linked(&self) -> bool {
        self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }

    /// Code-based linking: get a code pair, show it (`on_code`), poll until the user approved it. A code
    /// pair that expires is replaced by a new one (shown again).
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
            loop {
                tokio::time::sleep(interval).await;
                if tokio::time::Instant::now() >= deadline {
                    tracing::warn!("code pair expired before it was approved; requesting a new one");
                    break;
                }
                let form = [
                    ("grant_type", "device_code"),
                    ("device_code", pair.device_code.expose()),
                    ("user_code", pair.user_code.as_str()),
                ];
                match self.token_request(&form).await {
                    Ok(tokens) => return self.save(tokens),
                    Err(AuthError::Refused { error, .. }) if error == "authorization_pending" => {}
                    Err(AuthError::Refused { error, .. }) if error == "slow_down" => {
                        interval = slow_down(interval);
                    }
                    Err(AuthError::Refused { error, .. })
                        if error == "expired_token" || error == "invalid_code_pair" =>
                    {
                        tracing::warn!("code pair no longer valid ({error}); requesting a new one");
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// A valid access token, refreshed first if it expires within the head start.
    pub async fn access_token(&self) -> Result<Secret, AuthError> {
        {
            let tokens = self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner());
            match &*tokens {
                None => return Err(AuthError::NotLinked),
                Some(t) if t.expires_at > now() + self.inner.head_start.as_secs() => return Ok(t.access_token.clone()),
                Some(_) => {}
            }
        }
        self.refresh().await
    }

    /// Refreshes the access token now (after a 403, or ahead of its expiry). `invalid_grant` means the
    /// refresh token was revoked: the tokens are cleared and the device must be linked again.
    pub async fn refresh(&self) -> Result<Secret, AuthError> {
        use std::sync::atomic::Ordering;
        let seen = self.inner.generation.load(Ordering::Acquire);
        let _one_at_a_time = self.inner.refreshing.lock().await;
        let refresh_token = {
            let tokens = self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner());
            match &*tokens {
                None => return Err(AuthError::NotLinked),
                // Another caller refreshed while this one waited for the lock.
                Some(t) if self.inner.generation.load(Ordering::Acquire) != seen => return Ok(t.access_token.clone()),
                Some(t) => t.refresh_token.clone(),
            }
        };
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.expose()),
            ("client_id", self.inner.client_id.as_str()),
        ];
        match self.token_request(&form).await {
            Ok(tokens) => {
                let access = tokens.access_token.clone();
                self.save(tokens)?;
                tracing::info!("access token refreshed");
                Ok(access)
            }
            Err(AuthError::Refused { error, description }) if error == "invalid_grant" => {
                tracing::warn!("refresh token revoked (invalid_grant): the device must be linked again");
                self.revoke()?;
                Err(AuthError::Refused { error, description })
            }
            Err(e) => Err(e),
        }
    }

    /// Forgets the tokens (System.RevokeAuthorization, or a revoked refresh token).
    pub fn revoke(&self) -> Result<(), AuthError> {
        *self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match std::fs::remove_file(&self.inner.store) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(store_err(&self.inner.store, e)),
        }
    }

    async fn code_pair(&self) -> Result<CodePairAnswer, AuthError> {
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
        let pair: CodePairAnswer = parse_answer(status, &body)?;
        if pair.user_code.is_empty() || pair.verification_uri.is_empty() || pair.expires_in == 0 {
            return Err(AuthError::BadAnswer { status });
        }
        Ok(pair)
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Result<Tokens, AuthError> {
        let (status, body) = self.post("/auth/O2/token", form).await?;
        let answer: TokenAnswer = parse_answer(status, &body)?;
        Ok(Tokens {
            access_token: answer.access_token,
            refresh_token: answer.refresh_token,
            expires_at: now() + answer.expires_in,
        })
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<(u16, Bytes), AuthError> {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = http::Request::post(format!("{}{path}", self.inner.lwa_url))
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Bytes::from(body))
            .map_err(|_| AuthError::BadAnswer { status: 0 })?;
        let (status, _, body) = self.inner.https.send(request).await?;
        Ok((status.as_u16(), body))
    }

    fn save(&self, tokens: Tokens) -> Result<(), AuthError> {
        write_store(&self.inner.store, &tokens)?;
        *self.inner.tokens.lock().unwrap_or_else(|e| e.into_inner()) = Some(tokens);
        self.inner.generation.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }
}

fn slow_down(interval: Duration) -> Duration {
    (interval * 2).min(MAX_POLL_INTERVAL)
}

fn parse_answer<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, AuthError> {
    if status == 200 {
        return serde_json::from_slice(body).map_err(|_| AuthError::BadAnswer { status });
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => Err(AuthError::Refused { error: e.error, description: e.error_description }),
        Err(_) => Err(AuthError::BadAnswer { status }),
    }
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> AuthError {
    AuthError::Store { path: path.display().to_string(), reason: e.to_string() }
}

fn read_store(path: &Path) -> Result<Option<Tokens>, AuthError> {
    let metadata = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(store_err(path, e)),
    };
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(AuthError::InsecureStore { path: path.display().to_string(), mode });
    }
    let bytes = std::fs::read(path).map_err(|e| store_err(path, e))?;
    serde_json::from_slice(&bytes).map(Some).map_err(|e| store_err(path, format!("unreadable: {e}")))
}

/// Temp file created 0600, fsynced, renamed over the store: a crash leaves the old or the new tokens.
fn write_store(path: &Path, tokens: &Tokens) -> Result<(), AuthError> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| store_err(path, e))?;
    }
    let temp = path.with_extension("json.tmp");
    let json = serde_json::to_vec(tokens).map_err(|e| store_err(path, e))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| store_err(&temp, e))?;
    file.write_all(&json).and_then(|()| file.sync_all()).map_err(|e| store_err(&temp, e))?;
    std::fs::rename(&temp, path).map_err(|e| store_err(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens {
            access_token: Secret::new("Atza|secret-access"),
            refresh_token: Secret::new("Atzr|secret-refresh"),
            expires_at: 99,
        }
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("Atza|abc");
        assert_eq!(format!("{s} {s:?}"), "<redacted> <redacted>");
        let error = AuthError::Refused { error: "invalid_grant".into(), description: None };
        assert!(!format!("{error}").contains("Atz"));
    }

    #[test]
    fn the_store_is_0600_round_trips_and_is_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        write_store(&path, &tokens()).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let read = read_store(&path).unwrap().unwrap();
        assert_eq!(read.refresh_token.expose(), "Atzr|secret-refresh");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = read_store(&path).unwrap_err();
        assert!(matches!(err, AuthError::InsecureStore { mode: 0o644, .. }), "{err}");
        assert!(read_store(&dir.path().join("none.json")).unwrap().is_none());
    }

    #[test]
    fn lwa_answers_and_errors_are_parsed() {
        let ok: TokenAnswer = parse_answer(
            200,
            br#"{"access_token":"Atza|a","refresh_token":"Atzr|r","token_type":"bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!(ok.expires_in, 3600);
        let err = parse_answer::<TokenAnswer>(400, br#"{"error":"authorization_pending","error_description":"wait"}"#)
            .unwrap_err();
        assert!(matches!(&err, AuthError::Refused { error, .. } if error == "authorization_pending"));
        assert!(matches!(parse_answer::<TokenAnswer>(500, b"<html>"), Err(AuthError::BadAnswer { status: 500 })));
        let permanent = AuthError::Refused { error: "invalid_client".into(), description: None };
        assert!(permanent.is_permanent());
    }

    #[test]
    fn slow_down_doubles_up_to_a_minute() {
        assert_eq!(slow_down(Duration::from_secs(5)), Duration::from_secs(10));
        assert_eq!(slow_down(Duration::from_secs(40)), Duration::from_secs(60));
    }
}
