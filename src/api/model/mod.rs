//! The JSON the API speaks: one type per request and response body, shared by the server
//! (which builds and reads them), the CLI (which sends and reads them back) and the OpenAPI
//! document (generated from them). Nothing here depends on axum, so the CLI needs no server
//! machinery to use it.
//!
//! These are the wire types, not the store's records: each view is built from a record (`From`
//! or `new`), so a change in the store does not silently change what the API sends.

pub mod audiences;
pub mod authorizations;
pub mod aws;
pub mod cluster;
pub mod health;
pub mod jobs;
pub mod lifecycle;
pub mod mappings;
pub mod profiles;
pub mod streams;

pub use health::ErrorBody;
