//! Streaming multipart (RFC 2046) for AVS: the multipart/related downchannel and event answers, and the
//! multipart/form-data bodies of events.
//!
//! Written by hand rather than taken from a crate because the downchannel is a multipart body that never
//! ends: parts must come out as soon as they are complete, from whatever chunking the network produced,
//! without buffering more than one part. The boundary scan is a precompiled `memchr::memmem::Finder` that
//! never rescans bytes; a finished body leaves the buffer with `split_to().freeze()`, so the only copy of
//! a body is the one made when its bytes are pushed.

use std::borrow::Cow;
use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use memchr::memmem;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartHeaders {
    pub content_type: Option<String>,
    /// `Content-ID` without its angle brackets.
    pub content_id: Option<String>,
    /// The `name` of a `Content-Disposition: form-data` part, quotes removed.
    pub name: Option<String>,
    /// What this part did that the format does not (bare LF line ends, unquoted names…): accepted, but
    /// worth counting.
    pub deviations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub headers: PartHeaders,
    pub body: Bytes,
}

/// Bounds on what one part may make the parser hold: a peer that never sends the next delimiter must not
/// make the device buffer without end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_part_bytes: usize,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    /// 16 MiB is minutes of TTS MP3; 8 KiB of part headers is far more than AVS ever sends.
    fn default() -> Self {
        Limits { max_part_bytes: 16 << 20, max_header_bytes: 8 << 10 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("a part body is larger than the limit of {limit} bytes (no boundary delimiter within it)")]
    PartTooLarge { limit: usize },
    #[error("part headers exceed the limit of {limit} bytes without the blank line that ends them")]
    HeadersTooLarge { limit: usize },
    #[error(
        "expected a line break or \"--\" right after a boundary delimiter, found {found:?} \
         (does a part body contain the boundary string?)"
    )]
    BadDelimiter { found: String },
    #[error("malformed part header line {line:?}: expected \"Name: value\"")]
    BadHeader { line: String },
    #[error("the stream ended inside {inside} ({buffered} bytes of it received)")]
    Truncated { inside: &'static str, buffered: usize },
    #[error(
        "the stream ended without any boundary delimiter \"--{boundary}\" ({received} bytes received): \
         the body is not multipart with the boundary its content-type announced"
    )]
    NoDelimiter { boundary: String, received: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the first delimiter (a preamble may come first).
    Preamble,
    /// Just after a delimiter: either `--` (the end) or the line break before the headers.
    AfterDelimiter,
    Headers,
    Body,
    Closed,
}

/// Push bytes as they arrive, take complete parts out. Accepts a body that starts with `--boundary`
/// (no line break before it) or a preamble, bare-LF header lines (reported as deviations), and a body that
/// never closes (the downchannel).
pub struct MultipartParser {
    boundary: String,
    /// Finds `\r\n--boundary`: a body ends where it starts.
    delimiter: memmem::Finder<'static>,
    buf: BytesMut,
    state: State,
    /// In `Preamble` and `Body`: bytes of `buf` already searched for the delimiter. In `Headers`: where the
    /// header line not yet ended starts. Either way, nothing before it is scanned again.
    scanned: usize,
    headers: PartHeaders,
    limits: Limits,
    ready: VecDeque<Part>,
    received: u64,
    /// The first error, returned again by every later call: the stream cannot be resynchronised.
    failed: Option<MultipartError>,
}

impl MultipartParser {
    pub fn new(boundary: &str) -> Self {
        Self::with_limits(boundary, Limits::default())
    }

    pub fn with_limits(boundary: &str, limits: Limits) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // Servers start the body with the delimiter's dashes, without the line break before them: a
        // synthetic one lets the same search find it.
        let mut buf = BytesMut::with_capacity(8 << 10);
        buf.extend_from_slice(b"\r\n");
        MultipartParser {
            boundary: boundary.to_string(),
            delimiter: memmem::Finder::new(&delimiter).into_owned(),
            buf,
            state: State::Preamble,
            scanned: 0,
            headers: PartHeaders::default(),
            limits,
            ready: VecDeque::new(),
            received: 0,
            failed: None,
        }
    }

    /// Feeds the next bytes of the stream. Parts completed by them are then available from `next_part`.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), MultipartError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        self.received += chunk.len() as u64;
        if self.state == State::Closed {
            // RFC 2046 allows an epilogue after the close-delimiter; it carries nothing.
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        self.advance().inspect_err(|error| self.failed = Some(error.clone()))
    }

    /// The next complete part, if one is ready. Parts completed before an error are still handed out,
    /// then the error.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        match (self.ready.pop_front(), &self.failed) {
            (Some(part), _) => Ok(Some(part)),
            (None, Some(error)) => Err(error.clone()),
            (None, None) => Ok(None),
        }
    }

    /// The close-delimiter has been seen.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
    }

    /// The stream ended. Fine after the close-delimiter, and between parts (the downchannel never sends
    /// the close-delimiter: the server just ends the stream); an error in the middle of a part.
    pub fn finish(&mut self) -> Result<(), MultipartError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        let buffered = self.buf.len();
        let result = match self.state {
            State::Closed => Ok(()),
            State::Preamble if self.received == 0 => Ok(()),
            State::Preamble => {
                Err(MultipartError::NoDelimiter { boundary: self.boundary.clone(), received: self.received })
            }
            State::AfterDelimiter if self.buf.iter().all(|b| matches!(b, b' ' | b'\t')) => Ok(()),
            State::AfterDelimiter => Err(MultipartError::Truncated { inside: "a boundary delimiter line", buffered }),
            State::Headers if buffered == 0 => Ok(()),
            State::Headers => Err(MultipartError::Truncated { inside: "the headers of a part", buffered }),
            State::Body => Err(MultipartError::Truncated { inside: "the body of a part", buffered }),
        };
        result.inspect_err(|error| self.failed = Some(error.clone()))
    }

    fn advance(&mut self) -> Result<(), MultipartError> {
        loop {
            let progressed = match self.state {
                State::Preamble => self.skip_preamble()?,
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => self.read_headers()?,
                State::Body => self.read_body()?,
                State::Closed => return Ok(()),
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// Finds the delimiter from `self.scanned` on; remembers how far it looked when it did not.
    fn find_delimiter(&mut self) -> Option<usize> {
        let from = self.scanned;
        match self.delimiter.find(&self.buf[from..]) {
            Some(at) => {
                self.scanned = 0;
                Some(from + at)
            }
            None => {
                // The delimiter may straddle this chunk and the next: leave its length - 1 unscanned.
                let keep = self.delimiter.needle().len() - 1;
                self.scanned = self.buf.len().saturating_sub(keep).max(from);
                None
            }
        }
    }

    fn skip_preamble(&mut self) -> Result<bool, MultipartError> {
        match self.find_delimiter() {
            Some(at) => {
                let _ = self.buf.split_to(at + self.delimiter.needle().len());
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            None => {
                // The preamble means nothing: keep only what could still start the delimiter.
                let _ = self.buf.split_to(self.scanned);
                self.scanned = 0;
                Ok(false)
            }
        }
    }

    fn after_delimiter(&mut self) -> Result<bool, MultipartError> {
        // Transport padding (RFC 2046: linear white space) may follow a delimiter.
        let padding = self.buf.iter().take_while(|b| matches!(b, b' ' | b'\t')).count();
        if padding > self.limits.max_header_bytes {
            return Err(MultipartError::HeadersTooLarge { limit: self.limits.max_header_bytes });
        }
        let rest = &self.buf[padding..];
        let line_break = match rest {
            [b'-', b'-', ..] => {
                self.buf.clear();
                self.state = State::Closed;
                return Ok(true);
            }
            [b'\r', b'\n', ..] => 2,
            [b'\n', ..] => {
                self.headers.deviations.push("bare LF after a boundary delimiter".into());
                1
            }
            [] | [b'\r'] | [b'-'] => return Ok(false),
            _ => {
                let found = String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned();
                return Err(MultipartError::BadDelimiter { found });
            }
        };
        let _ = self.buf.split_to(padding + line_break);
        self.state = State::Headers;
        self.scanned = 0;
        Ok(true)
    }

    /// Headers end at the first empty line; the scan goes line by line (memchr for `\n`), resuming at the
    /// line that was still incomplete.
    fn read_headers(&mut self) -> Result<bool, MultipartError> {
        let limit = self.limits.max_header_bytes;
        let mut line_start = self.scanned;
        let (end, after_blank_line) = loop {
            let Some(at) = memchr::memchr(b'\n', &self.buf[line_start..]) else {
                // Every complete line was checked; what is pending counts only if it cannot be the blank
                // line that ends the block, which a chunk may have cut after its `\r`.
                if self.buf.len() > limit && !matches!(&self.buf[line_start..], b"" | b"\r") {
                    return Err(MultipartError::HeadersTooLarge { limit });
                }
                self.scanned = line_start;
                return Ok(false);
            };
            let line_end = line_start + at;
            if matches!(&self.buf[line_start..line_end], b"" | b"\r") {
                break (line_start, line_end + 1);
            }
            if line_end > limit {
                return Err(MultipartError::HeadersTooLarge { limit });
            }
            line_start = line_end + 1;
        };
        let block = self.buf.split_to(after_blank_line);
        let bare_lf = memchr::memchr_iter(b'\n', &block).any(|at| at == 0 || block[at - 1] != b'\r');
        if bare_lf {
            self.headers.deviations.push("bare LF line ends in part headers".into());
        }
        parse_headers(&block[..end], &mut self.headers)?;
        self.state = State::Body;
        self.scanned = 0;
        Ok(true)
    }

    fn read_body(&mut self) -> Result<bool, MultipartError> {
        let limit = self.limits.max_part_bytes;
        match self.find_delimiter() {
            Some(at) if at > limit => Err(MultipartError::PartTooLarge { limit }),
            Some(at) => {
                let body = self.buf.split_to(at).freeze();
                let _ = self.buf.split_to(self.delimiter.needle().len());
                let headers = std::mem::take(&mut self.headers);
                self.ready.push_back(Part { headers, body });
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            // Everything before `scanned` is body for sure.
            None if self.scanned > limit => Err(MultipartError::PartTooLarge { limit }),
            None => Ok(false),
        }
    }
}

/// Interprets the headers AVS uses; others are skipped. Folded lines (RFC 5322 obsolete syntax) are
/// joined to the header they continue.
fn parse_headers(block: &[u8], headers: &mut PartHeaders) -> Result<(), MultipartError> {
    // from_utf8 first: it checks ASCII a word at a time, the lossy conversion byte by byte.
    let text = std::str::from_utf8(block).map_or_else(|_| String::from_utf8_lossy(block), Cow::Borrowed);
    // Every part goes through here: unfolded headers, nearly all of them, are read from the block itself,
    // so that only what is kept is allocated.
    if header_lines(&text).any(|line| line.starts_with([' ', '\t'])) {
        return parse_folded_headers(&text, headers);
    }
    for line in header_lines(&text) {
        let (name, value) = split_field(line)?;
        interpret_field(name, value, headers);
    }
    Ok(())
}

/// Folding is rare enough to afford owned values. Every field is read before any is interpreted, so that
/// the folds are reported before what the fields deviate in, as they always were.
fn parse_folded_headers(text: &str, headers: &mut PartHeaders) -> Result<(), MultipartError> {
    let mut fields: Vec<(&str, String)> = Vec::new();
    for line in header_lines(text) {
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
                headers.deviations.push("folded part header line".into());
                continue;
            }
        }
        let (name, value) = split_field(line)?;
        fields.push((name, value.to_string()));
    }
    for (name, value) in &fields {
        interpret_field(name, value, headers);
    }
    Ok(())
}

fn header_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).filter(|l| !l.is_empty())
}

/// `Name: value` → both trimmed.
fn split_field(line: &str) -> Result<(&str, &str), MultipartError> {
    match line.split_once(':') {
        Some((name, value)) => Ok((name.trim(), value.trim())),
        None => Err(MultipartError::BadHeader { line: line.chars().take(80).collect() }),
    }
}

fn interpret_field(name: &str, value: &str, headers: &mut PartHeaders) {
    let canonical = if name.eq_ignore_ascii_case("Content-Type") {
        headers.content_type = Some(value.to_string());
        "Content-Type"
    } else if name.eq_ignore_ascii_case("Content-ID") {
        let id = value.strip_prefix('<').and_then(|v| v.strip_suffix('>'));
        if id.is_none() {
            headers.deviations.push(format!("Content-ID {value:?} without angle brackets"));
        }
        headers.content_id = Some(id.unwrap_or(value).to_string());
        "Content-ID"
    } else if name.eq_ignore_ascii_case("Content-Disposition") {
        headers.name = disposition_name(value, &mut headers.deviations);
        "Content-Disposition"
    } else {
        return;
    };
    if name != canonical {
        headers.deviations.push(format!("header {name:?} spelled differently from {canonical:?}"));
    }
}

/// `form-data; name="metadata"` → `metadata`.
fn disposition_name(value: &str, deviations: &mut Vec<String>) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (key, raw) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("name") {
            return None;
        }
        let raw = raw.trim();
        match raw.strip_prefix('"').and_then(|r| r.strip_suffix('"')) {
            Some(quoted) => Some(quoted.to_string()),
            None => {
                deviations.push(format!("unquoted form-data name {raw}"));
                Some(raw.to_string())
            }
        }
    })
}

/// The `boundary` parameter of a multipart content type (quoted or not, any case).
pub fn boundary_from_content_type(content_type: &str) -> Option<String> {
    let mut params = content_type.split(';');
    let media_type = params.next()?.trim().to_ascii_lowercase();
    if !media_type.starts_with("multipart/") {
        return None;
    }
    params.find_map(|param| {
        let (key, value) = param.split_once('=')?;
        if !key.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        (!value.is_empty()).then(|| value.to_string())
    })
}

/// Writes multipart bodies; every piece is returned as bytes to send, so a body can be streamed.
#[derive(Debug, Clone)]
pub struct MultipartWriter {
    boundary: String,
}

impl MultipartWriter {
    pub fn new(boundary: impl Into<String>) -> Self {
        MultipartWriter { boundary: boundary.into() }
    }

    /// A boundary made of random hex: it cannot collide with JSON and is vanishingly unlikely in audio.
    pub fn random() -> Self {
        MultipartWriter::new(format!("avs-{}", uuid::Uuid::new_v4().simple()))
    }

    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    pub fn form_data_content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    pub fn related_content_type(&self) -> String {
        format!("multipart/related; boundary={}; type=\"application/json\"", self.boundary)
    }

    fn head(&self, headers: &[(&str, &str)]) -> BytesMut {
        let mut out = BytesMut::with_capacity(128);
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn form_data_head(&self, name: &str, content_type: &str) -> BytesMut {
        let disposition = format!("form-data; name=\"{name}\"");
        self.head(&[("Content-Disposition", &disposition), ("Content-Type", content_type)])
    }

    /// The delimiter and headers of a form-data part whose body is sent next, as it is produced (audio).
    pub fn form_data_part_head(&self, name: &str, content_type: &str) -> Bytes {
        self.form_data_head(name, content_type).freeze()
    }

    pub fn form_data_part(&self, name: &str, content_type: &str, body: &[u8]) -> Bytes {
        let mut out = self.form_data_head(name, content_type);
        out.extend_from_slice(body);
        out.freeze()
    }

    pub fn json_part(&self, json: &[u8]) -> Bytes {
        let mut out = self.head(&[("Content-Type", "application/json; charset=UTF-8")]);
        out.extend_from_slice(json);
        out.freeze()
    }

    pub fn attachment_part(&self, content_id: &str, body: &[u8]) -> Bytes {
        let id = format!("<{content_id}>");
        let mut out = self.head(&[("Content-Type", "application/octet-stream"), ("Content-ID", &id)]);
        out.extend_from_slice(body);
        out.freeze()
    }

    pub fn close(&self) -> Bytes {
        Bytes::from(format!("\r\n--{}--\r\n", self.boundary))
    }

    /// A body that stays open (the downchannel) writes the delimiter *after* each part, so that a part is
    /// complete for the reader as soon as it is sent: `open_stream`, then `stream_*_part` per part.
    pub fn open_stream(&self) -> Bytes {
        Bytes::from(format!("--{}", self.boundary))
    }

    pub fn stream_json_part(&self, json: &[u8]) -> Bytes {
        self.trailing_delimiter(self.json_part(json))
    }

    pub fn stream_attachment_part(&self, content_id: &str, body: &[u8]) -> Bytes {
        self.trailing_delimiter(self.attachment_part(content_id, body))
    }

    /// `\r\n--b\r\n<part>` becomes `\r\n<part>\r\n--b`.
    fn trailing_delimiter(&self, part: Bytes) -> Bytes {
        let lead = 4 + self.boundary.len();
        let mut out = BytesMut::with_capacity(part.len() + 2);
        out.extend_from_slice(&part[lead..]);
        out.extend_from_slice(b"\r\n--");
        out.extend_from_slice(self.boundary.as_bytes());
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEAK: &[u8] = b"{\"directive\":{\"header\":{\"namespace\":\"SpeechSynthesizer\",\"name\":\"Speak\",\"messageId\":\"m2\",\"dialogRequestId\":\"d-1\"},\"payload\":{\"url\":\"cid:TTS_123\",\"format\":\"AUDIO_MPEG\",\"token\":\"t1\"}}}";
    /// Binary that looks like the format: CRLFs, blank lines, dashes, the boundary without the line break
    /// that would make it a delimiter, and a delimiter missing its last character.
    const AUDIO: &[u8] =
        b"ID3\x03\x00\r\n--\r\n\r\nx--------abcde123\r\n----abcde12\r\n--------abcde12\xff\xfb\x90\x00--\r\n-";

    /// Parses `stream` fed in chunks of the given sizes (cycled), then ends it.
    fn parse_chunked(stream: &[u8], boundary: &str, sizes: &[usize]) -> Result<(Vec<Part>, bool), MultipartError> {
        let mut parser = MultipartParser::new(boundary);
        let mut parts = Vec::new();
        let mut rest = stream;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            parser.push(chunk)?;
            while let Some(part) = parser.next_part()? {
                parts.push(part);
            }
            rest = tail;
        }
        parser.finish()?;
        Ok((parts, parser.is_finished()))
    }

    /// Parses `stream` whole, split in two at every byte offset, and one byte at a time, asserting the same
    /// parts every time — and that no part comes out before all of its bytes are in.
    fn parse_every_way(stream: &[u8], boundary: &str) -> (Vec<Part>, bool) {
        let (whole, finished) = parse_chunked(stream, boundary, &[stream.len()]).unwrap();
        for split in 0..=stream.len() {
            let mut parser = MultipartParser::new(boundary);
            parser.push(&stream[..split]).unwrap();
            let mut parts = Vec::new();
            while let Some(part) = parser.next_part().unwrap() {
                parts.push(part);
            }
            let early = parts.len();
            assert_eq!(parts[..], whole[..early], "split at {split}: parts before the split");
            parser.push(&stream[split..]).unwrap();
            while let Some(part) = parser.next_part().unwrap() {
                parts.push(part);
            }
            parser.finish().unwrap();
            assert_eq!(parts, whole, "split at {split}");
            assert_eq!(parser.is_finished(), finished, "split at {split}");
        }
        assert_eq!(parse_chunked(stream, boundary, &[1]).unwrap(), (whole.clone(), finished), "byte by byte");
        assert_eq!(parse_chunked(stream, boundary, &[7, 3, 320]).unwrap(), (whole.clone(), finished));
        (whole, finished)
    }

    fn directive(i: usize) -> String {
        format!("{{\"directive\":{{\"header\":{{\"namespace\":\"Speaker\",\"name\":\"SetVolume\",\"messageId\":\"m{i}\"}},\"payload\":{{\"volume\":{i}}}}}}}")
    }

    #[test]
    fn a_downchannel_with_three_directives_splits_identically_at_every_byte_offset() {
        // As AVS writes it: the body starts with the dashes alone, each part is followed by its delimiter
        // and the close-delimiter never comes.
        let b = "------abcde123";
        let mut stream = format!("--{b}").into_bytes();
        for i in 0..3 {
            let json = directive(i);
            stream.extend_from_slice(
                format!("\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{json}\r\n--{b}").as_bytes(),
            );
        }
        let (parts, finished) = parse_every_way(&stream, b);
        assert!(!finished);
        let bodies: Vec<Bytes> = parts.iter().map(|p| p.body.clone()).collect();
        assert_eq!(bodies, (0..3).map(|i| Bytes::from(directive(i))).collect::<Vec<_>>());
        for part in &parts {
            assert_eq!(part.headers.content_type.as_deref(), Some("application/json; charset=UTF-8"));
            assert!(part.headers.deviations.is_empty(), "{:?}", part.headers.deviations);
        }
    }

    #[test]
    fn a_speak_answer_with_binary_audio_splits_identically_at_every_byte_offset() {
        let w = MultipartWriter::new("------abcde123");
        let stream = [w.json_part(SPEAK), w.attachment_part("TTS_123", AUDIO), w.close()].concat();
        let (parts, finished) = parse_every_way(&stream, w.boundary());
        assert!(finished);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].body, SPEAK);
        assert_eq!(parts[0].headers.content_type.as_deref(), Some("application/json; charset=UTF-8"));
        assert_eq!(parts[1].body, AUDIO);
        assert_eq!(parts[1].headers.content_type.as_deref(), Some("application/octet-stream"));
        assert_eq!(parts[1].headers.content_id.as_deref(), Some("TTS_123"));
    }

    #[test]
    fn a_form_data_event_with_metadata_and_audio_splits_identically_at_every_byte_offset() {
        let w = MultipartWriter::new("this-is-a-boundary");
        let metadata = br#"{"context":[],"event":{"header":{"namespace":"SpeechRecognizer","name":"Recognize","messageId":"m-1","dialogRequestId":"d-1"},"payload":{"profile":"CLOSE_TALK","format":"AUDIO_L16_RATE_16000_CHANNELS_1"}}}"#;
        // 16-bit PCM containing every byte value, so CR, LF and '-' all occur, in pairs too.
        let audio: Vec<u8> = (0..1600u32).map(|i| (i * 7 % 256) as u8).chain(*b"\r\n--this-is-a-boundar").collect();
        let mut stream = w.form_data_part("metadata", "application/json; charset=UTF-8", metadata).to_vec();
        stream.extend_from_slice(&w.form_data_part_head("audio", "application/octet-stream"));
        for frame in audio.chunks(320) {
            stream.extend_from_slice(frame);
        }
        stream.extend_from_slice(&w.close());
        let (parts, finished) = parse_every_way(&stream, w.boundary());
        assert!(finished);
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].headers.name.as_deref(), &parts[0].body[..]), (Some("metadata"), &metadata[..]));
        assert_eq!((parts[1].headers.name.as_deref(), &parts[1].body[..]), (Some("audio"), &audio[..]));
        assert!(parts.iter().all(|p| p.headers.deviations.is_empty()));
    }

    #[test]
    fn the_writer_round_trips_through_the_parser() {
        let w = MultipartWriter::random();
        assert!(w.form_data_content_type().starts_with("multipart/form-data; boundary=avs-"));
        assert_eq!(boundary_from_content_type(&w.form_data_content_type()).as_deref(), Some(w.boundary()));
        assert_eq!(boundary_from_content_type(&w.related_content_type()).as_deref(), Some(w.boundary()));
        assert!(w.related_content_type().ends_with("; type=\"application/json\""));
        let stream = [
            w.json_part(b"{}"),
            w.attachment_part("cid-1", b""),
            w.form_data_part("metadata", "application/json", b"{\"a\":1}"),
            w.form_data_part_head("audio", "application/octet-stream"),
            Bytes::from_static(b"\x00\x01"),
            w.close(),
        ]
        .concat();
        let (parts, finished) = parse_chunked(&stream, w.boundary(), &[5]).unwrap();
        assert!(finished);
        let seen: Vec<_> = parts
            .iter()
            .map(|p| {
                let h = &p.headers;
                (h.content_type.as_deref(), h.content_id.as_deref(), h.name.as_deref(), &p.body[..])
            })
            .collect();
        assert_eq!(
            seen,
            [
                (Some("application/json; charset=UTF-8"), None, None, &b"{}"[..]),
                (Some("application/octet-stream"), Some("cid-1"), None, &b""[..]),
                (Some("application/json"), None, Some("metadata"), &b"{\"a\":1}"[..]),
                (Some("application/octet-stream"), None, Some("audio"), &b"\x00\x01"[..]),
            ]
        );
        assert!(parts.iter().all(|p| p.headers.deviations.is_empty()));
        assert_ne!(MultipartWriter::random().boundary(), w.boundary());
    }

    #[test]
    fn an_open_stream_delivers_each_part_as_soon_as_it_is_written() {
        let w = MultipartWriter::new("dc");
        let mut parser = MultipartParser::new(w.boundary());
        parser.push(&w.open_stream()).unwrap();
        assert_eq!(parser.next_part().unwrap(), None);
        parser.push(&w.stream_json_part(b"{\"a\":1}")).unwrap();
        assert_eq!(parser.next_part().unwrap().unwrap().body, &b"{\"a\":1}"[..]);
        parser.push(&w.stream_attachment_part("x", b"\r\n--d")).unwrap();
        let part = parser.next_part().unwrap().unwrap();
        assert_eq!((part.headers.content_id.as_deref(), &part.body[..]), (Some("x"), &b"\r\n--d"[..]));
        assert_eq!(parser.finish(), Ok(()), "a downchannel may end between parts");
        assert!(!parser.is_finished());
    }

    #[test]
    fn lenient_input_is_accepted_and_counted() {
        let stream = b"preamble\r\n--b  \ncontent-disposition: form-data; name=metadata\ncontent-type: application/json;\n  charset=UTF-8\nContent-ID: raw\n\n{}\r\n--b--\r\nepilogue";
        let (parts, finished) = parse_every_way(stream, "b");
        assert!(finished);
        assert_eq!(parts.len(), 1);
        let h = &parts[0].headers;
        assert_eq!(h.name.as_deref(), Some("metadata"));
        assert_eq!(h.content_type.as_deref(), Some("application/json; charset=UTF-8"));
        assert_eq!(h.content_id.as_deref(), Some("raw"));
        assert_eq!(parts[0].body, &b"{}"[..]);
        let deviations = h.deviations.join("; ");
        for expected in
            ["bare LF after", "bare LF line ends", "unquoted", "\"content-type\"", "folded", "angle brackets"]
        {
            assert!(deviations.contains(expected), "{expected} not in {deviations}");
        }
    }

    #[test]
    fn a_part_without_headers_and_an_empty_body_are_fine() {
        let (parts, _) = parse_every_way(b"--b\r\n\r\nno headers\r\n--b\r\nContent-Type: x\r\n\r\n\r\n--b--", "b");
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].headers.clone(), &parts[0].body[..]), (PartHeaders::default(), &b"no headers"[..]));
        assert_eq!(parts[1].body, &b""[..]);
    }

    #[test]
    fn a_stream_that_ends_mid_part_is_an_error_at_finish() {
        let cases: [(&[u8], &str); 4] = [
            (b"--b\r\nContent-Type: x\r\n\r\nbody", "the body of a part"),
            (b"--b\r\nContent-Type: x\r\n", "the headers of a part"),
            (b"--b\r\nContent-Type: x", "the headers of a part"),
            (b"--b-", "a boundary delimiter line"),
        ];
        for (stream, inside) in cases {
            let mut parser = MultipartParser::new("b");
            parser.push(stream).unwrap();
            let err = parser.finish().unwrap_err();
            assert!(matches!(err, MultipartError::Truncated { inside: i, .. } if i == inside), "{err}");
            assert!(err.to_string().contains(inside), "{err}");
        }
        // Ending right after a delimiter is how a downchannel ends; ending before any data is an empty body.
        for stream in [&b""[..], b"--b", b"--b\r\n", b"--b\r\nContent-Type: x\r\n\r\n{}\r\n--b"] {
            let mut parser = MultipartParser::new("b");
            parser.push(stream).unwrap();
            assert_eq!(parser.finish(), Ok(()), "{:?}", String::from_utf8_lossy(stream));
        }
    }

    #[test]
    fn garbage_instead_of_a_delimiter_is_named() {
        let err = parse_chunked(b"--b\r\n\r\nx\r\n--bXYZ\r\n", "b", &[100]).unwrap_err();
        assert_eq!(err, MultipartError::BadDelimiter { found: "XYZ\r\n".into() });
        assert!(err.to_string().contains("boundary"), "{err}");
        let err = parse_chunked(b"HTTP/1.1 500 oops, not multipart at all", "b", &[100]).unwrap_err();
        assert!(matches!(&err, MultipartError::NoDelimiter { received: 39, .. }), "{err}");
        assert!(err.to_string().contains("\"--b\""), "{err}");
        let err = parse_chunked(b"--b\r\nno colon here\r\n\r\nx\r\n--b--", "b", &[100]).unwrap_err();
        assert_eq!(err, MultipartError::BadHeader { line: "no colon here".into() });
    }

    #[test]
    fn parts_and_headers_over_the_limits_are_refused() {
        let limits = Limits { max_part_bytes: 10, max_header_bytes: 64 };
        let parse = |stream: &[u8], chunk: usize| {
            let mut parser = MultipartParser::with_limits("b", limits);
            stream.chunks(chunk).try_for_each(|c| parser.push(c)).and_then(|()| parser.finish())
        };
        for chunk in [1, 3, 1000] {
            assert_eq!(parse(b"--b\r\n\r\n0123456789\r\n--b--", chunk), Ok(()), "exactly the limit");
            assert_eq!(
                parse(b"--b\r\n\r\n0123456789A\r\n--b--", chunk),
                Err(MultipartError::PartTooLarge { limit: 10 })
            );
            // A body that never ends is refused as soon as it is certainly too large, not at the end.
            let mut endless = MultipartParser::with_limits("b", limits);
            endless.push(b"--b\r\n\r\n").unwrap();
            let pushed = (0..100).map(|_| endless.push(&[b'x'; 3])).position(|r| r.is_err());
            assert!(pushed.is_some_and(|at| at * 3 <= 10 + 3 + 4), "{pushed:?}");
            let long_header = [b"--b\r\nX-Long: ".as_slice(), &[b'h'; 100], b"\r\n\r\n"].concat();
            assert_eq!(parse(&long_header, chunk), Err(MultipartError::HeadersTooLarge { limit: 64 }));
            let unterminated = [b"--b\r\nX-Long: ".as_slice(), &[b'h'; 100]].concat();
            assert_eq!(parse(&unterminated, chunk), Err(MultipartError::HeadersTooLarge { limit: 64 }));
        }
        // Headers right at the limit, cut anywhere — also between the blank line's `\r` and `\n`.
        let at_the_limit = [b"--b\r\nX-Fill: ".as_slice(), &[b'h'; 54], b"\r\n\r\n0123456789\r\n--b--"].concat();
        for chunk in 1..at_the_limit.len() {
            assert_eq!(parse(&at_the_limit, chunk), Ok(()), "chunks of {chunk}");
        }
    }

    #[test]
    fn after_an_error_every_call_repeats_it() {
        let mut parser = MultipartParser::new("b");
        let parsed = parser.push(b"--b\r\n\r\nfirst\r\n--b\r\nbroken header\r\n\r\n");
        let err = MultipartError::BadHeader { line: "broken header".into() };
        assert_eq!(parsed, Err(err.clone()));
        assert_eq!(parser.next_part().unwrap().map(|p| p.body), Some(Bytes::from_static(b"first")));
        assert_eq!(parser.next_part(), Err(err.clone()));
        assert_eq!(parser.push(b"\r\n--b--"), Err(err.clone()));
        assert_eq!(parser.finish(), Err(err));
    }

    /// Random bodies made of the bytes that matter (line breaks, dashes, boundary characters), random part
    /// kinds and random chunking: the parser returns exactly what the writer wrote.
    #[test]
    fn random_streams_in_random_chunks_round_trip() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let w = MultipartWriter::new("-b-");
        for _ in 0..2000 {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for _ in 0..next(4) {
                let body: Vec<u8> = (0..next(40)).map(|_| b"\r\n-b\x00x"[next(6)]).collect();
                if memmem::find(&body, b"\r\n---b-").is_some() {
                    continue; // a body containing the delimiter is not valid multipart
                }
                let part = match next(3) {
                    0 => w.json_part(&body),
                    1 => w.attachment_part("id", &body),
                    _ => w.form_data_part("audio", "application/octet-stream", &body),
                };
                stream.extend_from_slice(&part);
                expected.push(body);
            }
            let closed = next(2) == 0;
            stream.extend_from_slice(&if closed { w.close() } else { Bytes::from_static(b"\r\n---b-") });
            let sizes: Vec<usize> = (0..4).map(|_| 1 + next(50)).collect();
            let (parts, finished) = parse_chunked(&stream, w.boundary(), &sizes)
                .unwrap_or_else(|e| panic!("{e}: {:?} in chunks of {sizes:?}", String::from_utf8_lossy(&stream)));
            let bodies: Vec<&[u8]> = parts.iter().map(|p| &p.body[..]).collect();
            assert_eq!(bodies, expected.iter().map(Vec::as_slice).collect::<Vec<_>>(), "{sizes:?}");
            assert_eq!(finished, closed);
        }
    }

    #[test]
    fn boundaries_are_read_from_content_types() {
        assert_eq!(
            boundary_from_content_type("multipart/related; boundary=abc; type=\"application/json\"").as_deref(),
            Some("abc")
        );
        assert_eq!(
            boundary_from_content_type("multipart/related; type=\"application/json\"; boundary=------abcde123")
                .as_deref(),
            Some("------abcde123")
        );
        assert_eq!(boundary_from_content_type("Multipart/Form-Data;BOUNDARY=\"x y\"").as_deref(), Some("x y"));
        assert_eq!(boundary_from_content_type("application/json"), None);
        assert_eq!(boundary_from_content_type("multipart/related"), None);
        assert_eq!(boundary_from_content_type("multipart/related; boundary=\"\""), None);
    }
}
