//! Filter language: the brief's example parses exactly; every operator and function evaluates.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Value};
use tributary_lang::{parse_filter, Expr};

const EXAMPLE: &str = include_str!("golden/engaged_users.filter");

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn profile() -> Value {
    json!({
        "email": "bob@example.com",
        "country": "us",
        "visit_count": 5,
        "visits_str": "12",
        "total_spent": 150.5,
        "last_seen": "2024-05-20T10:00:00Z",
        "signup": "2023-01-15",
        "pages_seen": ["/home", "/pricing", "/docs"],
        "tags": ["a", "b"],
        "campaign": {"source": "google"},
        "vip": true,
        "empty": "",
        "nothing": null,
        "Odd Name": "x",
        "user": {"address": {"city": "Paris"}},
    })
}

fn eval(text: &str) -> bool {
    let f = parse_filter(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    f.matches(&profile(), now(), &|slug| slug == "vip_list")
}

#[test]
fn example_parses_exactly() {
    let f = parse_filter(EXAMPLE).unwrap();
    assert_eq!(f.from.as_deref(), Some("user"));
    assert_eq!(f.alias.as_deref(), Some("engaged_users"));
    let Expr::And { exprs, .. } = &f.expr else {
        panic!("not an AND list: {:?}", f.expr)
    };
    assert_eq!(exprs.len(), 7);
    assert!(matches!(exprs[1], Expr::Exists { .. }));
    assert!(matches!(exprs[2], Expr::In { .. }));
    assert!(matches!(exprs[3], Expr::Not { .. }));
    assert!(matches!(exprs[5], Expr::Like { .. }));
    assert!(matches!(&exprs[6], Expr::Or { exprs, .. } if exprs.len() == 2));
    let want: BTreeSet<String> = [
        "visit_count",
        "email",
        "country",
        "pages_seen",
        "last_seen",
        "total_spent",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(f.fields_read(), want);
    assert_eq!(f.includes(), BTreeSet::from(["vip_list".to_string()]));
    assert!(f.is_time_relative());
    assert!(f.matches(&profile(), now(), &|_| false));
    // Fails once the profile unsubscribed.
    let mut p = profile();
    p["pages_seen"] = json!(["/home", "/unsubscribe"]);
    assert!(!f.matches(&p, now(), &|_| false));
    // Last seen too long ago relative to `now`.
    let later = Utc.with_ymd_and_hms(2024, 8, 1, 0, 0, 0).unwrap();
    assert!(!f.matches(&profile(), later, &|_| false));
    // The OR arm via INCLUDE.
    let mut p = profile();
    p["total_spent"] = json!(5);
    assert!(!f.matches(&p, now(), &|_| false));
    assert!(f.matches(&p, now(), &|s| s == "vip_list"));
}

#[test]
fn operators() {
    let cases: &[(&str, bool)] = &[
        ("visit_count > 3", true),
        ("visit_count >= 5", true),
        ("visit_count < 5", false),
        ("visit_count <= 5", true),
        ("visit_count = 5", true),
        ("visit_count == 5", true),
        ("visit_count != 5", false),
        ("visit_count <> 4", true),
        ("visits_str > 9", true), // numeric string compares numerically
        ("visit_count = \"5\"", true),
        ("total_spent BETWEEN 100 AND 200", true),
        ("total_spent BETWEEN 150.5 AND 150.5", true),
        ("total_spent NOT BETWEEN 100 AND 200", false),
        ("country IN (\"us\", \"ca\")", true),
        ("country IN ('de', 'fr',)", false),
        ("country NOT IN ('de')", true),
        ("visit_count IN (1, 5)", true),
        ("tags INTERSECTS (\"b\", \"z\")", true),
        ("tags INTERSECTS (\"y\", \"z\")", false),
        ("country INTERSECTS (\"us\")", true),
        ("pages_seen CONTAINS \"/docs\"", true),
        ("pages_seen CONTAINS \"/doc\"", false),
        ("email CONTAINS \"@example\"", true),
        ("campaign CONTAINS \"source\"", true),
        ("NOT pages_seen CONTAINS \"/unsubscribe\"", true),
        ("pages_seen NOT CONTAINS \"/docs\"", false),
        ("email LIKE \"*@example.com\"", true),
        ("email LIKE \"%@EXAMPLE.%\"", true),
        ("email LIKE \"*@other.com\"", false),
        ("email NOT LIKE \"*@other.com\"", true),
        ("pages_seen LIKE \"/pri*\"", true),
        ("EXISTS email", true),
        ("EXISTS missing", false),
        ("EXISTS empty", false),
        ("EXISTS nothing", false),
        ("exists(email)", true),
        ("missing IS NULL", true),
        ("nothing IS NULL", true),
        ("email IS NULL", false),
        ("email IS NOT NULL", true),
        ("vip", true),
        ("vip = true", true),
        ("vip != false", true),
        ("NOT vip", false),
        ("!vip", false),
        ("true", true),
        ("false", false),
        ("visit_count > 3 AND country = 'us'", true),
        ("visit_count > 3 && country = 'de'", false),
        ("visit_count > 9 OR country = 'us'", true),
        ("visit_count > 9 || country = 'de'", false),
        ("visit_count > 9 OR country = 'us' AND vip", true),
        ("(visit_count > 9 OR country = 'us') AND NOT vip", false),
        ("AND (vip, country = 'us',)", true),
        ("OR (visit_count > 9, country = 'de')", false),
        ("NOT AND (vip, visit_count > 9)", true),
        ("INCLUDE vip_list", true),
        ("INCLUDE other", false),
        ("NOT INCLUDE other", true),
        ("last_seen > \"now-30d\"", true),
        ("last_seen > \"now-7d\"", false),
        ("last_seen > \"now-14d\"", true),
        ("last_seen > \"now-12h\"", false),
        ("last_seen < \"now\"", true),
        ("signup < \"now-1y\"", true),
        ("signup BETWEEN \"2023-01-01\" AND \"2023-02-01\"", true),
        ("signup > \"2023-01-14\"", true),
        ("last_seen > signup", true),
        ("last_seen > \"now-1M\"", true),
        ("last_seen > \"now-2w\"", true),
        ("last_seen > \"now-300m\"", false),
        ("last_seen > \"now-9999999s\"", true),
        ("domain(email) == \"example.com\"", true),
        ("emaildomain(email) = 'example.com'", true),
        ("len(pages_seen) > 2", true),
        ("len(email) = 15", true),
        ("lower(\"US\") = country", true),
        ("upper(country) = \"US\"", true),
        ("contains(email, 'bob')", true),
        ("tonumber(visits_str) = 12", true),
        ("todate(signup) < now()", true),
        ("user.address.city = 'Paris'", true),
        ("`Odd Name` = 'x'", true),
        ("missing = 1", false),
        ("missing != 1", false),
        ("NOT missing = 1", true),
        ("missing < 1", false),
        ("missing BETWEEN 1 AND 2", false),
        ("missing IN (1)", false),
        ("missing CONTAINS 'x'", false),
        ("missing LIKE '*'", false),
        ("visit_count > -1", true),
        ("country > 5", false),
        ("country < 5", false),
        ("country != 5", true),
        ("last_seen > 'abc'", false),
        ("last_seen != 'abc'", true),
        ("last_seen = '2024-05-20T10:00:00Z'", true),
        ("last_seen = '2024-05-20T12:00:00+02:00'", true),
        ("country > 'ca'", true),
        ("country < 'ca'", false),
        ("total_spent > 1.5e2", true),
        ("*", true),
        ("FILTER *", true),
        ("filter visit_count > 3 from user alias x;", true),
    ];
    for (text, want) in cases {
        assert_eq!(eval(text), *want, "{text}");
    }
}

#[test]
fn metadata() {
    let f = parse_filter("FILTER AND (lower(email) LIKE 'a*', event_times.signup > 'now-1d', INCLUDE a, NOT INCLUDE `b-c`)").unwrap();
    assert_eq!(
        f.fields_read(),
        BTreeSet::from(["email".to_string(), "event_times".to_string()])
    );
    assert_eq!(
        f.includes(),
        BTreeSet::from(["a".to_string(), "b-c".to_string()])
    );
    assert!(f.is_time_relative());
    let f = parse_filter("visit_count > 3 -- comment\n// another\n").unwrap();
    assert!(!f.is_time_relative());
    assert!(f.from.is_none() && f.alias.is_none());
    assert!(parse_filter("todate(x) > now()")
        .unwrap()
        .is_time_relative());
}

#[test]
fn non_object_profile_matches_nothing_but_star() {
    let f = parse_filter("EXISTS x").unwrap();
    assert!(!f.matches(&json!(null), now(), &|_| true));
    let f = parse_filter("*").unwrap();
    assert!(f.matches(&json!(null), now(), &|_| true));
}
