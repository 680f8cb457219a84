//! CSV messages with `COPY … (FORMAT csv)` semantics: one message is one record, an
//! unquoted field equal to the NULL string (empty by default) is NULL, and a quoted
//! field is always a value, so `""` is the empty string.
//!
//! Parsing is `csv_core`'s state machine; this module adds what COPY needs on top:
//! quoted/unquoted tracking for NULLs, and the errors `csv_core` deliberately never
//! reports (an unterminated quote, a second record in one message).

use csv_core::{ReadFieldResult, Reader, ReaderBuilder};

use super::{Decoded, FieldDef, Mismatch};

/// COPY's CSV options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    pub delimiter: u8,
    pub quote: u8,
    pub escape: u8,
    pub null: Vec<u8>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions { delimiter: b',', quote: b'"', escape: b'"', null: Vec::new() }
    }
}

/// Why a payload is not one CSV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsvError {
    UnterminatedQuote { field: usize },
    TrailingData,
}

impl std::fmt::Display for CsvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CsvError::UnterminatedQuote { field } => write!(f, "unterminated CSV quoted field (field {})", field + 1),
            CsvError::TrailingData => f.write_str("extra data after the first CSV record"),
        }
    }
}

/// A reusable decoder: the buffers grow to the largest message seen and are then
/// reused, so decoding allocates nothing per message.
pub struct CsvDecoder {
    options: CsvOptions,
    reader: Reader,
    output: Vec<u8>,
    /// End of each field in `output`.
    ends: Vec<usize>,
    nulls: Vec<bool>,
}

/// The fields of one decoded message, borrowed from the decoder.
pub struct CsvRecord<'a> {
    output: &'a [u8],
    ends: &'a [usize],
    nulls: &'a [bool],
}

impl CsvRecord<'_> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `index`, `None` for NULL or for a field the message does not have.
    pub fn field(&self, index: usize) -> Option<&[u8]> {
        if index >= self.ends.len() || self.nulls[index] {
            return None;
        }
        let start = if index == 0 { 0 } else { self.ends[index - 1] };
        Some(&self.output[start..self.ends[index]])
    }
}

impl CsvDecoder {
    pub fn new(options: CsvOptions) -> Self {
        let reader = ReaderBuilder::new()
            .delimiter(options.delimiter)
            .quote(options.quote)
            .escape((options.escape != options.quote).then_some(options.escape))
            .double_quote(options.escape == options.quote)
            .build();
        CsvDecoder { options, reader, output: Vec::new(), ends: Vec::new(), nulls: Vec::new() }
    }

    pub fn decode(&mut self, message: &[u8]) -> Result<CsvRecord<'_>, CsvError> {
        if memchr::memchr(self.options.quote, message).is_none() {
            return self.decode_unquoted(message);
        }
        self.decode_with_state_machine(message)
    }

    /// The fields of the last message [`decode`](Self::decode)d: all of them after a
    /// success; after [`CsvError::UnterminatedQuote`], those before the field whose quote
    /// never closed (it swallowed the rest of the message), which adjust/kafka_fdw's junk
    /// modes keep.
    pub fn fields(&self) -> CsvRecord<'_> {
        CsvRecord { output: &self.output, ends: &self.ends, nulls: &self.nulls }
    }

    /// The common case, a message without any quote character: fields are the bytes
    /// between delimiters up to the first line break. Gives what the state machine gives
    /// (a property test checks), several times faster.
    fn decode_unquoted(&mut self, message: &[u8]) -> Result<CsvRecord<'_>, CsvError> {
        self.ends.clear();
        self.nulls.clear();
        // As csv_core, drop a leading UTF-8 byte-order mark, then skip blank lines.
        let message = message.strip_prefix("\u{feff}".as_bytes()).unwrap_or(message);
        let first = message.iter().position(|&b| b != b'\n' && b != b'\r').unwrap_or(message.len());
        let message = &message[first..];
        let (record, rest) = match memchr::memchr2(b'\n', b'\r', message) {
            Some(end) => message.split_at(end),
            None => (message, &[][..]),
        };
        if rest.iter().any(|&b| b != b'\n' && b != b'\r') {
            return Err(CsvError::TrailingData);
        }
        // The fields, back to back, as the state machine writes them.
        self.output.clear();
        let mut start = 0;
        for end in memchr::memchr_iter(self.options.delimiter, record).chain(std::iter::once(record.len())) {
            let field = &record[start..end];
            self.nulls.push(field == self.options.null.as_slice());
            self.output.extend_from_slice(field);
            self.ends.push(self.output.len());
            start = end + 1;
        }
        Ok(CsvRecord { output: &self.output, ends: &self.ends, nulls: &self.nulls })
    }

    fn decode_with_state_machine(&mut self, message: &[u8]) -> Result<CsvRecord<'_>, CsvError> {
        self.reader.reset();
        self.ends.clear();
        self.nulls.clear();
        // Unescaping only ever shrinks a field, so output never outgrows the input.
        if self.output.len() < message.len() {
            self.output.resize(message.len(), 0);
        }
        let mut input = message;
        let mut written = 0;
        // Where the current field starts, in the output and in the message. A field may
        // take several calls: the last one ends only when the empty input signals EOF.
        let mut field_start = 0;
        let mut field_input_start = 0;
        loop {
            let (result, nin, nout) = self.reader.read_field(input, &mut self.output[written..]);
            input = &input[nin..];
            written += nout;
            match result {
                ReadFieldResult::Field { record_end } => {
                    let consumed = message.len() - input.len();
                    let raw = &message[field_input_start..consumed];
                    field_input_start = consumed;
                    let field = self.ends.len();
                    let quoted = raw.first() == Some(&self.options.quote);
                    if quoted && !quote_closed(raw, &self.options) {
                        return Err(CsvError::UnterminatedQuote { field });
                    }
                    let value = &self.output[field_start..written];
                    self.nulls.push(!quoted && value == self.options.null.as_slice());
                    self.ends.push(written);
                    field_start = written;
                    if record_end {
                        if input.iter().any(|&b| b != b'\n' && b != b'\r') {
                            return Err(CsvError::TrailingData);
                        }
                        break;
                    }
                }
                ReadFieldResult::InputEmpty => input = &[],
                ReadFieldResult::End => {
                    // An empty message is one empty unquoted field, as an empty line is in COPY.
                    if self.ends.is_empty() {
                        self.nulls.push(self.options.null.is_empty());
                        self.ends.push(0);
                    }
                    break;
                }
                ReadFieldResult::OutputFull => unreachable!("output is sized to the whole message"),
            }
        }
        Ok(CsvRecord { output: &self.output, ends: &self.ends, nulls: &self.nulls })
    }
}

/// Appends one record to `out` (no line terminator): NULL as the NULL string unquoted,
/// and any value the decoder could mistake (empty, equal to the NULL string, holding a
/// delimiter, quote, escape or line break, or starting with a byte-order mark) quoted.
pub fn encode(fields: &[Option<&[u8]>], options: &CsvOptions, out: &mut Vec<u8>) {
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(options.delimiter);
        }
        let Some(value) = field else {
            out.extend_from_slice(&options.null);
            continue;
        };
        let needs_quotes = value.is_empty()
            || *value == options.null.as_slice()
            || value.starts_with("\u{feff}".as_bytes())
            || value.iter().any(|&b| {
                b == options.delimiter || b == options.quote || b == options.escape || b == b'\n' || b == b'\r'
            });
        if !needs_quotes {
            out.extend_from_slice(value);
            continue;
        }
        out.push(options.quote);
        for &byte in value.iter() {
            if byte == options.quote || (byte == options.escape && options.escape != options.quote) {
                out.push(options.escape);
            }
            out.push(byte);
        }
        out.push(options.quote);
    }
}

/// Why PostgreSQL's `COPY FROM (FORMAT csv)` given these options would not read lines
/// as [`CopyLines`] writes them, if it would not: COPY refuses them, or they make a
/// line that COPY reads otherwise (its end-of-data marker `\.`, a backslash delimiter).
pub fn copy_incompatibility(options: &CsvOptions) -> Option<&'static str> {
    let plain = |byte: u8| byte.is_ascii() && !matches!(byte, 0 | b'\n' | b'\r' | b'\\');
    if !plain(options.delimiter) || !plain(options.quote) || !(plain(options.escape) || options.escape == b'\\') {
        return Some("the delimiter, quote or escape is a byte COPY takes otherwise");
    }
    if options.delimiter == options.quote || options.delimiter == options.escape {
        return Some("the delimiter is also the quote or escape");
    }
    if options.null.iter().any(|&b| matches!(b, 0 | b'\n' | b'\r') || b == options.delimiter || b == options.quote)
        || options.null == b"\\."
    {
        return Some("the null string holds a byte COPY does not allow in it");
    }
    None
}

/// Messages as input lines for `COPY FROM (FORMAT csv)` with the same options: COPY
/// reads from each line exactly the fields [`CsvDecoder`] reads from the message, as
/// many as the columns (missing ones NULL, extra ones dropped, as a scan does without
/// `strict`), followed by fixed trailing fields (a message's partition, say). A message
/// COPY reads alike (no quote, no line break, no byte-order mark, one field per column)
/// goes as it is; any other is decoded and encoded again. The options must pass
/// [`copy_incompatibility`].
pub struct CopyLines {
    decoder: CsvDecoder,
    /// The data columns, in field order.
    fields: Vec<FieldDef>,
    strict: bool,
    /// Reused field list of a message encoded again.
    values: Vec<Option<Vec<u8>>>,
    /// What each byte is to [`reads_alike`](Self::reads_alike).
    classes: [ByteClass; 256],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByteClass {
    Plain,
    Delimiter,
    /// A quote or line break: COPY may read the message otherwise.
    Special,
}

/// Why a message gives no line: as a scan with `on_error 'error'` would fail on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError {
    /// Not one CSV record.
    Malformed(String),
    /// Under `strict`, not one field per column.
    Mismatch(Mismatch),
}

impl CopyLines {
    pub fn new(options: CsvOptions, fields: Vec<FieldDef>, strict: bool) -> Self {
        let mut classes = [ByteClass::Plain; 256];
        classes[options.delimiter as usize] = ByteClass::Delimiter;
        for special in [options.quote, b'\n', b'\r'] {
            classes[special as usize] = ByteClass::Special;
        }
        CopyLines { decoder: CsvDecoder::new(options), fields, strict, values: Vec::new(), classes }
    }

    pub fn options(&self) -> &CsvOptions {
        &self.decoder.options
    }

    /// Appends the line of a message (`None`: a message without a value, whose data
    /// columns are NULL) with `trailing` (already encoded, each after a delimiter) and a
    /// line break. Returns the number of line breaks inside quoted values: COPY counts
    /// them as lines of their own.
    pub fn render(&mut self, payload: Option<&[u8]>, trailing: &[&[u8]], out: &mut Vec<u8>) -> Result<usize, LineError> {
        let start = out.len();
        match payload {
            Some(message) if self.reads_alike(message) => {
                // No line break inside, and not `\.`: the line is done.
                out.extend_from_slice(message);
                self.end_line(trailing, out);
                return Ok(0);
            }
            Some(message) => {
                if let Err(error) = self.decoder.decode(message) {
                    return Err(LineError::Malformed(error.to_string()));
                }
                let record = Decoded::Csv(self.decoder.fields());
                if self.strict {
                    if let Some(mismatch) = record.mismatches(&self.fields).into_iter().next() {
                        return Err(LineError::Mismatch(mismatch));
                    }
                }
                let Decoded::Csv(record) = record else { unreachable!("decoded as CSV just above") };
                self.values.clear();
                self.values.extend((0..self.fields.len()).map(|i| record.field(i).map(<[u8]>::to_vec)));
                let values: Vec<Option<&[u8]>> = self.values.iter().map(Option::as_deref).collect();
                encode(&values, &self.decoder.options, out);
            }
            None => encode(&vec![None; self.fields.len()], &self.decoder.options, out),
        }
        // A line of just `\.` is COPY's end-of-data marker; quoted, the same value (the
        // null string is never `\.`).
        if out[start..] == *b"\\." {
            let quote = self.decoder.options.quote;
            out.truncate(start);
            out.extend_from_slice(&[quote, b'\\', b'.', quote]);
        }
        let breaks = memchr::memchr_iter(b'\n', &out[start..]).count();
        self.end_line(trailing, out);
        Ok(breaks)
    }

    fn end_line(&self, trailing: &[&[u8]], out: &mut Vec<u8>) {
        for value in trailing {
            out.push(self.decoder.options.delimiter);
            out.extend_from_slice(value);
        }
        out.push(b'\n');
    }

    /// Whether COPY reads `message` as it is into the fields the decoder reads. One pass
    /// over the bytes: messages are short, and this runs for every one.
    fn reads_alike(&self, message: &[u8]) -> bool {
        let mut delimiters = 0;
        for &byte in message {
            match self.classes[byte as usize] {
                ByteClass::Plain => {}
                ByteClass::Delimiter => delimiters += 1,
                ByteClass::Special => return false,
            }
        }
        delimiters + 1 == self.fields.len() && !message.starts_with("\u{feff}".as_bytes()) && message != b"\\."
    }
}

/// Whether a field that opened with a quote also closed it. `raw` is the field's input
/// bytes, possibly followed by its delimiter or terminator.
fn quote_closed(raw: &[u8], options: &CsvOptions) -> bool {
    let mut inside = false;
    let mut bytes = raw.iter();
    while let Some(&byte) = bytes.next() {
        if inside && byte == options.escape && options.escape != options.quote {
            bytes.next();
        } else if byte == options.quote {
            inside = !inside;
        }
    }
    !inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(decoder: &mut CsvDecoder, message: &str) -> Vec<Option<String>> {
        let record = decoder.decode(message.as_bytes()).unwrap();
        (0..record.len()).map(|i| record.field(i).map(|f| String::from_utf8(f.to_vec()).unwrap())).collect()
    }

    fn s(value: &str) -> Option<String> {
        Some(value.to_string())
    }

    #[test]
    fn unquoted_empty_is_null_and_quoted_empty_is_empty() {
        let mut decoder = CsvDecoder::new(CsvOptions::default());
        assert_eq!(fields(&mut decoder, "1,,\"\",x"), vec![s("1"), None, s(""), s("x")]);
        assert_eq!(fields(&mut decoder, ",\"\""), vec![None, s("")]);
        assert_eq!(fields(&mut decoder, ""), vec![None]);
        assert_eq!(fields(&mut decoder, "a,"), vec![s("a"), None]);
    }

    #[test]
    fn quotes_delimiters_newlines_and_unicode_inside_fields() {
        let mut decoder = CsvDecoder::new(CsvOptions::default());
        assert_eq!(
            fields(&mut decoder, "\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",żółw ✓"),
            vec![s("a,b"), s("say \"hi\""), s("two\nlines"), s("żółw ✓")]
        );
        assert_eq!(fields(&mut decoder, "2021-01-02,2021-01-02 03:04:05\n"), vec![s("2021-01-02"), s("2021-01-02 03:04:05")]);
        assert_eq!(fields(&mut decoder, "x\r\n"), vec![s("x")]);
    }

    #[test]
    fn a_null_string_only_matches_unquoted_fields() {
        let mut decoder = CsvDecoder::new(CsvOptions { null: b"\\N".to_vec(), ..CsvOptions::default() });
        assert_eq!(fields(&mut decoder, "\\N,\"\\N\","), vec![None, s("\\N"), s("")]);
    }

    #[test]
    fn other_delimiter_quote_and_escape() {
        let mut decoder =
            CsvDecoder::new(CsvOptions { delimiter: b';', quote: b'\'', escape: b'\\', null: Vec::new() });
        assert_eq!(fields(&mut decoder, "'a;b';'it\\'s';"), vec![s("a;b"), s("it's"), None]);
    }

    use proptest::prelude::*;

    fn round_trip(fields: &[Option<String>], options: CsvOptions) -> Vec<Option<String>> {
        let mut line = Vec::new();
        let borrowed: Vec<Option<&[u8]>> = fields.iter().map(|f| f.as_deref().map(str::as_bytes)).collect();
        encode(&borrowed, &options, &mut line);
        let mut decoder = CsvDecoder::new(options);
        let record = decoder.decode(&line).unwrap();
        (0..record.len()).map(|i| record.field(i).map(|f| String::from_utf8(f.to_vec()).unwrap())).collect()
    }

    fn csv_options() -> impl Strategy<Value = CsvOptions> {
        prop_oneof![
            Just(CsvOptions::default()),
            Just(CsvOptions { null: b"\\N".to_vec(), ..CsvOptions::default() }),
            Just(CsvOptions { delimiter: b';', quote: b'\'', escape: b'\\', null: b"NULL".to_vec() }),
            Just(CsvOptions { delimiter: b'\t', ..CsvOptions::default() }),
        ]
    }

    proptest! {
        /// NULLs, empty strings, quotes, delimiters, newlines, unicode and timestamps
        /// with time zones come back as they went in.
        #[test]
        fn encoding_then_decoding_is_the_identity(
            fields in prop::collection::vec(prop_oneof![
                Just(None),
                Just(Some(String::new())),
                Just(Some("2024-03-01 12:34:56.789+05:30".to_string())),
                Just(Some("a,b;c\t\"d\" 'e' \\N NULL\r\nline ✓ żółw".to_string())),
                any::<String>().prop_map(Some),
            ], 1..8),
            options in csv_options())
        {
            prop_assert_eq!(round_trip(&fields, options), fields);
        }
    }

    proptest! {
        /// The fast path for messages without quotes decodes exactly as csv_core does.
        #[test]
        fn the_unquoted_fast_path_matches_the_state_machine(
            bytes in prop::collection::vec(prop_oneof![
                4 => prop::sample::select(b"ab,;\t\\N \r\n\xef\xbb\xbf".to_vec()),
                1 => any::<u8>(),
            ], 0..40),
            options in csv_options())
        {
            prop_assume!(!bytes.contains(&options.quote));
            let mut fast = CsvDecoder::new(options.clone());
            let mut slow = CsvDecoder::new(options);
            let describe = |result: Result<CsvRecord<'_>, CsvError>| {
                result.map(|record| (0..record.len()).map(|i| record.field(i).map(<[u8]>::to_vec)).collect::<Vec<_>>())
            };
            prop_assert_eq!(describe(fast.decode_unquoted(&bytes)), describe(slow.decode_with_state_machine(&bytes)));
        }
    }

    fn data_fields(count: usize) -> Vec<FieldDef> {
        (0..count)
            .map(|i| FieldDef { name: format!("c{i}"), column_type: super::super::ColumnType::Other, json_path: super::super::json::JsonPath::Whole })
            .collect()
    }

    /// The fields a line of CopyLines holds, read back with the decoder (COPY's reading
    /// of the same lines is checked in the regression test import.sql).
    fn line_fields(line: &[u8], options: &CsvOptions) -> Vec<Option<Vec<u8>>> {
        let mut decoder = CsvDecoder::new(options.clone());
        let record = decoder.decode(line.strip_suffix(b"\n").unwrap()).unwrap();
        (0..record.len()).map(|i| record.field(i).map(<[u8]>::to_vec)).collect()
    }

    proptest! {
        /// A line holds the fields the scan reads from the message, one per column,
        /// then the trailing ones; line breaks inside values are counted.
        #[test]
        fn copy_lines_hold_the_fields_the_scan_reads(
            bytes in prop::collection::vec(prop_oneof![
                4 => prop::sample::select(b"ab,;\t\\N.\"' \r\n\xef\xbb\xbf".to_vec()),
                1 => any::<u8>(),
            ], 0..40),
            columns in 1usize..4,
            options in csv_options())
        {
            let mut scan = CsvDecoder::new(options.clone());
            let Ok(record) = scan.decode(&bytes) else { return Ok(()) };
            let mut expected: Vec<Option<Vec<u8>>> = (0..columns).map(|i| record.field(i).map(<[u8]>::to_vec)).collect();
            expected.push(Some(b"7".to_vec()));
            let mut lines = CopyLines::new(options.clone(), data_fields(columns), false);
            let mut out = Vec::new();
            let breaks = lines.render(Some(&bytes), &[b"7"], &mut out).unwrap();
            prop_assert_eq!(breaks + 1, memchr::memchr_iter(b'\n', &out).count());
            prop_assert_ne!(&out[..], b"\\.\n");
            prop_assert_eq!(line_fields(&out, &options), expected);
        }
    }

    #[test]
    fn copy_lines_pass_plain_messages_as_they_are() {
        let mut lines = CopyLines::new(CsvOptions::default(), data_fields(3), false);
        let mut out = Vec::new();
        assert_eq!(lines.render(Some(b"1,text,"), &[b"0", b"42"], &mut out), Ok(0));
        assert_eq!(lines.render(Some(b"\"a\nb\",2"), &[b"0", b"43"], &mut out), Ok(1));
        assert_eq!(lines.render(None, &[b"0", b"44"], &mut out), Ok(0));
        assert_eq!(out, b"1,text,,0,42\n\"a\nb\",2,,0,43\n,,,0,44\n");
        let mut single = CopyLines::new(CsvOptions::default(), data_fields(1), false);
        out.clear();
        assert_eq!(single.render(Some(b"\\."), &[], &mut out), Ok(0));
        assert_eq!(out, b"\"\\.\"\n");
    }

    #[test]
    fn copy_lines_under_strict_refuse_what_the_scan_refuses() {
        let mut lines = CopyLines::new(CsvOptions::default(), data_fields(2), true);
        let mut out = Vec::new();
        assert!(matches!(lines.render(Some(b"1"), &[], &mut out), Err(LineError::Mismatch(Mismatch::Missing(_)))));
        assert!(matches!(lines.render(Some(b"1,2,3"), &[], &mut out), Err(LineError::Mismatch(Mismatch::Extra(_)))));
        assert!(matches!(lines.render(Some(b"1,\"2"), &[], &mut out), Err(LineError::Malformed(_))));
        assert_eq!(lines.render(Some(b"1,2"), &[], &mut out), Ok(0));
    }

    #[test]
    fn copy_refuses_some_options() {
        assert_eq!(copy_incompatibility(&CsvOptions::default()), None);
        assert_eq!(copy_incompatibility(&CsvOptions { escape: b'\\', null: b"\\N".to_vec(), ..CsvOptions::default() }), None);
        assert!(copy_incompatibility(&CsvOptions { delimiter: b'\\', ..CsvOptions::default() }).is_some());
        assert!(copy_incompatibility(&CsvOptions { null: b"a,b".to_vec(), ..CsvOptions::default() }).is_some());
        assert!(copy_incompatibility(&CsvOptions { null: b"\\.".to_vec(), ..CsvOptions::default() }).is_some());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(100_000))]
        /// Fuzzing: arbitrary bytes give a record or an error, never a panic.
        #[test]
        fn arbitrary_bytes_do_not_panic(bytes in prop::collection::vec(any::<u8>(), 0..120), options in csv_options()) {
            let mut decoder = CsvDecoder::new(options);
            if let Ok(record) = decoder.decode(&bytes) {
                for i in 0..=record.len() {
                    let _ = record.field(i);
                }
            }
        }
    }

    #[test]
    fn an_unterminated_quote_keeps_the_fields_before_it() {
        let mut decoder = CsvDecoder::new(CsvOptions::default());
        let before = |decoder: &mut CsvDecoder, message: &str| {
            assert!(matches!(decoder.decode(message.as_bytes()), Err(CsvError::UnterminatedQuote { .. })));
            let record = decoder.fields();
            (0..record.len()).map(|i| record.field(i).map(|f| String::from_utf8(f.to_vec()).unwrap())).collect::<Vec<_>>()
        };
        // adjust/kafka_fdw's junk test: 401 and the text survive, the date swallowed the rest.
        assert_eq!(
            before(&mut decoder, "401,\"unterminated string\",\"01-01-2015,Thu Jan 01 06:41:00 2015"),
            vec![s("401"), s("unterminated string")]
        );
        assert_eq!(before(&mut decoder, "401,,\"x,y"), vec![s("401"), None]);
        assert_eq!(before(&mut decoder, "\"401,unterminated"), Vec::<Option<String>>::new());
        assert_eq!(fields(&mut decoder, "ok,\"fine\""), vec![s("ok"), s("fine")]);
    }

    #[test]
    fn malformed_records_are_errors() {
        let mut decoder = CsvDecoder::new(CsvOptions::default());
        assert_eq!(decoder.decode(b"1,\"abc").err(), Some(CsvError::UnterminatedQuote { field: 1 }));
        assert_eq!(decoder.decode(b"\"a,b").err(), Some(CsvError::UnterminatedQuote { field: 0 }));
        assert_eq!(decoder.decode(b"1,2\n3,4").err(), Some(CsvError::TrailingData));
        // The decoder recovers for the next message.
        assert_eq!(fields(&mut decoder, "ok"), vec![s("ok")]);
    }
}
