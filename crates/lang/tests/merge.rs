//! Merge rules, one by one, through the public API.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;
use tributary_lang::{FieldState, FieldValue, MergeOp, ProfileState};

fn t(s: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap()
}

fn s(v: &str) -> FieldValue {
    FieldValue::String(v.into())
}

fn fold(op: MergeOp, values: &[(FieldValue, i64)]) -> FieldState {
    let mut it = values.iter();
    let (v0, t0) = it.next().unwrap();
    let mut st = FieldState::new(op, v0.clone(), t(*t0)).unwrap();
    for (v, tt) in it {
        st.apply(v.clone(), t(*tt));
    }
    st
}

#[test]
fn latest_and_oldest_by_time_then_value() {
    let vals = [
        (s("b"), 5),
        (s("a"), 9),
        (s("c"), 1),
        (s("z"), 9),
        (s("y"), 1),
    ];
    assert_eq!(fold(MergeOp::Latest, &vals).to_json(), json!("z"));
    assert_eq!(fold(MergeOp::Oldest, &vals).to_json(), json!("c"));
    let mut rev = vals.to_vec();
    rev.reverse();
    assert_eq!(fold(MergeOp::Latest, &rev), fold(MergeOp::Latest, &vals));
    assert_eq!(fold(MergeOp::Oldest, &rev), fold(MergeOp::Oldest, &vals));
}

#[test]
fn count_sum_min_max_set() {
    let nums = [
        (FieldValue::Number(0.1), 1),
        (FieldValue::Number(0.2), 2),
        (FieldValue::Int(3), 3),
        (FieldValue::String("1.5".into()), 4),
    ];
    assert_eq!(fold(MergeOp::Count, &nums).to_json(), json!(4));
    // Exact decimal sum: 0.1 + 0.2 + 3 + 1.5 = 4.8 (not 4.800000000000001).
    assert_eq!(fold(MergeOp::Sum, &nums).to_json(), json!(4.8));
    let ints = [
        (FieldValue::Int(4), 1),
        (FieldValue::Int(-2), 2),
        (FieldValue::Int(7), 3),
    ];
    assert_eq!(fold(MergeOp::Sum, &ints).to_json(), json!(9));
    assert_eq!(fold(MergeOp::Min, &ints).to_json(), json!(-2));
    assert_eq!(fold(MergeOp::Max, &ints).to_json(), json!(7));
    let lists = [
        (FieldValue::List(vec![s("b"), s("a")]), 1),
        (s("c"), 2),
        (FieldValue::List(vec![s("a")]), 3),
    ];
    assert_eq!(fold(MergeOp::Set, &lists).to_json(), json!(["a", "b", "c"]));
    assert!(FieldState::new(MergeOp::Sum, s("abc"), t(0)).is_none());
}

#[test]
fn maps_merge_key_by_key() {
    let m = |pairs: &[(&str, FieldValue)]| {
        FieldValue::Map(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let vals = [
        (
            m(&[("view", FieldValue::Int(1)), ("buy", FieldValue::Int(5))]),
            1,
        ),
        (m(&[("view", FieldValue::Int(2))]), 2),
        (m(&[("buy", FieldValue::Int(3))]), 0),
    ];
    assert_eq!(
        fold(MergeOp::Latest, &vals).to_json(),
        json!({"view": 2, "buy": 5})
    );
    assert_eq!(
        fold(MergeOp::Oldest, &vals).to_json(),
        json!({"view": 1, "buy": 3})
    );
    assert_eq!(
        fold(MergeOp::Sum, &vals).to_json(),
        json!({"view": 3, "buy": 8})
    );
    assert_eq!(
        fold(MergeOp::Max, &vals).to_json(),
        json!({"view": 2, "buy": 5})
    );
    assert!(FieldState::new(MergeOp::Set, vals[0].0.clone(), t(0)).is_none());
}

#[test]
fn different_rules_for_one_field_resolve_deterministically() {
    let a = FieldState::new(MergeOp::Latest, s("x"), t(0)).unwrap();
    let b = FieldState::new(MergeOp::Count, s("x"), t(0)).unwrap();
    let mut ab = a.clone();
    ab.merge(&b);
    let mut ba = b.clone();
    ba.merge(&a);
    assert_eq!(ab, ba);
}

#[test]
fn profile_state_json_shapes() {
    let mut p = ProfileState::new();
    let mut q = ProfileState::new();
    p.fields.insert(
        "seen".into(),
        FieldState::new(MergeOp::Max, FieldValue::Date(t(0)), t(0)).unwrap(),
    );
    q.fields.insert(
        "seen".into(),
        FieldState::new(MergeOp::Max, FieldValue::Date(t(60)), t(0)).unwrap(),
    );
    q.fields.insert(
        "n".into(),
        FieldState::new(MergeOp::Count, FieldValue::Int(1), t(0)).unwrap(),
    );
    p.merge(&q);
    assert_eq!(p.to_json(), json!({"seen": "2023-11-14T22:14:20Z", "n": 1}));
    let stored = serde_json::to_value(&p).unwrap();
    assert_eq!(stored["fields"]["n"], json!({"rule": "count", "count": 1}));
    assert_eq!(
        stored["fields"]["seen"],
        json!({"rule": "max", "value": {"date": "2023-11-14T22:14:20Z"}})
    );
    let back: ProfileState = serde_json::from_value(stored).unwrap();
    assert_eq!(back, p);
}

#[test]
fn value_counts_add_key_by_key() {
    let m = |pairs: &[(&str, i64)]| {
        FieldValue::Map(
            pairs
                .iter()
                .map(|(k, n)| (k.to_string(), FieldValue::Int(*n)))
                .collect(),
        )
    };
    let st = fold(
        MergeOp::ValueCount,
        &[
            (m(&[("/a", 1)]), 1),
            (m(&[("/a", 2), ("/b", 1)]), 2),
            (s("/b"), 3),
        ],
    );
    assert_eq!(st.to_json(), json!({"/a": 3, "/b": 2}));
    assert_eq!(st.op(), MergeOp::ValueCount);
    // A list counts each element; counts that are not positive, and empty keys, are dropped.
    let st = FieldState::new(
        MergeOp::ValueCount,
        FieldValue::List(vec![s("x"), s("x"), s(""), FieldValue::Int(3)]),
        t(0),
    )
    .unwrap();
    assert_eq!(st.to_json(), json!({"x": 2, "3": 1}));
    assert_eq!(
        FieldState::new(MergeOp::ValueCount, m(&[("a", 0), ("b", -2)]), t(0)),
        None
    );
    // Saturates rather than wrapping.
    let mut big = FieldState::new(MergeOp::ValueCount, m(&[("a", i64::MAX)]), t(0)).unwrap();
    big.apply(m(&[("a", 5)]), t(1));
    assert_eq!(big.to_json(), json!({"a": i64::MAX}));
    // It stores as JSON too (the older storage form).
    let p = ProfileState {
        fields: BTreeMap::from([("c".to_string(), big)]),
        activity: None,
    };
    let back: ProfileState = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
}
