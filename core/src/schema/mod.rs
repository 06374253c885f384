//! Compiled JSON Schemas of one interface version, keyed by message name, so that validating a directive
//! is a hash lookup, a borrowing parse of its payload and a pre-compiled validator run — never a schema
//! compilation on the hot path.

mod document;

use std::collections::HashMap;
use std::path::Path;

pub use document::{Document, DocumentJson, DocumentNode};
use serde_json::{Map, Value};

type Validator = jsonschema::Validator<DocumentJson>;

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("schema {path} does not compile: {message}")]
    Compile { path: String, message: String },
    #[error("schema file {path}: {message}")]
    Read { path: String, message: String },
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
    /// `examples/valid/…` and `examples/invalid/…` documents, for self-tests — as text: a parsed tree
    /// is several times larger, and every loaded plugin keeps its schemas for as long as it serves.
    examples: Vec<(String, Box<str>)>,
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
                    schemas.examples.push((path, document.to_string().into()));
                    continue;
                }
                _ => continue,
            };
            let name = file.trim_end_matches(".json").to_string();
            let validator = jsonschema::options_for::<DocumentJson>()
                .build(&document)
                .map_err(|e| SchemaError::Compile { path: path.clone(), message: e.to_string() })?;
            table.insert(name, validator);
        }
        Ok(schemas)
    }

    /// Compiles an interface version's directory as it is in `schemas/` (what its plugin embeds), for tools
    /// that judge messages without loading the plugin.
    pub fn load_dir(dir: &Path) -> Result<Self, SchemaError> {
        let mut documents = Map::new();
        collect_documents(dir, dir, &mut documents)?;
        Self::compile(documents)
    }

    pub fn has_directive(&self, name: &str) -> bool {
        self.directives.contains_key(name)
    }

    pub fn has_event(&self, name: &str) -> bool {
        self.events.contains_key(name)
    }

    /// Checks a directive's payload, given as JSON text.
    pub fn check_directive(&self, name: &str, payload: &str) -> Result<(), Violation> {
        check(self.directives.get(name), "directive", name, payload)
    }

    /// Checks a directive's payload parsed already (as part of its message, or alone).
    pub fn check_directive_node(&self, name: &str, payload: DocumentNode<'_>) -> Result<(), Violation> {
        let validator = self.directives.get(name).ok_or_else(|| no_schema("directive", name))?;
        check_node(validator, "directive", name, payload)
    }

    pub fn check_event(&self, name: &str, payload: &str) -> Result<(), Violation> {
        check(self.events.get(name), "event", name, payload)
    }

    pub fn check_context(&self, name: &str, payload: &str) -> Result<(), Violation> {
        check(self.context.get(name), "context state", name, payload)
    }

    /// Whether an example message (`examples/…`) passes the schema of its kind and name.
    pub fn judge_example(&self, example: &Value) -> Result<bool, String> {
        let (check, message): (fn(&Self, &str, &str) -> _, _) = if let Some(d) = example.get("directive") {
            (Self::check_directive, d)
        } else if let Some(e) = example.get("event") {
            (Self::check_event, e)
        } else {
            (Self::check_context, example)
        };
        let name = message["header"]["name"].as_str().ok_or("no header name")?;
        Ok(check(self, name, &message["payload"].to_string()).is_ok())
    }

    /// The examples, each with its path, parsed again on every call.
    pub fn examples(&self) -> impl Iterator<Item = (&str, Value)> {
        self.examples.iter().map(|(path, text)| {
            (path.as_str(), serde_json::from_str(text).expect("an example is stored as serialized JSON"))
        })
    }
}

/// Every `.json` file below `dir`, keyed by its path relative to `root` with `/` separators.
fn collect_documents(root: &Path, dir: &Path, documents: &mut Map<String, Value>) -> Result<(), SchemaError> {
    let failed = |path: &Path, message: String| SchemaError::Read { path: path.display().to_string(), message };
    let entries = std::fs::read_dir(dir).map_err(|e| failed(dir, e.to_string()))?;
    for entry in entries {
        let path = entry.map_err(|e| failed(dir, e.to_string()))?.path();
        if path.is_dir() {
            collect_documents(root, &path, documents)?;
            continue;
        }
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| failed(&path, e.to_string()))?;
        let document = serde_json::from_slice(&text).map_err(|e| failed(&path, e.to_string()))?;
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let key = relative.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
        documents.insert(key, document);
    }
    Ok(())
}

fn check(validator: Option<&Validator>, kind: &str, name: &str, payload: &str) -> Result<(), Violation> {
    let validator = validator.ok_or_else(|| no_schema(kind, name))?;
    let document =
        Document::parse(payload).map_err(|e| Violation(format!("{kind} {name}: the payload is not JSON: {e}")))?;
    check_node(validator, kind, name, document.root())
}

fn no_schema(kind: &str, name: &str) -> Violation {
    Violation(format!("no schema for {kind} {name}"))
}

fn check_node(validator: &Validator, kind: &str, name: &str, payload: DocumentNode<'_>) -> Result<(), Violation> {
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
        assert!(s.check_directive("SetVolume", r#"{"volume": 30}"#).is_ok());
        let err = s.check_directive("SetVolume", r#"{"volume": 300}"#).unwrap_err();
        assert!(err.0.contains("/volume"), "{err}");
        let err = s.check_directive("SetVolume", r#"{"volume": 3"#).unwrap_err();
        assert!(err.0.contains("not JSON"), "{err}");
        let err = s.check_directive("SetMute", r#"{"mute": true}"#).unwrap_err();
        assert!(err.0.contains("no schema"), "{err}");
        assert_eq!(s.examples().count(), 1);
    }

    /// Speaker 1.0 as in `schemas/`: its own valid SetVolume example passes, its invalid one does not.
    #[test]
    fn an_interface_directory_loads_with_its_examples() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/Speaker/1.0");
        let s = InterfaceSchemas::load_dir(&dir).unwrap();
        assert!(s.has_directive("SetVolume") && s.has_event("VolumeChanged"));
        let example = |prefix: &str| {
            let (_, doc) = s.examples().find(|(p, _)| p.starts_with(prefix)).expect(prefix);
            doc["directive"]["payload"].to_string()
        };
        assert!(s.check_directive("SetVolume", &example("examples/valid/SetVolume")).is_ok());
        assert!(s.check_directive("SetVolume", &example("examples/invalid/SetVolume")).is_err());
        let err = InterfaceSchemas::load_dir(&dir.join("missing")).err().expect("must fail");
        assert!(err.to_string().contains("missing"), "{err}");
    }

    /// Every example shipped in `schemas/`, of every interface version: the valid ones pass and the
    /// invalid ones fail when checked through the borrowing parse.
    #[test]
    fn every_shipped_example_is_judged_as_its_folder_says() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let mut judged = 0;
        for interface in std::fs::read_dir(&root).unwrap() {
            let interface = interface.unwrap().path();
            if !interface.is_dir() {
                continue;
            }
            for version in std::fs::read_dir(&interface).unwrap() {
                let version = version.unwrap().path();
                if !version.is_dir() {
                    continue; // envelope/: the message envelopes, not an interface version
                }
                let schemas = InterfaceSchemas::load_dir(&version).unwrap();
                for (path, example) in schemas.examples() {
                    let verdict = schemas.judge_example(&example).unwrap();
                    assert_eq!(verdict, path.starts_with("examples/valid/"), "{}: {path}", version.display());
                    judged += 1;
                }
            }
        }
        assert!(judged > 50, "only {judged} examples found");
    }

    #[test]
    fn a_broken_schema_is_a_clear_error() {
        let mut docs = Map::new();
        docs.insert("events/X.json".into(), json!({"type": 12}));
        let err = InterfaceSchemas::compile(docs).err().expect("must fail");
        assert!(err.to_string().contains("events/X.json"), "{err}");
    }
}
