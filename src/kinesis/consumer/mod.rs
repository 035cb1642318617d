//! The shard consumer (work in progress).

use tokio_util::sync::CancellationToken;

use crate::app::AppState;
use crate::jobs::import::ImportConfig;
use crate::store::Job;

pub async fn run_import(_state: &AppState, _job: &Job, _config: &ImportConfig, cancel: CancellationToken) -> Result<(), String> {
    cancel.cancelled().await;
    Ok(())
}
