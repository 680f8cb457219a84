//! The error type of the pure modules, and the hook for a cancelled query that their
//! waits call.
//!
//! Option parsing and the Kafka client report problems as [`FdwError`]: a
//! SQLSTATE class plus message, detail and hint, in PostgreSQL's style. The codecs and
//! the Schema Registry client have their own error types (`codec::error::CodecError`,
//! `registry::RegistryError`), which say what went wrong; `pg::errors` gives each its
//! SQLSTATE, DETAIL and HINT, and is the only place that turns an error into an
//! `ereport`, so the pure modules stay testable without a server.

use std::fmt;

/// The host's check for a cancelled query, which the clients (Kafka, the Schema Registry)
/// call between the short slices every wait is cut into. In a backend this is
/// `CHECK_FOR_INTERRUPTS`, which unwinds.
pub type Interrupt = fn();

/// The SQLSTATEs this extension raises, named for what went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// HV00D: an option name that does not exist at this level.
    InvalidOptionName,
    /// HV00J: a required option is missing.
    OptionNameNotFound,
    /// 22023: an option value that cannot be used.
    InvalidParameterValue,
    /// HV004: a column whose type cannot hold what its option asks for.
    InvalidDataType,
    /// HV00N: no broker answered within the bounded wait.
    UnableToEstablishConnection,
    /// HV000: any other Kafka-side failure.
    Kafka,
    /// 42501: a superuser-only option set by another role.
    InsufficientPrivilege,
    /// 55000: stored state that no longer fits (import offsets past a topic's end).
    ObjectNotInPrerequisiteState,
    /// 25000: a transaction that can no longer do what is asked (commit after its Kafka
    /// writes were rolled back).
    InvalidTransactionState,
    /// 0A000: something Kafka or this wrapper cannot do (choosing an offset).
    FeatureNotSupported,
    /// 23502: a row without a value it must have (the topic of a row inserted into a
    /// table over several topics).
    NotNullViolation,
    /// 22003: a number outside the range Kafka accepts (a partition beyond i32).
    NumericValueOutOfRange,
    /// 22P02: a value that cannot be written in the table's format.
    InvalidTextRepresentation,
    /// 22P04: a message that is not a record of the table's format, as COPY reports a
    /// malformed line.
    BadMessageFormat,
    /// 22021: bytes that are not UTF-8 where text is needed.
    CharacterNotInRepertoire,
    /// XX000: the extension's own SQL failed where it cannot (a bug, or a damaged
    /// installation).
    Internal,
    /// An error PostgreSQL raised (a type's input function) and the glue caught, raised
    /// again with its own SQLSTATE, packed as PostgreSQL's MAKE_SQLSTATE packs it.
    Reported(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FdwError {
    pub kind: ErrorKind,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl FdwError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        FdwError { kind, message: message.into(), detail: None, hint: None }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for FdwError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, " (DETAIL: {detail})")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, " (HINT: {hint})")?;
        }
        Ok(())
    }
}

impl std::error::Error for FdwError {}

pub type FdwResult<T> = Result<T, FdwError>;

/// `text` with its first letter upper-case: PostgreSQL's style for a DETAIL, which is a
/// sentence, made from a clause.
pub fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}
