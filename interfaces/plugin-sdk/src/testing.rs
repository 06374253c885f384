//! For plugins' own unit tests (feature `testing`): what a plugin produces must pass the schemas it
//! embeds, since the host refuses to send an event whose payload does not.

use serde_json::Value;

/// Panics unless `payload` is valid against `relative` (e.g. `events/VolumeChanged.json`) below
/// `schema_dir`.
pub fn assert_valid(schema_dir: &str, relative: &str, payload: &Value) {
    let path = format!("{schema_dir}/{relative}");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let schema: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{path}: {e}"));
    if let Err(e) = validator.validate(payload) {
        panic!("{relative} rejects {payload}: {e}");
    }
}
