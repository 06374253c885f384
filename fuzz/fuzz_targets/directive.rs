//! A directive JSON part down the router's path: envelope parse, namespace and name lookup, payload
//! validation with the real compiled schemas of `schemas/`, SetEndpoint's URL check, and the
//! ExceptionEncountered that answers whatever is refused. Oracles: no panic; an accepted envelope has
//! non-empty header strings and a payload that is the JSON object found in the input; every
//! ExceptionEncountered is valid by System's own schema and quotes the input.
#![no_main]

use std::collections::HashMap;
use std::path::Path;
use std::sync::OnceLock;

use avs_core::directives::DirectiveMessage;
use avs_core::events::exception_encountered;
use avs_core::schema::InterfaceSchemas;
use avs_core::transport::http2::Endpoint;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Namespace → its compiled versions, as the plugins embed them.
fn schemas() -> &'static HashMap<String, Vec<InterfaceSchemas>> {
    static ALL: OnceLock<HashMap<String, Vec<InterfaceSchemas>>> = OnceLock::new();
    ALL.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas");
        let dirs = |dir: &Path| -> Vec<std::path::PathBuf> {
            let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
            entries.map(|e| e.expect("a readable schemas/ entry").path()).filter(|p| p.is_dir()).collect()
        };
        let mut all = HashMap::new();
        for interface in dirs(&root).into_iter().filter(|d| !d.ends_with("envelope")) {
            let versions = dirs(&interface)
                .iter()
                .map(|v| InterfaceSchemas::load_dir(v).unwrap_or_else(|e| panic!("{e}")))
                .collect();
            let namespace = interface.file_name().expect("a directory name").to_string_lossy().into_owned();
            all.insert(namespace, versions);
        }
        all
    })
}

/// What the router sends back: judged by every System version's ExceptionEncountered schema.
fn answer(raw: &[u8], error_type: &str, why: &str) {
    let event = exception_encountered(raw, error_type, why);
    let metadata: Value = serde_json::from_slice(&event.metadata(None)).expect("event metadata is JSON");
    let payload = &metadata["event"]["payload"];
    assert_eq!(payload["unparsedDirective"], String::from_utf8_lossy(raw).as_ref());
    for system in &schemas()["System"] {
        system.check_event("ExceptionEncountered", &payload.to_string()).unwrap_or_else(|v| panic!("{v}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let directive = match DirectiveMessage::parse(Bytes::copy_from_slice(data)) {
        Ok(directive) => directive,
        Err(e) => return answer(data, "UNEXPECTED_INFORMATION_RECEIVED", &e.to_string()),
    };
    let (namespace, name) = (directive.namespace(), directive.name());
    assert!(!namespace.is_empty() && !name.is_empty() && !directive.message_id().is_empty());
    assert_ne!(directive.dialog_request_id(), Some(""));
    let text = std::str::from_utf8(data).expect("an accepted directive is UTF-8");
    assert!(text.contains(directive.payload()), "the payload is a range of the input");
    let payload: Value = serde_json::from_str(directive.payload()).expect("the payload range is JSON");
    assert!(payload.is_object(), "{payload}");

    let Some(versions) = schemas().get(namespace) else {
        return answer(data, "UNSUPPORTED_OPERATION", &format!("no plugin handles {namespace}"));
    };
    for version in versions {
        if !version.has_directive(name) {
            answer(data, "UNSUPPORTED_OPERATION", &format!("does not support {name}"));
            continue;
        }
        if let Err(violation) = version.check_directive(name, directive.payload()) {
            answer(data, "UNEXPECTED_INFORMATION_RECEIVED", &violation.0);
            continue;
        }
        if namespace == "System" && name == "SetEndpoint" {
            let url = payload["endpoint"].as_str().expect("System's schema requires an endpoint string");
            if let Ok(endpoint) = Endpoint::parse(url.trim_end_matches('/')) {
                assert!(endpoint.uri("/ping").starts_with("https://"), "{endpoint:?}");
            }
        }
    }
});
