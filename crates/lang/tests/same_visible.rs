//! `FieldState::same_visible` is exactly `a.to_json() == b.to_json()`, and
//! `FieldState::merge_visible` reports every visible change (`merge` is `merge_visible`; its
//! merge laws are tested in props.rs).

mod strategies;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use strategies::{dates, state, value};
use tributary_lang::{FieldState, FieldValue, MergeOp};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn same_visible_is_json_equality(a in state(), b in state()) {
        prop_assert_eq!(a.same_visible(&b), a.to_json() == b.to_json(), "{:?} vs {:?}", a, b);
        prop_assert!(a.same_visible(&a.clone()) == (a.to_json() == a.to_json()));
    }
}

fn latest(value: FieldValue) -> FieldState {
    FieldState::Latest {
        value,
        time: Utc.timestamp_opt(0, 0).unwrap(),
    }
}

fn max(value: FieldValue) -> FieldState {
    FieldState::Max { value }
}

#[test]
fn hand_written_cases() {
    let d = Utc.timestamp_opt(1_700_000_000, 500_000_000).unwrap();
    let text = FieldValue::String("2023-11-14T22:13:20.500Z".into());
    // A date shows as its RFC 3339 text, whatever the rule.
    assert!(latest(FieldValue::Date(d)).same_visible(&max(text.clone())));
    assert!(!latest(FieldValue::Date(d)).same_visible(&max(FieldValue::String("x".into()))));
    // JSON integers and floats never compare equal; -0.0 and 0.0 do; non-finite shows as null.
    assert!(!latest(FieldValue::Int(1)).same_visible(&latest(FieldValue::Number(1.0))));
    assert!(latest(FieldValue::Number(-0.0)).same_visible(&latest(FieldValue::Number(0.0))));
    assert!(
        latest(FieldValue::Number(f64::NAN)).same_visible(&max(FieldValue::Number(f64::INFINITY)))
    );
    // Counts and whole sums show as integers, other sums as floats.
    let sum = |nanos| FieldState::Sum { nanos };
    assert!(FieldState::Count { count: 2 }.same_visible(&sum(2_000_000_000)));
    assert!(!sum(1_500_000_000).same_visible(&latest(FieldValue::Number(1.0))));
    assert!(sum(1_500_000_000).same_visible(&latest(FieldValue::Number(1.5))));
    assert!(FieldState::Count { count: 1 }.same_visible(&latest(FieldValue::Int(1))));
    // Sets, lists and maps element-wise.
    let set = FieldState::Set {
        values: BTreeSet::from([FieldValue::Date(d), FieldValue::Int(3)]),
    };
    // A set shows in value order (ints before dates).
    let int_then_date = FieldValue::List(vec![FieldValue::Int(3), text.clone()]);
    assert!(set.same_visible(&latest(int_then_date)));
    assert!(!set.same_visible(&latest(FieldValue::List(vec![text, FieldValue::Int(3)]))));
    let map = FieldState::Map {
        op: MergeOp::Sum,
        entries: BTreeMap::from([("a".to_string(), sum(3_000_000_000))]),
    };
    assert!(map.same_visible(&latest(FieldValue::Map(BTreeMap::from([(
        "a".to_string(),
        FieldValue::Int(3)
    )])))));
    let other_op = FieldState::Map {
        op: MergeOp::Latest,
        entries: BTreeMap::from([("a".to_string(), FieldState::Count { count: 3 })]),
    };
    assert!(map.same_visible(&other_op));
}

/// Merges `b` into a copy of `a` and checks the report against `to_json` before and after.
fn check_merge_visible(a: &FieldState, b: &FieldState) -> Result<(), TestCaseError> {
    let mut merged = a.clone();
    let changed = merged.merge_visible(b);
    if merged.to_json() != a.to_json() {
        prop_assert!(changed, "{:?} merged with {:?} changed unreported", a, b);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn merge_visible_reports_every_visible_change(a in state(), b in state()) {
        check_merge_visible(&a, &b)?;
    }

    /// Same-rule pairs (what events mostly bring): a state and one event's value under its rule.
    #[test]
    fn merge_visible_of_one_rule(
        a in state(),
        v in value(),
        t in prop::sample::select(dates()),
    ) {
        if let Some(b) = FieldState::new(a.op(), v, t) {
            check_merge_visible(&a, &b)?;
        }
    }
}
