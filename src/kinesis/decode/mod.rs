//! Turning Kinesis record payloads into events.
