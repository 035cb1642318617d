//! Positions and the one error type both languages report.

use serde::Serialize;

/// A 1-based position in the source text (columns count Unicode scalar values, not bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Span {
    pub line: u32,
    pub column: u32,
}

impl Span {
    pub fn new(line: u32, column: u32) -> Self {
        Span { line, column }
    }
}

/// A syntax or load-time (type, arity, unknown name) error, always with the position it was found at.
///
/// Displayed as `line 3, column 12: expected ',' or FROM, found 'INTO'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct ParseError {
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl ParseError {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        ParseError {
            line: span.line,
            column: span.column,
            message: message.into(),
        }
    }

    /// The position as a [`Span`].
    pub fn span(&self) -> Span {
        Span::new(self.line, self.column)
    }
}
