//! Tributary's integration tests: one test binary (fast to link), one module per area.
//! Each test starts its own peers through `support` (see `support/mod.rs`).

mod support;

mod cdp;
mod cluster;
mod export;
mod foundation;
mod import;
mod import_faults;
mod lifecycle;
mod operator;
mod peers;
mod ui;
