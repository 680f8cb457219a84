//! Raising the pure modules' [`FdwError`]s as PostgreSQL errors.

use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};

use crate::error::{ErrorKind, FdwError, FdwResult};
use crate::pg::encoding;

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

pub trait OrRaise<T> {
    /// The value, or the error raised as an ERROR.
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for FdwResult<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|error| raise(error))
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
