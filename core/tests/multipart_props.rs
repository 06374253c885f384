//! Properties of the multipart parser over generated bodies: what is written parses back the same under
//! any chunking, garbage never panics and parses the same however it is chunked, and a body cut short
//! yields exactly the parts that were complete before the cut.

use avs_core::multipart::{MultipartError, MultipartParser, MultipartWriter, Part};
use proptest::prelude::*;

/// RFC 2046 `bchars`: 1 to 70 of them, a space anywhere but last.
fn boundary() -> impl Strategy<Value = String> {
    "[0-9A-Za-z'()+_,./:=?-]|[0-9A-Za-z'()+_,./:=?-][0-9A-Za-z'()+_,./:=? -]{0,68}[0-9A-Za-z'()+_,./:=?-]"
}

/// Bytes rich in what the format is made of (line breaks, dashes), and any others.
fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![3 => any::<u8>(), 1 => Just(b'\r'), 1 => Just(b'\n'), 2 => Just(b'-')], 0..max)
}

/// Chunk sizes, cycled over the stream.
fn chunking() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..80usize, 1..6)
}

/// A header value: no line break, no white space at either end (the parser trims it).
fn header_value() -> impl Strategy<Value = String> {
    "([!-~\u{a1}-\u{17f}]([ -~\u{a1}-\u{17f}]{0,30}[!-~\u{a1}-\u{17f}])?)?"
}

/// What a part must come back as: the headers the parser interprets, and the body.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    content_type: Option<String>,
    content_id: Option<String>,
    name: Option<String>,
    body: Vec<u8>,
}

impl Expected {
    fn of(part: &Part) -> Expected {
        let h = &part.headers;
        assert!(h.deviations.is_empty(), "well-formed input counted as deviating: {:?}", h.deviations);
        let (content_type, content_id, name) = (h.content_type.clone(), h.content_id.clone(), h.name.clone());
        Expected { content_type, content_id, name, body: part.body.to_vec() }
    }
}

/// A part as the writer writes it, or by hand with random header values and extension headers.
#[derive(Debug, Clone)]
enum PartSpec {
    Json(Vec<u8>),
    Attachment {
        content_id: String,
        body: Vec<u8>,
    },
    FormData {
        name: String,
        content_type: String,
        body: Vec<u8>,
    },
    ByHand {
        content_type: Option<String>,
        content_id: Option<String>,
        extensions: Vec<(String, String)>,
        body: Vec<u8>,
    },
}

fn part_spec() -> impl Strategy<Value = PartSpec> {
    let token = "[A-Za-z0-9!#$%&'*+.^_`|~-]{1,20}";
    // Anything visible but the closing angle bracket.
    let content_id = "[!-=?-~]{1,30}";
    prop_oneof![
        bytes(120).prop_map(PartSpec::Json),
        (content_id, bytes(120)).prop_map(|(content_id, body)| PartSpec::Attachment { content_id, body }),
        (token, header_value(), bytes(120)).prop_map(|(name, content_type, body)| PartSpec::FormData {
            name,
            content_type,
            body
        }),
        (
            prop::option::of(header_value()),
            prop::option::of(content_id),
            prop::collection::vec((token.prop_map(|t| format!("X-{t}")), header_value()), 0..4),
            bytes(120),
        )
            .prop_map(|(content_type, content_id, extensions, body)| PartSpec::ByHand {
                content_type,
                content_id,
                extensions,
                body
            }),
    ]
}

/// A body, what it must parse into, and the offsets a cut is judged by.
#[derive(Debug, Clone)]
struct Body {
    boundary: String,
    stream: Vec<u8>,
    parts: Vec<Expected>,
    /// Where each delimiter ends: part `i` is complete once `delimiter_ends[i + 1]` bytes are in.
    delimiter_ends: Vec<usize>,
    /// Where each part's headers start (after the line break that follows its delimiter).
    header_starts: Vec<usize>,
    /// Where the close-delimiter's `--` ends, if the body is closed.
    closed_at: Option<usize>,
}

/// Breaks up every delimiter in `body` (a body containing one is not multipart).
fn without_delimiter(mut body: Vec<u8>, delimiter: &[u8]) -> Vec<u8> {
    while let Some(at) = body.windows(delimiter.len()).position(|w| w == delimiter) {
        body.remove(at + 1);
    }
    body
}

/// A part's bytes, `\r\n--boundary\r\n` first, and what it must parse into.
fn write_part(writer: &MultipartWriter, spec: PartSpec) -> (Vec<u8>, Expected) {
    let delimiter = [b"\r\n--", writer.boundary().as_bytes()].concat();
    let expect = |content_type: &str, content_id: Option<&str>, name: Option<&str>, body: &[u8]| Expected {
        content_type: Some(content_type.to_string()),
        content_id: content_id.map(str::to_string),
        name: name.map(str::to_string),
        body: body.to_vec(),
    };
    match spec {
        PartSpec::Json(body) => {
            let body = without_delimiter(body, &delimiter);
            let expected = expect("application/json; charset=UTF-8", None, None, &body);
            (writer.json_part(&body).to_vec(), expected)
        }
        PartSpec::Attachment { content_id, body } => {
            let body = without_delimiter(body, &delimiter);
            let expected = expect("application/octet-stream", Some(&content_id), None, &body);
            (writer.attachment_part(&content_id, &body).to_vec(), expected)
        }
        PartSpec::FormData { name, content_type, body } => {
            let body = without_delimiter(body, &delimiter);
            let expected = expect(&content_type, None, Some(&name), &body);
            (writer.form_data_part(&name, &content_type, &body).to_vec(), expected)
        }
        PartSpec::ByHand { content_type, content_id, extensions, body } => {
            let body = without_delimiter(body, &delimiter);
            let mut bytes = [&delimiter[..], b"\r\n"].concat();
            let ids = content_id.as_ref().map(|id| ("Content-ID".to_string(), format!("<{id}>")));
            let types = content_type.as_ref().map(|t| ("Content-Type".to_string(), t.clone()));
            for (name, value) in extensions.into_iter().chain(types).chain(ids) {
                bytes.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            bytes.extend_from_slice(b"\r\n");
            bytes.extend_from_slice(&body);
            (bytes, Expected { content_type, content_id, name: None, body })
        }
    }
}

/// `stays_open`: as on the downchannel, the delimiter after the last part and no close. `bare_start`: as
/// servers write it, the first delimiter without the line break before it.
fn build(boundary: String, specs: Vec<PartSpec>, stays_open: bool, bare_start: bool, epilogue: Vec<u8>) -> Body {
    let writer = MultipartWriter::new(boundary.clone());
    let delimiter_len = 4 + boundary.len();
    let (mut stream, mut parts, mut header_starts) = (Vec::new(), Vec::new(), Vec::new());
    for spec in specs {
        let (bytes, expected) = write_part(&writer, spec);
        header_starts.push(stream.len() + delimiter_len + 2);
        stream.extend_from_slice(&bytes);
        parts.push(expected);
    }
    let mut delimiter_ends: Vec<usize> = header_starts.iter().map(|start| start - 2).collect();
    delimiter_ends.push(stream.len() + delimiter_len);
    let mut closed_at = None;
    if stays_open {
        stream.extend_from_slice(format!("\r\n--{boundary}").as_bytes());
    } else {
        stream.extend_from_slice(&writer.close());
        closed_at = Some(stream.len() - 2);
        stream.extend_from_slice(&epilogue);
    }
    if bare_start {
        stream.drain(..2);
        for offset in delimiter_ends.iter_mut().chain(&mut header_starts).chain(&mut closed_at) {
            *offset -= 2;
        }
    }
    Body { boundary, stream, parts, delimiter_ends, header_starts, closed_at }
}

fn body() -> impl Strategy<Value = Body> {
    (boundary(), prop::collection::vec(part_spec(), 0..5), any::<bool>(), any::<bool>(), bytes(20)).prop_map(
        |(boundary, specs, stays_open, bare_start, epilogue)| build(boundary, specs, stays_open, bare_start, epilogue),
    )
}

struct Parsed {
    parts: Vec<Part>,
    pushed: Result<(), MultipartError>,
    finished: Result<(), MultipartError>,
    closed: bool,
}

/// Feeds `stream` in chunks of `sizes` (cycled), taking parts out after every push, then ends it.
fn parse(stream: &[u8], boundary: &str, sizes: &[usize]) -> Parsed {
    let mut parser = MultipartParser::new(boundary);
    let mut parts = Vec::new();
    let mut pushed = Ok(());
    let mut sizes = sizes.iter().cycle();
    let mut rest = stream;
    while !rest.is_empty() && pushed.is_ok() {
        let size = sizes.next().copied().unwrap_or(rest.len());
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        pushed = parser.push(chunk);
        while let Ok(Some(part)) = parser.next_part() {
            parts.push(part);
        }
        rest = tail;
    }
    let finished = parser.finish();
    Parsed { parts, pushed, finished, closed: parser.is_finished() }
}

fn kind(result: &Result<(), MultipartError>) -> Option<std::mem::Discriminant<MultipartError>> {
    result.as_ref().err().map(std::mem::discriminant)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn written_bodies_parse_back_the_same_under_any_chunking(body in body(), sizes in chunking()) {
        let parsed = parse(&body.stream, &body.boundary, &sizes);
        prop_assert_eq!(&parsed.pushed, &Ok(()));
        prop_assert_eq!(&parsed.finished, &Ok(()));
        prop_assert_eq!(parsed.parts.iter().map(Expected::of).collect::<Vec<_>>(), body.parts);
        prop_assert_eq!(parsed.closed, body.closed_at.is_some());
    }

    #[test]
    fn garbage_never_panics_and_parses_the_same_however_it_is_chunked(
        boundary in boundary(),
        garbage in bytes(400),
        sizes in chunking(),
    ) {
        // Every `-` of the garbage becomes a delimiter, so that it gets past the preamble and into parts.
        let delimiter = format!("\r\n--{boundary}");
        let stream = garbage.split(|b| *b == b'-').collect::<Vec<_>>().join(delimiter.as_bytes());
        let whole = parse(&stream, &boundary, &[stream.len().max(1)]);
        let chunked = parse(&stream, &boundary, &sizes);
        prop_assert_eq!(&chunked.parts, &whole.parts);
        prop_assert_eq!(kind(&chunked.pushed), kind(&whole.pushed));
        prop_assert_eq!(kind(&chunked.finished), kind(&whole.finished));
        prop_assert_eq!(chunked.closed, whole.closed);
    }

    #[test]
    fn a_body_cut_anywhere_yields_exactly_the_parts_complete_before_the_cut(
        body in body(),
        cut in any::<prop::sample::Index>(),
        sizes in chunking(),
    ) {
        let cut = cut.index(body.stream.len() + 1);
        let parsed = parse(&body.stream[..cut], &body.boundary, &sizes);
        prop_assert_eq!(&parsed.pushed, &Ok(()), "a prefix of a valid body is never refused while it streams");
        let complete = body.delimiter_ends.iter().skip(1).filter(|end| **end <= cut).count();
        let got: Vec<Expected> = parsed.parts.iter().map(Expected::of).collect();
        prop_assert_eq!(&got[..], &body.parts[..complete]);
        // Ending is fine before anything, right after a delimiter or the line break after it, and after
        // the close; anywhere else the stream was cut inside something.
        let at_rest = cut == 0
            || body.delimiter_ends.contains(&cut)
            || body.header_starts.contains(&cut)
            || body.closed_at.is_some_and(|at| cut >= at);
        prop_assert_eq!(parsed.finished.is_ok(), at_rest, "cut at {} of {}: {:?}", cut, body.stream.len(), parsed.finished);
    }
}
