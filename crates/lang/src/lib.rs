//! Tributary's two small languages, pure (no I/O, no async):
//!
//! * [`mapping`]: `SELECT … FROM stream [WHERE …] INTO user BY email OR user_id` — turns
//!   events into profile field values ([`Mapping::apply`]), whose states merge
//!   order-independently ([`merge`]).
//! * [`filter`]: `FILTER AND ( … ) FROM user ALIAS name` — audience membership
//!   ([`Filter::matches`]).
//!
//! Both are lexed by [`lexer`], parsed by a hand-written recursive-descent [`parser`]
//! (positions and "expected …, found …" messages in [`ParseError`]), checked at load time
//! ([`check`]) and evaluated by [`eval`] with the function library in [`functions`].

pub mod ast;
pub mod check;
pub mod dates;
pub mod error;
pub mod eval;
pub mod filter;
pub mod functions;
pub mod lexer;
pub mod mapping;
pub mod merge;
pub mod parser;
pub mod value;

pub use ast::{CmpOp, Expr, Literal};
pub use error::{ParseError, Span};
pub use filter::{parse_filter, Filter, FilterExpr};
pub use mapping::{
    parse_mapping, Aggregate, FieldDef, Kind, MappedEvent, Mapping, MergeOp, SchemaField,
};
pub use merge::{FieldState, ProfileState};
pub use value::FieldValue;
