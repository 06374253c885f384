//! A directive parsed once from the bytes of its multipart part: one borrowing parse of the whole part
//! (`schema::Document`) gives the header, and the payload the schema check validates. The payload is
//! kept as a byte range of the original buffer, so routing copies nothing and the plugin is handed
//! slices of the same bytes.

use std::ops::Range;
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use arcstr::{ArcStr, Substr};
use bytes::Bytes;

use crate::schema::{Document, DocumentNode};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("directive is not UTF-8")]
    NotUtf8,
    #[error("directive envelope is invalid: {0}")]
    Invalid(String),
}

#[derive(Debug)]
pub struct DirectiveMessage {
    raw: Bytes,
    /// The header's namespace, name, messageId and dialogRequestId (empty when absent), one after the
    /// other: one allocation instead of four on every directive, shared by reference with what reports
    /// on the directive once it is handled.
    header: ArcStr,
    /// Where namespace, name and messageId end in `header`.
    header_ends: [usize; 3],
    payload: Range<usize>,
    /// When its part arrived (was parsed), for dispatch latency.
    arrived: Instant,
    /// Its place among the directives the runtime holds at once, given back when the last reference to
    /// the directive goes (it was handled, dropped or refused): what makes the downchannel reader wait.
    in_flight: Option<OwnedSemaphorePermit>,
}

impl DirectiveMessage {
    pub fn parse(raw: Bytes) -> Result<Self, EnvelopeError> {
        let arrived = Instant::now();
        let document = Self::document(&raw)?;
        Self::from_document(&raw, &document, arrived).map(|(directive, _)| directive)
    }

    /// The whole part parsed once: the envelope is read from it, and the payload it holds is what the
    /// schema check validates, so the payload is not parsed a second time.
    pub fn document(raw: &Bytes) -> Result<Document<'_>, EnvelopeError> {
        let text = std::str::from_utf8(raw).map_err(|_| EnvelopeError::NotUtf8)?;
        Document::parse(text).map_err(|e| EnvelopeError::Invalid(e.to_string()))
    }

    /// The directive `document` (parsed from `raw`) holds, and its payload within the document.
    pub fn from_document<'d>(
        raw: &Bytes,
        document: &'d Document<'_>,
        arrived: Instant,
    ) -> Result<(Self, DocumentNode<'d>), EnvelopeError> {
        let invalid = |why: String| EnvelopeError::Invalid(why);
        let object = |node: Option<DocumentNode<'d>>, field: &str| match node {
            Some(node) if node.is_object() => Ok(node),
            Some(_) => Err(invalid(format!("{field} is not a JSON object"))),
            None => Err(invalid(format!("missing field `{field}`"))),
        };
        let directive = object(document.root().member("directive"), "directive")?;
        let header = object(directive.member("header"), "header")?;
        let payload = object(directive.member("payload"), "payload")?;
        let text = |field: &str| match header.member(field) {
            Some(node) => node.as_str().ok_or_else(|| invalid(format!("header field `{field}` is not a string"))),
            None => Err(invalid(format!("missing field `{field}`"))),
        };
        let (namespace, name, message_id) = (text("namespace")?, text("name")?, text("messageId")?);
        if namespace.is_empty() || name.is_empty() || message_id.is_empty() {
            return Err(invalid("header namespace, name and messageId must not be empty".into()));
        }
        let dialog_request_id = match header.member("dialogRequestId") {
            Some(node) if node.is_null() => None,
            Some(_) => Some(text("dialogRequestId")?).filter(|d| !d.is_empty()),
            None => None,
        };
        let key = directive
            .key_in_text("payload")
            .ok_or_else(|| invalid("the payload's key is written with escapes".into()))?;
        let key_end = (key.as_ptr() as usize)
            .checked_sub(raw.as_ptr() as usize)
            .map(|start| start + key.len())
            .filter(|end| *end < raw.len())
            .ok_or_else(|| invalid("the document was not parsed from this part".into()))?;
        // AVS writes the payload last in the directive, and the directive last in the message: the payload
        // then ends at the third closing brace from the end, and its contents need no scan. "Last" is the
        // very member found (a key written twice must not pair one member's start with another's end).
        let is_last = |object: DocumentNode<'d>, name: &str| match (object.key_in_text(name), object.last_member_name())
        {
            (Some(found), Some(last)) => std::ptr::eq(found, last),
            _ => false,
        };
        let written_last = is_last(directive, "payload") && is_last(document.root(), "directive");
        let payload_text = match written_last {
            true => value_after_key(raw, key_end).zip(object_end_from_last(raw)).map(|(start, end)| start..end),
            false => value_after_key(raw, key_end).and_then(|start| object_end(raw, start).map(|end| start..end)),
        }
        .ok_or_else(|| invalid("the payload's object could not be delimited".into()))?;
        let pieces = [namespace, name, message_id, dialog_request_id.unwrap_or("")];
        let header = ArcStr::init_with(pieces.iter().map(|p| p.len()).sum(), |text| {
            let mut at = 0;
            for piece in pieces {
                text[at..at + piece.len()].copy_from_slice(piece.as_bytes());
                at += piece.len();
            }
        })
        .expect("the pieces are str");
        let name_end = namespace.len() + name.len();
        let header_ends = [namespace.len(), name_end, name_end + message_id.len()];
        let message =
            DirectiveMessage { header, header_ends, payload: payload_text, raw: raw.clone(), arrived, in_flight: None };
        Ok((message, payload))
    }

    pub fn namespace(&self) -> &str {
        &self.header[..self.header_ends[0]]
    }

    pub fn name(&self) -> &str {
        &self.header[self.header_ends[0]..self.header_ends[1]]
    }

    pub fn message_id(&self) -> &str {
        &self.header[self.header_ends[1]..self.header_ends[2]]
    }

    /// Namespace, name and messageId as references to the directive's own header text: whatever
    /// reports on the directive after it was handled keeps them without copying.
    pub(crate) fn shared_ids(&self) -> [Substr; 3] {
        let [namespace, name, message_id] = self.header_ends;
        [self.header.substr(..namespace), self.header.substr(namespace..name), self.header.substr(name..message_id)]
    }

    /// None when the header has none (AVS sends none outside a dialog, or an empty one).
    pub fn dialog_request_id(&self) -> Option<&str> {
        Some(&self.header[self.header_ends[2]..]).filter(|d| !d.is_empty())
    }

    /// The payload object's JSON text.
    pub fn payload(&self) -> &str {
        // parse() checked UTF-8 and the range lies on the RawValue's char boundaries.
        std::str::from_utf8(&self.raw[self.payload.clone()]).unwrap_or("{}")
    }

    /// Takes `permit` along until the directive is dropped.
    pub(crate) fn hold(&mut self, permit: OwnedSemaphorePermit) {
        self.in_flight = Some(permit);
    }

    pub fn arrived(&self) -> Instant {
        self.arrived
    }

    /// The whole directive as received (for `unparsedDirective` in ExceptionEncountered).
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }
}

// The helpers below read text known to be valid JSON (it was parsed), so they only tell strings from
// structure.

fn is_whitespace(b: &u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Where the value of a member starts, given where the member's key ends.
fn value_after_key(text: &[u8], key_end: usize) -> Option<usize> {
    let skip_whitespace =
        |at: usize| at + text.get(at..).unwrap_or_default().iter().take_while(|b| is_whitespace(b)).count();
    let colon = skip_whitespace(key_end + 1); // past the key's closing quote
    (text.get(colon) == Some(&b':')).then(|| skip_whitespace(colon + 1))
}

/// Just past the innermost of the three objects that close the text together.
fn object_end_from_last(text: &[u8]) -> Option<usize> {
    let mut end = text.len();
    for _ in 0..3 {
        end = text[..end].iter().rposition(|b| !is_whitespace(b))?;
        if text[end] != b'}' {
            return None;
        }
    }
    Some(end + 1)
}

/// Just past the object that starts at `start`: memchr jumps over the strings, which make up most of a
/// payload.
fn object_end(text: &[u8], start: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut at = start;
    loop {
        let found = at + memchr::memchr3(b'"', b'{', b'}', &text[at..])?;
        at = found + 1;
        match text[found] {
            b'"' => loop {
                let quote_or_escape = at + memchr::memchr2(b'"', b'\\', &text[at..])?;
                if text[quote_or_escape] == b'"' {
                    at = quote_or_escape + 1;
                    break;
                }
                at = quote_or_escape + 2; // the escaped character, whatever it is
            },
            b'{' => depth += 1,
            _ => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_header_and_keeps_the_payload_text() {
        let raw = br#"{"directive":{"header":{"namespace":"Speaker","name":"SetVolume","messageId":"m-1","dialogRequestId":"d-1"},"payload":{"volume":25}}}"#;
        let d = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!((d.namespace(), d.name(), d.message_id()), ("Speaker", "SetVolume", "m-1"));
        assert_eq!(d.dialog_request_id(), Some("d-1"));
        assert_eq!(d.payload(), r#"{"volume":25}"#);
    }

    #[test]
    fn reports_share_the_header_text_instead_of_copying_it() {
        let raw = br#"{"directive":{"header":{"namespace":"Speaker","name":"SetVolume","messageId":"m-1","dialogRequestId":"d-1"},"payload":{"volume":25}}}"#;
        let d = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap();
        let [namespace, name, message_id] = d.shared_ids();
        assert_eq!([namespace.as_str(), name.as_str(), message_id.as_str()], ["Speaker", "SetVolume", "m-1"]);
        for id in [&namespace, &name, &message_id] {
            assert!(ArcStr::ptr_eq(id.parent(), &d.header), "{id} is a view of the directive's own header");
        }
    }

    #[test]
    fn payload_before_header_and_escaped_strings_work() {
        let raw = br#"{"directive":{"payload":{"url":"cid:a\"b"},"header":{"namespace":"Speech\u0053ynthesizer","name":"Speak","messageId":"x"}}}"#;
        let d = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap();
        assert_eq!(d.namespace(), "SpeechSynthesizer");
        assert_eq!(d.payload(), r#"{"url":"cid:a\"b"}"#);
        assert_eq!(d.dialog_request_id(), None);
    }

    #[test]
    fn the_payload_range_ends_at_its_own_brace_whatever_its_strings_hold() {
        let payload = r#"{ "a" : "}{\\", "b":{"c":[{"d":"\"}"}, "]"]} , "e":{}}"#;
        let raw = format!(
            r#"{{ "directive" : {{ "header":{{"namespace":"A","name":"B","messageId":"m"}}, "payload"
                 :  {payload} }}, "after": {{"x":"}}"}} }}"#
        );
        let d = DirectiveMessage::parse(Bytes::from(raw)).unwrap();
        assert_eq!(d.payload(), payload);
        let value: serde_json::Value = serde_json::from_str(d.payload()).unwrap();
        assert_eq!(value["b"]["c"][0]["d"], "\"}");
    }

    #[test]
    fn a_payload_written_last_ends_where_its_forward_scan_ends() {
        let payload = r#"{"a":{"b":"}}}"},"c":[{}]}"#;
        let raw = format!("{{\"directive\":{{\"header\":{{\"namespace\":\"A\",\"name\":\"B\",\"messageId\":\"m\"}},\"payload\": {payload} \n }}\r\n}}\n");
        let d = DirectiveMessage::parse(Bytes::from(raw.clone())).unwrap();
        assert_eq!(d.payload(), payload);
        let start = raw.find(payload).unwrap();
        assert_eq!(object_end(raw.as_bytes(), start), Some(start + payload.len()), "both ways agree");
    }

    #[test]
    fn keys_written_twice_never_mix_one_payload_with_another() {
        let header = r#"{"namespace":"A","name":"B","messageId":"m"}"#;
        for raw in [
            format!(r#"{{"directive":{{"header":{header},"payload":{{"a":1}}}},"directive":{{"payload":{{"b":2}}}}}}"#),
            format!(r#"{{"directive":{{"header":{header},"payload":{{"a":1}},"payload":{{"b":2}}}}}}"#),
        ] {
            let d = DirectiveMessage::parse(Bytes::from(raw)).unwrap();
            assert_eq!(d.payload(), r#"{"a":1}"#, "the first, as the schema check sees it");
        }
    }

    #[test]
    fn a_payload_key_written_with_escapes_is_refused_by_name() {
        let raw = br#"{"directive":{"header":{"namespace":"A","name":"B","messageId":"m"},"p\u0061yload":{}}}"#;
        let err = DirectiveMessage::parse(Bytes::from_static(raw)).unwrap_err();
        assert!(err.to_string().contains("escapes"), "{err}");
    }

    #[test]
    fn header_fields_must_be_strings_and_dialog_request_id_may_be_null() {
        let with = |header: &str| {
            let raw = format!(r#"{{"directive":{{"header":{header},"payload":{{}}}}}}"#);
            DirectiveMessage::parse(Bytes::from(raw))
        };
        let err = with(r#"{"namespace":5,"name":"B","messageId":"m"}"#).unwrap_err();
        assert!(err.to_string().contains("`namespace` is not a string"), "{err}");
        let d = with(r#"{"namespace":"A","name":"B","messageId":"m","dialogRequestId":null}"#).unwrap();
        assert_eq!(d.dialog_request_id(), None);
        let err = with(r#"{"namespace":"A","name":"B","messageId":"m","dialogRequestId":7}"#).unwrap_err();
        assert!(err.to_string().contains("`dialogRequestId` is not a string"), "{err}");
        assert!(with("[]").unwrap_err().to_string().contains("header is not a JSON object"));
    }

    #[test]
    fn rejects_broken_envelopes_with_a_reason() {
        for (raw, want) in [
            (&b"{\"directive\":{}}"[..], "missing field"),
            (b"not json", "expected"),
            (
                b"{\"directive\":{\"header\":{\"namespace\":\"A\",\"name\":\"B\",\"messageId\":\"\"},\"payload\":{}}}",
                "must not be empty",
            ),
            (
                b"{\"directive\":{\"header\":{\"namespace\":\"A\",\"name\":\"B\",\"messageId\":\"m\"},\"payload\":[]}}",
                "not a JSON object",
            ),
            (b"\xff\xfe", "UTF-8"),
        ] {
            let err = DirectiveMessage::parse(Bytes::copy_from_slice(raw)).unwrap_err();
            assert!(err.to_string().contains(want), "{err} should mention {want}");
        }
    }
}
