//! Checking what devices send against the workspace's JSON Schemas (embedded at build time), using the
//! interface version the device declared in its last capability document — or, when it declared none
//! (or one the workspace has no schemas for), the highest version present.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use include_dir::{include_dir, Dir};
use jsonschema::Validator;
use serde_json::Value;

static SCHEMAS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../schemas");

/// Namespace → the version directories shipped for it, highest last: looked up for every event and
/// context entry, and `Dir::get_dir` walks and compares paths.
static VERSIONS: LazyLock<HashMap<&'static str, Vec<&'static str>>> = LazyLock::new(|| {
    let name = |dir: &Dir<'static>| dir.path().file_name().and_then(|n| n.to_str());
    SCHEMAS
        .dirs()
        .filter_map(|interface| {
            let mut versions: Vec<&'static str> = interface.dirs().filter_map(name).collect();
            versions.sort_by_key(|v| v.split('.').map(|n| n.parse::<u32>().unwrap_or(0)).collect::<Vec<_>>());
            Some((name(interface)?, versions))
        })
        .collect()
});

#[derive(Default)]
pub(crate) struct Schemas {
    /// Compiled on first use, by path.
    compiled: Mutex<HashMap<String, Option<Arc<Validator>>>>,
}

impl Schemas {
    fn validator(&self, path: &str) -> Option<Arc<Validator>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(validator) = compiled.get(path) {
            return validator.clone();
        }
        compiled
            .entry(path.to_string())
            .or_insert_with(|| {
                let file = SCHEMAS.get_file(path)?;
                let schema: Value = serde_json::from_slice(file.contents()).ok()?;
                jsonschema::validator_for(&schema).ok().map(Arc::new)
            })
            .clone()
    }

    /// The version directory to check `namespace` against: the declared one, else the highest shipped.
    fn version<'a>(&self, namespace: &str, declared: &'a HashMap<String, String>) -> Option<&'a str> {
        let shipped = VERSIONS.get(namespace)?;
        if let Some(version) = declared.get(namespace) {
            if shipped.contains(&version.as_str()) {
                return Some(version);
            }
            tracing::debug!("no schemas for {namespace} {version}: checking against the highest version present");
        }
        shipped.last().copied()
    }

    fn check(&self, path: &str, instance: &Value, what: &str, errors: &mut Vec<String>) -> bool {
        let Some(validator) = self.validator(path) else {
            return false;
        };
        errors
            .extend(validator.iter_errors(instance).take(3).map(|e| format!("{what}: {e} at '{}'", e.instance_path())));
        true
    }

    /// Every way `event` (a metadata document) breaks the envelope, payload or context schemas.
    pub(crate) fn check_event(&self, event: &Value, declared: &HashMap<String, String>) -> Vec<String> {
        let mut errors = Vec::new();
        self.check("envelope/event.json", event, "envelope", &mut errors);
        let header = &event["event"]["header"];
        let (Some(namespace), Some(name)) = (header["namespace"].as_str(), header["name"].as_str()) else {
            return errors;
        };
        if let Some(version) = self.version(namespace, declared) {
            let path = format!("{namespace}/{version}/events/{name}.json");
            if !self.check(&path, &event["event"]["payload"], "payload", &mut errors) {
                errors.push(format!("{namespace} {version} has no event {name}"));
            }
        }
        for entry in event["context"].as_array().into_iter().flatten() {
            let (Some(namespace), Some(name)) =
                (entry["header"]["namespace"].as_str(), entry["header"]["name"].as_str())
            else {
                continue;
            };
            if let Some(version) = self.version(namespace, declared) {
                let path = format!("{namespace}/{version}/context/{name}.json");
                self.check(&path, &entry["payload"], &format!("context {namespace}.{name}"), &mut errors);
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_are_checked_against_envelope_payload_and_context() {
        let schemas = Schemas::default();
        let declared = HashMap::new();
        let good = json!({"event": {"header": {"namespace": "Speaker", "name": "VolumeChanged", "messageId": "m"}, "payload": {"volume": 5, "muted": false}},
                          "context": [{"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"volume": 5, "muted": false}}]});
        assert_eq!(schemas.check_event(&good, &declared), Vec::<String>::new());
        let bad = json!({"event": {"header": {"namespace": "Speaker", "name": "VolumeChanged", "messageId": "m"}, "payload": {"volume": 500, "muted": false}},
                         "context": [{"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {"volume": "x", "muted": false}}]});
        let errors = schemas.check_event(&bad, &declared);
        assert_eq!(errors.len(), 2, "{errors:?}");
        let unknown =
            json!({"event": {"header": {"namespace": "Speaker", "name": "Louder", "messageId": "m"}, "payload": {}}});
        assert!(schemas.check_event(&unknown, &declared)[0].contains("no event Louder"));
        let declared_unknown_version = HashMap::from([("Speaker".to_string(), "9.9".to_string())]);
        assert_eq!(schemas.check_event(&bad, &declared_unknown_version).len(), 2, "falls back to Speaker 1.0");
        let no_header = json!({"event": {"payload": {}}});
        assert!(!schemas.check_event(&no_header, &declared).is_empty());
    }
}
