//! Profiles, their identity index, memberships and the processor's cursor in PostgreSQL.
//!
//! A processor batch is a handful of set-based statements (`UNNEST` arrays, one round trip
//! each) whatever its size; its audience changes go to the outbox last, so the outbox's lock is
//! held only for that insert and the commit.

use super::lease::check_fence;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Utc;
use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use tributary_lang::ProfileState;

use super::event_log::MAX_EVENT_SEQ;
use super::outbox::insert_changes;
use super::rows::*;
use super::{db, execute, limit, not_found, query, query_one, query_opt, PostgresStore};
use crate::store::*;

/// A profile row with its member list: audience ids and entry times in audience creation order
/// (NULL arrays when it has none).
const PROFILES_WITH_MEMBERS: &str = "
SELECT p.id, p.state, p.created_at, p.updated_at, ml.audience_ids, ml.entered_ats
  FROM profiles p
  LEFT JOIN LATERAL (
      SELECT array_agg(m.audience_id ORDER BY a.num) AS audience_ids,
             array_agg(m.entered_at ORDER BY a.num) AS entered_ats
        FROM memberships m JOIN audiences a ON a.id = m.audience_id
       WHERE m.profile_id = p.id
  ) ml ON true";

fn profile_from_row(r: &Row) -> StoreResult<Profile> {
    let id: String = get(r, 0)?;
    let state = ProfileState::decode(get(r, 1)?)
        .map_err(|e| StoreError::Corrupt(format!("profile {id} state: {e}")))?;
    Ok(Profile {
        state,
        created_at: get(r, 2)?,
        updated_at: get(r, 3)?,
        id,
    })
}

/// One `Arc<str>` per audience id, shared by every member list read in one call (a page holds
/// thousands of memberships of a few audiences).
#[derive(Default)]
struct SharedIds(HashMap<String, Arc<str>>);

impl SharedIds {
    fn get(&mut self, id: String) -> Arc<str> {
        self.0
            .entry(id)
            .or_insert_with_key(|id| Arc::from(id.as_str()))
            .clone()
    }
}

/// A row of [`PROFILES_WITH_MEMBERS`].
fn profile_with_members(r: &Row, ids: &mut SharedIds) -> StoreResult<(Profile, MemberList)> {
    let profile = profile_from_row(r)?;
    let audience_ids: Option<Vec<String>> = get(r, 4)?;
    let entered: Option<Vec<Timestamp>> = get(r, 5)?;
    let members = audience_ids
        .unwrap_or_default()
        .into_iter()
        .zip(entered.unwrap_or_default())
        .map(|(audience_id, entered_at)| (ids.get(audience_id), entered_at))
        .collect();
    Ok((profile, members))
}

fn membership_from_row(r: &Row) -> StoreResult<Membership> {
    Ok(Membership {
        audience_id: get(r, 0)?,
        profile_id: get(r, 1)?,
        entered_at: get(r, 2)?,
    })
}

/// Member count changes per audience id, written once at the end of a batch.
#[derive(Default)]
struct MemberCounts(HashMap<String, i64>);

impl MemberCounts {
    /// Counts the delta in the second column for the audience id in the first, per row.
    fn add_signed_rows(&mut self, rows: &[Row]) -> StoreResult<()> {
        for row in rows {
            *self.0.entry(get(row, 0)?).or_default() += get::<i64>(row, 1)?;
        }
        Ok(())
    }

    /// Counts `delta` for each audience id in the first column of `rows`.
    fn add_rows(&mut self, rows: &[Row], delta: i64) -> StoreResult<()> {
        for row in rows {
            *self.0.entry(get(row, 0)?).or_default() += delta;
        }
        Ok(())
    }

    async fn write(self, tx: &Transaction<'_>) -> StoreResult<()> {
        let (ids, deltas): (Vec<String>, Vec<i64>) =
            self.0.into_iter().filter(|(_, d)| *d != 0).unzip();
        if ids.is_empty() {
            return Ok(());
        }
        execute(
            tx,
            "UPDATE audiences a SET member_count = a.member_count + d.delta
               FROM UNNEST($1::text[], $2::int8[]) AS d(id, delta) WHERE a.id = d.id",
            &[&ids, &deltas],
        )
        .await?;
        Ok(())
    }
}

/// Creates or rewrites the batch's profiles (the last write of an id wins). In id order, as
/// every batch locks rows: two batches never wait for each other in a cycle.
async fn upsert_profiles(tx: &Transaction<'_>, upserts: &[ProfileWrite]) -> StoreResult<()> {
    let mut last_of: BTreeMap<&str, &ProfileWrite> = BTreeMap::new();
    for write in upserts {
        last_of.insert(&write.profile.id, write);
    }
    if last_of.is_empty() {
        return Ok(());
    }
    let writes: Vec<&ProfileWrite> = last_of.into_values().collect();
    let ids: Vec<&str> = writes.iter().map(|w| w.profile.id.as_str()).collect();
    let states: Vec<&[u8]> = writes.iter().map(|w| w.encoded_state.as_slice()).collect();
    let created: Vec<Timestamp> = writes.iter().map(|w| w.profile.created_at).collect();
    let updated: Vec<Timestamp> = writes.iter().map(|w| w.profile.updated_at).collect();
    query(
        tx,
        "INSERT INTO profiles (id, state, created_at, updated_at)
         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::timestamptz[], $4::timestamptz[])
         ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
        &[&ids, &states, &created, &updated],
    )
    .await?;
    Ok(())
}

/// `(audience id, profile id)` pairs as two columns.
#[derive(Default)]
struct Pairs<'a> {
    audience_ids: Vec<&'a str>,
    profile_ids: Vec<&'a str>,
}

impl<'a> Pairs<'a> {
    fn push(&mut self, audience_id: &'a str, profile_id: &'a str) {
        self.audience_ids.push(audience_id);
        self.profile_ids.push(profile_id);
    }
}

/// Applies the batch's membership changes and counts what actually changed, per audience, so
/// counts stay exact whatever repeats. A profile written with its whole member list gets
/// exactly that list, entry times included (the list of its last write that has one); the
/// others are patched by the batch's removals, then its additions (an addition of a membership
/// already there keeps when it began). Memberships of profiles or audiences that do not exist
/// are not stored.
async fn apply_membership_changes(
    tx: &Transaction<'_>,
    batch: &ProfileBatch,
    counts: &mut MemberCounts,
) -> StoreResult<()> {
    let mut lists: BTreeMap<&str, &MemberList> = BTreeMap::new();
    for write in &batch.upserts {
        if let Some(list) = &write.members {
            lists.insert(&write.profile.id, list);
        }
    }
    let mut removed = Pairs::default();
    for (audience_id, profile_id) in &batch.memberships_removed {
        if !lists.contains_key(profile_id.as_str()) {
            removed.push(audience_id, profile_id);
        }
    }
    let (mut joining, mut entered_at) = (Pairs::default(), Vec::<Timestamp>::new());
    for m in &batch.memberships_added {
        if !lists.contains_key(m.profile_id.as_str()) {
            joining.push(&m.audience_id, &m.profile_id);
            entered_at.push(m.entered_at);
        }
    }
    lock_audiences(tx, &joining, &lists).await?;
    if !removed.audience_ids.is_empty() {
        let rows = query(
            tx,
            "DELETE FROM memberships m
              USING UNNEST($1::text[], $2::text[]) AS r(audience_id, profile_id)
              WHERE m.audience_id = r.audience_id AND m.profile_id = r.profile_id
              RETURNING m.audience_id",
            &[&removed.audience_ids, &removed.profile_ids],
        )
        .await?;
        counts.add_rows(&rows, -1)?;
    }
    if !joining.audience_ids.is_empty() {
        let rows = query(
            tx,
            "INSERT INTO memberships (audience_id, profile_id, entered_at)
             SELECT u.audience_id, u.profile_id, u.entered_at
               FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
                    AS u(audience_id, profile_id, entered_at)
              WHERE EXISTS (SELECT 1 FROM audiences a WHERE a.id = u.audience_id)
                AND EXISTS (SELECT 1 FROM profiles p WHERE p.id = u.profile_id)
             ON CONFLICT (audience_id, profile_id) DO NOTHING
             RETURNING audience_id",
            &[&joining.audience_ids, &joining.profile_ids, &entered_at],
        )
        .await?;
        counts.add_rows(&rows, 1)?;
    }
    set_member_lists(tx, &lists, counts).await
}

/// Locks the audiences the batch may add members to until commit (`FOR KEY SHARE`: other
/// batches and audience edits go on), so none is deleted meanwhile: an audience's deletion
/// waits and then removes the memberships the batch wrote (`delete_audience`). What the
/// foreign key did for each membership row, once per batch.
async fn lock_audiences(
    tx: &Transaction<'_>,
    joining: &Pairs<'_>,
    lists: &BTreeMap<&str, &MemberList>,
) -> StoreResult<()> {
    let mut ids: Vec<&str> = joining.audience_ids.clone();
    ids.extend(lists.values().flat_map(|l| l.iter().map(|(a, _)| &**a)));
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() {
        return Ok(());
    }
    query(
        tx,
        "SELECT 1 FROM audiences WHERE id = ANY($1::text[]) FOR KEY SHARE",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// Makes the memberships of each listed profile exactly its list. One statement compares the
/// lists with the stored rows (a hash join) and writes only the differences: most of a busy
/// profile's memberships are unchanged by a batch, and a write of an unchanged row would cost
/// a new row version, its index entries and the foreign-key check.
async fn set_member_lists(
    tx: &Transaction<'_>,
    lists: &BTreeMap<&str, &MemberList>,
    counts: &mut MemberCounts,
) -> StoreResult<()> {
    if lists.is_empty() {
        return Ok(());
    }
    let entries: usize = lists.values().map(|l| l.len()).sum();
    let (mut wanted, mut entered_at) = (Pairs::default(), Vec::with_capacity(entries));
    let mut seen = HashSet::with_capacity(entries);
    for (profile_id, list) in lists {
        for (audience_id, at) in list.iter() {
            // A list naming an audience twice keeps its first entry.
            if seen.insert((&**audience_id, *profile_id)) {
                wanted.push(audience_id, profile_id);
                entered_at.push(*at);
            }
        }
    }
    let profile_ids: Vec<&str> = lists.keys().copied().collect();
    let rows = query(
        tx,
        "WITH wanted AS (
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::timestamptz[])
                 AS w(audience_id, profile_id, entered_at)
         ), held AS (
             SELECT m.audience_id, m.profile_id, m.entered_at FROM memberships m
              WHERE m.profile_id = ANY($4::text[])
         ), diff AS (
             SELECT COALESCE(w.audience_id, h.audience_id) AS audience_id,
                    COALESCE(w.profile_id, h.profile_id) AS profile_id,
                    w.entered_at AS wanted, h.entered_at AS held
               FROM wanted w
               FULL JOIN held h ON h.audience_id = w.audience_id AND h.profile_id = w.profile_id
              WHERE w.entered_at IS DISTINCT FROM h.entered_at
         ), gone AS (
             DELETE FROM memberships m USING diff d
              WHERE d.wanted IS NULL
                AND m.audience_id = d.audience_id AND m.profile_id = d.profile_id
             RETURNING m.audience_id
         ), moved AS (
             UPDATE memberships m SET entered_at = d.wanted FROM diff d
              WHERE d.wanted IS NOT NULL AND d.held IS NOT NULL
                AND m.audience_id = d.audience_id AND m.profile_id = d.profile_id
         ), joined AS (
             INSERT INTO memberships (audience_id, profile_id, entered_at)
             SELECT d.audience_id, d.profile_id, d.wanted FROM diff d
              WHERE d.held IS NULL
                AND EXISTS (SELECT 1 FROM audiences a WHERE a.id = d.audience_id)
                AND EXISTS (SELECT 1 FROM profiles p WHERE p.id = d.profile_id)
             ON CONFLICT (audience_id, profile_id) DO NOTHING
             RETURNING audience_id
         )
         SELECT audience_id, -1::int8 FROM gone
          UNION ALL SELECT audience_id, 1::int8 FROM joined",
        &[
            &wanted.audience_ids,
            &wanted.profile_ids,
            &entered_at,
            &profile_ids,
        ],
    )
    .await?;
    counts.add_signed_rows(&rows)
}

/// Deletes merged-away profiles; their memberships go with them.
async fn delete_profiles(
    tx: &Transaction<'_>,
    ids: &[String],
    counts: &mut MemberCounts,
) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let rows = query(
        tx,
        "DELETE FROM memberships WHERE profile_id = ANY($1::text[]) RETURNING audience_id",
        &[&ids],
    )
    .await?;
    counts.add_rows(&rows, -1)?;
    query(
        tx,
        "DELETE FROM profiles WHERE id = ANY($1::text[])",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// Points identifiers at their profiles (the last row of a key wins), in key order.
async fn upsert_identities(tx: &Transaction<'_>, identities: &[IdentityRow]) -> StoreResult<()> {
    let mut last_of: BTreeMap<(&str, &str), &str> = BTreeMap::new();
    for i in identities {
        last_of.insert((&i.field, &i.value), &i.profile_id);
    }
    if last_of.is_empty() {
        return Ok(());
    }
    let mut fields = Vec::with_capacity(last_of.len());
    let mut values = Vec::with_capacity(last_of.len());
    let mut profile_ids = Vec::with_capacity(last_of.len());
    for ((field, value), profile_id) in last_of {
        fields.push(field);
        values.push(value);
        profile_ids.push(profile_id);
    }
    query(
        tx,
        "INSERT INTO identities (field, value, profile_id)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[])
         ON CONFLICT (field, value) DO UPDATE SET profile_id = excluded.profile_id
             WHERE identities.profile_id <> excluded.profile_id",
        &[&fields, &values, &profile_ids],
    )
    .await?;
    Ok(())
}

/// Applies `(merged id, survivor id)` redirects in order: the merged profile's identifiers and
/// earlier redirects to it move to the survivor, and its id resolves to the survivor.
async fn apply_redirects(tx: &Transaction<'_>, redirects: &[(String, String)]) -> StoreResult<()> {
    for (from, to) in redirects {
        query(
            tx,
            "WITH identities_moved AS (
                 UPDATE identities SET profile_id = $2 WHERE profile_id = $1
             ), redirects_moved AS (
                 UPDATE profile_redirects SET to_id = $2 WHERE to_id = $1
             )
             INSERT INTO profile_redirects (from_id, to_id) VALUES ($1, $2)
             ON CONFLICT (from_id) DO UPDATE SET to_id = excluded.to_id",
            &[from, to],
        )
        .await?;
    }
    Ok(())
}

/// Writes processor bookkeeping entries in order (`None` deletes; the last write of a key wins).
async fn write_state<'a>(
    tx: &Transaction<'_>,
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> StoreResult<()> {
    let last_of: BTreeMap<&str, Option<&str>> = entries.into_iter().collect();
    let (mut keys, mut values, mut deleted) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in last_of {
        match value {
            Some(value) => {
                keys.push(key);
                values.push(value);
            }
            None => deleted.push(key),
        }
    }
    if !keys.is_empty() {
        query(
            tx,
            "INSERT INTO cdp_state (key, value) SELECT * FROM UNNEST($1::text[], $2::text[])
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            &[&keys, &values],
        )
        .await?;
    }
    if !deleted.is_empty() {
        query(
            tx,
            "DELETE FROM cdp_state WHERE key = ANY($1::text[])",
            &[&deleted],
        )
        .await?;
    }
    Ok(())
}

/// Every membership as an exit, in (profile id, audience slug) order: what a rebuild sends.
async fn exits_of_every_member(
    tx: &Transaction<'_>,
    at: Timestamp,
) -> StoreResult<Vec<NewAudienceChange>> {
    let rows = query(
        tx,
        "SELECT m.profile_id, a.id, a.slug, m.entered_at
           FROM memberships m JOIN audiences a ON a.id = m.audience_id
          ORDER BY m.profile_id, a.slug",
        &[],
    )
    .await?;
    rows.iter()
        .map(|r| {
            Ok(NewAudienceChange {
                profile_id: get(r, 0)?,
                audience_id: get(r, 1)?,
                audience_slug: get(r, 2)?,
                kind: ChangeKind::Exit,
                at,
                entered_at: Some(get(r, 3)?),
            })
        })
        .collect()
}

/// A processor bookkeeping entry as a number (`None` when it is not one).
fn state_number(value: Option<&str>) -> Option<i64> {
    value.and_then(|v| v.parse().ok())
}

#[async_trait]
impl ProfileStore for PostgresStore {
    async fn processor_position(&self) -> StoreResult<ProcessorPosition> {
        let client = self.client().await?;
        let sql = "SELECT key, value FROM cdp_state WHERE key IN ('cursor', 'rebuild_target')";
        let mut position = ProcessorPosition::default();
        for row in &query(&client, sql, &[]).await? {
            let value = state_number(get(row, 1)?);
            match get::<&str>(row, 0)? {
                "cursor" => position.cursor = value.unwrap_or(0),
                _ => position.rebuild_target = value,
            }
        }
        Ok(position)
    }

    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>> {
        let client = self.client().await?;
        let sql = "SELECT stream, COUNT(*) FROM events
                    WHERE seq > COALESCE((SELECT value::int8 FROM cdp_state WHERE key = 'cursor'), 0)
                    GROUP BY stream ORDER BY stream";
        query(&client, sql, &[])
            .await?
            .iter()
            .map(|r| Ok((get(r, 0)?, count(get(r, 1)?))))
            .collect()
    }

    async fn lookup_identities(
        &self,
        keys: Vec<(String, String)>,
    ) -> StoreResult<Vec<IdentityRow>> {
        let (fields, values): (Vec<String>, Vec<String>) = keys.into_iter().unzip();
        let client = self.client().await?;
        let sql = "SELECT i.field, i.value, i.profile_id
                     FROM UNNEST($1::text[], $2::text[]) AS k(field, value)
                     JOIN identities i ON i.field = k.field AND i.value = k.value
                    ORDER BY i.field, i.value";
        query(&client, sql, &[&fields, &values])
            .await?
            .iter()
            .map(|r| {
                Ok(IdentityRow {
                    field: get(r, 0)?,
                    value: get(r, 1)?,
                    profile_id: get(r, 2)?,
                })
            })
            .collect()
    }

    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>> {
        let client = self.client().await?;
        let sql =
            "SELECT id, state, created_at, updated_at FROM profiles WHERE id = ANY($1::text[])";
        let mut found: HashMap<String, Profile> = query(&client, sql, &[&ids])
            .await?
            .iter()
            .map(|r| profile_from_row(r).map(|p| (p.id.clone(), p)))
            .collect::<StoreResult<_>>()?;
        // In the order asked for, as a lookup per id would return them.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn get_profile(&self, id: &str) -> StoreResult<Profile> {
        let client = self.client().await?;
        let sql = "SELECT id, state, created_at, updated_at FROM profiles
                    WHERE id = COALESCE((SELECT to_id FROM profile_redirects WHERE from_id = $1), $1)";
        match query_opt(&client, sql, &[&id]).await? {
            Some(row) => profile_from_row(&row),
            None => Err(not_found("profile", id)),
        }
    }

    async fn list_profiles(
        &self,
        after: Option<String>,
        page: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        let client = self.client().await?;
        let sql = format!("{PROFILES_WITH_MEMBERS} WHERE p.id > $1 ORDER BY p.id LIMIT $2");
        let rows = query(&client, &sql, &[&after.unwrap_or_default(), &limit(page)]).await?;
        let mut shared = SharedIds::default();
        rows.iter()
            .map(|r| profile_with_members(r, &mut shared))
            .collect()
    }

    async fn count_profiles(&self) -> StoreResult<u64> {
        let client = self.client().await?;
        let row = query_one(&client, "SELECT COUNT(*) FROM profiles", &[]).await?;
        Ok(count(get(&row, 0)?))
    }

    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>> {
        let client = self.client().await?;
        let sql = "SELECT field, value FROM identities WHERE profile_id = $1 ORDER BY field, value";
        query(&client, sql, &[&id])
            .await?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect()
    }

    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>> {
        let client = self.client().await?;
        let sql = "SELECT m.audience_id, m.profile_id, m.entered_at
                     FROM memberships m JOIN audiences a ON a.id = m.audience_id
                    WHERE m.profile_id = ANY($1::text[])
                    ORDER BY m.profile_id, a.num";
        let mut by_profile: HashMap<String, Vec<Membership>> = HashMap::new();
        for row in &query(&client, sql, &[&ids]).await? {
            let m = membership_from_row(row)?;
            by_profile.entry(m.profile_id.clone()).or_default().push(m);
        }
        // Profile by profile, in the order asked for.
        Ok(ids
            .iter()
            .filter_map(|id| by_profile.remove(id))
            .flatten()
            .collect())
    }

    async fn get_profiles_with_memberships(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        let client = self.client().await?;
        // The member lists of all of them in one pass (one join with the audiences, one sort),
        // where the per-profile subquery of `PROFILES_WITH_MEMBERS` would repeat both for each.
        let sql =
            "SELECT p.id, p.state, p.created_at, p.updated_at, ml.audience_ids, ml.entered_ats
                     FROM profiles p
                     LEFT JOIN (
                         SELECT m.profile_id,
                                array_agg(m.audience_id ORDER BY a.num) AS audience_ids,
                                array_agg(m.entered_at ORDER BY a.num) AS entered_ats
                           FROM memberships m JOIN audiences a ON a.id = m.audience_id
                          WHERE m.profile_id = ANY($1::text[])
                          GROUP BY m.profile_id
                     ) ml ON ml.profile_id = p.id
                    WHERE p.id = ANY($1::text[])
                    ORDER BY p.id";
        let rows = query(&client, sql, &[&ids]).await?;
        let mut shared = SharedIds::default();
        rows.iter()
            .map(|r| profile_with_members(r, &mut shared))
            .collect()
    }

    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        page: u32,
    ) -> StoreResult<Vec<Membership>> {
        let client = self.client().await?;
        let sql = "SELECT audience_id, profile_id, entered_at FROM memberships
                    WHERE audience_id = $1 AND profile_id > $2 ORDER BY profile_id LIMIT $3";
        let after = after.unwrap_or_default();
        let rows = query(&client, sql, &[&audience_id, &after, &limit(page)]).await?;
        collect(&rows, membership_from_row)
    }

    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        // Every statement below takes arrays of a batch's size. A custom plan sized for them
        // may hash-join a whole table (e.g. every membership) where an index probe per element
        // is what stays cheap as the tables grow; the generic plan assumes few elements.
        tx.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
            .await
            .map_err(db)?;
        check_fence(&tx, batch.fence.as_ref()).await?;
        upsert_profiles(&tx, &batch.upserts).await?;
        let mut counts = MemberCounts::default();
        apply_membership_changes(&tx, &batch, &mut counts).await?;
        delete_profiles(&tx, &batch.deletes, &mut counts).await?;
        upsert_identities(&tx, &batch.identities).await?;
        apply_redirects(&tx, &batch.redirects).await?;
        counts.write(&tx).await?;
        let cursor = batch.cursor.map(|c| c.to_string());
        let cursor_entry = cursor.as_deref().map(|c| ("cursor", Some(c)));
        let entries = batch.state.iter().map(|(k, v)| (k.as_str(), v.as_deref()));
        write_state(&tx, cursor_entry.into_iter().chain(entries)).await?;
        // Last: takes the outbox's lock until the commit.
        insert_changes(&tx, &batch.changes).await?;
        tx.commit().await.map_err(db)
    }

    async fn reset_profiles(&self, fence: Option<Fence>) -> StoreResult<i64> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(db)?;
        check_fence(&tx, fence.as_ref()).await?;
        let exits = exits_of_every_member(&tx, Utc::now()).await?;
        tx.batch_execute(
            "DELETE FROM memberships; DELETE FROM identities; DELETE FROM profile_redirects;
             DELETE FROM profiles; UPDATE audiences SET member_count = 0;",
        )
        .await
        .map_err(db)?;
        let target: i64 = get(&query_one(&tx, MAX_EVENT_SEQ, &[]).await?, 0)?;
        let target_text = target.to_string();
        write_state(
            &tx,
            [
                ("cursor", Some("0")),
                ("rebuild_target", Some(target_text.as_str())),
            ],
        )
        .await?;
        // Last: takes the outbox's lock until the commit.
        insert_changes(&tx, &exits).await?;
        tx.commit().await.map_err(db)?;
        Ok(target)
    }

    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        let client = self.client().await?;
        let sql = "SELECT key, value FROM cdp_state WHERE starts_with(key, $1) ORDER BY key";
        query(&client, sql, &[&prefix])
            .await?
            .iter()
            .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
            .collect()
    }

    async fn finish_rebuild(&self) -> StoreResult<()> {
        let client = self.client().await?;
        let sql = "DELETE FROM cdp_state WHERE key = 'rebuild_target'";
        execute(&client, sql, &[]).await?;
        Ok(())
    }
}
