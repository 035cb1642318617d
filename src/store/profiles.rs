//! Profiles, the identifiers that find them, audience memberships, and the profile
//! processor's position in the event log.
//!
//! Written only by the profile processor (`crate::cdp`), one writer at a time, so everything
//! it reads between two of its commits is current.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Fence, NewAudienceChange, StoreResult, Timestamp};

/// A profile: its fields with their merge states. `state.to_json()` is the user-visible
/// fields object.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub state: tributary_lang::ProfileState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An identifier (`BY` field and value) and the live profile holding it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentityRow {
    pub field: String,
    pub value: String,
    pub profile_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub audience_id: String,
    pub profile_id: String,
    pub entered_at: Timestamp,
}

/// A profile's memberships as kept with it: `(audience id, entered at)`. The audience ids are
/// shared: a processor batch holds thousands of memberships of a few audiences.
pub type MemberList = Vec<(Arc<str>, Timestamp)>;

/// A profile a batch creates or changes, in the form every backend stores.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileWrite {
    pub profile: Profile,
    /// `profile.state` in its stored binary form
    /// ([`ProfileState::encode`](tributary_lang::ProfileState::encode)), encoded by the writer:
    /// the processor does it while computing, off the thread that commits.
    pub encoded_state: Vec<u8>,
    /// The profile's whole member list after the batch, when the writer knows it (the
    /// processor does). The batch's `memberships_added` / `memberships_removed` entries for
    /// this profile must agree with it.
    pub members: Option<MemberList>,
}

impl ProfileWrite {
    /// A write of `profile` that leaves its memberships to the batch's membership changes.
    pub fn new(profile: Profile) -> Self {
        Self {
            encoded_state: profile.state.to_bytes(),
            profile,
            members: None,
        }
    }

    /// The same write, with the profile's whole member list after the batch.
    pub fn with_members(self, members: MemberList) -> Self {
        Self {
            members: Some(members),
            ..self
        }
    }
}

/// Everything one processor step changed: committed in ONE transaction with the processor's
/// cursor, so a crash loses nothing and replays nothing.
#[derive(Debug, Clone, Default)]
pub struct ProfileBatch {
    /// Profiles created or changed.
    pub upserts: Vec<ProfileWrite>,
    /// Profiles merged away (their memberships go too).
    pub deletes: Vec<String>,
    /// Identifiers to (re)point.
    pub identities: Vec<IdentityRow>,
    /// `(merged id, survivor id)`, applied in order: the merged profile's identifiers and
    /// earlier redirects to it are repointed to the survivor.
    pub redirects: Vec<(String, String)>,
    pub memberships_added: Vec<Membership>,
    /// `(audience id, profile id)`.
    pub memberships_removed: Vec<(String, String)>,
    pub changes: Vec<NewAudienceChange>,
    /// The processor's new cursor (last event seq applied); `None` leaves it.
    pub cursor: Option<i64>,
    /// Processor bookkeeping written with the batch (`key` → value; `None` deletes), e.g. the
    /// resume point of an audience re-evaluation.
    pub state: Vec<(String, Option<String>)>,
    /// The processor's lease when several nodes share the work: the batch is refused once it
    /// moved. `None` on a single node.
    pub fence: Option<Fence>,
}

impl ProfileBatch {
    /// The profiles the batch writes with their whole member list
    /// ([`ProfileWrite::members`]): its membership changes of these agree with the list (they
    /// only count); every other profile's list is patched by them.
    pub fn listed_profiles(&self) -> std::collections::HashSet<&str> {
        self.upserts
            .iter()
            .filter(|w| w.members.is_some())
            .map(|w| w.profile.id.as_str())
            .collect()
    }
}

/// The processor's position, and the rebuild in progress if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessorPosition {
    /// The last event `seq` applied.
    pub cursor: i64,
    /// A rebuild runs until the cursor reaches this `seq`.
    pub rebuild_target: Option<i64>,
}

/// Profiles, identities and memberships, and the processor's cursor over the event log.
///
/// [`commit_profile_batch`](ProfileStore::commit_profile_batch) and
/// [`reset_profiles`](ProfileStore::reset_profiles) append audience changes, and so keep the
/// [`OutboxStore`](super::OutboxStore)'s ordering contract.
#[async_trait]
pub trait ProfileStore: Send + Sync + 'static {
    async fn processor_position(&self) -> StoreResult<ProcessorPosition>;
    /// Events not yet applied by the processor, per stream (streams with none left out).
    async fn processor_lag(&self) -> StoreResult<Vec<(String, u64)>>;
    /// The profiles holding any of these `(field, value)` identifiers.
    async fn lookup_identities(&self, keys: Vec<(String, String)>)
        -> StoreResult<Vec<IdentityRow>>;
    /// Live profiles by id (missing ids are left out; no redirects followed).
    async fn get_profiles(&self, ids: Vec<String>) -> StoreResult<Vec<Profile>>;
    /// One profile; the id of a merged-away profile resolves to its survivor.
    async fn get_profile(&self, id: &str) -> StoreResult<Profile>;
    /// Profiles in id order after `after`, each with its member list (stored with it): for
    /// re-evaluating audiences page by page and for listing.
    async fn list_profiles(
        &self,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<(Profile, MemberList)>>;
    async fn count_profiles(&self) -> StoreResult<u64>;
    /// A profile's identifiers, `(field, value)` sorted.
    async fn profile_identities(&self, id: &str) -> StoreResult<Vec<(String, String)>>;
    /// The memberships of these profiles.
    async fn profile_memberships(&self, ids: Vec<String>) -> StoreResult<Vec<Membership>>;
    /// Live profiles by id with their member lists, read together (the processor's load).
    async fn get_profiles_with_memberships(
        &self,
        ids: Vec<String>,
    ) -> StoreResult<Vec<(Profile, MemberList)>>;
    /// Members in profile id order after `after` (an exclusive profile id cursor).
    async fn list_members(
        &self,
        audience_id: &str,
        after: Option<String>,
        limit: u32,
    ) -> StoreResult<Vec<Membership>>;
    /// One processor step, atomically (see [`ProfileBatch`]).
    async fn commit_profile_batch(&self, batch: Arc<ProfileBatch>) -> StoreResult<()>;
    /// Starts a rebuild: every membership exits (change rows), profiles, identities,
    /// redirects and memberships are cleared, the cursor goes back to 0 and the rebuild
    /// target becomes the newest event `seq` (returned). One transaction, refused like a
    /// batch (`StoreError::LeaseLost`) when `fence`'s lease has moved.
    async fn reset_profiles(&self, fence: Option<Fence>) -> StoreResult<i64>;
    /// Processor bookkeeping entries whose key starts with `prefix` (see
    /// [`ProfileBatch::state`]), in key order.
    async fn processor_state(&self, prefix: &str) -> StoreResult<Vec<(String, String)>>;
    /// Clears the rebuild target once the processor has reached it.
    async fn finish_rebuild(&self) -> StoreResult<()>;
}
