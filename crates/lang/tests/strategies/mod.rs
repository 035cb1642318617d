//! Strategies for field values and states shared by the property tests.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use tributary_lang::value::format_date;
use tributary_lang::{FieldState, FieldValue, MergeOp};

/// Few distinct values, so random pairs often collide.
pub fn dates() -> Vec<DateTime<Utc>> {
    vec![
        Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap(),
        Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap(),
        Utc.timestamp_opt(0, 0).unwrap(),
    ]
}

pub fn value() -> impl Strategy<Value = FieldValue> {
    let texts: Vec<String> = ["", "a", "1", "1.0", "true"]
        .into_iter()
        .map(String::from)
        .chain(dates().iter().map(format_date))
        .collect();
    let leaf = prop_oneof![
        prop::sample::select(texts).prop_map(FieldValue::String),
        prop::sample::select(vec![0i64, 1, -1, 2, i64::MAX]).prop_map(FieldValue::Int),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1.0,
            1.5,
            2.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
        ])
        .prop_map(FieldValue::Number),
        any::<bool>().prop_map(FieldValue::Bool),
        prop::sample::select(dates()).prop_map(FieldValue::Date),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            2 => inner.clone(),
            1 => prop::collection::vec(inner.clone(), 0..3).prop_map(FieldValue::List),
            1 => prop::collection::btree_map(prop::sample::select(vec!["a", "b"]), inner, 0..3)
                .prop_map(|m| FieldValue::Map(m.into_iter().map(|(k, v)| (k.into(), v)).collect())),
        ]
    })
}

/// `valuect()` counts: few keys (so merges overlap), counts of every size.
pub fn counts() -> impl Strategy<Value = BTreeMap<String, i64>> {
    prop::collection::btree_map(
        prop::sample::select(vec!["", "a", "/b", "é"]).prop_map(String::from),
        prop_oneof![1i64..100, Just(i64::MAX), Just(i64::MIN)],
        0..3,
    )
}

pub fn state() -> impl Strategy<Value = FieldState> {
    let time = prop::sample::select(dates());
    let leaf = prop_oneof![
        (value(), time.clone()).prop_map(|(value, time)| FieldState::Latest { value, time }),
        (value(), time).prop_map(|(value, time)| FieldState::Oldest { value, time }),
        prop::sample::select(vec![0i64, 1, 2, i64::MAX])
            .prop_map(|count| FieldState::Count { count }),
        prop::sample::select(vec![
            0i128,
            1,
            1_000_000_000,
            2_000_000_000,
            1_500_000_000,
            -1_000_000_000,
            i128::from(i64::MAX) * 1_000_000_000,
        ])
        .prop_map(|nanos| FieldState::Sum { nanos }),
        value().prop_map(|value| FieldState::Min { value }),
        value().prop_map(|value| FieldState::Max { value }),
        prop::collection::btree_set(value(), 0..3).prop_map(|values| FieldState::Set { values }),
        counts().prop_map(|counts| FieldState::ValueCount { counts }),
    ];
    leaf.prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            2 => inner.clone(),
            1 => (
                prop::sample::select(vec![MergeOp::Latest, MergeOp::Sum, MergeOp::ValueCount]),
                prop::collection::btree_map(prop::sample::select(vec!["a", "b"]), inner, 0..3),
            )
                .prop_map(|(op, m)| FieldState::Map {
                    op,
                    entries: m.into_iter().map(|(k, s)| (k.into(), s)).collect(),
                }),
        ]
    })
}
