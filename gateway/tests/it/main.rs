//! The gateway's integration tests: one test binary, one module per subject, helpers written once
//! in `support`. `cargo test -p switchboard-gateway --test it` runs it; a module path filters it,
//! e.g. `cargo test -p switchboard-gateway --test it -- sandbox_backend::`.
//!
//! Three modules need what plain `cargo test` does not start, so their tests are `#[ignore]`d and
//! run by their suite with `--ignored` and the module's filter:
//! - `sandbox_escape`: `tests/sandbox/run.sh` (`-- --ignored sandbox_escape::`);
//! - `broker_localstack`: LocalStack's STS, `tests/lambda/run.sh` (`-- --ignored broker_localstack::`);
//! - `approval_dynamo`: moto's DynamoDB, `tests/lambda/run.sh` (`-- --ignored approval_dynamo::`).
//!
//! The two tests that count what sandboxes leave on the machine stay binaries of their own
//! (`tests/sandbox_concurrency.rs`, `tests/sandbox_prepared.rs`, including `support` by path):
//! in this binary they would count what the other tests' sandboxes leave while they are cleaned
//! up after their test has ended.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

mod approval_dynamo;
mod approvals;
mod broker_localstack;
mod catalog_files;
mod gateway_http;
mod sandbox_backend;
mod sandbox_escape;
mod sandbox_progress;
mod serve_lifecycle;
mod support;
