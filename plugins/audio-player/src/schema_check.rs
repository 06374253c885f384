//! Test helper: payloads this plugin produces are checked against the schemas it embeds.

/// The schema directory of this plugin.
pub const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/AudioPlayer/1.4");

pub fn assert_valid(relative: &str, payload: &serde_json::Value) {
    avs_plugin_sdk::testing::assert_valid(SCHEMAS, relative, payload)
}
