//! Security checks over a whole run (see docs/reliability.md): the data directory and every
//! file in it are private; no secret (an authorization's AWS secret key, the API token, the
//! master key) appears in a response, in the logs of the run (at debug level) or in the store
//! files; every `/api` route refuses a request without the token; and SQL is only ever built
//! from constants, never from values (a scan of the sources).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use reqwest::StatusCode;
use serde_json::json;

use crate::import::{create_import, keyed_records, wait_events};
use crate::support::*;

/// An AWS secret key only this test uses: finding it anywhere is a leak.
const CANARY_SECRET: &str = "reliabilityCANARYsecret0123456789abcdefXY";
/// kinesalite checks no signature; the API wants a key id shaped like AWS'.
const KEY_ID: &str = "AKIARELIABILITY00001";

const MAPPING: &str = "SELECT
    pk        AS user_id  KIND string,
    count(*)  AS visits   KIND int,
FROM web
INTO user BY user_id
ALIAS web";

/// Every file and directory under `dir` (the directory itself included).
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![dir.to_owned()];
    for entry in std::fs::read_dir(dir).expect("read data dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

/// Each file with a wrong mode, as `(path, mode)`: directories must be 0700, files 0600.
fn not_private(dir: &Path) -> Vec<(PathBuf, String)> {
    walk(dir)
        .into_iter()
        .filter(|p| {
            let want = if p.is_dir() { 0o700 } else { 0o600 };
            mode(p) != want
        })
        .map(|p| {
            let m = format!("{:o}", mode(&p));
            (p, m)
        })
        .collect()
}

/// The files under `dir` whose bytes contain `needle`.
fn files_with(dir: &Path, needle: &[u8], except: &[&str]) -> Vec<PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.is_file())
        .filter(|p| !except.iter().any(|e| p.ends_with(e)))
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .collect()
}

#[tokio::test]
async fn the_data_dir_is_private_and_no_secret_leaks_over_a_whole_run() {
    let kinesalite = Kinesalite::start().await;
    let kinesis = kinesis_client(&kinesalite.endpoint());
    let mut server = TestServer::builder()
        .kinesis_endpoint(&kinesalite.endpoint())
        .fresh_data_dir()
        .own_secrets()
        .env("RUST_LOG", "debug")
        .start()
        .await;
    let dir = server.data_dir();
    let token = server.token();
    let master_key = std::fs::read_to_string(dir.join("master.key"))
        .expect("the server wrote master.key")
        .trim()
        .to_string();
    assert_eq!(master_key.len(), 64);
    let mut responses = String::new();

    // A run that touches every part: an authorization holding a secret, a mapping, an
    // audience, an import that stores events, an export job, a restart after SIGKILL.
    create_stream(&kinesis, "sec-in", 2).await;
    create_stream(&kinesis, "sec-out", 1).await;
    let (status, created) = server
        .post(
            "/api/authorizations",
            &json!({"label": "canary", "method": "aws_keys",
                    "access_key_id": KEY_ID, "secret_access_key": CANARY_SECRET}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    responses.push_str(&created.to_string());
    let auth = id_of(&created);
    let (status, body) = server.put_mapping("web", MAPPING).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    responses.push_str(&body.to_string());
    let (status, body) = server
        .post(
            "/api/audiences",
            &json!({"slug": "regulars", "name": "Regulars", "description": "", "filter": "visits >= 2"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    responses.push_str(&body.to_string());
    let import = create_import(&server, &auth, "sec-in", "web", json!("trim_horizon")).await;
    let (status, export) = server
        .post(
            "/api/jobs",
            &json!({"type": "kinesis_export", "label": "out", "description": "", "authorization": auth,
                    "config": {"audiences": ["regulars"], "kinesis_stream": "sec-out", "region": TEST_REGION,
                               "user_identifier_field": "user_id", "export_fields": ["user_id"]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{export}");
    responses.push_str(&export.to_string());
    put_records(&kinesis, "sec-in", &keyed_records(20, 3, 0, "sec")).await;
    wait_events(&server, &import, "web", 60).await;
    server.restart().await;
    put_records(&kinesis, "sec-in", &keyed_records(20, 1, 3, "sec")).await;
    wait_events(&server, &import, "web", 80).await;
    eventually(&server, None, "the export sent the regulars", || async {
        read_all(&kinesis, "sec-out").await.len() >= 20
    })
    .await;

    // Every GET the API offers without parameters, and the pages of the objects made above.
    let export_id = id_of(&export);
    for path in [
        "/api/authorizations".to_string(),
        format!("/api/authorizations/{auth}"),
        "/api/jobs".into(),
        format!("/api/jobs/{import}"),
        format!("/api/jobs/{export_id}"),
        format!("/api/jobs/{import}/dead-letters"),
        "/api/streams".into(),
        "/api/streams/web/events".into(),
        "/api/streams/web/mapping".into(),
        "/api/audiences".into(),
        "/api/audience-changes".into(),
        "/api/cluster".into(),
        "/api/openapi.json".into(),
    ] {
        let (status, body) = server.get(&path).await;
        assert!(status.is_success(), "GET {path}: {status} {body}");
        responses.push_str(&body.to_string());
    }
    for path in ["/metrics", "/healthz", "/"] {
        let resp = server
            .client()
            .get(server.url(path))
            .send()
            .await
            .expect(path);
        responses.push_str(&resp.text().await.unwrap_or_default());
    }
    assert!(server.stop().await, "clean exit\n{}", server.logs());

    // Modes: the directory 0700, every file (stores, WAL/SHM, key, token) 0600.
    let files: Vec<String> = walk(&dir).iter().map(|p| p.display().to_string()).collect();
    eprintln!("data dir after the run: {files:?}");
    assert!(
        files.iter().any(|f| f.ends_with("tributary.db")),
        "{files:?}"
    );
    assert_eq!(not_private(&dir), vec![], "files others could read");

    // Secrets: nowhere but where they belong.
    let logs = server.all_logs();
    assert!(logs.contains("DEBUG"), "the run logged at debug level");
    for (name, secret) in [
        ("AWS secret key", CANARY_SECRET),
        ("API token", token.as_str()),
        ("master key", master_key.as_str()),
    ] {
        assert!(!responses.contains(secret), "the {name} is in a response");
        // The generated token is shown once, on the first start's announcement line.
        let in_logs: Vec<&str> = logs.lines().filter(|l| l.contains(secret)).collect();
        let allowed = usize::from(name == "API token");
        assert!(
            in_logs.len() == allowed
                && in_logs
                    .iter()
                    .all(|l| l.starts_with("API token (shown once")),
            "the {name} is in the logs: {in_logs:?}"
        );
        let leaks = files_with(&dir, secret.as_bytes(), &["master.key", "api-token"]);
        assert!(leaks.is_empty(), "the {name} is in {leaks:?}");
    }
    // The grep reads the stores at all: the key id is kept in clear.
    assert!(!files_with(&dir, KEY_ID.as_bytes(), &[]).is_empty());
}

#[tokio::test]
async fn store_files_left_readable_by_an_older_version_are_narrowed_at_start() {
    let mut server = TestServer::builder().start().await;
    assert!(server.stop().await);
    let dir = server.data_dir();
    for path in walk(&dir) {
        let wide = if path.is_dir() { 0o755 } else { 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(wide)).unwrap();
    }
    server.restart().await;
    let (status, _) = server.get("/api/jobs").await;
    assert_eq!(status, StatusCode::OK);
    assert!(server.stop().await);
    assert_eq!(not_private(&dir), vec![]);
}

/// Every operation of the OpenAPI document that declares the token answers 401 without it and
/// with a wrong one, and the routes it does not list are 401 too (the fallback).
#[tokio::test]
async fn no_api_route_answers_without_the_token() {
    let server = TestServer::builder().start().await;
    let (status, doc) = server.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .split('/')
            .map(|seg| if seg.starts_with('{') { "x" } else { seg })
            .collect::<Vec<_>>()
            .join("/");
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<reqwest::Method>() else {
                continue;
            };
            if op.get("security").is_none() {
                assert!(
                    !path.starts_with("/api/") || path == "/api/openapi.json",
                    "{method} {path} is documented as open"
                );
                continue;
            }
            for auth in [
                None,
                Some("Bearer wrong"),
                Some("Bearer "),
                Some("test-token"),
            ] {
                let mut req = server
                    .client()
                    .request(method.clone(), server.url(&concrete));
                if let Some(a) = auth {
                    req = req.header("Authorization", a);
                }
                let resp = req.json(&json!({})).send().await.expect("request");
                assert_eq!(
                    resp.status(),
                    StatusCode::UNAUTHORIZED,
                    "{method} {concrete} with {auth:?}"
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 40, "only {checked} requests checked");
    let resp = server
        .client()
        .get(server.url("/api/no-such-route"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

// ---------------------------------------------------------------------------------------------
// SQL is parameterised: a scan of the sources.
// ---------------------------------------------------------------------------------------------

/// Placeholders a `format!` may put into SQL besides constants (UPPER_SNAKE names): each is
/// a number or a string of `?` placeholders made by the code, never a value from a request.
const SQL_FORMAT_ALLOWED: &[(&str, &str)] = &[
    ("src/store/sqlite/mod.rs", "cache_kib"),
    ("src/store/sqlite/mod.rs", "cdp_cache_kib"),
    ("src/store/sqlite/profiles.rs", "values"),
    // A test database's name, made by the test harness from a random number.
    ("src/store/postgres/testing.rs", "name"),
];

const SQL_WORDS: &[&str] = &[
    "SELECT ", "INSERT ", "UPDATE ", "DELETE ", "PRAGMA ", "CREATE ", "ATTACH ", "DROP ",
    " WHERE ", "ALTER ",
];

/// The string literal starting at `s` (after optional spaces): its text, and the rest after it.
fn string_literal(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start();
    if let Some(raw) = s.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw[hashes..].strip_prefix('"')?;
        let close = format!("\"{}", "#".repeat(hashes));
        let end = body.find(&close)?;
        return Some((&body[..end], &body[end + close.len()..]));
    }
    let body = s.strip_prefix('"')?;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '"' if !escaped => return Some((&body[..i], &body[i + 1..])),
            _ => escaped = false,
        }
    }
    None
}

/// The top-level, comma-separated arguments after the literal, up to the closing parenthesis.
fn trailing_args(rest: &str) -> Vec<String> {
    let (mut depth, mut args, mut cur) = (0i32, Vec::new(), String::new());
    for c in rest.chars() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                args.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    args.push(cur);
    args.into_iter()
        .map(|a| a.trim().to_string())
        .filter(|a| !a.is_empty())
        .collect()
}

/// A constant: `NAME` or `path::to::NAME`.
fn is_constant(expr: &str) -> bool {
    let last = expr.rsplit("::").next().unwrap_or(expr);
    !last.is_empty()
        && last
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn sql_is_built_only_from_constants_never_from_values() {
    let root = repo_root();
    let mut sources = Vec::new();
    let mut stack = vec![root.join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                sources.push(p);
            }
        }
    }
    let (mut sql_formats, mut bad) = (0, Vec::new());
    for file in &sources {
        let rel = file.strip_prefix(&root).unwrap().display().to_string();
        let text = std::fs::read_to_string(file).unwrap();
        for (at, _) in text.match_indices("format!(") {
            let Some((literal, rest)) = string_literal(&text[at + "format!(".len()..]) else {
                continue;
            };
            if !SQL_WORDS.iter().any(|w| literal.contains(w)) {
                continue;
            }
            sql_formats += 1;
            let line = text[..at].lines().count() + 1;
            let mut names: Vec<String> = Vec::new();
            let mut positional = 0;
            let mut chars = literal.char_indices().peekable();
            while let Some((i, c)) = chars.next() {
                if c != '{' {
                    continue;
                }
                if chars.peek().map(|(_, c)| *c) == Some('{') {
                    chars.next();
                    continue;
                }
                let end = literal[i..]
                    .find('}')
                    .map(|e| i + e)
                    .unwrap_or(literal.len());
                let inner = &literal[i + 1..end];
                let name = inner.split(':').next().unwrap_or("").trim();
                if name.is_empty() {
                    positional += 1;
                } else {
                    names.push(name.to_string());
                }
            }
            names.extend(trailing_args(rest).into_iter().take(positional));
            for name in names {
                let allowed = is_constant(&name)
                    || SQL_FORMAT_ALLOWED.contains(&(rel.as_str(), name.as_str()));
                if !allowed {
                    bad.push(format!("{rel}:{line}: `{name}` formatted into SQL"));
                }
            }
        }
    }
    eprintln!(
        "{sql_formats} format! calls build SQL in {} source files",
        sources.len()
    );
    assert!(sql_formats > 20, "the scan finds the SQL at all");
    assert!(
        bad.is_empty(),
        "SQL built from values (bind them as parameters instead):\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_sql_scan_sees_a_value_formatted_into_sql() {
    let (literal, rest) =
        string_literal(r#""SELECT * FROM t WHERE id = '{id}' AND x = {}", other)"#).unwrap();
    assert!(literal.contains("{id}"));
    assert_eq!(trailing_args(rest), vec!["other"]);
    assert!(!is_constant("id") && !is_constant("other"));
    assert!(is_constant("super::rows::EVENT_COLUMNS"));
}
