//! Test helper: payloads this plugin produces are checked against the schemas of the version it claims.

/// The schema directory of SpeechSynthesizer 1.`minor`.
pub fn schemas(minor: u8) -> String {
    format!("{}/../../schemas/SpeechSynthesizer/1.{minor}", env!("CARGO_MANIFEST_DIR"))
}

pub fn assert_valid(minor: u8, relative: &str, payload: &serde_json::Value) {
    avs_plugin_sdk::testing::assert_valid(&schemas(minor), relative, payload)
}
