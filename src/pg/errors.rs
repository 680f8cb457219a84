//! Raising the pure modules' [`FdwError`]s as PostgreSQL errors.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::codec::error::CodecError;
use crate::error::{capitalized, ErrorKind, FdwError};
use crate::pg::encoding;
use crate::registry::RegistryError;

fn sqlstate(kind: ErrorKind) -> PgSqlErrorCode {
    match kind {
        ErrorKind::InvalidOptionName => PgSqlErrorCode::ERRCODE_FDW_INVALID_OPTION_NAME,
        ErrorKind::OptionNameNotFound => PgSqlErrorCode::ERRCODE_FDW_OPTION_NAME_NOT_FOUND,
        ErrorKind::InvalidParameterValue => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::InvalidDataType => PgSqlErrorCode::ERRCODE_FDW_INVALID_DATA_TYPE,
        ErrorKind::UnableToEstablishConnection => PgSqlErrorCode::ERRCODE_FDW_UNABLE_TO_ESTABLISH_CONNECTION,
        ErrorKind::Kafka => PgSqlErrorCode::ERRCODE_FDW_ERROR,
        ErrorKind::InsufficientPrivilege => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
        ErrorKind::ObjectNotInPrerequisiteState => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        ErrorKind::FeatureNotSupported => PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
        ErrorKind::NotNullViolation => PgSqlErrorCode::ERRCODE_NOT_NULL_VIOLATION,
        ErrorKind::NumericValueOutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        ErrorKind::InvalidTextRepresentation => PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
        ErrorKind::BadMessageFormat => PgSqlErrorCode::ERRCODE_BAD_COPY_FILE_FORMAT,
        ErrorKind::CharacterNotInRepertoire => PgSqlErrorCode::ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
        ErrorKind::Internal => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        ErrorKind::InvalidTransactionState => PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE,
        ErrorKind::Reported(code) => PgSqlErrorCode::from(code),
    }
}

/// The kind of an ERROR PostgreSQL raised, for raising it again as an [`FdwError`].
pub fn reported_kind(code: PgSqlErrorCode) -> ErrorKind {
    ErrorKind::Reported(code as i32)
}

/// Whether `code` is of the class (its first two characters) of `class`.
pub fn is_of_class(code: PgSqlErrorCode, class: PgSqlErrorCode) -> bool {
    // MAKE_SQLSTATE packs each character in 6 bits, the first in the lowest.
    (code as i32 & 0xfff) == (class as i32 & 0xfff)
}

/// Raises `error` as an ERROR with its SQLSTATE, detail and hint: the one way this
/// extension raises an error.
pub fn raise(error: FdwError) -> ! {
    let mut report = ErrorReport::new(sqlstate(error.kind), encoding::report_text(error.message), "kafka_fdw");
    if let Some(detail) = error.detail {
        report = report.set_detail(encoding::report_text(detail));
    }
    if let Some(hint) = error.hint {
        report = report.set_hint(encoding::report_text(hint));
    }
    report.report(PgLogLevel::ERROR);
    unreachable!("ERROR does not return")
}

/// A Schema Registry's failure as an ERROR. Callers that expect `NotFound` or `Refused`
/// (a bad message, a subject to register) match them first and say more.
impl From<RegistryError> for FdwError {
    fn from(error: RegistryError) -> Self {
        match error {
            RegistryError::NotFound(why) => {
                FdwError::new(ErrorKind::ObjectNotInPrerequisiteState, "the schema registry has no such schema").with_detail(sentence(&why))
            }
            RegistryError::Refused(why) => {
                FdwError::new(ErrorKind::ObjectNotInPrerequisiteState, "the schema registry refused the schema").with_detail(sentence(&why))
            }
            RegistryError::Credentials(url) => FdwError::new(ErrorKind::InsufficientPrivilege, "the schema registry refused the credentials")
                .with_detail(format!("{url} answered HTTP 401/403."))
                .with_hint("Set schema_registry.username and schema_registry.password in the user mapping."),
            RegistryError::Unreachable(failures) => {
                FdwError::new(ErrorKind::UnableToEstablishConnection, "could not reach the schema registry").with_detail(failures.join("; "))
            }
            error @ RegistryError::BadAnswer { .. } => FdwError::new(ErrorKind::Kafka, error.to_string()),
            RegistryError::Certificates(why) => {
                FdwError::new(ErrorKind::InvalidParameterValue, "invalid schema_registry.ca.pem").with_detail(sentence(&why))
            }
        }
    }
}

/// The SQLSTATE of a codec's failure: a bad message, a schema that cannot be used, a
/// value the format cannot hold.
pub fn codec_kind(error: &CodecError) -> ErrorKind {
    match error {
        CodecError::Malformed(_) => ErrorKind::BadMessageFormat,
        CodecError::Schema(_) => ErrorKind::ObjectNotInPrerequisiteState,
        CodecError::Unwritable(_) => ErrorKind::InvalidTextRepresentation,
    }
}

/// A codec's failure as an ERROR: `message` says what was being done, the failure its
/// SQLSTATE ([`codec_kind`]) and DETAIL.
pub fn codec_error(message: impl Into<String>, error: CodecError) -> FdwError {
    FdwError::new(codec_kind(&error), message).with_detail(sentence(error.reason()))
}

/// `why` as a DETAIL: capitalized, ending with a period.
pub fn sentence(why: &str) -> String {
    let why = capitalized(why);
    if why.ends_with('.') {
        why
    } else {
        format!("{why}.")
    }
}

pub trait OrRaise<T> {
    /// The value, or the error raised as an ERROR.
    fn or_raise(self) -> T;
}

impl<T, E: Into<FdwError>> OrRaise<T> for Result<T, E> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|error| raise(error.into()))
    }
}

pub trait OrInternal<T> {
    /// The value, or an internal ERROR (XX000) saying what failed: for the extension's
    /// own SQL (SPI), which fails only through a bug or a damaged installation.
    fn or_internal(self, what: &str) -> T;
}

impl<T, E: std::fmt::Display> OrInternal<T> for Result<T, E> {
    fn or_internal(self, what: &str) -> T {
        self.unwrap_or_else(|error| raise(FdwError::new(ErrorKind::Internal, format!("{what}: {error}"))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_codec_failure_has_its_sqlstate_and_its_reason_as_detail() {
        let error = codec_error("could not encode the row as an Avro record", CodecError::Unwritable("column \"a\": 1.5 does not fit".into()));
        assert_eq!(
            error,
            FdwError::new(ErrorKind::InvalidTextRepresentation, "could not encode the row as an Avro record")
                .with_detail("Column \"a\": 1.5 does not fit.")
        );
        assert_eq!(codec_kind(&CodecError::Malformed(String::new())), ErrorKind::BadMessageFormat);
        assert_eq!(codec_kind(&CodecError::Schema(String::new())), ErrorKind::ObjectNotInPrerequisiteState);
    }

    #[test]
    fn registry_failures_say_what_to_do() {
        let refused = FdwError::from(RegistryError::Credentials("http://r:8081".into()));
        assert_eq!(refused.kind, ErrorKind::InsufficientPrivilege);
        assert_eq!(refused.detail.as_deref(), Some("http://r:8081 answered HTTP 401/403."));
        assert!(refused.hint.unwrap().contains("user mapping"));
        let unreachable = FdwError::from(RegistryError::Unreachable(vec!["http://a: refused".into(), "http://b: timed out".into()]));
        assert_eq!((unreachable.kind, unreachable.detail.as_deref()), (ErrorKind::UnableToEstablishConnection, Some("http://a: refused; http://b: timed out")));
        let missing = FdwError::from(RegistryError::NotFound("subject \"t-value\" not found".into()));
        assert_eq!((missing.kind, missing.detail.as_deref()), (ErrorKind::ObjectNotInPrerequisiteState, Some("Subject \"t-value\" not found.")));
        let odd = FdwError::from(RegistryError::BadAnswer { url: "http://r".into(), why: "not JSON".into() });
        assert_eq!((odd.kind, odd.message.as_str()), (ErrorKind::Kafka, "unexpected answer from the schema registry at http://r: not JSON"));
    }
}
