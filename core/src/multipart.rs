//! Streaming multipart (RFC 2046) for AVS: the multipart/related downchannel and event answers, and the
//! multipart/form-data bodies of events.
//!
//! Written by hand rather than taken from a crate because the downchannel is a multipart body that never
//! ends: parts must come out as soon as they are complete, from whatever chunking the network produced,
//! without buffering more than one part. The boundary scan is `memchr::memmem` and never rescans bytes.

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_part_bytes: usize,
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_part_bytes: 16 << 20, max_header_bytes: 8 << 10 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MultipartError {
    #[error("part larger than the limit of {limit} bytes")]
    PartTooLarge { limit: usize },
    #[error("part headers larger than the limit of {limit} bytes (no blank line ending them)")]
    HeadersTooLarge { limit: usize },
    #[error("unexpected bytes after a boundary delimiter: {0:?}")]
    BadDelimiter(String),
    #[error("malformed part header line {0:?}")]
    BadHeader(String),
    #[error("the stream ended inside a part")]
    Truncated,
    #[error("data after the closing boundary")]
    AfterClose,
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

pub struct MultipartParser {
    /// `\r\n--boundary`: a body ends where this starts.
    delimiter: Vec<u8>,
    buf: BytesMut,
    state: State,
    /// Bytes of `buf` already scanned without finding what the state looks for.
    scanned: usize,
    headers: PartHeaders,
    limits: Limits,
    ready: VecDeque<Part>,
}

impl MultipartParser {
    pub fn new(boundary: &str) -> Self {
        Self::with_limits(boundary, Limits::default())
    }

    pub fn with_limits(boundary: &str, limits: Limits) -> Self {
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // A stream may start with the delimiter's dashes, without the line break before them.
        let mut buf = BytesMut::with_capacity(8 << 10);
        buf.extend_from_slice(b"\r\n");
        MultipartParser {
            delimiter,
            buf,
            state: State::Preamble,
            scanned: 0,
            headers: PartHeaders::default(),
            limits,
            ready: VecDeque::new(),
        }
    }

    /// Feeds the next bytes of the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), MultipartError> {
        if self.state == State::Closed {
            // Epilogue after the close-delimiter is allowed by RFC 2046 and ignored.
            return Ok(());
        }
        self.buf.extend_from_slice(chunk);
        self.advance()
    }

    /// The next complete part, if one is ready.
    pub fn next_part(&mut self) -> Result<Option<Part>, MultipartError> {
        Ok(self.ready.pop_front())
    }

    /// The close-delimiter has been seen.
    pub fn is_finished(&self) -> bool {
        self.state == State::Closed
    }

    /// The stream ended: fine between parts (a downchannel closed by the server) or after the close;
    /// an error in the middle of a part.
    pub fn finish(&mut self) -> Result<(), MultipartError> {
        match self.state {
            State::Closed | State::Preamble => Ok(()),
            State::AfterDelimiter | State::Headers if self.buf.is_empty() => Ok(()),
            _ => Err(MultipartError::Truncated),
        }
    }

    fn advance(&mut self) -> Result<(), MultipartError> {
        loop {
            let progressed = match self.state {
                State::Preamble => self.skip_preamble(),
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
        match memmem::find(&self.buf[from..], &self.delimiter) {
            Some(at) => {
                self.scanned = 0;
                Some(from + at)
            }
            None => {
                // The delimiter may straddle this chunk and the next: keep its length - 1 unscanned.
                self.scanned = self.buf.len().saturating_sub(self.delimiter.len() - 1);
                None
            }
        }
    }

    fn skip_preamble(&mut self) -> bool {
        match self.find_delimiter() {
            Some(at) => {
                let _ = self.buf.split_to(at + self.delimiter.len());
                self.state = State::AfterDelimiter;
                true
            }
            None => {
                // Keep only what could still start the delimiter.
                let keep_from = self.scanned;
                let _ = self.buf.split_to(keep_from);
                self.scanned = 0;
                false
            }
        }
    }

    fn after_delimiter(&mut self) -> Result<bool, MultipartError> {
        // Transport padding (RFC 2046: linear white space) may follow a delimiter.
        let padding = self.buf.iter().take_while(|b| **b == b' ' || **b == b'\t').count();
        let rest = &self.buf[padding..];
        if rest.len() < 2 {
            return Ok(false);
        }
        if rest.starts_with(b"--") {
            self.buf.clear();
            self.state = State::Closed;
            return Ok(true);
        }
        let line_break = if rest.starts_with(b"\r\n") {
            2
        } else if rest[0] == b'\n' {
            self.headers.deviations.push("bare LF after a boundary".into());
            1
        } else {
            let shown = String::from_utf8_lossy(&rest[..rest.len().min(16)]).into_owned();
            return Err(MultipartError::BadDelimiter(shown));
        };
        let _ = self.buf.split_to(padding + line_break);
        self.state = State::Headers;
        Ok(true)
    }

    fn read_headers(&mut self) -> Result<bool, MultipartError> {
        // A part without headers starts its body right away (the blank line alone).
        let (end, terminator) = if self.buf.starts_with(b"\r\n") {
            (0, 2)
        } else if let Some(at) = memmem::find(&self.buf, b"\r\n\r\n") {
            (at, 4)
        } else if let Some(at) = memmem::find(&self.buf, b"\n\n") {
            self.headers.deviations.push("bare LF line ends in part headers".into());
            (at, 2)
        } else {
            if self.buf.len() > self.limits.max_header_bytes {
                return Err(MultipartError::HeadersTooLarge { limit: self.limits.max_header_bytes });
            }
            return Ok(false);
        };
        if end > self.limits.max_header_bytes {
            return Err(MultipartError::HeadersTooLarge { limit: self.limits.max_header_bytes });
        }
        let block = self.buf.split_to(end + terminator);
        parse_headers(&block[..end], &mut self.headers)?;
        self.state = State::Body;
        self.scanned = 0;
        Ok(true)
    }

    fn read_body(&mut self) -> Result<bool, MultipartError> {
        match self.find_delimiter() {
            Some(at) => {
                if at > self.limits.max_part_bytes {
                    return Err(MultipartError::PartTooLarge { limit: self.limits.max_part_bytes });
                }
                let body = self.buf.split_to(at).freeze();
                let _ = self.buf.split_to(self.delimiter.len());
                let headers = std::mem::take(&mut self.headers);
                self.ready.push_back(Part { headers, body });
                self.state = State::AfterDelimiter;
                Ok(true)
            }
            None if self.buf.len() > self.limits.max_part_bytes + self.delimiter.len() => {
                Err(MultipartError::PartTooLarge { limit: self.limits.max_part_bytes })
            }
            None => Ok(false),
        }
    }
}

fn parse_headers(block: &[u8], headers: &mut PartHeaders) -> Result<(), MultipartError> {
    let text = String::from_utf8_lossy(block);
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            return Err(MultipartError::BadHeader(line.chars().take(80).collect()));
        };
        let (name, value) = (name.trim(), value.trim());
        let canonical = match name.to_ascii_lowercase().as_str() {
            "content-type" => {
                headers.content_type = Some(value.to_string());
                "Content-Type"
            }
            "content-id" => {
                headers.content_id = Some(value.trim_start_matches('<').trim_end_matches('>').to_string());
                "Content-ID"
            }
            "content-disposition" => {
                headers.name = disposition_name(value, &mut headers.deviations);
                "Content-Disposition"
            }
            _ => continue,
        };
        if name != canonical {
            headers.deviations.push(format!("header {name:?} spelled differently from {canonical:?}"));
        }
    }
    Ok(())
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

    pub fn form_data_part_head(&self, name: &str, content_type: &str) -> Bytes {
        let disposition = format!("form-data; name=\"{name}\"");
        self.head(&[("Content-Disposition", &disposition), ("Content-Type", content_type)]).freeze()
    }

    pub fn form_data_part(&self, name: &str, content_type: &str, body: &[u8]) -> Bytes {
        let mut out = BytesMut::from(&self.form_data_part_head(name, content_type)[..]);
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
    /// Binary that looks like the format: CRLFs, dashes, a near-boundary.
    const AUDIO: &[u8] = b"ID3\x03\x00\r\n--\r\n----abcde12\r\n\r\n\xff\xfb\x90\x00--abcde123x";

    fn parse_all(stream: &[u8], boundary: &str, chunks: &[usize]) -> Result<Vec<Part>, MultipartError> {
        let mut parser = MultipartParser::new(boundary);
        let mut parts = Vec::new();
        let mut rest = stream;
        for &size in chunks.iter().cycle() {
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
        Ok(parts)
    }

    fn speak_response() -> (Vec<u8>, MultipartWriter) {
        let w = MultipartWriter::new("------abcde123");
        let mut s = Vec::new();
        s.extend_from_slice(&w.json_part(SPEAK));
        s.extend_from_slice(&w.attachment_part("TTS_123", AUDIO));
        s.extend_from_slice(&w.close());
        (s, w)
    }

    #[test]
    fn a_speak_answer_splits_identically_at_every_byte_offset() {
        let (stream, w) = speak_response();
        let whole = parse_all(&stream, w.boundary(), &[stream.len()]).unwrap();
        assert_eq!(whole.len(), 2);
        assert_eq!(whole[0].body, SPEAK);
        assert_eq!(whole[0].headers.content_type.as_deref(), Some("application/json; charset=UTF-8"));
        assert_eq!(whole[1].body, AUDIO);
        assert_eq!(whole[1].headers.content_id.as_deref(), Some("TTS_123"));
        for split in 1..stream.len() {
            let mut parser = MultipartParser::new(w.boundary());
            parser.push(&stream[..split]).unwrap();
            parser.push(&stream[split..]).unwrap();
            let mut parts = Vec::new();
            while let Some(p) = parser.next_part().unwrap() {
                parts.push(p);
            }
            assert!(parser.is_finished());
            assert_eq!(parts, whole, "split at {split}");
        }
        assert_eq!(parse_all(&stream, w.boundary(), &[1]).unwrap(), whole, "one byte at a time");
        assert_eq!(parse_all(&stream, w.boundary(), &[7, 3, 320]).unwrap(), whole);
    }

    #[test]
    fn a_downchannel_yields_each_directive_as_it_completes_and_never_closes() {
        let w = MultipartWriter::new("downchannel-boundary");
        let directives: Vec<String> = (0..3)
            .map(|i| format!("{{\"directive\":{{\"header\":{{\"namespace\":\"Speaker\",\"name\":\"SetVolume\",\"messageId\":\"m{i}\"}},\"payload\":{{\"volume\":{i}}}}}}}"))
            .collect();
        // Servers start the body with the dashes alone, without a line break before them.
        let mut stream = w.json_part(directives[0].as_bytes())[2..].to_vec();
        stream.extend_from_slice(&w.json_part(directives[1].as_bytes()));
        stream.extend_from_slice(&w.json_part(directives[2].as_bytes()));
        stream.extend_from_slice(b"\r\n--downchannel-boundary\r\n");
        for split in 1..stream.len() {
            let mut parser = MultipartParser::new(w.boundary());
            parser.push(&stream[..split]).unwrap();
            let mut seen = Vec::new();
            while let Some(p) = parser.next_part().unwrap() {
                seen.push(p.body);
            }
            parser.push(&stream[split..]).unwrap();
            while let Some(p) = parser.next_part().unwrap() {
                seen.push(p.body);
            }
            assert_eq!(seen, directives.iter().map(|d| Bytes::from(d.clone())).collect::<Vec<_>>(), "split at {split}");
            assert!(!parser.is_finished());
            assert_eq!(parser.finish(), Ok(()), "a downchannel may end between parts");
        }
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
        assert_eq!(parser.finish(), Ok(()));
    }

    #[test]
    fn a_form_data_event_with_streamed_audio_round_trips() {
        let w = MultipartWriter::random();
        let metadata =
            br#"{"event":{"header":{"namespace":"SpeechRecognizer","name":"Recognize","messageId":"m"},"payload":{}}}"#;
        let audio: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        let mut stream = w.form_data_part("metadata", "application/json; charset=UTF-8", metadata).to_vec();
        stream.extend_from_slice(&w.form_data_part_head("audio", "application/octet-stream"));
        for chunk in audio.chunks(320) {
            stream.extend_from_slice(chunk);
        }
        stream.extend_from_slice(&w.close());
        let parts = parse_all(&stream, w.boundary(), &[320, 1000, 1]).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].headers.name.as_deref(), Some("metadata"));
        assert_eq!(parts[0].body, &metadata[..]);
        assert_eq!(parts[1].headers.name.as_deref(), Some("audio"));
        assert_eq!(parts[1].body, audio);
        assert!(parts.iter().all(|p| p.headers.deviations.is_empty()));
    }

    #[test]
    fn lenient_input_is_accepted_and_counted() {
        let stream = b"preamble\r\n--b\ncontent-disposition: form-data; name=metadata\ncontent-type: application/json\n\n{}\r\n--b--";
        let parts = parse_all(stream, "b", &[stream.len()]).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].headers.name.as_deref(), Some("metadata"));
        assert_eq!(parts[0].body, &b"{}"[..]);
        let deviations = parts[0].headers.deviations.join("; ");
        for expected in ["bare LF", "unquoted", "content-type"] {
            assert!(deviations.contains(expected), "{deviations}");
        }
    }

    #[test]
    fn malformed_streams_get_clear_errors() {
        let err = parse_all(b"--b\r\nContent-Type: x\r\n\r\nbody", "b", &[100]).unwrap_err();
        assert_eq!(err, MultipartError::Truncated);
        let err = parse_all(b"--bXYZ\r\n", "b", &[100]).unwrap_err();
        assert!(matches!(err, MultipartError::BadDelimiter(_)), "{err}");
        let err = parse_all(b"--b\r\nno colon here\r\n\r\nx\r\n--b--", "b", &[100]).unwrap_err();
        assert!(matches!(err, MultipartError::BadHeader(_)), "{err}");
        let limits = Limits { max_part_bytes: 10, max_header_bytes: 64 };
        let mut parser = MultipartParser::with_limits("b", limits);
        parser.push(b"--b\r\n\r\n").unwrap();
        assert_eq!(parser.push(&[b'x'; 64]), Err(MultipartError::PartTooLarge { limit: 10 }));
        let mut parser = MultipartParser::with_limits("b", limits);
        assert_eq!(
            parser.push(&[b"--b\r\nX-Long: ".as_slice(), &[b'h'; 100]].concat()),
            Err(MultipartError::HeadersTooLarge { limit: 64 })
        );
    }

    #[test]
    fn boundaries_are_read_from_content_types() {
        assert_eq!(
            boundary_from_content_type("multipart/related; boundary=abc; type=\"application/json\"").as_deref(),
            Some("abc")
        );
        assert_eq!(boundary_from_content_type("Multipart/Form-Data;BOUNDARY=\"x y\"").as_deref(), Some("x y"));
        assert_eq!(boundary_from_content_type("application/json"), None);
        assert_eq!(boundary_from_content_type("multipart/related"), None);
    }
}
