//! Tributary's integration tests: one test binary (fast to link), one module per area.
//! Each test starts its own peers through `support` (see `support/mod.rs`).

mod support;

mod api_fuzz;

mod cdp;
mod cluster;
mod crash;
mod export;
mod faults;
mod foundation;
mod hostile;
mod import;
mod import_faults;
mod lifecycle;
mod operator;
mod peers;
mod security;
mod ui;
