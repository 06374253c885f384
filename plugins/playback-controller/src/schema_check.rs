//! Test helper: payloads this plugin produces are checked against the schemas it embeds.
//! (The SDK's FakeHost checks them, given this directory.)

/// The schema directory of this plugin.
pub const SCHEMAS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas/PlaybackController/1.1");
