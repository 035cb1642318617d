//! `/api/cluster`: which nodes share the store and who holds which lease (see
//! `crate::cluster`). Any node answers for all of them.

use axum::extract::State;
use axum::Json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiResult;
use super::model::cluster::{ClusterView, LeaseView, NodeView};
use crate::app::AppState;

const TAG: &str = "cluster";

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(show))
}

/// The nodes and their leases (alone: `clustered` is false and both lists are empty).
#[utoipa::path(get, path = "/api/cluster", tag = TAG,
    responses((status = 200, description = "The nodes and leases", body = ClusterView)))]
async fn show(State(state): State<AppState>) -> ApiResult<Json<ClusterView>> {
    let Some(snapshot) = state.membership.snapshot().await? else {
        return Ok(Json(ClusterView {
            clustered: false,
            this_node: None,
            nodes: Vec::new(),
            leases: Vec::new(),
        }));
    };
    Ok(Json(ClusterView {
        clustered: true,
        this_node: Some(snapshot.this_node),
        nodes: snapshot
            .nodes
            .into_iter()
            .map(|(n, alive)| NodeView {
                id: n.id,
                address: n.address,
                version: n.version,
                started_at: n.started_at,
                last_heartbeat: n.last_heartbeat,
                alive,
            })
            .collect(),
        leases: snapshot
            .leases
            .into_iter()
            .map(|l| LeaseView {
                name: l.name,
                owner: l.owner,
                token: l.token,
                expires_at: l.expires_at,
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    #[tokio::test]
    async fn a_node_alone_says_so() {
        let app = crate::api::tests::app().await;
        let (status, body) = app.get("/api/cluster").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            body,
            json!({"clustered": false, "this_node": null, "nodes": [], "leases": []})
        );
    }
}
