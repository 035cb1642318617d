//! JSON payloads: one object, an array of objects, or NDJSON (one object per line).
//!
//! The common case, one JSON object, is parsed straight into a map with no UTF-8 pre-pass (serde
//! validates the strings it reads, and any other non-ASCII byte is a syntax error). Everything
//! else is looked at more closely only after that first parse failed.

use serde::de::IgnoredAny;
use serde_json::{Map, Value};

use super::{DecodeError, Sink};

pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Decodes `bytes` into events on `sink`. A document that is a single JSON object is handed to
/// `on_object` (which may look inside it, e.g. for a CloudWatch Logs envelope); array elements
/// and NDJSON lines become events directly.
pub(super) fn decode<F>(bytes: &[u8], sink: &mut Sink<'_>, on_object: F)
where
    F: FnOnce(Map<String, Value>, &mut Sink<'_>),
{
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let Some(first) = bytes.iter().copied().find(|b| !is_json_whitespace(*b)) else {
        sink.dead_letter(DecodeError::Empty, bytes);
        return;
    };

    let error = if first == b'{' {
        // Fast path: a plain JSON object.
        match serde_json::from_slice::<Map<String, Value>>(bytes) {
            Ok(fields) => return on_object(fields, sink),
            Err(error) => error,
        }
    } else {
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(fields)) => return on_object(fields, sink),
            Ok(Value::Array(items)) => return decode_array(items, sink),
            Ok(scalar) => {
                let found = kind(&scalar);
                return sink.dead_letter(DecodeError::NotAnObject { found }, bytes);
            }
            Err(error) => error,
        }
    };

    if is_ndjson(bytes) {
        decode_lines(bytes, sink);
    } else {
        sink.dead_letter(document_error(bytes, error), bytes);
    }
}

/// One event per object element; every other element is its own dead letter.
fn decode_array(items: Vec<Value>, sink: &mut Sink<'_>) {
    for (index, item) in items.into_iter().enumerate() {
        match item {
            Value::Object(fields) => sink.event(fields),
            other => {
                let error = DecodeError::ArrayElement {
                    index,
                    source: Box::new(DecodeError::NotAnObject {
                        found: kind(&other),
                    }),
                };
                let raw = serde_json::to_vec(&other).unwrap_or_default();
                sink.dead_letter(error, &raw);
            }
        }
    }
}

/// NDJSON: every non-blank line is one object. Each bad line is its own dead letter.
fn decode_lines(bytes: &[u8], sink: &mut Sink<'_>) {
    for (number, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let line = trim_json_whitespace(line);
        if line.is_empty() {
            continue;
        }
        let parsed = if line[0] == b'{' {
            serde_json::from_slice::<Map<String, Value>>(line).map_err(|e| line_error(line, &e))
        } else {
            match serde_json::from_slice::<Value>(line) {
                Ok(Value::Object(fields)) => Ok(fields),
                Ok(other) => Err(DecodeError::NotAnObject {
                    found: kind(&other),
                }),
                Err(e) => Err(line_error(line, &e)),
            }
        };
        match parsed {
            Ok(fields) => sink.event(fields),
            Err(source) => {
                let error = DecodeError::Line {
                    line: number + 1,
                    source: Box::new(source),
                };
                sink.dead_letter(error, line);
            }
        }
    }
}

/// A payload that did not parse as one document is NDJSON when it has several non-blank lines and
/// either its first non-blank line or at least half of them are complete JSON values on their own.
/// A pretty-printed document has few such lines (`{`, `"a": 1,` and `}` are not), so its syntax
/// errors are reported for the document as a whole, with serde's line and column; NDJSON with a
/// bad line, even a bad first line, still yields its good lines.
fn is_ndjson(bytes: &[u8]) -> bool {
    let is_complete = |line: &[u8]| serde_json::from_slice::<IgnoredAny>(line).is_ok();
    let mut lines = bytes
        .split(|b| *b == b'\n')
        .map(trim_json_whitespace)
        .filter(|line| !line.is_empty());
    let Some(first) = lines.next() else {
        return false;
    };
    let first_complete = is_complete(first);
    let (mut total, mut complete) = (1usize, usize::from(first_complete));
    for line in lines {
        total += 1;
        if first_complete {
            // Already decided; only need to know there is more than one line.
            break;
        }
        complete += usize::from(is_complete(line));
    }
    total >= 2 && (first_complete || 2 * complete >= total)
}

fn document_error(bytes: &[u8], error: serde_json::Error) -> DecodeError {
    match std::str::from_utf8(bytes) {
        Err(utf8) => DecodeError::InvalidUtf8 {
            offset: utf8.valid_up_to(),
        },
        Ok(_) => DecodeError::InvalidJson(error),
    }
}

fn line_error(line: &[u8], error: &serde_json::Error) -> DecodeError {
    match std::str::from_utf8(line) {
        Err(utf8) => DecodeError::InvalidUtf8 {
            offset: utf8.valid_up_to(),
        },
        Ok(_) => DecodeError::json_in_line(error),
    }
}

/// What a non-object JSON value is, for reasons like "not a JSON object: found a string".
pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn trim_json_whitespace(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !is_json_whitespace(*first) {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !is_json_whitespace(*last) {
            break;
        }
        bytes = rest;
    }
    bytes
}
