//! The function library shared by both languages: signatures (checked at load time) and
//! implementations (pure functions of already-evaluated arguments).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

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
pub const AGGREGATES: &[&str] = &["count", "sum", "min", "max", "set", "first", "latest"];

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
    sig("join", 2, Some(2)),
    sig("replace", 3, Some(3)),
    sig("urlmain", 1, Some(1)),
    sig("domain", 1, Some(1)),
    sig("emaildomain", 1, Some(1)),
    sig("concat", 1, None),
    sig("len", 1, Some(1)),
    sig("exists", 1, Some(1)),
    sig("now", 0, Some(0)),
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

/// The result type of a call, given its argument types (arity already checked).
pub fn return_type(name: &str, args: &[Ty]) -> Ty {
    match name {
        "email" | "lower" | "upper" | "trim" | "tostring" | "hash.sha256" | "join" | "replace"
        | "urlmain" | "domain" | "emaildomain" | "concat" => Ty::String,
        "todate" | "now" => Ty::Date,
        "tonumber" => Ty::Number,
        "toint" | "len" => Ty::Int,
        "tobool" | "contains" | "exists" => Ty::Bool,
        "split" => Ty::List(Box::new(Ty::String)),
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

/// Calls a (non-`match`, non-`now`) function on evaluated arguments. `None` is "no value".
pub fn call(name: &str, args: &[Option<FieldValue>]) -> Option<FieldValue> {
    let a0 = args.first().cloned().flatten();
    match name {
        "email" => normalize_email(&text(&a0)?).map(FieldValue::String),
        "lower" => string(text(&a0)?.to_lowercase()),
        "upper" => string(text(&a0)?.to_uppercase()),
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
        "hash.sha256" => {
            let t = text(&a0)?;
            Some(FieldValue::String(hex::encode(Sha256::digest(
                t.as_bytes(),
            ))))
        }
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
            let sep = text(&arg(args, 1))?;
            match a0? {
                FieldValue::List(items) => string(
                    items
                        .iter()
                        .filter_map(FieldValue::as_text)
                        .collect::<Vec<_>>()
                        .join(&sep),
                ),
                other => string(other.as_text()?),
            }
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
}
