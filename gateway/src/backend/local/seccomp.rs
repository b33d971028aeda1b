//! The seccomp filter every sandboxed tool runs under. It lives in `switchboard-sandbox`
//! ([`switchboard_sandbox::seccomp`]), shared with the LocalStack Lambda host; see there and
//! `docs/sandbox.md` for what it refuses and why.

pub use switchboard_sandbox::seccomp::{SeccompError, program, program_bytes};
