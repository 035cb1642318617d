//! Evaluation of expressions against one JSON object (an event for mappings, a profile's
//! fields for filters).
//!
//! Semantics: a missing field has no value and every comparison with no value is false
//! (so `NOT (x = 1)` is true for a profile without `x`). Comparisons pick a domain:
//! dates when either side is a date, a relative date (`"now-7d"`) or a date-looking string
//! and both sides convert; otherwise numbers when both sides are numeric (numeric strings
//! count); otherwise booleans; otherwise strings (case-sensitive). Values that fit no common
//! domain (a date or number against a non-date, non-numeric string) are incomparable: every
//! operator is false except `!=`. A list on the left matches when any element does (`!=`:
//! when no element equals).

use std::borrow::Cow;
use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::ast::{CmpOp, Expr, Literal};
use crate::dates;
use crate::functions;
use crate::value::{self, FieldValue};

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
                functions::call_at(name, &vals, ctx.now)
            }
        },
        _ => Some(FieldValue::Bool(eval_bool(e, ctx))),
    }
}

/// A value as boolean evaluation sees it: borrowed from the profile or the expression where
/// possible, so that comparing a field with a literal copies neither.
enum Val<'a> {
    /// A field's JSON, never `null` (see [`present`]).
    Json(&'a Value),
    /// A string literal.
    Str(&'a str),
    /// A computed value (functions, `now()`, other literals).
    Owned(FieldValue),
}

impl Val<'_> {
    fn as_ref(&self) -> Ref<'_> {
        match self {
            Val::Json(v) => Ref::Json(v),
            Val::Str(s) => Ref::Str(s),
            Val::Owned(v) => Ref::Value(v),
        }
    }
}

/// A borrowed view of a value: the same answers as the [`FieldValue`] it stands for.
#[derive(Clone, Copy)]
enum Ref<'a> {
    Json(&'a Value),
    Str(&'a str),
    Value(&'a FieldValue),
}

/// Whether JSON holds a value ([`FieldValue::from_json`] gives one): not `null`, and numbers
/// finite. Absent elements and entries are skipped as `from_json` drops them.
fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Number(n) => n.as_i64().is_some() || n.as_f64().is_some_and(f64::is_finite),
        _ => true,
    }
}

/// A scalar value; lists and maps have none.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Str(&'a str),
    Int(i64),
    Number(f64),
    Bool(bool),
    Date(DateTime<Utc>),
}

impl<'a> Ref<'a> {
    fn scalar(self) -> Option<Scalar<'a>> {
        Some(match self {
            Ref::Json(Value::String(s)) | Ref::Value(FieldValue::String(s)) => Scalar::Str(s),
            Ref::Str(s) => Scalar::Str(s),
            Ref::Json(Value::Number(n)) => match n.as_i64() {
                Some(i) => Scalar::Int(i),
                None => Scalar::Number(n.as_f64()?),
            },
            Ref::Json(Value::Bool(b)) | Ref::Value(FieldValue::Bool(b)) => Scalar::Bool(*b),
            Ref::Value(FieldValue::Int(i)) => Scalar::Int(*i),
            Ref::Value(FieldValue::Number(n)) => Scalar::Number(*n),
            Ref::Value(FieldValue::Date(d)) => Scalar::Date(*d),
            _ => return None,
        })
    }

    fn is_list(self) -> bool {
        matches!(
            self,
            Ref::Json(Value::Array(_)) | Ref::Value(FieldValue::List(_))
        )
    }

    /// A list's elements, or the value alone.
    fn flatten(self) -> Items<'a> {
        match self {
            Ref::Json(Value::Array(a)) => Items::Json(a.iter()),
            Ref::Value(FieldValue::List(l)) => Items::Values(l.iter()),
            other => Items::One(Some(other)),
        }
    }

    fn text(self) -> Option<Cow<'a, str>> {
        match self.scalar()? {
            Scalar::Str(s) => Some(Cow::Borrowed(s)),
            other => other.to_value().as_text().map(Cow::Owned),
        }
    }

    fn is_empty(self) -> bool {
        match self {
            Ref::Json(Value::String(s)) => s.is_empty(),
            Ref::Str(s) => s.is_empty(),
            Ref::Json(Value::Array(a)) => !a.iter().any(present),
            Ref::Json(Value::Object(o)) => !o.values().any(present),
            Ref::Json(_) => false,
            Ref::Value(v) => v.is_empty(),
        }
    }

    /// Whether a map has the key; `None` for other values.
    fn has_key(self, key: &str) -> Option<bool> {
        match self {
            Ref::Json(Value::Object(o)) => Some(o.get(key).is_some_and(present)),
            Ref::Value(FieldValue::Map(m)) => Some(m.contains_key(key)),
            _ => None,
        }
    }
}

/// The values [`Ref::flatten`] yields.
enum Items<'a> {
    Json(std::slice::Iter<'a, Value>),
    Values(std::slice::Iter<'a, FieldValue>),
    One(Option<Ref<'a>>),
}

impl<'a> Iterator for Items<'a> {
    type Item = Ref<'a>;

    fn next(&mut self) -> Option<Ref<'a>> {
        match self {
            Items::Json(it) => it.find(|v| present(v)).map(Ref::Json),
            Items::Values(it) => it.next().map(Ref::Value),
            Items::One(v) => v.take(),
        }
    }
}

impl<'a> Scalar<'a> {
    fn to_value(self) -> FieldValue {
        match self {
            Scalar::Str(s) => FieldValue::String(s.to_string()),
            Scalar::Int(i) => FieldValue::Int(i),
            Scalar::Number(n) => FieldValue::Number(n),
            Scalar::Bool(b) => FieldValue::Bool(b),
            Scalar::Date(d) => FieldValue::Date(d),
        }
    }

    /// A string's number as written (possibly not finite); parsed once per comparison since
    /// both the date and the number tests need it.
    fn parse_number(self) -> Option<f64> {
        match self {
            Scalar::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// [`FieldValue::as_number`], given [`Scalar::parse_number`].
    fn as_number(self, parsed: Option<f64>) -> Option<f64> {
        match self {
            Scalar::Int(i) => Some(i as f64),
            Scalar::Number(n) => Some(n),
            Scalar::Str(_) => parsed.filter(|f| f.is_finite()),
            _ => None,
        }
    }

    fn as_bool(self) -> Option<bool> {
        match self {
            Scalar::Bool(b) => Some(b),
            Scalar::Int(0) => Some(false),
            Scalar::Int(1) => Some(true),
            Scalar::Str(s) => value::str_as_bool(s),
            _ => None,
        }
    }

    /// A date, or a relative date (`"now-7d"`): either makes the comparison one of dates.
    fn is_strict_date(self) -> bool {
        match self {
            Scalar::Date(_) => true,
            Scalar::Str(s) => dates::is_relative(s),
            _ => false,
        }
    }

    /// A string that reads as a date (not merely a number), e.g. `2024-01-01` or RFC 3339.
    fn looks_like_date(self, parsed: Option<f64>) -> bool {
        matches!(self, Scalar::Str(s) if parsed.is_none() && dates::parse_date(s).is_some())
    }

    fn to_date(self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Scalar::Str(s) => dates::parse_relative(s, now).or_else(|| dates::parse_date(s)),
            Scalar::Date(d) => Some(d),
            Scalar::Int(i) => dates::from_epoch(i as f64),
            Scalar::Number(n) => dates::from_epoch(n),
            Scalar::Bool(_) => None,
        }
    }
}

/// Evaluates a value for boolean evaluation, borrowing fields and string literals.
fn eval_ref<'a>(e: &'a Expr, ctx: &Ctx<'a>) -> Option<Val<'a>> {
    match e {
        Expr::Field { name, path, .. } => lookup(ctx.root, name, path)
            .filter(|v| present(v))
            .map(Val::Json),
        Expr::Literal {
            value: Literal::String(s),
            ..
        } => Some(Val::Str(s)),
        // `len` of a field is common in filters; counting in place spares copying a list.
        Expr::Call { name, args, .. } if name == "len" => {
            let v = eval_ref(args.first()?, ctx)?;
            let n = match v.as_ref() {
                Ref::Json(Value::Array(a)) => a.iter().filter(|v| present(v)).count(),
                Ref::Json(Value::Object(o)) => o.values().filter(|v| present(v)).count(),
                Ref::Value(FieldValue::List(l)) => l.len(),
                Ref::Value(FieldValue::Map(m)) => m.len(),
                other => other.text()?.chars().count(),
            };
            Some(Val::Owned(FieldValue::Int(n as i64)))
        }
        _ => eval_value(e, ctx).map(Val::Owned),
    }
}

pub fn eval_bool(e: &Expr, ctx: &Ctx<'_>) -> bool {
    let now = ctx.now;
    let eval = |x| eval_ref(x, ctx);
    match e {
        Expr::Not { expr, .. } => !eval_bool(expr, ctx),
        Expr::And { exprs, .. } => exprs.iter().all(|x| eval_bool(x, ctx)),
        Expr::Or { exprs, .. } => exprs.iter().any(|x| eval_bool(x, ctx)),
        Expr::Star { .. } => true,
        Expr::Include { name, .. } => ctx.includes.is_some_and(|f| f(name)),
        Expr::Exists { expr, .. } => eval(expr).is_some_and(|v| !v.as_ref().is_empty()),
        Expr::IsNull { expr, .. } => eval(expr).is_none_or(|v| v.as_ref().is_empty()),
        Expr::Compare {
            op, left, right, ..
        } => match (eval(left), eval(right)) {
            (Some(l), Some(r)) => compare_refs(*op, l.as_ref(), r.as_ref(), now),
            _ => false,
        },
        Expr::Between {
            expr, low, high, ..
        } => match (eval(expr), eval(low), eval(high)) {
            (Some(v), Some(lo), Some(hi)) => {
                let v = v.as_ref();
                compare_refs(CmpOp::Ge, v, lo.as_ref(), now)
                    && compare_refs(CmpOp::Le, v, hi.as_ref(), now)
            }
            _ => false,
        },
        Expr::In { expr, list, .. } => {
            let Some(v) = eval(expr) else {
                return false;
            };
            list.iter()
                .filter_map(eval)
                .any(|item| compare_refs(CmpOp::Eq, v.as_ref(), item.as_ref(), now))
        }
        Expr::Intersects { expr, list, .. } => {
            let Some(v) = eval(expr) else {
                return false;
            };
            let right: Vec<Val<'_>> = list.iter().filter_map(eval).collect();
            v.as_ref().flatten().any(|l| {
                right
                    .iter()
                    .flat_map(|r| r.as_ref().flatten())
                    .any(|r| compare_refs(CmpOp::Eq, l, r, now))
            })
        }
        Expr::Contains { expr, value, .. } => {
            let (Some(hay), Some(needle)) = (eval(expr), eval(value)) else {
                return false;
            };
            let (hay, needle) = (hay.as_ref(), needle.as_ref());
            if hay.is_list() {
                return hay
                    .flatten()
                    .any(|i| compare_refs(CmpOp::Eq, i, needle, now));
            }
            let Some(n) = needle.text() else {
                return false;
            };
            match hay.has_key(&n) {
                Some(has) => has,
                None => hay.text().is_some_and(|h| h.contains(n.as_ref())),
            }
        }
        Expr::Like { expr, pattern, .. } => {
            let (Some(v), Some(p)) = (eval(expr), eval(pattern)) else {
                return false;
            };
            let Some(p) = p.as_ref().text() else {
                return false;
            };
            v.as_ref()
                .flatten()
                .filter_map(Ref::text)
                .any(|t| like(&t, &p))
        }
        Expr::Field { .. } | Expr::Literal { .. } | Expr::Call { .. } => {
            eval(e).and_then(|v| v.as_ref().scalar()?.as_bool()) == Some(true)
        }
    }
}

/// Compares two present values (see the module documentation for the rules).
pub fn compare(op: CmpOp, l: &FieldValue, r: &FieldValue, now: DateTime<Utc>) -> bool {
    compare_refs(op, Ref::Value(l), Ref::Value(r), now)
}

fn compare_refs(op: CmpOp, l: Ref<'_>, r: Ref<'_>, now: DateTime<Utc>) -> bool {
    if l.is_list() {
        let mut items = l.flatten();
        return if op == CmpOp::NotEq {
            !items.any(|i| compare_refs(CmpOp::Eq, i, r, now))
        } else {
            items.any(|i| compare_refs(op, i, r, now))
        };
    }
    // Lists on the right and maps on either side compare with nothing.
    let Some(ord) = l
        .scalar()
        .zip(r.scalar())
        .and_then(|(l, r)| order(l, r, now))
    else {
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

fn order(l: Scalar<'_>, r: Scalar<'_>, now: DateTime<Utc>) -> Option<Ordering> {
    let strict = l.is_strict_date() || r.is_strict_date();
    let (ln, rn) = (l.parse_number(), r.parse_number());
    if strict || l.looks_like_date(ln) || r.looks_like_date(rn) {
        match (l.to_date(now), r.to_date(now)) {
            (Some(a), Some(b)) => return Some(a.cmp(&b)),
            // A date against something that is no date: incomparable.
            _ if strict => return None,
            // A date-looking string against a plain string: compare as strings below.
            _ => {}
        }
    }
    if matches!(l, Scalar::Bool(_)) || matches!(r, Scalar::Bool(_)) {
        return match (l.as_bool(), r.as_bool()) {
            (Some(a), Some(b)) => Some(a.cmp(&b)),
            _ => None,
        };
    }
    let numeric = |v| matches!(v, Scalar::Int(_) | Scalar::Number(_));
    match (l.as_number(ln), r.as_number(rn)) {
        (Some(a), Some(b)) => a.partial_cmp(&b),
        // A number against a non-numeric string: incomparable (not a string comparison).
        _ if numeric(l) || numeric(r) => None,
        // Dates, booleans and numbers are settled above: two strings remain.
        _ => match (l, r) {
            (Scalar::Str(a), Scalar::Str(b)) => Some(a.cmp(b)),
            _ => None,
        },
    }
}

/// Case-insensitive wildcard match: `*` and `%` match any run of characters.
pub fn like(text: &str, pattern: &str) -> bool {
    if text.is_ascii() && pattern.is_ascii() {
        return wildcard(text.as_bytes(), pattern.as_bytes(), |p, t| {
            p.eq_ignore_ascii_case(&t)
        });
    }
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    wildcard(&t, &p, |p, t| p == t)
}

/// `*`/`%` wildcard matching with backtracking to the last star.
fn wildcard<T: Copy + Into<u32>>(t: &[T], p: &[T], same: impl Fn(T, T) -> bool) -> bool {
    let is_star = |c: T| [u32::from('*'), u32::from('%')].contains(&c.into());
    let (mut ti, mut pi) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && is_star(p[pi]) {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && same(p[pi], t[ti]) {
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
    while pi < p.len() && is_star(p[pi]) {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert!(like("bob@example.com", "*@example.com"));
        assert!(like("bob@EXAMPLE.com", "%@example.%"));
        assert!(like("abc", "abc"));
        assert!(like("abc", "*"));
        assert!(like("", "*"));
        assert!(!like("abc", "ab"));
        assert!(!like("bob@example.org", "*@example.com"));
        assert!(like("aXbXc", "a*b*c"));
        assert!(!like("aXbX", "a*b*c"));
        // Beyond ASCII: Unicode lowercase, characters not bytes.
        assert!(like("HÉLLO", "h*o"));
        assert!(like("é", "É"));
        assert!(!like("é", "e"));
    }
}
