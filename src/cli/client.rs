//! The HTTP client the CLI commands share: server URL, bearer token, and error messages that
//! repeat what the server said.

use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no API token: set TRIBUTARY_API_TOKEN, or pass --data-dir pointing at the server's data directory (it holds api-token)")]
    NoToken,
    #[error("cannot reach the Tributary server at {url}: {source}; is `tributary serve` running? (set --server or TRIBUTARY_SERVER)")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{status}: {message} ({code})")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
    #[error("unexpected response from the server: {0}")]
    Protocol(String),
}

/// Where the server is and how to authenticate: shared by every client command.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// URL of a running `tributary serve`.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_SERVER",
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// The server's data directory, to read its api-token file when TRIBUTARY_API_TOKEN is unset.
    #[arg(long, global = true, env = "TRIBUTARY_DATA_DIR", default_value = crate::config::DEFAULT_DATA_DIR)]
    pub data_dir: PathBuf,
    /// Print raw JSON (for scripts) instead of a readable summary.
    #[arg(long, global = true)]
    pub json: bool,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
    pub json: bool,
}

impl Client {
    pub fn new(args: &ServerArgs) -> Result<Self, ClientError> {
        let token = std::env::var("TRIBUTARY_API_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .or_else(|| {
                std::fs::read_to_string(args.data_dir.join(crate::secrets::API_TOKEN_FILE)).ok()
            })
            .map(|t| t.trim().to_owned())
            .ok_or(ClientError::NoToken)?;
        Ok(Self {
            http: reqwest::Client::new(),
            base: args.server.trim_end_matches('/').to_owned(),
            token,
            json: args.json,
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        self.finish(resp).await
    }

    pub async fn send_text(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.base, path);
        let resp = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|source| ClientError::Unreachable {
                url: self.base.clone(),
                source,
            })?;
        self.finish(resp).await
    }

    async fn finish(&self, resp: reqwest::Response) -> Result<Value, ClientError> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let value: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(value);
        }
        Err(ClientError::Api {
            status,
            code: value["error"].as_str().unwrap_or("error").to_owned(),
            message: value["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string()),
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }
    pub async fn delete(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::DELETE, path, None).await
    }

    /// Prints `value` as JSON in `--json` mode, else through `human`.
    pub fn print(&self, value: &Value, human: impl FnOnce(&Value) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(value).expect("JSON prints")
            );
        } else {
            println!("{}", human(value));
        }
    }
}

/// Percent-encodes a query value.
pub fn q(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A plain left-aligned table for people.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    if out.len() == 1 {
        out.push("(none)".into());
    }
    out.join("\n")
}

/// One table row per element of the JSON array `list` (none when it is not an array).
pub fn rows(list: &Value, row: impl Fn(&Value) -> Vec<String>) -> Vec<Vec<String>> {
    list.as_array()
        .map(|a| a.iter().map(row).collect())
        .unwrap_or_default()
}

/// The elements of the JSON array `list` as text, joined by `sep` (`None` when it is empty).
pub fn joined(list: &Value, sep: &str) -> Option<String> {
    list.as_array()
        .filter(|a| !a.is_empty())
        .map(|a| a.iter().map(s).collect::<Vec<_>>().join(sep))
}

pub fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
