//! Any bytes as a Kinesis record's data: KPL aggregates, gzip, CloudWatch Logs envelopes,
//! JSON, NDJSON. Decoding never panics, is a pure function (a replay yields the same ids),
//! gives every event and dead letter its own id, and a reason to every dead letter.
//! (Some inputs rightly yield nothing: `[]`, an empty aggregate, a CloudWatch control message.)
#![no_main]

use libfuzzer_sys::fuzz_target;

#[allow(dead_code, unused_imports)]
#[path = "../../src/kinesis/decode/mod.rs"]
mod decode;

fuzz_target!(|data: &[u8]| {
    let record = decode::RawRecord {
        data,
        partition_key: "pk",
        sequence_number: "49590338271490256608559692538361571095921575989136588898",
    };
    let decoded = decode::decode_record(&record);
    assert_eq!(decoded, decode::decode_record(&record), "decoding is pure");
    let mut ids = std::collections::HashSet::new();
    for e in &decoded.events {
        assert!(
            ids.insert((Some(e.sub_sequence_number), e.index)),
            "event id twice"
        );
    }
    for l in &decoded.dead_letters {
        assert!(!l.reason.is_empty());
        if l.sub_sequence_number.is_some() {
            assert!(
                ids.insert((l.sub_sequence_number, l.index)),
                "dead letter id twice"
            );
        }
    }
    // The fast path agrees with the full decoder on what it accepts.
    if let Some(text) = decode::plain_object(data) {
        assert_eq!(decoded.events.len(), 1, "plain object {text:?}");
        assert!(decoded.dead_letters.is_empty());
    }
});
