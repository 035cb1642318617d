//! Erasing a person, and the suppression list that keeps them from coming back.
//!
//! An erasure ([`Cdp::erase`]) runs on the node that runs the profile processor, in steps that
//! each commit, tracked by an erasure record ([`ErasureStore`]):
//!
//! 1. the record, `pending`, with the profile's identifiers;
//! 2. the events that carry one of them in a mapped identity field (found by running each
//!    stream's mapping over the log, its `WHERE` left out), deleted page by page while the
//!    processor keeps running;
//! 3. under the processor's write turn (so it cannot apply an event of the person in between):
//!    the events stored since step 2 began, then the profile itself, its identities and
//!    memberships, with an `exit` (reason `deleted`) per audience into the outbox and the
//!    identifiers onto the suppression list when asked;
//! 4. dead letters whose raw bytes hold an identifier; the record is marked `done` and forgets
//!    the values, and the store overwrites the deleted bytes.
//!
//! Every step is idempotent, so a record found `pending` (a crash, a stop) is run again from
//! step 2 when the processor next starts.
//!
//! The suppression list holds SHA-256 hashes of identifier values only. [`Suppressions`]
//! keeps it in memory with the mappings, refreshed every [`REFRESH`] and after each change
//! made here, and tells the import and `POST /api/collect` which events to drop.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;
use tributary_lang::Mapping;

use super::{Cdp, CdpError, MappingRegistry};
use crate::store::{Erasure, ErasureState, EventFields, NewEvent, ProfileErasure, StoreError};

/// Events read per page while looking for a person's events.
const SCAN_PAGE: u32 = 1000;
/// How often every node re-reads the suppression list and the mappings.
pub const REFRESH: Duration = Duration::from_secs(1);
/// How long `erase` waits for another node's processor to carry out an erasure.
const CLUSTER_WAIT: Duration = Duration::from_secs(60);

/// The hex SHA-256 of an identifier's value: what the suppression list stores.
pub fn hash_value(value: &str) -> String {
    hex::encode(Sha256::digest(value.as_bytes()))
}

/// Each mapped stream's mapping with its `WHERE` left out: an event a filter skips still
/// carries the identifiers it holds.
fn identity_mappings(registry: &MappingRegistry) -> HashMap<String, Mapping> {
    registry
        .streams()
        .into_iter()
        .filter_map(|stream| {
            let m = registry.get(&stream)?;
            if m.identities.is_empty() {
                return None;
            }
            let mut m = (**m).clone();
            m.filter = None;
            Some((stream, m))
        })
        .collect()
}

/// The `(identity field, value)` pairs a mapping finds in an event's fields.
fn identifiers(mapping: &Mapping, fields: &Map<String, Value>) -> Vec<(String, String)> {
    let time = super::time_from_fields(fields).unwrap_or_else(chrono::Utc::now);
    mapping
        .apply(fields, time)
        .map(|m| m.identities)
        .unwrap_or_default()
}

/// The suppression list in memory (hashes by identity field) with the mappings that find
/// identifiers in events. Cheap to clone; empty until first refreshed.
#[derive(Clone, Default)]
pub struct Suppressions {
    snapshot: Arc<RwLock<Arc<Snapshot>>>,
}

#[derive(Default)]
struct Snapshot {
    /// `(identity field, hex SHA-256 of the value)`.
    hashes: HashSet<(String, String)>,
    mappings: HashMap<String, Mapping>,
}

impl Suppressions {
    /// Drops the events of `stream` that carry a suppressed identifier; returns how many went.
    /// Costs nothing while the list is empty.
    pub fn drop_suppressed(&self, stream: &str, events: &mut Vec<NewEvent>) -> u64 {
        let snap = self.snapshot.read().expect("lock").clone();
        if snap.hashes.is_empty() {
            return 0;
        }
        let Some(mapping) = snap.mappings.get(stream) else {
            return 0;
        };
        let before = events.len();
        events.retain(|e| !snap.suppressed(mapping, &e.fields));
        (before - events.len()) as u64
    }

    fn replace(&self, snapshot: Snapshot) {
        *self.snapshot.write().expect("lock") = Arc::new(snapshot);
    }
}

impl Snapshot {
    fn suppressed(&self, mapping: &Mapping, fields: &EventFields) -> bool {
        let Ok(fields) = serde_json::from_str::<Map<String, Value>>(fields.as_str()) else {
            return false;
        };
        identifiers(mapping, &fields)
            .into_iter()
            .any(|(field, value)| self.hashes.contains(&(field, hash_value(&value))))
    }
}

/// What `DELETE /api/profiles/…` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Erased {
    pub record: Erasure,
}

impl Cdp {
    /// The suppression list as import jobs and `POST /api/collect` check it.
    pub fn suppressions(&self) -> Suppressions {
        self.inner.suppressions.clone()
    }

    /// Re-reads the suppression list and the mappings into [`Cdp::suppressions`].
    pub async fn refresh_suppressions(&self) -> Result<(), CdpError> {
        let stores = self.stores();
        let hashes = stores
            .erasure
            .list_suppressions()
            .await?
            .into_iter()
            .map(|s| (s.field, s.hash))
            .collect();
        let mappings = identity_mappings(&*self.mappings().await?);
        self.inner
            .suppressions
            .replace(Snapshot { hashes, mappings });
        Ok(())
    }

    /// Keeps [`Cdp::suppressions`] current (changes made through other nodes, new mappings)
    /// until `shutdown`.
    pub async fn follow_suppressions(self, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh_suppressions().await {
                tracing::warn!(error = %e, "cannot read the suppression list; retrying");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    }

    /// Erases the person whose profile is `profile_id` (a merged-away id finds its survivor):
    /// see the module doc. `NotFound` when there is no such profile.
    pub async fn erase(&self, profile_id: &str, suppress: bool) -> Result<Erasure, CdpError> {
        let stores = self.stores();
        let profile = stores.profiles.get_profile(profile_id).await?;
        let identities = stores.profiles.profile_identities(&profile.id).await?;
        let record = stores
            .erasure
            .begin_erasure(&profile.id, identities, suppress)
            .await?;
        tracing::info!(erasure = %record.id, profile = %profile.id, suppress, "erasing a person");
        if self.defers_to_cluster() {
            return self.wait_for_erasure(&record.id).await;
        }
        self.run_erasure(record).await
    }

    /// With several nodes: the processor's node runs the erasure (`resume_erasures`).
    async fn wait_for_erasure(&self, id: &str) -> Result<Erasure, CdpError> {
        let deadline = tokio::time::Instant::now() + CLUSTER_WAIT;
        loop {
            let record = self.stores().erasure.get_erasure(id).await?;
            if record.state == ErasureState::Done {
                self.refresh_suppressions().await?;
                return Ok(record);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(CdpError::Store(StoreError::Conflict(format!(
                    "erasure {id} is recorded but the node running the profile processor has not finished it within {}s; it completes there (see GET /api/cluster)",
                    CLUSTER_WAIT.as_secs()
                ))));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the erasures a stop or a crash interrupted (or other nodes recorded); returns how
    /// many ran. The processor calls it when it starts, and with several nodes every
    /// [`REFRESH`].
    pub async fn resume_erasures(&self) -> Result<usize, CdpError> {
        let pending = self.stores().erasure.pending_erasures().await?;
        let n = pending.len();
        for record in pending {
            tracing::info!(erasure = %record.id, profile = %record.profile_id, "resuming an erasure");
            self.run_erasure(record).await?;
        }
        Ok(n)
    }

    /// Steps 2–4 of the module doc, for a pending record.
    async fn run_erasure(&self, record: Erasure) -> Result<Erasure, CdpError> {
        let stores = self.stores();
        let keys: HashSet<(String, String)> = record.identities.iter().cloned().collect();
        let head = stores.events.max_event_seq().await?;
        let mut deleted = self.delete_events_carrying(&keys, 0, head).await?;
        {
            let _guard = self.write_turn().await;
            deleted += self.delete_events_carrying(&keys, head, i64::MAX).await?;
            // Merged since the record was made: its survivor's identifiers are the person's
            // too, and their events are found now (rare, so under the turn).
            let live = match stores.profiles.get_profile(&record.profile_id).await {
                Ok(p) => Some(p.id),
                Err(StoreError::NotFound { .. }) => None,
                Err(e) => return Err(e.into()),
            };
            if let Some(live) = live {
                let more: HashSet<(String, String)> = stores
                    .profiles
                    .profile_identities(&live)
                    .await?
                    .into_iter()
                    .filter(|k| !keys.contains(k))
                    .collect();
                if !more.is_empty() {
                    deleted += self.delete_events_carrying(&more, 0, i64::MAX).await?;
                }
            }
            let suppressions = match record.suppress {
                true => record
                    .identities
                    .iter()
                    .map(|(field, value)| (field.clone(), hash_value(value)))
                    .collect(),
                false => Vec::new(),
            };
            let erased = stores
                .erasure
                .erase_profile(ProfileErasure {
                    erasure_id: record.id.clone(),
                    suppressions,
                    fence: self.fence(),
                })
                .await;
            self.forget_cached_profiles();
            erased?;
        }
        let values = record.identities.iter().map(|(_, v)| v.clone()).collect();
        stores
            .erasure
            .delete_dead_letters_containing(values)
            .await?;
        let done = stores.erasure.finish_erasure(&record.id, deleted).await?;
        if record.suppress {
            self.refresh_suppressions().await?;
        }
        let c = done.counts;
        tracing::info!(
            erasure = %done.id,
            events = c.events_deleted,
            identities = c.identities_deleted,
            audiences = c.audiences_exited,
            suppressed = c.suppressed,
            "person erased"
        );
        Ok(done)
    }

    /// Deletes the events with a position in `(after, upto]` that carry one of `keys` in a
    /// mapped identity field; returns how many went.
    async fn delete_events_carrying(
        &self,
        keys: &HashSet<(String, String)>,
        after: i64,
        upto: i64,
    ) -> Result<u64, CdpError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mappings = identity_mappings(&*self.mappings().await?);
        let streams: Vec<String> = mappings.keys().cloned().collect();
        if streams.is_empty() {
            return Ok(0);
        }
        let stores = self.stores();
        let (mut cursor, mut deleted) = (after, 0);
        while cursor < upto {
            let page = stores
                .events
                .events_after(cursor, SCAN_PAGE, streams.clone())
                .await?;
            let Some(last) = page.last_seq else { break };
            let seqs: Vec<i64> = page
                .events
                .iter()
                .filter(|e| e.seq <= upto)
                .filter(|e| {
                    mappings.get(&e.stream).is_some_and(|m| {
                        identifiers(m, &e.fields)
                            .into_iter()
                            .any(|k| keys.contains(&k))
                    })
                })
                .map(|e| e.seq)
                .collect();
            deleted += stores.erasure.delete_events(seqs).await?;
            cursor = last;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::EventFields;
    use serde_json::json;

    fn registry(text: &str) -> MappingRegistry {
        MappingRegistry::new(vec![crate::store::StreamMapping {
            stream: "web".into(),
            text: text.into(),
            updated_at: chrono::Utc::now(),
        }])
    }

    fn event(fields: Value) -> NewEvent {
        NewEvent {
            event_id: uuid::Uuid::now_v7().to_string(),
            fields: EventFields::from(fields.as_object().unwrap().clone()),
            origin: None,
        }
    }

    #[test]
    fn suppressed_identifiers_drop_events_as_the_mapping_reads_them() {
        let reg = registry(
            "SELECT lower(email) AS email KIND string FROM web WHERE kind = \"buy\" INTO user BY email",
        );
        let s = Suppressions::default();
        let mut events = vec![event(json!({"email": "A@example.com", "kind": "view"}))];
        assert_eq!(s.drop_suppressed("web", &mut events), 0, "an empty list");
        s.replace(Snapshot {
            hashes: [("email".to_owned(), hash_value("a@example.com"))].into(),
            mappings: identity_mappings(&reg),
        });
        let mut events = vec![
            // Lower-cased by the mapping, and dropped though its WHERE would skip it.
            event(json!({"email": "A@example.com", "kind": "view"})),
            event(json!({"email": "b@example.com", "kind": "buy"})),
            event(json!({"other": 1})),
        ];
        assert_eq!(s.drop_suppressed("web", &mut events), 1);
        assert_eq!(events.len(), 2);
        let mut unmapped = vec![event(json!({"email": "a@example.com"}))];
        assert_eq!(s.drop_suppressed("clicks", &mut unmapped), 0);
    }

    /// A crash after the record was made (step 1): the processor's start finishes the erasure.
    #[tokio::test]
    async fn an_interrupted_erasure_completes_when_the_processor_starts() {
        let dir = tempfile::tempdir().unwrap();
        let store: crate::store::DynStore = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("t.db"))
                .await
                .unwrap(),
        );
        let cdp = Cdp::new(store.clone().into(), crate::metrics::Metrics::new());
        cdp.set_mapping(
            "web",
            "SELECT email AS email KIND string, count(*) AS visits KIND int FROM web INTO user BY email",
        )
        .await
        .unwrap();
        let fields =
            |email: &str| EventFields::from(json!({"email": email}).as_object().unwrap().clone());
        let events = ["a@x.org", "b@x.org", "a@x.org"]
            .iter()
            .map(|e| NewEvent {
                event_id: uuid::Uuid::now_v7().to_string(),
                fields: fields(e),
                origin: None,
            })
            .collect();
        store.append_events("web", events).await.unwrap();
        cdp.step(100).await.unwrap();
        let row = &store
            .lookup_identities(vec![("email".into(), "a@x.org".into())])
            .await
            .unwrap()[0];
        let identities = store.profile_identities(&row.profile_id).await.unwrap();
        store
            .begin_erasure(&row.profile_id, identities, true)
            .await
            .unwrap();

        assert_eq!(cdp.resume_erasures().await.unwrap(), 1);
        assert!(store.pending_erasures().await.unwrap().is_empty());
        assert!(store.get_profile(&row.profile_id).await.is_err());
        let left = store.list_events("web", 10, None).await.unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].fields["email"], "b@x.org");
        assert_eq!(store.list_suppressions().await.unwrap().len(), 1);
        let mut again = vec![NewEvent {
            event_id: "e".into(),
            fields: fields("a@x.org"),
            origin: None,
        }];
        assert_eq!(cdp.suppressions().drop_suppressed("web", &mut again), 1);
    }

    #[test]
    fn hashes_are_hex_sha256_of_the_value() {
        assert_eq!(
            hash_value("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
