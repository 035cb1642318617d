//! Shard lineage: which shards a job knows, which may be read now, and where a newly found shard
//! starts. Pure functions, so the parent-before-child rules are tested without a network.
//!
//! The rule (Amazon's KCL follows it too): a child shard is read only after every parent has been
//! read to its end, so records of one partition key stay in order across splits and merges.

use std::collections::{BTreeMap, HashSet};

use crate::kinesis::api::ShardInfo;
use crate::store::{ShardCheckpoint, ShardState, StartPosition};

/// Checkpoints for shards in `listed` that the job does not know yet.
///
/// On a job's first listing the job's `start` applies: for `latest`, shards already closed are
/// skipped (registered as finished) and open ones are stored as starting at `now` (an
/// `at_timestamp` position; the run that registers them reads them from the tip, see the
/// consumer's `start_at_tip`); for `trim_horizon` and `at_timestamp` every shard uses that
/// position, read in lineage order. Shards found later are children created while the job ran:
/// they always start at their oldest record, or records written between the split and our first
/// read would be lost.
///
/// Why not store `latest` as such: a shard without a checkpoint (nothing read from it yet) would
/// take a new LATEST iterator after every pause or restart and silently skip every record that
/// arrived meanwhile. A fixed instant means the same thing at every (re)start.
pub fn register_new(
    listed: &[ShardInfo],
    known: &BTreeMap<String, ShardCheckpoint>,
    start: &StartPosition,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<ShardCheckpoint> {
    let first_listing = known.is_empty();
    let listed_ids: HashSet<&str> = listed.iter().map(|s| s.shard_id.as_str()).collect();
    listed
        .iter()
        .filter(|s| !known.contains_key(&s.shard_id))
        .map(|s| {
            let parents = s.parents();
            let (state, start_position) = match (first_listing, start) {
                (true, StartPosition::Latest) if s.ending_sequence_number.is_some() => {
                    (ShardState::Finished, StartPosition::Latest)
                }
                (true, StartPosition::Latest) => {
                    (ShardState::Reading, StartPosition::AtTimestamp(now))
                }
                (true, other) => (
                    waiting_or_reading(&parents, &listed_ids, known),
                    other.clone(),
                ),
                (false, _) => (
                    waiting_or_reading(&parents, &listed_ids, known),
                    StartPosition::TrimHorizon,
                ),
            };
            ShardCheckpoint::unread(s.shard_id.clone(), parents, state, start_position)
        })
        .collect()
}

fn waiting_or_reading(
    parents: &[String],
    listed: &HashSet<&str>,
    known: &BTreeMap<String, ShardCheckpoint>,
) -> ShardState {
    let pending = parents.iter().any(|p| match known.get(p) {
        Some(cp) => cp.state != ShardState::Finished,
        None => listed.contains(p.as_str()),
    });
    if pending {
        ShardState::WaitingForParent
    } else {
        ShardState::Reading
    }
}

/// Shards that may be read now: not finished, and every parent finished — or gone from both
/// the listing and the job (trimmed away by retention before the job saw it).
pub fn ready(known: &BTreeMap<String, ShardCheckpoint>, listed: &[ShardInfo]) -> Vec<String> {
    let listed_ids: HashSet<&str> = listed.iter().map(|s| s.shard_id.as_str()).collect();
    known
        .values()
        .filter(|cp| cp.state != ShardState::Finished)
        .filter(|cp| {
            cp.parent_shard_ids.iter().all(|p| match known.get(p) {
                Some(parent) => parent.state == ShardState::Finished,
                None => !listed_ids.contains(p.as_str()),
            })
        })
        .map(|cp| cp.shard_id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, parents: &[&str], closed: bool) -> ShardInfo {
        ShardInfo {
            shard_id: id.into(),
            parent_shard_id: parents.first().map(|p| p.to_string()),
            adjacent_parent_shard_id: parents.get(1).map(|p| p.to_string()),
            ending_sequence_number: closed.then(|| "99".into()),
        }
    }

    fn as_map(cps: Vec<ShardCheckpoint>) -> BTreeMap<String, ShardCheckpoint> {
        cps.into_iter().map(|c| (c.shard_id.clone(), c)).collect()
    }

    /// s0 split into s1+s2; s2 merged with s3 into s4.
    fn resharded() -> Vec<ShardInfo> {
        vec![
            shard("s0", &[], true),
            shard("s1", &["s0"], false),
            shard("s2", &["s0"], true),
            shard("s3", &[], true),
            shard("s4", &["s2", "s3"], false),
        ]
    }

    fn now() -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .into()
    }

    #[test]
    fn trim_horizon_reads_parents_first() {
        let listed = resharded();
        let mut known = as_map(register_new(
            &listed,
            &BTreeMap::new(),
            &StartPosition::TrimHorizon,
            now(),
        ));
        assert_eq!(ready(&known, &listed), ["s0", "s3"]);
        assert_eq!(known["s4"].state, ShardState::WaitingForParent);

        known.get_mut("s0").unwrap().state = ShardState::Finished;
        assert_eq!(ready(&known, &listed), ["s1", "s2", "s3"]);
        known.get_mut("s2").unwrap().state = ShardState::Finished;
        assert_eq!(
            ready(&known, &listed),
            ["s1", "s3"],
            "s4 still waits for its other parent s3"
        );
        known.get_mut("s3").unwrap().state = ShardState::Finished;
        assert_eq!(ready(&known, &listed), ["s1", "s4"]);
    }

    #[test]
    fn latest_skips_closed_shards_and_starts_open_ones_at_the_jobs_start() {
        let listed = resharded();
        let known = as_map(register_new(
            &listed,
            &BTreeMap::new(),
            &StartPosition::Latest,
            now(),
        ));
        assert_eq!(ready(&known, &listed), ["s1", "s4"]);
        // A fixed instant, not LATEST: a restart before the first record must not skip ahead.
        for id in ["s1", "s4"] {
            assert_eq!(known[id].start_position, StartPosition::AtTimestamp(now()));
        }
    }

    #[test]
    fn children_found_later_start_at_their_oldest_record() {
        let before = vec![shard("s0", &[], false)];
        let known = as_map(register_new(
            &before,
            &BTreeMap::new(),
            &StartPosition::Latest,
            now(),
        ));
        let after = vec![
            shard("s0", &[], true),
            shard("s1", &["s0"], false),
            shard("s2", &["s0"], false),
        ];
        let new = register_new(&after, &known, &StartPosition::Latest, now());
        assert_eq!(new.len(), 2);
        assert!(new
            .iter()
            .all(|c| c.start_position == StartPosition::TrimHorizon));
        assert!(new.iter().all(|c| c.state == ShardState::WaitingForParent));
    }

    #[test]
    fn parents_trimmed_away_do_not_block_children() {
        let listed = vec![shard("s5", &["gone"], false)];
        let known = as_map(register_new(
            &listed,
            &BTreeMap::new(),
            &StartPosition::TrimHorizon,
            now(),
        ));
        assert_eq!(known["s5"].state, ShardState::Reading);
        assert_eq!(ready(&known, &listed), ["s5"]);
    }
}
