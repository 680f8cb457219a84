//! Confluent's wire format, shared by the Schema Registry formats: a zero byte, the
//! writer schema's 4-byte big-endian registry id, then the encoded message (for
//! Protobuf, preceded by the indexes of its message type in the schema).

use std::rc::Rc;
use super::error::CodecError;

use super::avro::AvroSchema;
use super::protobuf::ProtobufSchema;

/// The first byte of a message in Confluent's wire format.
const MAGIC_BYTE: u8 = 0;
/// Magic byte and schema id.
pub const FRAME_HEADER: usize = 5;

/// A schema as a registry holds it, with the schemas it imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterSchema {
    /// `AVRO`, `PROTOBUF` or `JSON`, as the registry names them.
    pub schema_type: String,
    pub text: String,
    /// The referenced schemas, transitively, by the name the text imports them with.
    pub references: Vec<(String, String)>,
}

/// A writer schema compiled for reading messages, whichever its type.
#[derive(Clone)]
pub enum CompiledSchema {
    Avro(Rc<AvroSchema>),
    Protobuf(Rc<ProtobufSchema>),
    /// A type no format here reads (`JSON`), by name.
    Other(String),
}

impl CompiledSchema {
    /// Compiles a schema as its type says; the error says why it does not compile.
    pub fn compile(writer: &WriterSchema) -> Result<CompiledSchema, CodecError> {
        match writer.schema_type.as_str() {
            "AVRO" => AvroSchema::parse(&writer.text).map(CompiledSchema::Avro),
            "PROTOBUF" => ProtobufSchema::compile(&writer.text, &writer.references).map(|schema| CompiledSchema::Protobuf(Rc::new(schema))),
            other => Ok(CompiledSchema::Other(other.to_string())),
        }
    }

    /// The registry's name of its type.
    pub fn type_name(&self) -> &str {
        match self {
            CompiledSchema::Avro(_) => "AVRO",
            CompiledSchema::Protobuf(_) => "PROTOBUF",
            CompiledSchema::Other(name) => name,
        }
    }

    /// About the bytes of memory it holds (at least those: see the tests), what a cache
    /// of compiled schemas weighs it by.
    pub fn heap_size(&self) -> usize {
        match self {
            CompiledSchema::Avro(schema) => schema.heap_size(),
            CompiledSchema::Protobuf(schema) => schema.heap_size(),
            CompiledSchema::Other(name) => name.len(),
        }
    }
}

/// The writer schema of the last message's id, as a decoder keeps it: messages come in
/// runs of one id, and the host keeps the others (within its cache's bound).
pub struct LastSchema<T> {
    last: Option<(u32, Result<Rc<T>, CodecError>)>,
}

impl<T> Default for LastSchema<T> {
    fn default() -> Self {
        LastSchema { last: None }
    }
}

impl<T> LastSchema<T> {
    /// The schema of `id`: the last one's if `id` is the last id, else `fetch`'s.
    pub fn get(&mut self, id: u32, fetch: impl FnOnce() -> Result<Rc<T>, CodecError>) -> Result<Rc<T>, CodecError> {
        match &self.last {
            Some((last, schema)) if *last == id => schema.clone(),
            _ => self.last.insert((id, fetch())).1.clone(),
        }
    }
}

/// Writer schemas by registry id, fetched and compiled by the host (over HTTP, with its
/// credentials, timeouts and caches).
pub trait SchemaById {
    /// The schema registered under `id`. `Err` says why messages naming this id cannot
    /// be read (no such schema, or one that does not compile): such messages are bad
    /// messages. A registry that cannot be asked is the host's ERROR, not an `Err`.
    fn schema(&mut self, id: u32) -> Result<CompiledSchema, CodecError>;

    /// The latest schema of the subject the messages are read from (the reader's
    /// schema, whose defaults fill fields a writer lacks), if the host knows one.
    fn latest(&mut self) -> Option<WriterSchema> {
        None
    }
}

/// The schema id and the rest of a message in Confluent's wire format.
pub fn frame(payload: &[u8]) -> Result<(u32, &[u8]), CodecError> {
    match payload {
        [MAGIC_BYTE, a, b, c, d, rest @ ..] => Ok((u32::from_be_bytes([*a, *b, *c, *d]), rest)),
        [MAGIC_BYTE, ..] => Err(CodecError::Malformed(format!("message shorter than the {FRAME_HEADER}-byte schema registry header"))),
        [other, ..] => Err(CodecError::Malformed(format!("unknown magic byte {other} (the schema registry's wire format starts with 0)"))),
        [] => Err(CodecError::Malformed("empty message".to_string())),
    }
}

/// The header that frames a message written with schema `id`.
pub fn frame_header(id: u32) -> [u8; FRAME_HEADER] {
    let [a, b, c, d] = id.to_be_bytes();
    [MAGIC_BYTE, a, b, c, d]
}

/// The bytes of a message type's indexes, as [`message_indexes`] reads them (`[0]` as
/// the single byte 0, as Confluent's serializers write it).
pub fn message_indexes_bytes(indexes: &[usize]) -> Vec<u8> {
    if indexes == [0] {
        return vec![0];
    }
    let mut bytes = Vec::new();
    for number in std::iter::once(indexes.len()).chain(indexes.iter().copied()) {
        // Zigzag of a non-negative number, as a varint.
        let mut zigzag = (number as u64) << 1;
        while zigzag >= 0x80 {
            bytes.push((zigzag as u8 & 0x7f) | 0x80);
            zigzag >>= 7;
        }
        bytes.push(zigzag as u8);
    }
    bytes
}

/// The message-type indexes that start a Protobuf message after the frame header and
/// the rest: a zigzag varint count, then as many zigzag varint indexes (the first into
/// the schema's top-level messages, the next into that one's nested messages, …); a
/// count of 0 stands for `[0]`, the first message.
pub fn message_indexes(rest: &[u8]) -> Result<(Vec<usize>, &[u8]), CodecError> {
    let (count, mut rest) = zigzag_varint(rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if count < 0 || count as usize > rest.len() {
        return Err(CodecError::Malformed(format!("invalid Protobuf message index count {count}")));
    }
    let mut indexes = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let (index, after) = zigzag_varint(rest)?;
        if index < 0 {
            return Err(CodecError::Malformed(format!("invalid Protobuf message index {index}")));
        }
        indexes.push(index as usize);
        rest = after;
    }
    Ok((indexes, rest))
}

/// A zigzag-encoded varint (at most 10 bytes) and what follows it.
fn zigzag_varint(bytes: &[u8]) -> Result<(i64, &[u8]), CodecError> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            let decoded = (value >> 1) as i64 ^ -((value & 1) as i64);
            return Ok((decoded, &bytes[i + 1..]));
        }
    }
    Err(CodecError::Malformed("message ends inside the Protobuf message indexes".to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_decoder_asks_again_only_when_the_id_changes() {
        let unknown = || CodecError::Schema("unknown".to_string());
        let mut last = LastSchema::default();
        let mut asked = Vec::new();
        for id in [1, 1, 2, 2, 1, 3] {
            let schema = last.get(id, || {
                asked.push(id);
                if id == 3 { Err(unknown()) } else { Ok(Rc::new(id)) }
            });
            assert_eq!(schema.map(|schema| *schema), if id == 3 { Err(unknown()) } else { Ok(id) });
        }
        assert_eq!(asked, [1, 2, 1, 3]);
    }

    #[test]
    fn message_indexes_read_back_as_written() {
        for indexes in [vec![0], vec![1], vec![0, 1, 0], vec![70, 3]] {
            let mut bytes = message_indexes_bytes(&indexes);
            bytes.push(0xaa);
            assert_eq!(message_indexes(&bytes).unwrap(), (indexes, &[0xaa][..]));
        }
        assert_eq!(frame_header(258), [0, 0, 0, 1, 2]);
    }

    #[test]
    fn frames_and_message_indexes() {
        assert_eq!(frame(&[0, 0, 0, 1, 2, 9]).unwrap(), (258, &[9][..]));
        assert!(matches!(frame(&[1, 0]).unwrap_err(), CodecError::Malformed(why) if why.contains("unknown magic byte 1")));
        assert!(frame(&[0, 0]).unwrap_err().reason().contains("shorter than"));
        assert_eq!(frame(&[]).unwrap_err(), CodecError::Malformed("empty message".to_string()));
        // [0] as the single byte 0; [1] as count 1 (zigzag 2), index 1 (zigzag 2); [0, 2].
        assert_eq!(message_indexes(&[0, 7]).unwrap(), (vec![0], &[7][..]));
        assert_eq!(message_indexes(&[2, 2, 7]).unwrap(), (vec![1], &[7][..]));
        assert_eq!(message_indexes(&[4, 0, 4]).unwrap(), (vec![0, 2], &[][..]));
        // A count of 300 (zigzag 600 = 0xd8 0x04) with nothing after it, a negative count, a cut varint.
        assert!(message_indexes(&[0xd8, 0x04]).is_err());
        assert!(message_indexes(&[1]).is_err());
        assert!(message_indexes(&[0x80]).is_err());
    }
}
