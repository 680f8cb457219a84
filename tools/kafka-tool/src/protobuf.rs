//! `produce-protobuf`: JSON lines (Protobuf's JSON mapping) encoded as one message type
//! of a `.proto` file, framed in Confluent's wire format, with the file registered in
//! the Schema Registry — and the files it imports registered first, under their import
//! names as subjects, and referenced by subject and version, as Confluent's serializer
//! does. Google's well-known types are built in, never registered.

use std::path::Path;

use prost_reflect::prost::Message;
use prost_reflect::{DynamicMessage, FileDescriptor, MessageDescriptor};

use crate::registry::Credentials;
use crate::registry_client::{self, NewSchema};
use crate::Result;

/// Encodes JSON values as messages of one type, framed with the registered schema's id.
pub struct ProtobufEncoder {
    message: MessageDescriptor,
    /// Magic byte, schema id and message indexes.
    header: Vec<u8>,
}

impl ProtobufEncoder {
    /// Compiles `schema_file` (imports from its directory), registers it under `subject`
    /// and picks `message_name` (default: the file's first message).
    pub fn register(
        schema_file: &Path,
        message_name: Option<&str>,
        registry: &str,
        subject: &str,
        credentials: Option<&Credentials>,
    ) -> Result<Self> {
        let directory = schema_file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let name = schema_file.file_name().and_then(|n| n.to_str()).ok_or("--schema-file needs a file name")?;
        let mut compiler = protox::Compiler::new([directory])?;
        compiler.open_file(name)?;
        let file = compiler.descriptor_pool().get_file_by_name(name).ok_or("the schema file did not compile")?;
        let message = match message_name {
            Some(wanted) => file
                .messages()
                .chain(file.messages().flat_map(|m| all_nested(&m)))
                .find(|m| m.full_name() == wanted || m.name() == wanted)
                .ok_or_else(|| format!("no message {wanted} in {name}"))?,
            None => file.messages().next().ok_or_else(|| format!("{name} has no message"))?,
        };
        let (id, _) = register_file(&file, directory, registry, Some(subject), credentials)?;
        let mut header = vec![0];
        header.extend_from_slice(&id.to_be_bytes());
        header.extend(message_indexes(&message));
        Ok(ProtobufEncoder { message, header })
    }

    pub fn encode(&self, json: &serde_json::Value) -> Result<Vec<u8>> {
        let message = DynamicMessage::deserialize(self.message.clone(), json)?;
        Ok([self.header.clone(), message.encode_to_vec()].concat())
    }
}

/// Every message nested in `message`, at any depth.
fn all_nested(message: &MessageDescriptor) -> Vec<MessageDescriptor> {
    message.child_messages().flat_map(|child| std::iter::once(child.clone()).chain(all_nested(&child))).collect()
}

/// Registers `file` (under `subject`, or its own name for an import) after the files it
/// imports; its id and version.
fn register_file(
    file: &FileDescriptor,
    directory: &Path,
    registry: &str,
    subject: Option<&str>,
    credentials: Option<&Credentials>,
) -> Result<(u32, i64)> {
    let mut references = Vec::new();
    for import in file.dependencies().filter(|d| !d.name().starts_with("google/protobuf/")) {
        let (_, version) = register_file(&import, directory, registry, None, credentials)?;
        references.push((import.name().to_string(), import.name().to_string(), version));
    }
    let text = std::fs::read_to_string(directory.join(file.name()))?;
    let schema = NewSchema { text: &text, schema_type: Some("PROTOBUF"), references };
    registry_client::register(registry, subject.unwrap_or(file.name()), &schema, credentials)
}

/// Confluent's message indexes of `message`: the path from the file's top-level
/// messages down to it, zigzag varints after their count; `[0]` as the single byte 0.
fn message_indexes(message: &MessageDescriptor) -> Vec<u8> {
    let mut path = Vec::new();
    let mut current = message.clone();
    loop {
        let siblings: Vec<MessageDescriptor> = match current.parent_message() {
            Some(parent) => parent.child_messages().collect(),
            None => current.parent_file().messages().collect(),
        };
        path.push(siblings.iter().position(|m| m.full_name() == current.full_name()).unwrap_or(0) as i64);
        match current.parent_message() {
            Some(parent) => current = parent,
            None => break,
        }
    }
    path.reverse();
    if path == [0] {
        return vec![0];
    }
    let mut bytes = Vec::new();
    for value in std::iter::once(path.len() as i64).chain(path) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        loop {
            let byte = (zigzag & 0x7f) as u8;
            zigzag >>= 7;
            if zigzag == 0 {
                bytes.push(byte);
                break;
            }
            bytes.push(byte | 0x80);
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_follow_confluents_encoding() {
        let directory = std::env::temp_dir().join(format!("kafka-tool-proto-{}", std::process::id()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(directory.join("t.proto"), "syntax = \"proto3\"; message A { message B {} message C { message D {} } } message E {}").unwrap();
        let mut compiler = protox::Compiler::new([&directory]).unwrap();
        compiler.open_file("t.proto").unwrap();
        let pool = compiler.descriptor_pool();
        let indexes = |name: &str| message_indexes(&pool.get_message_by_name(name).unwrap());
        assert_eq!(indexes("A"), vec![0]);
        assert_eq!(indexes("E"), vec![2, 2]);
        assert_eq!(indexes("A.C.D"), vec![6, 0, 2, 0]);
        std::fs::remove_dir_all(&directory).unwrap();
    }
}
