//! Field states and their merge rules: the heart of identity resolution.
//!
//! Every rule is a commutative, associative merge (a join), and applying an event is merging
//! the state that event alone would produce. Therefore a profile's state does not depend on
//! the order events arrive in, nor on how partial profiles are grouped when identities merge:
//!
//! * `Latest` / `Oldest` keep the value with the greatest / smallest event time; equal times
//!   are broken by the total value order ([`FieldValue`]'s `Ord`).
//! * `Count` and `Sum` add. Sums are kept as exact integers of nanounits (`i128`, 1e-9), so
//!   float rounding cannot make the result depend on the order of additions; inputs are
//!   rounded to 9 decimal places.
//! * `Min` / `Max` by the value order; `Set` is a sorted union.
//! * `ValueCount` (`valuect()`) adds counts key by key: a map of value → number of events.
//! * Maps merge key by key, each key with the field's rule.
//! * `Window` (`WINDOW 30d`) keeps one state of the field's rule per time bucket (by event
//!   time) and merges bucket by bucket; only the buckets within the window of the newest one
//!   stay, so the state is bounded. Its visible value depends on "now"
//!   ([`FieldState::to_json_at`]): the buckets in the window ending at now, folded.
//! * The profile's [`Activity`] (engagement scores) merges the same way, by days.
//! * Should two states of one field have different rules (two mappings disagree), the one
//!   with the higher rule rank wins whole — still deterministic.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value};

use crate::mapping::{MappedEvent, Mapping, MergeOp, Window};
use crate::scores::{Activity, Scores, SCORE_NAMES};
use crate::value::{same_visible_seq, FieldValue};

const NANOS: i128 = 1_000_000_000;

/// `Latest`/`Oldest`: takes `(v2, t2)` when it orders `wins` against the current `(time,
/// value)`; tells whether the visible value changed.
fn replace_if(
    value: &mut FieldValue,
    time: &mut DateTime<Utc>,
    v2: &FieldValue,
    t2: DateTime<Utc>,
    wins: Ordering,
) -> bool {
    if (t2, v2).cmp(&(*time, &*value)) != wins {
        return false;
    }
    let changed = !value.same_visible(v2);
    *value = v2.clone();
    *time = t2;
    changed
}

/// The stored state of one profile field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum FieldState {
    Latest {
        value: FieldValue,
        time: DateTime<Utc>,
    },
    Oldest {
        value: FieldValue,
        time: DateTime<Utc>,
    },
    Count {
        count: i64,
    },
    Sum {
        #[serde(with = "i128_string")]
        nanos: i128,
    },
    Min {
        value: FieldValue,
    },
    Max {
        value: FieldValue,
    },
    Set {
        values: BTreeSet<FieldValue>,
    },
    Map {
        op: MergeOp,
        entries: BTreeMap<String, FieldState>,
    },
    /// `valuect()`: how many events had each value. Kept apart from a map of `Sum` states
    /// because counts are exact integers, and stored as varints rather than 16-byte sums.
    ValueCount {
        counts: BTreeMap<String, i64>,
    },
    /// `WINDOW`: bucket number (event time in seconds / `bucket_seconds`, floored) → the
    /// state of that bucket's events under `op`. Only the `span` buckets up to the newest are
    /// kept; the value at a time `now` folds the buckets from `now`'s back `span - 1`.
    Window {
        op: MergeOp,
        bucket_seconds: i64,
        span: u32,
        buckets: BTreeMap<i64, FieldState>,
    },
}

mod i128_string {
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &i128, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i128, D::Error> {
        String::deserialize(d)?.parse().map_err(D::Error::custom)
    }
}

fn to_nanos(v: &FieldValue) -> Option<i128> {
    match v {
        FieldValue::Int(i) => Some(i128::from(*i) * NANOS),
        other => {
            let n = other.as_number()?;
            Some((n * 1e9).round() as i128)
        }
    }
}

/// The counts one value contributes under `ValueCount`: a map's positive integer entries
/// (what `valuect()` produces), each element of a list once, a scalar once. Counts stay
/// positive, so adding them (saturating at `i64::MAX`) is associative and commutative.
fn value_counts(value: FieldValue) -> Option<BTreeMap<String, i64>> {
    let mut counts = BTreeMap::new();
    match value {
        FieldValue::Map(m) => {
            counts.extend(
                m.into_iter()
                    .filter_map(|(k, v)| Some((k, v.as_int().filter(|n| *n > 0)?))),
            );
        }
        FieldValue::List(items) => {
            for key in items.iter().filter_map(FieldValue::as_text) {
                let n: &mut i64 = counts.entry(key).or_default();
                *n = n.saturating_add(1);
            }
        }
        scalar => {
            counts.insert(scalar.as_text()?, 1);
        }
    }
    counts.retain(|k, _| !k.is_empty());
    (!counts.is_empty()).then_some(counts)
}

impl FieldState {
    /// The state one event's value produces under `op`. Map values give a per-key map state
    /// (under `ValueCount`, the map's counts). `None` when the value does not suit the rule
    /// (e.g. a non-number under `Sum`).
    pub fn new(op: MergeOp, value: FieldValue, time: DateTime<Utc>) -> Option<FieldState> {
        if op == MergeOp::ValueCount {
            return value_counts(value).map(|counts| FieldState::ValueCount { counts });
        }
        if let FieldValue::Map(m) = value {
            if op == MergeOp::Set {
                return None;
            }
            let entries: BTreeMap<String, FieldState> = m
                .into_iter()
                .filter_map(|(k, v)| Some((k, FieldState::new(op, v, time)?)))
                .collect();
            return (!entries.is_empty()).then_some(FieldState::Map { op, entries });
        }
        Some(match op {
            MergeOp::Latest => FieldState::Latest { value, time },
            MergeOp::Oldest => FieldState::Oldest { value, time },
            MergeOp::Count => FieldState::Count { count: 1 },
            MergeOp::Sum => FieldState::Sum {
                nanos: to_nanos(&value)?,
            },
            MergeOp::Min => FieldState::Min { value },
            MergeOp::Max => FieldState::Max { value },
            MergeOp::Set => FieldState::Set {
                values: match value {
                    FieldValue::List(l) => l.into_iter().collect(),
                    scalar => BTreeSet::from([scalar]),
                },
            },
            MergeOp::ValueCount => unreachable!("handled above"),
        })
    }

    /// The state of one event's value in a windowed field: its bucket alone.
    pub fn new_windowed(
        op: MergeOp,
        window: Window,
        value: FieldValue,
        time: DateTime<Utc>,
    ) -> Option<FieldState> {
        let bucket = time.timestamp().div_euclid(window.bucket_seconds);
        Some(FieldState::Window {
            op,
            bucket_seconds: window.bucket_seconds,
            span: window.buckets(),
            buckets: BTreeMap::from([(bucket, FieldState::new(op, value, time)?)]),
        })
    }

    /// For a windowed state, the fold of its buckets in the window ending at `now` (`None`
    /// when none has events); any other state as it is.
    pub fn at(&self, now: DateTime<Utc>) -> Option<std::borrow::Cow<'_, FieldState>> {
        use std::borrow::Cow;
        let FieldState::Window {
            bucket_seconds,
            span,
            buckets,
            ..
        } = self
        else {
            return Some(Cow::Borrowed(self));
        };
        let current = now.timestamp().div_euclid(*bucket_seconds);
        let mut folded: Option<FieldState> = None;
        for (_, s) in buckets.range(current - i64::from(*span) + 1..=current) {
            match &mut folded {
                Some(f) => f.merge(s),
                None => folded = Some(s.clone()),
            }
        }
        folded.map(Cow::Owned)
    }

    /// The visible value at `now`: [`FieldState::to_json`] for every rule but `Window`,
    /// whose value is that of the events in the window ending at `now` — a count or sum of
    /// none is 0, a min, max or set of none is no value (`None`).
    pub fn to_json_at(&self, now: DateTime<Utc>) -> Option<Value> {
        match self.at(now) {
            Some(s) => Some(s.to_json()),
            None => match self.op() {
                MergeOp::Count | MergeOp::Sum => Some(Value::from(0)),
                _ => None,
            },
        }
    }

    /// The rule this state follows.
    pub fn op(&self) -> MergeOp {
        match self {
            FieldState::Latest { .. } => MergeOp::Latest,
            FieldState::Oldest { .. } => MergeOp::Oldest,
            FieldState::Count { .. } => MergeOp::Count,
            FieldState::Sum { .. } => MergeOp::Sum,
            FieldState::Min { .. } => MergeOp::Min,
            FieldState::Max { .. } => MergeOp::Max,
            FieldState::Set { .. } => MergeOp::Set,
            FieldState::Map { op, .. } => *op,
            FieldState::ValueCount { .. } => MergeOp::ValueCount,
            FieldState::Window { op, .. } => *op,
        }
    }

    /// Folds one event's value in (same as merging [`FieldState::new`] of it).
    pub fn apply(&mut self, value: FieldValue, time: DateTime<Utc>) {
        let new = match self {
            FieldState::Window {
                op,
                bucket_seconds,
                span,
                ..
            } => FieldState::new_windowed(
                *op,
                Window {
                    seconds: *bucket_seconds * i64::from(*span),
                    bucket_seconds: *bucket_seconds,
                },
                value,
                time,
            ),
            _ => FieldState::new(self.op(), value, time),
        };
        if let Some(s) = new {
            self.merge(&s);
        }
    }

    /// Merges `other` into `self` (commutative and associative, see the module docs) and tells
    /// whether the visible value may have changed: `false` only when it certainly did not. Lets
    /// a caller find the fields an event changed without keeping a copy of the state before.
    pub fn merge_visible(&mut self, other: &FieldState) -> bool {
        let same_rule = match (&mut *self, other) {
            (
                FieldState::Latest { value, time },
                FieldState::Latest {
                    value: v2,
                    time: t2,
                },
            ) => Some(replace_if(value, time, v2, *t2, Ordering::Greater)),
            (
                FieldState::Oldest { value, time },
                FieldState::Oldest {
                    value: v2,
                    time: t2,
                },
            ) => Some(replace_if(value, time, v2, *t2, Ordering::Less)),
            (FieldState::Min { value }, FieldState::Min { value: v2 }) if v2 < value => {
                let changed = !value.same_visible(v2);
                *value = v2.clone();
                Some(changed)
            }
            (FieldState::Max { value }, FieldState::Max { value: v2 }) if v2 > value => {
                let changed = !value.same_visible(v2);
                *value = v2.clone();
                Some(changed)
            }
            (FieldState::Min { .. }, FieldState::Min { .. })
            | (FieldState::Max { .. }, FieldState::Max { .. }) => Some(false),
            (FieldState::Count { count }, FieldState::Count { count: c2 }) => {
                let before = *count;
                *count = count.saturating_add(*c2);
                Some(*count != before)
            }
            (FieldState::Sum { nanos }, FieldState::Sum { nanos: n2 }) => {
                let before = *nanos;
                *nanos = nanos.saturating_add(*n2);
                Some(*nanos != before)
            }
            // A sorted set shows every element: it shows differently exactly when it grew.
            (FieldState::Set { values }, FieldState::Set { values: v2 }) => {
                let before = values.len();
                values.extend(v2.iter().cloned());
                Some(values.len() != before)
            }
            (FieldState::ValueCount { counts }, FieldState::ValueCount { counts: c2 }) => {
                let mut changed = false;
                for (k, n) in c2 {
                    match counts.get_mut(k) {
                        Some(mine) => {
                            let before = *mine;
                            *mine = mine.saturating_add(*n);
                            changed |= *mine != before;
                        }
                        None => {
                            counts.insert(k.clone(), *n);
                            changed = true;
                        }
                    }
                }
                Some(changed)
            }
            (
                FieldState::Map { op, entries },
                FieldState::Map {
                    op: op2,
                    entries: e2,
                },
            ) if op == op2 => {
                let mut changed = false;
                for (k, s) in e2 {
                    match entries.get_mut(k) {
                        Some(mine) => changed |= mine.merge_visible(s),
                        None => {
                            entries.insert(k.clone(), s.clone());
                            changed = true;
                        }
                    }
                }
                Some(changed)
            }
            // Buckets merge one by one; then the buckets that fell out of the newest one's
            // window go. The value shown depends on the time, so it may always have changed.
            (
                FieldState::Window {
                    op,
                    bucket_seconds,
                    span,
                    buckets,
                },
                FieldState::Window {
                    op: op2,
                    bucket_seconds: b2,
                    span: s2,
                    buckets: e2,
                },
            ) if (*op, *bucket_seconds, *span) == (*op2, *b2, *s2) => {
                for (k, s) in e2 {
                    match buckets.get_mut(k) {
                        Some(mine) => mine.merge(s),
                        None => {
                            buckets.insert(*k, s.clone());
                        }
                    }
                }
                if let Some(newest) = buckets.keys().next_back().copied() {
                    *buckets = buckets.split_off(&(newest - i64::from(*span) + 1));
                }
                Some(true)
            }
            _ => None,
        };
        if let Some(changed) = same_rule {
            return changed;
        }
        // Two rules for one field: the higher rule rank wins whole.
        if other.rank() > self.rank() {
            let changed = !self.same_visible(other);
            *self = other.clone();
            changed
        } else {
            false
        }
    }

    /// (variant, rule, window length, bucket length) rank used when two states of one field
    /// follow different rules (a mapping's window changed: the longer window, then the
    /// coarser buckets, win).
    fn rank(&self) -> (u8, MergeOp, i64, i64) {
        let v = match self {
            FieldState::Latest { .. } => 0,
            FieldState::Oldest { .. } => 1,
            FieldState::Count { .. } => 2,
            FieldState::Sum { .. } => 3,
            FieldState::Min { .. } => 4,
            FieldState::Max { .. } => 5,
            FieldState::Set { .. } => 6,
            FieldState::Map { .. } => 7,
            FieldState::ValueCount { .. } => 8,
            FieldState::Window {
                op,
                bucket_seconds,
                span,
                ..
            } => return (9, *op, bucket_seconds * i64::from(*span), *bucket_seconds),
        };
        (v, self.op(), 0, 0)
    }

    /// Merges `other` into `self`. Commutative and associative.
    pub fn merge(&mut self, other: &FieldState) {
        self.merge_visible(other);
    }

    /// The user-visible value: dates as RFC 3339 strings, sums as numbers (integers when
    /// whole), sets as sorted arrays, maps as objects.
    pub fn to_json(&self) -> Value {
        match self {
            FieldState::Latest { value, .. }
            | FieldState::Oldest { value, .. }
            | FieldState::Min { value }
            | FieldState::Max { value } => value.to_json(),
            FieldState::Count { count } => Value::from(*count),
            FieldState::Sum { nanos } => sum_number(*nanos).map_or(Value::Null, Value::Number),
            FieldState::Set { values } => {
                Value::Array(values.iter().map(FieldValue::to_json).collect())
            }
            FieldState::Map { entries, .. } => Value::Object(
                entries
                    .iter()
                    .map(|(k, s)| (k.clone(), s.to_json()))
                    .collect(),
            ),
            FieldState::ValueCount { counts } => Value::Object(
                counts
                    .iter()
                    .map(|(k, n)| (k.clone(), Value::from(*n)))
                    .collect(),
            ),
            // Without a "now": the value as of the newest bucket (the latest event's).
            FieldState::Window {
                bucket_seconds,
                buckets,
                ..
            } => {
                let newest = buckets.keys().next_back().map_or(0, |b| b * bucket_seconds);
                let at = DateTime::from_timestamp(newest, 0).unwrap_or_default();
                self.to_json_at(at).unwrap_or(Value::Null)
            }
        }
    }

    /// Whether the user-visible values are equal: `self.to_json() == other.to_json()`, without
    /// building JSON in the common cases (states of one rule, values of the value rules).
    pub fn same_visible(&self, other: &FieldState) -> bool {
        use FieldState::*;
        match (self, other) {
            (
                Latest { value: a, .. }
                | Oldest { value: a, .. }
                | Min { value: a }
                | Max { value: a },
                Latest { value: b, .. }
                | Oldest { value: b, .. }
                | Min { value: b }
                | Max { value: b },
            ) => a.same_visible(b),
            (Count { .. } | Sum { .. }, Count { .. } | Sum { .. }) => {
                self.json_number() == other.json_number()
            }
            (Set { values: a }, Set { values: b }) => same_visible_seq(a, b),
            (ValueCount { counts: a }, ValueCount { counts: b }) => a == b,
            (Window { .. }, Window { .. }) => self == other,
            (Map { entries: a, .. }, Map { entries: b, .. }) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, sa), (kb, sb))| ka == kb && sa.same_visible(sb))
            }
            // Rare across rules (a count against an int value, a set against a list value).
            _ => self.to_json() == other.to_json(),
        }
    }

    /// The JSON number a count or sum shows as.
    fn json_number(&self) -> Option<Number> {
        match self {
            FieldState::Count { count } => Some((*count).into()),
            FieldState::Sum { nanos } => sum_number(*nanos),
            _ => None,
        }
    }
}

/// A sum as shown: an integer when whole (and in range), else the nearest float.
fn sum_number(nanos: i128) -> Option<Number> {
    if nanos % NANOS == 0 {
        if let Ok(i) = i64::try_from(nanos / NANOS) {
            return Some(i.into());
        }
    }
    Number::from_f64(nanos as f64 / 1e9)
}

/// A profile's fields. Stored as JSON (serde), merged when identities join.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileState {
    pub fields: BTreeMap<String, FieldState>,
    /// What the engagement scores are computed from; `None` until the profile has an event
    /// (and in states stored before scores existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activity: Option<Activity>,
}

impl ProfileState {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds one mapped event in, each field by its mapping's `merge_op`. Values of fields the
    /// mapping does not define are ignored.
    pub fn apply_event(&mut self, mapping: &Mapping, event: &MappedEvent, time: DateTime<Utc>) {
        self.apply_event_visible(mapping, event, time, |_| {});
    }

    /// [`ProfileState::apply_event`], calling `changed` with each field whose visible value
    /// may have changed (see [`FieldState::merge_visible`]).
    pub fn apply_event_visible(
        &mut self,
        mapping: &Mapping,
        event: &MappedEvent,
        time: DateTime<Utc>,
        mut changed: impl FnMut(&str),
    ) {
        if crate::scores::recording() {
            self.record_activity(&Activity::of_event(time));
            SCORE_NAMES.iter().for_each(|s| changed(s));
        }
        for (name, value) in &event.values {
            let Some(def) = mapping.field(name) else {
                continue;
            };
            let state = match def.window {
                Some(w) => FieldState::new_windowed(def.merge_op, w, value.clone(), time),
                None => FieldState::new(def.merge_op, value.clone(), time),
            };
            let Some(state) = state else {
                continue;
            };
            let visible = match self.fields.get_mut(name.as_str()) {
                Some(mine) => mine.merge_visible(&state),
                None => {
                    self.fields.insert(name.clone(), state);
                    true
                }
            };
            if visible {
                changed(name);
            }
        }
    }

    fn merge_field(&mut self, name: &str, state: &FieldState) {
        match self.fields.get_mut(name) {
            Some(mine) => mine.merge(state),
            None => {
                self.fields.insert(name.to_string(), state.clone());
            }
        }
    }

    /// Merges another partial profile in (identity merge). Commutative and associative.
    pub fn merge(&mut self, other: &ProfileState) {
        for (name, state) in &other.fields {
            self.merge_field(name, state);
        }
        if let Some(a) = &other.activity {
            self.record_activity(a);
        }
    }

    fn record_activity(&mut self, a: &Activity) {
        match &mut self.activity {
            Some(mine) => mine.merge(a),
            None => self.activity = Some(a.clone()),
        }
    }

    /// The engagement scores at `now` (`None` before the first event).
    pub fn scores(&self, now: DateTime<Utc>) -> Option<Scores> {
        self.activity.as_ref().map(|a| a.scores(now))
    }

    /// The user-visible fields object at `now`: windowed fields count the events of the
    /// window ending at `now`; a windowed min, max or set with none is left out.
    pub fn to_json_at(&self, now: DateTime<Utc>) -> Value {
        Value::Object(
            self.fields
                .iter()
                .filter_map(|(k, s)| Some((k.clone(), s.to_json_at(now)?)))
                .collect(),
        )
    }

    /// What audience filters read at `now`: [`ProfileState::to_json_at`] plus the scores by
    /// name (a mapping field of the same name hides the score).
    pub fn filter_json(&self, now: DateTime<Utc>) -> Value {
        let mut fields = self.to_json_at(now);
        if let (Value::Object(map), Some(scores)) = (&mut fields, self.scores(now)) {
            for (name, score) in scores.pairs() {
                map.entry(name).or_insert_with(|| Value::from(score));
            }
        }
        fields
    }

    /// The user-visible fields object.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.fields
                .iter()
                .map(|(k, s)| (k.clone(), s.to_json()))
                .collect(),
        )
    }
}
