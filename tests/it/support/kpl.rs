//! KPL-aggregated records made at test time with the reference Python aggregator
//! (`aws_kinesis_agg` in `.peers/venv`, via `scripts/peers/kpl_aggregate.py`).

use std::io::Write;
use std::process::{Command, Stdio};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde_json::{json, Value};

use super::{peer_path, peer_script};

/// The first four bytes of every KPL-aggregated record.
pub const KPL_MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

/// Aggregates user records the way the KPL does. Returns `(partition_key, aggregated_bytes)`
/// per Kinesis record; the aggregator starts a new record when one would exceed ~1 MB, and
/// each aggregated record carries the partition key of its first user record.
pub fn kpl_aggregate<K, V>(records: &[(K, V)]) -> Vec<(String, Vec<u8>)>
where
    K: AsRef<str>,
    V: AsRef<[u8]>,
{
    let python = peer_path("venv/bin/python");
    let request = json!({
        "records": records
            .iter()
            .map(|(pk, data)| json!({"pk": pk.as_ref(), "data": BASE64.encode(data.as_ref())}))
            .collect::<Vec<_>>()
    });
    let mut child = Command::new(python)
        .arg(peer_script("kpl_aggregate.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn kpl_aggregate.py");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = serde_json::to_vec(&request).expect("json");
    // Write from a thread so a large output cannot deadlock against a large input.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("kpl_aggregate.py output");
    writer
        .join()
        .expect("writer thread")
        .expect("write to kpl_aggregate.py");
    assert!(
        out.status.success(),
        "kpl_aggregate.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let reply: Value = serde_json::from_slice(&out.stdout).expect("kpl_aggregate.py JSON");
    reply["records"]
        .as_array()
        .expect("records array")
        .iter()
        .map(|r| {
            (
                r["pk"].as_str().expect("pk").to_string(),
                BASE64
                    .decode(r["data"].as_str().expect("data"))
                    .expect("base64"),
            )
        })
        .collect()
}
