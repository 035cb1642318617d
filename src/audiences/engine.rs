//! The membership engine: compares a profile's memberships before and after a change and
//! writes the differences as membership rows and audience changes (the outbox) into the same
//! [`ProfileBatch`] as the profile change itself.

use chrono::{DateTime, Utc};

use super::{AudienceSet, Members};
use crate::store::{ChangeKind, MemberList, Membership, NewAudienceChange, ProfileBatch};

/// One profile's memberships while a batch is computed: `(audience index into
/// `AudienceSet::list`, when it entered)`, ordered by index. Indices rather than audience ids
/// because the processor handles thousands of profiles per batch, each in several audiences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemberTimes(Vec<(usize, DateTime<Utc>)>);

impl MemberTimes {
    /// Membership flags over `set.list`.
    pub fn flags(&self, set: &AudienceSet) -> Members {
        let mut flags = vec![false; set.len()];
        for (i, _) in &self.0 {
            flags[*i] = true;
        }
        flags
    }

    /// When the profile entered audience `i`, if it is a member.
    pub fn entered(&self, i: usize) -> Option<DateTime<Utc>> {
        self.0
            .binary_search_by_key(&i, |(j, _)| *j)
            .ok()
            .map(|k| self.0[k].1)
    }

    /// From a member list as the store keeps it. Entries of unknown audiences are ignored.
    pub fn from_list(set: &AudienceSet, list: &MemberList) -> MemberTimes {
        let mut out: Vec<(usize, DateTime<Utc>)> = list
            .iter()
            .filter_map(|(id, at)| Some((set.index_of_id(id)?, *at)))
            .collect();
        out.sort_unstable_by_key(|(i, _)| *i);
        out.dedup_by_key(|(i, _)| *i);
        MemberTimes(out)
    }

    /// As the store keeps it.
    pub fn to_list(&self, set: &AudienceSet) -> MemberList {
        self.0
            .iter()
            .map(|(i, at)| (set.list[*i].key.clone(), *at))
            .collect()
    }
}

/// Adds what changed for `profile_id` (`old` → `new`) to `batch` and returns its memberships
/// after the change (members staying keep their entry time; new ones entered `at`).
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
    old: &MemberTimes,
    new: &[bool],
    merged_away: &[(String, MemberTimes)],
    at: DateTime<Utc>,
) -> MemberTimes {
    let mut after = Vec::with_capacity(old.0.len() + 2);
    // Walks the audiences once, with a cursor into each (sorted) list instead of a search
    // per audience: most of a profile's 100 audiences neither changed nor were merged.
    let mut was_iter = old.0.iter().peekable();
    let mut losers: Vec<_> = merged_away
        .iter()
        .map(|(id, list)| (id.as_str(), list.0.iter().peekable()))
        .collect();
    for (i, a) in set.list.iter().enumerate() {
        let was = was_iter.next_if(|(j, _)| *j == i).map(|(_, t)| *t);
        let change = |profile_id: &str, kind, entered_at| NewAudienceChange {
            audience_id: a.audience.id.clone(),
            audience_slug: a.audience.slug.clone(),
            profile_id: profile_id.to_owned(),
            kind,
            at,
            entered_at,
        };
        let mut loser_exited = false;
        for (loser, list) in &mut losers {
            if let Some((_, entered)) = list.next_if(|(j, _)| *j == i) {
                batch
                    .changes
                    .push(change(loser, ChangeKind::Exit, Some(*entered)));
                loser_exited = true;
            }
        }
        match (was, new[i]) {
            (None, true) => {
                batch.memberships_added.push(Membership {
                    audience_id: a.audience.id.clone(),
                    profile_id: profile_id.to_owned(),
                    entered_at: at,
                });
                batch
                    .changes
                    .push(change(profile_id, ChangeKind::Enter, None));
                after.push((i, at));
            }
            (Some(entered), false) => {
                batch
                    .memberships_removed
                    .push((a.audience.id.clone(), profile_id.to_owned()));
                batch
                    .changes
                    .push(change(profile_id, ChangeKind::Exit, Some(entered)));
            }
            (Some(entered), true) => {
                if loser_exited {
                    batch
                        .changes
                        .push(change(profile_id, ChangeKind::Enter, None));
                }
                after.push((i, entered));
            }
            (None, false) => {}
        }
    }
    MemberTimes(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audiences::tests::aud;

    fn member_of(flags: &[bool], at: DateTime<Utc>) -> MemberTimes {
        MemberTimes(
            flags
                .iter()
                .enumerate()
                .filter(|(_, m)| **m)
                .map(|(i, _)| (i, at))
                .collect(),
        )
    }

    #[test]
    fn entries_and_exits_become_rows_and_changes() {
        let set = AudienceSet::new(vec![aud("a", "x > 1"), aud("b", "y > 1")]).unwrap();
        let mut batch = ProfileBatch::default();
        let (then, now) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        let after = record_changes(
            &mut batch,
            &set,
            "p",
            &member_of(&[true, false], then),
            &[false, true],
            &[],
            now,
        );
        assert_eq!(after, member_of(&[false, true], now));
        assert_eq!(batch.changes[0].entered_at, Some(then));
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
        let (then, now) = (Utc::now() - chrono::Duration::days(1), Utc::now());
        let after = record_changes(
            &mut batch,
            &set,
            "survivor",
            &member_of(&[true, false, true], then),
            &[true, false, true],
            &[("loser".to_string(), member_of(&[true, true, false], then))],
            now,
        );
        // The survivor's memberships did not change: they keep their entry times.
        assert_eq!(after, member_of(&[true, false, true], then));
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
