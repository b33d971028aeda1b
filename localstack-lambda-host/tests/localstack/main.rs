//! The end-to-end suite of the sandbox executor: a tool built with the tool-runtime's Lambda mode
//! (`switchboard-lambda-probe`, zipped as `bootstrap`) is created in LocalStack with
//! `CreateFunction` and invoked with `aws-sdk-lambda`; LocalStack runs it with the
//! `switchboard-sandbox` executor and `switchboard-localstack-lambda-host`.
//!
//! Run by `tests/lambda/run.sh`, which builds the zip, starts LocalStack and sets
//! `LOCALSTACK_ENDPOINT` and `LAMBDA_PROBE_ZIP`. Without them every test fails with a message
//! saying so: nothing here skips itself.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

mod common;
mod invoke;
mod isolation;
mod lifecycle;
