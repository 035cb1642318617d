//! Engagement scores: `recency`, `frequency`, `intensity`, `momentum` and `consistency`,
//! each 0–100, on every profile.
//!
//! A profile keeps one [`Activity`]: the times of its first and last events and how many
//! events it had on each of its last [`ACTIVITY_DAYS`] days (UTC days, by event time). Every
//! event a profile receives adds one to its day; two profiles merging add their days. Like the
//! field rules in [`crate::merge`], this is exact and does not depend on the order events come
//! in. The scores are computed from it when asked, at a given "now", with exponentially
//! decayed counts (formulas in the crate README, "Engagement scores").

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Days of event counts a profile keeps (counted back from its newest event's day).
pub const ACTIVITY_DAYS: i64 = 56;
/// Days in the intensity window.
pub const INTENSITY_DAYS: i64 = 28;
const DAY: i64 = 86_400;

static RECORDING: AtomicBool = AtomicBool::new(true);

/// Whether events are recorded into profiles' [`Activity`] (on unless turned off). Only the
/// cdp benchmark turns it off, to measure what the scores cost.
pub fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

pub(crate) fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// The score names, as filters and the profile API show them.
pub const SCORE_NAMES: [&str; 5] = [
    "recency",
    "frequency",
    "intensity",
    "momentum",
    "consistency",
];

/// A profile's activity: what the scores are computed from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Activity {
    /// The earliest event time seen.
    pub first: DateTime<Utc>,
    /// The latest event time seen.
    pub last: DateTime<Utc>,
    /// Day number (days since 1970-01-01, UTC) → events that day; only the
    /// [`ACTIVITY_DAYS`] days up to the newest one are kept.
    pub days: BTreeMap<i64, u32>,
}

/// The day an instant falls on, counted from 1970-01-01 (UTC).
pub fn day_of(t: DateTime<Utc>) -> i64 {
    t.timestamp().div_euclid(DAY)
}

impl Activity {
    /// The activity of one event.
    pub fn of_event(time: DateTime<Utc>) -> Activity {
        Activity {
            first: time,
            last: time,
            days: BTreeMap::from([(day_of(time), 1)]),
        }
    }

    /// Adds `other` in. Commutative and associative: first is the minimum, last the maximum,
    /// days add (saturating), and only the days within [`ACTIVITY_DAYS`] of the newest stay.
    pub fn merge(&mut self, other: &Activity) {
        self.first = self.first.min(other.first);
        self.last = self.last.max(other.last);
        for (day, n) in &other.days {
            let mine = self.days.entry(*day).or_default();
            *mine = mine.saturating_add(*n);
        }
        self.prune();
    }

    fn prune(&mut self) {
        if let Some(newest) = self.days.keys().next_back().copied() {
            self.days = self.days.split_off(&(newest - ACTIVITY_DAYS + 1));
        }
    }

    /// The scores at `now`.
    pub fn scores(&self, now: DateTime<Utc>) -> Scores {
        let today = day_of(now);
        // (age in days, events) for the kept days up to today; later days do not count yet.
        let ages: Vec<(i64, f64)> = self
            .days
            .iter()
            .filter(|(d, _)| **d <= today && today - **d < ACTIVITY_DAYS)
            .map(|(d, n)| (today - d, f64::from(*n)))
            .collect();
        let decayed = |half_life: f64, weight: &dyn Fn(f64) -> f64| -> f64 {
            let sum: f64 = ages
                .iter()
                .map(|(a, n)| weight(*n) * 0.5f64.powf(*a as f64 / half_life))
                .sum();
            sum / full_weight(half_life)
        };

        let since_last = (now - self.last).num_seconds().max(0) as f64 / DAY as f64;
        let recency = 100.0 * 0.5f64.powf(since_last / 7.0);

        let frequency = 100.0 * decayed(14.0, &|_| 1.0);

        let (events, active) = ages
            .iter()
            .filter(|(a, _)| *a < INTENSITY_DAYS)
            .fold((0.0, 0.0), |(e, d), (_, n)| (e + n, d + 1.0));
        let intensity = if active > 0.0 {
            100.0 * (1.0 - 0.5f64.powf(events / active / 4.0))
        } else {
            0.0
        };

        let fast = decayed(3.0, &|n| n);
        let slow = decayed(14.0, &|n| n);
        let momentum = if fast + slow > 0.0 {
            100.0 * fast / (fast + slow)
        } else {
            0.0
        };

        let weeks_known = ((today - day_of(self.first)).max(0) / 7 + 1).min(ACTIVITY_DAYS / 7);
        let mut active_weeks = [false; (ACTIVITY_DAYS / 7) as usize];
        for (a, _) in &ages {
            active_weeks[(a / 7) as usize] = true;
        }
        let active_weeks = active_weeks[..weeks_known as usize]
            .iter()
            .filter(|w| **w)
            .count();
        let consistency = 100.0 * active_weeks as f64 / weeks_known as f64;

        let score = |x: f64| x.round().clamp(0.0, 100.0) as u8;
        Scores {
            recency: score(recency),
            frequency: score(frequency),
            intensity: score(intensity),
            momentum: score(momentum),
            consistency: score(consistency),
        }
    }
}

/// Σ over the kept days of the decay weight `2^(-age / half_life)`: the decayed count of a
/// profile with one event (or one active day) every day.
fn full_weight(half_life: f64) -> f64 {
    (0..ACTIVITY_DAYS)
        .map(|a| 0.5f64.powf(a as f64 / half_life))
        .sum()
}

/// A profile's engagement scores at one moment, each 0–100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scores {
    pub recency: u8,
    pub frequency: u8,
    pub intensity: u8,
    pub momentum: u8,
    pub consistency: u8,
}

impl Scores {
    /// `(name, score)` in [`SCORE_NAMES`] order.
    pub fn pairs(&self) -> [(&'static str, u8); 5] {
        [
            ("recency", self.recency),
            ("frequency", self.frequency),
            ("intensity", self.intensity),
            ("momentum", self.momentum),
            ("consistency", self.consistency),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: i64, hour: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(20_000 * DAY + day * DAY + hour * 3600, 0)
            .unwrap()
    }

    fn activity(events: &[(i64, i64)]) -> Activity {
        let mut a = Activity::of_event(at(events[0].0, events[0].1));
        for (d, h) in &events[1..] {
            a.merge(&Activity::of_event(at(*d, *h)));
        }
        a
    }

    /// Hand-computed: Σ_{a=0}^{55} 2^(-a/14) = (1 - 2^-4) / (1 - 2^(-1/14)) = 19.4080;
    /// Σ_{a=0}^{55} 2^(-a/3) = (1 - 2^(-56/3)) / (1 - 2^(-1/3)) = 4.8473.
    #[test]
    fn decay_weights_match_their_closed_forms() {
        assert!((full_weight(14.0) - 0.9375 / (1.0 - 0.5f64.powf(1.0 / 14.0))).abs() < 1e-9);
        assert!((full_weight(14.0) - 19.4080).abs() < 1e-4);
        assert!((full_weight(3.0) - 4.8473).abs() < 1e-4);
    }

    /// One event, right now: recency 100; frequency 100/19.4080 = 5.15 → 5; intensity
    /// 100·(1 − 2^(−1/4)) = 15.91 → 16; momentum (1/4.8473) / (1/4.8473 + 1/19.4080) =
    /// 0.8002 → 80; consistency 1 active week of 1 → 100.
    #[test]
    fn one_event_now() {
        let a = activity(&[(0, 12)]);
        assert_eq!(
            a.scores(at(0, 12)),
            Scores {
                recency: 100,
                frequency: 5,
                intensity: 16,
                momentum: 80,
                consistency: 100
            }
        );
    }

    /// The same event seen 7 days later: recency 100·2^(−1) = 50; frequency
    /// 100·2^(−7/14)/19.4080 = 3.64 → 4; intensity unchanged (16, still within 28 days);
    /// momentum F = 2^(−7/3)/4.8473 = 0.04090, S = 2^(−1/2)/19.4080 = 0.03643 →
    /// 100·F/(F+S) = 52.89 → 53; consistency: 2 weeks known, 1 active → 50.
    #[test]
    fn one_event_a_week_ago() {
        let a = activity(&[(0, 12)]);
        assert_eq!(
            a.scores(at(7, 12)),
            Scores {
                recency: 50,
                frequency: 4,
                intensity: 16,
                momentum: 53,
                consistency: 50
            }
        );
    }

    /// Every day for 56 days, 4 events a day, seen at the end of the last day (18:00, 6 h
    /// after the last event): recency 100·2^(−0.25/7) = 97.55 → 98; frequency 100 (every kept
    /// day active); intensity 100·(1 − 2^(−4/4)) = 50; momentum: steady activity, F = S →
    /// 50; consistency 8 of 8 weeks → 100.
    #[test]
    fn steady_daily_activity() {
        let events: Vec<(i64, i64)> = (0..56)
            .flat_map(|d| [(d, 0), (d, 3), (d, 6), (d, 12)])
            .collect();
        let a = activity(&events);
        assert_eq!(a.days.len(), 56);
        assert_eq!(
            a.scores(at(55, 18)),
            Scores {
                recency: 98,
                frequency: 100,
                intensity: 50,
                momentum: 50,
                consistency: 100
            }
        );
    }

    /// Rising: nothing for weeks after a first event, then 3 events on each of the last 3
    /// days. Momentum F = 3(1 + 2^(−1/3) + 2^(−2/3))/4.8473 = 1.5000, S = 3(1 + 2^(−1/14) +
    /// 2^(−2/14))/19.4080 = 0.4417 (the first event, 40 days back, adds 2^(−40/3)/4.8473 ≈
    /// 2e-5 and 2^(−40/14)/19.4080 = 0.0071) → 100·1.5000/(1.5000+0.4488) = 76.97 → 77.
    /// Consistency: first event 40 days back → 6 weeks known, 2 active (weeks 0 and 5) → 33.
    #[test]
    fn rising_activity_has_high_momentum() {
        let mut events = vec![(0, 0)];
        events.extend((38..41).flat_map(|d| [(d, 1), (d, 2), (d, 3)]));
        let a = activity(&events);
        let s = a.scores(at(40, 4));
        assert_eq!((s.momentum, s.consistency), (77, 33));
    }

    #[test]
    fn old_days_are_dropped_and_merges_do_not_depend_on_order() {
        let a = activity(&[(0, 0), (100, 0), (30, 0)]);
        let b = activity(&[(30, 0), (0, 0), (100, 0)]);
        assert_eq!(a, b);
        assert_eq!(a.days.keys().copied().collect::<Vec<_>>(), [20_100]);
        assert_eq!((a.first, a.last), (at(0, 0), at(100, 0)));
    }

    #[test]
    fn future_days_do_not_count_yet() {
        let a = activity(&[(10, 0)]);
        let s = a.scores(at(9, 0));
        assert_eq!((s.recency, s.frequency, s.momentum), (100, 0, 0));
    }
}
