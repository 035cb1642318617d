//! The CDP's definitions, written by people through the API: each stream's mapping and the
//! audiences' filters.

use async_trait::async_trait;

use super::{StoreResult, Timestamp};

/// The mapping text of one event stream (one mapping per stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamMapping {
    pub stream: String,
    pub text: String,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    pub id: String,
    pub slug: String,
    pub name: String,
    pub description: String,
    /// The filter text as written.
    pub filter: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Stream mappings and audience definitions.
#[async_trait]
pub trait CatalogStore: Send + Sync + 'static {
    /// Creates or replaces a stream's mapping text (validated by the caller).
    async fn put_mapping(&self, stream: &str, text: &str) -> StoreResult<StreamMapping>;
    async fn get_mapping(&self, stream: &str) -> StoreResult<StreamMapping>;
    async fn list_mappings(&self) -> StoreResult<Vec<StreamMapping>>;
    /// Fails with `Conflict` when the slug is taken.
    async fn insert_audience(&self, audience: Audience) -> StoreResult<()>;
    /// Replaces name, description, filter (by id).
    async fn update_audience(&self, audience: Audience) -> StoreResult<()>;
    async fn get_audience(&self, slug: &str) -> StoreResult<Audience>;
    /// With member counts, in slug order.
    async fn list_audiences(&self) -> StoreResult<Vec<(Audience, u64)>>;
    /// Deletes the audience and its memberships (its outbox rows stay).
    async fn delete_audience(&self, slug: &str) -> StoreResult<()>;
}
