//! The HTTP client the CLI commands share: server URL, bearer token, and error messages that
//! repeat what the server said.

use std::marker::PhantomData;
use std::path::PathBuf;

use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize as _, Serialize};
use serde_json::Value;

use crate::api::model::ErrorBody;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no API token: set TRIBUTARY_API_TOKEN, or pass --data-dir pointing at the server's data directory (it holds api-token)")]
    NoToken,
    /// Holds the cause as text, not as a `source`: `main` prints an error with its cause chain,
    /// and reqwest's chain says "error sending request for url (…)" three ways.
    #[error("cannot reach the Tributary server at {url} ({reason}): start `tributary serve`, or pass --server with the URL of a running server")]
    Unreachable { url: String, reason: String },
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
        hide_env_values = true,
        default_value = "http://127.0.0.1:7878"
    )]
    pub server: String,
    /// The server's data directory, to read its api-token file when TRIBUTARY_API_TOKEN is unset.
    #[arg(
        long,
        global = true,
        env = "TRIBUTARY_DATA_DIR",
        hide_env_values = true,
        default_value = crate::config::DEFAULT_DATA_DIR
    )]
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

    /// Sends `body` as JSON (none when `None`).
    async fn call<T>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<Reply<T>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.unreachable(&e))?;
        self.finish(resp).await
    }

    pub async fn send_text<T>(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<Reply<T>, ClientError> {
        let url = format!("{}{}", self.base, path);
        let resp = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        self.finish(resp).await
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            url: self.base.clone(),
            reason: reason(error),
        }
    }

    async fn finish<T>(&self, resp: reqwest::Response) -> Result<Reply<T>, ClientError> {
        let status = resp.status();
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let raw: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if status.is_success() {
            return Ok(Reply {
                raw,
                typed: PhantomData,
            });
        }
        let (code, message) = match ErrorBody::deserialize(&raw) {
            Ok(e) => (e.error, e.message),
            Err(_) => ("error".to_owned(), raw.to_string()),
        };
        Err(ClientError::Api {
            status,
            code,
            message,
        })
    }

    pub async fn get<T>(&self, path: &str) -> Result<Reply<T>, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }
    pub async fn post<T>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<Reply<T>, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }
    /// A POST whose route reads no body (an action such as pause).
    pub async fn post_empty<T>(&self, path: &str) -> Result<Reply<T>, ClientError> {
        self.call(Method::POST, path, None::<&()>).await
    }
    pub async fn put<T>(&self, path: &str, body: &impl Serialize) -> Result<Reply<T>, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }
    /// A DELETE, answered with 204 and no body.
    pub async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.call::<()>(Method::DELETE, path, None::<&()>)
            .await
            .map(drop)
    }

    /// A DELETE answered with a body (e.g. what an erasure deleted).
    pub async fn delete_with_reply<T>(&self, path: &str) -> Result<Reply<T>, ClientError> {
        self.call(Method::DELETE, path, None::<&()>).await
    }

    /// Prints the reply as the server sent it in `--json` mode, else `human` of its body.
    pub fn print<T: DeserializeOwned>(
        &self,
        reply: &Reply<T>,
        human: impl FnOnce(&T) -> String,
    ) -> Result<(), ClientError> {
        if self.json {
            println!("{}", pretty(&reply.raw));
        } else {
            println!("{}", human(&reply.body()?));
        }
        Ok(())
    }

    /// Prints what the CLI itself has to say (there was no body to repeat): `value` in
    /// `--json` mode, else `human`.
    pub fn print_local(&self, value: &impl Serialize, human: impl FnOnce() -> String) {
        if self.json {
            println!("{}", pretty(value));
        } else {
            println!("{}", human());
        }
    }
}

/// A successful answer: the JSON the server sent, read as a `T` when a person is to see it.
/// `--json` prints the JSON itself, so scripts see every field even of a newer server.
pub struct Reply<T> {
    raw: Value,
    typed: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Reply<T> {
    fn body(&self) -> Result<T, ClientError> {
        T::deserialize(&self.raw).map_err(|e| ClientError::Protocol(format!("{e} in {}", self.raw)))
    }
}

/// The innermost cause of a failed request, which is the specific one ("connection refused");
/// the outer ones only repeat that a request failed.
fn reason(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        return "timed out".into();
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    match innermost.downcast_ref::<std::io::Error>() {
        Some(io) => io.kind().to_string(),
        None => innermost.to_string(),
    }
}

fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).expect("JSON prints")
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

/// Labelled lines for people, the values aligned: `label:  value`.
pub fn labelled(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(label, _)| label.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(label, value)| format!("{:<width$} {value}", format!("{label}:")))
        .map(|line| line.trim_end().to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `n` with a regular noun, plural unless `n` is 1: "1 dead letter", "2 dead letters".
pub fn count(n: u64, noun: &str) -> String {
    let s = if n == 1 { "" } else { "s" };
    format!("{n} {noun}{s}")
}

/// The elements of `list` joined by `sep` (`None` when it is empty).
pub fn joined(list: &[String], sep: &str) -> Option<String> {
    (!list.is_empty()).then(|| list.join(sep))
}

/// A value as a table cell or line shows it: its JSON, with strings bare and null as `-`.
pub fn s(value: &impl Serialize) -> String {
    match serde_json::to_value(value).expect("API values serialize") {
        Value::String(s) => s,
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_singular_only_for_one() {
        assert_eq!(count(0, "dead letter"), "0 dead letters");
        assert_eq!(count(1, "dead letter"), "1 dead letter");
        assert_eq!(count(2, "event"), "2 events");
    }

    #[test]
    fn labelled_lines_align_their_values() {
        let rows = [("id", "j1".to_owned()), ("last error", "denied".to_owned())];
        assert_eq!(labelled(&rows), "id:         j1\nlast error: denied");
    }

    /// `main` prints an error with its cause chain (`{:#}` renders that chain without the
    /// backtrace): the server being down must read as one sentence, not one failure thrice.
    #[tokio::test]
    async fn an_unreachable_server_is_one_sentence_saying_what_to_do() {
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::secrets::API_TOKEN_FILE), "token").unwrap();
        let client = Client::new(&ServerArgs {
            server: format!("http://127.0.0.1:{port}/"),
            data_dir: dir.path().to_owned(),
            json: false,
        })
        .unwrap();
        let Err(err) = client.get::<Value>("/api/jobs").await else {
            panic!("a closed port answered");
        };
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            format!(
                "cannot reach the Tributary server at http://127.0.0.1:{port} (connection refused): \
                 start `tributary serve`, or pass --server with the URL of a running server"
            )
        );
    }
}
