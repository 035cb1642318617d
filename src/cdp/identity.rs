//! Identity resolution over one processor batch, in memory: which profile an event joins,
//! new profiles, and merges when an event carries identifiers of several profiles.
//!
//! The resolver starts from what the store holds for the batch's identifiers (the identity
//! rows found and those profiles) and ends with everything the batch must write. It does no
//! I/O, so it is tested on its own.

use std::collections::BTreeSet;

use foldhash::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use tributary_lang::{MappedEvent, Mapping, ProfileState};

use crate::store::{IdentityRow, Profile};

pub type IdentityKey = (String, String);

/// A profile touched by the batch.
#[derive(Debug, Clone)]
pub struct Touched {
    pub profile: Profile,
    /// Created by this batch.
    pub is_new: bool,
    /// Profiles merged into this one during the batch (including ones merged into those).
    pub merged_from: Vec<String>,
    /// Fields whose visible value the batch may have changed (it certainly changed no other).
    pub changed_fields: BTreeSet<String>,
    /// An event of the batch joined it (a loaded profile may only have been looked at).
    joined: bool,
}

#[derive(Debug, Default)]
pub struct Resolver {
    /// (field, value) → live profile id: the store's rows for this batch plus new ones.
    ids: HashMap<IdentityKey, String>,
    /// Identifiers whose profile must be (re)written.
    dirty_ids: HashSet<IdentityKey>,
    /// Live profiles this batch has touched or loaded.
    profiles: HashMap<String, Touched>,
    /// `(merged, survivor)` in the order they happened.
    pub merges: Vec<(String, String)>,
    now: DateTime<Utc>,
}

/// What the batch must write, from [`Resolver::finish`].
#[derive(Debug, Default)]
pub struct Resolved {
    /// Live profiles that events touched (survivors included), in id order.
    pub touched: Vec<Touched>,
    /// Profiles loaded from the store and merged away (their rows must go).
    pub merged_away: Vec<String>,
    pub identities: Vec<IdentityRow>,
    pub merges: Vec<(String, String)>,
}

impl Resolver {
    /// `rows`: the store's identity rows for the batch's identifiers; `profiles`: the profiles
    /// they point at.
    pub fn new(rows: Vec<IdentityRow>, profiles: Vec<Profile>, now: DateTime<Utc>) -> Self {
        let ids = rows
            .into_iter()
            .map(|r| ((r.field, r.value), r.profile_id))
            .collect();
        let profiles = profiles
            .into_iter()
            .map(|p| {
                (
                    p.id.clone(),
                    Touched {
                        profile: p,
                        is_new: false,
                        merged_from: Vec::new(),
                        changed_fields: BTreeSet::new(),
                        joined: false,
                    },
                )
            })
            .collect();
        Resolver {
            ids,
            profiles,
            now,
            ..Default::default()
        }
    }

    /// Applies one mapped event. Returns the id of the profile it joined, or `None` when it
    /// carries no identifier (no profile is made).
    pub fn apply(
        &mut self,
        mapping: &Mapping,
        event: &MappedEvent,
        time: DateTime<Utc>,
    ) -> Option<String> {
        if event.identities.is_empty() {
            return None;
        }
        let mut holders: Vec<String> = Vec::new();
        for key in &event.identities {
            if let Some(id) = self.ids.get(key) {
                if !holders.contains(id) {
                    holders.push(id.clone());
                }
            }
        }
        let target = match holders.len() {
            0 => {
                let id = uuid::Uuid::now_v7().to_string();
                self.profiles.insert(
                    id.clone(),
                    Touched {
                        profile: Profile {
                            id: id.clone(),
                            state: ProfileState::new(),
                            created_at: self.now,
                            updated_at: self.now,
                        },
                        is_new: true,
                        merged_from: Vec::new(),
                        changed_fields: BTreeSet::new(),
                        joined: true,
                    },
                );
                id
            }
            1 => holders.pop().expect("one holder"),
            _ => self.merge(holders),
        };
        for key in &event.identities {
            if self.ids.get(key) != Some(&target) {
                self.ids.insert(key.clone(), target.clone());
                self.dirty_ids.insert(key.clone());
            }
        }
        let touched = self
            .profiles
            .get_mut(&target)
            .expect("identity rows point at loaded profiles");
        touched.joined = true;
        let changed = &mut touched.changed_fields;
        touched
            .profile
            .state
            .apply_event_visible(mapping, event, time, |field| {
                if !changed.contains(field) {
                    changed.insert(field.to_owned());
                }
            });
        touched.profile.updated_at = self.now;
        Some(target)
    }

    /// Merges the holders into the oldest (by creation, then id); returns the survivor.
    fn merge(&mut self, holders: Vec<String>) -> String {
        let survivor = holders
            .iter()
            .min_by(|a, b| {
                let (pa, pb) = (&self.profiles[*a].profile, &self.profiles[*b].profile);
                (pa.created_at, &pa.id).cmp(&(pb.created_at, &pb.id))
            })
            .expect("at least two holders")
            .clone();
        for loser in holders.into_iter().filter(|h| *h != survivor) {
            let gone = self.profiles.remove(&loser).expect("holder is loaded");
            let s = self
                .profiles
                .get_mut(&survivor)
                .expect("survivor is loaded");
            s.profile.state.merge(&gone.profile.state);
            s.profile.updated_at = self.now;
            s.changed_fields
                .extend(gone.profile.state.fields.keys().cloned());
            s.changed_fields.extend(gone.changed_fields);
            if !gone.is_new {
                s.merged_from.push(loser.clone());
            }
            s.merged_from.extend(gone.merged_from);
            for (key, holder) in self.ids.iter_mut() {
                if *holder == loser {
                    *holder = survivor.clone();
                    self.dirty_ids.insert(key.clone());
                }
            }
            self.merges.push((loser, survivor.clone()));
        }
        survivor
    }

    pub fn finish(self) -> Resolved {
        let mut merged_away: Vec<String> = Vec::new();
        let mut touched: Vec<Touched> = Vec::new();
        for (_, t) in self.profiles {
            merged_away.extend(t.merged_from.iter().cloned());
            if t.is_new || !t.merged_from.is_empty() {
                touched.push(t);
                continue;
            }
            // Loaded and never joined: unchanged. Joined ones are written even when nothing
            // visible changed: merge states (times of `latest`, …) may have.
            if t.joined {
                touched.push(t);
            }
        }
        touched.sort_by(|a, b| a.profile.id.cmp(&b.profile.id));
        merged_away.sort();
        let mut identities: Vec<IdentityRow> = self
            .dirty_ids
            .into_iter()
            .map(|key| {
                let profile_id = self.ids[&key].clone();
                IdentityRow {
                    field: key.0,
                    value: key.1,
                    profile_id,
                }
            })
            .collect();
        identities.sort();
        Resolved {
            touched,
            merged_away,
            identities,
            merges: self.merges,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tributary_lang::parse_mapping;

    fn mapping() -> Mapping {
        parse_mapping(
            "SELECT email(email) AS email KIND string, user_id AS user_id KIND string,
                    count(*) AS visits KIND int, name AS name KIND string
             FROM web INTO user BY email OR user_id",
        )
        .unwrap()
    }

    fn run(resolver: &mut Resolver, m: &Mapping, ev: serde_json::Value) -> Option<String> {
        let mapped = m.apply(ev.as_object().unwrap(), Utc::now()).unwrap();
        resolver.apply(m, &mapped, Utc::now())
    }

    #[test]
    fn events_join_by_any_identifier_and_merge_profiles() {
        let m = mapping();
        let mut r = Resolver::new(vec![], vec![], Utc::now());
        let a = run(&mut r, &m, json!({"email": "A@x.io"})).unwrap();
        let b = run(&mut r, &m, json!({"user_id": "u1"})).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            run(&mut r, &m, json!({"email": "a@x.io", "name": "Ann"})),
            Some(a.clone())
        );
        assert_eq!(run(&mut r, &m, json!({"name": "nobody"})), None);
        // One event carries both: the two profiles become one (the older survives).
        let merged = run(&mut r, &m, json!({"email": "a@x.io", "user_id": "u1"})).unwrap();
        assert_eq!(merged, a);
        assert_eq!(r.merges, [(b.clone(), a.clone())]);
        assert_eq!(run(&mut r, &m, json!({"user_id": "u1"})), Some(a.clone()));
        let out = r.finish();
        assert_eq!(out.touched.len(), 1);
        let fields = out.touched[0].profile.state.to_json();
        assert_eq!(fields["visits"], 5);
        assert_eq!(fields["name"], "Ann");
        // `b` was created in this batch, so nothing in the store has to be deleted.
        assert!(out.merged_away.is_empty());
        assert!(out.identities.iter().all(|i| i.profile_id == a));
        assert_eq!(out.identities.len(), 2);
    }

    #[test]
    fn stored_profiles_merge_and_their_identifiers_move_to_the_survivor() {
        let m = mapping();
        let old = |id: &str, secs: i64| Profile {
            id: id.into(),
            state: ProfileState::new(),
            created_at: DateTime::from_timestamp(secs, 0).unwrap(),
            updated_at: DateTime::from_timestamp(secs, 0).unwrap(),
        };
        let rows = vec![
            IdentityRow {
                field: "email".into(),
                value: "a@x.io".into(),
                profile_id: "p-new".into(),
            },
            IdentityRow {
                field: "user_id".into(),
                value: "u1".into(),
                profile_id: "p-old".into(),
            },
        ];
        let mut r = Resolver::new(rows, vec![old("p-new", 200), old("p-old", 100)], Utc::now());
        let got = run(&mut r, &m, json!({"email": "a@x.io", "user_id": "u1"})).unwrap();
        assert_eq!(got, "p-old");
        let out = r.finish();
        assert_eq!(out.merged_away, ["p-new"]);
        assert_eq!(out.merges, [("p-new".to_string(), "p-old".to_string())]);
        assert_eq!(out.touched[0].merged_from, ["p-new"]);
        assert_eq!(
            out.identities,
            [IdentityRow {
                field: "email".into(),
                value: "a@x.io".into(),
                profile_id: "p-old".into()
            }]
        );
    }
}
