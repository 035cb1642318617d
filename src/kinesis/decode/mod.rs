//! Turning Kinesis record payloads into events.
//!
//! One Kinesis record goes through these layers, each in its own file:
//!
//! 1. `kpl.rs`: KPL de-aggregation. An aggregated record (magic `F3 89 9A C2`, protobuf, MD5) expands
//!    into its user records; anything else is one user record on its own.
//! 2. `gzip.rs`: a user record starting with the gzip magic `1F 8B` is decompressed (with a size cap).
//! 3. `cloudwatch.rs`: a gzip-compressed CloudWatch Logs subscription envelope becomes one event per
//!    log event.
//! 4. `json.rs`: a JSON object, a JSON array of objects, or NDJSON becomes events.
//!
//! Nothing here fails as a whole: whatever cannot be decoded becomes a [`DeadLetter`] with a human
//! readable reason (the `Display` of [`DecodeError`]), and everything else still becomes events.
//!
//! # Event identity
//!
//! An event is identified by `(stream, shard, sequence_number, sub_sequence_number, index)`:
//!
//! * `sub_sequence_number` is the position of the user record inside a KPL aggregate, `0` for a
//!   record that is not aggregated;
//! * `index` is the position of the item inside that user record: the element of a JSON array, the
//!   non-blank line of NDJSON, the log event of a CloudWatch Logs envelope, `0` for a single object.
//!
//! Decoding is a pure function of the record bytes, so the same record always yields the same ids:
//! a replay cannot insert an event twice. Events and dead letters of one user record share the
//! `index` numbering (a bad NDJSON line takes the index its event would have had), so a dead letter
//! is identified the same way, with `sub_sequence_number` `None` when the whole Kinesis record was
//! rejected before any user record could be told apart (a broken KPL aggregate).

mod cloudwatch;
mod error;
mod gzip;
mod json;
mod kpl;

pub use error::DecodeError;
pub use gzip::MAX_DECOMPRESSED_BYTES;

use serde_json::{Map, Value};

/// One Kinesis record as the consumer hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RawRecord<'a> {
    /// The record's data blob.
    pub data: &'a [u8],
    /// The partition key the record was put with (for a KPL aggregate: the aggregate's key).
    pub partition_key: &'a str,
    /// Kinesis sequence number of the record.
    pub sequence_number: &'a str,
}

/// One event decoded from a record.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedEvent {
    /// Position of the user record inside a KPL aggregate; `0` when the record is not aggregated.
    pub sub_sequence_number: u64,
    /// Position of this event inside its user record (array element, NDJSON line, CloudWatch log
    /// event; `0` for a single object). Together with the stream, shard, sequence number and
    /// sub-sequence number it makes an id that is unique and stable across replays.
    pub index: u32,
    /// The user record's own partition key from the KPL aggregate when aggregated, otherwise the
    /// Kinesis record's partition key.
    pub partition_key: String,
    /// The event's fields.
    pub fields: Map<String, Value>,
}

/// Something that could not be decoded, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Position of the user record inside a KPL aggregate (`Some(0)` for a record that is not
    /// aggregated); `None` when the Kinesis record as a whole was rejected (broken aggregate).
    pub sub_sequence_number: Option<u64>,
    /// Position of the failed item inside its user record, numbered like [`DecodedEvent::index`].
    pub index: u32,
    /// Human readable: what failed and why.
    pub reason: String,
    /// The smallest piece of input that failed: the NDJSON line, the array element, the user
    /// record, or the whole Kinesis record.
    pub raw: Vec<u8>,
}

/// Everything one Kinesis record decoded into.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Decoded {
    /// Events, in record order.
    pub events: Vec<DecodedEvent>,
    /// Failures, in record order.
    pub dead_letters: Vec<DeadLetter>,
}

/// The text of a record that is exactly one JSON object, checked but not built — the import
/// job's common case, which it then stores as it came. `None` for anything else (KPL, gzip,
/// arrays, NDJSON, invalid input): decode those with [`decode_record`]. For the records it
/// accepts it means what `decode_record` means: one event, sub-sequence 0, index 0.
pub fn plain_object(data: &[u8]) -> Option<&str> {
    let data = data.strip_prefix(json::UTF8_BOM).unwrap_or(data);
    let first = data
        .iter()
        .copied()
        .find(|b| !json::is_json_whitespace(*b))?;
    if first != b'{' {
        return None;
    }
    // serde_json skips string contents without checking their UTF-8, so check it here.
    let text = std::str::from_utf8(data).ok()?;
    serde_json::from_str::<Parsable>(text).ok()?;
    Some(text.trim_matches(|c: char| c.is_ascii() && json::is_json_whitespace(c as u8)))
}

/// A JSON value the full decoder would accept, read without building it: unlike
/// `serde::de::IgnoredAny`, which skips numbers unparsed, every number is parsed, so one out of
/// range (`5e555`) is refused here too (found by the `decode_record` fuzz target).
struct Parsable;

impl<'de> serde::Deserialize<'de> for Parsable {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ParsableVisitor)
    }
}

struct ParsableVisitor;

impl<'de> serde::de::Visitor<'de> for ParsableVisitor {
    type Value = Parsable;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_str<E>(self, _: &str) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_unit<E>(self) -> Result<Parsable, E> {
        Ok(Parsable)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Parsable, A::Error> {
        while seq.next_element::<Parsable>()?.is_some() {}
        Ok(Parsable)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Parsable, A::Error> {
        while map.next_entry::<Parsable, Parsable>()?.is_some() {}
        Ok(Parsable)
    }
}

/// Decodes one Kinesis record into events and dead letters. Never panics, never fails as a whole.
pub fn decode_record(record: &RawRecord<'_>) -> Decoded {
    let mut out = Decoded::default();
    match kpl::deaggregate(record.data) {
        kpl::Deaggregated::NotAggregated => {
            let mut sink = Sink::new(&mut out, 0, record.partition_key);
            decode_user_record(record.data, &mut sink);
        }
        kpl::Deaggregated::Aggregated(aggregate) => {
            for (sub, user_record) in aggregate.user_records() {
                match user_record {
                    Ok(user) => {
                        let mut sink = Sink::new(&mut out, sub, user.partition_key);
                        decode_user_record(user.data, &mut sink);
                    }
                    Err((error, data)) => out.dead_letters.push(DeadLetter {
                        sub_sequence_number: Some(sub),
                        index: 0,
                        reason: error.to_string(),
                        raw: data.to_vec(),
                    }),
                }
            }
        }
        kpl::Deaggregated::Invalid(error) => out.dead_letters.push(DeadLetter {
            sub_sequence_number: None,
            index: 0,
            reason: error.to_string(),
            raw: record.data.to_vec(),
        }),
    }
    out
}

/// Decodes one user record (the payload of a KPL user record, or a whole plain Kinesis record).
fn decode_user_record(data: &[u8], sink: &mut Sink<'_>) {
    if !gzip::is_gzip(data) {
        json::decode(data, sink, |fields, sink| sink.event(fields));
        return;
    }
    match gzip::decompress(data, MAX_DECOMPRESSED_BYTES) {
        Ok(plain) => json::decode(&plain, sink, |fields, sink| {
            if cloudwatch::is_envelope(&fields) {
                cloudwatch::decode(fields, &plain, sink);
            } else {
                sink.event(fields);
            }
        }),
        Err(error) => sink.dead_letter(error, data),
    }
}

/// Collects the events and dead letters of one user record and numbers them.
struct Sink<'o> {
    out: &'o mut Decoded,
    sub_sequence_number: u64,
    partition_key: &'o str,
    next_index: u32,
}

impl<'o> Sink<'o> {
    fn new(out: &'o mut Decoded, sub_sequence_number: u64, partition_key: &'o str) -> Self {
        Sink {
            out,
            sub_sequence_number,
            partition_key,
            next_index: 0,
        }
    }

    /// Takes the next item index. A user record is at most a few MiB decompressed, far fewer items
    /// than `u32::MAX`; saturating keeps this total anyway.
    fn take_index(&mut self) -> u32 {
        let index = self.next_index;
        self.next_index = self.next_index.saturating_add(1);
        index
    }

    fn event(&mut self, fields: Map<String, Value>) {
        let index = self.take_index();
        self.out.events.push(DecodedEvent {
            sub_sequence_number: self.sub_sequence_number,
            index,
            partition_key: self.partition_key.to_owned(),
            fields,
        });
    }

    fn dead_letter(&mut self, error: DecodeError, raw: &[u8]) {
        let index = self.take_index();
        self.out.dead_letters.push(DeadLetter {
            sub_sequence_number: Some(self.sub_sequence_number),
            index,
            reason: error.to_string(),
            raw: raw.to_vec(),
        });
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::kpl::tests::{record, PYTHON_AGGREGATE, PYTHON_AGGREGATE_EHK};
    use super::kpl::{aggregate, frame, AggregatedRecord, KPL_MAGIC};
    use super::*;

    fn decode(data: &[u8]) -> Decoded {
        decode_record(&RawRecord {
            data,
            partition_key: "record-key",
            sequence_number: "49590338271490256608559692538361571095921575989136588898",
        })
    }

    fn fields(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(fields) => fields,
            other => panic!("not an object: {other}"),
        }
    }

    fn only_dead_letter(data: &[u8]) -> DeadLetter {
        let decoded = decode(data);
        assert!(decoded.events.is_empty(), "{decoded:?}");
        assert_eq!(decoded.dead_letters.len(), 1, "{decoded:?}");
        decoded.dead_letters.into_iter().next().unwrap()
    }

    fn reason(data: &[u8]) -> String {
        only_dead_letter(data).reason
    }

    /// (sub-sequence, index) of events and dead letters, to check ids are distinct.
    fn ids(decoded: &Decoded) -> Vec<(Option<u64>, u32)> {
        let events = decoded
            .events
            .iter()
            .map(|e| (Some(e.sub_sequence_number), e.index));
        let dead = decoded
            .dead_letters
            .iter()
            .map(|d| (d.sub_sequence_number, d.index));
        events.chain(dead).collect()
    }

    fn assert_ids_distinct(decoded: &Decoded) {
        let mut ids = ids(decoded);
        let count = ids.len();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate ids in {decoded:?}");
    }

    // ---- plain JSON ----

    #[test]
    fn a_number_out_of_range_is_no_plain_object() {
        // The fuzz target's find: the fast path must refuse what the full decoder refuses.
        let data = b"{\":\"\r\r\r\r:\r5e555}\n\r\r\r";
        assert_eq!(plain_object(data), None);
        assert!(decode(data).events.is_empty());
        assert!(plain_object(br#"{"a":[1,2.5,{"b":1e300}],"c":null}"#).is_some());
    }

    #[test]
    fn plain_object_is_one_event() {
        let decoded = decode(br#"  {"user_id":"u1","n":1}  "#);
        assert!(decoded.dead_letters.is_empty());
        assert_eq!(
            decoded.events,
            vec![DecodedEvent {
                sub_sequence_number: 0,
                index: 0,
                partition_key: "record-key".into(),
                fields: fields(json!({"user_id": "u1", "n": 1})),
            }]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let decoded = decode(b"\xEF\xBB\xBF{\"a\":1}");
        assert_eq!(decoded.events.len(), 1);
    }

    #[test]
    fn pretty_printed_object_is_one_event() {
        let decoded = decode(b"{\n  \"a\": 1,\n  \"b\": [1, 2]\n}\n");
        assert_eq!(decoded.events.len(), 1);
        assert!(decoded.dead_letters.is_empty());
    }

    #[test]
    fn empty_and_blank_records() {
        assert_eq!(reason(b""), "empty record");
        assert_eq!(reason(b" \n\t\r\n"), "empty record");
    }

    #[test]
    fn scalars_are_not_objects() {
        assert_eq!(reason(b"42"), "not a JSON object: found a number");
        assert_eq!(reason(br#""hello""#), "not a JSON object: found a string");
        assert_eq!(reason(b"null"), "not a JSON object: found null");
        assert_eq!(reason(b" true "), "not a JSON object: found a boolean");
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let dead = only_dead_letter(br#"{"a":}"#);
        assert_eq!(
            dead.reason,
            "invalid JSON: expected value at line 1 column 6"
        );
        assert_eq!(dead.sub_sequence_number, Some(0));
        assert_eq!(dead.raw, br#"{"a":}"#);
        assert_eq!(
            reason(b"{\n  \"a\": 1,\n  \"b\": oops\n}"),
            "invalid JSON: expected value at line 3 column 8"
        );
        assert_eq!(
            reason(br#"{"a":1} trailing"#),
            "invalid JSON: trailing characters at line 1 column 9"
        );
        assert_eq!(
            reason(b"not json"),
            "invalid JSON: expected ident at line 1 column 2"
        );
    }

    #[test]
    fn invalid_utf8_names_the_byte() {
        assert_eq!(reason(b"{\"a\":\"\xFF\"}"), "invalid UTF-8 at byte 6");
        assert_eq!(reason(b"\xC3\x28"), "invalid UTF-8 at byte 0");
    }

    #[test]
    fn array_of_objects_with_a_bad_element() {
        let decoded = decode(br#"[{"a":1}, 2, {"b":2}, "x"]"#);
        let indexes: Vec<u32> = decoded.events.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![0, 2]);
        assert_eq!(decoded.events[1].fields, fields(json!({"b": 2})));
        let dead: Vec<_> = decoded
            .dead_letters
            .iter()
            .map(|d| (d.index, d.reason.as_str(), d.raw.as_slice()))
            .collect();
        assert_eq!(
            dead,
            vec![
                (
                    1,
                    "array element 1: not a JSON object: found a number",
                    &b"2"[..]
                ),
                (
                    3,
                    "array element 3: not a JSON object: found a string",
                    &b"\"x\""[..]
                ),
            ]
        );
        assert_ids_distinct(&decoded);
    }

    #[test]
    fn empty_array_has_nothing() {
        assert_eq!(decode(b"[]"), Decoded::default());
    }

    #[test]
    fn ndjson_with_a_bad_line() {
        let decoded = decode(b"{\"a\":1}\n\n{\"a\":\n{\"a\":3}\r\n7\n");
        let events: Vec<_> = decoded
            .events
            .iter()
            .map(|e| (e.index, e.fields.clone()))
            .collect();
        assert_eq!(
            events,
            vec![(0, fields(json!({"a": 1}))), (2, fields(json!({"a": 3})))]
        );
        let dead: Vec<_> = decoded
            .dead_letters
            .iter()
            .map(|d| (d.index, d.reason.as_str(), d.raw.as_slice()))
            .collect();
        assert_eq!(
            dead,
            vec![
                (
                    1,
                    "line 3: invalid JSON at column 5: EOF while parsing a value",
                    &b"{\"a\":"[..]
                ),
                (3, "line 5: not a JSON object: found a number", &b"7"[..]),
            ]
        );
        assert_ids_distinct(&decoded);
    }

    #[test]
    fn ndjson_with_a_bad_first_line_keeps_the_good_lines() {
        let decoded = decode(b"{\"a\":\n{\"a\":2}\n{\"a\":3}\n");
        let indexes: Vec<u32> = decoded.events.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![1, 2]);
        assert_eq!(decoded.dead_letters.len(), 1);
        assert_eq!(
            decoded.dead_letters[0].reason,
            "line 1: invalid JSON at column 5: EOF while parsing a value"
        );
    }

    #[test]
    fn pretty_printed_array_with_an_error_is_one_document() {
        let text = b"[\n  {\"a\": 1},\n  {\"b\": 2} oops,\n  {\"c\": 3}\n]";
        assert_eq!(
            reason(text),
            "invalid JSON: expected `,` or `]` at line 3 column 12"
        );
    }

    #[test]
    fn ndjson_line_with_invalid_utf8() {
        let decoded = decode(b"{\"a\":1}\n{\"a\":\"\xFF\"}\n");
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(
            decoded.dead_letters[0].reason,
            "line 2: invalid UTF-8 at byte 6"
        );
    }

    // ---- gzip ----

    #[test]
    fn gzip_json() {
        let decoded = decode(&gzip::compress(br#"{"a":1}"#));
        assert_eq!(decoded.events.len(), 1);
        assert_eq!(decoded.events[0].fields, fields(json!({"a": 1})));
    }

    #[test]
    fn gzip_ndjson() {
        let decoded = decode(&gzip::compress(b"{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n"));
        let indexes: Vec<u32> = decoded.events.iter().map(|e| e.index).collect();
        assert_eq!(indexes, vec![0, 1, 2]);
        assert!(decoded.dead_letters.is_empty());
    }

    #[test]
    fn corrupt_gzip_is_a_dead_letter_with_the_compressed_bytes() {
        let mut data = gzip::compress(&br#"{"a":1}"#.repeat(50));
        data.truncate(data.len() / 2);
        let dead = only_dead_letter(&data);
        assert!(
            dead.reason.starts_with("gzip: corrupt stream: "),
            "{}",
            dead.reason
        );
        assert_eq!(dead.raw, data);
    }

    #[test]
    fn gzip_bomb_is_a_dead_letter_not_an_allocation() {
        // 64 MiB + 1 of spaces compress to about 64 KiB.
        let bomb = gzip::compress(&vec![b' '; MAX_DECOMPRESSED_BYTES + 1]);
        assert!(bomb.len() < 1 << 20);
        let dead = only_dead_letter(&bomb);
        assert_eq!(
            dead.reason,
            "gzip: decompressed size exceeds the limit of 67108864 bytes"
        );
        assert_eq!(dead.raw, bomb);
    }

    // ---- CloudWatch Logs ----

    fn cloudwatch(message_type: &str, log_events: Value) -> Vec<u8> {
        let envelope = json!({
            "messageType": message_type,
            "owner": "123456789012",
            "logGroup": "/aws/lambda/checkout",
            "logStream": "2024/01/01/[$LATEST]abc",
            "subscriptionFilters": ["to-tributary"],
            "logEvents": log_events,
        });
        gzip::compress(&serde_json::to_vec(&envelope).unwrap())
    }

    #[test]
    fn cloudwatch_data_message() {
        let data = cloudwatch(
            "DATA_MESSAGE",
            json!([
                {"id": "3600", "timestamp": 1700000000000i64, "message": "{\"user_id\":\"u1\",\"event\":\"view\"}"},
                {"id": "3601", "timestamp": 1700000000001i64, "message": "START RequestId: 42"},
                {"id": "3602", "timestamp": 1700000000002i64, "message": "[1,2]"},
            ]),
        );
        let decoded = decode(&data);
        assert!(decoded.dead_letters.is_empty());
        let origin = |id: &str, ts: i64| {
            json!({
                "log_group": "/aws/lambda/checkout",
                "log_stream": "2024/01/01/[$LATEST]abc",
                "owner": "123456789012",
                "id": id,
                "timestamp": ts,
            })
        };
        let expected = vec![
            (
                0,
                json!({"user_id": "u1", "event": "view", "_cloudwatch": origin("3600", 1700000000000)}),
            ),
            (
                1,
                json!({"message": "START RequestId: 42", "_cloudwatch": origin("3601", 1700000000001)}),
            ),
            (
                2,
                json!({"message": "[1,2]", "_cloudwatch": origin("3602", 1700000000002)}),
            ),
        ];
        let got: Vec<_> = decoded
            .events
            .into_iter()
            .map(|e| (e.index, Value::Object(e.fields)))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn cloudwatch_control_message_yields_nothing() {
        let data = cloudwatch(
            "CONTROL_MESSAGE",
            json!([{"id": "", "timestamp": 1432826855105i64,
                    "message": "CWL CONTROL MESSAGE: Checking health of destination Kinesis stream."}]),
        );
        assert_eq!(decode(&data), Decoded::default());
    }

    #[test]
    fn cloudwatch_malformed_envelopes() {
        let unknown = cloudwatch("SOMETHING_ELSE", json!([]));
        assert_eq!(
            reason(&unknown),
            "CloudWatch Logs envelope: unsupported messageType \"SOMETHING_ELSE\""
        );
        let missing = gzip::compress(br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#);
        let dead = only_dead_letter(&missing);
        assert_eq!(
            dead.reason,
            "CloudWatch Logs envelope: missing field `owner`"
        );
        assert_eq!(
            dead.raw,
            br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#
        );
    }

    #[test]
    fn uncompressed_envelope_lookalike_is_an_ordinary_event() {
        let decoded = decode(br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#);
        assert_eq!(decoded.events.len(), 1);
    }

    // ---- KPL ----

    #[test]
    fn python_aggregate_end_to_end() {
        let data = hex::decode(PYTHON_AGGREGATE).unwrap();
        let decoded = decode(&data);
        let events: Vec<_> = decoded
            .events
            .iter()
            .map(|e| {
                (
                    e.sub_sequence_number,
                    e.index,
                    e.partition_key.as_str(),
                    e.fields["event"].clone(),
                )
            })
            .collect();
        assert_eq!(
            events,
            vec![
                (0, 0, "user-1", json!("signup")),
                (1, 0, "user-2", json!("purchase")),
                (2, 0, "user-1", json!("login")),
                (2, 1, "user-1", json!("logout")),
            ]
        );
        assert_eq!(decoded.dead_letters.len(), 1);
        let dead = &decoded.dead_letters[0];
        assert_eq!(dead.sub_sequence_number, Some(3));
        assert_eq!(dead.index, 0);
        assert_eq!(
            dead.reason,
            "invalid JSON: expected ident at line 1 column 2"
        );
        assert_eq!(dead.raw, b"not json");
    }

    /// (sub-sequence, index, partition key) of each event.
    fn positions(decoded: &Decoded) -> Vec<(u64, u32, &str)> {
        decoded
            .events
            .iter()
            .map(|e| (e.sub_sequence_number, e.index, e.partition_key.as_str()))
            .collect()
    }

    #[test]
    fn python_aggregate_with_array_user_record() {
        let decoded = decode(&hex::decode(PYTHON_AGGREGATE_EHK).unwrap());
        let events = positions(&decoded);
        assert_eq!(events, vec![(0, 0, "pk-a"), (1, 0, "pk-b"), (1, 1, "pk-b")]);
    }

    #[test]
    fn aggregate_of_gzip_and_cloudwatch_user_records() {
        let cw = cloudwatch(
            "DATA_MESSAGE",
            json!([{"id": "1", "timestamp": 1, "message": "a"}, {"id": "2", "timestamp": 2, "message": "b"}]),
        );
        let data = aggregate(&AggregatedRecord {
            partition_key_table: vec!["k0".into(), "k1".into()],
            explicit_hash_key_table: vec![],
            records: vec![
                record(1, None, &gzip::compress(br#"{"z":1}"#)),
                record(0, None, &cw),
            ],
        });
        let decoded = decode(&data);
        let events = positions(&decoded);
        assert_eq!(events, vec![(0, 0, "k1"), (1, 0, "k0"), (1, 1, "k0")]);
    }

    #[test]
    fn broken_aggregate_is_one_record_level_dead_letter() {
        let mut data = hex::decode(PYTHON_AGGREGATE).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0x01;
        let dead = only_dead_letter(&data);
        assert_eq!(dead.sub_sequence_number, None);
        assert!(
            dead.reason.contains("MD5 checksum mismatch"),
            "{}",
            dead.reason
        );
        assert_eq!(dead.raw, data);

        let truncated = frame(&[0x0A, 0x10, b'a']);
        let dead = only_dead_letter(&truncated);
        assert_eq!(dead.sub_sequence_number, None);
        assert!(
            dead.reason
                .starts_with("KPL aggregated record: invalid protobuf: "),
            "{}",
            dead.reason
        );
    }

    #[test]
    fn aggregate_index_out_of_range_spoils_one_user_record() {
        let data = aggregate(&AggregatedRecord {
            partition_key_table: vec!["k".into()],
            explicit_hash_key_table: vec![],
            records: vec![
                record(0, None, b"{}"),
                record(1, None, b"{\"x\":1}"),
                record(0, None, b"{}"),
            ],
        });
        let decoded = decode(&data);
        assert_eq!(decoded.events.len(), 2);
        let dead = &decoded.dead_letters[0];
        assert_eq!(dead.sub_sequence_number, Some(1));
        assert_eq!(
            dead.reason,
            "KPL user record 1: partition key index 1 out of range (the aggregate has 1 partition keys)"
        );
        assert_eq!(dead.raw, b"{\"x\":1}");
    }

    #[test]
    fn too_short_magic_record_passes_through_as_plain() {
        let dead = only_dead_letter(&KPL_MAGIC);
        assert_eq!(dead.sub_sequence_number, Some(0));
        assert_eq!(dead.reason, "invalid UTF-8 at byte 0");
    }

    #[test]
    fn replays_give_identical_results() {
        let data = hex::decode(PYTHON_AGGREGATE).unwrap();
        assert_eq!(decode(&data), decode(&data));
    }

    // ---- never panics ----

    fn check(data: &[u8]) {
        let decoded = decode(data);
        assert_ids_distinct(&decoded);
        for event in &decoded.events {
            assert!(event.index < 1_000_000);
        }
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..2048)) {
            check(&data);
        }

        #[test]
        fn never_panics_after_the_kpl_magic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut data = KPL_MAGIC.to_vec();
            data.extend_from_slice(&tail);
            check(&data);
        }

        #[test]
        fn never_panics_on_garbage_protobuf_with_valid_md5(
            protobuf in proptest::collection::vec(any::<u8>(), 1..1024)
        ) {
            check(&frame(&protobuf));
        }

        #[test]
        fn never_panics_after_the_gzip_magic(tail in proptest::collection::vec(any::<u8>(), 0..1024)) {
            let mut data = gzip::GZIP_MAGIC.to_vec();
            data.extend_from_slice(&tail);
            check(&data);
        }

        #[test]
        fn never_panics_on_json_like_text(text in "[{}\\[\\]\",:0-9a \n\r\t]{0,200}") {
            check(text.as_bytes());
            check(&gzip::compress(text.as_bytes()));
        }

        #[test]
        fn aggregates_keep_every_user_record(
            users in proptest::collection::vec((0u64..3, proptest::collection::vec(any::<u8>(), 0..64)), 0..8)
        ) {
            let data = aggregate(&AggregatedRecord {
                partition_key_table: vec!["a".into(), "b".into()],
                explicit_hash_key_table: vec![],
                records: users.iter().map(|(pk, data)| record(*pk, None, data)).collect(),
            });
            let decoded = decode(&data);
            assert_ids_distinct(&decoded);
            // Every user record shows up as at least one event or dead letter, unless it is an
            // empty JSON array.
            for (sub, _) in users.iter().enumerate() {
                let sub = sub as u64;
                let seen = decoded.events.iter().any(|e| e.sub_sequence_number == sub)
                    || decoded.dead_letters.iter().any(|d| d.sub_sequence_number == Some(sub));
                let empty_array = serde_json::from_slice::<Vec<Value>>(&users[sub as usize].1)
                    .is_ok_and(|v| v.is_empty());
                prop_assert!(seen || empty_array, "user record {} vanished", sub);
            }
        }
    }
}
