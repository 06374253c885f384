//! The multipart parser on arbitrary bytes in arbitrary chunkings.
//!
//! Input: byte 0 picks the boundary (low 3 bits) and whether to also round-trip the rest through the
//! writer (bit 3); bytes 1..4 are chunk sizes, cycled; the rest is the stream. Oracles: no panic; the
//! chunked parse yields exactly the parts, the error kind and the end state of the one-push parse; tight
//! limits only ever cut that list of parts short.
#![no_main]

use std::mem::discriminant;

use avs_core::multipart::{Limits, MultipartError, MultipartParser, MultipartWriter, Part};
use libfuzzer_sys::fuzz_target;

/// AVS's own, one character, one that overlaps itself, the writer's shape, and odd but legal ones.
const BOUNDARIES: [&str; 8] =
    ["------abcde123", "b", "-b-", "avs-7f3c2a91d4e84b0c9a1e5f6d7c8b9a0e", "this-is-a-boundary", "--", "a b", "=_?"];

struct Outcome {
    parts: Vec<Part>,
    error: Option<MultipartError>,
    finished: bool,
}

fn parse(stream: &[u8], boundary: &str, limits: Limits, sizes: &[usize]) -> Outcome {
    let mut parser = MultipartParser::with_limits(boundary, limits);
    let mut parts = Vec::new();
    let mut rest = stream;
    let mut sizes = sizes.iter().cycle();
    let mut pushed = Ok(());
    while !rest.is_empty() && pushed.is_ok() {
        let (chunk, tail) = rest.split_at(sizes.next().copied().unwrap_or(1).min(rest.len()));
        pushed = parser.push(chunk);
        rest = tail;
        // Parts completed before an error are still handed out, then the error.
        loop {
            match parser.next_part() {
                Ok(Some(part)) => parts.push(part),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(Err(&e), pushed.as_ref(), "next_part fails only with push's error");
                    break;
                }
            }
        }
    }
    let error = pushed.and_then(|()| parser.finish()).err();
    Outcome { parts, error, finished: parser.is_finished() }
}

fuzz_target!(|data: &[u8]| {
    let [selector, a, b, c, stream @ ..] = data else { return };
    let boundary = BOUNDARIES[usize::from(selector & 7)];
    let sizes = [*a, *b, *c].map(|s| usize::from(s) + 1);

    let whole = parse(stream, boundary, Limits::default(), &[stream.len().max(1)]);
    let chunked = parse(stream, boundary, Limits::default(), &sizes);
    assert_eq!(chunked.parts, whole.parts, "chunks of {sizes:?}");
    assert_eq!(
        chunked.error.as_ref().map(discriminant),
        whole.error.as_ref().map(discriminant),
        "{:?} vs {:?} in chunks of {sizes:?}",
        chunked.error,
        whole.error
    );
    assert_eq!(chunked.finished, whole.finished);

    let tight = Limits { max_part_bytes: 64, max_header_bytes: 48 };
    let bounded = parse(stream, boundary, tight, &sizes);
    assert!(bounded.parts.len() <= whole.parts.len());
    assert_eq!(bounded.parts[..], whole.parts[..bounded.parts.len()], "limits only cut the list short");
    assert!(bounded.parts.iter().all(|p| p.body.len() <= tight.max_part_bytes));

    if selector & 8 != 0 {
        let writer = MultipartWriter::new(boundary);
        let delimiter = [b"\r\n--", boundary.as_bytes()].concat();
        if stream.windows(delimiter.len()).all(|w| w != delimiter) {
            let body = [writer.json_part(stream), writer.attachment_part("cid-1", stream), writer.close()].concat();
            let round = parse(&body, boundary, Limits::default(), &sizes);
            assert!(round.error.is_none() && round.finished, "{:?}", round.error);
            let bodies: Vec<&[u8]> = round.parts.iter().map(|p| &p.body[..]).collect();
            assert_eq!(bodies, [stream, stream]);
            assert_eq!(round.parts[1].headers.content_id.as_deref(), Some("cid-1"));
        }
    }
});
