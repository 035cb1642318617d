//! The behaviour every store backend must show: a section per role, run by each backend's
//! tests through [`conformance_tests!`](crate::conformance_tests), so SQLite and any other
//! backend are held to one contract.
//!
//! Most sections are one story (`story`): later steps build on what earlier ones stored, as a
//! running system does. The ordering-contract sections and the self-contained role sections
//! each get a fresh store.

mod backup;
mod catalog;
mod control;
mod erasure;
mod event_log;
mod import;
mod lease;
mod outbox;
mod profiles;
mod retention;

use std::sync::Arc;

use chrono::Utc;
use serde_json::json;

use super::*;
pub use event_log::{follow_while_appending, FollowReport};

/// Generates one `#[tokio::test]` per conformance section for a backend. `$open` is an async
/// fn returning `(guard, DynStore)` for a new, empty store; the guard (a temporary directory,
/// a database to drop) lives as long as the test. `$reopen` opens a store on a backup
/// directory: a closure `|dir: PathBuf| async { Option<DynStore> }`, `None` for a backend
/// whose backups are made by its own tools.
#[macro_export]
macro_rules! conformance_tests {
    ($open:path, reopen = $reopen:expr) => {
        #[tokio::test]
        async fn conformance_backup() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::backup_section(&*store, $reopen).await;
        }

        #[tokio::test]
        async fn conformance_control() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::control_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_catalog() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::catalog_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_import_event_log_profiles_outbox_story() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::story(&*store).await;
        }

        #[tokio::test]
        async fn conformance_member_lists_are_written_whole() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::member_lists_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_erasure_and_suppressions() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::erasure_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_retention() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::retention_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_nodes_and_leases() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::lease_section(&*store).await;
        }

        #[tokio::test]
        async fn conformance_fenced_writes_fail_once_the_lease_moved() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::fencing_section(&*store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_event_log_readers_never_skip_concurrent_writers() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::event_log_ordering_section(store).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn conformance_outbox_readers_never_skip_concurrent_writers() {
            let (_guard, store) = $open().await;
            $crate::store::conformance::outbox_ordering_section(store).await;
        }
    };
}

/// [`ControlStore`] on its own.
pub async fn control_section(store: &dyn Store) {
    control::authorizations(store).await;
}

/// [`CatalogStore`] on its own.
pub async fn catalog_section(store: &dyn Store) {
    catalog::mappings_and_audiences(store).await;
}

/// [`ProfileStore`]'s member lists on their own.
pub async fn member_lists_section(store: &dyn Store) {
    profiles::member_lists_are_written_whole(store).await;
}

/// [`ErasureStore`], with the profile, event-log and outbox rows it deletes and writes.
pub async fn erasure_section(store: &dyn Store) {
    erasure::erase_a_person(store).await;
    erasure::dead_letters_carrying_a_value_go(store).await;
}

/// [`RetentionStore`], with the event log and outbox rows it prunes.
pub async fn retention_section(store: &dyn Store) {
    retention::settings_pruning_and_sizes(store).await;
}

/// [`BackupStore`], with the rows a copy must hold.
pub async fn backup_section<F, Fut>(store: &dyn Store, reopen: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: std::future::Future<Output = Option<DynStore>>,
{
    backup::a_copy_opens_as_an_ordinary_store(store, reopen).await;
}

/// [`LeaseStore`] on its own.
pub async fn lease_section(store: &dyn Store) {
    lease::nodes_and_leases(store).await;
}

/// Fenced writes of the import, profile and outbox roles against [`LeaseStore`].
pub async fn fencing_section(store: &dyn Store) {
    lease::fenced_writes_fail_once_the_lease_moved(store).await;
}

/// The import, event-log, profile and outbox sections as one story.
pub async fn story(store: &dyn Store) {
    store
        .insert_authorization(auth("a1", "prod"))
        .await
        .unwrap();
    import::jobs_and_checkpoints(store).await;
    import::shard_batches_are_idempotent(store).await;
    event_log::event_log_pages_newest_first(store).await;
    profiles::cdp_mappings_and_events_after(store).await;
    profiles::cdp_profile_batches(store).await;
    outbox::cdp_audiences_and_outbox(store).await;
    outbox::export_progress_and_backfill_pages(store).await;
    profiles::cdp_reset_for_rebuild(store).await;
}

/// [`EventLog`]'s ordering contract, with writers appending concurrently.
pub async fn event_log_ordering_section(store: DynStore) {
    event_log::readers_never_skip_concurrent_writers(store).await;
}

/// [`OutboxStore`]'s ordering contract, with writers appending concurrently.
pub async fn outbox_ordering_section(store: DynStore) {
    outbox::readers_never_skip_concurrent_writers(store).await;
}

pub(super) fn auth(id: &str, label: &str) -> Authorization {
    Authorization {
        id: id.into(),
        label: label.into(),
        description: "d".into(),
        credentials: Credentials::AwsKeys {
            access_key_id: "AKIAEXAMPLE".into(),
            sealed_secret_access_key: vec![1, 2, 3],
        },
        created_at: Utc::now(),
    }
}

pub(super) fn job(id: &str, auth_id: &str) -> Job {
    Job {
        id: id.into(),
        job_type: JobType::KinesisImport,
        label: format!("job {id}"),
        description: String::new(),
        authorization_id: auth_id.into(),
        config: json!({"stream": "web"}),
        state: JobState::Running,
        last_error: None,
        totals: JobTotals::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// Shard `s0` being read from the start, nothing committed yet.
pub(super) fn reading_shard() -> ShardCheckpoint {
    ShardCheckpoint::unread(
        "s0".into(),
        vec![],
        ShardState::Reading,
        StartPosition::TrimHorizon,
    )
}

pub(super) fn event(id: &str, n: i64) -> NewEvent {
    NewEvent {
        event_id: id.into(),
        fields: json!({"n": n}).as_object().unwrap().clone().into(),
        origin: Some(KinesisOrigin {
            stream: "clicks".into(),
            shard_id: "s0".into(),
            sequence_number: format!("{n}"),
            sub_sequence_number: 0,
            partition_key: "pk".into(),
            approximate_arrival_timestamp: None,
        }),
    }
}

pub(super) fn profile(id: &str, visits: i64) -> Profile {
    let mut state = tributary_lang::ProfileState::new();
    state.fields.insert(
        "visits".into(),
        tributary_lang::FieldState::Count { count: visits },
    );
    Profile {
        id: id.into(),
        state,
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub(super) fn ident(field: &str, value: &str, profile_id: &str) -> IdentityRow {
    IdentityRow {
        field: field.into(),
        value: value.into(),
        profile_id: profile_id.into(),
    }
}

pub(super) fn audience(id: &str, slug: &str) -> Audience {
    Audience {
        id: id.into(),
        slug: slug.into(),
        name: format!("{slug} name"),
        description: String::new(),
        filter: "visits > 1".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

pub(super) fn change(a: &Audience, profile_id: &str, kind: ChangeKind) -> NewAudienceChange {
    NewAudienceChange {
        audience_id: a.id.clone(),
        audience_slug: a.slug.clone(),
        profile_id: profile_id.into(),
        kind,
        at: Utc::now(),
        entered_at: (kind == ChangeKind::Exit).then(Utc::now),
    }
}
/// Plain profile writes (their memberships left to the batch's membership changes).
pub(super) fn writes<const N: usize>(profiles: [Profile; N]) -> Vec<ProfileWrite> {
    profiles.into_iter().map(ProfileWrite::new).collect()
}
