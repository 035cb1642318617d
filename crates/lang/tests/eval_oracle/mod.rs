//! The filter evaluator as it was before evaluation stopped allocating: a verbatim copy of
//! `src/eval.rs` at that point, kept as the oracle of `tests/eval_diff.rs`. Do not "improve".

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use tributary_lang::ast::{CmpOp, Expr, Literal};
use tributary_lang::dates;
use tributary_lang::functions;
use tributary_lang::value::FieldValue;

pub struct Ctx<'a> {
    pub root: &'a Map<String, Value>,
    /// The reference time of relative dates and `now()`: the event time in mappings, the
    /// evaluation time in filters.
    pub now: DateTime<Utc>,
    pub includes: Option<&'a dyn Fn(&str) -> bool>,
}

/// Looks a field up: the path through nested objects (numeric segments index arrays), or
/// — when that finds nothing — a top-level key spelled with the dots.
pub fn lookup<'v>(root: &'v Map<String, Value>, name: &str, path: &[String]) -> Option<&'v Value> {
    let mut cur = root.get(path.first()?);
    for seg in &path[1..] {
        cur = match cur? {
            Value::Object(o) => o.get(seg),
            Value::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
    }
    match cur {
        Some(Value::Null) | None if path.len() > 1 => root.get(name),
        other => other,
    }
}

pub fn eval_value(e: &Expr, ctx: &Ctx<'_>) -> Option<FieldValue> {
    match e {
        Expr::Field { name, path, .. } => FieldValue::from_json(lookup(ctx.root, name, path)?),
        Expr::Literal { value, .. } => match value {
            Literal::String(s) => Some(FieldValue::String(s.clone())),
            Literal::Int(i) => Some(FieldValue::Int(*i)),
            Literal::Number(n) => Some(FieldValue::Number(*n)),
            Literal::Bool(b) => Some(FieldValue::Bool(*b)),
            Literal::Null => None,
        },
        Expr::Star { .. } => Some(FieldValue::Bool(true)),
        Expr::Call { name, args, .. } => match name.as_str() {
            "now" => Some(FieldValue::Date(ctx.now)),
            "match" => {
                let prefixes: Vec<String> = args
                    .iter()
                    .filter_map(|a| eval_value(a, ctx)?.as_text())
                    .collect();
                let mut out = std::collections::BTreeMap::new();
                for (k, v) in ctx.root {
                    for p in &prefixes {
                        if let Some(rest) = k.strip_prefix(p.as_str()) {
                            if rest.is_empty() {
                                continue;
                            }
                            if let Some(v) = FieldValue::from_json(v) {
                                out.insert(rest.to_string(), v);
                            }
                        }
                    }
                }
                (!out.is_empty()).then_some(FieldValue::Map(out))
            }
            _ => {
                let vals: Vec<Option<FieldValue>> =
                    args.iter().map(|a| eval_value(a, ctx)).collect();
                functions::call(name, &vals)
            }
        },
        _ => Some(FieldValue::Bool(eval_bool(e, ctx))),
    }
}

pub fn eval_bool(e: &Expr, ctx: &Ctx<'_>) -> bool {
    match e {
        Expr::Not { expr, .. } => !eval_bool(expr, ctx),
        Expr::And { exprs, .. } => exprs.iter().all(|x| eval_bool(x, ctx)),
        Expr::Or { exprs, .. } => exprs.iter().any(|x| eval_bool(x, ctx)),
        Expr::Star { .. } => true,
        Expr::Include { name, .. } => ctx.includes.is_some_and(|f| f(name)),
        Expr::Exists { expr, .. } => eval_value(expr, ctx).is_some_and(|v| !v.is_empty()),
        Expr::IsNull { expr, .. } => eval_value(expr, ctx).is_none_or(|v| v.is_empty()),
        Expr::Compare {
            op, left, right, ..
        } => match (eval_value(left, ctx), eval_value(right, ctx)) {
            (Some(l), Some(r)) => compare(*op, &l, &r, ctx.now),
            _ => false,
        },
        Expr::Between {
            expr, low, high, ..
        } => match (
            eval_value(expr, ctx),
            eval_value(low, ctx),
            eval_value(high, ctx),
        ) {
            (Some(v), Some(lo), Some(hi)) => {
                compare(CmpOp::Ge, &v, &lo, ctx.now) && compare(CmpOp::Le, &v, &hi, ctx.now)
            }
            _ => false,
        },
        Expr::In { expr, list, .. } => {
            let Some(v) = eval_value(expr, ctx) else {
                return false;
            };
            list.iter()
                .filter_map(|x| eval_value(x, ctx))
                .any(|item| compare(CmpOp::Eq, &v, &item, ctx.now))
        }
        Expr::Intersects { expr, list, .. } => {
            let Some(v) = eval_value(expr, ctx) else {
                return false;
            };
            let left = flatten(v);
            let right: Vec<FieldValue> = list
                .iter()
                .filter_map(|x| eval_value(x, ctx))
                .flat_map(flatten)
                .collect();
            left.iter()
                .any(|l| right.iter().any(|r| compare(CmpOp::Eq, l, r, ctx.now)))
        }
        Expr::Contains { expr, value, .. } => {
            let (Some(hay), Some(needle)) = (eval_value(expr, ctx), eval_value(value, ctx)) else {
                return false;
            };
            match hay {
                FieldValue::List(items) => items
                    .iter()
                    .any(|i| compare(CmpOp::Eq, i, &needle, ctx.now)),
                FieldValue::Map(m) => needle.as_text().is_some_and(|k| m.contains_key(&k)),
                other => match (other.as_text(), needle.as_text()) {
                    (Some(h), Some(n)) => h.contains(&n),
                    _ => false,
                },
            }
        }
        Expr::Like { expr, pattern, .. } => {
            let (Some(v), Some(p)) = (eval_value(expr, ctx), eval_value(pattern, ctx)) else {
                return false;
            };
            let Some(p) = p.as_text() else {
                return false;
            };
            flatten(v)
                .iter()
                .filter_map(FieldValue::as_text)
                .any(|t| like(&t, &p))
        }
        Expr::Field { .. } | Expr::Literal { .. } | Expr::Call { .. } => {
            eval_value(e, ctx).is_some_and(|v| v.as_bool() == Some(true))
        }
    }
}

fn flatten(v: FieldValue) -> Vec<FieldValue> {
    match v {
        FieldValue::List(l) => l,
        other => vec![other],
    }
}

/// A string that reads as a date (not merely a number), e.g. `2024-01-01` or RFC 3339.
fn looks_like_date(v: &FieldValue) -> bool {
    match v {
        FieldValue::String(s) => s.trim().parse::<f64>().is_err() && dates::parse_date(s).is_some(),
        _ => false,
    }
}

fn is_relative(v: &FieldValue) -> bool {
    matches!(v, FieldValue::String(s) if dates::is_relative(s))
}

fn to_date(v: &FieldValue, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match v {
        FieldValue::String(s) => dates::parse_relative(s, now).or_else(|| dates::parse_date(s)),
        other => other.as_date(),
    }
}

/// Compares two present values (see the module documentation for the rules).
pub fn compare(op: CmpOp, l: &FieldValue, r: &FieldValue, now: DateTime<Utc>) -> bool {
    if let FieldValue::List(items) = l {
        return if op == CmpOp::NotEq {
            !items.iter().any(|i| compare(CmpOp::Eq, i, r, now))
        } else {
            items.iter().any(|i| compare(op, i, r, now))
        };
    }
    let Some(ord) = order(l, r, now) else {
        return op == CmpOp::NotEq;
    };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::NotEq => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

fn order(l: &FieldValue, r: &FieldValue, now: DateTime<Utc>) -> Option<Ordering> {
    let strict_date = |v: &FieldValue| matches!(v, FieldValue::Date(_)) || is_relative(v);
    if strict_date(l) || strict_date(r) || looks_like_date(l) || looks_like_date(r) {
        match (to_date(l, now), to_date(r, now)) {
            (Some(a), Some(b)) => return Some(a.cmp(&b)),
            // A date against something that is no date: incomparable.
            _ if strict_date(l) || strict_date(r) => return None,
            // A date-looking string against a plain string: compare as strings below.
            _ => {}
        }
    }
    let boolish = |v: &FieldValue| matches!(v, FieldValue::Bool(_));
    if boolish(l) || boolish(r) {
        return match (l.as_bool(), r.as_bool()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => None,
        };
    }
    let numeric = |v: &FieldValue| matches!(v, FieldValue::Int(_) | FieldValue::Number(_));
    match (l.as_number(), r.as_number()) {
        (Some(a), Some(b)) => return a.partial_cmp(&b),
        // A number against a non-numeric string: incomparable (not a string comparison).
        _ if numeric(l) || numeric(r) => return None,
        _ => {}
    }
    match (l, r) {
        (FieldValue::Map(_), _) | (_, FieldValue::Map(_)) | (_, FieldValue::List(_)) => None,
        _ => Some(l.as_text()?.cmp(&r.as_text()?)),
    }
}

/// Case-insensitive wildcard match: `*` and `%` match any run of characters.
pub fn like(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '*' || p[pi] == '%') {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && (p[pi] == '*' || p[pi] == '%') {
        pi += 1;
    }
    pi == p.len()
}

/// `Filter::matches` as it was.
pub fn matches(
    filter: &tributary_lang::Filter,
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
    eval_bool(&filter.expr, &ctx)
}
