//! Load-time checks of expressions: known functions, arity, where `*` and `INCLUDE` may
//! appear, and a static type for each value (used for mapping `KIND` checks).

use crate::ast::{Expr, Literal};
use crate::error::ParseError;
use crate::functions::{self, Ty, AGGREGATES};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Mapping,
    Filter,
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        "argument"
    } else {
        "arguments"
    }
}

/// Checks `args.len()` against a function's arity.
pub fn check_arity(
    name: &str,
    min: usize,
    max: Option<usize>,
    found: usize,
    span: crate::error::Span,
) -> Result<(), ParseError> {
    let ok = found >= min && max.is_none_or(|m| found <= m);
    if ok {
        return Ok(());
    }
    let takes = match max {
        Some(m) if m == min => format!("{min} {}", plural(min)),
        Some(m) => format!("{min} to {m} arguments"),
        None => format!("at least {min} {}", plural(min)),
    };
    Err(ParseError::new(
        span,
        format!("function {name}() takes {takes}, found {found}"),
    ))
}

/// Validates `e` and returns its static type.
pub fn check(e: &Expr, lang: Lang) -> Result<Ty, ParseError> {
    Ok(match e {
        Expr::Field { .. } => Ty::Any,
        Expr::Literal { value, .. } => match value {
            Literal::String(_) => Ty::String,
            Literal::Int(_) => Ty::Int,
            Literal::Number(_) => Ty::Number,
            Literal::Bool(_) => Ty::Bool,
            Literal::Null => Ty::Any,
        },
        Expr::Star { span } => {
            return Err(ParseError::new(
                *span,
                "'*' is only allowed as count(*) or as FILTER *",
            ))
        }
        Expr::Call { name, args, span } => {
            if AGGREGATES.contains(&name.as_str()) {
                return Err(ParseError::new(
                    *span,
                    match lang {
                        Lang::Mapping => format!(
                            "aggregate {name}() must wrap a whole SELECT expression, not be nested"
                        ),
                        Lang::Filter => {
                            format!("aggregate {name}() can only be used in mappings")
                        }
                    },
                ));
            }
            let Some(sig) = functions::lookup(name) else {
                return Err(ParseError::new(*span, format!("unknown function '{name}'")));
            };
            if sig.mapping_only && lang == Lang::Filter {
                return Err(ParseError::new(
                    *span,
                    format!("function {name}() can only be used in mappings"),
                ));
            }
            check_arity(name, sig.min_args, sig.max_args, args.len(), *span)?;
            let tys = args
                .iter()
                .map(|a| check(a, lang))
                .collect::<Result<Vec<_>, _>>()?;
            if name == "match" {
                for a in args {
                    if !matches!(
                        a,
                        Expr::Literal {
                            value: Literal::String(_),
                            ..
                        }
                    ) {
                        return Err(ParseError::new(
                            a.span(),
                            "match() takes string literal prefixes",
                        ));
                    }
                }
            }
            functions::return_type(name, &tys)
        }
        Expr::Include { span, .. } => {
            if lang == Lang::Mapping {
                return Err(ParseError::new(
                    *span,
                    "INCLUDE can only be used in audience filters",
                ));
            }
            Ty::Bool
        }
        Expr::Not { expr, .. } | Expr::Exists { expr, .. } | Expr::IsNull { expr, .. } => {
            check(expr, lang)?;
            Ty::Bool
        }
        Expr::And { exprs, .. } | Expr::Or { exprs, .. } => {
            for x in exprs {
                check(x, lang)?;
            }
            Ty::Bool
        }
        Expr::Compare { left, right, .. } => {
            check(left, lang)?;
            check(right, lang)?;
            Ty::Bool
        }
        Expr::Between {
            expr, low, high, ..
        } => {
            check(expr, lang)?;
            check(low, lang)?;
            check(high, lang)?;
            Ty::Bool
        }
        Expr::In { expr, list, .. } | Expr::Intersects { expr, list, .. } => {
            check(expr, lang)?;
            for x in list {
                check(x, lang)?;
            }
            Ty::Bool
        }
        Expr::Contains { expr, value, .. } => {
            check(expr, lang)?;
            check(value, lang)?;
            Ty::Bool
        }
        Expr::Like { expr, pattern, .. } => {
            check(expr, lang)?;
            check(pattern, lang)?;
            Ty::Bool
        }
    })
}
