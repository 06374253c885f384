//! Every schema compiles, every example is judged the way its folder says — valid examples pass both
//! the envelope and the payload schema; invalid examples have a valid envelope and fail the payload
//! schema — and every constrained message has both kinds of example.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn schemas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas")
}

fn read(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn validator(path: &Path) -> jsonschema::Validator {
    jsonschema::validator_for(&read(path)).unwrap_or_else(|e| panic!("{} does not compile: {e}", path.display()))
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// `schemas/<Interface>/<version>` directories.
fn interface_versions() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for interface in std::fs::read_dir(schemas_dir()).unwrap().filter_map(|e| e.ok()) {
        if interface.file_name() == "envelope" || !interface.path().is_dir() {
            continue;
        }
        for version in std::fs::read_dir(interface.path()).unwrap().filter_map(|e| e.ok()) {
            dirs.push(version.path());
        }
    }
    dirs.sort();
    dirs
}

/// Which envelope and payload schema an example is judged by.
fn classify(dir: &Path, example: &Value) -> (&'static str, String, Value) {
    if let Some(d) = example.get("directive") {
        ("directive", format!("directives/{}.json", d["header"]["name"].as_str().unwrap()), d["payload"].clone())
    } else if let Some(e) = example.get("event") {
        ("event", format!("events/{}.json", e["header"]["name"].as_str().unwrap()), e["payload"].clone())
    } else {
        let name =
            example["header"]["name"].as_str().unwrap_or_else(|| panic!("unrecognised example in {}", dir.display()));
        ("context-entry", format!("context/{name}.json"), example["payload"].clone())
    }
}

#[test]
fn every_example_is_judged_as_its_folder_says_and_every_message_has_both_kinds() {
    let envelopes: BTreeMap<&str, jsonschema::Validator> = ["directive", "event", "context-entry", "exception"]
        .into_iter()
        .map(|name| (name, validator(&schemas_dir().join("envelope").join(format!("{name}.json")))))
        .collect();
    let (mut checked, mut interfaces) = (0, 0);
    for dir in interface_versions() {
        interfaces += 1;
        // Message schema path → (valid examples, invalid examples).
        let mut coverage: BTreeMap<String, (usize, usize)> = BTreeMap::new();
        for kind in ["directives", "events", "context"] {
            for schema in json_files(&dir.join(kind)) {
                validator(&schema);
                coverage.insert(format!("{kind}/{}", schema.file_name().unwrap().to_string_lossy()), (0, 0));
            }
        }
        if dir.join("capability.json").exists() {
            validator(&dir.join("capability.json"));
        }
        for (valid, folder) in [(true, "valid"), (false, "invalid")] {
            for path in json_files(&dir.join("examples").join(folder)) {
                let example = read(&path);
                let (envelope, schema, payload) = classify(&dir, &example);
                let shown = path.strip_prefix(schemas_dir()).unwrap().display().to_string();
                assert!(envelopes[envelope].is_valid(&example), "{shown}: envelope must be valid");
                let payload_ok = validator(&dir.join(&schema)).is_valid(&payload);
                assert_eq!(payload_ok, valid, "{shown}: payload judged {payload_ok} against {schema}");
                let entry = coverage.get_mut(&schema).unwrap_or_else(|| panic!("{shown}: no schema {schema}"));
                if valid {
                    entry.0 += 1;
                } else {
                    entry.1 += 1;
                }
                checked += 1;
            }
        }
        for (schema, (valid, invalid)) in &coverage {
            let constrained = read(&dir.join(schema)).get("required").is_some();
            assert!(*valid > 0, "{}/{schema}: no valid example", dir.display());
            assert!(
                !constrained || *invalid > 0,
                "{}/{schema}: constrains its payload but has no invalid example",
                dir.display()
            );
        }
    }
    println!("{checked} examples across {interfaces} interface versions checked");
    assert!(interfaces >= 4 && checked >= 60, "only {checked} examples in {interfaces} interfaces");
}

#[test]
fn the_exception_envelope_matches_what_avs_sends() {
    let exception = validator(&schemas_dir().join("envelope/exception.json"));
    let body: Value = serde_json::json!({"header": {"namespace": "System", "name": "Exception", "messageId": "m"},
                                         "payload": {"code": "INVALID_REQUEST_EXCEPTION", "description": "bad"}});
    assert!(exception.is_valid(&body));
    let wrong: Value = serde_json::json!({"header": {"namespace": "System", "name": "Exception", "messageId": "m"}, "payload": {"code": "OOPS"}});
    assert!(!exception.is_valid(&wrong));
}
