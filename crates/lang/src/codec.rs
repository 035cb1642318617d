//! The compact binary form a [`ProfileState`] is stored in.
//!
//! The profile processor reads and rewrites one stored state per event. As JSON (serde) a
//! state took ~530 bytes and its parse and print were ~7 % of the processor's CPU; this form is
//! about a third of the size and reads without a parser. It is written by hand rather than
//! with a serde binary format because [`FieldState`]'s serde form is internally tagged (that
//! JSON stays readable in old databases and in debugging output), which only self-describing
//! formats can read back, and because a stored format should be spelled out where it is
//! decided, not follow whatever a derive makes of the types.
//!
//! ```text
//! state  = 0xB1 (version 1; JSON text never starts with it) · count · (text · field)*
//!          · [0xA1 activity]
//! field  = tag · ...: 0 latest value time | 1 oldest value time | 2 count zigzag
//!                     | 3 sum i128 (16 bytes LE) | 4 min value | 5 max value
//!                     | 6 set count value* | 7 map op count (text · field)*
//!                     | 8 valuect count (text · zigzag)*
//!                     | 9 window op varint-bucket-seconds varint-span count
//!                         (zigzag-bucket-delta · field)*
//! activity = time-first · time-last · count · (zigzag-day-delta · varint-events)*
//! value  = tag · ...: 0 string text | 1 int zigzag | 2 number f64 (8 bytes LE) | 3 bool byte
//!                     | 4 date time | 5 list count value* | 6 map count (text · value)*
//! time   = zigzag seconds · varint nanoseconds          text = varint length · UTF-8
//! count  = varint           zigzag = signed varint       varint = LEB128, at most 10 bytes
//! ```
//!
//! `op` is the rule's index in `MERGE_OPS` (append new rules there; never reorder). Window
//! buckets and activity days are written in ascending order, each as the difference from
//! the one before (the first from 0), so a bucket costs about two bytes plus its state.
//! States written before windows and scores existed have no tag 9 and no activity trailer:
//! they still read (their activity is `None`).
//!
//! Decoding never panics and never trusts a length further than the bytes that remain.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use crate::mapping::MergeOp;
use crate::merge::{FieldState, ProfileState};
use crate::scores::Activity;
use crate::value::FieldValue;

/// First byte of an encoded state.
pub const VERSION_1: u8 = 0xB1;
/// Marks the optional activity trailer (engagement scores) after the fields.
pub const ACTIVITY: u8 = 0xA1;

/// Why stored bytes are not a profile state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("stored profile state is not valid: {what} at byte {at}")]
pub struct DecodeError {
    pub what: &'static str,
    pub at: usize,
}

/// Append-only: a rule's position is its stored byte.
const MERGE_OPS: [MergeOp; 8] = [
    MergeOp::Latest,
    MergeOp::Oldest,
    MergeOp::Sum,
    MergeOp::Count,
    MergeOp::Min,
    MergeOp::Max,
    MergeOp::Set,
    MergeOp::ValueCount,
];

impl ProfileState {
    /// Appends this state's binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION_1);
        put_len(out, self.fields.len());
        for (name, state) in &self.fields {
            put_text(out, name);
            put_field(out, state);
        }
        if let Some(a) = &self.activity {
            out.push(ACTIVITY);
            put_time(out, &a.first);
            put_time(out, &a.last);
            put_len(out, a.days.len());
            let mut prev = 0;
            for (day, n) in &a.days {
                put_zigzag(out, day - prev);
                put_varint(out, u64::from(*n));
                prev = *day;
            }
        }
    }

    /// [`ProfileState::encode`] into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        self.encode(&mut out);
        out
    }

    /// Reads a state written by [`ProfileState::encode`].
    pub fn decode(bytes: &[u8]) -> Result<ProfileState, DecodeError> {
        let mut r = Reader { bytes, at: 0 };
        if r.byte()? != VERSION_1 {
            return Err(r.error_before("an unknown format version", 1));
        }
        let fields = r.map(|r| r.field_at(0))?;
        let activity = if r.bytes.get(r.at) == Some(&ACTIVITY) {
            r.at += 1;
            Some(r.activity()?)
        } else {
            None
        };
        if r.at != bytes.len() {
            return Err(r.error("bytes after the end"));
        }
        Ok(ProfileState { fields, activity })
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

fn put_len(out: &mut Vec<u8>, n: usize) {
    put_varint(out, n as u64);
}

fn put_text(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    put_zigzag(out, t.timestamp());
    put_varint(out, u64::from(t.timestamp_subsec_nanos()));
}

fn put_field(out: &mut Vec<u8>, state: &FieldState) {
    match state {
        FieldState::Latest { value, time } | FieldState::Oldest { value, time } => {
            out.push(if matches!(state, FieldState::Latest { .. }) {
                0
            } else {
                1
            });
            put_value(out, value);
            put_time(out, time);
        }
        FieldState::Count { count } => {
            out.push(2);
            put_zigzag(out, *count);
        }
        FieldState::Sum { nanos } => {
            out.push(3);
            out.extend_from_slice(&nanos.to_le_bytes());
        }
        FieldState::Min { value } => {
            out.push(4);
            put_value(out, value);
        }
        FieldState::Max { value } => {
            out.push(5);
            put_value(out, value);
        }
        FieldState::Set { values } => {
            out.push(6);
            put_len(out, values.len());
            values.iter().for_each(|v| put_value(out, v));
        }
        FieldState::Map { op, entries } => {
            out.push(7);
            out.push(op_byte(*op));
            put_len(out, entries.len());
            for (key, state) in entries {
                put_text(out, key);
                put_field(out, state);
            }
        }
        FieldState::Window {
            op,
            bucket_seconds,
            span,
            buckets,
        } => {
            out.push(9);
            out.push(op_byte(*op));
            put_varint(out, *bucket_seconds as u64);
            put_varint(out, u64::from(*span));
            put_len(out, buckets.len());
            let mut prev = 0;
            for (bucket, state) in buckets {
                put_zigzag(out, bucket - prev);
                put_field(out, state);
                prev = *bucket;
            }
        }
        FieldState::ValueCount { counts } => {
            out.push(8);
            put_len(out, counts.len());
            for (key, n) in counts {
                put_text(out, key);
                put_zigzag(out, *n);
            }
        }
    }
}

fn op_byte(op: MergeOp) -> u8 {
    MERGE_OPS
        .iter()
        .position(|o| *o == op)
        .expect("every op listed") as u8
}

fn put_value(out: &mut Vec<u8>, value: &FieldValue) {
    match value {
        FieldValue::String(s) => {
            out.push(0);
            put_text(out, s);
        }
        FieldValue::Int(i) => {
            out.push(1);
            put_zigzag(out, *i);
        }
        FieldValue::Number(n) => {
            out.push(2);
            out.extend_from_slice(&n.to_le_bytes());
        }
        FieldValue::Bool(b) => {
            out.push(3);
            out.push(u8::from(*b));
        }
        FieldValue::Date(d) => {
            out.push(4);
            put_time(out, d);
        }
        FieldValue::List(items) => {
            out.push(5);
            put_len(out, items.len());
            items.iter().for_each(|v| put_value(out, v));
        }
        FieldValue::Map(entries) => {
            out.push(6);
            put_len(out, entries.len());
            for (key, v) in entries {
                put_text(out, key);
                put_value(out, v);
            }
        }
    }
}

/// Nesting deeper than this is refused, so corrupt bytes cannot overflow the stack.
const MAX_DEPTH: u32 = 64;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn error(&self, what: &'static str) -> DecodeError {
        DecodeError { what, at: self.at }
    }

    fn error_before(&self, what: &'static str, read: usize) -> DecodeError {
        DecodeError {
            what,
            at: self.at - read,
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|end| *end <= self.bytes.len())
            .ok_or_else(|| self.error("an end before the data does"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("took N bytes"))
    }

    fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(self.error("a varint longer than 10 bytes"))
    }

    fn zigzag(&mut self) -> Result<i64, DecodeError> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    /// A length or count: never more than the bytes left (each item takes at least one).
    fn len(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.bytes.len() - self.at)
            .ok_or_else(|| self.error("a length past the end"))
    }

    fn text(&mut self) -> Result<String, DecodeError> {
        let n = self.len()?;
        let bytes = self.take(n)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| self.error_before("text that is not UTF-8", n))
    }

    fn time(&mut self) -> Result<DateTime<Utc>, DecodeError> {
        let secs = self.zigzag()?;
        let nanos = u32::try_from(self.varint()?).map_err(|_| self.error("nanoseconds"))?;
        DateTime::from_timestamp(secs, nanos).ok_or_else(|| self.error("a time out of range"))
    }

    fn map<T>(
        &mut self,
        mut item: impl FnMut(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<BTreeMap<String, T>, DecodeError> {
        let n = self.len()?;
        let mut out = BTreeMap::new();
        for _ in 0..n {
            let key = self.text()?;
            let v = item(self)?;
            out.insert(key, v);
        }
        Ok(out)
    }

    fn field_at(&mut self, depth: u32) -> Result<FieldState, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(match self.byte()? {
            0 => FieldState::Latest {
                value: self.value(depth)?,
                time: self.time()?,
            },
            1 => FieldState::Oldest {
                value: self.value(depth)?,
                time: self.time()?,
            },
            2 => FieldState::Count {
                count: self.zigzag()?,
            },
            3 => FieldState::Sum {
                nanos: i128::from_le_bytes(self.array()?),
            },
            4 => FieldState::Min {
                value: self.value(depth)?,
            },
            5 => FieldState::Max {
                value: self.value(depth)?,
            },
            6 => {
                let n = self.len()?;
                let mut values = BTreeSet::new();
                for _ in 0..n {
                    values.insert(self.value(depth)?);
                }
                FieldState::Set { values }
            }
            7 => {
                let op = self.op()?;
                FieldState::Map {
                    op,
                    entries: self.map(|r| r.field_at(depth + 1))?,
                }
            }
            8 => FieldState::ValueCount {
                counts: self.map(Self::zigzag)?,
            },
            9 => {
                let op = self.op()?;
                let bucket_seconds = i64::try_from(self.varint()?)
                    .ok()
                    .filter(|b| *b > 0)
                    .ok_or_else(|| self.error("a window bucket length out of range"))?;
                let span = u32::try_from(self.varint()?)
                    .map_err(|_| self.error("a window span out of range"))?;
                let n = self.len()?;
                let mut buckets = BTreeMap::new();
                let mut prev = 0i64;
                for _ in 0..n {
                    prev = prev
                        .checked_add(self.zigzag()?)
                        .ok_or_else(|| self.error("a bucket number out of range"))?;
                    buckets.insert(prev, self.field_at(depth + 1)?);
                }
                FieldState::Window {
                    op,
                    bucket_seconds,
                    span,
                    buckets,
                }
            }
            _ => return Err(self.error_before("an unknown field rule", 1)),
        })
    }

    fn op(&mut self) -> Result<MergeOp, DecodeError> {
        MERGE_OPS
            .get(usize::from(self.byte()?))
            .copied()
            .ok_or_else(|| self.error_before("an unknown merge rule", 1))
    }

    fn activity(&mut self) -> Result<Activity, DecodeError> {
        let first = self.time()?;
        let last = self.time()?;
        let n = self.len()?;
        let mut days = BTreeMap::new();
        let mut prev = 0i64;
        for _ in 0..n {
            prev = prev
                .checked_add(self.zigzag()?)
                .ok_or_else(|| self.error("a day number out of range"))?;
            let events = u32::try_from(self.varint()?)
                .map_err(|_| self.error("a day's event count out of range"))?;
            days.insert(prev, events);
        }
        Ok(Activity { first, last, days })
    }

    fn value(&mut self, depth: u32) -> Result<FieldValue, DecodeError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        Ok(match self.byte()? {
            0 => FieldValue::String(self.text()?),
            1 => FieldValue::Int(self.zigzag()?),
            2 => FieldValue::Number(f64::from_le_bytes(self.array()?)),
            3 => match self.byte()? {
                0 => FieldValue::Bool(false),
                1 => FieldValue::Bool(true),
                _ => return Err(self.error_before("a bool that is neither 0 nor 1", 1)),
            },
            4 => FieldValue::Date(self.time()?),
            5 => {
                let n = self.len()?;
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(self.value(depth + 1)?);
                }
                FieldValue::List(items)
            }
            6 => FieldValue::Map(self.map(|r| r.value(depth + 1))?),
            _ => return Err(self.error_before("an unknown value type", 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn sample() -> ProfileState {
        let t = Utc.timestamp_opt(1_700_000_000, 123_456_789).unwrap();
        let mut fields = BTreeMap::new();
        fields.insert(
            "email".into(),
            FieldState::Latest {
                value: FieldValue::String("a@b.c".into()),
                time: t,
            },
        );
        fields.insert("visits".into(), FieldState::Count { count: -3 });
        fields.insert("spent".into(), FieldState::Sum { nanos: -(1 << 100) });
        fields.insert(
            "pages".into(),
            FieldState::Set {
                values: [FieldValue::Int(i64::MIN), FieldValue::Number(f64::NAN)].into(),
            },
        );
        fields.insert(
            "utm".into(),
            FieldState::Map {
                op: MergeOp::Set,
                entries: [(
                    "source".into(),
                    FieldState::Max {
                        value: FieldValue::Map(
                            [("k".into(), FieldValue::List(vec![FieldValue::Bool(true)]))].into(),
                        ),
                    },
                )]
                .into(),
            },
        );
        fields.insert(
            "url_counts".into(),
            FieldState::ValueCount {
                counts: [("/a".into(), 3), ("/b".into(), i64::MIN)].into(),
            },
        );
        ProfileState {
            fields,
            activity: None,
        }
    }

    #[test]
    fn a_state_reads_back_as_written() {
        let state = sample();
        let bytes = state.to_bytes();
        assert_eq!(bytes[0], VERSION_1);
        assert_eq!(ProfileState::decode(&bytes), Ok(state));
    }

    #[test]
    fn every_cut_short_or_extended_encoding_is_an_error() {
        let mut bytes = sample().to_bytes();
        for end in 0..bytes.len() {
            assert!(ProfileState::decode(&bytes[..end]).is_err(), "cut at {end}");
        }
        bytes.push(0);
        assert_eq!(
            ProfileState::decode(&bytes).unwrap_err().what,
            "bytes after the end"
        );
    }

    /// The encoding is a stored format: the rules that existed before `ValueCount` keep
    /// their bytes, and `ValueCount` has the one spelled out in the module docs.
    #[test]
    fn encodings_are_pinned() {
        let t = Utc.timestamp_opt(1, 2).unwrap();
        let one = |name: &str, state: FieldState| {
            ProfileState {
                fields: [(name.to_string(), state)].into(),
                activity: None,
            }
            .to_bytes()
        };
        assert_eq!(
            one(
                "a",
                FieldState::Latest {
                    value: FieldValue::Int(-1),
                    time: t
                }
            ),
            [VERSION_1, 1, 1, b'a', 0, 1, 1, 2, 2]
        );
        assert_eq!(
            one(
                "m",
                FieldState::Map {
                    op: MergeOp::Set,
                    entries: [("k".into(), FieldState::Count { count: 2 })].into(),
                }
            ),
            [VERSION_1, 1, 1, b'm', 7, 6, 1, 1, b'k', 2, 4]
        );
        assert_eq!(
            one(
                "v",
                FieldState::ValueCount {
                    counts: [("x".into(), 3), ("y".into(), -1)].into(),
                }
            ),
            [VERSION_1, 1, 1, b'v', 8, 2, 1, b'x', 6, 1, b'y', 1]
        );
        assert_eq!(
            one(
                "m",
                FieldState::Map {
                    op: MergeOp::ValueCount,
                    entries: Default::default(),
                }
            ),
            [VERSION_1, 1, 1, b'm', 7, 7, 0]
        );
    }

    /// Windows (tag 9) and the activity trailer: bucket and day numbers as deltas. A state
    /// without them is byte for byte what it was before they existed (pinned above).
    #[test]
    fn window_and_activity_encodings_are_pinned() {
        let state = ProfileState {
            fields: [(
                "w".to_string(),
                FieldState::Window {
                    op: MergeOp::Count,
                    bucket_seconds: 86_400,
                    span: 30,
                    buckets: [
                        (100, FieldState::Count { count: 1 }),
                        (102, FieldState::Count { count: 2 }),
                    ]
                    .into(),
                },
            )]
            .into(),
            activity: Some(Activity {
                first: Utc.timestamp_opt(1, 0).unwrap(),
                last: Utc.timestamp_opt(2, 0).unwrap(),
                days: [(3, 4), (5, 1)].into(),
            }),
        };
        let bytes = state.to_bytes();
        assert_eq!(
            bytes,
            [
                VERSION_1, 1, 1, b'w', 9, 3, 0x80, 0xA3, 0x05, 30, 2, 200, 1, 2, 2, 4, 2, 4,
                ACTIVITY, 2, 0, 4, 0, 2, 6, 4, 4, 1
            ]
        );
        assert_eq!(ProfileState::decode(&bytes), Ok(state));
    }

    #[test]
    fn json_text_is_not_mistaken_for_this_form() {
        let err = ProfileState::decode(br#"{"fields":{}}"#).unwrap_err();
        assert_eq!((err.what, err.at), ("an unknown format version", 0));
    }

    #[test]
    fn deep_nesting_is_refused_not_followed() {
        // A list in a list in ... 10,000 deep: an error, not a stack overflow.
        let mut bytes = vec![VERSION_1, 1, 1, b'f', 4];
        bytes.extend(std::iter::repeat_n([5u8, 1], 10_000).flatten());
        assert_eq!(
            ProfileState::decode(&bytes).unwrap_err().what,
            "nesting too deep"
        );
    }
}
