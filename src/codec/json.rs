//! JSON messages: one object per message; columns map by name (or the `json` column
//! option) to a key or a path of keys into nested objects.
//!
//! A column's text is what its type's input function gets: a string's content, a number
//! or Boolean as written, and an object or array as JSON text (for json/jsonb columns).
//! JSON null and a missing key are NULL.

use std::borrow::Cow;

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
    pub fn parse(option: &str) -> Result<JsonPath, String> {
        if option.is_empty() {
            return Err("a JSON key cannot be empty".to_string());
        }
        let keys: Vec<String> = match option.strip_prefix('/') {
            Some(pointer) => pointer.split('/').map(|key| key.replace("~1", "/").replace("~0", "~")).collect(),
            None => option.split('.').map(str::to_string).collect(),
        };
        if keys.iter().any(String::is_empty) {
            return Err(format!("\"{option}\" has an empty key"));
        }
        Ok(JsonPath::Keys(keys))
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

/// A parsed message, from which columns are read by path.
pub struct JsonMessage<'a> {
    payload: &'a [u8],
    object: Map<String, Value>,
    /// A key that is a string, number or Boolean (see [`decode_key`]).
    scalar: Option<Value>,
}

pub fn decode(payload: &[u8]) -> Result<JsonMessage<'_>, JsonError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => Ok(JsonMessage { payload, object, scalar: None }),
        Ok(_) => Err(JsonError::NotAnObject),
        Err(error) => Err(JsonError::Malformed(error.to_string())),
    }
}

/// A JSON key: an object as a message, or any other JSON value (Kafka Connect's
/// JsonConverter writes a string key as `"abc"`), read whole.
pub fn decode_key(payload: &[u8]) -> Result<JsonMessage<'_>, JsonError> {
    match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => Ok(JsonMessage { payload, object, scalar: None }),
        Ok(scalar) => Ok(JsonMessage { payload, object: Map::new(), scalar: Some(scalar) }),
        Err(error) => Err(JsonError::Malformed(error.to_string())),
    }
}

impl JsonMessage<'_> {
    /// The text of the value at `path`, `None` for null or a missing key. A string gives
    /// its content, unless `as_json` (a json or jsonb column), which gets every value as
    /// JSON text.
    pub fn field(&self, path: &JsonPath, as_json: bool) -> Option<Cow<'_, [u8]>> {
        let value = match (path, &self.scalar) {
            (JsonPath::Whole, Some(scalar)) => scalar,
            (JsonPath::Whole, None) => return Some(Cow::Borrowed(self.payload)),
            (JsonPath::Keys(_), Some(_)) => return None,
            (JsonPath::Keys(keys), None) => {
                let (first, rest) = keys.split_first()?;
                let mut value = self.object.get(first)?;
                for key in rest {
                    value = value.as_object()?.get(key)?;
                }
                value
            }
        };
        match value {
            Value::Null => None,
            Value::String(text) if !as_json => Some(Cow::Borrowed(text.as_bytes())),
            Value::Bool(true) => Some(Cow::Borrowed(b"true")),
            Value::Bool(false) => Some(Cow::Borrowed(b"false")),
            other => Some(Cow::Owned(other.to_string().into_bytes())),
        }
    }

    /// Top-level keys no column path starts with.
    pub fn unmapped_keys<'p>(&self, paths: impl Iterator<Item = &'p JsonPath> + Clone) -> Vec<&str> {
        self.object
            .keys()
            .filter(|key| {
                !paths.clone().any(|path| match path {
                    JsonPath::Whole => true,
                    JsonPath::Keys(keys) => keys.first() == Some(*key),
                })
            })
            .map(String::as_str)
            .collect()
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
pub fn encode(fields: &[(&JsonPath, JsonField<'_>)]) -> Result<Vec<u8>, String> {
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
            JsonField::Literal(text) | JsonField::Json(text) => serde_json::from_str(text).map_err(|e| e.to_string())?,
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// Fuzzing: arbitrary bytes, and JSON-ish text, give a message or an error,
        /// never a panic.
        #[test]
        fn arbitrary_bytes_do_not_panic(
            bytes in prop_oneof![
                prop::collection::vec(any::<u8>(), 0..200),
                "[{}\\[\\]\":,a-z0-9 .e+-]{0,80}".prop_map(String::into_bytes),
            ])
        {
            if let Ok(message) = decode(&bytes) {
                let _ = message.field(&key("a.b"), false);
                let _ = message.field(&JsonPath::Whole, true);
            }
        }
    }
}
