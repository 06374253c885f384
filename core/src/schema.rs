//! Compiled JSON Schemas of one interface version, keyed by message name, so that validating a directive
//! is a hash lookup plus a pre-compiled validator run — never a schema compilation on the hot path.

use std::collections::HashMap;

use jsonschema::Validator;
use serde_json::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {path} does not compile: {message}")]
    Compile { path: String, message: String },
}

/// Why a message failed its schema: the first few errors, each with its JSON pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Violation(pub String);

#[derive(Default)]
pub struct InterfaceSchemas {
    directives: HashMap<String, Validator>,
    events: HashMap<String, Validator>,
    context: HashMap<String, Validator>,
    /// `examples/valid/…` and `examples/invalid/…` documents, for self-tests.
    examples: Vec<(String, Value)>,
}

impl InterfaceSchemas {
    /// Compiles the documents a plugin exports (`relative path → document`).
    pub fn compile(documents: Map<String, Value>) -> Result<Self, SchemaError> {
        let mut schemas = InterfaceSchemas::default();
        for (path, document) in documents {
            let Some((kind, file)) = path.split_once('/') else {
                continue;
            };
            let table = match kind {
                "directives" => &mut schemas.directives,
                "events" => &mut schemas.events,
                "context" => &mut schemas.context,
                "examples" => {
                    schemas.examples.push((path, document));
                    continue;
                }
                _ => continue,
            };
            let name = file.trim_end_matches(".json").to_string();
            let validator = jsonschema::validator_for(&document)
                .map_err(|e| SchemaError::Compile { path: path.clone(), message: e.to_string() })?;
            table.insert(name, validator);
        }
        Ok(schemas)
    }

    pub fn has_directive(&self, name: &str) -> bool {
        self.directives.contains_key(name)
    }

    pub fn has_event(&self, name: &str) -> bool {
        self.events.contains_key(name)
    }

    pub fn check_directive(&self, name: &str, payload: &Value) -> Result<(), Violation> {
        check(self.directives.get(name), "directive", name, payload)
    }

    pub fn check_event(&self, name: &str, payload: &Value) -> Result<(), Violation> {
        check(self.events.get(name), "event", name, payload)
    }

    pub fn check_context(&self, name: &str, payload: &Value) -> Result<(), Violation> {
        check(self.context.get(name), "context state", name, payload)
    }

    pub fn examples(&self) -> &[(String, Value)] {
        &self.examples
    }
}

fn check(validator: Option<&Validator>, kind: &str, name: &str, payload: &Value) -> Result<(), Violation> {
    let Some(validator) = validator else {
        return Err(Violation(format!("no schema for {kind} {name}")));
    };
    if validator.is_valid(payload) {
        return Ok(());
    }
    let errors: Vec<String> =
        validator.iter_errors(payload).take(3).map(|e| format!("{} at '{}'", e, e.instance_path())).collect();
    Err(Violation(format!("{kind} {name}: {}", errors.join("; "))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn speaker() -> InterfaceSchemas {
        let set_volume = json!({
            "type": "object",
            "required": ["volume"],
            "properties": {"volume": {"type": "integer", "minimum": 0, "maximum": 100}}
        });
        let mut docs = Map::new();
        docs.insert("directives/SetVolume.json".into(), set_volume);
        docs.insert("examples/valid/SetVolume.json".into(), json!({}));
        InterfaceSchemas::compile(docs).unwrap()
    }

    #[test]
    fn validates_payloads_by_name_and_explains_failures() {
        let s = speaker();
        assert!(s.has_directive("SetVolume"));
        assert!(s.check_directive("SetVolume", &json!({"volume": 30})).is_ok());
        let err = s.check_directive("SetVolume", &json!({"volume": 300})).unwrap_err();
        assert!(err.0.contains("/volume"), "{err}");
        let err = s.check_directive("SetMute", &json!({"mute": true})).unwrap_err();
        assert!(err.0.contains("no schema"), "{err}");
        assert_eq!(s.examples().len(), 1);
    }

    #[test]
    fn a_broken_schema_is_a_clear_error() {
        let mut docs = Map::new();
        docs.insert("events/X.json".into(), json!({"type": 12}));
        let err = InterfaceSchemas::compile(docs).err().expect("must fail");
        assert!(err.to_string().contains("events/X.json"), "{err}");
    }
}
