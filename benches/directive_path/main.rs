//! Each stage of the directive path, on realistic downchannel traffic, and the whole path on one core:
//! multipart split → envelope parse → routing + schema validation → dispatch into the real plugin
//! library over the ABI. Beside them, the "work ceiling": parsing the same JSON parts into a `Value` and
//! running a pre-compiled validator on the payload, the least any validating runtime must do.
//!
//! Needs the plugin libraries of the bench profile: `cargo build --release --workspace` first.
//! Run one group with e.g. `cargo bench --bench directive_path -- envelope_parse`.

mod messages;
mod plugins;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use avs_core::directives::DirectiveMessage;
use avs_core::media::AttachmentStore;
use avs_core::multipart::MultipartParser;
use avs_core::plugins::LoadedPlugin;
use avs_core::schema::{Document, DocumentNode};
use avs_plugin_api::{Directive, Handling};
use bytes::Bytes;
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use jsonschema::Validator;
use serde_json::Value;

use messages::{Message, Stream};

/// What an h2 connection hands the parser: small reads, one DATA frame (16 KiB, the default maximum
/// frame size), and what a busy connection coalesces.
const CHUNK_SIZES: [(usize, &str); 3] = [(1 << 10, "1KiB"), (16 << 10, "16KiB"), (64 << 10, "64KiB")];

/// Every message kind this many times per stream: enough parts that a 64 KiB chunk holds several.
const ROUNDS: usize = 16;

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sample_size(20).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    group
}

/// The plugins that handle the messages, by interface, as the plugin host holds its slots.
struct Plugins {
    by_interface: BTreeMap<String, LoadedPlugin>,
}

impl Plugins {
    fn load(messages: &[Message]) -> Plugins {
        let dir = plugins::built_plugin_dir();
        let by_interface = messages
            .iter()
            .map(|m| plugins::load(&dir, m.library))
            .map(|p| (p.manifest.interface.clone(), p))
            .collect();
        let plugins = Plugins { by_interface };
        for message in messages {
            let raw = Bytes::from_static(message.json.as_bytes());
            let document = DirectiveMessage::document(&raw).unwrap_or_else(|e| panic!("{}: {e}", message.kind));
            let (directive, payload) = envelope(&raw, &document);
            plugins
                .validate(&directive, payload)
                .unwrap_or_else(|e| panic!("{} is not a valid directive: {e}", message.kind));
        }
        plugins
    }

    fn get(&self, directive: &DirectiveMessage) -> &LoadedPlugin {
        &self.by_interface[directive.namespace()]
    }

    fn get_mut(&mut self, directive: &DirectiveMessage) -> &mut LoadedPlugin {
        self.by_interface.get_mut(directive.namespace()).expect("a plugin for every message")
    }

    /// What `Router::route` does between the parse and the sequencer: find the slot by namespace, find
    /// the directive in its manifest, check the payload (parsed with the part) against the schema.
    fn validate(&self, directive: &DirectiveMessage, payload: DocumentNode<'_>) -> Result<&LoadedPlugin, String> {
        let plugin = self.by_interface.get(directive.namespace()).ok_or("no plugin for the namespace")?;
        if !plugin.manifest.directives.iter().any(|d| d.name == directive.name()) {
            return Err(format!("{} is not in the manifest", directive.name()));
        }
        plugin.schemas.check_directive_node(directive.name(), payload).map_err(|v| v.0)?;
        Ok(plugin)
    }

    /// The call the plugin's slot thread makes, with slices of the parsed message.
    fn dispatch(&mut self, directive: &DirectiveMessage) -> Handling {
        let call = Directive {
            name: directive.name().into(),
            message_id: directive.message_id().into(),
            dialog_request_id: directive.dialog_request_id().unwrap_or("").into(),
            payload: directive.payload().into(),
        };
        match self.get_mut(directive).instance.handle_directive(call).into_result() {
            Ok(handling) => handling,
            Err(e) => panic!("{}.{} failed: {e}", directive.namespace(), directive.name()),
        }
    }

    /// The payload schema of a directive, compiled on its own, as the work ceiling uses it.
    fn payload_validator(&self, directive: &DirectiveMessage) -> Validator {
        let documents = self.get(directive).instance.schemas().into_result().expect("schemas");
        let documents: serde_json::Map<String, Value> = serde_json::from_str(&documents).expect("schemas JSON");
        let schema = &documents[&format!("directives/{}.json", directive.name())];
        jsonschema::validator_for(schema).expect("schema compiles")
    }
}

fn parsed(message: &Message) -> DirectiveMessage {
    DirectiveMessage::parse(Bytes::from_static(message.json.as_bytes())).expect("valid envelope")
}

/// The directive in a parsed part and its payload, as the router reads them.
fn envelope<'d>(raw: &Bytes, document: &'d Document<'_>) -> (DirectiveMessage, DocumentNode<'d>) {
    DirectiveMessage::from_document(raw, document, Instant::now()).expect("valid envelope")
}

/// A downchannel parser that has read the opening delimiter: it lives as long as the connection, so
/// its setup is not part of the per-part cost.
fn downchannel(stream: &Stream) -> MultipartParser {
    let mut parser = MultipartParser::new(&stream.boundary);
    parser.push(&stream.opening).expect("opening delimiter");
    parser
}

fn multipart_split(c: &mut Criterion) {
    let messages = messages::all();
    let mut group = group(c, "multipart_split");
    for (with_attachments, shape) in [(false, "json_parts"), (true, "json_and_tts_audio")] {
        let stream = Stream::new(&messages, ROUNDS, with_attachments);
        group.throughput(Throughput::ElementsAndBytes { elements: stream.parts, bytes: stream.body.len() as u64 });
        for (size, label) in CHUNK_SIZES {
            let mut parser = downchannel(&stream);
            group.bench_function(format!("{shape}/{label}"), |b| {
                b.iter(|| {
                    for chunk in stream.body.chunks(size) {
                        parser.push(chunk).expect("valid stream");
                        while let Some(part) = parser.next_part().expect("valid stream") {
                            black_box(part);
                        }
                    }
                })
            });
        }
    }
    group.finish();
}

fn envelope_parse(c: &mut Criterion) {
    let mut group = group(c, "envelope_parse");
    group.throughput(Throughput::Elements(1));
    for message in messages::all() {
        let raw = Bytes::from_static(message.json.as_bytes());
        group.bench_function(format!("{}/{}B", message.kind, raw.len()), |b| {
            b.iter(|| DirectiveMessage::parse(black_box(raw.clone())).expect("valid envelope"))
        });
    }
    group.finish();
}

/// Routing (namespace → plugin, manifest lookup) + the pre-compiled schema on the payload parsed with
/// its part (`envelope_parse` measures that parse), as the router does it; and the schema check alone,
/// to tell the two apart.
fn schema_validation(c: &mut Criterion) {
    let messages = messages::all();
    let plugins = Plugins::load(&messages);
    let mut group = group(c, "schema_validation");
    group.throughput(Throughput::Elements(1));
    for message in &messages {
        let raw = Bytes::from_static(message.json.as_bytes());
        let document = DirectiveMessage::document(&raw).expect("valid envelope");
        let (directive, payload) = envelope(&raw, &document);
        group.bench_function(format!("route_check/{}", message.kind), |b| {
            b.iter(|| plugins.validate(black_box(&directive), black_box(payload)).map(drop).expect("valid"))
        });
        let schemas = &plugins.get(&directive).schemas;
        group.bench_function(format!("check_only/{}", message.kind), |b| {
            b.iter(|| schemas.check_directive_node(directive.name(), black_box(payload)).expect("valid"))
        });
    }
    group.finish();
}

fn abi_dispatch(c: &mut Criterion) {
    let messages = messages::all();
    let mut plugins = Plugins::load(&messages);
    let mut group = group(c, "abi_dispatch");
    group.throughput(Throughput::Elements(1));
    for message in &messages {
        let directive = parsed(message);
        group.bench_function(message.kind, |b| b.iter(|| plugins.dispatch(black_box(&directive))));
    }
    // The crossing alone: a call the plugin answers without work (Speaker keeps the SDK's default
    // `cancel`), so the per-plugin figures above can be split into ABI and plugin work.
    let speaker = &mut plugins.by_interface.get_mut("Speaker").expect("Speaker plugin").instance;
    group.bench_function("call_floor", |b| b.iter(|| speaker.cancel(black_box("no-such-message").into())));
    group.finish();
}

/// One downchannel on one core, nothing in between: the parser's parts go to the router's checks and
/// straight into the plugin (the runtime hands them to the sequencer and the slot's thread instead), and
/// binary parts to the attachment store.
fn whole_path(c: &mut Criterion) {
    let messages = messages::all();
    let mut plugins = Plugins::load(&messages);
    let attachments = AttachmentStore::default();
    let mut group = group(c, "whole_path");
    for (with_attachments, shape) in [(false, "json_parts"), (true, "json_and_tts_audio")] {
        let stream = Stream::new(&messages, ROUNDS, with_attachments);
        group.throughput(Throughput::ElementsAndBytes { elements: stream.directives, bytes: stream.body.len() as u64 });
        let mut parser = downchannel(&stream);
        group.bench_function(format!("{shape}/16KiB"), |b| {
            b.iter(|| {
                for chunk in stream.body.chunks(16 << 10) {
                    parser.push(chunk).expect("valid stream");
                    while let Some(part) = parser.next_part().expect("valid stream") {
                        match &part.headers.content_id {
                            Some(id) => attachments.insert(id, part.body),
                            None => {
                                let document = DirectiveMessage::document(&part.body).expect("valid envelope");
                                let (directive, payload) = envelope(&part.body, &document);
                                plugins.validate(&directive, payload).expect("valid directive");
                                black_box(plugins.dispatch(&directive));
                            }
                        }
                    }
                }
            })
        });
    }
    group.finish();
}

/// The least a runtime that validates must do per directive: JSON → `Value` once, then a pre-compiled
/// validator's `is_valid` on the payload. Measured on the same parts, for scale.
fn work_ceiling(c: &mut Criterion) {
    let messages = messages::all();
    let plugins = Plugins::load(&messages);
    let validated: Vec<(&Message, Validator)> =
        messages.iter().map(|m| (m, plugins.payload_validator(&parsed(m)))).collect();
    let check = |json: &[u8], validator: &Validator| {
        let value: Value = serde_json::from_slice(json).expect("JSON");
        validator.is_valid(&value["directive"]["payload"])
    };
    let mut group = group(c, "work_ceiling");
    group.throughput(Throughput::Elements(1));
    for (message, validator) in &validated {
        assert!(check(message.json.as_bytes(), validator), "{} must be valid", message.kind);
        group.bench_function(message.kind, |b| b.iter(|| check(black_box(message.json.as_bytes()), validator)));
    }
    group.throughput(Throughput::Elements(validated.len() as u64));
    group.bench_function("mixed", |b| {
        b.iter(|| {
            for (message, validator) in &validated {
                black_box(check(black_box(message.json.as_bytes()), validator));
            }
        })
    });
    group.finish();
}

criterion_group!(stages, multipart_split, envelope_parse, schema_validation, abi_dispatch, whole_path, work_ceiling);
criterion_main!(stages);
