//! Member lists kept in the profile row (migration 0005): `profiles.audience_nums` holds the
//! numbers (`audiences.num`) of a profile's audiences in ascending order, `entered_ats` when it
//! entered each; NULL when it has none. A batch writes each profile's list with its state, one
//! row version per profile, where a row per membership cost ~5 inserts or deletes per event
//! (bench/README.md, "Member lists in the profile row").
//!
//! Numbers are never reused, so entries of a deleted audience are left in the lists it was in
//! (deleting them would rewrite every member) and skipped by every read: a list is always read
//! with the live audiences ([`Audiences`]), and rewritten without them.
//!
//! An audience's members are found through a GIN index on `audience_nums`, or by walking the
//! profiles in id order when the audience holds a large share of them (see [`members_after`]).

use std::collections::HashMap;
use std::sync::Arc;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::rows::get;
use super::{limit, query, query_opt};
use crate::store::*;

/// A member list as stored: `(audience num, entered at)`, by num.
pub(super) type StoredList = Vec<(i64, Timestamp)>;

/// The audiences that exist: their numbers and ids.
#[derive(Default)]
pub(super) struct Audiences {
    by_id: HashMap<String, i64>,
    by_num: HashMap<i64, Arc<str>>,
}

impl Audiences {
    pub(super) async fn load(client: &impl GenericClient) -> StoreResult<Self> {
        let mut audiences = Self::default();
        for row in query(client, "SELECT id, num FROM audiences", &[]).await? {
            let (id, num): (String, i64) = (get(&row, 0)?, get(&row, 1)?);
            audiences.by_num.insert(num, Arc::from(id.as_str()));
            audiences.by_id.insert(id, num);
        }
        Ok(audiences)
    }

    pub(super) fn num(&self, audience_id: &str) -> Option<i64> {
        self.by_id.get(audience_id).copied()
    }

    /// The id of audience `num`, if it exists.
    pub(super) fn id(&self, num: i64) -> Option<&Arc<str>> {
        self.by_num.get(&num)
    }

    /// A stored list with the audiences that exist, as ids.
    pub(super) fn member_list(&self, stored: StoredList) -> MemberList {
        stored
            .into_iter()
            .filter_map(|(num, at)| Some((self.id(num)?.clone(), at)))
            .collect()
    }

    /// `list` in its stored form: audiences that exist, by num, the first entry of an audience
    /// named twice.
    pub(super) fn stored(&self, list: &MemberList) -> StoredList {
        let mut stored: StoredList = Vec::with_capacity(list.len());
        for (audience_id, at) in list {
            if let Some(num) = self.num(audience_id) {
                if !stored.iter().any(|(n, _)| *n == num) {
                    stored.push((num, *at));
                }
            }
        }
        stored.sort_by_key(|(num, _)| *num);
        stored
    }

    /// `stored` without the entries of audiences that no longer exist.
    pub(super) fn live(&self, mut stored: StoredList) -> StoredList {
        stored.retain(|(num, _)| self.by_num.contains_key(num));
        stored
    }
}

/// The stored list in columns `nums` and `ats` (`audience_nums`, `entered_ats`) of `row`.
pub(super) fn stored_list(row: &Row, nums: usize, ats: usize) -> StoreResult<StoredList> {
    let audience_nums: Option<Vec<i64>> = get(row, nums)?;
    let entered_ats: Option<Vec<Timestamp>> = get(row, ats)?;
    let (audience_nums, entered_ats) = (
        audience_nums.unwrap_or_default(),
        entered_ats.unwrap_or_default(),
    );
    if audience_nums.len() != entered_ats.len() {
        let id: String = get(row, 0)?;
        return Err(StoreError::Corrupt(format!(
            "member list of profile {id}: {} audiences, {} entry times",
            audience_nums.len(),
            entered_ats.len()
        )));
    }
    Ok(audience_nums.into_iter().zip(entered_ats).collect())
}

/// Member lists of many profiles as statement parameters: every list's entries in two flat
/// arrays, and each profile's slice of them (`lo`, `hi`: 1-based, inclusive; NULL for a
/// profile whose list is left as stored). An SQL array of arrays must be rectangular.
#[derive(Default)]
pub(super) struct ListColumns {
    pub lo: Vec<Option<i32>>,
    pub hi: Vec<Option<i32>>,
    pub nums: Vec<i64>,
    pub ats: Vec<Timestamp>,
}

impl ListColumns {
    /// Adds the next profile's list (`None`: left as stored).
    pub(super) fn push(&mut self, list: Option<&StoredList>) {
        let Some(list) = list else {
            self.lo.push(None);
            self.hi.push(None);
            return;
        };
        self.lo.push(Some(slice_bound(self.nums.len() + 1)));
        for (num, at) in list {
            self.nums.push(*num);
            self.ats.push(*at);
        }
        self.hi.push(Some(slice_bound(self.nums.len())));
    }
}

fn slice_bound(n: usize) -> i32 {
    i32::try_from(n).expect("a batch holds fewer than 2^31 memberships")
}

/// What an audience's membership looks like to a listing: its number, its member count and
/// the profiles' count as the planner last estimated it, or, never estimated (no VACUUM or
/// ANALYZE yet), from the table's size at ~500 bytes a profile (636 in the cdp bench's
/// database, dead row versions included).
const AUDIENCE_SIZE: &str = "
SELECT a.num, a.member_count,
       CASE WHEN c.reltuples >= 0 THEN c.reltuples::float8
            ELSE pg_relation_size(c.oid) / 500.0::float8 END
  FROM audiences a, pg_class c
 WHERE a.id = $1 AND c.oid = 'profiles'::regclass";

/// Members found through the GIN index: every member is visited, then the page sorted out.
/// (`OFFSET 0` keeps `id > $2` out of the scan, where it would add a bitmap of the primary key
/// over every later profile.)
const MEMBERS_BY_INDEX: &str = "
SELECT m.id, m.entered_ats[array_position(m.audience_nums, $1)]
  FROM (SELECT id, audience_nums, entered_ats FROM profiles
         WHERE audience_nums @> ARRAY[$1::int8] OFFSET 0) m
 WHERE m.id > $2
 ORDER BY m.id LIMIT $3";

/// Members found by walking profiles in id order: stops once the page is full.
const MEMBERS_BY_WALK: &str = "
SELECT id, entered_ats[array_position(audience_nums, $1)]
  FROM profiles
 WHERE id > $2 AND $1 = ANY(audience_nums)
 ORDER BY id LIMIT $3";

/// A member found through the index costs about this many profiles passed by the walk
/// (`EXPLAIN ANALYZE` on the cdp bench's database: 4–6 µs against 0.5 µs).
const INDEX_COST_IN_WALKED_PROFILES: f64 = 10.0;

/// Members of `audience_id` with profile id after `after`, in profile id order.
///
/// Through the index a page costs the whole audience (N members); the walk costs the profiles
/// it passes, about `page × P / N` of the P profiles. The walk is taken when that is less,
/// i.e. `c × N² > page × P` (`c`: [`INDEX_COST_IN_WALKED_PROFILES`]): then paging through a
/// large audience costs one pass over the profiles, and a small one is not looked for among
/// everyone.
pub(super) async fn members_after(
    client: &impl GenericClient,
    audience_id: &str,
    after: &str,
    page: u32,
) -> StoreResult<Vec<Membership>> {
    let Some(size) = query_opt(client, AUDIENCE_SIZE, &[&audience_id]).await? else {
        return Ok(Vec::new());
    };
    let (num, members, profiles): (i64, i64, f64) =
        (get(&size, 0)?, get(&size, 1)?, get(&size, 2)?);
    let profiles = profiles.max(members as f64);
    let walk =
        INDEX_COST_IN_WALKED_PROFILES * (members as f64).powi(2) > f64::from(page) * profiles;
    let sql = if walk {
        MEMBERS_BY_WALK
    } else {
        MEMBERS_BY_INDEX
    };
    let rows = query(client, sql, &[&num, &after, &limit(page)]).await?;
    rows.iter()
        .map(|r| {
            Ok(Membership {
                audience_id: audience_id.to_owned(),
                profile_id: get(r, 0)?,
                entered_at: get(r, 1)?,
            })
        })
        .collect()
}
