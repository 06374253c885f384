//! The schemas every plugin embeds (`schemas/` at the workspace root) are checked here, where plugin
//! authors look: every schema compiles as draft 2020-12 and names itself after its path; every example is
//! judged by its envelope schema and by the payload schema its header selects (namespace = interface
//! folder, name = schema file, in the example's version folder); valid examples pass both, invalid ones
//! have a valid envelope and fail the payload schema — so they fail for the reason their name gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jsonschema::Validator;
use serde_json::{json, Value};

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// Keywords that constrain nothing: a schema made only of these accepts every object.
const ANNOTATIONS: &[&str] = &["$schema", "$id", "description", "title", "type"];

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn shown(path: &Path) -> String {
    path.strip_prefix(schemas_dir()).unwrap_or(path).display().to_string()
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", shown(path)));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", shown(path)))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", shown(dir))).path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// Compiles a schema file as draft 2020-12 after checking that it declares that draft and that its
/// `$id` is `avs:` + its path below `schemas/` without `.json`.
fn compile(path: &Path) -> (Validator, Value) {
    let schema = read(path);
    let name = shown(path);
    assert_eq!(schema["$schema"], DRAFT_2020_12, "{name}: must declare draft 2020-12");
    let id = format!("avs:{}", name.trim_end_matches(".json"));
    assert_eq!(schema["$id"], id.as_str(), "{name}: $id must follow its path");
    assert!(
        schema["description"].as_str().is_some_and(|d| d.contains("Source")),
        "{name}: description cites no source"
    );
    let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("{name} does not compile: {e}"));
    (validator, schema)
}

fn constrains_anything(schema: &Value) -> bool {
    schema.as_object().is_some_and(|o| o.keys().any(|k| !ANNOTATIONS.contains(&k.as_str())))
}

struct Envelopes {
    directive: Validator,
    event: Validator,
    context_entry: Validator,
}

/// The three shapes an example can have.
enum Kind {
    Directive,
    Event,
    Context,
}

impl Kind {
    fn of(example: &Value) -> (Kind, &Value) {
        if let Some(directive) = example.get("directive") {
            (Kind::Directive, directive)
        } else if let Some(event) = example.get("event") {
            (Kind::Event, event)
        } else {
            (Kind::Context, example)
        }
    }

    fn folder(&self) -> &'static str {
        match self {
            Kind::Directive => "directives",
            Kind::Event => "events",
            Kind::Context => "context",
        }
    }

    fn envelope<'a>(&self, envelopes: &'a Envelopes) -> &'a Validator {
        match self {
            Kind::Directive => &envelopes.directive,
            Kind::Event => &envelopes.event,
            Kind::Context => &envelopes.context_entry,
        }
    }
}

#[derive(Default)]
struct Coverage {
    valid: usize,
    invalid: usize,
    constrained: bool,
}

#[derive(Default)]
struct Tally {
    schemas: usize,
    /// Directive, event and context schemas: each needs examples.
    payload_schemas: usize,
    examples: usize,
    interfaces: usize,
    exempt: Vec<String>,
}

/// Checks one `schemas/<Interface>/<version>` folder.
fn check_interface_version(dir: &Path, envelopes: &Envelopes, tally: &mut Tally) {
    let interface = dir.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).expect("interface folder");
    let mut payloads: BTreeMap<String, (Validator, Coverage)> = BTreeMap::new();
    for folder in ["directives", "events", "context"] {
        for path in json_files(&dir.join(folder)) {
            let (validator, schema) = compile(&path);
            let stem = path.file_stem().and_then(|s| s.to_str()).expect("schema file name");
            let coverage = Coverage { constrained: constrains_anything(&schema), ..Coverage::default() };
            payloads.insert(format!("{folder}/{stem}"), (validator, coverage));
            tally.schemas += 1;
            tally.payload_schemas += 1;
        }
    }
    if dir.join("capability.json").exists() {
        compile(&dir.join("capability.json"));
        tally.schemas += 1;
    }

    for (valid, folder) in [(true, "valid"), (false, "invalid")] {
        for path in json_files(&dir.join("examples").join(folder)) {
            let name = shown(&path);
            let example = read(&path);
            let (kind, message) = Kind::of(&example);
            if let Err(e) = kind.envelope(envelopes).validate(&example) {
                panic!("{name}: the envelope must be valid even in an invalid example: {e}");
            }
            let header = &message["header"];
            assert_eq!(header["namespace"], interface, "{name}: namespace does not match its folder");
            let message_name = header["name"].as_str().expect("envelope guarantees a name");
            let file = path.file_stem().and_then(|s| s.to_str()).expect("example file name");
            let named_after_message = file == message_name || file.starts_with(&format!("{message_name}-"));
            assert!(named_after_message, "{name}: file name must start with {message_name}");
            if !valid {
                assert!(file.len() > message_name.len() + 1, "{name}: an invalid example names its reason");
            }

            let key = format!("{}/{message_name}", kind.folder());
            let (validator, coverage) =
                payloads.get_mut(&key).unwrap_or_else(|| panic!("{name}: no payload schema {key}.json"));
            let payload = &message["payload"];
            match (valid, validator.validate(payload)) {
                (true, Err(e)) => panic!("{name}: valid example rejected by {key}.json: {e}"),
                (false, Ok(())) => panic!("{name}: invalid example accepted by {key}.json"),
                _ => {}
            }
            if valid {
                coverage.valid += 1;
            } else {
                coverage.invalid += 1;
            }
            tally.examples += 1;
        }
    }

    for (key, (_, coverage)) in &payloads {
        let message = format!("{}/{key}", shown(dir));
        assert!(coverage.valid > 0, "{message}: no valid example");
        if coverage.constrained {
            assert!(coverage.invalid > 0, "{message}: no invalid example");
        } else {
            // An empty payload schema cannot be violated inside a valid envelope (which already
            // demands an object), so no invalid example can exist for it.
            tally.exempt.push(message);
        }
    }
    tally.interfaces += 1;
}

#[test]
fn every_schema_compiles_and_every_example_is_judged_as_its_folder_says() {
    let envelope_dir = schemas_dir().join("envelope");
    let envelopes = Envelopes {
        directive: compile(&envelope_dir.join("directive.json")).0,
        event: compile(&envelope_dir.join("event.json")).0,
        context_entry: compile(&envelope_dir.join("context-entry.json")).0,
    };
    compile(&envelope_dir.join("exception.json"));
    let mut tally = Tally { schemas: 4, ..Tally::default() };
    for interface in subdirs(&schemas_dir()).into_iter().filter(|d| !d.ends_with("envelope")) {
        for version in subdirs(&interface) {
            check_interface_version(&version, &envelopes, &mut tally);
        }
    }
    println!(
        "{} schemas compiled; {} examples checked across {} interface versions",
        tally.schemas, tally.examples, tally.interfaces
    );
    println!("empty payloads, no invalid example possible: {}", tally.exempt.join(", "));
    assert!(tally.interfaces >= 4, "expected System, Speaker, SpeechRecognizer, SpeechSynthesizer");
    let least = 2 * tally.payload_schemas - tally.exempt.len();
    assert!(tally.examples >= least, "{} examples for {} payload schemas", tally.examples, tally.payload_schemas);
}

#[test]
fn the_envelopes_reject_what_avs_would_reject() {
    let dir = schemas_dir().join("envelope");
    let (directive, event) = (compile(&dir.join("directive.json")).0, compile(&dir.join("event.json")).0);
    let header = json!({"namespace": "Speaker", "name": "SetMute", "messageId": "m-1"});
    assert!(directive.is_valid(&json!({"directive": {"header": header, "payload": {"mute": true}}})));
    assert!(!directive.is_valid(&json!({"directive": {"header": header}})), "payload is required");
    let no_id = json!({"namespace": "Speaker", "name": "SetMute"});
    assert!(!directive.is_valid(&json!({"directive": {"header": no_id, "payload": {}}})), "messageId is required");
    let entry = json!({"header": {"namespace": "Speaker", "name": "VolumeState"}, "payload": {}});
    let evt = json!({"namespace": "System", "name": "SynchronizeState", "messageId": "e-1"});
    assert!(event.is_valid(&json!({"context": [entry], "event": {"header": evt, "payload": {}}})));
    let bad = json!({"context": [{"payload": {}}], "event": {"header": evt, "payload": {}}});
    assert!(!event.is_valid(&bad), "a context entry needs its header");

    let exception = compile(&dir.join("exception.json")).0;
    let header = json!({"namespace": "System", "name": "Exception", "messageId": "x"});
    assert!(exception
        .is_valid(&json!({"header": header, "payload": {"code": "THROTTLING_EXCEPTION", "description": "slow"}})));
    assert!(!exception.is_valid(&json!({"header": header, "payload": {"code": "OOPS"}})));
}
