//! `switchboard-sandbox`: the bubblewrap sandbox pieces that Switchboard's local backend
//! (`switchboard-gateway`, `backend::local`) and its LocalStack Lambda host
//! (`switchboard-localstack-lambda-host`) share, so that both jails are built by one piece of code:
//!
//! - [`cgroup`]: one control group per sandbox, so that its memory (and process count) is
//!   limited for all of its processes together, not per process.
//! - [`bwrap`]: a small builder of bubblewrap arguments (namespaces, identities, the host's
//!   read-only `/usr`, `/proc`, `/dev`, tmpfs scratch, binds); each caller lays out its own
//!   sandbox with it.
//! - [`child`]: the resource limits and the pre-exec preparation of the forked child that
//!   executes `bwrap` (the only `unsafe` on that path).
//! - [`identity`]: host uids leased per sandbox (an exclusive file lock per uid keeps two
//!   processes apart), and killing what is left of a uid.
//! - [`seccomp`]: the seccomp filter every sandbox runs under, compiled to classic BPF.
//! - [`spawn`]: starting a sandbox's `bwrap` (seccomp pipe, cleared environment, ids, control
//!   group, pre-exec preparation) and killing and reaping what is left of it.
//! - [`paths`]: finding executables on `PATH` and checking that an unprivileged uid can reach
//!   what is bound into a sandbox.
//! - [`stage`]: copies of what an unprivileged uid cannot reach (a checkout under a `0700`
//!   folder), in a stage folder it can, removed with it.
//!
//! The crate knows nothing of MCP, catalogs or Lambda; `docs/sandbox.md` explains the measures.

pub mod bwrap;
pub mod cgroup;
pub mod child;
pub mod identity;
pub mod paths;
pub mod seccomp;
pub mod spawn;
pub mod stage;

pub use bwrap::Bwrap;
pub use child::{Rlimits, prepare_child};
