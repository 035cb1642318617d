//! `tributary events …` (read an event stream) and `tributary collect …` (send events to one).

use std::io::Read;
use std::path::{Path, PathBuf};

use super::client::{count, q, s, Client, ClientError};
use crate::api::model::streams::{Collected, EventsPage};

/// Prints a stream's events, newest first, one line each: seq, stored_at, compact fields.
pub async fn events(
    client: &Client,
    stream: &str,
    limit: u32,
    before: Option<i64>,
) -> Result<(), ClientError> {
    let mut path = format!("/api/streams/{}/events?limit={limit}", q(stream));
    if let Some(before) = before {
        path.push_str(&format!("&before={before}"));
    }
    let v = client.get(&path).await?;
    client.print(&v, event_lines)
}

fn event_lines(page: &EventsPage) -> String {
    let mut lines: Vec<String> = page
        .events
        .iter()
        .map(|e| format!("{}\t{}\t{}", e.seq, s(&e.stored_at), s(&e.fields)))
        .collect();
    if lines.is_empty() {
        lines.push("(no events)".into());
    }
    if let Some(next) = page.next_before {
        lines.push(format!("(older events: --before {next})"));
    }
    lines.join("\n")
}

/// Sends a file (or standard input for `-` or no file) to `POST /api/collect/{stream}` as is:
/// a JSON object, a JSON array of objects, or NDJSON.
pub async fn collect(
    client: &Client,
    stream: &str,
    file: Option<&Path>,
) -> Result<(), ClientError> {
    let (body, content_type) = read_input(file).unwrap_or_else(|message| {
        // A local problem, not the server's: no ClientError variant says so, hence exit here.
        eprintln!("Error: {message}");
        std::process::exit(2)
    });
    let v = client
        .send_text(
            reqwest::Method::POST,
            &format!("/api/collect/{}", q(stream)),
            content_type,
            body,
        )
        .await?;
    client.print(&v, |c: &Collected| {
        format!(
            "Accepted {} into {stream}",
            count(c.accepted as u64, "event")
        )
    })
}

fn read_input(file: Option<&Path>) -> Result<(String, &'static str), String> {
    let (bytes, name) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => (
            std::fs::read(path).map_err(|e| input_error(path, e))?,
            path.display().to_string(),
        ),
        None => {
            let mut buf = Vec::new();
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| input_error(&PathBuf::from("standard input"), e))?;
            (buf, "standard input".to_owned())
        }
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        format!(
            "{name} is not UTF-8 text (byte {}); events are sent as JSON, which must be UTF-8",
            e.utf8_error().valid_up_to()
        )
    })?;
    Ok((text, content_type(file)))
}

/// NDJSON by extension, JSON otherwise (the server reads all three shapes whatever the type).
fn content_type(file: Option<&Path>) -> &'static str {
    match file.and_then(|f| f.extension()).and_then(|e| e.to_str()) {
        Some("ndjson" | "jsonl") => "application/x-ndjson",
        _ => "application/json",
    }
}

fn input_error(path: &Path, e: std::io::Error) -> String {
    format!("cannot read {}: {e}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_event() {
        let page = |v| serde_json::from_value::<EventsPage>(v).unwrap();
        let v = json!({"events": [
            {"id": "e9", "seq": 9, "stored_at": "2026-01-02T03:04:05Z", "fields": {"a": 1, "b": "x"},
             "_kinesis": null},
            {"id": "e8", "seq": 8, "stored_at": "2026-01-02T03:04:04Z", "fields": {},
             "_kinesis": null}],
            "next_before": 8});
        assert_eq!(
            event_lines(&page(v)),
            "9\t2026-01-02T03:04:05Z\t{\"a\":1,\"b\":\"x\"}\n8\t2026-01-02T03:04:04Z\t{}\n(older events: --before 8)"
        );
        assert_eq!(
            event_lines(&page(json!({"events": [], "next_before": null}))),
            "(no events)"
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            content_type(Some(Path::new("a.ndjson"))),
            "application/x-ndjson"
        );
        assert_eq!(content_type(Some(Path::new("a.json"))), "application/json");
        assert_eq!(content_type(None), "application/json");
    }
}
