//! A foreign table's layout: where each attribute's value comes from (a message
//! property or a payload field), checked against the table-wide column rules.

use crate::codec::json::JsonPath;
use crate::codec::{ColumnType, FieldDef, Format};
use crate::error::{ErrorKind, FdwError, FdwResult};

use super::{ColumnOptions, ColumnRole, MetaColumn, OnError, TableOptions};

impl MetaColumn {
    fn allowed_types(self) -> (&'static [ColumnType], &'static str) {
        use ColumnType::*;
        match self {
            MetaColumn::Partition => (&[SmallInt, Integer, BigInt], "smallint, integer or bigint"),
            MetaColumn::Offset => (&[BigInt], "bigint"),
            MetaColumn::Key => (&[Text, Bytea], "text or bytea"),
            MetaColumn::Timestamp => (&[TimestampTz], "timestamp with time zone"),
            MetaColumn::Headers => (&[Jsonb], "jsonb"),
            MetaColumn::Topic | MetaColumn::Junk | MetaColumn::JunkError => (&[Text], "text"),
        }
    }
}

/// One attribute of a foreign table, as the glue reads it from the catalog.
#[derive(Debug, Clone)]
pub struct ColumnDef {
    pub name: String,
    pub column_type: ColumnType,
    pub options: ColumnOptions,
    pub dropped: bool,
}

/// What the scan fills into each attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnSource {
    /// A message property, and the column's type.
    Meta(MetaColumn, ColumnType),
    /// The n-th field of the payload (0-based, counting data columns only).
    Field(usize),
    /// The n-th field of the decoded key (`key_format` json, avro or protobuf): a key
    /// field column, or the key column itself (the whole key).
    KeyField(usize),
    /// A dropped attribute: always NULL.
    Dropped,
}

/// Where every attribute's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableLayout {
    /// Indexed by attribute number - 1.
    pub columns: Vec<ColumnSource>,
    /// Indexed by `ColumnSource::Field`'s number.
    pub fields: Vec<FieldDef>,
    /// Indexed by `ColumnSource::KeyField`'s number.
    pub key_fields: Vec<FieldDef>,
}

impl TableLayout {
    /// Whether a `junk` or `junk_error` column collects bad messages.
    pub fn has_junk_columns(&self) -> bool {
        self.columns
            .iter()
            .any(|c| matches!(c, ColumnSource::Meta(MetaColumn::Junk | MetaColumn::JunkError, _)))
    }
}

/// Checks the table-wide column rules (at most one column per meta property, of a type
/// that can hold it; what the format needs of the data columns) and returns where each
/// attribute's value comes from.
pub fn table_layout(columns: &[ColumnDef], table: &TableOptions) -> FdwResult<TableLayout> {
    let mut layout = TableLayout { columns: Vec::with_capacity(columns.len()), fields: Vec::new(), key_fields: Vec::new() };
    let structured_keys = table.key_format != Format::Raw;
    let mut declared: Vec<(MetaColumn, &str)> = Vec::new();
    for column in columns {
        if column.dropped {
            layout.columns.push(ColumnSource::Dropped);
            continue;
        }
        let source = match column.options.role {
            ColumnRole::Data => {
                if column.options.path.is_some() && !table.format.has_fields() {
                    return Err(FdwError::new(
                        ErrorKind::InvalidParameterValue,
                        format!("column \"{}\" has option \"json\" or \"field\", but the table's format is not json, avro or protobuf", column.name),
                    ));
                }
                let json_path = match &column.options.path {
                    Some(path) => path.clone(),
                    None => JsonPath::Keys(vec![column.name.clone()]),
                };
                layout.fields.push(FieldDef { name: column.name.clone(), column_type: column.column_type, json_path });
                ColumnSource::Field(layout.fields.len() - 1)
            }
            ColumnRole::KeyField => {
                if !structured_keys {
                    return Err(FdwError::new(
                        ErrorKind::InvalidParameterValue,
                        format!("column \"{}\" reads a field of the key, but the table's key_format is text or bytea", column.name),
                    )
                    .with_hint("Set the table option key_format to json, avro or protobuf."));
                }
                let json_path = column.options.path.clone().unwrap_or(JsonPath::Whole);
                layout.key_fields.push(FieldDef { name: column.name.clone(), column_type: column.column_type, json_path });
                ColumnSource::KeyField(layout.key_fields.len() - 1)
            }
            ColumnRole::Meta(meta) => {
                if let Some((_, first)) = declared.iter().find(|(m, _)| *m == meta) {
                    return Err(FdwError::new(
                        ErrorKind::InvalidParameterValue,
                        format!("only one column may have option \"{}\"", meta.option_name()),
                    )
                    .with_detail(format!("Columns \"{first}\" and \"{}\" both have it.", column.name)));
                }
                declared.push((meta, &column.name));
                if meta == MetaColumn::Key && structured_keys {
                    // The whole decoded key, in a column of any type (JSON in json/jsonb).
                    let field = FieldDef { name: column.name.clone(), column_type: column.column_type, json_path: JsonPath::Whole };
                    layout.key_fields.push(field);
                    layout.columns.push(ColumnSource::KeyField(layout.key_fields.len() - 1));
                    continue;
                }
                let (allowed, description) = meta.allowed_types();
                if !allowed.contains(&column.column_type) {
                    return Err(FdwError::new(
                        ErrorKind::InvalidDataType,
                        format!(
                            "column \"{}\" with option \"{}\" must be of type {description}",
                            column.name,
                            meta.option_name()
                        ),
                    ));
                }
                ColumnSource::Meta(meta, column.column_type)
            }
        };
        layout.columns.push(source);
    }
    // A JSON or Avro table whose one data column is json or jsonb, with no `json` or
    // `field` option, gets the whole message.
    let data_columns: Vec<&ColumnDef> = columns.iter().filter(|c| !c.dropped && c.options.role == ColumnRole::Data).collect();
    if let ([field], [column]) = (layout.fields.as_mut_slice(), data_columns.as_slice()) {
        if table.format.has_fields()
            && column.options.path.is_none()
            && matches!(field.column_type, ColumnType::Json | ColumnType::Jsonb)
        {
            field.json_path = JsonPath::Whole;
        }
    }
    if table.format == Format::Raw
        && !matches!(layout.fields.as_slice(), [field] if matches!(field.column_type, ColumnType::Text | ColumnType::Bytea))
    {
        return Err(FdwError::new(
            ErrorKind::InvalidDataType,
            "a table with format \"raw\" must have exactly one data column, of type text or bytea",
        ));
    }
    if table.on_error == OnError::Skip && layout.has_junk_columns() {
        return Err(FdwError::new(
            ErrorKind::InvalidParameterValue,
            "on_error 'skip' drops bad messages, so a junk or junk_error column would stay empty",
        )
        .with_hint("Use junk columns or on_error 'skip', not both."));
    }
    Ok(layout)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::parse_table;

    const PARTITION: ColumnRole = ColumnRole::Meta(MetaColumn::Partition);
    const OFFSET: ColumnRole = ColumnRole::Meta(MetaColumn::Offset);

    fn table_with(pairs: &[(&str, &str)]) -> TableOptions {
        let mut all = vec![("topic", "t")];
        all.extend_from_slice(pairs);
        let all: Vec<(String, String)> = all.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        parse_table(&all).unwrap()
    }

    fn col(name: &str, column_type: ColumnType, role: ColumnRole) -> ColumnDef {
        ColumnDef { name: name.into(), column_type, options: ColumnOptions { role, path: None }, dropped: false }
    }

    fn layout(columns: &[ColumnDef]) -> FdwResult<Vec<ColumnSource>> {
        table_layout(columns, &table_with(&[])).map(|l| l.columns)
    }

    #[test]
    fn layout_maps_data_columns_positionally() {
        let mut dropped = col("gone", ColumnType::Other, ColumnRole::Data);
        dropped.dropped = true;
        let table = table_layout(
            &[
                col("part", ColumnType::Integer, PARTITION),
                col("a", ColumnType::Other, ColumnRole::Data),
                dropped,
                col("offs", ColumnType::BigInt, OFFSET),
                col("b", ColumnType::Integer, ColumnRole::Data),
                col("k", ColumnType::Bytea, ColumnRole::Meta(MetaColumn::Key)),
            ],
            &table_with(&[]),
        )
        .unwrap();
        assert_eq!(
            table.columns,
            vec![
                ColumnSource::Meta(MetaColumn::Partition, ColumnType::Integer),
                ColumnSource::Field(0),
                ColumnSource::Dropped,
                ColumnSource::Meta(MetaColumn::Offset, ColumnType::BigInt),
                ColumnSource::Field(1),
                ColumnSource::Meta(MetaColumn::Key, ColumnType::Bytea),
            ]
        );
        assert_eq!(table.fields.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(!table.has_junk_columns());
    }

    #[test]
    fn layout_rejects_duplicate_and_mistyped_meta_columns() {
        let err = layout(&[col("p1", ColumnType::Integer, PARTITION), col("p2", ColumnType::Integer, PARTITION)]).unwrap_err();
        assert_eq!(err.message, "only one column may have option \"partition\"");
        let err = layout(&[col("p", ColumnType::Other, PARTITION)]).unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidDataType);
        let err = layout(&[col("o", ColumnType::Integer, OFFSET)]).unwrap_err();
        assert_eq!(err.message, "column \"o\" with option \"offset\" must be of type bigint");
        let err = layout(&[col("t", ColumnType::Text, ColumnRole::Meta(MetaColumn::Timestamp))]).unwrap_err();
        assert_eq!(err.message, "column \"t\" with option \"timestamp\" must be of type timestamp with time zone");
        layout(&[col("p", ColumnType::SmallInt, PARTITION)]).unwrap();
    }

    #[test]
    fn layout_rules_of_formats() {
        let json = table_with(&[("format", "json")]);
        let mut keyed = col("a", ColumnType::Integer, ColumnRole::Data);
        keyed.options.path = Some(JsonPath::parse("x.y").unwrap());
        let fields = table_layout(&[keyed.clone(), col("b", ColumnType::Text, ColumnRole::Data)], &json).unwrap().fields;
        assert_eq!(fields[0].json_path, JsonPath::Keys(vec!["x".into(), "y".into()]));
        assert_eq!(fields[1].json_path, JsonPath::Keys(vec!["b".into()]));
        // A lone jsonb data column takes the whole message.
        let whole = table_layout(&[col("doc", ColumnType::Jsonb, ColumnRole::Data), col("p", ColumnType::Integer, PARTITION)], &json);
        assert_eq!(whole.unwrap().fields[0].json_path, JsonPath::Whole);
        // json applies to JSON tables only.
        assert!(table_layout(&[keyed], &table_with(&[])).is_err());
        let raw = table_with(&[("format", "raw")]);
        table_layout(&[col("payload", ColumnType::Bytea, ColumnRole::Data)], &raw).unwrap();
        assert!(table_layout(&[col("a", ColumnType::Text, ColumnRole::Data), col("b", ColumnType::Text, ColumnRole::Data)], &raw).is_err());
        assert!(table_layout(&[col("n", ColumnType::Integer, ColumnRole::Data)], &raw).is_err());
        // Keys with fields: the key column is the whole key, key field columns its fields.
        let keyed = table_with(&[("key_format", "json")]);
        let mut key_id = col("kid", ColumnType::Integer, ColumnRole::KeyField);
        key_id.options.path = Some(JsonPath::parse("id").unwrap());
        let key = col("k", ColumnType::Jsonb, ColumnRole::Meta(MetaColumn::Key));
        let layout = table_layout(&[key.clone(), key_id.clone(), col("v", ColumnType::Text, ColumnRole::Data)], &keyed).unwrap();
        assert_eq!(layout.columns, vec![ColumnSource::KeyField(0), ColumnSource::KeyField(1), ColumnSource::Field(0)]);
        assert_eq!(layout.key_fields[0].json_path, JsonPath::Whole);
        assert_eq!(layout.key_fields[1].json_path, JsonPath::Keys(vec!["id".into()]));
        assert!(table_layout(&[key_id], &table_with(&[])).is_err(), "key fields need a key_format with fields");
        assert!(table_layout(&[key], &table_with(&[])).is_err(), "a text key is text or bytea");
        let junk = col("j", ColumnType::Text, ColumnRole::Meta(MetaColumn::Junk));
        assert!(table_layout(&[junk.clone()], &table_with(&[])).unwrap().has_junk_columns());
        assert!(table_layout(&[junk], &table_with(&[("on_error", "skip")])).is_err());
    }
}
