//! Login with Amazon's answers, read strictly, and what code-based linking does with each error
//! (avs-protocol §3.1): pure functions, so the policy is tested without a server.

use std::time::Duration;

use serde::Deserialize;

use super::{AuthError, Secret};

/// `POST /auth/O2/create/codepair` answered 200.
#[derive(Debug, Deserialize)]
pub struct CodePairAnswer {
    pub user_code: String,
    pub device_code: Secret,
    pub verification_uri: String,
    pub expires_in: u64,
    /// Seconds between polls; LWA sends it, 5 is what the SDK uses when it does not.
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

/// `POST /auth/O2/token` answered 200 (device_code or refresh_token grant).
#[derive(Debug, Deserialize)]
pub struct TokenAnswer {
    pub access_token: Secret,
    /// Always present after linking; a refresh answer without one keeps the current refresh token.
    pub refresh_token: Option<Secret>,
    pub token_type: String,
    pub expires_in: u64,
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    error_description: Option<String>,
}

/// A 200 body as `T`, or the `{"error":…}` of any other status as `AuthError::Refused`.
fn parse<T: serde::de::DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, AuthError> {
    if status == 200 {
        return serde_json::from_slice(body).map_err(|_| AuthError::BadAnswer { status });
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(e) => Err(AuthError::Refused { error: e.error, description: e.error_description }),
        Err(_) => Err(AuthError::BadAnswer { status }),
    }
}

/// Like the SDK, a code pair missing what the user or the poll needs is refused.
pub fn parse_code_pair(status: u16, body: &[u8]) -> Result<CodePairAnswer, AuthError> {
    let pair: CodePairAnswer = parse(status, body)?;
    let complete = !pair.user_code.is_empty()
        && !pair.device_code.expose().is_empty()
        && !pair.verification_uri.is_empty()
        && pair.expires_in > 0;
    complete.then_some(pair).ok_or(AuthError::BadAnswer { status })
}

/// Like the SDK, a token answer must be a bearer token with a lifetime.
pub fn parse_tokens(status: u16, body: &[u8]) -> Result<TokenAnswer, AuthError> {
    let answer: TokenAnswer = parse(status, body)?;
    let usable = answer.token_type.eq_ignore_ascii_case("bearer")
        && !answer.access_token.expose().is_empty()
        && answer.refresh_token.as_ref().is_none_or(|r| !r.expose().is_empty())
        && answer.expires_in > 0;
    usable.then_some(answer).ok_or(AuthError::BadAnswer { status })
}

/// What polling for the user's approval does next after an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PollStep {
    /// `authorization_pending`: the user has not entered the code yet.
    Pending,
    /// `slow_down`: poll less often from now on.
    SlowDown,
    /// The code pair expired or was invalidated: show a new one.
    NewCodePair,
    /// LWA or the network failed: try again after a backoff.
    Retry,
    /// A configuration error no retry fixes.
    Fail,
}

pub(super) fn poll_step(error: &AuthError) -> PollStep {
    if error.is_permanent() {
        return PollStep::Fail;
    }
    match error {
        AuthError::Refused { error, .. } => match error.as_str() {
            "authorization_pending" => PollStep::Pending,
            "slow_down" => PollStep::SlowDown,
            // expired_token is the documented name, invalid_code_pair the SDK's; invalid_grant means the
            // device code was revoked. All three: start over with a new code pair.
            "expired_token" | "invalid_code_pair" | "invalid_grant" => PollStep::NewCodePair,
            // servererror, temporarily_unavailable, and codes this client does not know (the SDK keeps
            // polling on those too).
            _ => PollStep::Retry,
        },
        AuthError::Http(_) => PollStep::Retry,
        AuthError::BadAnswer { status } if *status >= 500 || *status == 429 => PollStep::Retry,
        _ => PollStep::Fail,
    }
}

/// The longest pause between two polls, however often LWA says slow_down.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// `slow_down`: double the interval, up to a minute (SDK policy).
pub(super) fn slow_down(interval: Duration) -> Duration {
    (interval * 2).min(MAX_POLL_INTERVAL)
}

/// The pause before retry number `attempt` (0-based) after LWA or the network failed (§3 table: 1, 2,
/// 4, 10, 30, then 60 s).
pub(super) fn retry_delay(attempt: usize) -> Duration {
    const TABLE: [u64; 6] = [1, 2, 4, 10, 30, 60];
    Duration::from_secs(TABLE[attempt.min(TABLE.len() - 1)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_answers_are_read_and_checked() {
        let ok = parse_tokens(
            200,
            br#"{"access_token":"Atza|a","refresh_token":"Atzr|r","token_type":"bearer","expires_in":3600}"#,
        )
        .unwrap();
        assert_eq!((ok.access_token.expose(), ok.expires_in), ("Atza|a", 3600));
        assert_eq!(ok.refresh_token.as_ref().map(Secret::expose), Some("Atzr|r"));
        let without_refresh =
            parse_tokens(200, br#"{"access_token":"Atza|a","token_type":"Bearer","expires_in":60}"#).unwrap();
        assert!(without_refresh.refresh_token.is_none());
        for unusable in [
            &br#"{"access_token":"Atza|a","refresh_token":"Atzr|r","token_type":"mac","expires_in":3600}"#[..],
            br#"{"access_token":"","refresh_token":"Atzr|r","token_type":"bearer","expires_in":3600}"#,
            br#"{"access_token":"Atza|a","refresh_token":"Atzr|r","token_type":"bearer","expires_in":0}"#,
            br#"{"access_token":"Atza|a","refresh_token":"Atzr|r","expires_in":3600}"#,
            b"<html>ok</html>",
        ] {
            assert!(matches!(parse_tokens(200, unusable), Err(AuthError::BadAnswer { status: 200 })));
        }
    }

    #[test]
    fn code_pairs_are_read_and_checked() {
        let body = br#"{"user_code":"ABC123","device_code":"dc","verification_uri":"https://amazon.com/us/code","expires_in":600,"interval":30}"#;
        let pair = parse_code_pair(200, body).unwrap();
        assert_eq!((pair.user_code.as_str(), pair.expires_in, pair.interval), ("ABC123", 600, 30));
        let no_interval =
            br#"{"user_code":"A","device_code":"dc","verification_uri":"https://amazon.com/us/code","expires_in":600}"#;
        assert_eq!(parse_code_pair(200, no_interval).unwrap().interval, 5);
        let empty_code =
            br#"{"user_code":"","device_code":"dc","verification_uri":"https://amazon.com/us/code","expires_in":600}"#;
        assert!(matches!(parse_code_pair(200, empty_code), Err(AuthError::BadAnswer { status: 200 })));
        let expired =
            br#"{"user_code":"A","device_code":"dc","verification_uri":"https://amazon.com/us/code","expires_in":0}"#;
        assert!(matches!(parse_code_pair(200, expired), Err(AuthError::BadAnswer { status: 200 })));
    }

    #[test]
    fn lwa_errors_map_to_what_linking_does_next() {
        let refused = |error: &str| AuthError::Refused { error: error.into(), description: Some("why".into()) };
        let body = br#"{"error":"authorization_pending","error_description":"The user has not yet authorized"}"#;
        let err = parse_tokens(400, body).unwrap_err();
        assert!(matches!(&err, AuthError::Refused { error, description: Some(_) } if error == "authorization_pending"));
        assert!(matches!(parse_tokens(502, b"<html>Bad Gateway</html>"), Err(AuthError::BadAnswer { status: 502 })));
        let cases = [
            (refused("authorization_pending"), PollStep::Pending),
            (refused("slow_down"), PollStep::SlowDown),
            (refused("expired_token"), PollStep::NewCodePair),
            (refused("invalid_code_pair"), PollStep::NewCodePair),
            (refused("invalid_grant"), PollStep::NewCodePair),
            (refused("invalid_client"), PollStep::Fail),
            (refused("unauthorized_client"), PollStep::Fail),
            (refused("invalid_request"), PollStep::Fail),
            (refused("unsupported_grant_type"), PollStep::Fail),
            (refused("invalid_scope"), PollStep::Fail),
            (refused("servererror"), PollStep::Retry),
            (refused("temporarily_unavailable"), PollStep::Retry),
            (AuthError::BadAnswer { status: 500 }, PollStep::Retry),
            (AuthError::BadAnswer { status: 503 }, PollStep::Retry),
            (AuthError::BadAnswer { status: 429 }, PollStep::Retry),
            (AuthError::BadAnswer { status: 404 }, PollStep::Fail),
            (AuthError::BadAnswer { status: 200 }, PollStep::Fail),
        ];
        for (error, step) in cases {
            assert_eq!(poll_step(&error), step, "{error}");
        }
    }

    #[test]
    fn slow_down_doubles_up_to_a_minute_and_retries_back_off_by_the_table() {
        let mut interval = Duration::from_secs(5);
        let mut seen = Vec::new();
        for _ in 0..6 {
            interval = slow_down(interval);
            seen.push(interval.as_secs());
        }
        assert_eq!(seen, [10, 20, 40, 60, 60, 60]);
        assert_eq!(slow_down(Duration::from_secs(1)), Duration::from_secs(2));
        assert_eq!(slow_down(Duration::from_secs(45)), Duration::from_secs(60));
        let delays: Vec<u64> = (0..8).map(|n| retry_delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 10, 30, 60, 60, 60]);
    }
}
