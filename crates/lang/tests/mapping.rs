//! Mapping language: the brief's example parses exactly; evaluation of every function.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};
use tributary_lang::{
    parse_mapping, Aggregate, FieldValue, Kind, MappedEvent, Mapping, MergeOp, ProfileState,
};

const EXAMPLE: &str = include_str!("golden/web_events.map");

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

/// Maps one event through `SELECT <expr> AS v KIND <kind> FROM s INTO user BY v` and
/// returns v's JSON (or Null when it produced no value).
fn eval(expr: &str, kind: &str, event: Value) -> Value {
    let m = parse_mapping(&format!(
        "SELECT {expr} AS v KIND {kind}, id AS id KIND string FROM s INTO user BY id"
    ))
    .unwrap_or_else(|e| panic!("{expr}: {e}"));
    let ev = m.apply(&obj(event), t(0)).unwrap();
    ev.values
        .get("v")
        .map(FieldValue::to_json)
        .unwrap_or(Value::Null)
}

#[test]
fn example_parses_exactly() {
    let m = parse_mapping(EXAMPLE).unwrap();
    assert_eq!(m.from, "web_events");
    assert_eq!(m.into, "user");
    assert_eq!(m.identities, vec!["email", "user_id"]);
    assert_eq!(m.alias.as_deref(), Some("web_events"));
    assert!(m.filter.is_none());
    let summary: Vec<(&str, Aggregate, Kind, MergeOp)> = m
        .fields
        .iter()
        .map(|f| (f.name.as_str(), f.aggregate, f.kind, f.merge_op))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("email", Aggregate::Latest, Kind::String, MergeOp::Latest),
            ("user_id", Aggregate::Latest, Kind::String, MergeOp::Latest),
            ("country", Aggregate::Latest, Kind::String, MergeOp::Latest),
            ("visit_count", Aggregate::Count, Kind::Int, MergeOp::Count),
            ("total_spent", Aggregate::Sum, Kind::Number, MergeOp::Sum),
            ("last_seen", Aggregate::Max, Kind::Date, MergeOp::Max),
            ("pages_seen", Aggregate::Set, Kind::StringList, MergeOp::Set),
            (
                "first_name",
                Aggregate::Latest,
                Kind::String,
                MergeOp::Latest
            ),
            (
                "campaign",
                Aggregate::Latest,
                Kind::MapString,
                MergeOp::Latest
            ),
            (
                "event_times",
                Aggregate::Latest,
                Kind::MapTime,
                MergeOp::Latest
            ),
        ]
    );
    assert_eq!(m.fields[7].short_desc.as_deref(), Some("First name"));
    assert_eq!(m.fields[3].span.line, 5);
    assert_eq!(m.fields[3].span.column, 5);
    let schema = m.schema();
    assert_eq!(schema.len(), 10);
    assert_eq!(schema[7].name, "first_name");
    assert_eq!(schema[7].stream, "web_events");
    assert_eq!(schema[7].short_desc.as_deref(), Some("First name"));
    assert_eq!(schema[6].kind.to_string(), "[]string");
    // The AST serializes (the service may show it).
    let j = serde_json::to_value(&m).unwrap();
    assert_eq!(j["fields"][6]["kind"], "[]string");
}

#[test]
fn example_with_where_clause_and_comments() {
    let text = EXAMPLE.replace(
        "FROM web_events\n",
        "FROM web_events -- the stream\nWHERE event != \"heartbeat\" AND NOT EXISTS bot /* skip bots */\n",
    );
    let m = parse_mapping(&text).unwrap();
    assert!(m.filter.is_some());
    assert!(m
        .apply(&obj(json!({"event": "heartbeat", "email": "a@b.co"})), t(0))
        .is_none());
    assert!(m
        .apply(
            &obj(json!({"event": "view", "bot": true, "email": "a@b.co"})),
            t(0)
        )
        .is_none());
    assert!(m
        .apply(&obj(json!({"event": "view", "email": "a@b.co"})), t(0))
        .is_some());
}

#[test]
fn example_maps_and_merges_events() {
    let m = parse_mapping(EXAMPLE).unwrap();
    let e1 = m
        .apply(
            &obj(json!({
                "email": " Bob@Example.COM ", "user_id": "u1", "country": "US", "amount": 10.5,
                "ts": "2024-01-02T03:04:05Z", "page": "/home", "name": "Bob",
                "utm_source": "google", "utm_medium": "cpc", "event": "view"
            })),
            t(0),
        )
        .unwrap();
    assert_eq!(
        e1.identities,
        vec![
            ("email".to_string(), "bob@example.com".to_string()),
            ("user_id".to_string(), "u1".to_string())
        ]
    );
    let e2 = m
        .apply(
            &obj(json!({
                "email": "not-an-email", "user_id": "u1", "amount": "4.5",
                "ts": 1704251045, "page": "/pricing", "event": "signup"
            })),
            t(10),
        )
        .unwrap();
    assert_eq!(
        e2.identities,
        vec![("user_id".to_string(), "u1".to_string())]
    );
    assert!(!e2.values.contains_key("email"));
    assert!(!e2.values.contains_key("country"));

    let mut p = ProfileState::new();
    p.apply_event(&m, &e1, t(0));
    p.apply_event(&m, &e2, t(10));
    assert_eq!(
        p.to_json(),
        json!({
            "email": "bob@example.com",
            "user_id": "u1",
            "country": "us",
            "visit_count": 2,
            "total_spent": 15,
            "last_seen": "2024-01-03T03:04:05Z",
            "pages_seen": ["/home", "/pricing"],
            "first_name": "Bob",
            "campaign": {"medium": "cpc", "source": "google"},
            "event_times": {"signup": "2024-01-03T03:04:05Z", "view": "2024-01-02T03:04:05Z"},
        })
    );
    // Stored as JSON and back.
    let stored = serde_json::to_string(&p).unwrap();
    let back: ProfileState = serde_json::from_str(&stored).unwrap();
    assert_eq!(back, p);
    // MappedEvent is serializable too (the service may log or queue it).
    let ev: MappedEvent = serde_json::from_str(&serde_json::to_string(&e1).unwrap()).unwrap();
    assert_eq!(ev, e1);
}

#[test]
fn where_rejects_and_apply_returns_none() {
    let m: Mapping =
        parse_mapping("SELECT id AS id KIND string FROM s WHERE kind = 'buy' INTO user BY id")
            .unwrap();
    assert!(m
        .apply(&obj(json!({"id": "1", "kind": "view"})), t(0))
        .is_none());
    assert!(m.apply(&obj(json!({"id": "1"})), t(0)).is_none());
    let ev = m
        .apply(&obj(json!({"id": "1", "kind": "buy"})), t(0))
        .unwrap();
    assert_eq!(ev.values["id"], FieldValue::String("1".into()));
}

#[test]
fn functions_evaluate() {
    let e = json!({
        "email": "Ann@Example.com", "bad": "nope", "s": "  Hello World  ", "n": "42", "f": 2.5,
        "url": "https://www.shop.com/a/b?x=1", "tags": "a, b,c", "empty": "",
        "ts": "2006-01-02 15:04:05", "us": "01/02/2006", "ms": 1136214245000_i64,
        "user": {"address": {"city": "Paris"}}, "odd name": "x", "list": [1, 2, 3],
        "utm_source": "g", "utm_campaign": "spring", "other": 1,
    });
    let cases: &[(&str, &str, Value)] = &[
        ("email(email)", "string", json!("ann@example.com")),
        ("email(bad)", "string", Value::Null),
        ("lower(email)", "string", json!("ann@example.com")),
        ("upper(s)", "string", json!("  HELLO WORLD  ")),
        ("trim(s)", "string", json!("Hello World")),
        ("todate(ts)", "date", json!("2006-01-02T15:04:05Z")),
        ("todate(us)", "date", json!("2006-01-02T00:00:00Z")),
        ("todate(ms)", "time", json!("2006-01-02T15:04:05Z")),
        (
            "todate(\"02.01.2006\", \"%d.%m.%Y\")",
            "date",
            json!("2006-01-02T00:00:00Z"),
        ),
        ("ts", "date", json!("2006-01-02T15:04:05Z")),
        ("tonumber(n)", "number", json!(42.0)),
        ("toint(f)", "int", json!(2)),
        ("n", "int", json!(42)),
        ("tostring(f)", "string", json!("2.5")),
        (
            "hash.sha256(\"abc\")",
            "string",
            json!("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ),
        (
            "oneof(missing, empty, s)",
            "string",
            json!("  Hello World  "),
        ),
        ("contains(s, \"World\")", "bool", json!(true)),
        ("contains(s, \"world\")", "bool", json!(false)),
        ("split(tags, \",\")", "[]string", json!(["a", "b", "c"])),
        ("list", "[]int", json!([1, 2, 3])),
        ("urlmain(url)", "string", json!("www.shop.com/a/b")),
        ("domain(url)", "string", json!("www.shop.com")),
        ("emaildomain(email)", "string", json!("example.com")),
        ("concat(s, \"!\", n)", "string", json!("  Hello World  !42")),
        (
            "match(\"utm_\")",
            "map[string]string",
            json!({"source": "g", "campaign": "spring"}),
        ),
        ("map(utm_source, n)", "map[string]int", json!({"g": 42})),
        (
            "map(utm_source, todate(ts))",
            "map[string]time",
            json!({"g": "2006-01-02T15:04:05Z"}),
        ),
        ("len(list)", "int", json!(3)),
        ("user.address.city", "string", json!("Paris")),
        ("`odd name`", "string", json!("x")),
        ("missing", "string", Value::Null),
        ("empty", "string", Value::Null),
        ("f > 2", "bool", json!(true)),
        ("\"lit\"", "string", json!("lit")),
        ("-3", "int", json!(-3)),
    ];
    for (expr, kind, want) in cases {
        assert_eq!(&eval(expr, kind, e.clone()), want, "{expr} KIND {kind}");
    }
}

#[test]
fn aggregates_and_merge_ops_accumulate() {
    let m = parse_mapping(
        "SELECT id AS id KIND string,
                count(*) AS n KIND int,
                count(x) AS nx KIND int,
                sum(x) AS total KIND number,
                min(x) AS lo KIND number,
                max(x) AS hi KIND number,
                set(x) AS xs KIND []int,
                first(x) AS first_x KIND int,
                latest(x) AS last_x KIND int,
                x AS oldest_x KIND int MERGEOP OLDEST,
                x AS sum_x KIND int MERGEOP SUM,
                map(k, x) AS per_key KIND map[string]int MERGEOP SUM
         FROM s INTO user BY id",
    )
    .unwrap();
    let mut p = ProfileState::new();
    for (i, (x, k)) in [(5, "a"), (1, "b"), (9, "a")].iter().enumerate() {
        let ev = m
            .apply(&obj(json!({"id": "1", "x": x, "k": k})), t(i as i64))
            .unwrap();
        p.apply_event(&m, &ev, t(i as i64));
    }
    let ev = m.apply(&obj(json!({"id": "1"})), t(9)).unwrap();
    p.apply_event(&m, &ev, t(9));
    assert_eq!(
        p.to_json(),
        json!({
            "id": "1", "n": 4, "nx": 3, "total": 15, "lo": 1.0, "hi": 9.0, "xs": [1, 5, 9],
            "first_x": 5, "last_x": 9, "oldest_x": 5, "sum_x": 15, "per_key": {"a": 14, "b": 1},
        })
    );
}

#[test]
fn keywords_are_case_insensitive_and_trailing_comma_allowed() {
    let m = parse_mapping(
        "select Lower(x) as x kind STRING, id as id kind string, from s into user by id alias a;",
    )
    .unwrap();
    assert_eq!(m.fields.len(), 2);
    assert_eq!(m.alias.as_deref(), Some("a"));
}

#[test]
fn now_and_relative_dates_use_the_event_time() {
    let m = parse_mapping(
        "SELECT id AS id KIND string, now() AS at KIND date
         FROM s WHERE todate(ts) > 'now-1h' INTO user BY id",
    )
    .unwrap();
    let fresh = obj(json!({"id": "1", "ts": t(-60).to_rfc3339()}));
    let stale = obj(json!({"id": "1", "ts": t(-7200).to_rfc3339()}));
    let ev = m.apply(&fresh, t(0)).unwrap();
    assert_eq!(ev.values["at"], FieldValue::Date(t(0)));
    assert!(m.apply(&stale, t(0)).is_none());
}

#[test]
fn field_paths() {
    let e = json!({
        "items": [{"sku": "A1"}, {"sku": "B2"}],
        "a.b": "dotted key",
        "a": {"c": "nested"},
    });
    assert_eq!(eval("items.1.sku", "string", e.clone()), json!("B2"));
    assert_eq!(eval("items.9.sku", "string", e.clone()), Value::Null);
    assert_eq!(eval("a.b", "string", e.clone()), json!("dotted key"));
    assert_eq!(eval("`a.b`", "string", e.clone()), json!("dotted key"));
    assert_eq!(eval("a.c", "string", e.clone()), json!("nested"));
    assert_eq!(
        eval("join(split(\"x;y\", \";\"), \"+\")", "string", e.clone()),
        json!("x+y")
    );
    assert_eq!(
        eval("replace(a.c, \"e\", \"3\")", "string", e.clone()),
        json!("n3st3d")
    );
    assert_eq!(eval("tobool(\"true\")", "bool", e.clone()), json!(true));
    assert_eq!(eval("first(a.c)", "string", e.clone()), json!("nested"));
    assert_eq!(eval("latest(a.c)", "string", e), json!("nested"));
}
