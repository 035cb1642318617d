//! Why something could not be decoded. The `Display` of each variant is the dead letter's reason.

use thiserror::Error;

/// A decoding failure of one record, user record, array element or NDJSON line.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Nothing but whitespace.
    #[error("empty record")]
    Empty,
    /// Bytes that are not UTF-8 (JSON must be).
    #[error("invalid UTF-8 at byte {offset}")]
    InvalidUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Not well-formed JSON; serde's message carries the line and column.
    #[error("invalid JSON: {0}")]
    InvalidJson(serde_json::Error),
    /// Well-formed JSON that is not an object (and not an array of objects).
    #[error("not a JSON object: found {found}")]
    NotAnObject {
        /// "a string", "a number", ...
        found: &'static str,
    },
    /// An element of a JSON array failed.
    #[error("array element {index}: {source}")]
    ArrayElement {
        /// 0-based position in the array.
        index: usize,
        /// What was wrong with it.
        source: Box<DecodeError>,
    },
    /// A line of NDJSON failed.
    #[error("line {line}: {source}")]
    Line {
        /// 1-based line number, counting blank lines too.
        line: usize,
        /// What was wrong with it.
        source: Box<DecodeError>,
    },
    /// Invalid JSON inside one NDJSON line (positions relative to that line).
    #[error("invalid JSON at column {column}: {message}")]
    InvalidJsonLine {
        /// serde's message without its position.
        message: String,
        /// 1-based column inside the line.
        column: usize,
    },
    /// A gzip stream that inflates beyond the cap (zip bomb protection).
    #[error("gzip: decompressed size exceeds the limit of {limit} bytes")]
    GzipTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// A gzip stream that cannot be inflated.
    #[error("gzip: corrupt stream: {0}")]
    Gzip(std::io::Error),
    /// A KPL aggregate whose MD5 trailer does not match its protobuf bytes.
    #[error(
        "KPL aggregated record: MD5 checksum mismatch (trailer {expected}, computed {computed})"
    )]
    KplChecksum {
        /// Hex of the 16-byte trailer.
        expected: String,
        /// Hex of the MD5 of the protobuf bytes.
        computed: String,
    },
    /// A KPL aggregate whose protobuf cannot be decoded.
    #[error("KPL aggregated record: invalid protobuf: {0}")]
    KplProtobuf(prost::DecodeError),
    /// A KPL user record pointing past the end of its aggregate's partition key table.
    #[error(
        "KPL user record {sub_sequence_number}: partition key index {key_index} out of range \
         (the aggregate has {table_len} partition keys)"
    )]
    KplPartitionKeyIndex {
        /// Position of the user record in the aggregate.
        sub_sequence_number: u64,
        /// The index it carries.
        key_index: u64,
        /// Size of the table.
        table_len: usize,
    },
    /// A KPL user record pointing past the end of its aggregate's explicit hash key table.
    #[error(
        "KPL user record {sub_sequence_number}: explicit hash key index {key_index} out of range \
         (the aggregate has {table_len} explicit hash keys)"
    )]
    KplExplicitHashKeyIndex {
        /// Position of the user record in the aggregate.
        sub_sequence_number: u64,
        /// The index it carries.
        key_index: u64,
        /// Size of the table.
        table_len: usize,
    },
    /// A CloudWatch Logs envelope whose shape is wrong.
    #[error("CloudWatch Logs envelope: {0}")]
    CloudWatchEnvelope(serde_json::Error),
    /// A CloudWatch Logs envelope of a kind we do not know.
    #[error("CloudWatch Logs envelope: unsupported messageType {0:?}")]
    CloudWatchMessageType(String),
}

impl DecodeError {
    /// Invalid JSON inside an NDJSON line: serde's own message with the column, without its
    /// "line 1" (the line number is given by [`DecodeError::Line`]).
    pub(super) fn json_in_line(error: &serde_json::Error) -> Self {
        let full = error.to_string();
        let suffix = format!(" at line {} column {}", error.line(), error.column());
        let message = full.strip_suffix(&suffix).unwrap_or(&full).to_owned();
        DecodeError::InvalidJsonLine {
            message,
            column: error.column(),
        }
    }
}
