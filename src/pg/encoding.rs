//! Text between Kafka and a database whose encoding is not UTF-8.
//!
//! Kafka's text is UTF-8: JSON, Avro and Protobuf strings by their specifications, CSV,
//! raw text, keys and headers by kafka_fdw's rule (a scan refuses other bytes). A
//! database may use another encoding (LATIN1, EUC_JP, SQL_ASCII…): a message's text is
//! converted to it before a type's input function reads it, and a column's output text
//! to UTF-8 before it goes into a message, as PostgreSQL converts between the client's
//! encoding and the server's. A character the other side cannot hold is an ERROR
//! (untranslatable_character), never a silent replacement. In a UTF8 database, the
//! usual case, nothing is converted nor copied.

use std::ffi::{c_char, c_int, CStr, CString};

use pgrx::pg_sys;

/// Whether the database's text is UTF-8 already.
pub fn database_is_utf8() -> bool {
    // SAFETY: reads a backend global, set once the backend is connected to its database.
    unsafe { pg_sys::GetDatabaseEncoding() == pg_sys::pg_enc::PG_UTF8 as c_int }
}

/// `text` (UTF-8, `len` bytes, NUL-terminated) in the database's encoding: `text` itself
/// when nothing needs converting, else a palloc'd copy in the current memory context.
/// Raises when a character has no equivalent.
///
/// # Safety
/// `text` points to `len` bytes followed by a NUL, valid UTF-8.
pub unsafe fn utf8_to_database(text: *const c_char, len: usize) -> *mut c_char {
    if database_is_utf8() {
        return text as *mut c_char;
    }
    let len = c_int::try_from(len).expect("a message's text is shorter than 1 GB");
    // SAFETY: the caller keeps the contract above; PostgreSQL returns its argument or a
    // NUL-terminated palloc'd conversion.
    unsafe { pg_sys::pg_any_to_server(text, len, pg_sys::pg_enc::PG_UTF8 as c_int) }
}

/// A column's output text (the database's encoding) as UTF-8 for a message: borrowed
/// when nothing needs converting, else a palloc'd copy in the current memory context
/// (which the caller's use must not outlive, as the output text's own). Raises when a
/// character has no UTF-8 equivalent or, in a SQL_ASCII database, when the bytes are
/// not UTF-8.
pub fn database_to_utf8(text: &CStr) -> &[u8] {
    if database_is_utf8() {
        return text.to_bytes();
    }
    let bytes = text.to_bytes();
    let len = c_int::try_from(bytes.len()).expect("a value's text is shorter than 1 GB");
    // SAFETY: `text` is NUL-terminated; PostgreSQL returns its argument or a
    // NUL-terminated palloc'd conversion, which lives as long as the current context.
    unsafe {
        let converted = pg_sys::pg_server_to_any(text.as_ptr(), len, pg_sys::pg_enc::PG_UTF8 as c_int);
        CStr::from_ptr(converted).to_bytes()
    }
}

/// A text datum of `text` (UTF-8), in the database's encoding.
pub fn text_datum(text: &str) -> pg_sys::Datum {
    let len = c_int::try_from(text.len()).expect("a message's text is shorter than 1 GB");
    // SAFETY: `text` is `len` bytes of UTF-8. PostgreSQL reads exactly `len` bytes and
    // returns its argument, or a NUL-terminated palloc'd conversion whose length strlen
    // finds (a conversion holds no NUL: the text had none to convert). The text datum
    // is a copy in the current memory context.
    unsafe {
        let source = text.as_ptr() as *const c_char;
        if database_is_utf8() || text.is_ascii() {
            return pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(source, len));
        }
        let converted = pg_sys::pg_any_to_server(source, len, pg_sys::pg_enc::PG_UTF8 as c_int);
        let converted_len = if std::ptr::eq(converted, source) { len } else { CStr::from_ptr(converted).to_bytes().len() as c_int };
        pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(converted, converted_len))
    }
}

/// A text datum of `text` (UTF-8) for a column that must never fail (a bad message's
/// junk columns): in the database's encoding, or, when the database has no room for one
/// of its characters, with every non-ASCII character written as `\uXXXX` (`\UXXXXXXXX`
/// beyond the Basic Multilingual Plane), as in PostgreSQL's Unicode escapes.
pub fn text_datum_escaping(text: &str) -> pg_sys::Datum {
    if database_is_utf8() || text.is_ascii() {
        return text_datum(text);
    }
    // SAFETY: reads the catalog of conversions; a database encoding with none from UTF-8
    // (SQL_ASCII) takes UTF-8 as it is.
    let conversion = unsafe { pg_sys::FindDefaultConversionProc(pg_sys::pg_enc::PG_UTF8 as i32, pg_sys::GetDatabaseEncoding()) };
    if conversion == pg_sys::InvalidOid {
        return text_datum(text);
    }
    let len = c_int::try_from(text.len()).expect("a message's text is shorter than 1 GB");
    // As PostgreSQL sizes a conversion's output (MAX_CONVERSION_GROWTH), plus the NUL.
    let mut converted = vec![0u8; text.len() * 4 + 1];
    // SAFETY: `text` is `len` bytes of UTF-8 (only read, whatever the signature says);
    // `converted` has the room PostgreSQL asks for. With noError (the last argument)
    // nothing raises: the conversion stops at the first character it cannot convert and
    // says how far it got.
    let consumed = unsafe {
        pg_sys::pg_do_encoding_conversion_buf(
            conversion,
            pg_sys::pg_enc::PG_UTF8 as c_int,
            pg_sys::GetDatabaseEncoding(),
            text.as_ptr() as *mut u8,
            len,
            converted.as_mut_ptr(),
            converted.len() as c_int,
            true,
        )
    };
    if consumed < len {
        return text_datum(&unicode_escaped(text));
    }
    let written = converted.iter().position(|&b| b == 0).expect("the conversion ends its output with a NUL");
    // SAFETY: `converted` holds `written` bytes of the database's encoding.
    unsafe { pg_sys::Datum::from(pg_sys::cstring_to_text_with_len(converted.as_ptr() as *const c_char, written as c_int)) }
}

/// `text` with every non-ASCII character written as `\uXXXX` (`\UXXXXXXXX` beyond the
/// Basic Multilingual Plane): text every database encoding holds.
fn unicode_escaped(text: &str) -> String {
    text.chars()
        .map(|c| match c as u32 {
            0..=0x7f => c.to_string(),
            code @ 0x80..=0xffff => format!("\\u{code:04X}"),
            code => format!("\\U{code:08X}"),
        })
        .collect()
}

/// The text of an error or notice (UTF-8, like every Rust string) for PostgreSQL, which
/// takes a report's text to be in the database's encoding: as it is in a UTF8 database,
/// else with its non-ASCII characters escaped (see [`unicode_escaped`]).
pub fn report_text(text: String) -> String {
    if text.is_ascii() || database_is_utf8() {
        text
    } else {
        unicode_escaped(&text)
    }
}

/// A jsonb datum of `json`, whose strings are UTF-8, in the database's encoding.
pub fn jsonb_datum(json: &serde_json::Value) -> pg_sys::Datum {
    let text = CString::new(json.to_string()).expect("JSON text escapes NUL");
    // SAFETY: `text` is NUL-terminated UTF-8, converted as for a type's input function;
    // jsonb_in takes a cstring and returns a jsonb datum in the current memory context.
    unsafe {
        let converted = utf8_to_database(text.as_ptr(), text.as_bytes().len());
        pgrx::direct_function_call_as_datum(pg_sys::jsonb_in, &[Some(pg_sys::Datum::from(converted))])
            .expect("jsonb_in returns a value for a value")
    }
}

/// The JSON of a jsonb datum, its strings in UTF-8.
///
/// # Safety
/// `datum` is a non-NULL jsonb datum.
pub unsafe fn jsonb_value(datum: pg_sys::Datum) -> serde_json::Value {
    // SAFETY: jsonb_out takes a jsonb datum, as the caller promises, and returns a
    // palloc'd cstring of its JSON text in the database's encoding.
    unsafe {
        let text = pgrx::direct_function_call_as_datum(pg_sys::jsonb_out, &[Some(datum)]).expect("jsonb_out returns text");
        let text = CStr::from_ptr(text.cast_mut_ptr::<c_char>());
        serde_json::from_slice(database_to_utf8(text)).expect("jsonb_out writes JSON")
    }
}

/// The text of a text datum (text, varchar, json) converted to UTF-8.
///
/// # Safety
/// `datum` is a non-NULL datum of a text type (a varlena of characters).
pub unsafe fn text_datum_to_utf8(datum: pg_sys::Datum) -> Vec<u8> {
    // SAFETY: as the caller promises; text_to_cstring detoasts and returns a palloc'd,
    // NUL-terminated copy.
    unsafe {
        let text = CStr::from_ptr(pg_sys::text_to_cstring(datum.cast_mut_ptr()));
        database_to_utf8(text).to_vec()
    }
}
