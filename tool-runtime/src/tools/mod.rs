//! Reference tools. Each is a function from an [`Invocation`](crate::Invocation) to a result,
//! run by the `switchboard-tool` binary under a subcommand of the same name.
//!
//! - [`echo`]: answers with the message it is given;
//! - [`whoami`]: answers which call it is and which credentials it received (never the secret
//!   parts);
//! - [`state_validate`]: checks a Terraform state of the caller's tenant against review rules;
//! - [`secret_lookup`]: says whether a secret of the caller's tenant exists, never its value;
//! - [`terraform_plan`]: plans a Terraform project of the caller's tenant, read-only, and
//!   summarises what the plan would change.

pub mod echo;
pub mod secret_lookup;
pub mod state_validate;
pub mod terraform_plan;
pub mod whoami;
