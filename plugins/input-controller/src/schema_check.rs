//! Test helper: payloads this plugin handles are checked against the schemas it embeds.

pub fn assert_valid(relative: &str, payload: &serde_json::Value) {
    avs_plugin_sdk::testing::assert_valid(
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/Alexa.InputController/3.0"),
        relative,
        payload,
    )
}
