//! `switchboard-tool`: the reference tools in one binary, in either mode of the tool contract.
//!
//! - One-shot mode (local sandbox, Fargate): `switchboard-tool TOOL < invocation.json`; the
//!   argument picks the tool, one result goes to stdout.
//! - Container mode (a Fargate task): when `SWITCHBOARD_INVOCATION_URL` is set, the invocation
//!   is fetched from that presigned URL and the result `PUT` to `SWITCHBOARD_RESULT_URL`
//!   ([`switchboard_tool_runtime::container`]); the invocation's `tool` picks the tool.
//! - Lambda mode: when `AWS_LAMBDA_RUNTIME_API` is set (the binary is the `bootstrap` of a
//!   `provided.al2023` function), it serves invocations until the environment ends; each
//!   invocation's `tool` (its catalog name) picks the tool, and a name this binary does not have
//!   is a tool error naming it.
//!
//! Tools: `echo` ([`tools::echo`]), `whoami` ([`tools::whoami`]), `state_validate`
//! ([`tools::state_validate`]), `secret_lookup` ([`tools::secret_lookup`]), `terraform_plan`
//! ([`tools::terraform_plan`]).
//!
//! Deliberately free of argument-parsing crates: in one-shot mode it starts once per call.

use std::io::Write;
use std::process::ExitCode;

use switchboard_tool_runtime::container;
use switchboard_tool_runtime::lambda::run_lambda;
use switchboard_tool_runtime::{Invocation, ToolOutput, run, tools};

/// The tools this binary has, by catalog name.
const TOOLS: &[&str] = &[
    "echo",
    "whoami",
    "state_validate",
    "secret_lookup",
    "terraform_plan",
];

const USAGE: &str = "usage: switchboard-tool TOOL < invocation.json\n\
                     (Lambda mode when AWS_LAMBDA_RUNTIME_API is set)\ntools: echo, whoami, state_validate, secret_lookup, terraform_plan";

/// Why a reference tool could not answer.
#[derive(Debug, thiserror::Error)]
enum ToolError {
    #[error(
        "this package has no tool named {0:?} (it has: echo, whoami, state_validate, secret_lookup, terraform_plan)"
    )]
    Unknown(String),
    #[error(transparent)]
    Echo(#[from] tools::echo::EchoError),
    #[error(transparent)]
    Whoami(#[from] tools::whoami::WhoamiError),
    #[error(transparent)]
    StateValidate(#[from] tools::state_validate::StateError),
    #[error(transparent)]
    SecretLookup(#[from] tools::secret_lookup::SecretError),
    #[error(transparent)]
    TerraformPlan(#[from] tools::terraform_plan::PlanError),
}

/// Runs the reference tool called `tool`.
fn handle(tool: &str, invocation: Invocation) -> Result<ToolOutput, ToolError> {
    match tool {
        "echo" => Ok(tools::echo::echo(invocation)?),
        "whoami" => Ok(tools::whoami::whoami(invocation)?),
        "state_validate" => Ok(tools::state_validate::run(&invocation)?),
        "secret_lookup" => Ok(tools::secret_lookup::secret_lookup(&invocation)?),
        "terraform_plan" => Ok(tools::terraform_plan::terraform_plan(&invocation)?),
        other => Err(ToolError::Unknown(other.to_owned())),
    }
}

fn main() -> ExitCode {
    if container::is_container_mode() {
        return container::run_container(|invocation: Invocation| {
            let tool = invocation.tool.clone();
            handle(&tool, invocation)
        });
    }
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return run_lambda(|invocation: Invocation| {
            let tool = invocation.tool.clone();
            handle(&tool, invocation)
        });
    }
    let tool = std::env::args().nth(1).unwrap_or_default();
    match tool.as_str() {
        known if TOOLS.contains(&known) => run(move |invocation| handle(&tool, invocation)),
        _ => {
            let _ = writeln!(std::io::stderr(), "{USAGE}");
            ExitCode::from(64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(tool: &str) -> Invocation {
        serde_json::from_value(serde_json::json!({
            "invocationId": "i-1", "tool": tool,
            "arguments": {"message": "hi"}, "deadlineUnixMs": 1
        }))
        .expect("valid invocation")
    }

    #[test]
    fn a_known_tool_answers() {
        let out = handle("echo", invocation("echo")).expect("echo answers");
        assert_eq!(
            out.structured_content,
            Some(serde_json::json!({"message": "hi"}))
        );
    }

    #[test]
    fn whoami_answers_with_its_invocation() {
        let out = handle("whoami", invocation("whoami")).expect("whoami answers");
        let content = out.structured_content.expect("structured content");
        assert_eq!(content["invocationId"], "i-1");
        assert_eq!(content["tool"], "whoami");
        assert_eq!(content["credentials"], serde_json::Value::Null);
    }

    #[test]
    fn an_unknown_tool_is_an_error_that_names_it_and_the_known_ones() {
        let e = handle("tenant-files", invocation("tenant-files")).expect_err("no such tool");
        let text = e.to_string();
        assert!(text.contains("\"tenant-files\""), "{text}");
        for tool in TOOLS {
            assert!(text.contains(tool), "{tool} missing from {text}");
        }
    }

    #[test]
    fn every_listed_tool_is_handled_and_in_the_usage() {
        for tool in TOOLS {
            assert!(
                !matches!(handle(tool, invocation(tool)), Err(ToolError::Unknown(_))),
                "{tool}"
            );
            assert!(USAGE.contains(tool), "{tool} missing from the usage");
        }
    }
}
