//! Everything that speaks Kinesis: the AWS calls we use, the shard consumer, record decoding and
//! the producer.

pub mod api;
pub mod backoff;
pub mod consumer;
pub mod decode;
pub mod producer;

/// Kinesis stream names: 1–128 characters of `[a-zA-Z0-9_.-]`.
pub fn validate_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 128 {
        return Err("must be 1–128 characters long".into());
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-".contains(*c)))
    {
        return Err(format!("{name:?} contains {c:?}; Kinesis stream names use only letters, digits, '_', '.' and '-'"));
    }
    Ok(())
}
