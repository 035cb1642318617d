//! The audience filter language, from the FilterQL family (qlbridge's `FilterQL.md`).
//!
//! ```text
//! FILTER AND (
//!     visit_count > 3,
//!     EXISTS email,
//!     NOT pages_seen CONTAINS "/unsubscribe",
//!     last_seen > "now-30d",
//!     OR ( total_spent >= 100, INCLUDE vip_list ),
//! )
//! FROM user
//! ALIAS engaged_users
//! ```
//!
//! Grammar: `[FILTER] (expr | '*') [FROM name] [LIMIT n] [WITH key = literal (',' key =
//! literal)*] [ALIAS name] [';']`. The `FILTER` keyword is optional, so a bare expression
//! (`visit_count > 3 AND EXISTS email`) is a filter too — handy for ad-hoc queries; `FILTER *`
//! matches every profile. `WITH` carries audience metadata ([`Filter::metadata`]); `LIMIT`
//! is accepted for FilterQL compatibility and ignored, with a [`Note`] saying so. The
//! expression grammar is in [`crate::parser`], the evaluation rules in [`crate::eval`].

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ast::{Expr, Literal};
use crate::check::{check, Lang};
use crate::dates;
use crate::error::{ParseError, Span};
use crate::eval::{eval_bool, Ctx};
use crate::functions;
use crate::lexer::TokenKind;
use crate::parser::{parse_either, Parser};

/// Filters share the expression tree with mappings.
pub type FilterExpr = Expr;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filter {
    pub expr: FilterExpr,
    /// The profile type (`FROM user`).
    pub from: Option<String>,
    /// The audience's name (`ALIAS engaged_users`).
    pub alias: Option<String>,
    /// `WITH key = literal, …`, in the order written (see [`Filter::metadata`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metadata: Vec<(String, Literal)>,
    /// What was accepted but has no effect (see [`Filter::notes`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

/// Something in a filter's text that was accepted for compatibility but changes nothing,
/// such as FilterQL's `LIMIT`. Worth showing next to the audience, not an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Where the construct starts.
    pub span: Span,
    pub message: String,
}

/// Parses and checks a filter (known functions, arity).
///
/// FilterQL's line-separated `AND ( … )` / `OR ( … )` arguments are read only when the
/// comma-separated grammar fails (see [`crate::parser::parse_either`]).
pub fn parse_filter(text: &str) -> Result<Filter, ParseError> {
    parse_either(text, parse_filter_from)
}

fn parse_filter_from(p: &mut Parser) -> Result<Filter, ParseError> {
    p.eat_word("FILTER");
    let star_alone = p.peek().kind == TokenKind::Star
        && (p.peek_at(1).kind == TokenKind::Eof
            || p.peek_at(1).kind == TokenKind::Semicolon
            || ["FROM", "LIMIT", "WITH", "ALIAS"]
                .iter()
                .any(|w| p.peek_at(1).is_word(w)));
    let expr = if star_alone {
        Expr::Star {
            span: p.advance().span,
        }
    } else {
        let e = p.parse_or()?;
        check(&e, Lang::Filter)?;
        e
    };
    let bare = p.last_was_bare && !star_alone;
    // The clauses, in FilterQL's order; `next` is what may still follow (for errors).
    let after_expr: &[&str] = &["FROM", "LIMIT", "WITH", "ALIAS"];
    let mut next = after_expr;
    let mut from = None;
    if p.eat_word("FROM") {
        from = Some(
            p.name("a profile type after FROM", &["LIMIT", "WITH", "ALIAS"])?
                .0,
        );
        next = &["LIMIT", "WITH", "ALIAS"];
    }
    let mut notes = Vec::new();
    if p.at_word("LIMIT") {
        let at = p.advance().span;
        let TokenKind::Int(n @ 0..) = p.peek().kind else {
            return Err(p.expected("a whole number after LIMIT"));
        };
        p.advance();
        notes.push(Note {
            span: at,
            message: format!("LIMIT {n} is ignored: audience membership has no limit"),
        });
        next = &["WITH", "ALIAS"];
    }
    let mut metadata = Vec::new();
    if p.eat_word("WITH") {
        metadata = parse_with(p)?;
        next = &["','", "ALIAS"];
    }
    let mut alias = None;
    if p.eat_word("ALIAS") {
        alias = Some(p.name_or_string("a name after ALIAS", &[])?.0);
        next = &[];
    }
    p.eat(&TokenKind::Semicolon);
    if !p.at_end() {
        let mut expected = Vec::new();
        if next == after_expr {
            if bare {
                expected.push("an operator");
            }
            expected.extend(["AND", "OR"]);
        }
        expected.extend(next);
        let expected = match expected.as_slice() {
            [] => "end of input".to_string(),
            some => format!("{} or end of input", some.join(", ")),
        };
        return Err(p.expected(&expected));
    }
    Ok(Filter {
        expr,
        from,
        alias,
        metadata,
        notes,
    })
}

/// `key = literal (',' key = literal)*` after `WITH`; keys are names (keywords included),
/// values literals (strings, numbers, `true`, `false`, `null`).
fn parse_with(p: &mut Parser) -> Result<Vec<(String, Literal)>, ParseError> {
    let mut entries: Vec<(String, Literal)> = Vec::new();
    loop {
        let (key, key_span, _) = p.name("a metadata name after WITH", &[])?;
        if entries.iter().any(|(k, _)| *k == key) {
            return Err(ParseError::new(
                key_span,
                format!("WITH name '{key}' is given twice"),
            ));
        }
        if !(p.eat(&TokenKind::Eq) || p.eat(&TokenKind::EqEq)) {
            return Err(p.expected(&format!("'=' after '{key}'")));
        }
        let at = p.peek().clone();
        let Ok(Expr::Literal { value, .. }) = p.parse_value() else {
            return Err(ParseError::new(
                at.span,
                format!(
                    "expected a string, number, true, false or null after '{key} =', found {}",
                    at.describe()
                ),
            ));
        };
        entries.push((key, value));
        if !p.eat(&TokenKind::Comma) {
            return Ok(entries);
        }
    }
}

impl Filter {
    /// The `WITH` metadata, `(key, literal)` in the order written, e.g. `[("name", "Big
    /// spenders"), ("public", false)]` for `WITH name = "Big spenders", public = false`.
    /// Nothing in membership depends on it: it is for the application to store and show
    /// (as JSON with [`Filter::metadata_json`]).
    pub fn metadata(&self) -> &[(String, Literal)] {
        &self.metadata
    }

    /// [`Filter::metadata`] as a JSON object (`{"name": "Big spenders", "public": false}`).
    pub fn metadata_json(&self) -> Map<String, Value> {
        self.metadata
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    Literal::String(s) => Value::from(s.as_str()),
                    Literal::Int(i) => Value::from(*i),
                    Literal::Number(n) => Value::from(*n),
                    Literal::Bool(b) => Value::from(*b),
                    Literal::Null => Value::Null,
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// What the text contains that was accepted but has no effect, such as `LIMIT 100`
    /// ("LIMIT 100 is ignored: audience membership has no limit"), in text order. Show them
    /// beside the audience so its author knows; they are never errors.
    pub fn notes(&self) -> &[Note] {
        &self.notes
    }

    /// Whether a profile (its fields object) matches. `now` resolves relative dates;
    /// `includes(slug)` answers `INCLUDE slug`.
    pub fn matches(
        &self,
        profile: &Value,
        now: DateTime<Utc>,
        includes: &dyn Fn(&str) -> bool,
    ) -> bool {
        let empty = Map::new();
        let root = profile.as_object().unwrap_or(&empty);
        let ctx = Ctx {
            root,
            now,
            includes: Some(includes),
        };
        eval_bool(&self.expr, &ctx)
    }

    /// The profile fields the filter reads: the first segment of each field path
    /// (`event_times.signup` reads `event_times`).
    pub fn fields_read(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.expr.walk(&mut |e| {
            if let Expr::Field { path, .. } = e {
                if let Some(first) = path.first() {
                    out.insert(first.clone());
                }
            }
        });
        out
    }

    /// The audiences it INCLUDEs.
    pub fn includes(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.expr.walk(&mut |e| {
            if let Expr::Include { name, .. } = e {
                out.insert(name.clone());
            }
        });
        out
    }

    /// Whether the result can change with time alone (relative dates or `now()`), so the
    /// audience must be re-evaluated periodically.
    pub fn is_time_relative(&self) -> bool {
        let mut rel = false;
        self.expr.walk(&mut |e| match e {
            Expr::Literal {
                value: Literal::String(s),
                ..
            } if dates::is_relative(s) => rel = true,
            Expr::Call { name, args, .. } if functions::reads_clock(name, args.len()) => rel = true,
            _ => {}
        });
        rel
    }
}
