//! Hostile input (see docs/reliability.md): the fuzz corpora and any crash the fuzzers found,
//! replayed as regression tests; gzip and JSON bombs; records of exactly 1 MiB; filters and
//! mappings made to be slow or deep. Each ends in events or dead letters with a reason, or in a
//! parse error that names the limit — never a crash, never unbounded memory.

use std::io::Write;
use std::path::PathBuf;

use tributary::kinesis::decode::{decode_record, Decoded, RawRecord, MAX_DECOMPRESSED_BYTES};

/// The largest record Kinesis accepts (data and partition key together).
const ONE_MIB: usize = 1024 * 1024;

fn decode(data: &[u8]) -> Decoded {
    decode_record(&RawRecord {
        data,
        partition_key: "pk",
        sequence_number: "49590338271490256608559692538361571095921575989136588898",
    })
}

/// The files of `fuzz/corpus/TARGET` and `fuzz/artifacts/TARGET` (crashes kept as regressions).
fn fuzz_inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for kind in ["corpus", "artifacts"] {
        let dir = repo_root().join("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_file() {
                let bytes = std::fs::read(&path).expect("read fuzz input");
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn every_fuzz_input_of_the_decoder_decodes_the_same_twice_with_distinct_ids() {
    let inputs = fuzz_inputs("decode_record");
    assert!(
        inputs.len() >= 10,
        "the corpus is in fuzz/corpus/decode_record"
    );
    let mut events = 0;
    for (path, data) in inputs {
        let d = decode(&data);
        assert_eq!(d, decode(&data), "{}", path.display());
        let mut ids = std::collections::HashSet::new();
        for e in &d.events {
            assert!(
                ids.insert((Some(e.sub_sequence_number), e.index)),
                "{}: event id twice",
                path.display()
            );
        }
        for l in &d.dead_letters {
            assert!(!l.reason.is_empty(), "{}", path.display());
            if l.sub_sequence_number.is_some() {
                assert!(ids.insert((l.sub_sequence_number, l.index)));
            }
        }
        events += d.events.len();
    }
    assert!(events >= 10, "the corpus decodes to events at all");
}

#[test]
fn every_fuzz_input_of_the_languages_parses_or_fails_at_a_position() {
    for (target, parse) in [
        (
            "parse_mapping",
            (|t| tributary_lang::parse_mapping(t).err()) as fn(&str) -> Option<_>,
        ),
        ("parse_filter", |t| tributary_lang::parse_filter(t).err()),
    ] {
        let inputs = fuzz_inputs(target);
        assert!(inputs.len() >= 10, "the corpus is in fuzz/corpus/{target}");
        for (path, data) in inputs {
            let Ok(text) = std::str::from_utf8(&data) else {
                continue;
            };
            if let Some(e) = parse(text) {
                let lines = text.split('\n').count() as u32;
                assert!(
                    e.line >= 1 && e.line <= lines && e.column >= 1,
                    "{}: {e:?}",
                    path.display()
                );
            }
        }
    }
}

/// gzip of `n` MiB of zeros, made in pieces so the test never holds the inflated bytes.
fn gzip_zeros(mib: usize) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let zeros = vec![0u8; ONE_MIB];
    for _ in 0..mib {
        gz.write_all(&zeros).unwrap();
    }
    gz.finish().unwrap()
}

#[test]
fn a_gzip_bomb_is_a_dead_letter_naming_the_limit() {
    let limit_mib = MAX_DECOMPRESSED_BYTES / ONE_MIB;
    // Twice the cap in zeros, a fraction of a record when compressed: inflating it all is
    // what the cap prevents (the factor only grows with the bomb).
    let bomb = gzip_zeros(2 * limit_mib);
    assert!(bomb.len() < ONE_MIB, "{} bytes", bomb.len());
    let d = decode(&bomb);
    assert!(d.events.is_empty());
    assert_eq!(d.dead_letters.len(), 1, "{:?}", d.dead_letters);
    let reason = &d.dead_letters[0].reason;
    assert!(
        reason.contains(&MAX_DECOMPRESSED_BYTES.to_string()),
        "the reason names the limit ({limit_mib} MiB): {reason}"
    );
    // The dead letter keeps the record as it came, not the inflated bytes.
    assert!(d.dead_letters[0].raw.len() <= bomb.len());

    // Just under the cap is decoded (and found not to be JSON).
    let under = gzip_zeros(limit_mib - 1);
    let d = decode(&under);
    assert_eq!(d.dead_letters.len(), 1);
    assert!(
        !d.dead_letters[0].reason.contains("exceeds"),
        "{}",
        d.dead_letters[0].reason
    );
}

#[test]
fn gzip_inside_gzip_is_not_inflated_twice() {
    let inner = gzip_zeros(8);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&inner).unwrap();
    let outer = gz.finish().unwrap();
    let d = decode(&outer);
    assert!(d.events.is_empty());
    assert_eq!(d.dead_letters.len(), 1, "{:?}", d.dead_letters);
    assert!(d.dead_letters[0].raw.len() <= inner.len().max(outer.len()));
}

#[test]
fn json_bombs_are_dead_letters_or_bounded_events() {
    // Nesting far past serde_json's recursion limit: an error, not a stack overflow.
    for (open, close) in [("[", "]"), ("{\"a\":", "}")] {
        let deep = format!(
            "{{\"x\":{}1{}}}",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let d = decode(deep.as_bytes());
        assert!(d.events.is_empty(), "{open}…");
        assert_eq!(d.dead_letters.len(), 1);
        assert!(
            d.dead_letters[0].reason.contains("recursion"),
            "{}",
            d.dead_letters[0].reason
        );
    }
    // A 1 MiB record of empty NDJSON objects: one event per line, no more.
    let line = "{}\n";
    let ndjson = line.repeat(ONE_MIB / line.len());
    let d = decode(ndjson.as_bytes());
    assert_eq!(d.events.len(), ONE_MIB / line.len());
    assert!(d.dead_letters.is_empty());
    // An array of a million tiny non-objects: each a dead letter with its own index.
    let many = format!("[{}1]", "1,".repeat(ONE_MIB / 2 - 1));
    let d = decode(many.as_bytes());
    assert!(d.events.is_empty());
    assert_eq!(d.dead_letters.len(), ONE_MIB / 2);
    // Keys repeated a million times in one object: one event (last value wins or first),
    // never a panic.
    let dup = format!("{{{}\"k\":0}}", "\"k\":0,".repeat(ONE_MIB / 8));
    let d = decode(dup.as_bytes());
    assert_eq!(d.events.len() + d.dead_letters.len(), 1);
}

#[test]
fn a_record_of_exactly_1_mib_is_one_event() {
    let head = br#"{"user_id":"u1","pad":""#;
    let tail = br#""}"#;
    let mut data = head.to_vec();
    data.resize(ONE_MIB - tail.len(), b'x');
    data.extend_from_slice(tail);
    assert_eq!(data.len(), ONE_MIB);
    let d = decode(&data);
    assert_eq!(d.events.len(), 1);
    assert!(d.dead_letters.is_empty());
    assert_eq!(
        d.events[0].fields["pad"].as_str().unwrap().len(),
        ONE_MIB - head.len() - tail.len()
    );
    // The same bytes gzipped.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap();
    let d = decode(&gz.finish().unwrap());
    assert_eq!(d.events.len(), 1);
}

#[test]
fn deep_filters_and_mappings_fail_with_the_nesting_limit() {
    let deep_parens = format!("FILTER {}a = 1{}", "(".repeat(50_000), ")".repeat(50_000));
    let deep_not = format!("FILTER {}a = 1", "NOT ".repeat(50_000));
    let deep_bang = format!("FILTER {}a = 1", "!".repeat(50_000));
    let deep_and = format!(
        "FILTER {}a = 1{}",
        "AND(".repeat(50_000),
        ")".repeat(50_000)
    );
    for text in [deep_parens, deep_not, deep_bang, deep_and] {
        let e = tributary_lang::parse_filter(&text).expect_err("too deep");
        assert!(e.message.contains("nested"), "{}: {e}", &text[..30]);
    }
    let deep_call = format!(
        "SELECT {}x{} AS y KIND string FROM s INTO user BY y",
        "lower(".repeat(50_000),
        ")".repeat(50_000)
    );
    let e = tributary_lang::parse_mapping(&deep_call).expect_err("too deep");
    assert!(e.message.contains("nested"), "{e}");
    // Long but flat is fine: 10,000 conditions in one AND.
    let wide = format!(
        "FILTER AND({})",
        (0..10_000)
            .map(|i| format!("f{i} = {i}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    tributary_lang::parse_filter(&wide).expect("a wide filter parses");
}

#[test]
fn like_with_many_wildcards_ends_with_the_right_answer() {
    use tributary_lang::eval::like;
    // The classic exponential case for naive backtracking: many stars, no match at the end.
    // The matcher only backtracks to the last star, so this is O(text × pattern).
    let text = "a".repeat(20_000);
    let pattern = format!("{}b", "*a".repeat(200));
    assert!(!like(&text, &pattern));
    let pattern = format!("{}a", "%a".repeat(200));
    assert!(like(&text, &pattern));
    // Non-ASCII takes the other path.
    let text = "é".repeat(5_000);
    assert!(!like(&text, &format!("{}x", "*é".repeat(100))));
    assert!(like(&text, &format!("{}É", "*é".repeat(100))));
}
