//! JSON messages: one object per message; columns map by name (or the `json` column
//! option) to a key or a path of keys into nested objects.
//!
//! A column's text is what its type's input function gets: a string's content, a number
//! or Boolean as written, and an object or array as JSON text (for json/jsonb columns).
//! JSON null and a missing key are NULL.

use std::borrow::Cow;
use super::error::CodecError;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Where a column's value sits in the message object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonPath {
    /// Keys from the top-level object inward (`a.b` → `["a", "b"]`).
    Keys(Vec<String>),
    /// The whole message (a table's only data column, of type json or jsonb).
    Whole,
}

impl JsonPath {
    /// Parses a `json` column option: a JSON Pointer (`/a/b`, RFC 6901, for keys that
    /// contain dots) or dot-separated keys (`a.b`); a plain key is a one-key path.
    pub fn parse(option: &str) -> Result<JsonPath, InvalidPath> {
        if option.is_empty() {
            return Err(InvalidPath("a JSON key cannot be empty".to_string()));
        }
        let keys: Vec<String> = match option.strip_prefix('/') {
            Some(pointer) => pointer.split('/').map(|key| key.replace("~1", "/").replace("~0", "~")).collect(),
            None => option.split('.').map(str::to_string).collect(),
        };
        if keys.iter().any(String::is_empty) {
            return Err(InvalidPath(format!("\"{option}\" has an empty key")));
        }
        Ok(JsonPath::Keys(keys))
    }
}

/// Why a `json` column option is not a path, for its option's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidPath(pub String);

impl std::fmt::Display for InvalidPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a message is not a JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    Malformed(String),
    NotAnObject,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JsonError::Malformed(error) => write!(f, "invalid JSON: {error}"),
            JsonError::NotAnObject => f.write_str("JSON message is not an object"),
        }
    }
}

/// A message read lazily: the top-level members are found in one pass, each value kept
/// as its raw JSON text, and only the values a query reads are looked into (a nested
/// object when a path goes through it, a string's escapes when it has any). No tree of
/// the whole message is built.
pub struct JsonMessage<'a> {
    payload: &'a [u8],
    /// The object's members in message order (a repeated key: its last value counts).
    members: Members<'a>,
    /// A key that is a string, number or Boolean (see [`decode_key`]).
    scalar: Option<&'a RawValue>,
}

/// An object's members: key and raw value text.
#[derive(Default)]
struct Members<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'a> Members<'a> {
    /// The value of `key` (the last one when repeated, as a JSON object keeps it).
    fn get(&self, key: &str) -> Option<&'a RawValue> {
        self.0.iter().rev().find(|(name, _)| name == key).map(|(_, value)| *value)
    }
}

/// A key borrowed from the message unless it has escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_string())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

/// The key under which serde_json's arbitrary_precision feature passes a number.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

/// What a JSON text holds at its top: an object's members, or another value whole.
enum Top<'a> {
    Object(Members<'a>),
    Other,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = Top<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
                let mut members = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
                    // serde_json's arbitrary_precision hands a number over as a map of
                    // this one key (as serde_json::Value also reads it).
                    if members.is_empty() && key == NUMBER_TOKEN {
                        map.next_value::<IgnoredAny>()?;
                        return Ok(Top::Other);
                    }
                    members.push((key, map.next_value::<&'de RawValue>()?));
                }
                Ok(Top::Object(Members(members)))
            }
            // Anything else is told apart from malformed JSON by the caller.
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Top<'de>, E> {
                Ok(Top::Other)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Top<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Top::Other)
            }
        }
        deserializer.deserialize_any(TopVisitor)
    }
}

/// The members of `text` when it is an object; `None` for any other value.
fn object_members(text: &str) -> Option<Members<'_>> {
    match serde_json::from_str::<Top<'_>>(text) {
        Ok(Top::Object(members)) => Some(members),
        _ => None,
    }
}

/// Parses `payload` whole (trailing characters are an error, as for any JSON text).
fn parse_top(payload: &[u8]) -> Result<Top<'_>, JsonError> {
    let malformed = |error: serde_json::Error| JsonError::Malformed(error.to_string());
    // Skipping a value checks its syntax but not what a string's \u escapes decode to (a
    // lone surrogate): a message with such escapes is decoded whole once, so that it is
    // refused as a whole, with the same error, whatever column is read.
    if memchr::memmem::find(payload, b"\\u").is_some() {
        serde_json::from_slice::<Value>(payload).map_err(malformed)?;
    }
    serde_json::from_slice::<Top<'_>>(payload).map_err(malformed)
}

pub fn decode(payload: &[u8]) -> Result<JsonMessage<'_>, JsonError> {
    match parse_top(payload)? {
        Top::Object(members) => Ok(JsonMessage { payload, members, scalar: None }),
        Top::Other => Err(JsonError::NotAnObject),
    }
}

/// A JSON key: an object as a message, or any other JSON value (Kafka Connect's
/// JsonConverter writes a string key as `"abc"`), read whole.
pub fn decode_key(payload: &[u8]) -> Result<JsonMessage<'_>, JsonError> {
    match parse_top(payload)? {
        Top::Object(members) => Ok(JsonMessage { payload, members, scalar: None }),
        Top::Other => {
            let scalar = serde_json::from_slice::<&RawValue>(payload).map_err(|error| JsonError::Malformed(error.to_string()))?;
            Ok(JsonMessage { payload, members: Members::default(), scalar: Some(scalar) })
        }
    }
}

impl<'a> JsonMessage<'a> {
    /// The text of the value at `path`, `None` for null or a missing key. A string gives
    /// its content, unless `as_json` (a json or jsonb column), which gets every value as
    /// JSON text: compact, as serde_json writes it.
    pub fn field(&self, path: &JsonPath, as_json: bool) -> Option<Cow<'a, [u8]>> {
        let value = match (path, self.scalar) {
            (JsonPath::Whole, Some(scalar)) => scalar,
            (JsonPath::Whole, None) => return Some(Cow::Borrowed(self.payload)),
            (JsonPath::Keys(_), Some(_)) => return None,
            (JsonPath::Keys(keys), None) => {
                let (first, rest) = keys.split_first()?;
                let mut value = self.members.get(first)?;
                for key in rest {
                    value = object_members(value.get())?.get(key)?;
                }
                value
            }
        };
        value_text(value.get(), as_json)
    }

    /// Top-level keys no column path starts with, each once.
    pub fn unmapped_keys<'p>(&self, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<&str> {
        let mut unmapped: Vec<&str> = Vec::new();
        for (key, _) in &self.members.0 {
            let mapped = paths.clone().any(|path| match path {
                JsonPath::Whole => true,
                JsonPath::Keys(keys) => keys.first().map(String::as_str) == Some(key.as_ref()),
            });
            if !mapped && !unmapped.contains(&key.as_ref()) {
                unmapped.push(key.as_ref());
            }
        }
        unmapped
    }
}

/// A value's text for a column, from its raw JSON text (valid: the message was parsed).
fn value_text(raw: &str, as_json: bool) -> Option<Cow<'_, [u8]>> {
    match raw.as_bytes()[0] {
        b'n' => None,
        // Without escapes a string's JSON text is what serde_json would write, and its
        // content the text between the quotes.
        b'"' if !raw.contains('\\') => Some(Cow::Borrowed(if as_json { raw.as_bytes() } else { &raw.as_bytes()[1..raw.len() - 1] })),
        b'"' => {
            let text: String = serde_json::from_str(raw).expect("a parsed string");
            Some(Cow::Owned(if as_json { serde_json::to_vec(&text).expect("a string serializes") } else { text.into_bytes() }))
        }
        // Objects and arrays compact, as serde_json writes them (repeated keys once).
        b'{' | b'[' => {
            let value: Value = serde_json::from_str(raw).expect("a parsed value");
            Some(Cow::Owned(value.to_string().into_bytes()))
        }
        // A number with an exponent as serde_json's arbitrary_precision writes it:
        // `1E5` as `1e+5`.
        b'-' | b'0'..=b'9' if raw.contains(['e', 'E']) => {
            let (mantissa, exponent) = raw.split_once(['e', 'E']).expect("checked above");
            let sign = if exponent.starts_with(['+', '-']) { "" } else { "+" };
            Some(Cow::Owned(format!("{mantissa}e{sign}{exponent}").into_bytes()))
        }
        // Other numbers as written (arbitrary_precision keeps them so), Booleans.
        _ => Some(Cow::Borrowed(raw.as_bytes())),
    }
}

/// How a column's value is written into a produced message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonField<'a> {
    Null,
    /// Text, written as a JSON string.
    Text(&'a str),
    /// A number's or Boolean's text, written as is.
    Literal(&'a str),
    /// JSON text (a json or jsonb column), embedded as is.
    Json(&'a str),
}

/// A message object with `fields` under their keys (paths create nested objects).
/// Fails only when embedded JSON text is not valid JSON.
pub fn encode(fields: &[(&JsonPath, JsonField<'_>)]) -> Result<Vec<u8>, CodecError> {
    if let [(JsonPath::Whole, field)] = fields {
        return Ok(match field {
            JsonField::Null => b"null".to_vec(),
            // A text key column holding the whole key: a JSON string.
            JsonField::Text(text) => serde_json::to_vec(text).expect("a string serializes"),
            JsonField::Literal(text) | JsonField::Json(text) => text.as_bytes().to_vec(),
        });
    }
    let mut root = Map::new();
    for (path, field) in fields {
        let JsonPath::Keys(keys) = path else { continue };
        let value = match field {
            JsonField::Null => Value::Null,
            JsonField::Text(text) => Value::String(text.to_string()),
            JsonField::Literal(text) | JsonField::Json(text) => serde_json::from_str(text).map_err(|e| CodecError::Unwritable(e.to_string()))?,
        };
        let (last, parents) = keys.split_last().expect("paths have a key");
        let mut object = &mut root;
        for key in parents {
            let entry = object.entry(key.clone()).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            object = entry.as_object_mut().expect("made an object above");
        }
        object.insert(last.clone(), value);
    }
    Ok(serde_json::to_vec(&Value::Object(root)).expect("a map of values serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(name: &str) -> JsonPath {
        JsonPath::parse(name).unwrap()
    }

    fn text(message: &JsonMessage<'_>, path: &JsonPath) -> Option<String> {
        message.field(path, false).map(|bytes| String::from_utf8(bytes.into_owned()).unwrap())
    }

    #[test]
    fn columns_read_keys_paths_and_the_whole_message() {
        let payload = br#"{"int_val": 3, "text_val": "a \"b\"", "flag": true, "none": null,
                          "nested": {"inner": {"x": 1.5}}, "list": [1, "two"], "a.b": "dotted"}"#;
        let message = decode(payload).unwrap();
        assert_eq!(text(&message, &key("int_val")).as_deref(), Some("3"));
        assert_eq!(text(&message, &key("text_val")).as_deref(), Some("a \"b\""));
        assert_eq!(text(&message, &key("flag")).as_deref(), Some("true"));
        assert_eq!(text(&message, &key("none")), None);
        assert_eq!(text(&message, &key("missing")), None);
        assert_eq!(text(&message, &key("nested.inner.x")).as_deref(), Some("1.5"));
        assert_eq!(text(&message, &key("nested.inner")).as_deref(), Some(r#"{"x":1.5}"#));
        assert_eq!(text(&message, &key("nested.missing.x")), None);
        assert_eq!(text(&message, &key("list")).as_deref(), Some(r#"[1,"two"]"#));
        assert_eq!(text(&message, &key("/a.b")).as_deref(), Some("dotted"));
        assert_eq!(message.field(&JsonPath::Whole, true).unwrap().as_ref(), payload);
        assert_eq!(message.field(&key("text_val"), true).unwrap().as_ref(), br#""a \"b\"""#);
        assert_eq!(message.field(&key("int_val"), true).unwrap().as_ref(), b"3");
        let paths = [key("int_val"), key("nested.inner.x")];
        let mut unmapped = message.unmapped_keys(paths.iter());
        unmapped.sort();
        assert_eq!(unmapped, vec!["a.b", "flag", "list", "none", "text_val"]);
    }

    #[test]
    fn bad_messages_are_errors() {
        assert!(matches!(decode(b"{\"a\": 1"), Err(JsonError::Malformed(_))));
        assert_eq!(decode(b"[1, 2]").err(), Some(JsonError::NotAnObject));
        assert_eq!(decode(b"\"text\"").err(), Some(JsonError::NotAnObject));
        assert!(matches!(decode(b"{\"a\": \"\xff\"}"), Err(JsonError::Malformed(_))));
        assert!(JsonPath::parse("").is_err());
        assert!(JsonPath::parse("a..b").is_err());
        assert_eq!(JsonPath::parse("/x~1y/z~0").unwrap(), JsonPath::Keys(vec!["x/y".into(), "z~".into()]));
    }

    #[test]
    fn encoding_builds_nested_objects() {
        let (a, b, c) = (key("a"), key("n.x"), key("n.y"));
        let encoded = encode(&[
            (&a, JsonField::Literal("12")),
            (&b, JsonField::Text("hi")),
            (&c, JsonField::Json(r#"{"k":[1]}"#)),
        ])
        .unwrap();
        assert_eq!(String::from_utf8(encoded).unwrap(), r#"{"a":12,"n":{"x":"hi","y":{"k":[1]}}}"#);
        assert_eq!(encode(&[(&JsonPath::Whole, JsonField::Json("[1]"))]).unwrap(), b"[1]");
        assert_eq!(encode(&[(&JsonPath::Whole, JsonField::Text("a\"b"))]).unwrap(), br#""a\"b""#);
        assert_eq!(encode(&[(&JsonPath::Whole, JsonField::Literal("42"))]).unwrap(), b"42");
        // Keys may be any JSON value, read whole.
        let key = decode_key(br#""abc""#).unwrap();
        assert_eq!(key.field(&JsonPath::Whole, false).unwrap().as_ref(), b"abc");
        assert_eq!(key.field(&JsonPath::Whole, true).unwrap().as_ref(), br#""abc""#);
        assert_eq!(key.field(&JsonPath::parse("a").unwrap(), false), None);
        assert_eq!(decode_key(b"7").unwrap().field(&JsonPath::Whole, false).unwrap().as_ref(), b"7");
        assert!(decode(br#""abc""#).is_err(), "messages are objects");
        assert!(encode(&[(&a, JsonField::Json("{"))]).is_err());
    }

    proptest! {
        /// Text, NULL and numbers survive encoding then decoding, unicode and quotes
        /// included; timestamps with time zones travel as text.
        #[test]
        fn round_trip(values in prop::collection::vec(
            prop_oneof![
                Just(None),
                any::<String>().prop_map(Some),
                Just(Some("2024-03-01 12:34:56.789+05:30".to_string())),
                Just(Some(String::new())),
            ], 1..6),
            number in any::<i64>())
        {
            let paths: Vec<JsonPath> = (0..values.len()).map(|i| key(&format!("c{i}"))).collect();
            let number_text = number.to_string();
            let number_path = key("n.num");
            let mut fields: Vec<(&JsonPath, JsonField<'_>)> = paths
                .iter()
                .zip(&values)
                .map(|(path, value)| (path, value.as_deref().map_or(JsonField::Null, JsonField::Text)))
                .collect();
            fields.push((&number_path, JsonField::Literal(&number_text)));
            let encoded = encode(&fields).unwrap();
            let message = decode(&encoded).unwrap();
            for (path, value) in paths.iter().zip(&values) {
                prop_assert_eq!(text(&message, path), value.clone());
            }
            prop_assert_eq!(text(&message, &number_path), Some(number_text));
        }

    }

    /// The reading this module did before it read lazily: the whole message as a
    /// serde_json tree. Kept as the oracle of the differential test below.
    fn tree_field(payload: &[u8], root: &Result<Value, String>, path: &JsonPath, as_json: bool) -> Result<Option<Vec<u8>>, String> {
        let Value::Object(object) = root.as_ref().map_err(String::clone)? else {
            return Err("JSON message is not an object".to_string());
        };
        let value = match path {
            JsonPath::Whole => return Ok(Some(payload.to_vec())),
            JsonPath::Keys(keys) => {
                let mut value = object.get(&keys[0]);
                for key in &keys[1..] {
                    value = value.and_then(Value::as_object).and_then(|o| o.get(key));
                }
                value
            }
        };
        Ok(match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) if !as_json => Some(text.as_bytes().to_vec()),
            Some(Value::Bool(flag)) => Some(flag.to_string().into_bytes()),
            Some(other) => Some(other.to_string().into_bytes()),
        })
    }

    /// JSON text of a value, written as producers may write it: numbers in every form
    /// (huge, negative zero, exponents), strings with escapes, unicode escapes,
    /// surrogate pairs (and lone surrogates, which both readers must refuse alike),
    /// ISO dates and times with and without zones, nested objects with repeated and
    /// escaped keys, arrays, and whitespace between tokens.
    fn json_text() -> impl Strategy<Value = String> {
        let space = || "[ \t\n]{0,2}";
        let leaf = prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            "-?(0|[1-9][0-9]{0,40})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            Just("-0".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            Just("null".to_string()),
            "\"([a-zA-Z0-9 :+.é€日-]|\\\\[\"\\\\/bfnrt]|\\\\u00[0-9a-fA-F]{2}|\\\\u[dD][89abAB][0-9a-fA-F]{2}\\\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\\\uD83D){0,12}\"",
            "\"[0-9]{4}-[01][0-9]-[0-3][0-9]([T ][0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-][0-2][0-9]:[0-5][0-9])?)?\"",
        ];
        leaf.prop_recursive(3, 24, 5, move |inner| {
            prop_oneof![
                (prop::collection::vec((key_text(), inner.clone()), 0..5), space()).prop_map(|(members, space)| {
                    let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}{space}:{space}{v}")).collect();
                    format!("{{{space}{}{space}}}", members.join(","))
                }),
                (prop::collection::vec(inner, 0..4), space()).prop_map(|(items, space)| format!("[{space}{}]", items.join(","))),
            ]
        })
    }

    /// A member's key as JSON text: a few names, so that keys repeat and paths find them,
    /// one with an escape.
    fn key_text() -> impl Strategy<Value = String> {
        prop_oneof![Just("\"a\""), Just("\"b\""), Just("\"c\""), Just("\"\\u0061\""), Just("\"a.b\"")].prop_map(str::to_string)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(50_000))]
        /// The lazy reader gives exactly what the tree reader gave (100,000 messages: two
        /// per case): every key path (nested
        /// ones too, missing ones, the whole message) as text and as JSON, and the same
        /// error for messages that are not objects or not JSON.
        #[test]
        fn lazy_reading_equals_reading_the_tree(members in prop::collection::vec((key_text(), json_text()), 0..6), top in json_text()) {
            let object = format!("{{{}}}", members.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", "));
            for payload in [object, top] {
                let root = serde_json::from_str::<Value>(&payload).map_err(|e| format!("invalid JSON: {e}"));
                let paths = ["a", "b", "c", "a.a", "a.b", "b.c.a", "/a.b", "missing"].map(|p| JsonPath::parse(p).unwrap());
                match decode(payload.as_bytes()) {
                    Ok(message) => {
                        for path in paths.iter().chain([&JsonPath::Whole]) {
                            for as_json in [false, true] {
                                let lazy = message.field(path, as_json).map(Cow::into_owned);
                                prop_assert_eq!(&Ok(lazy), &tree_field(payload.as_bytes(), &root, path, as_json), "{} {:?}", payload, path);
                            }
                        }
                        let mut expected: Vec<&str> = root.as_ref().unwrap().as_object().unwrap().keys().map(String::as_str).filter(|k| *k != "c").collect();
                        let mut unmapped = message.unmapped_keys([JsonPath::parse("c").unwrap()].iter());
                        expected.sort();
                        unmapped.sort();
                        prop_assert_eq!(unmapped, expected);
                    }
                    Err(error) => prop_assert_eq!(Err(error.to_string()), tree_field(payload.as_bytes(), &root, &paths[0], false)),
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// Fuzzing: arbitrary bytes, and JSON-ish text, give a message or an error,
        /// never a panic.
        #[test]
        fn arbitrary_bytes_do_not_panic(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "[{}\\[\\]\":,a-z0-9 .e+-]{0,80}".prop_map(String::into_bytes),
                // Escapes, valid or not, and control characters inside strings.
                "\\{\"a\": ?(\"([a-z\\\\\t\u{1}]|\\\\u[0-9a-fdD]{0,4}){0,12}\"|\\{\"b\": ?\"[a-z\\\\]{0,6}\"\\})\\}".prop_map(String::into_bytes),
            ])
        {
            for message in [decode(&bytes), decode_key(&bytes)].into_iter().flatten() {
                for as_json in [false, true] {
                    let _ = message.field(&key("a"), as_json);
                    let _ = message.field(&key("a.b"), as_json);
                    let _ = message.field(&JsonPath::Whole, as_json);
                }
            }
        }
    }
}
