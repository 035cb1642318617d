//! Turning one GetRecords page into what the store commits: events with ids derived from
//! their origin, dead letters, and the new checkpoint position.

use sha2::{Digest, Sha256};

use crate::kinesis::api::KinesisRecord;
use crate::kinesis::decode::{decode_record, plain_object, RawRecord};
use crate::store::{EventFields, KinesisOrigin, NewDeadLetter, NewEvent};

/// Where the events of a page go and where they came from.
#[derive(Debug, Clone)]
pub struct Origin<'a> {
    pub event_stream: &'a str,
    pub kinesis_stream: &'a str,
    pub shard_id: &'a str,
}

#[derive(Debug, Default)]
pub struct DecodedPage {
    pub events: Vec<NewEvent>,
    pub dead_letters: Vec<NewDeadLetter>,
    /// The last record of the page: the checkpoint once the page is committed.
    pub last_sequence_number: Option<String>,
    pub last_sub_sequence_number: Option<u64>,
}

/// Stable event ids: the same Kinesis record (and the same user record and item inside it)
/// always maps to the same id, so a replay after a crash cannot store a second copy. The target
/// event stream is part of it, so two jobs importing one Kinesis stream into two event streams
/// each keep their own copy.
///
/// The id is ordered like the shard: a fixed prefix for (event stream, Kinesis stream, shard),
/// then the sequence number with its length in front (so text order is numeric order), then the
/// sub-sequence and item. The store's unique index on ids then grows at one spot per shard
/// instead of at random places: a hashed id made every page rewrite hundreds of scattered index
/// pages, which was most of what the import wrote to disk.
#[derive(Debug, Clone)]
pub struct EventIds {
    prefix: String,
}

impl EventIds {
    pub fn new(origin: &Origin<'_>) -> Self {
        let mut h = Sha256::new();
        for part in [origin.event_stream, origin.kinesis_stream, origin.shard_id] {
            h.update(part.as_bytes());
            h.update([0x1f]);
        }
        Self {
            prefix: hex::encode(&h.finalize()[..8]),
        }
    }

    pub fn id(&self, sequence_number: &str, sub_sequence_number: u64, index: u32) -> String {
        use std::fmt::Write;
        let mut id = String::with_capacity(self.prefix.len() + sequence_number.len() + 12);
        id.push_str(&self.prefix);
        // Kinesis sequence numbers are at most 129 digits: two hex digits hold the length.
        let _ = write!(id, "-{:02x}{sequence_number}", sequence_number.len());
        if (sub_sequence_number, index) != (0, 0) {
            let _ = write!(id, "-{sub_sequence_number}-{index}");
        }
        id
    }
}

/// The id of one event; see [`EventIds`] (which a page builds once for all its records).
pub fn event_id(
    origin: &Origin<'_>,
    sequence_number: &str,
    sub_sequence_number: u64,
    index: u32,
) -> String {
    EventIds::new(origin).id(sequence_number, sub_sequence_number, index)
}

pub fn decode_page(origin: &Origin<'_>, records: &[KinesisRecord]) -> DecodedPage {
    let ids = EventIds::new(origin);
    let mut page = DecodedPage {
        events: Vec::with_capacity(records.len()),
        ..Default::default()
    };
    for record in records {
        let kinesis_origin = |sub_sequence_number: u64, partition_key: String| KinesisOrigin {
            stream: origin.kinesis_stream.to_owned(),
            shard_id: origin.shard_id.to_owned(),
            sequence_number: record.sequence_number.clone(),
            sub_sequence_number,
            partition_key,
            approximate_arrival_timestamp: record.approximate_arrival_timestamp,
        };
        // The common case — one JSON object — is stored as it came, without building it.
        if let Some(text) = plain_object(&record.data) {
            page.events.push(NewEvent {
                event_id: ids.id(&record.sequence_number, 0, 0),
                fields: EventFields::from_checked_object_text(text),
                origin: Some(kinesis_origin(0, record.partition_key.clone())),
            });
            page.last_sequence_number = Some(record.sequence_number.clone());
            page.last_sub_sequence_number = Some(0);
            continue;
        }
        let decoded = decode_record(&RawRecord {
            data: &record.data,
            partition_key: &record.partition_key,
            sequence_number: &record.sequence_number,
        });
        let mut last_sub = None;
        for event in decoded.events {
            last_sub = last_sub.max(Some(event.sub_sequence_number));
            page.events.push(NewEvent {
                event_id: ids.id(
                    &record.sequence_number,
                    event.sub_sequence_number,
                    event.index,
                ),
                fields: event.fields.into(),
                origin: Some(kinesis_origin(
                    event.sub_sequence_number,
                    event.partition_key,
                )),
            });
        }
        for letter in decoded.dead_letters {
            last_sub = last_sub.max(letter.sub_sequence_number);
            page.dead_letters.push(NewDeadLetter {
                shard_id: origin.shard_id.to_owned(),
                sequence_number: record.sequence_number.clone(),
                sub_sequence_number: letter.sub_sequence_number,
                position: letter.index,
                partition_key: record.partition_key.clone(),
                reason: letter.reason,
                raw: letter.raw,
            });
        }
        page.last_sequence_number = Some(record.sequence_number.clone());
        page.last_sub_sequence_number = last_sub;
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(seq: &str, data: &[u8]) -> KinesisRecord {
        KinesisRecord {
            sequence_number: seq.into(),
            partition_key: "pk".into(),
            data: data.to_vec(),
            approximate_arrival_timestamp: None,
        }
    }

    const ORIGIN: Origin<'static> = Origin {
        event_stream: "web",
        kinesis_stream: "clicks",
        shard_id: "shardId-0",
    };

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = event_id(&ORIGIN, "1", 0, 0);
        assert_eq!(a, event_id(&ORIGIN, "1", 0, 0));
        assert_ne!(a, event_id(&ORIGIN, "1", 0, 1));
        assert_ne!(a, event_id(&ORIGIN, "1", 1, 0));
        assert_ne!(a, event_id(&ORIGIN, "2", 0, 0));
        assert_ne!(a, event_id(&ORIGIN, "10", 0, 0));
        assert_ne!(
            a,
            event_id(
                &Origin {
                    shard_id: "shardId-1",
                    ..ORIGIN
                },
                "1",
                0,
                0
            )
        );
        assert_ne!(
            a,
            event_id(
                &Origin {
                    event_stream: "other",
                    ..ORIGIN
                },
                "1",
                0,
                0
            )
        );
    }

    #[test]
    fn ids_of_a_shard_sort_like_its_sequence_numbers() {
        let ids = EventIds::new(&ORIGIN);
        let sorted = [
            ids.id("9", 0, 0),
            ids.id("10", 0, 0),
            ids.id("10", 1, 0),
            ids.id(
                "49590338271490256608559692538361571095921575989136588898",
                0,
                0,
            ),
            ids.id(
                "49590338271490256608559692538361571095921575989136588899",
                0,
                0,
            ),
        ];
        assert!(sorted.windows(2).all(|w| w[0] < w[1]), "{sorted:?}");
    }

    #[test]
    fn a_page_becomes_events_dead_letters_and_a_checkpoint() {
        let records = [
            record("1", br#"{"a":1}"#),
            record("2", b"\xff not json"),
            record("3", br#"[{"b":1},{"b":2}]"#),
        ];
        let page = decode_page(&ORIGIN, &records);
        assert_eq!(page.events.len(), 3);
        assert_eq!(page.dead_letters.len(), 1);
        assert_eq!(page.dead_letters[0].sequence_number, "2");
        assert_eq!(page.last_sequence_number.as_deref(), Some("3"));
        let origin = page.events[2].origin.as_ref().unwrap();
        assert_eq!(
            (origin.stream.as_str(), origin.sequence_number.as_str()),
            ("clicks", "3")
        );
        let replay = decode_page(&ORIGIN, &records);
        let ids = |p: &DecodedPage| {
            p.events
                .iter()
                .map(|e| e.event_id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&page), ids(&replay));
    }
}
