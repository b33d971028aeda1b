//! The contract between the Switchboard gateway and a tool's execution unit.
//!
//! Every backend (local sandbox, Lambda, Fargate) carries one [`Invocation`] to the unit and one
//! [`ToolOutput`] back. The types are plain serde so that a tool written in any language can speak
//! the same JSON.

pub mod contract;

pub use contract::{AwsCredentials, ContentItem, Invocation, ToolOutput};
