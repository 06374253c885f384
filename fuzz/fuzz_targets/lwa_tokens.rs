//! Login with Amazon's answers (token grant and code pair) as the device reads them. Input: byte 0 is
//! the HTTP status (even: 200; odd: 400 + byte/2, covering 4xx and 5xx), the rest the body. Oracles: no
//! panic; only a 200 is ever accepted, and only with everything the runtime needs; a refused answer keeps
//! its status; neither an error nor an accepted answer's `Debug` shows a token from the body.
#![no_main]

use avs_core::auth::AuthError;
use avs_core::fuzzing::{parse_code_pair, parse_tokens};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The secrets an answer carries that the device must never print. Only token-like ones (`Atza|…`: a
/// `|`, no spaces, quotes or brackets) are looked for, so that one cannot turn up by chance across the
/// fixed text of a message or a `Debug`.
fn secrets(body: &[u8]) -> Vec<String> {
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else { return Vec::new() };
    let token_like = |s: &&str| {
        s.len() >= 12 && s.contains('|') && s.chars().all(|c| c.is_ascii_alphanumeric() || "|._-".contains(c))
    };
    ["access_token", "refresh_token", "device_code"]
        .iter()
        .filter_map(|key| fields.get(*key)?.as_str())
        .filter(token_like)
        .map(str::to_string)
        .collect()
}

fn assert_hidden(shown: &str, secrets: &[String]) {
    for secret in secrets {
        assert!(!shown.contains(secret.as_str()), "a token from the body in {shown:?}");
    }
}

/// The error of a refused answer: its status kept; LWA's own error text is the only thing echoed.
fn check_error(status: u16, error: &AuthError, secrets: &[String]) {
    match error {
        AuthError::BadAnswer { status: s } => assert_eq!(*s, status),
        AuthError::Refused { error, description } => {
            assert_ne!(status, 200, "a 200 is a usable answer or a BadAnswer");
            let echoed = format!("{error} {}", description.as_deref().unwrap_or(""));
            let secrets: Vec<String> = secrets.iter().filter(|s| !echoed.contains(s.as_str())).cloned().collect();
            assert_hidden(&format!("{error:?} {error}"), &secrets);
            return;
        }
        other => panic!("unexpected error kind: {other}"),
    }
    assert_hidden(&format!("{error:?} {error}"), secrets);
}

fuzz_target!(|data: &[u8]| {
    let [code, body @ ..] = data else { return };
    let status = if code % 2 == 0 { 200 } else { 400 + u16::from(code / 2) };
    let secrets = secrets(body);

    match parse_tokens(status, body) {
        Ok(answer) => {
            assert_eq!(status, 200);
            assert!(answer.token_type.eq_ignore_ascii_case("bearer") && answer.expires_in > 0);
            assert!(!answer.access_token.expose().is_empty());
            assert!(answer.refresh_token.as_ref().is_none_or(|r| !r.expose().is_empty()));
            assert_hidden(&format!("{answer:?}"), &secrets);
        }
        Err(error) => check_error(status, &error, &secrets),
    }
    match parse_code_pair(status, body) {
        Ok(pair) => {
            assert_eq!(status, 200);
            assert!(!pair.user_code.is_empty() && !pair.verification_uri.is_empty() && pair.expires_in > 0);
            assert!(!pair.device_code.expose().is_empty());
            let shown = format!("{pair:?}");
            let visible: Vec<String> = secrets
                .iter()
                .filter(|s| !pair.user_code.contains(s.as_str()) && !pair.verification_uri.contains(s.as_str()))
                .cloned()
                .collect();
            assert_hidden(&shown, &visible);
        }
        Err(error) => check_error(status, &error, &secrets),
    }
});
