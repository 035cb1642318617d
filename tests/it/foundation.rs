//! The foundation: authorizations (keys and delegated roles), the AWS helper routes (verify,
//! stream list, policies), API authentication and the CLI on top of it, end to end against a
//! real `tributary serve` with moto as STS, IAM and Kinesis.
//!
//! Each test that needs IAM enforcement gets its own moto: enforcement is per moto server.

use std::path::Path;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::{
    create_stream, free_port, id_of, kinesis_client, peer_path, Moto, TestServer, MOTO_ACCOUNT_ID,
    TEST_API_TOKEN, TEST_REGION,
};

/// What Tributary's own IAM user may do: assume customer roles (and, via moto's exemption,
/// GetCallerIdentity).
const TRIBUTARY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["sts:AssumeRole"],"Resource":"*"}]}"#;
/// The import job's least privilege, on "*" because moto checks Kinesis against "*".
const IMPORT_ONLY_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards"],
    "Resource":"*"}]}"#;
const IMPORT_AND_LIST_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:GetRecords","kinesis:GetShardIterator","kinesis:ListShards",
    "kinesis:ListStreams"],"Resource":"*"}]}"#;
const LIST_STREAMS_POLICY: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":["kinesis:ListStreams"],"Resource":"*"}]}"#;

/// A secret key that must never be found anywhere on disk or in output.
const CANARY_SECRET: &str = "CanarySecretKey/0123456789+abcdefghijKLMNOP";
const CANARY_KEY_ID: &str = "AKIACANARY0000000001";

/// A server that does not talk to AWS at all (CRUD, auth, CLI).
async fn offline_server() -> TestServer {
    TestServer::builder().start().await
}

/// A server whose Kinesis and STS are `moto`, running as the IAM user with these keys.
async fn server_on_moto(moto: &Moto, key: &str, secret: &str) -> TestServer {
    TestServer::builder()
        .kinesis_endpoint(&moto.endpoint())
        .sts_endpoint(&moto.endpoint())
        .credentials(key, secret)
        .start()
        .await
}

/// Creates Tributary's own IAM user in moto; returns its keys.
async fn tributary_user(moto: &Moto) -> (String, String) {
    moto.create_user_with_policy("tributary", TRIBUTARY_POLICY)
        .await
}

/// A trust policy letting `principal_arn` assume the role, with `external_id` if given.
fn trust_policy_for(principal_arn: &str, external_id: Option<&str>) -> String {
    let mut statement = json!({
        "Effect": "Allow",
        "Principal": { "AWS": principal_arn },
        "Action": "sts:AssumeRole",
    });
    if let Some(ext) = external_id {
        statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": ext } });
    }
    json!({ "Version": "2012-10-17", "Statement": [statement] }).to_string()
}

fn role_arn(name: &str) -> String {
    format!("arn:aws:iam::{MOTO_ACCOUNT_ID}:role/{name}")
}

/// POSTs an authorization and asserts 201.
async fn create_auth(server: &TestServer, body: Value) -> Value {
    let (status, created) = server.post("/api/authorizations", &body).await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "create {body}: {created}\n{}",
        server.logs()
    );
    created
}

fn keys_body(label: &str, key: &str, secret: &str) -> Value {
    json!({
        "label": label,
        "description": format!("{label} keys"),
        "method": "aws_keys",
        "access_key_id": key,
        "secret_access_key": secret,
    })
}

/// Asserts the `{"error","message"}` shape with this status and code; returns the message.
fn assert_error(status: StatusCode, body: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["error"], want_code, "{body}");
    let message = body["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error without message: {body}"));
    assert!(!message.is_empty(), "{body}");
    message.to_string()
}

fn streams_path(auth: &str) -> String {
    format!("/api/aws/streams?authorization={auth}&region={TEST_REGION}")
}

fn verify_path(auth: &str) -> String {
    format!("/api/authorizations/{auth}/verify?region={TEST_REGION}")
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read data dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(path.display().to_string());
                }
            }
        }
    }
    hits
}

fn db_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tributary.db"))
        .collect();
    names.sort();
    names
}

/// Runs the `tributary` CLI against `server` with the test token; `(success, stdout, stderr)`.
fn cli(
    server: &TestServer,
    token: &str,
    args: &[&str],
    stdin: Option<&str>,
) -> (bool, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
    cmd.args(args)
        .arg("--server")
        .arg(server.base_url())
        .env("TRIBUTARY_API_TOKEN", token)
        .env_remove("TRIBUTARY_SERVER")
        .env_remove("TRIBUTARY_SECRET_ACCESS_KEY")
        .env_remove("TRIBUTARY_DATA_DIR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn tributary CLI");
    {
        use std::io::Write;
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write CLI stdin");
        }
    }
    let out = child.wait_with_output().expect("CLI output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// 1. Authorizations: both methods, validation, secrets hidden.

#[tokio::test]
async fn authorizations_are_created_listed_shown_and_deleted_without_their_secret() {
    let server = offline_server().await;

    let keys = create_auth(
        &server,
        keys_body("prod keys", CANARY_KEY_ID, CANARY_SECRET),
    )
    .await;
    assert_eq!(keys["method"], "aws_keys");
    assert_eq!(keys["label"], "prod keys");
    assert_eq!(keys["description"], "prod keys keys");
    assert_eq!(keys["access_key_id"], CANARY_KEY_ID);
    assert_eq!(keys["secret_access_key"], "****");
    assert!(keys["created_at"].is_string(), "{keys}");
    let keys_id = id_of(&keys);

    // A role with an explicit external id keeps it; without one, one is generated.
    let arn = role_arn("customer-reader");
    let role = create_auth(
        &server,
        json!({"label": "delegated", "method": "aws_role", "role_arn": arn, "external_id": "my-ext-id"}),
    )
    .await;
    assert_eq!(role["method"], "aws_role");
    assert_eq!(role["role_arn"], arn.as_str());
    assert_eq!(role["external_id"], "my-ext-id");
    assert!(role.get("secret_access_key").is_none(), "{role}");
    let role_id = id_of(&role);

    let generated = create_auth(
        &server,
        json!({"label": "delegated 2", "method": "aws_role", "role_arn": arn}),
    )
    .await;
    let ext = generated["external_id"].as_str().expect("external_id");
    assert!(ext.starts_with("tributary-") && ext.len() >= 20, "{ext}");
    let other = create_auth(
        &server,
        json!({"label": "delegated 3", "method": "aws_role", "role_arn": arn}),
    )
    .await;
    assert_ne!(
        other["external_id"], generated["external_id"],
        "each authorization gets its own external id"
    );

    // List and show: every record, never the secret.
    let (status, list) = server.get("/api/authorizations").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let all = list["authorizations"].as_array().expect("authorizations");
    assert_eq!(all.len(), 4, "{list}");
    let ids: Vec<&str> = all.iter().filter_map(|a| a["id"].as_str()).collect();
    assert!(
        ids.contains(&keys_id.as_str()) && ids.contains(&role_id.as_str()),
        "{list}"
    );
    assert!(!list.to_string().contains(CANARY_SECRET), "{list}");
    let listed_keys = all.iter().find(|a| a["id"] == keys_id.as_str()).unwrap();
    assert_eq!(listed_keys["secret_access_key"], "****");

    let (status, shown) = server.get(&format!("/api/authorizations/{keys_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown, keys, "show returns what create returned");
    assert!(!shown.to_string().contains(CANARY_SECRET));
    let (status, shown) = server.get(&format!("/api/authorizations/{role_id}")).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["external_id"], "my-ext-id");

    // Unknown ids are 404s in the error format.
    let (status, body) = server.get("/api/authorizations/no-such-id").await;
    assert_error(status, &body, 404, "not_found");

    // Delete: 204, then gone.
    let (status, body) = server
        .delete(&format!("/api/authorizations/{role_id}"))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = server.get(&format!("/api/authorizations/{role_id}")).await;
    assert_error(status, &body, 404, "not_found");
    let (status, body) = server
        .delete(&format!("/api/authorizations/{role_id}"))
        .await;
    assert_error(status, &body, 404, "not_found");
    let (_, list) = server.get("/api/authorizations").await;
    assert_eq!(
        list["authorizations"].as_array().unwrap().len(),
        3,
        "{list}"
    );

    // The label of a deleted authorization is free again.
    create_auth(
        &server,
        json!({"label": "delegated", "method": "aws_role", "role_arn": arn}),
    )
    .await;

    assert!(
        !server.logs().contains(CANARY_SECRET),
        "the server log shows the secret"
    );
}

#[tokio::test]
async fn authorization_input_is_validated_with_clear_messages() {
    let server = offline_server().await;
    create_auth(&server, keys_body("taken", CANARY_KEY_ID, CANARY_SECRET)).await;

    // Label: required (empty, blank or absent), unique.
    for label in [json!(""), json!("   ")] {
        let (status, body) = server
            .post(
                "/api/authorizations",
                &json!({"label": label, "method": "aws_keys", "access_key_id": CANARY_KEY_ID, "secret_access_key": "s"}),
            )
            .await;
        let message = assert_error(status, &body, 400, "invalid_field");
        assert!(message.contains("label"), "{message}");
    }
    let (status, body) = server
        .post(
            "/api/authorizations",
            &json!({"method": "aws_keys", "access_key_id": CANARY_KEY_ID, "secret_access_key": "s"}),
        )
        .await;
    let message = assert_error(status, &body, 400, "invalid_request");
    assert!(message.contains("label"), "{message}");

    let (status, body) = server
        .post(
            "/api/authorizations",
            &keys_body("taken", CANARY_KEY_ID, "other"),
        )
        .await;
    let message = assert_error(status, &body, 409, "conflict");
    assert!(message.contains("taken"), "{message}");

    // Fields each method needs.
    let cases = [
        (
            json!({"label": "a", "method": "aws_keys", "secret_access_key": "s"}),
            "access_key_id",
        ),
        (
            json!({"label": "a", "method": "aws_keys", "access_key_id": CANARY_KEY_ID}),
            "secret_access_key",
        ),
        (
            json!({"label": "a", "method": "aws_keys", "access_key_id": "short", "secret_access_key": "s"}),
            "access_key_id",
        ),
        (json!({"label": "a", "method": "aws_role"}), "role_arn"),
        (
            json!({"label": "a", "method": "aws_role", "role_arn": "arn:aws:iam::123456789012:user/bob"}),
            "role_arn",
        ),
        (
            json!({"label": "a", "method": "aws_role", "role_arn": role_arn("r"), "external_id": "bad id!"}),
            "external_id",
        ),
        (
            json!({"label": "a", "method": "aws_role", "role_arn": role_arn("r"), "access_key_id": CANARY_KEY_ID}),
            "access_key_id",
        ),
    ];
    for (request, field) in cases {
        let (status, body) = server.post("/api/authorizations", &request).await;
        let message = assert_error(status, &body, 400, "invalid_field");
        assert!(message.contains(field), "{request} → {message}");
    }

    // Structural problems: unknown method, missing method, unknown field, wrong type.
    let cases = [
        (json!({"label": "a", "method": "password"}), "method"),
        (json!({"label": "a"}), "method"),
        (
            json!({"label": "a", "method": "aws_role", "role_arn": role_arn("r"), "colour": "red"}),
            "colour",
        ),
        (json!({"label": 7, "method": "aws_role"}), "label"),
    ];
    for (request, mentioned) in cases {
        let (status, body) = server.post("/api/authorizations", &request).await;
        let message = assert_error(status, &body, 400, "invalid_request");
        assert!(message.contains(mentioned), "{request} → {message}");
    }

    // Not JSON at all, and JSON without its content type.
    let http = server.client();
    let resp = http
        .post(server.url("/api/authorizations"))
        .header("Authorization", server.bearer())
        .header("Content-Type", "application/json")
        .body("{\"label\": ")
        .send()
        .await
        .expect("send");
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON error body");
    let message = assert_error(status, &body, 400, "invalid_request");
    assert!(message.contains("not valid JSON"), "{message}");

    let resp = http
        .post(server.url("/api/authorizations"))
        .header("Authorization", server.bearer())
        .body(keys_body("plain", CANARY_KEY_ID, "s").to_string())
        .send()
        .await
        .expect("send");
    let status = resp.status();
    let body: Value = resp.json().await.expect("JSON error body");
    let message = assert_error(status, &body, 400, "invalid_request");
    assert!(message.contains("Content-Type"), "{message}");

    // Nothing of the above was stored.
    let (_, list) = server.get("/api/authorizations").await;
    assert_eq!(
        list["authorizations"].as_array().unwrap().len(),
        1,
        "{list}"
    );
}

#[tokio::test]
async fn api_routes_need_the_token_but_health_and_metrics_do_not() {
    let server = offline_server().await;
    let http = server.client();

    for (method, path) in [
        (reqwest::Method::GET, "/api/authorizations"),
        (reqwest::Method::POST, "/api/authorizations"),
        (reqwest::Method::GET, "/api/authorizations/x"),
        (reqwest::Method::DELETE, "/api/authorizations/x"),
        (reqwest::Method::POST, "/api/authorizations/x/verify"),
        (
            reqwest::Method::GET,
            "/api/aws/streams?authorization=x&region=us-east-1",
        ),
        (
            reqwest::Method::GET,
            "/api/aws/policies?region=us-east-1&account=123456789012&stream=s",
        ),
    ] {
        for auth in [
            None,
            Some("Bearer wrong-token".to_string()),
            Some(format!("Bearer {TEST_API_TOKEN}x")),
            Some(format!("Basic {TEST_API_TOKEN}")),
            Some(TEST_API_TOKEN.to_string()),
        ] {
            let mut req = http.request(method.clone(), server.url(path));
            if let Some(value) = &auth {
                req = req.header("Authorization", value);
            }
            if method == reqwest::Method::POST {
                req = req.json(&keys_body("sneaky", CANARY_KEY_ID, CANARY_SECRET));
            }
            let resp = req.send().await.expect("send");
            let status = resp.status();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            let message = assert_error(status, &body, 401, "unauthorized");
            assert!(message.contains("TRIBUTARY_API_TOKEN"), "{message}");
        }
    }
    let (_, list) = server.get("/api/authorizations").await;
    assert_eq!(
        list["authorizations"],
        json!([]),
        "an unauthenticated POST stored nothing"
    );

    let resp = http
        .get(server.url("/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.expect("healthz JSON");
    assert_eq!(body["status"], "ok");

    let resp = http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("metrics");
    assert_eq!(resp.status(), StatusCode::OK);
    let text = resp.text().await.expect("metrics text");
    assert!(
        text.contains("tributary_http_requests_total"),
        "metrics lack the request counter:\n{text}"
    );
    assert!(
        text.contains("status=\"401\""),
        "the 401s above are counted:\n{text}"
    );
}

/// The OpenAPI document is served without a token, and the reference validator
/// (openapi-spec-validator, in the peers' venv) accepts it.
#[tokio::test]
async fn the_openapi_document_is_public_and_valid() {
    use std::io::Write;

    let server = offline_server().await;
    let resp = server
        .client()
        .get(server.url("/api/openapi.json"))
        .send()
        .await
        .expect("openapi.json");
    assert_eq!(resp.status(), StatusCode::OK);
    let doc: Value = resp.json().await.expect("openapi.json is JSON");
    assert!(doc["paths"]["/api/jobs"]["post"].is_object(), "{doc}");

    let mut child = Command::new(peer_path("venv/bin/python"))
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("document to the validator");
    let out = child.wait_with_output().expect("validator output");
    assert!(
        out.status.success(),
        "openapi-spec-validator rejects the document:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// 2. The secret key never reaches the disk.

#[tokio::test]
async fn the_secret_access_key_never_reaches_the_database_files() {
    let mut server = offline_server().await;
    for i in 0..3 {
        create_auth(
            &server,
            keys_body(&format!("keys {i}"), CANARY_KEY_ID, CANARY_SECRET),
        )
        .await;
    }
    let (status, list) = server.get("/api/authorizations").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["authorizations"].as_array().unwrap().len(), 3);

    let dir = server.data_dir().to_path_buf();
    let files = db_files(&dir);
    assert!(
        files.iter().any(|f| f == "tributary.db"),
        "no tributary.db in {files:?}"
    );
    // The key id is stored in clear (it identifies the key); finding it proves the grep sees
    // the rows at all, wherever SQLite put them (main file or WAL).
    assert!(
        !files_containing(&dir, CANARY_KEY_ID.as_bytes()).is_empty(),
        "the access key id is nowhere in {files:?}: the grep looks in the wrong place"
    );
    let leaks = files_containing(&dir, CANARY_SECRET.as_bytes());
    assert!(leaks.is_empty(), "secret found in {leaks:?}");

    // After a clean stop (WAL checkpointed into the main file) still nothing.
    assert!(server.stop().await, "clean exit\n{}", server.logs());
    let leaks = files_containing(&dir, CANARY_SECRET.as_bytes());
    assert!(leaks.is_empty(), "secret found after stop in {leaks:?}");
    assert!(!server.logs().contains(CANARY_SECRET), "secret in the log");

    // And the sealed secret still opens after a restart (it is stored, just not in clear):
    // listing works and the record is intact.
    server.restart().await;
    let (status, list) = server.get("/api/authorizations").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["authorizations"].as_array().unwrap().len(), 3);
}

// ---------------------------------------------------------------------------------------------
// 3. Verify: STS GetCallerIdentity.

#[tokio::test]
async fn verify_names_the_iam_user_of_keys_and_rejects_unknown_keys() {
    let moto = Moto::start().await;
    let (own_key, own_secret) = tributary_user(&moto).await;
    let (alice_key, alice_secret) = moto
        .create_user_with_policy("alice", LIST_STREAMS_POLICY)
        .await;
    moto.enable_iam_enforcement().await;
    let server = server_on_moto(&moto, &own_key, &own_secret).await;

    let alice = id_of(&create_auth(&server, keys_body("alice", &alice_key, &alice_secret)).await);
    let (status, body) = server.post(&verify_path(&alice), &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", server.logs());
    assert_eq!(body["ok"], true);
    assert_eq!(body["account"], MOTO_ACCOUNT_ID);
    assert_eq!(body["arn"], moto.user_arn("alice").as_str());

    // Region defaults to us-east-1; a malformed one is refused before any AWS call.
    let (status, body) = server
        .post(&format!("/api/authorizations/{alice}/verify"), &Value::Null)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .post(
            &format!("/api/authorizations/{alice}/verify?region=Mars"),
            &Value::Null,
        )
        .await;
    let message = assert_error(status, &body, 400, "invalid_field");
    assert!(message.contains("region"), "{message}");

    // Keys moto has never issued, and a real key id with the wrong secret.
    let unknown = id_of(
        &create_auth(
            &server,
            keys_body("unknown", "AKIAUNKNOWN000000000", "not-a-real-secret"),
        )
        .await,
    );
    let (status, body) = server.post(&verify_path(&unknown), &Value::Null).await;
    assert_error(status, &body, 400, "invalid_credentials");
    let wrong_secret = id_of(&create_auth(&server, keys_body("wrong", &alice_key, "nope")).await);
    let (status, body) = server.post(&verify_path(&wrong_secret), &Value::Null).await;
    assert_error(status, &body, 400, "invalid_credentials");

    let (status, body) = server
        .post(&verify_path("no-such-authorization"), &Value::Null)
        .await;
    assert_error(status, &body, 404, "not_found");

    assert!(!server.logs().contains(&alice_secret), "secret in the log");
}

#[tokio::test]
async fn verify_and_policies_say_when_aws_is_unreachable() {
    // Nothing listens on this port: STS and Kinesis cannot be reached.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let server = TestServer::builder()
        .kinesis_endpoint(&dead)
        .sts_endpoint(&dead)
        .start()
        .await;
    let keys = id_of(&create_auth(&server, keys_body("keys", CANARY_KEY_ID, CANARY_SECRET)).await);
    let (status, body) = server.post(&verify_path(&keys), &Value::Null).await;
    let message = assert_error(status, &body, 502, "aws_unreachable");
    assert!(!message.contains(CANARY_SECRET), "{message}");
    let (status, body) = server.get(&streams_path(&keys)).await;
    assert_error(status, &body, 502, "aws_unreachable");

    // A role cannot even be assumed.
    let role = id_of(
        &create_auth(
            &server,
            json!({"label": "role", "method": "aws_role", "role_arn": role_arn("r")}),
        )
        .await,
    );
    let (status, body) = server.post(&verify_path(&role), &Value::Null).await;
    assert_error(status, &body, 400, "assume_role_failed");

    // The trust policy needs Tributary's own identity, which cannot be learnt.
    let (status, body) = server
        .get(&format!(
            "/api/aws/policies?region=us-east-1&account={MOTO_ACCOUNT_ID}&stream=s&authorization={role}"
        ))
        .await;
    assert_error(status, &body, 502, "own_identity_unknown");
}

// ---------------------------------------------------------------------------------------------
// 4. Delegated access: AssumeRole with an external id.

#[tokio::test]
async fn role_authorization_assumes_the_role_with_its_external_id() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    for stream in ["orders", "clicks"] {
        create_stream(&admin, stream, 1).await;
    }
    let (own_key, own_secret) = tributary_user(&moto).await;
    let server = server_on_moto(&moto, &own_key, &own_secret).await;

    // The customer's flow: create the authorization first (external id generated), fetch the
    // trust policy Tributary proposes, and create the role with exactly that policy.
    let arn = role_arn("tributary-reader");
    let good = create_auth(
        &server,
        json!({"label": "customer", "method": "aws_role", "role_arn": arn}),
    )
    .await;
    let good_id = id_of(&good);
    let external_id = good["external_id"].as_str().unwrap().to_string();
    let (status, policies) = server
        .get(&format!(
            "/api/aws/policies?region={TEST_REGION}&account={MOTO_ACCOUNT_ID}&stream=orders&direction=import&authorization={good_id}"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{policies}\n{}", server.logs());
    assert_eq!(policies["principal"], moto.user_arn("tributary").as_str());
    assert_eq!(policies["external_id"], external_id.as_str());
    assert_eq!(
        policies["trust_policy"]["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"],
        external_id.as_str()
    );
    let trust = policies["trust_policy"].to_string();
    let permissions = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["kinesis:ListStreams","kinesis:ListShards"],"Resource":"*"}]}"#;
    assert_eq!(
        moto.create_role("tributary-reader", &trust, permissions)
            .await,
        arn
    );
    let wrong_id = id_of(
        &create_auth(
            &server,
            json!({"label": "impostor", "method": "aws_role", "role_arn": arn, "external_id": "guessed-ext-id"}),
        )
        .await,
    );
    moto.enable_iam_enforcement().await;

    let (status, body) = server.post(&verify_path(&good_id), &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", server.logs());
    assert_eq!(body["ok"], true);
    assert_eq!(body["account"], MOTO_ACCOUNT_ID);
    let assumed = body["arn"].as_str().expect("arn");
    assert!(
        assumed.starts_with(&format!(
            "arn:aws:sts::{MOTO_ACCOUNT_ID}:assumed-role/tributary-reader/"
        )),
        "{assumed}"
    );
    assert!(
        assumed.ends_with(&good_id),
        "session names the authorization: {assumed}"
    );

    let (status, body) = server.get(&streams_path(&good_id)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["streams"], json!(["clicks", "orders"]));

    // The wrong external id is refused by STS, on verify and on the stream list alike.
    let (status, body) = server.post(&verify_path(&wrong_id), &Value::Null).await;
    let message = assert_error(status, &body, 400, "assume_role_failed");
    assert!(message.contains("external ID"), "{message}");
    let (status, body) = server.get(&streams_path(&wrong_id)).await;
    assert_error(status, &body, 400, "assume_role_failed");
}

#[tokio::test]
async fn keys_authorization_can_assume_a_job_level_role() {
    let moto = Moto::start().await;
    create_stream(&kinesis_client(&moto.endpoint()), "events", 1).await;
    let (own_key, own_secret) = tributary_user(&moto).await;
    let source_policy = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
        "Action":["sts:AssumeRole"],"Resource":"*"}]}"#;
    let (key, secret) = moto.create_user_with_policy("source", source_policy).await;
    let arn = moto
        .create_role(
            "stream-lister",
            &trust_policy_for(&moto.user_arn("source"), None),
            LIST_STREAMS_POLICY,
        )
        .await;
    // Trusts only "source", not Tributary's own user.
    let other_arn = moto
        .create_role(
            "someone-elses",
            &trust_policy_for(&moto.user_arn("tributary"), None),
            LIST_STREAMS_POLICY,
        )
        .await;
    moto.enable_iam_enforcement().await;
    let server = server_on_moto(&moto, &own_key, &own_secret).await;
    let auth = id_of(&create_auth(&server, keys_body("source keys", &key, &secret)).await);

    // The keys alone may not list streams…
    let (status, body) = server.get(&streams_path(&auth)).await;
    assert_error(status, &body, 403, "list_streams_denied");
    // …the role they assume may.
    let (status, body) = server
        .get(&format!("{}&role_arn={arn}", streams_path(&auth)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", server.logs());
    assert_eq!(body["streams"], json!(["events"]));
    let (status, body) = server
        .post(
            &format!("{}&role_arn={arn}", verify_path(&auth)),
            &Value::Null,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body["arn"]
            .as_str()
            .is_some_and(|a| a.contains(":assumed-role/stream-lister/")),
        "{body}"
    );
    // An empty role_arn means none.
    let (status, body) = server
        .get(&format!("{}&role_arn=", streams_path(&auth)))
        .await;
    assert_error(status, &body, 403, "list_streams_denied");
    // A role whose trust policy does not name these keys' user.
    let (status, body) = server
        .get(&format!("{}&role_arn={other_arn}", streams_path(&auth)))
        .await;
    assert_error(status, &body, 400, "assume_role_failed");
}

// ---------------------------------------------------------------------------------------------
// 5. ListStreams and least privilege.

#[tokio::test]
async fn stream_list_is_sorted_and_denied_without_list_streams() {
    let moto = Moto::start().await;
    let admin = kinesis_client(&moto.endpoint());
    for stream in ["zeta-events", "alpha-clicks", "mid-orders"] {
        create_stream(&admin, stream, 1).await;
    }
    let (own_key, own_secret) = tributary_user(&moto).await;
    let (import_key, import_secret) = moto
        .create_user_with_policy("importer", IMPORT_ONLY_POLICY)
        .await;
    let (lister_key, lister_secret) = moto
        .create_user_with_policy("lister", IMPORT_AND_LIST_POLICY)
        .await;
    moto.enable_iam_enforcement().await;
    let server = server_on_moto(&moto, &own_key, &own_secret).await;

    let lister =
        id_of(&create_auth(&server, keys_body("lister", &lister_key, &lister_secret)).await);
    let (status, body) = server.get(&streams_path(&lister)).await;
    assert_eq!(status, StatusCode::OK, "{body}\n{}", server.logs());
    assert_eq!(
        body["streams"],
        json!(["alpha-clicks", "mid-orders", "zeta-events"])
    );

    let importer =
        id_of(&create_auth(&server, keys_body("importer", &import_key, &import_secret)).await);
    let (status, body) = server.get(&streams_path(&importer)).await;
    let message = assert_error(status, &body, 403, "list_streams_denied");
    assert!(message.contains("kinesis:ListStreams"), "{message}");
    assert!(message.contains("type the stream name"), "{message}");
    // The import user's keys are nonetheless valid.
    let (status, body) = server.post(&verify_path(&importer), &Value::Null).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["arn"], moto.user_arn("importer").as_str());

    // The CLI shows the same list, and the same advice when it is denied.
    let (ok, stdout, stderr) = cli(
        &server,
        TEST_API_TOKEN,
        &["streams", "--auth", &lister, "--region", TEST_REGION],
        None,
    );
    assert!(ok, "tributary streams failed: {stderr}");
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["alpha-clicks", "mid-orders", "zeta-events"]
    );
    let (ok, _, stderr) = cli(
        &server,
        TEST_API_TOKEN,
        &["streams", "--auth", &importer, "--region", TEST_REGION],
        None,
    );
    assert!(!ok, "a denied list fails the command");
    assert!(
        stderr.contains("list_streams_denied") && stderr.contains("type the stream name"),
        "{stderr}"
    );

    // Unknown keys are a credentials problem, not a missing permission.
    let unknown = id_of(
        &create_auth(
            &server,
            keys_body("unknown", "AKIAUNKNOWN000000000", "not-a-real-secret"),
        )
        .await,
    );
    let (status, body) = server.get(&streams_path(&unknown)).await;
    assert_error(status, &body, 400, "invalid_credentials");

    // Bad parameters.
    let (status, body) = server
        .get(&format!(
            "/api/aws/streams?authorization={lister}&region=moon"
        ))
        .await;
    let message = assert_error(status, &body, 400, "invalid_field");
    assert!(message.contains("region"), "{message}");
    let (status, body) = server
        .get(&format!("/api/aws/streams?authorization={lister}"))
        .await;
    let message = assert_error(status, &body, 400, "invalid_request");
    assert!(message.contains("region"), "{message}");
    let (status, body) = server.get(&streams_path("no-such-authorization")).await;
    assert_error(status, &body, 404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// 6. Policies.

#[tokio::test]
async fn policies_are_least_privilege_and_trust_names_tributary_and_the_external_id() {
    let moto = Moto::start().await;
    let (own_key, own_secret) = tributary_user(&moto).await;
    let server = server_on_moto(&moto, &own_key, &own_secret).await;
    let stream_arn = format!("arn:aws:kinesis:eu-west-1:{MOTO_ACCOUNT_ID}:stream/orders");
    let policies = |direction: &str, extra: &str| {
        format!(
            "/api/aws/policies?region=eu-west-1&account={MOTO_ACCOUNT_ID}&stream=orders&direction={direction}{extra}"
        )
    };
    let actions = |body: &Value, i: usize| -> Vec<String> {
        body["permission_policy"]["Statement"][i]["Action"]
            .as_array()
            .unwrap_or_else(|| panic!("no actions in {body}"))
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect()
    };

    let (status, import) = server.get(&policies("import", "")).await;
    assert_eq!(status, StatusCode::OK, "{import}");
    assert_eq!(import["permission_policy"]["Version"], "2012-10-17");
    let statements = import["permission_policy"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{import}");
    assert_eq!(statements[0]["Effect"], "Allow");
    assert_eq!(statements[0]["Resource"], stream_arn.as_str());
    assert_eq!(
        actions(&import, 0),
        [
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards"
        ]
    );
    for absent in ["trust_policy", "principal", "external_id"] {
        assert!(
            import.get(absent).is_none(),
            "{absent} without a role: {import}"
        );
    }

    let (status, export) = server.get(&policies("export", "")).await;
    assert_eq!(status, StatusCode::OK, "{export}");
    let statements = export["permission_policy"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{export}");
    assert_eq!(statements[0]["Resource"], stream_arn.as_str());
    assert_eq!(
        actions(&export, 0),
        ["kinesis:PutRecord", "kinesis:PutRecords"]
    );

    let (status, both) = server.get(&policies("both", "")).await;
    assert_eq!(status, StatusCode::OK, "{both}");
    let statements = both["permission_policy"]["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 2, "{both}");
    let mut combined = actions(&both, 0);
    combined.sort();
    assert_eq!(
        combined,
        [
            "kinesis:GetRecords",
            "kinesis:GetShardIterator",
            "kinesis:ListShards",
            "kinesis:PutRecord",
            "kinesis:PutRecords"
        ]
    );
    assert_eq!(statements[0]["Resource"], stream_arn.as_str());
    assert_eq!(actions(&both, 1), ["kinesis:ListStreams"]);
    assert_eq!(statements[1]["Resource"], "*");
    // `both` is the default direction.
    let (status, default) = server
        .get(&format!(
            "/api/aws/policies?region=eu-west-1&account={MOTO_ACCOUNT_ID}&stream=orders"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{default}");
    assert_eq!(default, both);

    // Partition follows the region.
    let (status, china) = server
        .get(&format!(
            "/api/aws/policies?region=cn-north-1&account={MOTO_ACCOUNT_ID}&stream=orders&direction=import"
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{china}");
    assert_eq!(
        china["permission_policy"]["Statement"][0]["Resource"],
        format!("arn:aws-cn:kinesis:cn-north-1:{MOTO_ACCOUNT_ID}:stream/orders")
    );

    // An aws_role authorization adds the trust policy for Tributary's own principal.
    let role = create_auth(
        &server,
        json!({"label": "role", "method": "aws_role", "role_arn": role_arn("r"), "external_id": "ext-42"}),
    )
    .await;
    let role_id = id_of(&role);
    let (status, with_trust) = server
        .get(&policies("import", &format!("&authorization={role_id}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{with_trust}\n{}", server.logs());
    let principal = moto.user_arn("tributary");
    assert_eq!(with_trust["principal"], principal.as_str());
    assert_eq!(with_trust["external_id"], "ext-42");
    assert_eq!(with_trust["permission_policy"], import["permission_policy"]);
    let trust = &with_trust["trust_policy"]["Statement"][0];
    assert_eq!(trust["Effect"], "Allow");
    assert_eq!(trust["Principal"]["AWS"], principal.as_str());
    assert_eq!(trust["Action"], "sts:AssumeRole");
    assert_eq!(
        trust["Condition"]["StringEquals"]["sts:ExternalId"],
        "ext-42"
    );
    // A keys authorization has no trust policy.
    let keys = id_of(&create_auth(&server, keys_body("keys", &own_key, &own_secret)).await);
    let (status, no_trust) = server
        .get(&policies("export", &format!("&authorization={keys}")))
        .await;
    assert_eq!(status, StatusCode::OK, "{no_trust}");
    assert!(no_trust.get("trust_policy").is_none(), "{no_trust}");
    assert!(!no_trust.to_string().contains(&own_secret));

    // Bad parameters name the field.
    for (query, field) in [
        (
            "region=eu-west-1&account=123&stream=orders".to_string(),
            "account",
        ),
        (
            format!("region=nowhere&account={MOTO_ACCOUNT_ID}&stream=orders"),
            "region",
        ),
        (
            format!("region=eu-west-1&account={MOTO_ACCOUNT_ID}&stream=no%20spaces"),
            "stream",
        ),
    ] {
        let (status, body) = server.get(&format!("/api/aws/policies?{query}")).await;
        let message = assert_error(status, &body, 400, "invalid_field");
        assert!(message.contains(field), "{query} → {message}");
    }
    let (status, body) = server.get(&policies("sideways", "")).await;
    let message = assert_error(status, &body, 400, "invalid_request");
    assert!(
        message.contains("direction") || message.contains("sideways"),
        "{message}"
    );
    let (status, body) = server
        .get(&policies("import", "&authorization=no-such-authorization"))
        .await;
    assert_error(status, &body, 404, "not_found");
}

// ---------------------------------------------------------------------------------------------
// 7. The CLI talks to the same API.

#[tokio::test]
async fn cli_lists_and_shows_authorizations_without_the_secret() {
    let server = offline_server().await;
    let keys =
        id_of(&create_auth(&server, keys_body("api keys", CANARY_KEY_ID, CANARY_SECRET)).await);
    let role = create_auth(
        &server,
        json!({"label": "api role", "method": "aws_role", "role_arn": role_arn("r"), "external_id": "ext-cli"}),
    )
    .await;

    let (ok, stdout, stderr) = cli(&server, TEST_API_TOKEN, &["auth", "list", "--json"], None);
    assert!(ok, "auth list failed: {stderr}");
    let listed: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let (_, from_api) = server.get("/api/authorizations").await;
    assert_eq!(listed, from_api, "the CLI prints what the API returns");
    assert_eq!(listed["authorizations"].as_array().unwrap().len(), 2);
    assert!(!stdout.contains(CANARY_SECRET));

    let (ok, stdout, stderr) = cli(&server, TEST_API_TOKEN, &["auth", "list"], None);
    assert!(ok, "auth list failed: {stderr}");
    assert!(
        stdout.contains("api keys") && stdout.contains(&keys),
        "{stdout}"
    );
    assert!(stdout.contains("aws_role"), "{stdout}");

    let (ok, stdout, stderr) = cli(&server, TEST_API_TOKEN, &["auth", "show", &keys], None);
    assert!(ok, "auth show failed: {stderr}");
    assert!(stdout.contains("****"), "{stdout}");
    assert!(stdout.contains(CANARY_KEY_ID), "{stdout}");
    assert!(!stdout.contains(CANARY_SECRET), "{stdout}");
    assert!(!stderr.contains(CANARY_SECRET), "{stderr}");

    let (ok, stdout, _) = cli(
        &server,
        TEST_API_TOKEN,
        &["auth", "show", &id_of(&role), "--json"],
        None,
    );
    assert!(ok);
    let shown: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(shown, role);

    // `auth add` reads the secret from standard input; the API then has it (sealed).
    let (ok, stdout, stderr) = cli(
        &server,
        TEST_API_TOKEN,
        &[
            "auth",
            "add",
            "--label",
            "from cli",
            "--access-key-id",
            "AKIACLI0000000000001",
            "--secret-access-key",
            "-",
            "--json",
        ],
        Some("cli-secret-value-123\n"),
    );
    assert!(ok, "auth add failed: {stderr}");
    let added: Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(added["label"], "from cli");
    assert_eq!(added["secret_access_key"], "****");
    let (status, body) = server
        .get(&format!("/api/authorizations/{}", id_of(&added)))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access_key_id"], "AKIACLI0000000000001");

    // Errors repeat the server's message and fail the command.
    let (ok, _, stderr) = cli(&server, "wrong-token", &["auth", "list"], None);
    assert!(!ok, "a wrong token must fail");
    assert!(stderr.contains("unauthorized"), "{stderr}");
    let (ok, _, stderr) = cli(
        &server,
        TEST_API_TOKEN,
        &["auth", "show", "no-such-id"],
        None,
    );
    assert!(!ok);
    assert!(stderr.contains("not_found"), "{stderr}");

    let (ok, stdout, stderr) = cli(&server, TEST_API_TOKEN, &["auth", "remove", &keys], None);
    assert!(ok, "auth remove failed: {stderr}");
    assert!(stdout.contains(&keys), "{stdout}");
    let (status, _) = server.get(&format!("/api/authorizations/{keys}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn an_authorization_in_use_by_a_job_cannot_be_deleted() {
    let server = offline_server().await;
    let auth =
        id_of(&create_auth(&server, keys_body("in use", CANARY_KEY_ID, CANARY_SECRET)).await);
    // An import job against an offline endpoint: it cannot read anything, but it uses the
    // authorization all the same.
    let (status, job) = server
        .post(
            "/api/jobs",
            &json!({"type": "kinesis_import", "label": "nightly export", "authorization": auth,
                    "config": {"stream": "web", "region": "us-east-1", "kinesis_stream": "clicks"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}\n{}", server.logs());
    let job_id = id_of(&job);

    let (status, body) = server.delete(&format!("/api/authorizations/{auth}")).await;
    let message = assert_error(status, &body, 409, "conflict");
    assert!(
        message.contains("nightly export"),
        "names the job: {message}"
    );
    let (status, _) = server.get(&format!("/api/authorizations/{auth}")).await;
    assert_eq!(status, StatusCode::OK, "still there");

    let (status, body) = server.delete(&format!("/api/jobs/{job_id}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = server.delete(&format!("/api/authorizations/{auth}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}
