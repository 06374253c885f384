//! Test helper: payloads this plugin produces are checked against the schemas it embeds.

pub fn assert_valid(relative: &str, payload: &serde_json::Value) {
    avs_plugin_sdk::testing::assert_valid(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/AudioPlayer/1.4"),
        relative,
        payload,
    )
}
