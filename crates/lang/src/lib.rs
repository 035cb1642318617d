#![doc = include_str!("../README.md")]

pub mod ast;
pub mod check;
pub mod codec;
pub mod dates;
pub mod error;
pub mod eval;
pub mod filter;
pub mod functions;
pub mod lexer;
pub mod mapping;
pub mod merge;
pub mod parser;
pub mod scores;
pub mod value;

pub use ast::{CmpOp, Expr, Literal};
pub use error::{ParseError, Span};
pub use filter::{parse_filter, Filter, FilterExpr, Note};
pub use mapping::{
    parse_mapping, Aggregate, FieldDef, Kind, MappedEvent, Mapping, MergeOp, SchemaField, Window,
};
pub use merge::{FieldState, ProfileState};
pub use scores::{Activity, Scores, SCORE_NAMES};
pub use value::FieldValue;
