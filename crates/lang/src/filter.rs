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
//! Grammar: `[FILTER] (expr | '*') [FROM name] [ALIAS name] [';']`. The `FILTER` keyword is
//! optional, so a bare expression (`visit_count > 3 AND EXISTS email`) is a filter too — handy
//! for ad-hoc queries; `FILTER *` matches every profile. The expression grammar is in
//! [`crate::parser`], the evaluation rules in [`crate::eval`].

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::ast::{Expr, Literal};
use crate::check::{check, Lang};
use crate::dates;
use crate::error::ParseError;
use crate::eval::{eval_bool, Ctx};
use crate::lexer::TokenKind;
use crate::parser::Parser;

/// Filters share the expression tree with mappings.
pub type FilterExpr = Expr;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filter {
    pub expr: FilterExpr,
    /// The profile type (`FROM user`).
    pub from: Option<String>,
    /// The audience's name (`ALIAS engaged_users`).
    pub alias: Option<String>,
}

/// Parses and checks a filter (known functions, arity).
pub fn parse_filter(text: &str) -> Result<Filter, ParseError> {
    let mut p = Parser::new(text)?;
    p.eat_word("FILTER");
    let star_alone = p.peek().kind == TokenKind::Star
        && (p.peek_at(1).kind == TokenKind::Eof
            || p.peek_at(1).kind == TokenKind::Semicolon
            || p.peek_at(1).is_word("FROM")
            || p.peek_at(1).is_word("ALIAS"));
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
    let from = if p.eat_word("FROM") {
        Some(p.name("a profile type after FROM", &["ALIAS"])?.0)
    } else {
        None
    };
    let alias = if p.eat_word("ALIAS") {
        Some(p.name("a name after ALIAS", &[])?.0)
    } else {
        None
    };
    p.eat(&TokenKind::Semicolon);
    if !p.at_end() {
        let expected = match (&from, &alias) {
            (_, Some(_)) => "end of input".to_string(),
            (Some(_), None) => "ALIAS or end of input".to_string(),
            (None, None) => format!(
                "{}AND, OR, FROM, ALIAS or end of input",
                if bare { "an operator, " } else { "" }
            ),
        };
        return Err(p.expected(&expected));
    }
    Ok(Filter { expr, from, alias })
}

impl Filter {
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
            Expr::Call { name, .. } if name == "now" => rel = true,
            _ => {}
        });
        rel
    }
}
