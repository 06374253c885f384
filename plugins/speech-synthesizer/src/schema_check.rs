//! Test helper: payloads this plugin produces are checked against the schemas of the version it claims.

pub fn assert_valid(minor: u8, relative: &str, payload: &serde_json::Value) {
    let dir = format!("{}/../../schemas/SpeechSynthesizer/1.{minor}", env!("CARGO_MANIFEST_DIR"));
    avs_plugin_sdk::testing::assert_valid(&dir, relative, payload)
}
