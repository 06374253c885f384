//! Test helper: the payloads the plugin is tested with are the schema's own examples, checked against the
//! schemas it embeds.

use serde_json::Value;

pub const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/TemplateRuntime/1.2");

pub fn assert_valid(relative: &str, payload: &Value) {
    avs_plugin_sdk::testing::assert_valid(SCHEMAS, relative, payload)
}

/// A valid example (`examples/valid/<file>`), whole.
pub fn example(file: &str) -> Value {
    let path = format!("{SCHEMAS}/examples/valid/{file}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}
