//! Date parsing (`todate`) and relative dates (`"now-30d"`).

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Epoch numbers with an absolute value at or above this are milliseconds, below it seconds
/// (1e11 seconds is the year 5138; 1e11 ms is March 1973).
const EPOCH_MS_THRESHOLD: f64 = 1e11;

/// Interprets a number as epoch seconds or milliseconds.
pub fn from_epoch(n: f64) -> Option<DateTime<Utc>> {
    if !n.is_finite() {
        return None;
    }
    let ms = if n.abs() >= EPOCH_MS_THRESHOLD {
        n
    } else {
        n * 1000.0
    };
    if ms.abs() > 8.0e15 {
        return None;
    }
    Utc.timestamp_millis_opt(ms.round() as i64).single()
}

/// Parses the date formats `todate()` understands: RFC 3339 / ISO 8601 (with or without
/// zone, `T` or space separator, optional fraction), RFC 2822, `2006-01-02`, `2006/01/02`,
/// `01/02/2006` (US month/day/year, optionally followed by a time) and epoch seconds or
/// milliseconds written as digits. Times without a zone are UTC.
pub fn parse_date(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    // Every accepted form has digits; filters compare plain strings (`country = "us"`) often,
    // so rejecting those early keeps them off the slow format loop below.
    if !s.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(n) = s.parse::<f64>() {
        return from_epoch(n);
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f%:z",
        "%Y-%m-%d %H:%M:%S%.f %:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%d %H:%M:%S%.f %z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    let naive = s.strip_suffix(" UTC").unwrap_or(s);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
        "%m/%d/%Y %H:%M:%S%.f",
        "%m/%d/%Y %H:%M",
        "%Y/%m/%d %H:%M:%S%.f",
    ] {
        if let Ok(d) = NaiveDateTime::parse_from_str(naive, fmt) {
            return Some(Utc.from_utc_datetime(&d));
        }
    }
    for fmt in ["%Y-%m-%d", "%m/%d/%Y", "%Y/%m/%d", "%Y%m%d"] {
        if let Ok(d) = NaiveDate::parse_from_str(naive, fmt) {
            return d.and_hms_opt(0, 0, 0).map(|dt| Utc.from_utc_datetime(&dt));
        }
    }
    None
}

/// Parses `todate(value, "format")` with a chrono `strftime` format.
pub fn parse_date_with_format(s: &str, fmt: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(d) = DateTime::parse_from_str(s, fmt) {
        return Some(d.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
        return Some(Utc.from_utc_datetime(&d));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, fmt) {
        return d.and_hms_opt(0, 0, 0).map(|dt| Utc.from_utc_datetime(&dt));
    }
    None
}

/// True when `s` is a relative date such as `now`, `now-30d`, `now+1h` or `now-1d-12h`
/// (units: `y` years, `M` months, `w` weeks, `d` days, `h` hours, `m` minutes, `s` seconds).
pub fn is_relative(s: &str) -> bool {
    // Filters ask this of every string they compare; most do not start with `now`.
    has_now_prefix(s.trim())
        && parse_relative(s, DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000)).is_some()
}

fn has_now_prefix(s: &str) -> bool {
    s.get(..3).is_some_and(|p| p.eq_ignore_ascii_case("now"))
}

/// Resolves a relative date against `now`; `None` when `s` is not one.
pub fn parse_relative(s: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let rest = s.get(3..).filter(|_| has_now_prefix(s))?;
    let mut t = now;
    let bytes = rest.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let sign: i64 = match bytes[i] {
            b'-' => -1,
            b'+' => 1,
            _ => return None,
        };
        i += 1;
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i || i >= bytes.len() || i - start > 9 {
            return None;
        }
        let n: i64 = rest[start..i].parse().ok()?;
        let unit = bytes[i];
        i += 1;
        t = match unit {
            b'y' | b'Y' => add_months(t, sign * n * 12)?,
            b'M' => add_months(t, sign * n)?,
            b'w' => t.checked_add_signed(Duration::try_weeks(sign * n)?)?,
            b'd' | b'D' => t.checked_add_signed(Duration::try_days(sign * n)?)?,
            b'h' | b'H' => t.checked_add_signed(Duration::try_hours(sign * n)?)?,
            b'm' => t.checked_add_signed(Duration::try_minutes(sign * n)?)?,
            b's' | b'S' => t.checked_add_signed(Duration::try_seconds(sign * n)?)?,
            _ => return None,
        };
    }
    Some(t)
}

fn add_months(t: DateTime<Utc>, months: i64) -> Option<DateTime<Utc>> {
    let m = Months::new(u32::try_from(months.unsigned_abs()).ok()?);
    if months >= 0 {
        t.checked_add_months(m)
    } else {
        t.checked_sub_months(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn formats() {
        let want = d("2006-01-02T15:04:05Z");
        for s in [
            "2006-01-02T15:04:05Z",
            "2006-01-02T17:04:05+02:00",
            "2006-01-02 15:04:05",
            "2006-01-02T15:04:05",
            "01/02/2006 15:04:05",
            "1136214245",
            "1136214245000",
            "Mon, 02 Jan 2006 15:04:05 +0000",
        ] {
            assert_eq!(parse_date(s), Some(want), "{s}");
        }
        assert_eq!(parse_date("2006-01-02"), Some(d("2006-01-02T00:00:00Z")));
        assert_eq!(parse_date("01/02/2006"), Some(d("2006-01-02T00:00:00Z")));
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
        assert_eq!(
            parse_date_with_format("02.01.2006", "%d.%m.%Y"),
            Some(d("2006-01-02T00:00:00Z"))
        );
    }

    #[test]
    fn relative() {
        let now = d("2024-03-31T12:00:00Z");
        assert_eq!(parse_relative("now", now), Some(now));
        assert_eq!(
            parse_relative("now-30d", now),
            Some(d("2024-03-01T12:00:00Z"))
        );
        assert_eq!(
            parse_relative("now-12h", now),
            Some(d("2024-03-31T00:00:00Z"))
        );
        assert_eq!(
            parse_relative("now+1w", now),
            Some(d("2024-04-07T12:00:00Z"))
        );
        assert_eq!(
            parse_relative("now-1M", now),
            Some(d("2024-02-29T12:00:00Z"))
        );
        assert_eq!(
            parse_relative("now-1y", now),
            Some(d("2023-03-31T12:00:00Z"))
        );
        assert_eq!(
            parse_relative("now-5m-10s", now),
            Some(d("2024-03-31T11:54:50Z"))
        );
        assert_eq!(
            parse_relative("NOW-1d", now),
            Some(d("2024-03-30T12:00:00Z"))
        );
        assert_eq!(parse_relative("now-", now), None);
        assert_eq!(parse_relative("now-3x", now), None);
        assert_eq!(parse_relative("nowhere", now), None);
        assert!(is_relative("now-30d"));
        assert!(!is_relative("2024-01-01"));
    }
}
