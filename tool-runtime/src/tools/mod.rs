//! Reference tools. Each is a function from an [`Invocation`](crate::Invocation) to a result,
//! run by the `switchboard-tool` binary under a subcommand of the same name.

pub mod echo;
