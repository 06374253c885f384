//! Secrets stay out of the output: the whole demo, logging everything it can, never prints the access or
//! refresh token it was given or the plugin signing key it generated. (Code-based linking has no LWA client
//! secret: the device holds none.)

use std::path::Path;
use std::process::Command;

/// The secrets a demo run left in its data dir, by name: the token store's tokens (also the part after
/// `Atza|`, which a URL-encoded form would print without its `|`) and the signing key as hex.
fn secrets(data: &Path) -> Vec<(String, String)> {
    let store = std::fs::read(data.join("device/tokens.json")).expect("the demo links the device: a token store");
    let tokens: serde_json::Value = serde_json::from_slice(&store).expect("the token store is JSON");
    let mut secrets = Vec::new();
    for name in ["access_token", "refresh_token"] {
        let token = tokens[name].as_str().unwrap_or_else(|| panic!("no {name} in the token store"));
        assert!(token.len() >= 16, "{name} too short to look for: {}", token.len());
        secrets.push((name.to_string(), token.to_string()));
        if let Some((_, tail)) = token.split_once('|') {
            secrets.push((format!("{name} after its '|'"), tail.to_string()));
        }
    }
    let key = std::fs::read(data.join("keys/plugin-signing.key")).expect("the demo signs its plugins");
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    secrets.push(("plugin signing key (hex)".into(), hex));
    secrets
}

#[test]
fn the_most_verbose_demo_prints_no_token_and_no_signing_key() {
    let data = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_avs"))
        .args(["demo", "--data-dir"])
        .arg(data.path())
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    let printed = [String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)].join("\n");
    let lines: Vec<&str> = printed.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    assert!(output.status.success(), "avs demo failed:\n…\n{tail}");
    assert!(printed.contains("demo finished"), "{tail}");
    // The run really logged at trace level, down to the TLS and HTTP/2 libraries the tokens pass through.
    for logged in ["TRACE", "DEBUG", "h2::", "rustls::"] {
        assert!(printed.contains(logged), "no {logged:?} in the output: was RUST_LOG honoured?\n{tail}");
    }
    for (name, secret) in secrets(data.path()) {
        let shown = printed.lines().find(|line| line.contains(&secret));
        assert!(shown.is_none(), "the {name} was printed: {}", shown.unwrap_or_default());
    }
}
