//! Hot profiles in memory for the profile processor, within a byte budget.
//!
//! Real event streams are skewed: a few people make most events, and one person's events come
//! in bursts. The processor reads each event's profile with its member list before applying
//! it; [`CachedProfiles`] answers those reads from memory for profiles it has seen committed.
//!
//! Coherence: the cache is filled and changed **only by commits that succeeded**
//! ([`ProfileStore::commit_profile_batch`] through this wrapper), with the profiles and member
//! lists the batch wrote, so it never shows a state that did not commit. A read that misses
//! does not fill it (a read racing a commit could otherwise put back the older state). What
//! changes profiles elsewhere empties it: a rebuild ([`ProfileStore::reset_profiles`]), an
//! erasure (the [`Cdp`](super::Cdp) calls [`ProfileCache::clear`]), and a commit that failed
//! (it may have committed all the same, e.g. a lost connection). Merged-away profiles leave
//! it with their batch. It is in memory only: a restart starts empty. With several nodes
//! another node may write profiles, so the cache is off there.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use hashlink::LruCache;

use crate::metrics::Metrics;
use tributary_lang::ProfileState;

use crate::store::{
    Fence, IdentityRow, MemberList, Membership, ProcessorPosition, Profile, ProfileBatch,
    ProfileStore, ProfileWrite, StoreResult, Timestamp,
};

/// The budget a [`Cdp`](super::Cdp) starts with (off); the server sets `profile_cache_mb`'s.
pub const DEFAULT_BUDGET_BYTES: usize = 0;

/// Profiles with their member lists, least recently used evicted first.
pub struct ProfileCache {
    entries: Mutex<Entries>,
    metrics: Metrics,
}

struct Entries {
    map: LruCache<String, Cached>,
    bytes: usize,
    budget: usize,
}

/// A profile as its batch wrote it: the state in its stored binary form (a few hundred
/// bytes, copied cheaply at commit and decoded on a hit like a read from the store), not the
/// decoded state (a deep copy each way, and several times the memory).
struct Cached {
    state: Box<[u8]>,
    created_at: Timestamp,
    updated_at: Timestamp,
    members: MemberList,
    bytes: usize,
}

impl ProfileCache {
    pub fn new(budget_bytes: usize, metrics: Metrics) -> Self {
        Self {
            entries: Mutex::new(Entries {
                map: LruCache::new_unbounded(),
                bytes: 0,
                budget: budget_bytes,
            }),
            metrics,
        }
    }

    /// Sets the budget; entries beyond it are evicted (0 empties and turns the cache off).
    pub fn set_budget(&self, bytes: usize) {
        let mut e = self.lock();
        e.budget = bytes;
        e.evict_to_budget();
        self.report(&e);
    }

    /// Forgets every profile.
    pub fn clear(&self) {
        let mut e = self.lock();
        e.map.clear();
        e.bytes = 0;
        self.report(&e);
    }

    /// The cached ones of `ids` and the ids to read from the store.
    fn lookup(&self, ids: Vec<String>) -> (Vec<(Profile, MemberList)>, Vec<String>) {
        let mut e = self.lock();
        if e.budget == 0 {
            return (Vec::new(), ids);
        }
        let (mut hits, mut misses) = (Vec::new(), Vec::new());
        for id in ids {
            let hit = e.map.get(&id).and_then(|c| {
                // Undecodable (it was encoded by this process, so never): read it instead.
                let state = ProfileState::decode(&c.state).ok()?;
                let profile = Profile {
                    id: id.clone(),
                    state,
                    created_at: c.created_at,
                    updated_at: c.updated_at,
                };
                Some((profile, c.members.clone()))
            });
            match hit {
                Some(hit) => hits.push(hit),
                None => misses.push(id),
            }
        }
        let lookups = &self.metrics.cdp_profile_cache_lookups;
        lookups
            .with_label_values(&["hit"])
            .inc_by(hits.len() as u64);
        lookups
            .with_label_values(&["miss"])
            .inc_by(misses.len() as u64);
        (hits, misses)
    }

    /// What `batch`, now committed, wrote: its profiles with their whole member lists; every
    /// other profile it touched (merged away, memberships changed without a whole list) is
    /// forgotten.
    fn committed(&self, batch: &ProfileBatch) {
        let mut e = self.lock();
        if e.budget == 0 {
            return;
        }
        for id in &batch.deletes {
            e.remove(id);
        }
        // Membership changes of profiles the batch did not write whole (a re-evaluation).
        let written = batch.listed_profiles();
        let partial = batch
            .memberships_added
            .iter()
            .map(|m| m.profile_id.as_str())
            .chain(batch.memberships_removed.iter().map(|(_, p)| p.as_str()));
        for id in partial {
            if !written.contains(id) {
                e.remove(id);
            }
        }
        for write in &batch.upserts {
            match &write.members {
                Some(members) => e.insert(write, members),
                None => e.remove(&write.profile.id),
            }
        }
        e.evict_to_budget();
        self.report(&e);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn report(&self, e: &Entries) {
        self.metrics.cdp_profile_cache_bytes.set(e.bytes as i64);
    }
}

impl Entries {
    fn insert(&mut self, write: &ProfileWrite, members: &MemberList) {
        let p = &write.profile;
        let bytes = weight(&p.id, &write.encoded_state, members);
        let cached = Cached {
            state: write.encoded_state.as_slice().into(),
            created_at: p.created_at,
            updated_at: p.updated_at,
            members: members.clone(),
            bytes,
        };
        self.bytes += bytes;
        if let Some(old) = self.map.insert(p.id.clone(), cached) {
            self.bytes -= old.bytes;
        }
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.map.remove(id) {
            self.bytes -= old.bytes;
        }
    }

    fn evict_to_budget(&mut self) {
        while self.bytes > self.budget {
            match self.map.remove_lru() {
                Some((_, old)) => self.bytes -= old.bytes,
                None => break,
            }
        }
    }
}

/// What an entry holds in memory: the key and the state's bytes, a member list entry an
/// `Arc` and a time (32 B), and the map's own entry with the allocations' headers (~160 B).
fn weight(id: &str, encoded_state: &[u8], members: &MemberList) -> usize {
    160 + id.len() + encoded_state.len() + 32 * members.len()
}

/// A [`ProfileStore`] whose processor reads come from a [`ProfileCache`] where they can (see
/// the module doc); everything else goes to `store`.
pub struct CachedProfiles {
    store: Arc<dyn ProfileStore>,
    cache: Arc<ProfileCache>,
}

impl CachedProfiles {
    pub fn new(store: Arc<dyn ProfileStore>, cache: Arc<ProfileCache>) -> Self {
        Self { store, cache }
    }
}

#[async_trait]
impl ProfileStore for CachedProfiles {
    async fn processor_position(&self) -> StoreResult<ProcessorPosition> {
        self.store.processor_position().await
    }

    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>> {
        self.store.processor_lag().await
    }

    async fn lookup_identities(
        &self,
        keys: Vec<(String, String)>,
    ) -> StoreResult<Vec<IdentityRow>> {
        self.store.lookup_identities(keys).await
    }

    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>> {
        self.store.get_profiles(ids).await
    }

    async fn get_profile(&self, id: &str) -> StoreResult<Profile> {
        self.store.get_profile(id).await
    }

    async fn list_profiles(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        self.store.list_profiles(after, limit).await
    }

    async fn count_profiles(&self) -> StoreResult<u64> {
        self.store.count_profiles().await
    }

    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>> {
        self.store.profile_identities(id).await
    }

    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>> {
        self.store.profile_memberships(ids).await
    }

    async fn get_profiles_with_memberships(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>> {
        let (mut found, misses) = self.cache.lookup(ids);
        if !misses.is_empty() {
            found.extend(self.store.get_profiles_with_memberships(misses).await?);
        }
        Ok(found)
    }

    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Membership>> {
        self.store.list_members(audience_id, after, limit).await
    }

    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()> {
        match self.store.commit_profile_batch(batch.clone()).await {
            Ok(()) => {
                self.cache.committed(&batch);
                Ok(())
            }
            Err(e) => {
                // It may have committed anyway (a connection lost after the commit).
                self.cache.clear();
                Err(e)
            }
        }
    }

    async fn reset_profiles(&self, fence: Option<Fence>) -> StoreResult<i64> {
        let reset = self.store.reset_profiles(fence).await;
        self.cache.clear();
        reset
    }

    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>> {
        self.store.processor_state(prefix).await
    }

    async fn finish_rebuild(&self) -> StoreResult<()> {
        self.store.finish_rebuild().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn profile(id: &str) -> Profile {
        Profile {
            id: id.into(),
            state: Default::default(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn write(id: &str, members: &[&str]) -> ProfileWrite {
        let list = members
            .iter()
            .map(|a| (Arc::from(*a), Utc::now()))
            .collect();
        ProfileWrite::new(profile(id)).with_members(list)
    }

    fn cached(cache: &ProfileCache, id: &str) -> Option<Vec<String>> {
        let (hits, _) = cache.lookup(vec![id.to_string()]);
        hits.into_iter()
            .next()
            .map(|(_, list)| list.iter().map(|(a, _)| a.to_string()).collect())
    }

    #[test]
    fn committed_profiles_are_kept_and_what_a_batch_only_touched_is_forgotten() {
        let cache = ProfileCache::new(1 << 20, Metrics::new());
        cache.committed(&ProfileBatch {
            upserts: vec![write("a", &["vip"]), write("b", &[]), write("c", &[])],
            ..Default::default()
        });
        assert_eq!(cached(&cache, "a"), Some(vec!["vip".to_string()]));
        // b merged into a; c's memberships changed by a re-evaluation without its whole list.
        cache.committed(&ProfileBatch {
            upserts: vec![write("a", &["vip", "big"])],
            deletes: vec!["b".into()],
            memberships_removed: vec![("vip".into(), "c".into())],
            ..Default::default()
        });
        assert_eq!(
            cached(&cache, "a"),
            Some(vec!["vip".to_string(), "big".to_string()])
        );
        assert_eq!(cached(&cache, "b"), None, "merged away");
        assert_eq!(cached(&cache, "c"), None, "changed without its whole list");
    }

    #[test]
    fn the_budget_evicts_the_least_recently_used() {
        let one = weight("p0", &profile("p0").state.to_bytes(), &Vec::new());
        let cache = ProfileCache::new(3 * one, Metrics::new());
        for id in ["p0", "p1", "p2"] {
            cache.committed(&ProfileBatch {
                upserts: vec![write(id, &[])],
                ..Default::default()
            });
        }
        assert!(cached(&cache, "p0").is_some()); // p0 is now the most recently used
        cache.committed(&ProfileBatch {
            upserts: vec![write("p3", &[])],
            ..Default::default()
        });
        assert!(cached(&cache, "p1").is_none(), "evicted");
        assert!(cached(&cache, "p0").is_some() && cached(&cache, "p3").is_some());
        assert!(cache.lock().bytes <= 3 * one);
        cache.set_budget(0);
        assert!(cached(&cache, "p0").is_none(), "a budget of 0 turns it off");
    }
}
