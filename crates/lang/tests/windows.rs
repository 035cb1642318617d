//! Windowed fields (`WINDOW 30d`): at any "now" from the newest event on, a windowed field
//! equals a brute-force fold over the events whose bucket is in the window, whatever the
//! order the events came in and however partial profiles were merged; the state stays bounded
//! and survives the binary codec.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use tributary_lang::{parse_mapping, FieldState, Mapping, ProfileState};

const MAPPING: &str = r#"SELECT
    user_id                                AS user_id,
    count(*)   AS purchases_30d KIND int   WINDOW 30d IF eq(event, "purchase"),
    sum(amount) AS spent_36h    KIND number WINDOW 36h,
    min(amount) AS smallest_7d  KIND int    WINDOW 7d,
    max(amount) AS largest_2d   KIND int    WINDOW 2d,
    set(page)   AS pages_1h                 WINDOW 1h,
    count(*)    AS visits                   IF eq(event, "view")
FROM shop INTO user BY user_id"#;

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
/// A day boundary, so day and hour buckets line up with the offsets below.
const BASE: i64 = 1_700_006_400;

fn at(offset: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(BASE + offset, 0).unwrap()
}

fn mapping() -> Mapping {
    parse_mapping(MAPPING).unwrap()
}

#[derive(Debug, Clone)]
struct Ev {
    offset: i64,
    purchase: bool,
    amount: Option<i64>,
    page: &'static str,
}

impl Ev {
    fn json(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("user_id".into(), json!("u"));
        m.insert(
            "event".into(),
            json!(if self.purchase { "purchase" } else { "view" }),
        );
        if let Some(a) = self.amount {
            m.insert("amount".into(), json!(a));
        }
        m.insert("page".into(), json!(self.page));
        m
    }
}

fn event() -> impl Strategy<Value = Ev> {
    (
        // Spread over 70 days, often near bucket edges.
        prop_oneof![
            0i64..70 * DAY,
            (0i64..70 * 24).prop_map(|h| h * HOUR),
            (1i64..70 * 24).prop_map(|h| h * HOUR - 1),
        ],
        any::<bool>(),
        prop::option::of(-50i64..500),
        prop::sample::select(vec!["/a", "/b", "/c"]),
    )
        .prop_map(|(offset, purchase, amount, page)| Ev {
            offset,
            purchase,
            amount,
            page,
        })
}

fn fold(m: &Mapping, events: &[Ev]) -> ProfileState {
    let mut p = ProfileState::new();
    for e in events {
        let t = at(e.offset);
        if let Some(mapped) = m.apply(&e.json(), t) {
            p.apply_event(m, &mapped, t);
        }
    }
    p
}

/// The events whose bucket is among the `window / bucket` buckets ending with now's.
fn in_window<'a>(events: &'a [Ev], now: i64, window: i64, bucket: i64) -> Vec<&'a Ev> {
    let current = (BASE + now).div_euclid(bucket);
    let first = current - window / bucket + 1;
    events
        .iter()
        .filter(|e| (first..=current).contains(&(BASE + e.offset).div_euclid(bucket)))
        .collect()
}

fn brute_force(events: &[Ev], now: i64) -> Value {
    let mut out = Map::new();
    let purchases = in_window(events, now, 30 * DAY, DAY)
        .iter()
        .filter(|e| e.purchase)
        .count();
    // A windowed count or sum exists once some event counted (0 when none is in the window).
    if events.iter().any(|e| e.purchase) {
        out.insert("purchases_30d".into(), json!(purchases));
    }
    let spent: i64 = in_window(events, now, 36 * HOUR, HOUR)
        .iter()
        .filter_map(|e| e.amount)
        .sum();
    if events.iter().any(|e| e.amount.is_some()) {
        out.insert("spent_36h".into(), json!(spent));
    }
    if let Some(min) = in_window(events, now, 7 * DAY, DAY)
        .iter()
        .filter_map(|e| e.amount)
        .min()
    {
        out.insert("smallest_7d".into(), json!(min));
    }
    if let Some(max) = in_window(events, now, 2 * DAY, DAY)
        .iter()
        .filter_map(|e| e.amount)
        .max()
    {
        out.insert("largest_2d".into(), json!(max));
    }
    let mut pages: Vec<&str> = in_window(events, now, HOUR, HOUR)
        .iter()
        .map(|e| e.page)
        .collect();
    pages.sort();
    pages.dedup();
    if !pages.is_empty() {
        out.insert("pages_1h".into(), json!(pages));
    }
    out.insert("user_id".into(), json!("u"));
    let visits = events.iter().filter(|e| !e.purchase).count();
    if visits > 0 {
        out.insert("visits".into(), json!(visits));
    }
    Value::Object(out)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any order, any grouping into partial profiles merged in any order, any now from the
    /// newest event on: the brute-force values. And the stored form reads back the same.
    #[test]
    fn windowed_fields_equal_a_brute_force_fold(
        events in prop::collection::vec((event(), 0usize..3), 1..40),
        order in Just(vec![0usize, 1, 2]).prop_shuffle(),
        shuffle in any::<prop::sample::Index>(),
        later in prop::collection::vec(
            prop_oneof![0i64..HOUR, 0i64..3 * DAY, 0i64..40 * DAY, Just(30 * DAY), Just(36 * HOUR)],
            1..6,
        ),
    ) {
        let m = mapping();
        let all: Vec<Ev> = events.iter().map(|(e, _)| e.clone()).collect();
        let mut rotated = all.clone();
        rotated.rotate_left(shuffle.index(all.len()));
        let whole = fold(&m, &rotated);
        let mut merged = ProfileState::new();
        for part in &order {
            let mine: Vec<Ev> = events.iter().filter(|(_, p)| p == part).map(|(e, _)| e.clone()).collect();
            merged.merge(&fold(&m, &mine));
        }
        prop_assert_eq!(&merged, &whole);
        prop_assert_eq!(ProfileState::decode(&whole.to_bytes()), Ok(whole.clone()));
        let newest = all.iter().map(|e| e.offset).max().unwrap();
        for d in later {
            // Any instant in or after the newest event's hour.
            let now = newest - (BASE + newest).rem_euclid(HOUR) + d;
            prop_assert_eq!(whole.to_json_at(at(now)), brute_force(&all, now), "now = +{}s", now);
        }
    }
}

#[test]
fn buckets_stay_bounded() {
    let m = mapping();
    // One purchase an hour for 100 days.
    let events: Vec<Ev> = (0..100 * 24)
        .map(|h| Ev {
            offset: h * HOUR,
            purchase: true,
            amount: Some(1),
            page: "/a",
        })
        .collect();
    let p = fold(&m, &events);
    let buckets = |name: &str| match &p.fields[name] {
        FieldState::Window { buckets, .. } => buckets.len(),
        other => panic!("{name} is {other:?}"),
    };
    assert_eq!(buckets("purchases_30d"), 30);
    assert_eq!(buckets("spent_36h"), 36);
    assert_eq!(buckets("smallest_7d"), 7);
    assert_eq!(buckets("pages_1h"), 1);
    let end = 100 * DAY - HOUR;
    assert_eq!(p.to_json_at(at(end))["purchases_30d"], json!(30 * 24));
    // A day later, the first day of the window has left it; 31 days later, all of it.
    assert_eq!(p.to_json_at(at(end + DAY))["purchases_30d"], json!(29 * 24));
    assert_eq!(p.to_json_at(at(end + 31 * DAY))["purchases_30d"], json!(0));
    assert_eq!(p.to_json_at(at(end + 31 * DAY)).get("pages_1h"), None);
}

#[test]
fn scores_show_beside_fields_for_filters_and_fields_win_a_name_clash() {
    let m = parse_mapping(
        "SELECT user_id AS user_id, count(*) AS recency KIND int FROM s INTO user BY user_id",
    )
    .unwrap();
    let mut p = ProfileState::new();
    let ev = m
        .apply(json!({"user_id": "u"}).as_object().unwrap(), at(0))
        .unwrap();
    p.apply_event(&m, &ev, at(0));
    let view = p.filter_json(at(0));
    assert_eq!(
        view["recency"],
        json!(1),
        "the mapping's field hides the score"
    );
    assert_eq!(view["momentum"], json!(80));
    assert_eq!(p.scores(at(0)).unwrap().recency, 100);
    assert!(p.to_json_at(at(0)).get("momentum").is_none());
}
