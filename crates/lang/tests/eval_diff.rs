//! Differential test: `Filter::matches` agrees with the evaluator it replaced
//! (`eval_oracle`) on random profiles and random filters over every operator.

mod eval_oracle;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tributary_lang::parse_filter;

/// Strings that exercise every comparison domain: plain, numeric, boolean, dates in several
/// formats, relative dates, emails and URLs, wildcards, non-ASCII.
const STRINGS: &[&str] = &[
    "",
    "us",
    "US",
    "ca",
    "5",
    " 7 ",
    "3.5",
    "-2",
    "1e3",
    "NaN",
    "inf",
    "true",
    "FALSE",
    "1",
    "0",
    "abc",
    "user12@gmail.com",
    "Bob@Example.com",
    "https://Shop.example.com/x?y=1",
    "2024-01-01",
    "2024-05-20T10:00:00Z",
    "2026-11-01T10:00:00.5+02:00",
    "01/02/2006",
    "2006-01-02 15:04:05",
    "1136214245",
    "20240101",
    "now",
    "now-7d",
    "NOW+1h",
    "now-1M-2d",
    "now-",
    "nowhere",
    "/",
    "/pricing",
    "/docs",
    "héllo",
    "HÉLLO",
    "Hello World",
    "a*b",
    "%",
    "İstanbul",
    "ǅ",
    " ",
];

const FIELDS: &[&str] = &[
    "a", "b", "c", "l", "m", "o.x", "o.l", "l.0", "`o.x`", "missing",
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 15, 12, 0, 0).unwrap()
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        prop::sample::select(STRINGS).prop_map(Value::from),
        (-3i64..10).prop_map(Value::from),
        prop::sample::select(vec![
            1_136_214_245i64,
            1_700_000_000_000,
            20_240_101,
            i64::MAX
        ])
        .prop_map(Value::from),
        prop::sample::select(vec![1.5, 7.0, -0.0, 2.0, 0.1, 1.136_214_245e9, 1e300])
            .prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            3 => inner.clone(),
            1 => prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            1 => prop::collection::btree_map(prop::sample::select(vec!["x", "l", "y"]), inner, 0..3)
                .prop_map(|m| json!(m)),
        ]
    })
}

fn profile() -> impl Strategy<Value = Value> {
    let names = ["a", "b", "c", "l", "m", "o", "o.x"];
    prop::collection::vec(prop::option::weighted(0.8, field_value()), names.len()).prop_map(
        move |vals| {
            let m: Map<String, Value> = names
                .iter()
                .zip(vals)
                .filter_map(|(k, v)| Some((k.to_string(), v?)))
                .collect();
            Value::Object(m)
        },
    )
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn literal() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(STRINGS).prop_map(quote),
        1 => (-3i64..10).prop_map(|i| i.to_string()),
        1 => prop::sample::select(vec!["1.5", "7.0", "-0.5", "1136214245", "1e3"])
            .prop_map(String::from),
        1 => prop::sample::select(vec!["true", "false", "null"]).prop_map(String::from),
    ]
}

fn value() -> BoxedStrategy<String> {
    let field = prop::sample::select(FIELDS).prop_map(String::from);
    let leaf = prop_oneof![3 => field.clone(), 2 => literal(), 1 => Just("now()".to_string())];
    leaf.prop_recursive(2, 6, 2, move |inner| {
        prop_oneof![
            4 => inner.clone(),
            1 => (
                prop::sample::select(vec![
                    "len", "domain", "emaildomain", "lower", "upper", "trim", "tonumber",
                    "toint", "tostring", "tobool", "todate", "email", "urlmain", "exists",
                    "hash.sha256",
                ]),
                inner.clone(),
            )
                .prop_map(|(f, a)| format!("{f}({a})")),
            1 => (
                prop::sample::select(vec!["concat", "oneof", "split", "contains", "join"]),
                inner.clone(),
                inner,
            )
                .prop_map(|(f, a, b)| format!("{f}({a}, {b})")),
        ]
    })
    .boxed()
}

fn predicate() -> impl Strategy<Value = String> {
    let op = prop::sample::select(vec!["=", "==", "!=", "<>", "<", "<=", ">", ">="]);
    let not = prop::sample::select(vec!["", "NOT "]);
    let list = prop::collection::vec(value(), 1..4).prop_map(|v| v.join(", "));
    prop_oneof![
        6 => (value(), op, value()).prop_map(|(l, o, r)| format!("{l} {o} {r}")),
        1 => (value(), not.clone(), value(), value())
            .prop_map(|(v, n, lo, hi)| format!("{v} {n}BETWEEN {lo} AND {hi}")),
        2 => (value(), not.clone(), list.clone()).prop_map(|(v, n, l)| format!("{v} {n}IN ({l})")),
        1 => (value(), not.clone(), list).prop_map(|(v, n, l)| format!("{v} {n}INTERSECTS ({l})")),
        2 => (value(), not.clone(), value()).prop_map(|(v, n, x)| format!("{v} {n}CONTAINS {x}")),
        2 => (
            value(),
            not,
            prop::sample::select(vec![
                "*", "%", "*@gmail.com", "%EXAMPLE%", "us", "u*", "*s", "h*o", "é*", "a\\\\*b",
                "*2*", "", "İ*", "/*",
            ]),
        )
            .prop_map(|(v, n, p)| format!("{v} {n}LIKE {}", quote(p))),
        1 => value().prop_map(|v| format!("EXISTS {v}")),
        1 => (value(), prop::sample::select(vec!["", "NOT "]))
            .prop_map(|(v, n)| format!("{v} IS {n}NULL")),
        1 => prop::sample::select(vec!["vip", "other"]).prop_map(|n| format!("INCLUDE {n}")),
        1 => value(),
    ]
}

fn filter() -> impl Strategy<Value = String> {
    predicate().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|e| format!("NOT ({e})")),
            prop::collection::vec(inner.clone(), 1..4)
                .prop_map(|v| format!("AND ({})", v.join(", "))),
            prop::collection::vec(inner, 1..4).prop_map(|v| format!("OR ({})", v.join(", "))),
        ]
    })
}

/// 1024 cases unless `PROPTEST_CASES` asks for another number.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(1024)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn matches_agrees_with_oracle(text in filter(), p in profile()) {
        // Random text may fail the load-time checks (e.g. a bad arity); those never evaluate.
        let Ok(f) = parse_filter(&text) else { return Ok(()) };
        let includes = |s: &str| s == "vip";
        prop_assert_eq!(
            f.matches(&p, now(), &includes),
            eval_oracle::matches(&f, &p, now(), &includes),
            "filter {} on {}", text, p
        );
    }
}

/// The generators produce filters that parse, not just noise the parser rejects.
#[test]
fn most_generated_filters_parse() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = filter();
    let parsed = (0..500)
        .filter(|_| {
            let text = strategy.new_tree(&mut runner).unwrap().current();
            parse_filter(&text).is_ok()
        })
        .count();
    assert!(parsed > 400, "only {parsed}/500 generated filters parse");
}
