//! The `tributary` binary run as a child process for end-to-end tests.
//!
//! Contract: `tributary serve --data-dir DIR --listen 127.0.0.1:0` prints
//! `Listening on http://127.0.0.1:PORT` on stdout once it accepts requests.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use super::{TEST_ACCESS_KEY_ID, TEST_REGION, TEST_SECRET_ACCESS_KEY};

pub const TEST_API_TOKEN: &str = "test-token";
/// 32 bytes, hex.
pub const TEST_MASTER_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

const READY_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
const READY_PREFIX: &str = "Listening on http";

/// How to start a [`TestServer`].
#[derive(Clone, Debug, Default)]
pub struct TestServerBuilder {
    env: BTreeMap<String, String>,
    args: Vec<String>,
    /// The server creates its data dir itself (a missing subdirectory of the temp dir).
    fresh_data_dir: bool,
    /// No TRIBUTARY_API_TOKEN / TRIBUTARY_MASTER_KEY: the server generates both into its data dir.
    own_secrets: bool,
    /// `--store URL` instead of the default SQLite files in the data dir.
    store: Option<String>,
    /// A data dir the test made (e.g. a mounted tmpfs) instead of a temp dir.
    data_dir_at: Option<PathBuf>,
}

impl TestServerBuilder {
    /// `AWS_ENDPOINT_URL_KINESIS` for the server (e.g. a kinesalite or fault proxy endpoint).
    pub fn kinesis_endpoint(self, endpoint: &str) -> Self {
        self.env("AWS_ENDPOINT_URL_KINESIS", endpoint)
    }

    /// `AWS_ENDPOINT_URL_STS` for the server (e.g. a moto endpoint).
    pub fn sts_endpoint(self, endpoint: &str) -> Self {
        self.env("AWS_ENDPOINT_URL_STS", endpoint)
    }

    /// Overrides Tributary's own default AWS credentials (default AKIDTEST/secret).
    pub fn credentials(self, access_key_id: &str, secret: &str) -> Self {
        self.env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
    }

    /// Any extra environment variable (e.g. `TRIBUTARY_*` settings).
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Extra arguments after `serve --data-dir DIR --listen 127.0.0.1:0`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }

    /// The data dir does not exist before the first start: the server makes it.
    pub fn fresh_data_dir(mut self) -> Self {
        self.fresh_data_dir = true;
        self
    }

    /// The server generates its master key and API token files (no env secrets); the client
    /// helpers read the token from the data dir.
    pub fn own_secrets(mut self) -> Self {
        self.own_secrets = true;
        self
    }

    /// Uses `dir` (which the test made and removes) as the data dir.
    pub fn data_dir_at(mut self, dir: &Path) -> Self {
        self.data_dir_at = Some(dir.to_owned());
        self
    }

    /// `--store URL` (e.g. a PostgreSQL test database).
    pub fn store(mut self, url: &str) -> Self {
        self.store = Some(url.to_string());
        self
    }

    pub async fn start(self) -> TestServer {
        let data_dir = tempfile::Builder::new()
            .prefix("tributary-test-")
            .tempdir()
            .expect("temp data dir");
        let mut server = TestServer {
            builder: self,
            data_dir,
            child: None,
            base_url: String::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("reqwest client"),
            generation: 0,
        };
        server.launch().await;
        server
    }
}

/// A running `tributary serve`; killed (SIGKILL) and reaped on drop.
pub struct TestServer {
    builder: TestServerBuilder,
    data_dir: tempfile::TempDir,
    child: Option<Child>,
    base_url: String,
    http: reqwest::Client,
    /// Bumped per launch: each launch logs to its own files.
    generation: u32,
}

impl TestServer {
    pub fn builder() -> TestServerBuilder {
        TestServerBuilder::default()
    }

    /// Starts a server whose Kinesis is `kinesis_endpoint`.
    pub async fn start(kinesis_endpoint: &str) -> TestServer {
        Self::builder()
            .kinesis_endpoint(kinesis_endpoint)
            .start()
            .await
    }

    async fn launch(&mut self) {
        self.generation += 1;
        let stdout_path = self.log_path("stdout");
        let stderr_path = self.log_path("stderr");
        let stdout = File::create(&stdout_path).expect("server stdout log");
        let stderr = File::create(&stderr_path).expect("server stderr log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tributary"));
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg("127.0.0.1:0")
            .args(&self.builder.args);
        if let Some(store) = &self.builder.store {
            cmd.arg("--store").arg(store);
        }
        // Nothing from the developer's AWS setup leaks in.
        for var in [
            "AWS_PROFILE",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_CONFIG_FILE",
            "AWS_SHARED_CREDENTIALS_FILE",
            "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE",
        ] {
            cmd.env_remove(var);
        }
        if self.builder.own_secrets {
            cmd.env_remove("TRIBUTARY_API_TOKEN")
                .env_remove("TRIBUTARY_MASTER_KEY");
        } else {
            cmd.env("TRIBUTARY_API_TOKEN", TEST_API_TOKEN)
                .env("TRIBUTARY_MASTER_KEY", TEST_MASTER_KEY);
        }
        cmd.env("AWS_ACCESS_KEY_ID", TEST_ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", TEST_SECRET_ACCESS_KEY)
            .env("AWS_REGION", TEST_REGION)
            .env("AWS_DEFAULT_REGION", TEST_REGION)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("RUST_BACKTRACE", "1")
            .envs(&self.builder.env)
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr));
        let mut child = cmd.spawn().expect("spawn tributary serve");

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut pause = Duration::from_millis(10);
        let base_url = loop {
            let out = std::fs::read_to_string(&stdout_path).unwrap_or_default();
            if let Some(url) = listening_url(&out) {
                break url;
            }
            if let Some(status) = child.try_wait().expect("try_wait tributary") {
                panic!(
                    "tributary serve exited with {status} before listening\n{}",
                    self.logs()
                );
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tributary serve printed no '{READY_PREFIX}…' line within {READY_TIMEOUT:?}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(100));
        };
        self.base_url = base_url;
        self.child = Some(child);
    }

    fn log_path(&self, stream: &str) -> PathBuf {
        self.data_dir
            .path()
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join(format!(
                "{}.{}.{stream}.log",
                self.data_dir
                    .path()
                    .file_name()
                    .and_then(|n| n.to_str())
                    .unwrap_or("tributary-test"),
                self.generation
            ))
    }

    /// stdout and stderr of every launch so far (for checks over a whole run's logs).
    pub fn all_logs(&self) -> String {
        (1..=self.generation)
            .flat_map(|g| ["stdout", "stderr"].map(|s| (g, s)))
            .map(|(g, s)| {
                let path = self.log_path(s).with_file_name(format!(
                    "{}.{g}.{s}.log",
                    self.data_dir
                        .path()
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("tributary-test")
                ));
                std::fs::read_to_string(path).unwrap_or_default()
            })
            .collect()
    }

    /// The current run's stdout and stderr, for assertion messages.
    pub fn logs(&self) -> String {
        let read = |s| std::fs::read_to_string(self.log_path(s)).unwrap_or_default();
        format!(
            "--- tributary stdout ---\n{}--- tributary stderr ---\n{}",
            read("stdout"),
            read("stderr")
        )
    }

    /// `http://127.0.0.1:PORT`
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `http://127.0.0.1:PORT{path}`
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub fn data_dir(&self) -> PathBuf {
        if let Some(dir) = &self.builder.data_dir_at {
            dir.clone()
        } else if self.builder.fresh_data_dir {
            self.data_dir.path().join("data")
        } else {
            self.data_dir.path().to_owned()
        }
    }

    /// The bearer token the server accepts: the test token, or the one it generated.
    pub fn token(&self) -> String {
        if self.builder.own_secrets {
            std::fs::read_to_string(self.data_dir().join("api-token"))
                .expect("the server wrote its api-token file")
                .trim()
                .to_string()
        } else {
            TEST_API_TOKEN.to_string()
        }
    }

    /// A reqwest client; add [`TestServer::bearer`] yourself, or use the JSON helpers below.
    pub fn client(&self) -> reqwest::Client {
        self.http.clone()
    }

    /// `Bearer test-token` (or the generated token, see [`TestServerBuilder::own_secrets`])
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.token())
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> (StatusCode, Value) {
        self.request(reqwest::Method::PUT, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.request(reqwest::Method::DELETE, path, None).await
    }

    /// `PUT /api/streams/{stream}/mapping` with the mapping's text (`text/plain`).
    pub async fn put_mapping(&self, stream: &str, text: &str) -> (StatusCode, Value) {
        let path = format!("/api/streams/{stream}/mapping");
        let resp = self
            .http
            .put(self.url(&path))
            .header("Authorization", self.bearer())
            .header("Content-Type", "text/plain")
            .body(text.to_owned())
            .send()
            .await
            .unwrap_or_else(|e| panic!("PUT {path}: {e}\n{}", self.logs()));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// One authenticated JSON call. The body is `Value::Null` when empty, and
    /// `Value::String(text)` when it is not JSON.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .header("Authorization", self.bearer());
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}\n{}", self.logs()));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// SIGKILL, no chance to clean up (crash test). The data dir stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit (panics if it takes over 30 s); returns whether the
    /// exit status was success.
    pub async fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        // std has no SIGTERM; the `kill` utility (procps, on every Debian) does it.
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(sent, "could not send SIGTERM to tributary");
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait tributary") {
                return status.success();
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "tributary did not exit within {STOP_TIMEOUT:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the server (if running) and starts it again on the same data dir; the port changes.
    pub async fn restart(&mut self) {
        self.kill();
        self.launch().await;
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
        for stream in ["stdout", "stderr"] {
            let _ = std::fs::remove_file(self.log_path(stream));
        }
    }
}

/// The URL from the first `Listening on http://…` line.
/// Only complete lines count: the line may be half-written when we read it.
fn listening_url(stdout: &str) -> Option<String> {
    let complete = &stdout[..stdout.rfind('\n')? + 1];
    complete.lines().find_map(|line| {
        let at = line.find(READY_PREFIX)?;
        let url = line[at + "Listening on ".len()..]
            .split_whitespace()
            .next()?;
        Some(url.trim_end_matches('/').to_string())
    })
}
