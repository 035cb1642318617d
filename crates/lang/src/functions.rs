//! The function library shared by both languages: signatures (checked at load time) and
//! implementations (pure functions of already-evaluated arguments).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Timelike, Utc};
use md5::Md5;
use percent_encoding::percent_decode_str;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use url::Url;

use crate::ast::CmpOp;
use crate::value::FieldValue;

/// A static type, inferred at load time so that `KIND` mismatches are reported with a position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ty {
    /// Unknown until run time (a raw event field); converted to the declared KIND then.
    Any,
    String,
    Int,
    Number,
    Bool,
    Date,
    List(Box<Ty>),
    Map(Box<Ty>),
}

impl Ty {
    pub fn name(&self) -> String {
        match self {
            Ty::Any => "any".into(),
            Ty::String => "string".into(),
            Ty::Int => "int".into(),
            Ty::Number => "number".into(),
            Ty::Bool => "bool".into(),
            Ty::Date => "date".into(),
            Ty::List(t) => format!("[]{}", t.name()),
            Ty::Map(t) => format!("map[string]{}", t.name()),
        }
    }
}

/// Names of the aggregates a mapping's SELECT expression may be wrapped in.
pub const AGGREGATES: &[&str] = &[
    "count", "sum", "min", "max", "set", "first", "latest", "valuect",
];

/// One function's signature.
pub struct Signature {
    pub name: &'static str,
    pub min_args: usize,
    /// `None`: variadic.
    pub max_args: Option<usize>,
    /// Only meaningful in a mapping (reads the whole event or builds map fields).
    pub mapping_only: bool,
}

const fn sig(name: &'static str, min_args: usize, max_args: Option<usize>) -> Signature {
    Signature {
        name,
        min_args,
        max_args,
        mapping_only: false,
    }
}

pub const FUNCTIONS: &[Signature] = &[
    sig("email", 1, Some(1)),
    sig("lower", 1, Some(1)),
    sig("upper", 1, Some(1)),
    sig("trim", 1, Some(1)),
    sig("todate", 1, Some(2)),
    sig("tonumber", 1, Some(1)),
    sig("toint", 1, Some(1)),
    sig("tostring", 1, Some(1)),
    sig("tobool", 1, Some(1)),
    sig("hash.sha256", 1, Some(1)),
    sig("oneof", 1, None),
    sig("contains", 2, Some(2)),
    sig("split", 2, Some(2)),
    // `join(list, sep)`, or qlbridge's `join(a, b, …, sep)`.
    sig("join", 2, None),
    // qlbridge lets the replacement default to "".
    sig("replace", 2, Some(3)),
    sig("urlmain", 1, Some(1)),
    sig("domain", 1, Some(1)),
    sig("emaildomain", 1, Some(1)),
    sig("concat", 1, None),
    sig("len", 1, Some(1)),
    sig("exists", 1, Some(1)),
    sig("now", 0, Some(0)),
    // The qlbridge (LQL / FilterQL) builtins Lytics users rely on.
    sig("tolower", 1, Some(1)),
    sig("toupper", 1, Some(1)),
    sig("hash.md5", 1, Some(1)),
    sig("hash.sha1", 1, Some(1)),
    sig("hasprefix", 2, Some(2)),
    sig("hassuffix", 2, Some(2)),
    sig("qs", 2, Some(2)),
    sig("path", 1, Some(1)),
    sig("host", 1, Some(1)),
    sig("urlminusqs", 2, Some(2)),
    sig("urldecode", 1, Some(1)),
    sig("daysago", 1, Some(1)),
    sig("yy", 0, Some(1)),
    sig("mm", 0, Some(1)),
    sig("hourofday", 0, Some(1)),
    sig("dayofweek", 0, Some(1)),
    sig("eq", 2, Some(2)),
    sig("ne", 2, Some(2)),
    sig("gt", 2, Some(2)),
    sig("ge", 2, Some(2)),
    sig("lt", 2, Some(2)),
    sig("le", 2, Some(2)),
    sig("not", 1, Some(1)),
    sig("any", 1, None),
    sig("all", 1, None),
    sig("mapkeys", 1, None),
    sig("mapvalues", 1, Some(1)),
    Signature {
        name: "match",
        min_args: 1,
        max_args: None,
        mapping_only: true,
    },
    Signature {
        name: "map",
        min_args: 2,
        max_args: Some(2),
        mapping_only: true,
    },
];

pub fn lookup(name: &str) -> Option<&'static Signature> {
    FUNCTIONS.iter().find(|s| s.name.eq_ignore_ascii_case(name))
}

/// Whether a call's result depends on the clock (`now()`, `daysago(x)`, and the date parts
/// of the current time, `yy()`), so a filter using it must be re-evaluated over time.
pub fn reads_clock(name: &str, arg_count: usize) -> bool {
    match name {
        "now" | "daysago" => true,
        "yy" | "mm" | "hourofday" | "dayofweek" => arg_count == 0,
        _ => false,
    }
}

/// The result type of a call, given its argument types (arity already checked).
pub fn return_type(name: &str, args: &[Ty]) -> Ty {
    match name {
        "email" | "lower" | "upper" | "trim" | "tostring" | "hash.sha256" | "join" | "replace"
        | "urlmain" | "domain" | "emaildomain" | "concat" | "tolower" | "toupper" | "hash.md5"
        | "hash.sha1" | "qs" | "path" | "host" | "urlminusqs" | "urldecode" => Ty::String,
        "todate" | "now" => Ty::Date,
        "tonumber" => Ty::Number,
        "toint" | "len" | "daysago" | "yy" | "mm" | "hourofday" | "dayofweek" => Ty::Int,
        "tobool" | "contains" | "exists" | "hasprefix" | "hassuffix" | "eq" | "ne" | "gt"
        | "ge" | "lt" | "le" | "not" | "any" | "all" => Ty::Bool,
        "split" | "mapkeys" | "mapvalues" => Ty::List(Box::new(Ty::String)),
        "match" => Ty::Map(Box::new(Ty::Any)),
        "map" => Ty::Map(Box::new(args.get(1).cloned().unwrap_or(Ty::Any))),
        "oneof" => {
            let first = args.first().cloned().unwrap_or(Ty::Any);
            if args.iter().all(|t| *t == first) {
                first
            } else {
                Ty::Any
            }
        }
        _ => Ty::Any,
    }
}

fn arg(args: &[Option<FieldValue>], i: usize) -> Option<FieldValue> {
    args.get(i).cloned().flatten()
}

fn text(v: &Option<FieldValue>) -> Option<String> {
    v.as_ref()?.as_text()
}

fn string(s: String) -> Option<FieldValue> {
    (!s.is_empty()).then_some(FieldValue::String(s))
}

fn hex_digest<D: Digest>(v: &Option<FieldValue>) -> Option<FieldValue> {
    Some(FieldValue::String(hex::encode(D::digest(
        text(v)?.as_bytes(),
    ))))
}

/// Calls a function on evaluated arguments at the time `now` (the event time in mappings, the
/// evaluation time in filters). `None` is "no value". `match` reads the whole event and is
/// evaluated by [`crate::eval`].
pub fn call_at(name: &str, args: &[Option<FieldValue>], now: DateTime<Utc>) -> Option<FieldValue> {
    // The date parts take the current time when called without an argument, as in qlbridge.
    let date_or_now = || match args.first() {
        None => Some(now),
        Some(v) => v.as_ref()?.as_date(),
    };
    let int = |i: i64| Some(FieldValue::Int(i));
    let cmp = |op: CmpOp| {
        let (l, r) = (args.first()?.as_ref()?, args.get(1)?.as_ref()?);
        Some(FieldValue::Bool(crate::eval::compare(op, l, r, now)))
    };
    match name {
        "now" => Some(FieldValue::Date(now)),
        // Whole days, truncated toward zero: 47 hours ago is 1 day ago.
        "daysago" => int((now - args.first()?.as_ref()?.as_date()?).num_days()),
        "yy" => int(two_digit_year(date_or_now()?.year())),
        "mm" => int(date_or_now()?.month().into()),
        "hourofday" => int(date_or_now()?.hour().into()),
        "dayofweek" => int(date_or_now()?.weekday().num_days_from_sunday().into()),
        "eq" => cmp(CmpOp::Eq),
        "ne" => cmp(CmpOp::NotEq),
        "gt" => cmp(CmpOp::Gt),
        "ge" => cmp(CmpOp::Ge),
        "lt" => cmp(CmpOp::Lt),
        "le" => cmp(CmpOp::Le),
        _ => call(name, args),
    }
}

/// qlbridge's `yy`: 2015 is 15, 1999 is 99; years before 1900 stay whole.
fn two_digit_year(year: i32) -> i64 {
    let year = i64::from(year);
    match year {
        2000.. => year - 2000,
        1900.. => year - 1900,
        _ => year,
    }
}

/// qlbridge's truthiness for `any` / `all`: present, not `false`, not zero, not empty.
fn truthy(v: &Option<FieldValue>) -> bool {
    match v {
        None => false,
        Some(FieldValue::Bool(b)) => *b,
        Some(FieldValue::Int(i)) => *i != 0,
        Some(FieldValue::Number(n)) => *n != 0.0,
        Some(other) => !other.is_empty(),
    }
}

/// Calls a function that does not depend on the time (see [`call_at`] for those that do) on
/// evaluated arguments. `None` is "no value".
pub fn call(name: &str, args: &[Option<FieldValue>]) -> Option<FieldValue> {
    let a0 = args.first().cloned().flatten();
    match name {
        "email" => normalize_email(&text(&a0)?).map(FieldValue::String),
        "lower" | "tolower" => string(text(&a0)?.to_lowercase()),
        "upper" | "toupper" => string(text(&a0)?.to_uppercase()),
        "trim" => string(text(&a0)?.trim().to_string()),
        "todate" => {
            let v = a0?;
            match args.get(1).and_then(text) {
                Some(fmt) => {
                    crate::dates::parse_date_with_format(&v.as_text()?, &fmt).map(FieldValue::Date)
                }
                None => v.as_date().map(FieldValue::Date),
            }
        }
        "tonumber" => a0?.as_number().map(FieldValue::Number),
        "toint" => a0?.as_int().map(FieldValue::Int),
        "tostring" => string(a0?.as_text()?),
        "tobool" => a0?.as_bool().map(FieldValue::Bool),
        "hash.sha256" => hex_digest::<Sha256>(&a0),
        "hash.md5" => hex_digest::<Md5>(&a0),
        "hash.sha1" => hex_digest::<Sha1>(&a0),
        "hasprefix" | "hassuffix" => {
            let (s, affix) = (text(&a0)?, text(&arg(args, 1))?);
            // qlbridge: an empty prefix or suffix gives no answer.
            if affix.is_empty() {
                return None;
            }
            Some(FieldValue::Bool(if name == "hasprefix" {
                s.starts_with(&affix)
            } else {
                s.ends_with(&affix)
            }))
        }
        "not" => a0?.as_bool().map(|b| FieldValue::Bool(!b)),
        "any" => Some(FieldValue::Bool(args.iter().any(truthy))),
        "all" => Some(FieldValue::Bool(args.iter().all(truthy))),
        "mapkeys" => {
            let keys: BTreeSet<&String> = args
                .iter()
                .flatten()
                .filter_map(|v| match v {
                    FieldValue::Map(m) => Some(m.keys()),
                    _ => None,
                })
                .flatten()
                .collect();
            string_list(keys.into_iter().cloned())
        }
        "mapvalues" => match a0? {
            FieldValue::Map(m) => {
                let values: BTreeSet<String> = m.values().filter_map(FieldValue::as_text).collect();
                string_list(values.into_iter())
            }
            _ => None,
        },
        "qs" => {
            let key = text(&arg(args, 1))?;
            let url = parse_url(&text(&a0)?)?;
            let value = url.url.query_pairs().find(|(k, _)| *k == key)?.1;
            string(value.into_owned())
        }
        "path" => {
            // Lowercased, as qlbridge's path() lowercases the whole URL.
            let url = parse_url(&text(&a0)?)?;
            string(
                percent_decode_str(url.url.path())
                    .decode_utf8_lossy()
                    .to_lowercase(),
            )
        }
        "host" => parse_url(&text(&a0)?)?.host().map(FieldValue::String),
        "urlminusqs" => url_minus_qs(&text(&a0)?, &text(&arg(args, 1))?).and_then(string),
        "urldecode" => query_unescape(&text(&a0)?).and_then(string),
        "oneof" => args.iter().flatten().find(|v| !v.is_empty()).cloned(),
        "contains" => {
            let needle = text(&arg(args, 1))?;
            Some(FieldValue::Bool(match a0? {
                FieldValue::List(items) => {
                    items.iter().any(|i| i.as_text() == Some(needle.clone()))
                }
                FieldValue::Map(m) => m.contains_key(&needle),
                other => other.as_text()?.contains(&needle),
            }))
        }
        "split" => {
            let s = text(&a0)?;
            let sep = text(&arg(args, 1))?;
            let parts: Vec<FieldValue> = if sep.is_empty() {
                vec![FieldValue::String(s.trim().to_string())]
            } else {
                s.split(sep.as_str())
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| FieldValue::String(p.to_string()))
                    .collect()
            };
            (!parts.is_empty()).then_some(FieldValue::List(parts))
        }
        "join" => {
            let (sep, parts) = args.split_last()?;
            let sep = text(sep)?;
            let mut out: Vec<String> = Vec::new();
            for part in parts.iter().flatten() {
                match part {
                    FieldValue::List(items) => {
                        out.extend(items.iter().filter_map(FieldValue::as_text))
                    }
                    scalar => out.extend(scalar.as_text().filter(|t| !t.is_empty())),
                }
            }
            string(out.join(&sep))
        }
        "replace" => {
            let s = text(&a0)?;
            let from = text(&arg(args, 1))?;
            let to = text(&arg(args, 2)).unwrap_or_default();
            if from.is_empty() {
                return string(s);
            }
            string(s.replace(&from, &to))
        }
        "urlmain" => {
            let (host, path) = split_url(&text(&a0)?)?;
            string(format!("{host}{}", path.trim_end_matches('/')))
        }
        "domain" => {
            let t = text(&a0)?;
            if t.contains('@') && !t.contains("://") {
                email_domain(&t).map(FieldValue::String)
            } else {
                split_url(&t).map(|(h, _)| FieldValue::String(h))
            }
        }
        "emaildomain" => email_domain(&text(&a0)?).map(FieldValue::String),
        "concat" => {
            let parts: Vec<String> = args.iter().filter_map(text).collect();
            if parts.is_empty() {
                None
            } else {
                string(parts.concat())
            }
        }
        "len" => Some(FieldValue::Int(match a0? {
            FieldValue::List(l) => l.len() as i64,
            FieldValue::Map(m) => m.len() as i64,
            other => other.as_text()?.chars().count() as i64,
        })),
        "exists" => Some(FieldValue::Bool(a0.is_some_and(|v| !v.is_empty()))),
        "map" => {
            let key = text(&a0)?;
            let value = args.get(1).cloned().flatten()?;
            if key.is_empty() {
                return None;
            }
            Some(FieldValue::Map(BTreeMap::from([(key, value)])))
        }
        _ => None,
    }
}

fn string_list(items: impl Iterator<Item = String>) -> Option<FieldValue> {
    let list: Vec<FieldValue> = items.map(FieldValue::String).collect();
    (!list.is_empty()).then_some(FieldValue::List(list))
}

/// A URL as qlbridge's url functions read one.
struct UrlRef {
    url: Url,
    /// A path without scheme or host (`/blog?x=1`), resolved against a placeholder base.
    path_only: bool,
}

impl UrlRef {
    /// The lowercased host, with the port when one is written.
    fn host(&self) -> Option<String> {
        if self.path_only {
            return None;
        }
        let host = self.url.host_str().filter(|h| !h.is_empty())?;
        Some(match self.url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        })
    }
}

/// Parses a URL-ish value: with a scheme as written, `/path…` as a path alone, and anything
/// else as if `http://` came first (`www.example.com/x`), as qlbridge does.
fn parse_url(s: &str) -> Option<UrlRef> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.starts_with('/') && !s.starts_with("//") {
        // A path alone is resolved against a base that is never shown (`path_only`).
        static BASE: LazyLock<Url> =
            LazyLock::new(|| Url::parse("http://path.invalid/").expect("a valid base"));
        return Some(UrlRef {
            url: BASE.join(s).ok()?,
            path_only: true,
        });
    }
    let url = if s.contains("://") {
        Url::parse(s)
    } else if s.starts_with("//") {
        Url::parse(&format!("http:{s}"))
    } else {
        Url::parse(&format!("http://{s}"))
    };
    Some(UrlRef {
        url: url.ok()?,
        path_only: false,
    })
}

/// qlbridge's `urlminusqs`: the URL without its fragment and without the query parameter
/// `key`; the remaining parameters are re-encoded in key order (as Go's `url.Values` does).
fn url_minus_qs(s: &str, key: &str) -> Option<String> {
    let url = parse_url(s)?;
    let base = match url.host() {
        Some(host) => format!("{}://{host}{}", url.url.scheme(), url.url.path()),
        None => url.url.path().to_string(),
    };
    let mut pairs: Vec<(String, String)> = url.url.query_pairs().into_owned().collect();
    let query = if pairs.iter().any(|(k, _)| k == key) {
        pairs.retain(|(k, _)| k != key);
        // Stable: values of one key keep their order.
        pairs.sort_by(|a, b| a.0.cmp(&b.0));
        url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish()
    } else {
        url.url.query().unwrap_or_default().to_string()
    };
    Some(if query.is_empty() {
        base
    } else {
        format!("{base}?{query}")
    })
}

/// Go's `url.QueryUnescape`: `+` is a space, `%XX` a byte; a `%` not followed by two hex
/// digits makes the whole value invalid. Bytes that are not UTF-8 become U+FFFD.
fn query_unescape(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return None;
        }
    }
    let spaced = s.replace('+', " ");
    Some(percent_decode_str(&spaced).decode_utf8_lossy().into_owned())
}

/// Validates and normalizes (trims, lowercases) an email address; `None` when invalid.
pub fn normalize_email(s: &str) -> Option<String> {
    let s = s.trim().to_lowercase();
    let s = s.strip_prefix("mailto:").unwrap_or(&s);
    let (local, domain) = s.rsplit_once('@')?;
    let bad_local = |c: char| c.is_whitespace() || "@()<>,;:\\\"[]".contains(c);
    if local.is_empty()
        || local.len() > 64
        || local.chars().any(bad_local)
        || local.starts_with('.')
        || local.ends_with('.')
        || local.contains("..")
    {
        return None;
    }
    if domain.len() > 253 || !domain.contains('.') {
        return None;
    }
    let labels: Vec<&str> = domain.split('.').collect();
    for label in &labels {
        if label.is_empty()
            || label.starts_with('-')
            || label.ends_with('-')
            || !label.chars().all(|c| c.is_alphanumeric() || c == '-')
        {
            return None;
        }
    }
    if labels.last().is_some_and(|tld| tld.chars().count() < 2) {
        return None;
    }
    Some(format!("{local}@{domain}"))
}

fn email_domain(s: &str) -> Option<String> {
    let (_, d) = s.trim().rsplit_once('@')?;
    let d = d.trim().to_lowercase();
    (!d.is_empty() && !d.chars().any(char::is_whitespace)).then_some(d)
}

/// Splits a URL (with or without scheme) into a lowercased host (no user info, no port) and
/// its path (no query, no fragment).
pub fn split_url(s: &str) -> Option<(String, String)> {
    let s = s.trim();
    let rest = match s.find("://") {
        Some(i) => &s[i + 3..],
        None => s.strip_prefix("//").unwrap_or(s),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let after = &rest[end..];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host_port.starts_with('[') {
        host_port.find(']').map_or(host_port, |i| &host_port[..=i])
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    if host.is_empty() || host.chars().any(char::is_whitespace) {
        return None;
    }
    let path_end = after.find(['?', '#']).unwrap_or(after.len());
    Some((host.to_lowercase(), after[..path_end].to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<FieldValue> {
        Some(FieldValue::String(v.into()))
    }

    fn c(name: &str, args: &[Option<FieldValue>]) -> Option<FieldValue> {
        call(name, args)
    }

    #[test]
    fn email_validation() {
        assert_eq!(
            normalize_email(" Bob.Smith@Example.COM "),
            Some("bob.smith@example.com".into())
        );
        assert_eq!(
            normalize_email("a+tag@sub.example.co.uk"),
            Some("a+tag@sub.example.co.uk".into())
        );
        assert_eq!(normalize_email("mailto:x@y.io"), Some("x@y.io".into()));
        for bad in [
            "",
            "plain",
            "@x.com",
            "a@",
            "a@b",
            "a b@c.com",
            "a@-x.com",
            "a@x..com",
            "a@x.c",
            ".a@x.com",
            "a@@x.com",
        ] {
            assert_eq!(normalize_email(bad), None, "{bad}");
        }
        assert_eq!(c("email", &[s("Nope")]), None);
        assert_eq!(c("email", &[s("A@B.co")]), s("a@b.co"));
    }

    #[test]
    fn string_functions() {
        assert_eq!(c("lower", &[s("US")]), s("us"));
        assert_eq!(c("upper", &[s("us")]), s("US"));
        assert_eq!(c("trim", &[s("  x ")]), s("x"));
        assert_eq!(c("trim", &[s("   ")]), None);
        assert_eq!(c("lower", &[Some(FieldValue::Int(3))]), s("3"));
        assert_eq!(c("lower", &[None]), None);
        assert_eq!(
            c("concat", &[s("a"), None, Some(FieldValue::Int(1))]),
            s("a1")
        );
        assert_eq!(c("concat", &[None, None]), None);
        assert_eq!(c("oneof", &[None, s(""), s("b"), s("c")]), s("b"));
        assert_eq!(c("oneof", &[None]), None);
        assert_eq!(c("replace", &[s("a-b-c"), s("-"), s("+")]), s("a+b+c"));
        assert_eq!(
            c("hash.sha256", &[s("abc")]),
            s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(c("tostring", &[Some(FieldValue::Number(2.5))]), s("2.5"));
        assert_eq!(c("len", &[s("héllo")]), Some(FieldValue::Int(5)));
    }

    #[test]
    fn lists_and_maps() {
        let l = c("split", &[s("a, b,,c"), s(",")]);
        assert_eq!(
            l,
            Some(FieldValue::List(vec![
                FieldValue::String("a".into()),
                FieldValue::String("b".into()),
                FieldValue::String("c".into())
            ]))
        );
        assert_eq!(c("len", std::slice::from_ref(&l)), Some(FieldValue::Int(3)));
        assert_eq!(c("join", &[l.clone(), s("|")]), s("a|b|c"));
        assert_eq!(
            c("contains", &[l.clone(), s("b")]),
            Some(FieldValue::Bool(true))
        );
        assert_eq!(
            c("contains", &[s("hello"), s("ell")]),
            Some(FieldValue::Bool(true))
        );
        assert_eq!(
            c("contains", &[s("hello"), s("x")]),
            Some(FieldValue::Bool(false))
        );
        assert_eq!(c("contains", &[None, s("x")]), None);
        assert_eq!(
            c("map", &[s("signup"), Some(FieldValue::Int(1))]),
            Some(FieldValue::Map(BTreeMap::from([(
                "signup".into(),
                FieldValue::Int(1)
            )])))
        );
        assert_eq!(c("map", &[None, Some(FieldValue::Int(1))]), None);
        assert_eq!(c("map", &[s("k"), None]), None);
        assert_eq!(c("exists", &[s("")]), Some(FieldValue::Bool(false)));
        assert_eq!(c("exists", &[s("x")]), Some(FieldValue::Bool(true)));
    }

    #[test]
    fn conversions() {
        assert_eq!(c("tonumber", &[s("3.5")]), Some(FieldValue::Number(3.5)));
        assert_eq!(c("tonumber", &[s("abc")]), None);
        assert_eq!(c("toint", &[s("42")]), Some(FieldValue::Int(42)));
        assert_eq!(
            c("toint", &[Some(FieldValue::Number(4.9))]),
            Some(FieldValue::Int(4))
        );
        assert_eq!(c("tobool", &[s("false")]), Some(FieldValue::Bool(false)));
        let d = c("todate", &[s("2006-01-02")]).unwrap();
        assert_eq!(d.as_text().unwrap(), "2006-01-02T00:00:00Z");
        let d = c("todate", &[Some(FieldValue::Int(1136214245000))]).unwrap();
        assert_eq!(d.as_text().unwrap(), "2006-01-02T15:04:05Z");
        let d = c("todate", &[s("02.01.2006"), s("%d.%m.%Y")]).unwrap();
        assert_eq!(d.as_text().unwrap(), "2006-01-02T00:00:00Z");
        assert_eq!(c("todate", &[s("garbage")]), None);
    }

    #[test]
    fn urls() {
        assert_eq!(
            c("urlmain", &[s("https://www.Example.com:8080/a/b/?x=1#f")]),
            s("www.example.com/a/b")
        );
        assert_eq!(c("urlmain", &[s("example.com/p?q")]), s("example.com/p"));
        assert_eq!(
            c("domain", &[s("https://user:pw@Shop.Example.com/x")]),
            s("shop.example.com")
        );
        assert_eq!(c("domain", &[s("bob@Gmail.com")]), s("gmail.com"));
        assert_eq!(c("domain", &[s("")]), None);
        assert_eq!(c("emaildomain", &[s("bob@Gmail.com")]), s("gmail.com"));
        assert_eq!(c("emaildomain", &[s("bob")]), None);
        assert_eq!(
            split_url("http://[::1]:80/x"),
            Some(("[::1]".into(), "/x".into()))
        );
    }

    fn at(name: &str, args: &[Option<FieldValue>]) -> Option<FieldValue> {
        // 2024-06-05T13:30:00Z, a Wednesday.
        let now = DateTime::from_timestamp(1_717_594_200, 0).unwrap();
        call_at(name, args, now)
    }

    fn b(v: bool) -> Option<FieldValue> {
        Some(FieldValue::Bool(v))
    }

    fn i(v: i64) -> Option<FieldValue> {
        Some(FieldValue::Int(v))
    }

    fn list(items: &[&str]) -> Option<FieldValue> {
        Some(FieldValue::List(
            items
                .iter()
                .map(|s| FieldValue::String(s.to_string()))
                .collect(),
        ))
    }

    #[test]
    fn qlbridge_hashes_and_strings() {
        assert_eq!(
            c("hash.md5", &[s("abc")]),
            s("900150983cd24fb0d6963f7d28e17f72")
        );
        assert_eq!(
            c("hash.sha1", &[s("abc")]),
            s("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(c("hash.md5", &[None]), None);
        assert_eq!(c("tolower", &[s("HeLLo")]), s("hello"));
        assert_eq!(c("toupper", &[s("HeLLo")]), s("HELLO"));
        assert_eq!(c("hasprefix", &[s("apples"), s("ap")]), b(true));
        assert_eq!(c("hasprefix", &[s("apples"), s("o")]), b(false));
        assert_eq!(c("hasprefix", &[s("apples"), s("")]), None);
        assert_eq!(c("hassuffix", &[s("apples"), s("es")]), b(true));
        assert_eq!(c("hassuffix", &[None, s("es")]), None);
        // join: a list and a separator as before, or qlbridge's values then separator.
        assert_eq!(
            c("join", &[s("apples"), s("oranges"), s(",")]),
            s("apples,oranges")
        );
        assert_eq!(
            c("join", &[list(&["a", "b"]), s(""), i(3), s("-")]),
            s("a-b-3")
        );
        assert_eq!(c("join", &[s("a"), s(",")]), s("a"));
        assert_eq!(
            c("replace", &[s("/blog/index.html"), s("/blog")]),
            s("/index.html")
        );
    }

    #[test]
    fn qlbridge_url_functions() {
        let url = s("https://www.Lytics.io:8080/Blog/Index.html?utm_source=google&a=b+c#top");
        assert_eq!(
            c("host", std::slice::from_ref(&url)),
            s("www.lytics.io:8080")
        );
        assert_eq!(c("host", &[s("www.lytics.io/x")]), s("www.lytics.io"));
        assert_eq!(c("host", &[s("/only/a/path")]), None);
        assert_eq!(c("path", std::slice::from_ref(&url)), s("/blog/index.html"));
        assert_eq!(c("path", &[s("/Blog/A%20B?x=1")]), s("/blog/a b"));
        assert_eq!(c("qs", &[url.clone(), s("utm_source")]), s("google"));
        assert_eq!(c("qs", &[url.clone(), s("a")]), s("b c"));
        assert_eq!(c("qs", &[url.clone(), s("missing")]), None);
        assert_eq!(c("qs", &[s("/p?x=1"), s("x")]), s("1"));
        assert_eq!(
            c(
                "urlminusqs",
                &[s("http://www.lytics.io/?q1=google&q2=123"), s("q1")]
            ),
            s("http://www.lytics.io/?q2=123")
        );
        assert_eq!(
            c("urlminusqs", &[s("http://x.io/p?z=1&y=2&q=3#f"), s("q")]),
            s("http://x.io/p?y=2&z=1")
        );
        assert_eq!(
            c("urlminusqs", &[s("http://x.io/p?only=1"), s("only")]),
            s("http://x.io/p")
        );
        assert_eq!(
            c("urlminusqs", &[s("x.io/p?a=1"), s("b")]),
            s("http://x.io/p?a=1")
        );
        assert_eq!(c("urldecode", &[s("a%20b+c%2Fd")]), s("a b c/d"));
        assert_eq!(c("urldecode", &[s("100%")]), None);
        assert_eq!(c("urldecode", &[s("%zz")]), None);
        assert_eq!(c("host", &[s("http://")]), None);
    }

    #[test]
    fn qlbridge_dates_use_the_argument_or_now() {
        assert_eq!(at("daysago", &[s("2024-06-01T13:30:00Z")]), i(4));
        assert_eq!(at("daysago", &[s("2024-06-01T14:00:00Z")]), i(3));
        assert_eq!(at("daysago", &[s("2024-06-10")]), i(-4));
        assert_eq!(at("daysago", &[None]), None);
        assert_eq!(at("yy", &[]), i(24));
        assert_eq!(at("yy", &[s("1999-12-31")]), i(99));
        assert_eq!(at("mm", &[s("2014-03-17")]), i(3));
        assert_eq!(at("mm", &[]), i(6));
        assert_eq!(at("hourofday", &[]), i(13));
        assert_eq!(at("hourofday", &[s("2024-01-01 07:15:00")]), i(7));
        assert_eq!(at("dayofweek", &[]), i(3));
        assert_eq!(at("dayofweek", &[s("2016-07-04")]), i(1));
        assert_eq!(at("dayofweek", &[s("garbage")]), None);
        assert!(reads_clock("daysago", 1) && reads_clock("yy", 0) && !reads_clock("yy", 1));
    }

    #[test]
    fn qlbridge_logic() {
        assert_eq!(at("eq", &[i(4), s("4")]), b(true));
        assert_eq!(at("eq", &[s("us"), s("US")]), b(false));
        assert_eq!(at("ne", &[i(4), i(5)]), b(true));
        assert_eq!(at("ne", &[None, i(5)]), None);
        assert_eq!(at("gt", &[i(6), i(5)]), b(true));
        assert_eq!(at("ge", &[s("5"), i(5)]), b(true));
        assert_eq!(at("lt", &[s("2024-01-01"), s("now-1d")]), b(true));
        assert_eq!(at("le", &[i(6), i(5)]), b(false));
        assert_eq!(c("not", &[b(true)]), b(false));
        assert_eq!(c("not", &[s("false")]), b(true));
        assert_eq!(c("not", &[s("maybe")]), None);
        assert_eq!(c("any", &[None, s(""), i(0), b(false)]), b(false));
        assert_eq!(c("any", &[None, s("x")]), b(true));
        assert_eq!(c("all", &[s("hello"), i(2), b(true)]), b(true));
        assert_eq!(c("all", &[s("hello"), i(0), b(true)]), b(false));
        assert_eq!(c("all", &[s(""), i(2)]), b(false));
    }

    #[test]
    fn qlbridge_maps() {
        let m = |pairs: &[(&str, &str)]| {
            Some(FieldValue::Map(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), FieldValue::String(v.to_string())))
                    .collect(),
            ))
        };
        let tags = m(&[("1", "news"), ("2", "sports"), ("3", "news")]);
        assert_eq!(
            c("mapkeys", std::slice::from_ref(&tags)),
            list(&["1", "2", "3"])
        );
        assert_eq!(
            c("mapkeys", &[tags.clone(), m(&[("0", "x")]), s("not a map")]),
            list(&["0", "1", "2", "3"])
        );
        assert_eq!(c("mapvalues", &[tags]), list(&["news", "sports"]));
        assert_eq!(c("mapvalues", &[s("x")]), None);
        assert_eq!(c("mapkeys", &[m(&[])]), None);
    }
}
