//! `switchboard-test-tools`: the programs the suites run as tools, which must never ship.
//!
//! - `switchboard-escape-probe`: performs one sandbox-escape attempt (gateway/tests/it/sandbox_escape.rs);
//! - `switchboard-lambda-probe`: probes a Lambda execution environment (tests/lambda/).
//!
//! Each carries [`NOT_FOR_SHIPPING`] in its bytes; tests/image searches every image layer and the
//! Lambda package for it, so a test program that slips into what ships fails the run.

/// The marker every test program holds; never in a shipped binary.
pub const NOT_FOR_SHIPPING: &str = "switchboard-test-tools: a test program; it must never ship";

/// Keeps [`NOT_FOR_SHIPPING`] in the calling binary (the optimizer may not drop what it cannot see
/// being unused). Called first thing in each test program's `main`.
pub fn mark() {
    std::hint::black_box(NOT_FOR_SHIPPING);
}
