//! Tributary: a self-hostable customer data platform connector for Amazon Kinesis Data Streams.
//!
//! The data path runs one way: Kinesis shards → decode → event log → profiles → audience
//! changes (outbox) → export to Kinesis. See `README.md` and the module docs for each step.

pub mod api;
pub mod app;
pub mod audiences;
pub mod aws;
pub mod cdp;
pub mod cli;
pub mod config;
pub mod jobs;
pub mod kinesis;
pub mod metrics;
pub mod secrets;
pub mod server;
pub mod store;
