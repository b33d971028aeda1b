//! The contract between the Switchboard gateway and a tool's execution unit.
//!
//! Every backend (local sandbox, Lambda, Fargate) carries one [`Invocation`] to the unit and one
//! [`ToolOutput`] back. The types are plain serde so that a tool written in any language can speak
//! the same JSON.
//!
//! [`oneshot::run`] is the entry point of the one-shot mode (the local sandbox and Fargate): one
//! invocation on stdin, one result on stdout; with [`oneshot::run_with_progress`] the handler may
//! report progress (lines on stdout before the result) through a [`Progress`]. [`tools`] holds the reference tools that the
//! `switchboard-tool` binary runs. [`aws`] gives a tool AWS clients that sign with its call's own
//! credentials and, in a local sandbox, reach AWS through the gateway's endpoint proxy.
//! [`container`] is the mode of a Fargate task: the invocation and the result travel through
//! two presigned URLs. [`tenant_bucket`] reads the caller's tenant's files in S3, for tools
//! deployed on AWS.

pub mod aws;
pub mod container;
pub mod contract;
pub mod forward;
pub mod lambda;
pub mod oneshot;
pub mod seal;
pub mod tenant_bucket;
pub mod tools;

pub use contract::{
    AwsCredentials, ContentItem, Invocation, ProgressReport, ResourceContents, ToolOutput,
};
pub use oneshot::{Progress, run, run_with_progress};
