//! Runtime values: what expressions evaluate to and what profile fields hold.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::dates;

/// A typed value. Serialized with its type (`{"date": "2024-01-01T00:00:00Z"}`) so a stored
/// profile keeps dates as dates; [`FieldValue::to_json`] gives the user-visible plain form.
///
/// Equality and ordering are total (numbers via `f64::total_cmp`), which is what makes merge
/// tie-breaks deterministic: values order first by type (string < int < number < bool < date
/// < list < map), then by value.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldValue {
    String(String),
    Int(i64),
    Number(f64),
    Bool(bool),
    Date(DateTime<Utc>),
    List(Vec<FieldValue>),
    Map(BTreeMap<String, FieldValue>),
}

impl FieldValue {
    fn rank(&self) -> u8 {
        match self {
            FieldValue::String(_) => 0,
            FieldValue::Int(_) => 1,
            FieldValue::Number(_) => 2,
            FieldValue::Bool(_) => 3,
            FieldValue::Date(_) => 4,
            FieldValue::List(_) => 5,
            FieldValue::Map(_) => 6,
        }
    }

    /// Converts event or profile JSON; `null` (and nulls inside arrays) give no value.
    pub fn from_json(v: &Value) -> Option<FieldValue> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => FieldValue::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => FieldValue::Int(i),
                None => FieldValue::Number(n.as_f64().filter(|f| f.is_finite())?),
            },
            Value::String(s) => FieldValue::String(s.clone()),
            Value::Array(a) => {
                FieldValue::List(a.iter().filter_map(FieldValue::from_json).collect())
            }
            Value::Object(o) => FieldValue::Map(
                o.iter()
                    .filter_map(|(k, v)| Some((k.clone(), FieldValue::from_json(v)?)))
                    .collect(),
            ),
        })
    }

    /// The user-visible JSON form: dates as RFC 3339 strings (UTC, `Z`).
    pub fn to_json(&self) -> Value {
        match self {
            FieldValue::String(s) => Value::String(s.clone()),
            FieldValue::Int(i) => Value::from(*i),
            FieldValue::Number(n) => serde_json::Number::from_f64(*n)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            FieldValue::Bool(b) => Value::Bool(*b),
            FieldValue::Date(d) => Value::String(format_date(d)),
            FieldValue::List(l) => Value::Array(l.iter().map(FieldValue::to_json).collect()),
            FieldValue::Map(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), v.to_json())).collect())
            }
        }
    }

    /// Whether the user-visible forms are equal: `self.to_json() == other.to_json()`, without
    /// building them. So a date equals the string of its RFC 3339 text, and `Int(1)` differs
    /// from `Number(1.0)` (JSON integers and floats never compare equal).
    pub fn same_visible(&self, other: &FieldValue) -> bool {
        use FieldValue::*;
        match (self, other) {
            (String(a), String(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Date(d), String(s)) | (String(s), Date(d)) => format_date(d) == *s,
            (Int(_) | Number(_), Int(_) | Number(_)) => self.json_number() == other.json_number(),
            (Bool(a), Bool(b)) => a == b,
            (List(a), List(b)) => same_visible_seq(a, b),
            (Map(a), Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((ka, va), (kb, vb))| ka == kb && va.same_visible(vb))
            }
            _ => false,
        }
    }

    /// The JSON number a number shows as; `None` (JSON `null`) for non-finite numbers.
    fn json_number(&self) -> Option<serde_json::Number> {
        match self {
            FieldValue::Int(i) => Some((*i).into()),
            FieldValue::Number(n) => serde_json::Number::from_f64(*n),
            _ => None,
        }
    }

    /// The value as text, for string functions and identities. Lists and maps have none.
    pub fn as_text(&self) -> Option<String> {
        match self {
            FieldValue::String(s) => Some(s.clone()),
            FieldValue::Int(i) => Some(i.to_string()),
            FieldValue::Number(n) => Some(format_number(*n)),
            FieldValue::Bool(b) => Some(b.to_string()),
            FieldValue::Date(d) => Some(format_date(d)),
            FieldValue::List(_) | FieldValue::Map(_) => None,
        }
    }

    /// The value as a number: numbers, and strings that parse as finite numbers.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            FieldValue::Int(i) => Some(*i as f64),
            FieldValue::Number(n) => Some(*n),
            FieldValue::String(s) => s.trim().parse::<f64>().ok().filter(|f| f.is_finite()),
            _ => None,
        }
    }

    /// The value as an integer: integers, integral-or-truncated numbers, numeric strings.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            FieldValue::Int(i) => Some(*i),
            FieldValue::String(s) if s.trim().parse::<i64>().is_ok() => s.trim().parse().ok(),
            other => {
                let n = other.as_number()?;
                (n.abs() < 9.2e18).then_some(n.trunc() as i64)
            }
        }
    }

    /// The value as a date: dates, date strings (see [`dates::parse_date`]), epoch numbers.
    pub fn as_date(&self) -> Option<DateTime<Utc>> {
        match self {
            FieldValue::Date(d) => Some(*d),
            FieldValue::String(s) => dates::parse_date(s),
            FieldValue::Int(i) => dates::from_epoch(*i as f64),
            FieldValue::Number(n) => dates::from_epoch(*n),
            _ => None,
        }
    }

    /// The value as a boolean: booleans, `"true"`/`"false"`/`"1"`/`"0"`, and the integers 0/1.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            FieldValue::Int(0) => Some(false),
            FieldValue::Int(1) => Some(true),
            FieldValue::String(s) => str_as_bool(s),
            _ => None,
        }
    }

    /// True for empty strings, lists and maps (treated as "no value" by `oneof` and `EXISTS`).
    pub fn is_empty(&self) -> bool {
        match self {
            FieldValue::String(s) => s.is_empty(),
            FieldValue::List(l) => l.is_empty(),
            FieldValue::Map(m) => m.is_empty(),
            _ => false,
        }
    }
}

/// A string as a boolean: [`FieldValue::as_bool`] of a string.
pub(crate) fn str_as_bool(s: &str) -> Option<bool> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("true") || s == "1" {
        Some(true)
    } else if s.eq_ignore_ascii_case("false") || s == "0" {
        Some(false)
    } else {
        None
    }
}

/// Element-wise [`FieldValue::same_visible`] of two sequences (lists, sets).
pub(crate) fn same_visible_seq<'a>(
    a: impl IntoIterator<Item = &'a FieldValue, IntoIter: ExactSizeIterator>,
    b: impl IntoIterator<Item = &'a FieldValue, IntoIter: ExactSizeIterator>,
) -> bool {
    let (a, b) = (a.into_iter(), b.into_iter());
    a.len() == b.len() && a.zip(b).all(|(x, y)| x.same_visible(y))
}

/// RFC 3339 in UTC with a `Z`, with sub-second digits only when present.
pub fn format_date(d: &DateTime<Utc>) -> String {
    d.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        format!("{n}")
    }
}

impl Ord for FieldValue {
    fn cmp(&self, other: &Self) -> Ordering {
        use FieldValue::*;
        match (self, other) {
            (String(a), String(b)) => a.cmp(b),
            (Int(a), Int(b)) => a.cmp(b),
            (Number(a), Number(b)) => a.total_cmp(b),
            (Bool(a), Bool(b)) => a.cmp(b),
            (Date(a), Date(b)) => a.cmp(b),
            (List(a), List(b)) => a.cmp(b),
            (Map(a), Map(b)) => a.cmp(b),
            _ => self.rank().cmp(&other.rank()),
        }
    }
}

impl PartialOrd for FieldValue {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for FieldValue {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_and_ordering() {
        let v = FieldValue::from_json(&json!({"a": [1, null, "x"], "b": 1.5, "c": null})).unwrap();
        assert_eq!(v.to_json(), json!({"a": [1, "x"], "b": 1.5}));
        assert!(FieldValue::String("z".into()) < FieldValue::Int(0));
        assert!(FieldValue::Number(-0.0) < FieldValue::Number(0.0));
        let s = serde_json::to_string(&v).unwrap();
        let back: FieldValue = serde_json::from_str(&s).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn conversions() {
        assert_eq!(FieldValue::String(" 42 ".into()).as_int(), Some(42));
        assert_eq!(FieldValue::String("4.7".into()).as_int(), Some(4));
        assert_eq!(FieldValue::String("4.5".into()).as_number(), Some(4.5));
        assert_eq!(FieldValue::String("NaN".into()).as_number(), None);
        assert_eq!(FieldValue::Number(3.0).as_text().unwrap(), "3");
        assert_eq!(FieldValue::String("TRUE".into()).as_bool(), Some(true));
        assert_eq!(
            FieldValue::Int(1136214245)
                .as_date()
                .map(|d| format_date(&d)),
            Some("2006-01-02T15:04:05Z".to_string())
        );
    }
}
