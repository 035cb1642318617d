//! Profiles, their identity index, memberships and the processor's cursor in SQLite (the CDP
//! file), and the row helpers the CDP file's other roles share.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use tributary_lang::ProfileState;

use super::lease::check_fence;
use super::rows::{from_micros, parse_time, to_text, RowResult};
use super::{db, SqliteStore};
use crate::store::*;

const PROFILE_COLUMNS: &str = "id, state, created_at, updated_at";

/// A stored profile state: binary ([`ProfileState::encode`], see migration 0007), or JSON text
/// in rows written before and not rewritten since.
fn decode_state(id: &str, stored: ValueRef<'_>) -> StoreResult<ProfileState> {
    let corrupt =
        |e: &dyn std::fmt::Display| StoreError::Corrupt(format!("profile {id} state: {e}"));
    match stored {
        ValueRef::Blob(bytes) => ProfileState::decode(bytes).map_err(|e| corrupt(&e)),
        ValueRef::Text(json) => serde_json::from_slice(json).map_err(|e| corrupt(&e)),
        other => Err(corrupt(&format_args!("a {} value", other.data_type()))),
    }
}

fn profile_from_row(r: &Row<'_>) -> RowResult<Profile> {
    let id: String = r.get(0)?;
    let state = decode_state(&id, r.get_ref(1)?);
    let created_at: String = r.get(2)?;
    let updated_at: String = r.get(3)?;
    Ok((|| {
        Ok(Profile {
            state: state?,
            created_at: parse_time(&created_at)?,
            updated_at: parse_time(&updated_at)?,
            id,
        })
    })())
}

/// A profile's memberships as stored in `profiles.audiences`: `[[audience num, entered_at µs]]`
/// (see migration 0006).
type StoredMembers = Vec<(i64, i64)>;

fn parse_members(text: &str, profile_id: &str) -> StoreResult<StoredMembers> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("memberships of profile {profile_id}: {e}")))
}

fn members_text(list: &StoredMembers) -> String {
    serde_json::to_string(list).expect("pairs of integers serialize")
}

/// Audience ids and their numbers (the `num` in profiles' member lists).
struct AudienceNums {
    by_id: HashMap<String, i64>,
    by_num: HashMap<i64, (Arc<str>, String)>,
}

impl AudienceNums {
    fn load(conn: &Connection) -> StoreResult<Self> {
        let mut stmt = conn
            .prepare_cached("SELECT id, num, slug FROM audiences")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })
            .map_err(db)?;
        let (mut by_id, mut by_num) = (HashMap::new(), HashMap::new());
        for row in rows {
            let (id, num, slug) = row.map_err(db)?;
            by_id.insert(id.clone(), num);
            by_num.insert(num, (Arc::from(id.as_str()), slug));
        }
        Ok(Self { by_id, by_num })
    }

    /// The memberships of one profile in live audiences (entries of deleted ones are skipped).
    fn member_list(&self, list: &StoredMembers) -> StoreResult<MemberList> {
        list.iter()
            .filter_map(|(num, us)| {
                let (audience_id, _) = self.by_num.get(num)?;
                Some(from_micros(*us).map(|entered_at| (audience_id.clone(), entered_at)))
            })
            .collect()
    }

    /// [`AudienceNums::member_list`] as membership rows of `profile_id`.
    fn memberships(&self, profile_id: &str, list: &StoredMembers) -> StoreResult<Vec<Membership>> {
        Ok(self
            .member_list(list)?
            .into_iter()
            .map(|(audience_id, entered_at)| Membership {
                audience_id: audience_id.to_string(),
                profile_id: profile_id.to_owned(),
                entered_at,
            })
            .collect())
    }
}

/// Every audience's `num` → `(id, slug)` (for the erasure of a profile's memberships).
pub(super) fn audience_nums(conn: &Connection) -> StoreResult<HashMap<i64, (String, String)>> {
    Ok(AudienceNums::load(conn)?
        .by_num
        .into_iter()
        .map(|(num, (id, slug))| (num, (id.to_string(), slug)))
        .collect())
}

fn profile_members(conn: &Connection, id: &str) -> StoreResult<Option<StoredMembers>> {
    let text: Option<String> = conn
        .prepare_cached("SELECT audiences FROM profiles WHERE id = ?1")
        .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
        .map_err(db)?;
    text.map(|t| parse_members(&t, id)).transpose()
}

/// Members of audience `num` with profile id after `after`, in profile id order: a scan of
/// profiles whose member list holds `[num,` (an entry's opening, so 3 does not match 13).
pub(super) fn members_after(
    conn: &Connection,
    audience_id: &str,
    num: i64,
    after: &str,
    limit: u32,
) -> StoreResult<Vec<Membership>> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, audiences FROM profiles
              WHERE id > ?1 AND instr(audiences, ?2) > 0 ORDER BY id LIMIT ?3",
        )
        .map_err(db)?;
    let mut rows = stmt
        .query(params![after, format!("[{num},"), limit])
        .map_err(db)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(db)? {
        let profile_id: String = r.get(0).map_err(db)?;
        let text: String = r.get(1).map_err(db)?;
        if let Some((_, us)) = parse_members(&text, &profile_id)?
            .into_iter()
            .find(|(n, _)| *n == num)
        {
            out.push(Membership {
                audience_id: audience_id.to_owned(),
                profile_id,
                entered_at: from_micros(us)?,
            });
        }
    }
    Ok(out)
}

pub(super) fn audience_num(conn: &Connection, audience_id: &str) -> StoreResult<Option<i64>> {
    conn.prepare_cached("SELECT num FROM audiences WHERE id = ?1")
        .and_then(|mut s| s.query_row([audience_id], |r| r.get(0)).optional())
        .map_err(db)
}

pub(super) fn state_value(conn: &Connection, key: &str) -> StoreResult<Option<String>> {
    conn.prepare_cached("SELECT value FROM cdp_state WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
        .map_err(db)
}

pub(super) fn set_state(tx: &Transaction<'_>, key: &str, value: Option<&str>) -> StoreResult<()> {
    match value {
        Some(v) => tx
            .prepare_cached(
                "INSERT INTO cdp_state (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .and_then(|mut s| s.execute(params![key, v])),
        None => tx
            .prepare_cached("DELETE FROM cdp_state WHERE key = ?1")
            .and_then(|mut s| s.execute([key])),
    }
    .map(|_| ())
    .map_err(db)
}

/// [`ProfileStore::reset_profiles`] inside the caller's transaction (also used when the two
/// files are found to disagree at open, see `reconcile`).
pub(super) fn reset_profiles_in(tx: &Transaction<'_>) -> StoreResult<i64> {
    // Every membership exits, in (profile, audience slug) order.
    let now = Utc::now();
    let nums = AudienceNums::load(tx)?;
    let mut exits = Vec::new();
    {
        let mut stmt = tx
            .prepare_cached(
                "SELECT id, audiences FROM profiles WHERE audiences <> '[]' ORDER BY id",
            )
            .map_err(db)?;
        let mut rows = stmt.query([]).map_err(db)?;
        while let Some(r) = rows.next().map_err(db)? {
            let profile_id: String = r.get(0).map_err(db)?;
            let text: String = r.get(1).map_err(db)?;
            let mut members: Vec<(&str, &str, i64)> = parse_members(&text, &profile_id)?
                .into_iter()
                .filter_map(|(num, us)| {
                    let (id, slug) = nums.by_num.get(&num)?;
                    Some((slug.as_str(), &**id, us))
                })
                .collect();
            members.sort_unstable();
            for (slug, audience_id, us) in members {
                exits.push(NewAudienceChange {
                    audience_id: audience_id.to_owned(),
                    audience_slug: slug.to_owned(),
                    profile_id: profile_id.clone(),
                    kind: ChangeKind::Exit,
                    at: now,
                    entered_at: Some(from_micros(us)?),
                });
            }
        }
    }
    insert_changes(tx, &exits)?;
    tx.execute_batch(
        "DELETE FROM identities; DELETE FROM profile_redirects; DELETE FROM profiles;
             UPDATE audiences SET member_count = 0;",
    )
    .map_err(db)?;
    let target: i64 = tx
        .query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
        .map_err(db)?;
    set_state(tx, "cursor", Some("0"))?;
    set_state(tx, "rebuild_target", Some(&target.to_string()))?;
    Ok(target)
}

pub(super) fn cursor(conn: &Connection) -> StoreResult<i64> {
    Ok(state_value(conn, "cursor")?
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Outbox rows per INSERT statement. One statement per row cost the commit about a fifth of
/// its time at five changes per event; many rows per statement share its overhead (and
/// AUTOINCREMENT's bookkeeping, done once per statement).
const CHANGES_PER_INSERT: usize = 64;

fn insert_changes(tx: &Transaction<'_>, changes: &[NewAudienceChange]) -> StoreResult<()> {
    // Two statements only (full chunks, then one row at a time for the rest), so the
    // connection's statement cache keeps both and the others.
    let insert = |rows: usize| {
        let values = vec!["(?, ?, ?, ?, ?, ?)"; rows].join(", ");
        tx.prepare_cached(&format!(
            "INSERT INTO audience_changes (audience_id, audience_slug, profile_id, kind, at, entered_at)
             VALUES {values}"
        ))
        .map_err(db)
    };
    // A batch's changes mostly share one time: format it once.
    let mut at = (None, String::new());
    let mut bind = |stmt: &mut rusqlite::CachedStatement<'_>, i: usize, c: &NewAudienceChange| {
        if at.0 != Some(c.at) {
            at = (Some(c.at), to_text(&c.at));
        }
        let first = i * 6 + 1;
        let values: [&dyn rusqlite::ToSql; 6] = [
            &c.audience_id,
            &c.audience_slug,
            &c.profile_id,
            &c.kind.as_str(),
            &at.1,
            &c.entered_at.as_ref().map(to_text),
        ];
        for (n, v) in values.into_iter().enumerate() {
            stmt.raw_bind_parameter(first + n, v).map_err(db)?;
        }
        Ok::<_, StoreError>(())
    };
    let full = changes.len() / CHANGES_PER_INSERT * CHANGES_PER_INSERT;
    if full > 0 {
        let mut stmt = insert(CHANGES_PER_INSERT)?;
        for chunk in changes[..full].chunks_exact(CHANGES_PER_INSERT) {
            for (i, c) in chunk.iter().enumerate() {
                bind(&mut stmt, i, c)?;
            }
            stmt.raw_execute().map_err(db)?;
        }
    }
    if full < changes.len() {
        let mut stmt = insert(1)?;
        for c in &changes[full..] {
            bind(&mut stmt, 0, c)?;
            stmt.raw_execute().map_err(db)?;
        }
    }
    Ok(())
}

/// Patches the member lists of the profiles a batch adds to or removes from audiences, and
/// counts the differences per audience. Idempotent: an entry already there (or a removal of
/// one that is not) changes nothing, so counts stay exact.
fn apply_membership_changes(
    tx: &Transaction<'_>,
    batch: &ProfileBatch,
    nums: &AudienceNums,
    counts: &mut HashMap<i64, i64>,
) -> StoreResult<()> {
    // profile id -> (audience nums leaving, (audience num, entered µs) joining)
    type Patch = (Vec<i64>, Vec<(i64, i64)>);
    let mut patches: BTreeMap<&str, Patch> = BTreeMap::new();
    // Profiles written with their whole member list: the changes only count.
    let listed = batch.listed_profiles();
    for (audience_id, profile_id) in &batch.memberships_removed {
        if let Some(num) = nums.by_id.get(audience_id) {
            if listed.contains(profile_id.as_str()) {
                *counts.entry(*num).or_default() -= 1;
            } else {
                patches.entry(profile_id).or_default().0.push(*num);
            }
        }
    }
    for m in &batch.memberships_added {
        if let Some(num) = nums.by_id.get(&m.audience_id) {
            if listed.contains(m.profile_id.as_str()) {
                *counts.entry(*num).or_default() += 1;
            } else {
                let entry = (*num, m.entered_at.timestamp_micros());
                patches.entry(&m.profile_id).or_default().1.push(entry);
            }
        }
    }
    if patches.is_empty() {
        return Ok(());
    }
    let mut update = tx
        .prepare_cached("UPDATE profiles SET audiences = ?2 WHERE id = ?1")
        .map_err(db)?;
    for (profile_id, (leaving, joining)) in patches {
        let Some(mut list) = profile_members(tx, profile_id)? else {
            continue;
        };
        // Entries of deleted audiences go whenever a list is rewritten.
        list.retain(|(num, _)| nums.by_num.contains_key(num));
        for num in leaving {
            if let Some(i) = list.iter().position(|(n, _)| *n == num) {
                list.swap_remove(i);
                *counts.entry(num).or_default() -= 1;
            }
        }
        for (num, us) in joining {
            if !list.iter().any(|(n, _)| *n == num) {
                list.push((num, us));
                *counts.entry(num).or_default() += 1;
            }
        }
        list.sort_unstable();
        update
            .execute(params![profile_id, members_text(&list)])
            .map_err(db)?;
    }
    Ok(())
}

#[async_trait]
impl ProfileStore for SqliteStore {
    async fn processor_position(&self) -> StoreResult<ProcessorPosition> {
        self.read(|conn| {
            Ok(ProcessorPosition {
                cursor: cursor(conn)?,
                rebuild_target: state_value(conn, "rebuild_target")?.and_then(|v| v.parse().ok()),
            })
        })
        .await
    }

    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>> {
        self.read(|conn| {
            let cursor = cursor(conn)?;
            let mut stmt = conn
                .prepare_cached(
                    "SELECT stream, COUNT(*) FROM events WHERE seq > ?1 GROUP BY stream ORDER BY stream",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([cursor], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn lookup_identities(
        &self,
        mut keys: Vec<(String, String)>,
    ) -> StoreResult<Vec<IdentityRow>> {
        // In key order, consecutive lookups often share the b-tree pages they read.
        keys.sort_unstable();
        self.read_snapshot(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT profile_id FROM identities WHERE field = ?1 AND value = ?2")
                .map_err(db)?;
            let mut out = Vec::new();
            for (field, value) in keys {
                let found: Option<String> = stmt
                    .query_row(params![field, value], |r| r.get(0))
                    .optional()
                    .map_err(db)?;
                if let Some(profile_id) = found {
                    out.push(IdentityRow {
                        field,
                        value,
                        profile_id,
                    });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = ?1"
                ))
                .map_err(db)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(p) = stmt
                    .query_row([&id], profile_from_row)
                    .optional()
                    .map_err(db)?
                {
                    out.push(p?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_profile(&self, id: &str) -> StoreResult<Profile> {
        let id = id.to_owned();
        self.read(move |conn| {
            let live: String = conn
                .prepare_cached("SELECT to_id FROM profile_redirects WHERE from_id = ?1")
                .and_then(|mut s| s.query_row([&id], |r| r.get(0)).optional())
                .map_err(db)?
                .unwrap_or_else(|| id.clone());
            conn.prepare_cached(&format!(
                "SELECT {PROFILE_COLUMNS} FROM profiles WHERE id = ?1"
            ))
            .and_then(|mut s| s.query_row([&live], profile_from_row).optional())
            .map_err(db)?
            .ok_or(StoreError::NotFound {
                what: "profile",
                id,
            })?
        })
        .await
    }

    async fn list_profiles(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        self.read_snapshot(move |conn| {
            let nums = AudienceNums::load(conn)?;
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS}, audiences FROM profiles WHERE id > ?1 ORDER BY id LIMIT ?2"
                ))
                .map_err(db)?;
            let mut rows = stmt
                .query(params![after.unwrap_or_default(), limit])
                .map_err(db)?;
            let mut out = Vec::new();
            while let Some(r) = rows.next().map_err(db)? {
                let profile = profile_from_row(r).map_err(db)??;
                let members: String = r.get(4).map_err(db)?;
                let members = nums.member_list(&parse_members(&members, &profile.id)?)?;
                out.push((profile, members));
            }
            Ok(out)
        })
        .await
    }

    async fn count_profiles(&self) -> StoreResult<u64> {
        self.read(|conn| {
            conn.query_row("SELECT COUNT(*) FROM profiles", [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(db)
        })
        .await
    }

    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>> {
        let id = id.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT field, value FROM identities WHERE profile_id = ?1 ORDER BY field, value",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>> {
        self.read(move |conn| {
            let nums = AudienceNums::load(conn)?;
            let mut out = Vec::new();
            for id in ids {
                if let Some(list) = profile_members(conn, &id)? {
                    out.extend(nums.memberships(&id, &list)?);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn get_profiles_with_memberships(
        &self,
        mut ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        // In id order, consecutive lookups often share the b-tree pages they read.
        ids.sort_unstable();
        self.read_snapshot(move |conn| {
            let nums = AudienceNums::load(conn)?;
            let mut stmt = conn
                .prepare_cached(&format!(
                    "SELECT {PROFILE_COLUMNS}, audiences FROM profiles WHERE id = ?1"
                ))
                .map_err(db)?;
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                let Some((profile, members)) = stmt
                    .query_row([&id], |r| {
                        Ok((profile_from_row(r)?, r.get::<_, String>(4)?))
                    })
                    .optional()
                    .map_err(db)?
                else {
                    continue;
                };
                let members = nums.member_list(&parse_members(&members, &id)?)?;
                out.push((profile?, members));
            }
            Ok(out)
        })
        .await
    }

    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Membership>> {
        let audience_id = audience_id.to_owned();
        self.read(move |conn| match audience_num(conn, &audience_id)? {
            Some(num) => members_after(conn, &audience_id, num, &after.unwrap_or_default(), limit),
            None => Ok(Vec::new()),
        })
        .await
    }

    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()> {
        self.write(move |tx| {
            check_fence(tx, batch.fence.as_ref())?;
            let nums = AudienceNums::load(tx)?;
            {
                // A profile whose member list comes with it gets the list in the same write;
                // the others keep theirs (NULL). An UPDATE, and an INSERT only when it found no
                // row: most upserts are of existing profiles, and an INSERT … ON CONFLICT costs
                // them a fifth more (`cargo bench --bench sqlite_floor`: 11.2 → 9.0 µs).
                let mut update = tx
                    .prepare_cached(
                        "UPDATE profiles SET state = ?2, updated_at = ?3, audiences = COALESCE(?4, audiences)
                         WHERE id = ?1",
                    )
                    .map_err(db)?;
                let mut insert = tx
                    .prepare_cached(
                        "INSERT INTO profiles (id, state, created_at, updated_at, audiences)
                         VALUES (?1, ?2, ?3, ?4, COALESCE(?5, '[]'))",
                    )
                    .map_err(db)?;
                for write in &batch.upserts {
                    let (p, state) = (&write.profile, write.encoded_state.as_slice());
                    let members = write.members.as_ref().map(|list| {
                        let mut list: StoredMembers = list
                            .iter()
                            .filter_map(|(audience_id, entered_at)| {
                                Some((*nums.by_id.get(&**audience_id)?, entered_at.timestamp_micros()))
                            })
                            .collect();
                        list.sort_unstable();
                        members_text(&list)
                    });
                    let updated_at = to_text(&p.updated_at);
                    let updated = update
                        .execute(params![p.id, state, updated_at, members])
                        .map_err(db)?;
                    if updated == 0 {
                        insert
                            .execute(params![p.id, state, to_text(&p.created_at), updated_at, members])
                            .map_err(db)?;
                    }
                }
            }
            // Member count changes per audience num, applied once at the end.
            let mut counts: HashMap<i64, i64> = HashMap::new();
            apply_membership_changes(tx, &batch, &nums, &mut counts)?;
            if !batch.deletes.is_empty() {
                let mut profile = tx
                    .prepare_cached("DELETE FROM profiles WHERE id = ?1")
                    .map_err(db)?;
                for id in &batch.deletes {
                    // A merged-away profile leaves its audiences with its row.
                    for (num, _) in profile_members(tx, id)?.unwrap_or_default() {
                        if nums.by_num.contains_key(&num) {
                            *counts.entry(num).or_default() -= 1;
                        }
                    }
                    profile.execute([id]).map_err(db)?;
                }
            }
            {
                let mut stmt = tx
                    .prepare_cached(
                        "INSERT INTO identities (field, value, profile_id) VALUES (?1, ?2, ?3)
                         ON CONFLICT (field, value) DO UPDATE SET profile_id = excluded.profile_id",
                    )
                    .map_err(db)?;
                for i in &batch.identities {
                    stmt.execute(params![i.field, i.value, i.profile_id]).map_err(db)?;
                }
            }
            for (from, to) in &batch.redirects {
                tx.prepare_cached("UPDATE identities SET profile_id = ?2 WHERE profile_id = ?1")
                    .and_then(|mut s| s.execute([from, to]))
                    .map_err(db)?;
                tx.prepare_cached("UPDATE profile_redirects SET to_id = ?2 WHERE to_id = ?1")
                    .and_then(|mut s| s.execute([from, to]))
                    .map_err(db)?;
                tx.prepare_cached(
                    "INSERT INTO profile_redirects (from_id, to_id) VALUES (?1, ?2)
                     ON CONFLICT (from_id) DO UPDATE SET to_id = excluded.to_id",
                )
                .and_then(|mut s| s.execute([from, to]))
                .map_err(db)?;
            }
            {
                let mut stmt = tx
                    .prepare_cached(
                        "UPDATE audiences SET member_count = member_count + ?2 WHERE num = ?1",
                    )
                    .map_err(db)?;
                for (num, delta) in counts.into_iter().filter(|(_, d)| *d != 0) {
                    stmt.execute([num, delta]).map_err(db)?;
                }
            }
            insert_changes(tx, &batch.changes)?;
            if let Some(c) = batch.cursor {
                set_state(tx, "cursor", Some(&c.to_string()))?;
            }
            for (key, value) in &batch.state {
                set_state(tx, key, value.as_deref())?;
            }
            Ok(())
        })
        .await
    }

    async fn reset_profiles(&self, fence: Option<Fence>) -> StoreResult<i64> {
        self.write(move |tx| {
            check_fence(tx, fence.as_ref())?;
            reset_profiles_in(tx)
        })
        .await
    }

    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        let prefix = prefix.to_owned();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, value FROM cdp_state WHERE substr(key, 1, length(?1)) = ?1 ORDER BY key",
                )
                .map_err(db)?;
            let rows = stmt
                .query_map([&prefix], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(db)?;
            rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
        })
        .await
    }

    async fn finish_rebuild(&self) -> StoreResult<()> {
        self.write(|tx| set_state(tx, "rebuild_target", None)).await
    }
}
