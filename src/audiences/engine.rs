//! The membership engine: compares a profile's memberships before and after a change and
//! writes the differences as membership rows and audience changes (the outbox) into the same
//! [`ProfileBatch`] as the profile change itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{AudienceSet, Members};
use crate::store::{ChangeKind, Membership, NewAudienceChange, ProfileBatch};

/// Memberships by profile id, as vectors over `set.list`. Rows of unknown audiences are
/// ignored.
pub fn members_by_profile(set: &AudienceSet, rows: &[Membership]) -> HashMap<String, Members> {
    let mut out: HashMap<String, Members> = HashMap::new();
    for m in rows {
        if let Some(i) = set.index_of_id(&m.audience_id) {
            out.entry(m.profile_id.clone())
                .or_insert_with(|| vec![false; set.len()])[i] = true;
        }
    }
    out
}

/// When each `(profile id, audience id)` membership began, for the exits' `entered_at`.
pub type EnteredAt = HashMap<(String, String), DateTime<Utc>>;

/// When a batch's changes happen, and when the memberships they end began.
#[derive(Clone, Copy)]
pub struct ChangeTimes<'a> {
    pub at: DateTime<Utc>,
    pub entered: &'a EnteredAt,
}

pub fn entered_at(rows: &[Membership]) -> EnteredAt {
    rows.iter()
        .map(|m| ((m.profile_id.clone(), m.audience_id.clone()), m.entered_at))
        .collect()
}

/// Adds what changed for `profile_id` (`old` → `new`) to `batch`.
///
/// `merged_away` are profiles merged into it, with their memberships. A merged-away id no
/// longer exists, so it exits every audience it was in (its rows go with it). Where the
/// merged person is in that audience, the survivor then enters it — again, if it was already
/// a member — so that a consumer keyed by profile id and one keyed by an identifier (whose
/// merged-away exit resolves to the survivor's fields) both end in the right state. Order per
/// audience: the merged ids' exits, then the survivor's change.
pub fn record_changes(
    batch: &mut ProfileBatch,
    set: &AudienceSet,
    profile_id: &str,
    old: &[bool],
    new: &[bool],
    merged_away: &[(String, Members)],
    times: ChangeTimes<'_>,
) {
    let ChangeTimes { at, entered } = times;
    for (i, a) in set.list.iter().enumerate() {
        let change = |profile_id: &str, kind| NewAudienceChange {
            audience_id: a.audience.id.clone(),
            audience_slug: a.audience.slug.clone(),
            profile_id: profile_id.to_owned(),
            kind,
            at,
            entered_at: (kind == ChangeKind::Exit)
                .then(|| {
                    entered
                        .get(&(profile_id.to_owned(), a.audience.id.clone()))
                        .copied()
                })
                .flatten(),
        };
        let mut loser_exited = false;
        for (loser, loser_old) in merged_away {
            if loser_old[i] {
                batch.changes.push(change(loser, ChangeKind::Exit));
                loser_exited = true;
            }
        }
        match (old[i], new[i]) {
            (false, true) => {
                batch.memberships_added.push(Membership {
                    audience_id: a.audience.id.clone(),
                    profile_id: profile_id.to_owned(),
                    entered_at: at,
                });
                batch.changes.push(change(profile_id, ChangeKind::Enter));
            }
            (true, false) => {
                batch
                    .memberships_removed
                    .push((a.audience.id.clone(), profile_id.to_owned()));
                batch.changes.push(change(profile_id, ChangeKind::Exit));
            }
            (true, true) if loser_exited => {
                batch.changes.push(change(profile_id, ChangeKind::Enter));
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audiences::tests::aud;

    #[test]
    fn entries_and_exits_become_rows_and_changes() {
        let set = AudienceSet::new(vec![aud("a", "x > 1"), aud("b", "y > 1")]).unwrap();
        let mut batch = ProfileBatch::default();
        record_changes(
            &mut batch,
            &set,
            "p",
            &[true, false],
            &[false, true],
            &[],
            ChangeTimes {
                at: Utc::now(),
                entered: &EnteredAt::new(),
            },
        );
        assert_eq!(
            batch.memberships_removed,
            [("id-a".to_string(), "p".to_string())]
        );
        assert_eq!(batch.memberships_added.len(), 1);
        assert_eq!(
            batch
                .changes
                .iter()
                .map(|c| (c.audience_slug.as_str(), c.kind))
                .collect::<Vec<_>>(),
            [("a", ChangeKind::Exit), ("b", ChangeKind::Enter)]
        );
    }

    #[test]
    fn merged_ids_exit_and_the_survivor_enters_where_the_person_is_in() {
        let set = AudienceSet::new(vec![
            aud("a", "x > 1"),
            aud("b", "y > 1"),
            aud("c", "z > 1"),
        ])
        .unwrap();
        let mut batch = ProfileBatch::default();
        // The loser was in a, b; the survivor in a, c; the merged person is in a and c.
        record_changes(
            &mut batch,
            &set,
            "survivor",
            &[true, false, true],
            &[true, false, true],
            &[("loser".to_string(), vec![true, true, false])],
            ChangeTimes {
                at: Utc::now(),
                entered: &EnteredAt::new(),
            },
        );
        assert_eq!(
            batch
                .changes
                .iter()
                .map(|c| (c.audience_slug.as_str(), c.profile_id.as_str(), c.kind))
                .collect::<Vec<_>>(),
            [
                ("a", "loser", ChangeKind::Exit),
                ("a", "survivor", ChangeKind::Enter),
                ("b", "loser", ChangeKind::Exit),
            ]
        );
        assert!(batch.memberships_added.is_empty());
    }
}
