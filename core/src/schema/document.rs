//! A JSON message parsed for schema validation, without building a `serde_json::Value`.
//!
//! Written here rather than taken from a crate because `Value` measurably falls short on the directive
//! path: it allocates every string and every object (a `BTreeMap` node) of a payload, only to free them
//! after validation, and profiling showed those allocations to be most of the cost of checking a
//! directive. jsonschema validates any representation that implements its `json` traits, so serde_json
//! still does the parsing, into one flat vector of entries whose strings borrow from the message text:
//! one allocation per message, plus one per string that holds escapes.

use std::borrow::Cow;
use std::fmt;

use jsonschema::json::{cmp, Array, Json, Node, NodeIdentity, Object};
use jsonschema::types::JsonType;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// A parsed JSON document. A key that occurs twice in one object is listed twice, and a lookup finds
/// the first (a `Value` keeps the last; a plugin's typed parse refuses the payload either way).
pub struct Document<'t> {
    entries: Vec<Entry<'t>>,
}

/// A document in pre-order: a container is followed by its contents.
enum Entry<'t> {
    Null,
    Bool(bool),
    Number(Number),
    String(Cow<'t, str>),
    /// Its elements follow; `end` is the index just past its last descendant.
    Array {
        len: usize,
        end: usize,
    },
    /// Its members follow, each a `Key` and then the value.
    Object {
        len: usize,
        end: usize,
    },
    Key(Cow<'t, str>),
}

impl<'t> Document<'t> {
    pub fn parse(text: &'t str) -> Result<Self, serde_json::Error> {
        // A guess that fits typical payloads without growing: one entry per dozen bytes or so.
        let mut entries = Vec::with_capacity(text.len() / 12 + 2);
        let mut deserializer = serde_json::Deserializer::from_str(text);
        Fill(&mut entries).deserialize(&mut deserializer)?;
        deserializer.end()?;
        Ok(Document { entries })
    }

    pub fn root(&self) -> DocumentNode<'_> {
        DocumentNode { entries: &self.entries, at: 0 }
    }
}

/// Appends one value (and its contents) to the entries.
struct Fill<'v, 't>(&'v mut Vec<Entry<'t>>);

impl<'de> DeserializeSeed<'de> for Fill<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Fill<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.push(Entry::Null);
        Ok(())
    }

    fn visit_bool<E>(self, value: bool) -> Result<(), E> {
        self.0.push(Entry::Bool(value));
        Ok(())
    }

    fn visit_i64<E>(self, value: i64) -> Result<(), E> {
        self.0.push(Entry::Number(value.into()));
        Ok(())
    }

    fn visit_u64<E>(self, value: u64) -> Result<(), E> {
        self.0.push(Entry::Number(value.into()));
        Ok(())
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<(), E> {
        let number = Number::from_f64(value).ok_or_else(|| E::custom("a number out of range"))?;
        self.0.push(Entry::Number(number));
        Ok(())
    }

    fn visit_borrowed_str<E>(self, value: &'de str) -> Result<(), E> {
        self.0.push(Entry::String(Cow::Borrowed(value)));
        Ok(())
    }

    fn visit_str<E>(self, value: &str) -> Result<(), E> {
        self.0.push(Entry::String(Cow::Owned(value.to_owned())));
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Entry::Array { len: 0, end: 0 });
        let mut len = 0;
        while seq.next_element_seed(Fill(&mut *self.0))?.is_some() {
            len += 1;
        }
        self.0[at] = Entry::Array { len, end: self.0.len() };
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let at = self.0.len();
        self.0.push(Entry::Object { len: 0, end: 0 });
        let mut len = 0;
        while map.next_key_seed(FillKey(&mut *self.0))?.is_some() {
            map.next_value_seed(Fill(&mut *self.0))?;
            len += 1;
        }
        self.0[at] = Entry::Object { len, end: self.0.len() };
        Ok(())
    }
}

/// Appends an object member's name.
struct FillKey<'v, 't>(&'v mut Vec<Entry<'t>>);

impl<'de> DeserializeSeed<'de> for FillKey<'_, 'de> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FillKey<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E>(self, name: &'de str) -> Result<(), E> {
        self.0.push(Entry::Key(Cow::Borrowed(name)));
        Ok(())
    }

    fn visit_str<E>(self, name: &str) -> Result<(), E> {
        self.0.push(Entry::Key(Cow::Owned(name.to_owned())));
        Ok(())
    }
}

/// The representation jsonschema validates a [`Document`] through.
pub struct DocumentJson;

impl Json for DocumentJson {
    type Node<'a> = DocumentNode<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    // A lookup scans the members, so a pass over them never costs more than the lookups it replaces.
    const KEYS_PER_LOOKUP: usize = 1 << 16;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>((): &mut (), string: &str, f: impl FnOnce(DocumentNode<'_>) -> T) -> T {
        let entries = [Entry::String(Cow::Borrowed(string))];
        f(DocumentNode { entries: &entries, at: 0 })
    }
}

/// One value of a [`Document`].
#[derive(Clone, Copy)]
pub struct DocumentNode<'a> {
    entries: &'a [Entry<'a>],
    at: usize,
}

impl<'a> DocumentNode<'a> {
    /// The value of this object's member `name` (the first, should it occur twice).
    pub fn member(&self, name: &str) -> Option<DocumentNode<'a>> {
        self.as_object().and_then(|_| self.members().find(|(key, _)| *key == name)).map(|(_, value)| value)
    }

    /// Member `name`'s key as it lies in the parsed text, when it is written without escapes: where the
    /// member is in the text.
    pub fn key_in_text(&self, name: &str) -> Option<&'a str> {
        self.as_object()?;
        let mut at = self.at + 1;
        while at < self.end() {
            match &self.entries[at] {
                Entry::Key(Cow::Borrowed(key)) if *key == name => return Some(key),
                Entry::Key(key) if key == name => return None,
                _ => at = self.child(at + 1).end(),
            }
        }
        None
    }

    /// The name of this object's last member.
    pub fn last_member_name(&self) -> Option<&'a str> {
        self.as_object()?;
        self.members().last().map(|(name, _)| name)
    }

    pub fn as_str(&self) -> Option<&'a str> {
        match self.entry() {
            Entry::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn is_object(&self) -> bool {
        matches!(self.entry(), Entry::Object { .. })
    }

    pub fn is_null(&self) -> bool {
        matches!(self.entry(), Entry::Null)
    }

    fn entry(&self) -> &'a Entry<'a> {
        &self.entries[self.at]
    }

    /// The index just past this value and its contents.
    fn end(&self) -> usize {
        match self.entry() {
            Entry::Array { end, .. } | Entry::Object { end, .. } => *end,
            _ => self.at + 1,
        }
    }

    fn child(&self, at: usize) -> DocumentNode<'a> {
        DocumentNode { entries: self.entries, at }
    }

    fn members(&self) -> Members<'a> {
        Members { node: self.child(self.at + 1), end: self.end() }
    }

    fn elements(&self) -> Elements<'a> {
        Elements { node: self.child(self.at + 1), end: self.end() }
    }

    fn len(&self) -> usize {
        match self.entry() {
            Entry::Array { len, .. } | Entry::Object { len, .. } => *len,
            _ => 0,
        }
    }

    /// JSON Schema equality (numbers compare by value), without building the node as a `Value`.
    fn equals(&self, expected: &Value) -> bool {
        match (self.entry(), expected) {
            (Entry::Null, Value::Null) => true,
            (Entry::Bool(a), Value::Bool(b)) => a == b,
            (Entry::Number(a), Value::Number(b)) => cmp::equal_numbers(a, b),
            (Entry::String(a), Value::String(b)) => a == b,
            (Entry::Array { len, .. }, Value::Array(items)) => {
                *len == items.len() && self.elements().zip(items).all(|(node, item)| node.equals(item))
            }
            (Entry::Object { .. }, Value::Object(members)) => {
                self.len() == members.len()
                    && self.members().all(|(name, node)| members.get(name).is_some_and(|member| node.equals(member)))
            }
            _ => false,
        }
    }

    fn to_owned_value(self) -> Value {
        match self.entry() {
            Entry::Null | Entry::Key(_) => Value::Null,
            Entry::Bool(b) => Value::Bool(*b),
            Entry::Number(n) => Value::Number(n.clone()),
            Entry::String(s) => Value::String(s.to_string()),
            Entry::Array { .. } => Value::Array(self.elements().map(|node| node.to_owned_value()).collect()),
            Entry::Object { .. } => Value::Object(
                self.members().map(|(name, node)| (name.to_string(), node.to_owned_value())).collect::<Map<_, _>>(),
            ),
        }
    }
}

impl<'a> Node<'a, DocumentJson> for DocumentNode<'a> {
    type Object = DocumentObject<'a>;
    type Array = DocumentArray<'a>;
    type Number = &'a Number;

    fn as_object(&self) -> Option<DocumentObject<'a>> {
        matches!(self.entry(), Entry::Object { .. }).then_some(DocumentObject(*self))
    }

    fn as_array(&self) -> Option<DocumentArray<'a>> {
        matches!(self.entry(), Entry::Array { .. }).then_some(DocumentArray(*self))
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.entry() {
            Entry::String(s) => Some(Cow::Borrowed(s.as_ref())),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<&'a Number> {
        match self.entry() {
            Entry::Number(n) => Some(n),
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.entry() {
            Entry::Bool(b) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        DocumentNode::is_null(self)
    }

    fn json_type(&self) -> JsonType {
        match self.entry() {
            Entry::Null | Entry::Key(_) => JsonType::Null,
            Entry::Bool(_) => JsonType::Boolean,
            Entry::Number(_) => JsonType::Number,
            Entry::String(_) => JsonType::String,
            Entry::Array { .. } => JsonType::Array,
            Entry::Object { .. } => JsonType::Object,
        }
    }

    fn string_length_within(&self, min: u64, max: u64) -> Option<bool> {
        let string = self.as_string()?;
        // A code point takes one to four bytes: the byte length alone often decides without counting.
        let bytes = string.len() as u64;
        let fewest = bytes.div_ceil(4);
        if bytes < min || fewest > max {
            return Some(false);
        }
        if min <= fewest && bytes <= max {
            return Some(true);
        }
        Some((min..=max).contains(&(string.chars().count() as u64)))
    }

    fn equals_value(&self, expected: &Value) -> bool {
        self.equals(expected)
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(self.to_owned_value())
    }

    fn identity(&self) -> Option<NodeIdentity> {
        let at = u32::try_from(self.at).ok()?;
        Some(NodeIdentity::tagged(self.entries.as_ptr() as usize, at))
    }
}

#[derive(Clone, Copy)]
pub struct DocumentObject<'a>(DocumentNode<'a>);

impl<'a> Object<'a, DocumentJson> for DocumentObject<'a> {
    type Node = DocumentNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn get(&self, key: &Box<str>) -> Option<DocumentNode<'a>> {
        self.0.members().find(|(name, _)| *name == &**key).map(|(_, node)| node)
    }

    fn members(&self) -> Members<'a> {
        self.0.members()
    }
}

#[derive(Clone, Copy)]
pub struct DocumentArray<'a>(DocumentNode<'a>);

impl<'a> Array<'a, DocumentJson> for DocumentArray<'a> {
    type Node = DocumentNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        self.0.len()
    }

    fn elements(&self) -> Elements<'a> {
        self.0.elements()
    }
}

pub struct Members<'a> {
    /// The next member's name.
    node: DocumentNode<'a>,
    end: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, DocumentNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.node.at >= self.end {
            return None;
        }
        let Entry::Key(name) = self.node.entry() else {
            return None; // a name precedes every value of an object: never taken
        };
        let value = self.node.child(self.node.at + 1);
        self.node = self.node.child(value.end());
        Some((name.as_ref(), value))
    }
}

pub struct Elements<'a> {
    node: DocumentNode<'a>,
    end: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = DocumentNode<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.node.at >= self.end {
            return None;
        }
        let element = self.node;
        self.node = self.node.child(element.end());
        Some(element)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn round_trip(text: &str) -> Value {
        Document::parse(text).unwrap().root().to_owned_value()
    }

    #[test]
    fn parses_every_kind_of_value_as_serde_json_does() {
        let text = r#"{"s":"caf\u00e9 \"q\"","n":-3,"u":18446744073709551615,"f":1.5,"b":true,"z":null,
                       "a":[1,[2,{}],{"k":[]}],"o":{"nested":{"deep":"x"}},"e":{},"l":[]}"#;
        assert_eq!(round_trip(text), serde_json::from_str::<Value>(text).unwrap());
    }

    #[test]
    fn borrows_strings_without_escapes_and_owns_the_others() {
        let document = Document::parse(r#"{"plain":"a","escaped":"b\n"}"#).unwrap();
        let strings: Vec<bool> = document
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::String(s) | Entry::Key(s) => Some(matches!(s, Cow::Borrowed(_))),
                _ => None,
            })
            .collect();
        assert_eq!(strings, [true, true, true, false]);
    }

    #[test]
    fn members_and_elements_skip_over_nested_values() {
        let document = Document::parse(r#"{"a":{"x":[1,2,{"y":3}]},"b":[[],[4]],"c":5}"#).unwrap();
        let root = document.root();
        let names: Vec<&str> = root.members().map(|(name, _)| name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let object = root.as_object().unwrap();
        let b = object.get(&DocumentJson::prepare_key("b")).unwrap();
        assert_eq!(b.as_array().unwrap().len(), 2);
        assert_eq!(b.elements().map(|e| e.len()).collect::<Vec<_>>(), [0, 1]);
        assert_eq!(object.get(&DocumentJson::prepare_key("c")).unwrap().as_number().unwrap().as_u64(), Some(5));
        assert!(object.get(&DocumentJson::prepare_key("x")).is_none(), "only the object's own members");
    }

    #[test]
    fn a_duplicate_key_is_listed_twice_and_found_first() {
        let document = Document::parse(r#"{"k":1,"k":2}"#).unwrap();
        let object = document.root().as_object().unwrap();
        assert_eq!(object.len(), 2);
        let found = object.get(&DocumentJson::prepare_key("k")).unwrap();
        assert_eq!(found.as_number().unwrap().as_u64(), Some(1));
    }

    #[test]
    fn string_lengths_count_code_points() {
        let document = Document::parse(r#"["", "ab", "héllo", "🦀🦀"]"#).unwrap();
        let lengths: Vec<Vec<Option<bool>>> = document
            .root()
            .elements()
            .map(|s| {
                [(0, 0), (1, 2), (2, 2), (5, 5), (3, 9)].map(|(min, max)| s.string_length_within(min, max)).to_vec()
            })
            .collect();
        let t = Some(true);
        let f = Some(false);
        assert_eq!(lengths, [[t, f, f, f, f], [f, t, t, f, f], [f, f, f, t, t], [f, t, t, f, f]]);
        assert_eq!(document.root().string_length_within(0, 9), None, "not a string");
    }

    #[test]
    fn equality_follows_json_schema_with_numbers_by_value() {
        let document = Document::parse(r#"{"a":[1,{"b":2.0}],"s":"x"}"#).unwrap();
        let root = document.root();
        assert!(root.equals(&json!({"s": "x", "a": [1.0, {"b": 2}]})));
        assert!(!root.equals(&json!({"s": "x", "a": [1, {"b": 3}]})));
        assert!(!root.equals(&json!({"s": "x"})));
        assert!(!root.equals(&json!([1])));
    }

    #[test]
    fn rejects_what_is_not_one_json_value() {
        for text in ["", "{", r#"{"a":}"#, "[1,]", "{} {}", "nul"] {
            assert!(Document::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn validates_like_a_value_through_a_compiled_schema() {
        let schema = json!({
            "type": "object",
            "required": ["volume", "mode"],
            "properties": {
                "volume": {"type": "integer", "minimum": 0, "maximum": 100},
                "mode": {"enum": ["ALARM", "TIMER"]},
                "assets": {"type": "array", "items": {"type": "object", "required": ["assetId"]}},
                "url": {"type": "string", "pattern": "^cid:", "maxLength": 12}
            },
            "additionalProperties": false
        });
        let on_documents = jsonschema::options_for::<DocumentJson>().build(&schema).unwrap();
        let on_values = jsonschema::validator_for(&schema).unwrap();
        for text in [
            r#"{"volume":30,"mode":"TIMER"}"#,
            r#"{"volume":30.0,"mode":"TIMER"}"#,
            r#"{"volume":300,"mode":"TIMER"}"#,
            r#"{"volume":30,"mode":"timer"}"#,
            r#"{"volume":30}"#,
            r#"{"volume":30,"mode":"ALARM","assets":[{"assetId":"a"},{}]}"#,
            r#"{"volume":30,"mode":"ALARM","assets":[{"assetId":"a"}]}"#,
            r#"{"volume":30,"mode":"ALARM","url":"cid:x"}"#,
            r#"{"volume":30,"mode":"ALARM","url":"https:x"}"#,
            r#"{"volume":30,"mode":"ALARM","url":"cid:much-too-long"}"#,
            r#"{"volume":30,"mode":"ALARM","extra":1}"#,
            r#"[]"#,
        ] {
            let document = Document::parse(text).unwrap();
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(on_documents.is_valid(document.root()), on_values.is_valid(&value), "{text}");
            let errors: Vec<String> = on_documents.iter_errors(document.root()).map(|e| e.to_string()).collect();
            let expected: Vec<String> = on_values.iter_errors(&value).map(|e| e.to_string()).collect();
            assert_eq!(errors, expected, "{text}");
        }
    }
}
