//! What the HTTP API's handlers share. Only the API holds this; jobs, the consumer and the
//! profile processor get the narrow handles they use (see `jobs::JobContext`, `cdp::Cdp`).

use std::sync::Arc;

use crate::aws::{AwsAccess, AwsConnector};
use crate::cdp::Cdp;
use crate::cluster::Membership;
use crate::jobs::{JobContext, JobManager};
use crate::metrics::Metrics;
use crate::secrets::{ApiToken, MasterKey};
use crate::store::DynStore;

#[derive(Clone)]
pub struct AppState {
    pub store: DynStore,
    /// Seals the secrets of new authorizations.
    pub master_key: MasterKey,
    pub api_token: Arc<ApiToken>,
    /// Acting as a stored authorization; its `connector()` has Tributary's own AWS clients
    /// and identity.
    pub access: AwsAccess,
    pub metrics: Metrics,
    pub jobs: JobManager,
    /// Mappings, the profile processor and audiences (one shared handle).
    pub cdp: Cdp,
    /// This node's place among the nodes sharing the store (alone: [`Membership::solo`]).
    pub membership: Membership,
    /// What retention deletes when (the server's settings; defaults in tests).
    pub retention: crate::config::RetentionSettings,
}

impl AppState {
    /// Wires a server's parts around one store: each part gets the handles it uses.
    pub fn new(
        store: DynStore,
        master_key: MasterKey,
        api_token: ApiToken,
        aws: AwsConnector,
        metrics: Metrics,
    ) -> Self {
        Self::with_membership(
            store,
            master_key,
            api_token,
            aws,
            metrics,
            Membership::solo(),
        )
    }

    /// [`AppState::new`] for a node that shares its store with others.
    pub fn with_membership(
        store: DynStore,
        master_key: MasterKey,
        api_token: ApiToken,
        aws: AwsConnector,
        metrics: Metrics,
        membership: Membership,
    ) -> Self {
        let access = AwsAccess::new(store.clone(), master_key.clone(), aws);
        let cdp = Cdp::with_cluster(
            store.clone().into(),
            metrics.clone(),
            membership.is_clustered(),
        );
        let jobs = JobManager::new(JobContext {
            store: store.clone(),
            aws: access.clone(),
            metrics: metrics.clone(),
            membership: membership.clone(),
            suppressions: cdp.suppressions(),
        });
        AppState {
            retention: Default::default(),
            cdp,
            membership,
            store,
            master_key,
            api_token: Arc::new(api_token),
            access,
            metrics,
            jobs,
        }
    }
}
