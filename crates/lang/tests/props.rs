//! Property tests: merge order-independence, and parsers that never panic.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tributary_lang::{parse_filter, parse_mapping, FieldState, Mapping, ProfileState};

const MAPPING: &str = include_str!("golden/web_events.map");
const FILTER: &str = include_str!("golden/engaged_users.filter");

/// The example plus every other rule, so each merge rule is exercised, and the LQL forms
/// (columns named by their field, no KIND, IF, valuect()).
fn mapping() -> Mapping {
    let extra = "
    valuect(page)           AS page_counts  KIND map[string]intsum,
    valuect(split(tags, \",\")) AS tag_counts,
    count(*)                AS buys         IF event = \"buy\",
    todate(ts)              AS last_signup  KIND date IF eq(event, \"signup\") SHORTDESC \"s\",
    map(event, 1)           AS event_counts KIND map[string]intsum,
    hourofday(ts)           AS hour         MERGEOP MAX,
    name,
    min(amount)             AS smallest     KIND number,
    first(page)             AS first_page   KIND string,
    page                    AS oldest_page  KIND string MERGEOP OLDEST,
    amount                  AS amounts      KIND int MERGEOP SUM,
    map(event, amount)      AS per_event    KIND map[string]number MERGEOP SUM,
    map(event, page)        AS first_pages  KIND map[string]string MERGEOP OLDEST,
    map(event, amount)      AS max_amounts  KIND map[string]number MERGEOP MAX,
    split(tags, \",\")        AS tag_list     KIND []string MERGEOP SET,
    count(*)                AS visits2      KIND number MERGEOP COUNT,
    ";
    parse_mapping(&MAPPING.replacen("SELECT", &format!("SELECT{extra}"), 1)).unwrap()
}

fn time(t: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + t, 0).unwrap()
}

prop_compose! {
    fn event()(
        email in prop::sample::select(vec!["", "a@x.com", "B@X.com", "bad", "c@y.org"]),
        user in prop::sample::select(vec!["", "u1", "u2"]),
        country in prop::sample::select(vec!["", "US", "ca", "De"]),
        amount in prop_oneof![
            Just(Value::Null),
            (-1000i64..1000).prop_map(Value::from),
            (-100000i64..100000).prop_map(|c| Value::from(c as f64 / 100.0)),
            (0i64..1000).prop_map(|c| Value::from(format!("{}.{:02}", c / 100, c % 100))),
        ],
        ts in prop_oneof![
            Just(Value::Null),
            (0i64..10).prop_map(|d| Value::from(1_704_067_200 + d * 3600)),
            (1u32..28).prop_map(|d| Value::from(format!("2024-02-{d:02}"))),
            Just(Value::from("garbage")),
        ],
        page in prop::sample::select(vec!["", "/", "/a", "/b", "/c"]),
        name in prop::sample::select(vec!["", "Ann", "Bob"]),
        utm in prop::collection::btree_map(
            prop::sample::select(vec!["utm_source", "utm_medium", "utm_campaign"]),
            prop::sample::select(vec!["g", "fb", "x"]),
            0..3,
        ),
        ev in prop::sample::select(vec!["view", "buy", "signup"]),
        tags in prop::sample::select(vec!["", "a", "a,b", "b, c"]),
        t in 0i64..6,
    ) -> (Map<String, Value>, DateTime<Utc>) {
        let mut m = Map::new();
        for (k, v) in [("email", email), ("user_id", user), ("country", country), ("page", page),
                       ("name", name), ("event", ev), ("tags", tags)] {
            if !v.is_empty() {
                m.insert(k.to_string(), json!(v));
            }
        }
        m.insert("amount".into(), amount);
        m.insert("ts".into(), ts);
        for (k, v) in utm {
            m.insert(k.to_string(), json!(v));
        }
        (m, time(t))
    }
}

fn fold(m: &Mapping, events: &[(Map<String, Value>, DateTime<Utc>)]) -> ProfileState {
    let mut p = ProfileState::new();
    for (e, t) in events {
        if let Some(ev) = m.apply(e, *t) {
            p.apply_event(m, &ev, *t);
        }
    }
    p
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn apply_order_does_not_matter(
        (events, shuffled) in prop::collection::vec(event(), 0..12)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
    ) {
        let m = mapping();
        let a = fold(&m, &events);
        let b = fold(&m, &shuffled);
        prop_assert_eq!(&a, &b);
        prop_assert_eq!(a.to_json(), b.to_json());
        // And the state survives storage as JSON.
        let back: ProfileState = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        prop_assert_eq!(back, a);
    }

    #[test]
    fn merge_grouping_does_not_matter(
        events in prop::collection::vec((event(), 0usize..4), 0..14),
        order in Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        nested in any::<bool>(),
    ) {
        let m = mapping();
        let all: Vec<_> = events.iter().map(|(e, _)| e.clone()).collect();
        let whole = fold(&m, &all);
        let parts: Vec<ProfileState> = (0..4)
            .map(|g| {
                let evs: Vec<_> = events.iter().filter(|(_, i)| *i == g).map(|(e, _)| e.clone()).collect();
                fold(&m, &evs)
            })
            .collect();
        let merged = if nested {
            // (p_a ∪ p_b) ∪ (p_c ∪ p_d)
            let mut left = parts[order[0]].clone();
            left.merge(&parts[order[1]]);
            let mut right = parts[order[2]].clone();
            right.merge(&parts[order[3]]);
            left.merge(&right);
            left
        } else {
            let mut acc = ProfileState::new();
            for i in &order {
                acc.merge(&parts[*i]);
            }
            acc
        };
        prop_assert_eq!(merged, whole);
    }
}

const FRAGMENTS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "INTO",
    "BY",
    "ALIAS",
    "AS",
    "KIND",
    "SHORTDESC",
    "LONGDESC",
    "MERGEOP",
    "IF",
    "LIMIT",
    "WITH",
    "valuect(",
    "daysago(",
    "qs(",
    "map[string]intsum",
    "FILTER",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "CONTAINS",
    "BETWEEN",
    "IS",
    "NULL",
    "EXISTS",
    "INCLUDE",
    "INTERSECTS",
    "TRUE",
    "string",
    "int",
    "[]string",
    "map[string]time",
    "count(*)",
    "sum(",
    "set(",
    "match(",
    "map(",
    "todate(",
    "email(",
    "x",
    "user.a",
    "`odd`",
    "\"now-3d\"",
    "'s'",
    "42",
    "-1.5",
    "(",
    ")",
    ",",
    "=",
    "==",
    "!=",
    "<",
    ">=",
    "&&",
    "||",
    "!",
    "*",
    "--",
    "/*",
    "*/",
    "\n",
    "\"",
    "`",
    "LATEST",
    "SUM",
    ";",
    "é",
    "[",
    "]",
    "-",
    "1e9",
];

fn exercise(text: &str) {
    if let Ok(m) = parse_mapping(text) {
        let event = json!({"x": 1, "user": {"a": "b"}, "odd": "y", "ts": "2024-01-01"});
        if let Some(ev) = m.apply(event.as_object().unwrap(), time(0)) {
            let mut p = ProfileState::new();
            p.apply_event(&m, &ev, time(0));
            let _ = p.to_json();
        }
        let _ = m.schema();
    }
    if let Ok(f) = parse_filter(text) {
        let profile = json!({"x": 1, "user": {"a": "b"}, "odd": ["y"], "s": "now"});
        let _ = f.matches(&profile, time(0), &|_| true);
        let _ = (f.fields_read(), f.includes(), f.is_time_relative());
    }
}

fn mutate(base: &str, ops: &[(usize, u8, usize)]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for &(pos, op, frag) in ops {
        let i = if chars.is_empty() {
            0
        } else {
            pos % (chars.len() + 1)
        };
        match op % 3 {
            0 if i < chars.len() => {
                let end = (i + 1 + frag % 8).min(chars.len());
                chars.drain(i..end);
            }
            1 => {
                let f = FRAGMENTS[frag % FRAGMENTS.len()];
                for (k, c) in f.chars().enumerate() {
                    chars.insert(i + k, c);
                }
            }
            _ if i < chars.len() => {
                chars[i] = FRAGMENTS[frag % FRAGMENTS.len()]
                    .chars()
                    .next()
                    .unwrap_or(' ')
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(s in ".{0,200}") {
        exercise(&s);
    }

    #[test]
    fn token_soup_never_panics(parts in prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40)) {
        exercise(&parts.join(" "));
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<bool>(),
        ops in prop::collection::vec((any::<usize>(), any::<u8>(), any::<usize>()), 1..6),
    ) {
        let base = if which { MAPPING } else { FILTER };
        exercise(&mutate(base, &ops));
    }
}

fn counts() -> impl Strategy<Value = FieldState> {
    prop::collection::btree_map(
        prop::sample::select(vec!["a", "b", "c"]),
        prop_oneof![1i64..5, Just(i64::MAX)],
        1..3,
    )
    .prop_map(|m| FieldState::ValueCount {
        counts: m.into_iter().map(|(k, n)| (k.to_string(), n)).collect(),
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// `valuect()` states merge to the same counts in any order and any grouping, also after
    /// a trip through the stored form.
    #[test]
    fn valuect_merges_are_order_independent(
        (states, shuffled) in prop::collection::vec(counts(), 1..8)
            .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle())),
        split in any::<prop::sample::Index>(),
    ) {
        let fold = |states: &[FieldState]| {
            let mut acc = states[0].clone();
            for s in &states[1..] {
                acc.merge(s);
            }
            acc
        };
        let whole = fold(&states);
        prop_assert_eq!(&fold(&shuffled), &whole);
        let at = split.index(states.len());
        if at > 0 {
            let mut left = fold(&states[..at]);
            left.merge(&fold(&states[at..]));
            prop_assert_eq!(&left, &whole);
        }
        let p = ProfileState { fields: [("c".to_string(), whole.clone())].into(), activity: None };
        prop_assert_eq!(ProfileState::decode(&p.to_bytes()).unwrap(), p);
    }
}

/// A FilterQL condition tree, to write with commas or one argument per line.
#[derive(Debug, Clone)]
enum Cond {
    Leaf(&'static str),
    List {
        and: bool,
        not: bool,
        items: Vec<Cond>,
    },
}

impl Cond {
    fn commas(&self) -> String {
        match self {
            Cond::Leaf(s) => s.to_string(),
            Cond::List { and, not, items } => format!(
                "{}{} ( {} )",
                if *not { "NOT " } else { "" },
                if *and { "AND" } else { "OR" },
                items
                    .iter()
                    .map(Cond::commas)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    fn lines(&self, indent: usize) -> String {
        match self {
            Cond::Leaf(s) => s.to_string(),
            Cond::List { and, not, items } => {
                let pad = "  ".repeat(indent + 1);
                let body: Vec<String> = items
                    .iter()
                    .map(|c| format!("{pad}{}  -- note\n", c.lines(indent + 1)))
                    .collect();
                format!(
                    "{}{} (\n{}{})",
                    if *not { "NOT " } else { "" },
                    if *and { "AND" } else { "OR" },
                    body.concat(),
                    "  ".repeat(indent)
                )
            }
        }
    }
}

fn cond() -> impl Strategy<Value = Cond> {
    let leaf = prop::sample::select(vec![
        "a = 1",
        "b > 2",
        "EXISTS c",
        "INCLUDE vips",
        "daysago(d) < 3",
        "NOT e = 1",
        "x IN (1, 2)",
        "hasprefix(f, \"g\")",
        "h",
    ])
    .prop_map(Cond::Leaf);
    leaf.prop_recursive(3, 16, 4, |inner| {
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(inner, 1..4),
        )
            .prop_map(|(and, not, items)| Cond::List { and, not, items })
    })
}

/// The expression as JSON without positions, which differ between layouts.
fn shape(text: &str) -> Value {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(o) => {
                o.remove("span");
                o.values_mut().for_each(strip);
            }
            Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let f = parse_filter(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let mut v = serde_json::to_value(&f.expr).unwrap();
    strip(&mut v);
    v
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// One argument per line means what commas mean, whenever the comma-only grammar does
    /// not already read the text (then it keeps the meaning it always had).
    #[test]
    fn line_separated_lists_mean_what_commas_mean(
        c in (any::<bool>(), prop::collection::vec(cond(), 2..5))
            .prop_map(|(and, items)| Cond::List { and, not: false, items })
    ) {
        let commas = format!("FILTER {}", c.commas());
        let lines = format!("FILTER {}", c.lines(0));
        let comma_grammar_reads_it = tributary_lang::parser::Parser::new(&lines).is_ok_and(|mut p| {
            p.eat_word("FILTER");
            p.parse_or().is_ok() && p.at_end()
        });
        // (Then it keeps the meaning it always had; see `filters_accepted_before_mean_the_same`.)
        prop_assume!(!comma_grammar_reads_it);
        prop_assert_eq!(shape(&lines), shape(&commas), "{}", lines);
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for open in ["(", "NOT ", "!", "lower(", "AND("] {
        let text = format!("FILTER {}x", open.repeat(10_000));
        assert!(parse_filter(&text).is_err(), "{open}");
    }
}
