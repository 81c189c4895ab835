//! giftd's integration tests, as one test binary: each module is one suite (a front-end, a
//! capability, or a fault), and they share the helpers of `giftd-testkit` and
//! `adyen_support`. One binary instead of one per suite: the whole stack is compiled and
//! linked once, and a new suite is a module here, not a new binary. Run one suite with
//! `cargo test -p giftd --test it <suite>::` (for instance `faults::`).
//!
//! Suites that need more than Rust (PostgreSQL, Python, root) mark those tests
//! `#[ignore = "needs …"]`; `--include-ignored` runs them (CI does).

mod adjustments;
mod adyen_node_client;
mod adyen_python_client;
mod adyen_stored_value;
mod adyen_support;
mod adyen_terminal;
mod api_keys;
mod audit;
mod bad_input;
mod binary;
mod breakage;
mod card_stock;
mod cardholder;
mod cards;
mod checkout_recovery;
mod checkouts;
mod clover;
mod concurrency;
mod console;
mod cross_facade;
mod faults;
mod fuzz_wire;
mod giftcard_api;
mod gr4vy;
mod gr4vy_sdk;
mod gr4vy_transactions;
mod holds;
mod idempotency;
mod openapi;
mod operations;
mod postgres_processes;
mod rate_limits;
mod reports;
mod retention;
mod reversals;
mod security;
mod served;
mod staff;
mod transfers;
mod wallet;
mod webhooks;
