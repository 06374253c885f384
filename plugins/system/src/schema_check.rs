//! Test helper: payloads this plugin produces are checked (by the SDK's FakeHost) against the schemas of
//! the version it claims.

/// The schema directory of System 1.`minor`.
pub fn schemas(minor: u8) -> String {
    format!("{}/../../schemas/System/1.{minor}", env!("CARGO_MANIFEST_DIR"))
}
