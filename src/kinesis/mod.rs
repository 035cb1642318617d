//! Everything that speaks Kinesis: the AWS calls we use, the shard consumer, record decoding and
//! the producer.

pub mod decode;
