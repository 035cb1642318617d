//! Compatibility corpus: mappings in LQL's style and audience filters in FilterQL's style, as a
//! Lytics user would paste them (written for these tests, after the constructs of qlbridge's
//! parser tests). Each mapping is parsed and applied to sample events, and the profile it
//! builds is compared whole; each filter is parsed and matched against sample profiles.

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{json, Map, Value};
use tributary_lang::{
    parse_filter, parse_mapping, Aggregate, Expr, Kind, Literal, Mapping, MergeOp, ProfileState,
};

fn t(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + secs, 0).unwrap()
}

/// Applies `events` (each with its time offset) in order and returns the profile's fields.
fn profile(m: &Mapping, events: &[(i64, Value)]) -> Value {
    let mut p = ProfileState::new();
    for (secs, e) in events {
        let e: &Map<String, Value> = e.as_object().expect("an object");
        if let Some(mapped) = m.apply(e, t(*secs)) {
            p.apply_event(m, &mapped, t(*secs));
        }
    }
    p.to_json()
}

/// Parses a mapping, or fails the test with the parse error.
fn mapping(text: &str) -> Mapping {
    parse_mapping(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn plain_columns_name_themselves_and_default_to_string() {
    let m = mapping(
        "SELECT
            user_id,
            name,
            age KIND int,
            `Favorite Color`,
            email(email) AS email
        FROM web
        INTO user BY user_id OR email",
    );
    let kinds: Vec<(&str, Kind)> = m.fields.iter().map(|f| (f.name.as_str(), f.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("user_id", Kind::String),
            ("name", Kind::String),
            ("age", Kind::Int),
            ("Favorite Color", Kind::String),
            ("email", Kind::String),
        ]
    );
    let p = profile(
        &m,
        &[(
            0,
            json!({"user_id": 7, "name": "Ann", "age": "42", "Favorite Color": "red",
                   "email": "Ann@X.com"}),
        )],
    );
    assert_eq!(
        p,
        json!({"user_id": "7", "name": "Ann", "age": 42, "Favorite Color": "red",
               "email": "ann@x.com"})
    );
}

#[test]
fn kinds_follow_the_expression_when_not_given() {
    let m = mapping(
        "SELECT
            id,
            count(*) AS visits,
            sum(amount) AS spent,
            set(tags) AS tags,
            set(toint(n)) AS ns,
            todate(ts) AS last_seen,
            tobool(flag) AS flag,
            map(event, toint(n)) AS per_event,
            valuect(page) AS pages
        FROM s INTO user BY id",
    );
    let kinds: Vec<Kind> = m.fields.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::String,
            Kind::Int,
            Kind::Number,
            Kind::StringList,
            Kind::IntList,
            Kind::Date,
            Kind::Bool,
            Kind::MapInt,
            Kind::MapInt,
        ]
    );
}

#[test]
fn if_gives_a_column_a_value_only_from_matching_events() {
    let m = mapping(
        r#"SELECT
            user_id,
            todate(ts) AS last_login KIND date IF eq(event, "login"),
            count(*)   AS logins     KIND int  IF event = "login" OR event = "sso",
            todate(ts) AS last_seen  KIND date
        FROM web
        INTO user BY user_id"#,
    );
    let p = profile(
        &m,
        &[
            (
                0,
                json!({"user_id": "u", "event": "login", "ts": "2024-01-01T10:00:00Z"}),
            ),
            (
                1,
                json!({"user_id": "u", "event": "view", "ts": "2024-01-02T10:00:00Z"}),
            ),
            (
                2,
                json!({"user_id": "u", "event": "sso", "ts": "2024-01-03T10:00:00Z"}),
            ),
        ],
    );
    assert_eq!(
        p,
        json!({"user_id": "u", "last_login": "2024-01-01T10:00:00Z", "logins": 2,
               "last_seen": "2024-01-03T10:00:00Z"})
    );
}

#[test]
fn modifiers_come_in_any_order() {
    let m = mapping(
        r#"SELECT
            user_id SHORTDESC "User ID" LONGDESC "The id our app assigns" KIND string,
            city KIND string SHORTDESC "City",
            plan LONGDESC "Billing plan" MERGEOP OLDEST SHORTDESC "Plan" KIND string,
            vip IF tier = "gold" KIND bool SHORTDESC "Gold tier"
        FROM web INTO user BY user_id"#,
    );
    let schema = m.schema();
    let descs: Vec<(&str, Option<&str>, Option<&str>, MergeOp)> = schema
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                f.short_desc.as_deref(),
                f.long_desc.as_deref(),
                f.merge_op,
            )
        })
        .collect();
    assert_eq!(
        descs,
        [
            (
                "user_id",
                Some("User ID"),
                Some("The id our app assigns"),
                MergeOp::Latest
            ),
            ("city", Some("City"), None, MergeOp::Latest),
            ("plan", Some("Plan"), Some("Billing plan"), MergeOp::Oldest),
            ("vip", Some("Gold tier"), None, MergeOp::Latest),
        ]
    );
    assert!(m.fields[3].condition.is_some());
    let p = profile(
        &m,
        &[
            (
                0,
                json!({"user_id": "u", "plan": "free", "tier": "gold", "vip": true}),
            ),
            (
                1,
                json!({"user_id": "u", "plan": "pro", "tier": "silver", "vip": false}),
            ),
        ],
    );
    assert_eq!(p, json!({"user_id": "u", "plan": "free", "vip": true}));
}

#[test]
fn valuect_counts_values_and_hashes_match_qlbridge() {
    let m = mapping(
        "SELECT
            user_id,
            valuect(path(url))   AS page_views KIND map[string]intsum,
            valuect(split(tags, \",\")) AS tag_counts,
            hash.md5(email)      AS email_md5,
            hash.sha1(email)     AS email_sha1,
            hash.sha256(email)   AS email_sha256
        FROM web INTO user BY user_id",
    );
    assert_eq!(m.fields[1].aggregate, Aggregate::ValueCount);
    assert_eq!(m.fields[1].merge_op, MergeOp::ValueCount);
    let events = [
        (
            0,
            json!({"user_id": "u", "url": "https://x.com/A?y=1", "tags": "a,b,a", "email": "abc"}),
        ),
        (
            1,
            json!({"user_id": "u", "url": "https://x.com/b", "tags": "b"}),
        ),
        (2, json!({"user_id": "u", "url": "x.com/a#top"})),
    ];
    let p = profile(&m, &events);
    assert_eq!(
        p,
        json!({
            "user_id": "u",
            "page_views": {"/a": 2, "/b": 1},
            "tag_counts": {"a": 2, "b": 2},
            "email_md5": "900150983cd24fb0d6963f7d28e17f72",
            "email_sha1": "a9993e364706816aba3e25717850c26c9cd0d89d",
            "email_sha256": "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        })
    );
    // Counts survive storage and merge with another partial profile by adding.
    let mut stored = ProfileState::new();
    for (secs, e) in &events {
        if let Some(mapped) = m.apply(e.as_object().unwrap(), t(*secs)) {
            stored.apply_event(&m, &mapped, t(*secs));
        }
    }
    let mut merged = ProfileState::decode(&stored.to_bytes()).unwrap();
    merged.merge(&stored);
    assert_eq!(merged.to_json()["page_views"], json!({"/a": 4, "/b": 2}));
}

#[test]
fn url_functions() {
    let m = mapping(
        r#"SELECT
            user_id,
            qs(url, "utm_source")          AS utm_source,
            host(url)                      AS last_host,
            path(url)                      AS last_path,
            urlminusqs(url, "utm_source")  AS clean_url,
            urldecode(q)                   AS search,
            set(host(url))                 AS hosts
        FROM web INTO user BY user_id"#,
    );
    let p = profile(
        &m,
        &[
            (
                0,
                json!({"user_id": "u",
                       "url": "https://Shop.Example.com:8443/Cart?utm_source=mail%20x&b=2&a=1#f",
                       "q": "red+shoes%21"}),
            ),
            (
                1,
                json!({"user_id": "u", "url": "www.example.com/Blog/Post"}),
            ),
        ],
    );
    assert_eq!(
        p,
        json!({
            "user_id": "u",
            "utm_source": "mail x",
            "last_host": "www.example.com",
            "last_path": "/blog/post",
            "clean_url": "http://www.example.com/Blog/Post",
            "search": "red shoes!",
            "hosts": ["shop.example.com:8443", "www.example.com"],
        })
    );
    let p = profile(
        &m,
        &[(
            0,
            json!({"user_id": "u", "url": "https://x.com/p?utm_source=g&b=2&a=1", "q": "50%"}),
        )],
    );
    // The other parameters are kept, in key order (as Go's url.Values encodes them); an
    // invalid escape gives no value.
    assert_eq!(p["clean_url"], json!("https://x.com/p?a=1&b=2"));
    assert_eq!(p.get("search"), None);
}

#[test]
fn string_and_logic_functions() {
    let m = mapping(
        r#"SELECT
            user_id,
            tolower(country)              AS country,
            toupper(country)              AS country_code,
            join(first, last, " ")        AS full_name,
            join(tags, ";")               AS tag_text,
            replace(phone, "-")           AS phone,
            len(tags)                     AS tag_count KIND int,
            hasprefix(plan, "pro")        AS is_pro KIND bool,
            hassuffix(email, ".edu")      AS is_student,
            any(coupon, referral)         AS promoted,
            all(email, verified)          AS verified_email,
            not(opted_out)                AS reachable,
            mapkeys(match("utm_"))        AS utm_keys,
            mapvalues(match("utm_"))      AS utm_values,
            exists(referral)              AS referred
        FROM web INTO user BY user_id"#,
    );
    let p = profile(
        &m,
        &[(
            0,
            json!({"user_id": "u", "country": "Us", "first": "Ann", "last": "Lee",
                   "tags": ["a", "b"], "phone": "555-01-02", "plan": "pro_annual",
                   "email": "ann@uni.edu", "coupon": "", "referral": 0, "verified": true,
                   "opted_out": "false", "utm_source": "g", "utm_medium": "cpc"}),
        )],
    );
    assert_eq!(
        p,
        json!({
            "user_id": "u",
            "country": "us",
            "country_code": "US",
            "full_name": "Ann Lee",
            "tag_text": "a;b",
            "phone": "5550102",
            "tag_count": 2,
            "is_pro": true,
            "is_student": true,
            "promoted": false,
            "verified_email": true,
            "reachable": true,
            "utm_keys": ["medium", "source"],
            "utm_values": ["cpc", "g"],
            "referred": true,
        })
    );
}

#[test]
fn date_functions_use_the_event_time() {
    let m = mapping(
        r#"SELECT
            user_id,
            yy(ts)             AS signup_yy MERGEOP OLDEST,
            mm(ts)             AS signup_month MERGEOP OLDEST,
            hourofday(ts)      AS last_hour,
            dayofweek(ts)      AS last_weekday,
            yy()               AS event_yy,
            daysago(signup)    AS days_since_signup
        FROM web
        WHERE ne(event, "heartbeat")
        INTO user BY user_id
        ALIAS web"#,
    );
    // t(0) is 2023-11-14T22:13:20Z, a Tuesday.
    let p = profile(
        &m,
        &[
            (
                0,
                json!({"user_id": "u", "event": "view", "ts": "2016-07-04T09:30:00Z",
                       "signup": "2023-11-04T23:00:00Z"}),
            ),
            (
                5,
                json!({"user_id": "u", "event": "heartbeat", "ts": "1999-01-01T00:00:00Z"}),
            ),
        ],
    );
    assert_eq!(
        p,
        json!({"user_id": "u", "signup_yy": 16, "signup_month": 7, "last_hour": 9,
               "last_weekday": 1, "event_yy": 23, "days_since_signup": 9})
    );
}

#[test]
fn where_with_line_separated_list_and_identities_as_before() {
    let m = mapping(
        r#"
        -- Lytics-style: functions in WHERE, one condition per line
        SELECT
            email(email)              AS email,
            user_id,
            toint(score)              AS score KIND int MERGEOP MAX,
            set(tags)                 AS tags KIND []string,
            count(*)                  AS visits
        FROM web
        WHERE AND (
            exists(email)
            gt(score, 0)
        )
        INTO user BY email OR user_id
        ALIAS web_scores
        "#,
    );
    assert_eq!(m.identities, ["email", "user_id"]);
    let p = profile(
        &m,
        &[
            (0, json!({"email": "a@x.com", "score": "5", "tags": ["t1"]})),
            (1, json!({"email": "a@x.com", "score": 0, "tags": ["t2"]})),
            (2, json!({"email": "A@x.com", "score": 9.5, "tags": "t3"})),
            (3, json!({"score": 20})),
        ],
    );
    assert_eq!(
        p,
        json!({"email": "a@x.com", "score": 9, "tags": ["t1", "t3"], "visits": 2})
    );
}

#[test]
fn mappings_accepted_before_mean_the_same() {
    // The repository's example, and the same item written with every old modifier order.
    let text = include_str!("golden/web_events.map");
    let m = mapping(text);
    assert!(m
        .fields
        .iter()
        .all(|f| f.condition.is_none() && f.long_desc.is_none()));
    let a =
        mapping("SELECT x AS y KIND string SHORTDESC \"d\" MERGEOP OLDEST FROM s INTO user BY y");
    let b =
        mapping("SELECT x AS y KIND string MERGEOP OLDEST SHORTDESC \"d\" FROM s INTO user BY y");
    assert_eq!(a, b);
    assert_eq!(a.fields[0].merge_op, MergeOp::Oldest);
    // `kind` and `if` stay usable as field names.
    let m =
        mapping("SELECT kind AS kind KIND string, `if` AS if KIND string FROM s INTO user BY kind");
    assert_eq!(m.fields[1].name, "if");
}

// ---- Filters ----

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 12, 0, 0).unwrap()
}

fn matches(text: &str, profile: Value) -> bool {
    let f = parse_filter(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    f.matches(&profile, now(), &|name| name == "vips")
}

#[test]
fn filterql_lists_separated_by_lines_limit_and_with() {
    let text = r#"
        FILTER AND (
            -- visited recently
            daysago(last_visit) < 30
            hasprefix(email, "admin") == false
            OR (
                country == "us"
                country == "ca"
            )
            NOT INCLUDE churned
        )
        FROM user
        LIMIT 100
        WITH name = "Recent North Americans", public = false, priority = 2, score = -1.5,
             owner = null
        ALIAS recent_na
    "#;
    let f = parse_filter(text).unwrap();
    assert_eq!(f.from.as_deref(), Some("user"));
    assert_eq!(f.alias.as_deref(), Some("recent_na"));
    assert_eq!(
        f.metadata(),
        [
            (
                "name".to_string(),
                Literal::String("Recent North Americans".into())
            ),
            ("public".to_string(), Literal::Bool(false)),
            ("priority".to_string(), Literal::Int(2)),
            ("score".to_string(), Literal::Number(-1.5)),
            ("owner".to_string(), Literal::Null),
        ]
    );
    assert_eq!(
        Value::Object(f.metadata_json()),
        json!({"name": "Recent North Americans", "public": false, "priority": 2,
               "score": -1.5, "owner": null})
    );
    assert_eq!(f.notes().len(), 1);
    assert_eq!(
        f.notes()[0].message,
        "LIMIT 100 is ignored: audience membership has no limit"
    );
    assert_eq!((f.notes()[0].span.line, f.notes()[0].span.column), (13, 9));
    assert!(f.is_time_relative());
    let ok = json!({"last_visit": "2024-05-20T00:00:00Z", "email": "bob@x.com", "country": "ca"});
    assert!(f.matches(&ok, now(), &|_| false));
    let admin =
        json!({"last_visit": "2024-05-20T00:00:00Z", "email": "admin@x.com", "country": "ca"});
    assert!(!f.matches(&admin, now(), &|_| false));
    let stale =
        json!({"last_visit": "2024-04-01T00:00:00Z", "email": "bob@x.com", "country": "us"});
    assert!(!f.matches(&stale, now(), &|_| false));
    assert!(!f.matches(&ok, now(), &|name| name == "churned"));
}

#[test]
fn filterql_statements_from_the_qlbridge_style() {
    // Commas at line starts, comments inside lists, nested lists without commas.
    let text = r#"
        FILTER
          AND (
              -- Lets make sure the date is good
              daysago(datefield) < 100
              -- as well as domain
              , domain(url) == "google.com"
              , INCLUDE vips
              , OR (
                  momentum > 20
                 , propensity > 50
              )
              , NOT AND ( score > 20 , score < 50 )
           )
        ALIAS my_filter_name
    "#;
    let f = parse_filter(text).unwrap();
    assert_eq!(f.alias.as_deref(), Some("my_filter_name"));
    // (`domain` is the whole host here; qlbridge's keeps the last two labels.)
    let p = json!({"datefield": "2024-05-01", "url": "https://google.com/x", "momentum": 30,
                   "score": 10});
    assert!(f.matches(&p, now(), &|n| n == "vips"));
    assert!(!f.matches(&p, now(), &|_| false));

    // The same with the line-leading commas blanked out: lines alone separate the arguments.
    let without_commas: String = text
        .lines()
        .map(|line| match line.trim_start().strip_prefix(',') {
            Some(_) => line.replacen(',', " ", 1),
            None => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(parse_filter(&without_commas).unwrap().expr, f.expr);

    assert!(matches(
        "FILTER score > 0 WITH name = \"My Little Pony\", public = false, kind = \"aspect\" ALIAS with_attributes",
        json!({"score": 1})
    ));
    assert!(matches(
        "FILTER AND ( visitct >= \"1\", NOT INCLUDE churned ) FROM user LIMIT 10",
        json!({"visitct": 2})
    ));
    assert!(matches(
        "FILTER hassuffix(email, \"@x.com\")",
        json!({"email": "a@x.com"})
    ));
    assert!(matches(
        "FILTER AND ( EXISTS email, all(email, opted_in) )",
        json!({"email": "a", "opted_in": true})
    ));
    assert!(!matches("FILTER any(a, b)", json!({"a": 0, "b": ""})));
    assert!(matches(
        "FILTER not(eq(country, \"us\"))",
        json!({"country": "ca"})
    ));
    assert!(matches(
        "FILTER ge(visits, 3) AND lt(visits, \"10\")",
        json!({"visits": 3})
    ));
    assert!(matches(
        "FILTER yy(signup) = 24 AND mm(signup) = 5",
        json!({"signup": "2024-05-31"})
    ));
    // daysago counts whole days before the evaluation time.
    assert!(matches(
        "FILTER daysago(seen) = 1",
        json!({"seen": "2024-05-31T00:00:00Z"})
    ));
    assert!(matches(
        "FILTER daysago(seen) = 0",
        json!({"seen": "2024-06-01T00:00:00Z"})
    ));
}

#[test]
fn filters_accepted_before_mean_the_same() {
    // Read with commas first: a line starting with `AND (` after a condition continues it
    // (infix AND), exactly as before FilterQL's line-separated lists were accepted.
    let f = parse_filter("FILTER OR (\n  a = 1\n  AND (b = 1)\n)").unwrap();
    let Expr::Or { exprs, .. } = &f.expr else {
        panic!("{:?}", f.expr)
    };
    assert!(matches!(&exprs[..], [Expr::And { exprs, .. }] if exprs.len() == 2));
    // The repository's example is unchanged and has no metadata or notes.
    let f = parse_filter(include_str!("golden/engaged_users.filter")).unwrap();
    assert!(f.metadata().is_empty() && f.notes().is_empty());
    assert!(matches("FILTER * LIMIT 5 WITH public = true", json!({})));
    // Audience names and ids may be quoted, as FilterQL writes them.
    let f = parse_filter(
        "FILTER OR ( INCLUDE 'f9f0dc74234af7e86ddeb660c50350e1', INCLUDE \"vips\" ) ALIAS 'Big spenders'",
    )
    .unwrap();
    assert_eq!(
        f.includes().into_iter().collect::<Vec<_>>(),
        ["f9f0dc74234af7e86ddeb660c50350e1", "vips"]
    );
    assert_eq!(f.alias.as_deref(), Some("Big spenders"));
    // `limit` and `with` stay usable as field names.
    assert!(matches(
        "FILTER limit > 3 AND with = 1",
        json!({"limit": 4, "with": 1})
    ));
}

#[test]
fn readme_examples_parse() {
    let readme = include_str!("../README.md");
    let blocks: Vec<&str> = readme
        .split("```text\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let mut parsed = 0;
    for block in blocks {
        if block.starts_with("SELECT") {
            mapping(block);
            parsed += 1;
        } else if block.starts_with("FILTER") {
            parse_filter(block).unwrap_or_else(|e| panic!("{e}\n{block}"));
            parsed += 1;
        }
    }
    assert_eq!(parsed, 3);
}
