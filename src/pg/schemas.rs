//! Where a table's writer schemas and record encoders come from: its `avro_schema`, or
//! its server's Schema Registry asked with the current user's credentials, the compiled
//! schemas kept in the backend's cache (bounded by `kafka_fdw.schema_cache_size`); and the
//! schema INSERT registers when the subject has none (`auto_register`).

use std::cell::RefCell;
use std::time::Instant;

use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys;

use crate::codec::avro::{AvroSchema, WriterSchemas};
use crate::codec::avro_encode::{self, AvroEncoder};
use crate::codec::encode::{DerivedField, RecordEncoder};
use crate::codec::protobuf::ProtobufSchema;
use crate::codec::protobuf_encode::{self, ProtobufEncoder};
use crate::codec::error::CodecError;
use crate::codec::Format;
use crate::codec::cache::SchemaCache;
use crate::codec::wire::{CompiledSchema, SchemaById, WriterSchema};
use crate::error::{ErrorKind, FdwError};
use crate::registry::{self, RegisteredSchema, RegistryError, RegistrySettings};
use crate::options::ServerOptions;
use crate::pg::catalog::{self, ForeignTableDef};
use crate::pg::clients::check_interrupts;
use crate::pg::errors::{codec_error, raise, sentence, OrRaise};

/// `kafka_fdw.schema_cache_size`, in kB: the most the backend's compiled writer schemas
/// may weigh.
static SCHEMA_CACHE_SIZE: GucSetting<i32> = GucSetting::<i32>::new(64 * 1024);

/// Defines the settings of this module; called from `_PG_init`.
pub fn define_settings() {
    GucRegistry::define_int_guc(
        c"kafka_fdw.schema_cache_size",
        c"The most memory a backend keeps Schema Registry writer schemas in.",
        c"Writer schemas are kept compiled, by registry, user mapping and schema id; the least recently used go first. A scan keeps the schema it reads the current message with, whatever the size.",
        &SCHEMA_CACHE_SIZE,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::UNIT_KB,
    );
}

thread_local! {
    /// Writer schemas by registry URLs, user mapping and id, compiled, for as long as they
    /// fit (a schema id never changes meaning). Keyed by user mapping too, so a role never
    /// reads a schema another role's credentials fetched.
    static REGISTRY_SCHEMAS: RefCell<SchemaCache> = RefCell::new(SchemaCache::new(0));
}

/// The error of a table's `avro_schema` that the codecs refuse (checked when the table
/// was defined, so only a schema Avro's own parser reads otherwise).
const AVRO_SCHEMA_UNUSABLE: &str = "the table's avro_schema cannot be used";

/// Where an Avro or Protobuf table's writer schemas come from: its `avro_schema`, or its server's
/// Schema Registry, asked with the current user's credentials.
pub fn writer_schemas(definition: &ForeignTableDef) -> WriterSchemas {
    if let Some(text) = &definition.table.avro_schema {
        let schema = AvroSchema::parse(text).map_err(|e| codec_error(AVRO_SCHEMA_UNUSABLE, e));
        return WriterSchemas::Given(schema.or_raise());
    }
    registry_writer_schemas(definition, MessagePart::Value)
}

/// The part of a message a schema describes (Confluent's subjects `<topic>-key` and `<topic>-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessagePart {
    Key,
    Value,
}

impl MessagePart {
    /// What TopicNameStrategy appends to the topic's name.
    pub fn suffix(self) -> &'static str {
        match self {
            MessagePart::Key => "key",
            MessagePart::Value => "value",
        }
    }
}

/// What INSERT and COPY encode an Avro or Protobuf table's rows (or keys) with: its `avro_schema`
/// (bare datums), or the latest schema of the topic's value subject (Confluent's
/// TopicNameStrategy, `<topic>-value`), asked once per statement as the current user;
/// under `auto_register`, a subject without one gets a schema derived from `columns`.
pub fn record_encoder(definition: &ForeignTableDef, part: MessagePart, columns: &[DerivedField<'_>]) -> RecordEncoder {
    let suffix = part.suffix();
    let (format, message_type) = match part {
        MessagePart::Value => (definition.table.format, definition.table.protobuf_message.as_deref()),
        MessagePart::Key => (definition.table.key_format, None),
    };
    if let (Some(text), MessagePart::Value) = (&definition.table.avro_schema, part) {
        return RecordEncoder::Avro(AvroEncoder::new(text, None).map_err(|e| codec_error(AVRO_SCHEMA_UNUSABLE, e)).or_raise());
    }
    let topic = definition.single_topic("INSERT with the schemas of a Schema Registry");
    let (settings, _) = registry_settings(definition.server_id, &definition.server);
    let subject = format!("{topic}-{suffix}");
    let latest = match or_not_found(registry::schema_by_version(&settings, &subject, "latest")) {
        Ok(latest) => latest,
        Err(_) if definition.table.auto_register => register_derived(&settings, &subject, format, topic, columns),
        Err(why) => raise(
            FdwError::new(ErrorKind::ObjectNotInPrerequisiteState, format!("the schema registry has no schema for subject \"{subject}\""))
                .with_detail(sentence(&why))
                .with_hint(format!("Register the topic's {suffix} schema (subject <topic>-{suffix}), or set the table option auto_register 'true' to register one derived from the table's columns.")),
        ),
    };
    let schema_problem = |why: CodecError| codec_error(format!("cannot produce with the latest schema of subject \"{subject}\""), why);
    let id = latest.id.ok_or_else(|| schema_problem(CodecError::Schema("the registry's answer gives no schema id".to_string()))).or_raise();
    let encoder = match (format, latest.schema_type.as_str()) {
        (Format::Avro, "AVRO") => {
            AvroEncoder::new(&latest.schema, Some(id)).map(RecordEncoder::Avro)
        }
        (Format::Protobuf, "PROTOBUF") => {
            or_not_found(registry::referenced_schemas(&settings, &latest))
                .map_err(CodecError::Schema)
                .and_then(|references| ProtobufSchema::compile(&latest.schema, &references))
                .and_then(|schema| ProtobufEncoder::new(&schema, id, message_type))
                .map(RecordEncoder::Protobuf)
        }
        (format, other) => Err(CodecError::Schema(format!(
            "it is a {other} schema, but the table's {} is '{}'",
            if part == MessagePart::Key { "key_format" } else { "format" },
            format.name()
        ))),
    };
    encoder.map_err(schema_problem).or_raise()
}

/// Registers a schema derived from the table's columns under `subject`; what the
/// registry holds for the subject afterwards (its id included).
fn register_derived(
    settings: &RegistrySettings,
    subject: &str,
    format: Format,
    topic: &str,
    columns: &[DerivedField<'_>],
) -> RegisteredSchema {
    let (schema_type, derived) = match format {
        Format::Protobuf => ("PROTOBUF", protobuf_encode::derived_schema(topic, columns)),
        _ => ("AVRO", avro_encode::derived_schema(topic, columns)),
    };
    let cannot = |why: CodecError| codec_error(format!("could not register a schema for subject \"{subject}\""), why);
    let schema = derived.map_err(cannot).or_raise();
    let id = match registry::register(settings, subject, schema_type, &schema) {
        Ok(id) => id,
        Err(RegistryError::Refused(why)) => raise(cannot(CodecError::Schema(why))),
        Err(other) => raise(other.into()),
    };
    RegisteredSchema { schema, schema_type: schema_type.to_string(), references: Vec::new(), id: Some(id) }
}

/// Writer schemas of the table's values or keys from its server's registry (whatever the
/// table's value format: keys in a registry format, `key_format`, are read with them too).
pub fn registry_writer_schemas(definition: &ForeignTableDef, part: MessagePart) -> WriterSchemas {
    let (settings, user_mapping) = registry_settings(definition.server_id, &definition.server);
    // A table over several topics has no one subject: its messages are read with their
    // writer schemas only, without defaults from a subject's latest schema.
    let subject = definition.table.topics.single().map(|topic| format!("{topic}-{}", part.suffix()));
    let source = format!("{} {}", user_mapping.to_u32(), settings.urls.join(","));
    WriterSchemas::Registry(Box::new(RegistrySchemas { source, settings, subject }))
}

/// How to ask a server's Schema Registry as the current user, and that user's mapping.
pub fn registry_settings(server_id: pg_sys::Oid, server: &ServerOptions) -> (RegistrySettings, pg_sys::Oid) {
    // SAFETY: catalog lookups inside a transaction.
    let (own, user_mapping) = unsafe {
        let mapping = catalog::current_user_mapping(server_id);
        (catalog::user_mapping_options(server_id), (*mapping).umid)
    };
    let settings = RegistrySettings {
        urls: server.schema_registry.clone(),
        credentials: own.registry_credentials,
        ca_pem: own.registry_ca_pem.or_else(|| server.registry_ca_pem.clone()),
        timeout: server.timeout,
        interrupt: check_interrupts,
    };
    (settings, user_mapping)
}

/// Writer schemas fetched from a registry, kept in the backend's cache.
struct RegistrySchemas {
    /// The user mapping and the registry URLs: whose schemas in the cache these are.
    source: String,
    settings: RegistrySettings,
    /// The subject the messages are read from (TopicNameStrategy), for its latest schema.
    subject: Option<String>,
}

impl SchemaById for RegistrySchemas {
    fn schema(&mut self, id: u32) -> Result<CompiledSchema, CodecError> {
        let settings = &self.settings;
        REGISTRY_SCHEMAS.with_borrow_mut(|cache| {
            cache.set_capacity(SCHEMA_CACHE_SIZE.get() as usize * 1024);
            cache.schema(&self.source, id, Instant::now(), || {
                let found = registry::schema_by_id(settings, id).and_then(|registered| {
                    let references = registry::referenced_schemas(settings, &registered)?;
                    Ok(WriterSchema { schema_type: registered.schema_type, text: registered.schema, references })
                });
                or_not_found(found).map_err(CodecError::Schema)
            })
        })
    }

    /// Asked once per scan (a subject's latest version changes; ids never do).
    fn latest(&mut self) -> Option<WriterSchema> {
        let latest = registry_latest(&self.settings, self.subject.as_deref()?)?;
        Some(WriterSchema { schema_type: latest.schema_type, text: latest.schema, references: Vec::new() })
    }
}

/// The latest version of `subject`, if the registry has the subject.
pub fn registry_latest(settings: &RegistrySettings, subject: &str) -> Option<RegisteredSchema> {
    or_not_found(registry::schema_by_version(settings, subject, "latest")).ok()
}

/// The registry's answer, or why it has none (`NotFound`: a schema, subject, version or
/// reference it does not have); any other failure (no answer, refused credentials) raises.
pub fn or_not_found<T>(answer: Result<T, RegistryError>) -> Result<T, String> {
    match answer {
        Err(RegistryError::NotFound(why)) => Err(why),
        answer => Ok(answer.or_raise()),
    }
}
