//! Test helper: payloads this plugin produces are checked against the schemas it embeds (by the SDK's
//! FakeHost, given this directory).

/// The schema directory of this plugin.
pub const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/Settings/1.0");
