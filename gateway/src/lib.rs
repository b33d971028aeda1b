//! Switchboard's gateway: a remote MCP endpoint that authenticates every caller, authorizes per
//! tool, validates arguments, and dispatches each call to its own execution unit through a
//! [`backend::Backend`]. It runs no tool code itself.
//!
//! Modules, in the order a call meets them: [`http`] (Host/Origin, body limits, bearer token),
//! [`auth`] (JWT verification), [`mcp`] (the MCP handler: list, authorize with [`authz`],
//! validate with [`validate`], ask for a person's approval with [`approval`], dispatch),
//! [`backend`] (execution units), [`audit`], [`metrics`].
//! [`catalog`] is the tool catalog; [`preflight`] the rules `check` and `serve` share; [`serve`]
//! and [`cli`] wire it all together; [`telemetry`] sets up logs and traces.

pub mod approval;
pub mod audit;
pub mod auth;
pub mod authz;
pub mod aws;
pub mod backend;
pub mod bindings;
pub mod catalog;
pub mod cli;
pub mod credentials;
pub mod deadline;
pub mod http;
pub mod mcp;
pub mod metrics;
pub mod preflight;
pub mod serve;
pub mod sessions;
pub mod telemetry;
pub mod validate;
