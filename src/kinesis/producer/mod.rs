//! The producer: batches within Kinesis' limits, one in-flight record per partition key, and
//! retries of exactly the entries a PutRecords call failed.

pub mod batcher;
pub mod limits;
pub mod sender;

pub use batcher::{next_batch, PendingRecord};
pub use sender::{SendOutcome, Sender};
