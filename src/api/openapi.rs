//! The OpenAPI 3 document, generated from the handlers' `#[utoipa::path]` annotations and the
//! [`super::model`] types, and served at `GET /api/openapi.json` without a token.
//!
//! The router and the document are built from the same [`OpenApiRouter`]s (see
//! [`super::router`]): a route added with `routes!` is served and documented at once. A route
//! added around it (`.route`, a merged plain `Router`) would not be documented, so the tests
//! below compare the document with what the router itself serves.

use std::sync::LazyLock;

use axum::Json;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi as _, ToSchema as _};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::model::ErrorBody;
use crate::app::AppState;

/// The name of the bearer-token security scheme.
const TOKEN_SCHEME: &str = "token";

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "Tributary",
        description = "Tributary's HTTP API: AWS authorizations, Kinesis import and export jobs, \
                       event streams, mappings, profiles and audiences. Every `/api` route but \
                       this document needs `Authorization: Bearer <token>` (the token is \
                       TRIBUTARY_API_TOKEN or the api-token file in the data directory). \
                       Every failure answers `{\"error\": code, \"message\": text}`; an unknown \
                       route is a 404 `not_found` (a 401 without the token)."
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerToken),
)]
struct ApiDoc;

/// Declares the bearer-token scheme the protected routes refer to.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, doc: &mut OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                TOKEN_SCHEME,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(document))
}

/// The document (no token needed).
#[utoipa::path(get, path = "/api/openapi.json", tag = "health",
    responses((status = 200, description = "This OpenAPI document", body = Object)))]
async fn document() -> Json<&'static OpenApi> {
    static DOCUMENT: LazyLock<OpenApi> = LazyLock::new(openapi);
    Json(&DOCUMENT)
}

/// The whole document: every route of [`super::router`], the schemas they use, and the
/// security scheme. Operation ids are `tag.handler` (handler names repeat across tags).
pub fn openapi() -> OpenApi {
    let routes = super::public_routes().merge(super::protected_routes());
    let mut doc = ApiDoc::openapi();
    doc.merge(routes.into_openapi());
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            if let (Some(id), Some([tag, ..])) = (&op.operation_id, op.tags.as_deref()) {
                op.operation_id = Some(format!("{tag}.{id}"));
            }
        }
    }
    doc
}

/// Marks every route of `routes` as needing the token, with the answers every such route may
/// give besides its own: the 401 of a missing or wrong token and the 500 of an internal error.
pub fn token_required(mut routes: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    let error = |description: &str| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name(ErrorBody::name())))
                        .build(),
                )
                .build(),
        )
    };
    let unauthorized = error("`unauthorized`: the bearer token is missing or wrong");
    let internal = error("`internal`: the server log has the details");
    for item in routes.get_openapi_mut().paths.paths.values_mut() {
        for op in operations(item) {
            op.security = Some(vec![SecurityRequirement::new(
                TOKEN_SCHEME,
                Vec::<String>::new(),
            )]);
            let responses = &mut op.responses.responses;
            responses.insert("401".into(), unauthorized.clone());
            responses.insert("500".into(), internal.clone());
        }
    }
    routes
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use axum::body::Body;
    use axum::http::{Method, Request, StatusCode};
    use serde_json::Value;
    use tower::ServiceExt as _;

    use crate::api::tests::{app, TOKEN};

    /// Every method a route could be served for. HEAD is left out: axum answers it for every
    /// GET route by itself, and OpenAPI documents it with the GET.
    const METHODS: [Method; 7] = [
        Method::GET,
        Method::PUT,
        Method::POST,
        Method::DELETE,
        Method::OPTIONS,
        Method::PATCH,
        Method::TRACE,
    ];

    /// The paths the router itself holds, read from its `Debug` output (axum has no API that
    /// lists them). Fails loudly, rather than finding nothing, should that output change.
    fn router_paths(router: &axum::Router) -> BTreeSet<String> {
        let text = format!("{router:?}");
        let start = text
            .find("path_router: ")
            .expect("axum's Router Debug output names its path_router");
        let end = text[start..]
            .find("fallback_router: ")
            .map(|i| start + i)
            .expect("axum's Router Debug output names its fallback_router");
        let node = &text[start..end];
        let paths = &node[node
            .find("Node { paths: {")
            .expect("axum's PathRouter Debug output lists its paths")..];
        paths
            .split(": \"")
            .skip(1)
            .map(|rest| rest.split('"').next().expect("a quoted path").to_owned())
            .collect()
    }

    /// The status the router answers `method` on `path` with, with or without the token.
    async fn probe(router: &axum::Router, method: &Method, path: &str, token: bool) -> StatusCode {
        let mut req = Request::builder().method(method).uri(path);
        if token {
            req = req.header("authorization", format!("Bearer {TOKEN}"));
        }
        let req = req.body(Body::empty()).expect("request builds");
        router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers")
            .status()
    }

    /// `(method, path) → needs the token`.
    type Routes = BTreeMap<(String, String), bool>;

    /// The routes of `a` that `b` lacks, or has with the other token requirement.
    fn missing<'a>(a: &'a Routes, b: &Routes) -> Vec<(&'a (String, String), &'a bool)> {
        a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).collect()
    }

    /// Every operation in the document.
    fn documented(doc: &Value) -> Routes {
        let mut ops = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let secured = op
                    .get("security")
                    .and_then(Value::as_array)
                    .is_some_and(|s| !s.is_empty());
                ops.insert((method.to_uppercase(), path.clone()), secured);
            }
        }
        ops
    }

    /// Each route the router serves is in the document with the same method and path, and
    /// the other way round; and the document says which need the token exactly when the
    /// router asks for it. The paths are read from the router and probed method by method,
    /// so this holds whatever builds the router.
    #[tokio::test]
    async fn every_route_is_documented_and_every_documented_route_served() {
        let app = app().await;
        let router = crate::api::router(app.state.clone());
        let paths = router_paths(&router);
        assert!(paths.contains("/api/jobs/{id}"), "{paths:?}");

        let mut served = Routes::new();
        for path in &paths {
            // Any value matches a `{param}`: an unknown id still reaches the route.
            let concrete: String = path
                .split('/')
                .map(|seg| if seg.starts_with('{') { "x" } else { seg })
                .collect::<Vec<_>>()
                .join("/");
            for method in &METHODS {
                // With the token, a method the path does not serve is a 405 (without it, the
                // token check answers first). The handlers that do run see a throwaway store
                // and ids that do not exist.
                if probe(&router, method, &concrete, true).await != StatusCode::METHOD_NOT_ALLOWED {
                    let anonymous = probe(&router, method, &concrete, false).await;
                    let needs_token = anonymous == StatusCode::UNAUTHORIZED;
                    served.insert((method.to_string(), path.clone()), needs_token);
                }
            }
        }
        let doc = serde_json::to_value(super::openapi()).expect("document serializes");
        let documented = documented(&doc);
        let undocumented = missing(&served, &documented);
        let unserved = missing(&documented, &served);
        assert!(
            undocumented.is_empty() && unserved.is_empty(),
            "served, but not so documented (→ needs the token): {undocumented:?}\n\
             documented, but not so served: {unserved:?}"
        );
    }

    /// The document reads back as OpenAPI 3.x, with unique operation ids and every `$ref`
    /// resolving to a component.
    #[test]
    fn document_is_openapi_3() {
        let text = super::openapi()
            .to_pretty_json()
            .expect("document serializes");
        let parsed: utoipa::openapi::OpenApi =
            serde_json::from_str(&text).expect("document parses as OpenAPI");
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        assert!(
            doc["openapi"].as_str().unwrap().starts_with("3."),
            "{}",
            doc["openapi"]
        );
        assert!(!parsed.paths.paths.is_empty());

        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().expect("operationId").to_owned();
                assert!(ids.insert(id.clone()), "operationId {id} repeats");
            }
        }

        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a schema reference"));
            assert!(
                doc["components"]["schemas"].get(name).is_some(),
                "{r} does not resolve"
            );
        }
    }

    fn collect_refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(r)) = o.get("$ref") {
                    out.push(r.clone());
                }
                o.values().for_each(|v| collect_refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }

    #[tokio::test]
    async fn document_is_served_without_a_token() {
        let app = app().await;
        let (status, doc) = app
            .send(Method::GET, "/api/openapi.json", vec![], false)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(doc, serde_json::to_value(super::openapi()).unwrap());
        assert_eq!(
            doc["components"]["securitySchemes"]["token"]["scheme"],
            "bearer"
        );
    }
}
