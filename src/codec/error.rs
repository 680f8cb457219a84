//! What goes wrong in a codec, classed by what it means for the statement: the glue
//! (`pg::errors::codec_error`) gives each class its SQLSTATE.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// Bytes that are not a message of their format or of their writer schema: a bad
    /// message, which the table's `on_error` skips or reports at its position.
    Malformed(String),
    /// A schema (given, registered or derived) that does not parse or compile, lacks
    /// what is asked of it (a record, a message type), or that messages name but the
    /// registry does not have.
    Schema(String),
    /// A row's value that the format or the schema cannot hold.
    Unwritable(String),
}

impl CodecError {
    /// Why, in the codec's words.
    pub fn reason(&self) -> &str {
        match self {
            CodecError::Malformed(reason) | CodecError::Schema(reason) | CodecError::Unwritable(reason) => reason,
        }
    }

    /// The same error, its reason prefixed with where in the value it arose (`column
    /// "x"`, `item 2`).
    pub fn within(self, place: impl fmt::Display) -> Self {
        self.map_reason(|reason| format!("{place}: {reason}"))
    }

    /// The same error with its reason rewritten by `rewrite`.
    pub fn map_reason(self, rewrite: impl FnOnce(String) -> String) -> Self {
        match self {
            CodecError::Malformed(reason) => CodecError::Malformed(rewrite(reason)),
            CodecError::Schema(reason) => CodecError::Schema(rewrite(reason)),
            CodecError::Unwritable(reason) => CodecError::Unwritable(rewrite(reason)),
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.reason())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_located_error_keeps_its_class() {
        let error = CodecError::Unwritable("\"x\" is not an int".to_string()).within("item 2").within("column \"a\"");
        assert_eq!(error, CodecError::Unwritable("column \"a\": item 2: \"x\" is not an int".to_string()));
        assert_eq!(error.to_string(), error.reason());
    }
}
