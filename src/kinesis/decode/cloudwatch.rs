//! CloudWatch Logs subscription envelopes.
//!
//! A subscription filter delivers to Kinesis gzip-compressed JSON:
//! `{"messageType":"DATA_MESSAGE","owner":"123456789012","logGroup":"…","logStream":"…",
//! "subscriptionFilters":["…"],"logEvents":[{"id":"…","timestamp":1700000000000,"message":"…"}]}`.
//! Each log event becomes one event: the fields of `message` when it is a JSON object, otherwise
//! `{"message": "…"}`, plus `_cloudwatch: {log_group, log_stream, owner, id, timestamp}`.
//! `CONTROL_MESSAGE` envelopes (CloudWatch checking that the stream is reachable) yield nothing.
//!
//! Only a gzip-compressed document is looked at as an envelope (that is how CloudWatch delivers);
//! a plain JSON object with the same keys is an ordinary event.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::{DecodeError, Sink};

/// Key added to each event with where the log event came from.
pub const CLOUDWATCH_FIELD: &str = "_cloudwatch";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    owner: String,
    log_group: String,
    log_stream: String,
    log_events: Vec<LogEvent>,
}

#[derive(Deserialize)]
struct LogEvent {
    id: String,
    timestamp: i64,
    message: String,
}

/// Whether a decompressed JSON object is a CloudWatch Logs envelope.
pub(super) fn is_envelope(fields: &Map<String, Value>) -> bool {
    fields.get("messageType").is_some_and(Value::is_string) && fields.contains_key("logEvents")
}

/// Turns an envelope (see [`is_envelope`]) into events; `raw` is the decompressed document, kept
/// for a dead letter when the envelope is malformed.
pub(super) fn decode(fields: Map<String, Value>, raw: &[u8], sink: &mut Sink<'_>) {
    match fields.get("messageType").and_then(Value::as_str) {
        Some("DATA_MESSAGE") => {}
        Some("CONTROL_MESSAGE") => return,
        other => {
            let error = DecodeError::CloudWatchMessageType(other.unwrap_or_default().to_owned());
            return sink.dead_letter(error, raw);
        }
    }
    let envelope = match serde_json::from_value::<Envelope>(Value::Object(fields)) {
        Ok(envelope) => envelope,
        Err(error) => return sink.dead_letter(DecodeError::CloudWatchEnvelope(error), raw),
    };
    for log_event in envelope.log_events {
        let mut fields = message_fields(log_event.message);
        let origin = json!({
            "log_group": envelope.log_group,
            "log_stream": envelope.log_stream,
            "owner": envelope.owner,
            "id": log_event.id,
            "timestamp": log_event.timestamp,
        });
        fields.insert(CLOUDWATCH_FIELD.to_owned(), origin);
        sink.event(fields);
    }
}

/// The fields of a log message that is a JSON object, else `{"message": message}`.
fn message_fields(message: String) -> Map<String, Value> {
    if message.trim_start().starts_with('{') {
        if let Ok(fields) = serde_json::from_str::<Map<String, Value>>(&message) {
            return fields;
        }
    }
    let mut fields = Map::new();
    fields.insert("message".to_owned(), Value::String(message));
    fields
}
