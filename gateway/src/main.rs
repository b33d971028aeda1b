//! The `switchboard` binary: parses arguments and calls into the library.

use std::process::ExitCode;

use clap::Parser;
use switchboard_gateway::auth::Caller;
use switchboard_gateway::bindings::{Bindings, Source};
use switchboard_gateway::cli::{self, Cli, Command, dev_token};
use switchboard_gateway::mcp::new_invocation_id;
use switchboard_gateway::{catalog, serve, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve {
            catalog,
            listen,
            dev,
            dev_key,
            audit_log,
            log_json,
            bindings,
            tools_off,
        } => {
            let bindings = Bindings::from_env_or_file(bindings.as_deref())?;
            // Before the runtime: the trace exporter's HTTP client is a blocking one.
            let telemetry = telemetry::init(log_json)?;
            let runtime = tokio::runtime::Runtime::new()?;
            let served = runtime.block_on(serve::serve(serve::ServeOptions {
                catalog,
                listen,
                dev,
                dev_key,
                audit_log,
                bindings,
                tools_off,
            }));
            drop(runtime);
            // After the gateway stopped, whatever the outcome: the last calls' spans are sent.
            telemetry.shutdown();
            served?;
        }
        Command::Check { file, bindings } => {
            eprintln!("{}", cli::check(&file, bindings.as_deref())?);
        }
        Command::DevToken {
            sub,
            groups,
            tenant,
            scope,
            ttl,
            audience,
            dev_key,
        } => {
            let token = dev_token(&dev_key, &audience, &sub, groups, tenant, scope, ttl)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{token}");
            }
        }
        Command::SessionPolicies { file } => {
            let policies = session_policies(&file)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&policies)?);
            }
        }
        Command::SessionRequest {
            catalog,
            bindings,
            tool,
            principal,
            tenant,
            invocation,
            approver,
        } => {
            let caller = Caller {
                subject: principal,
                tenant,
                groups: vec![],
                scopes: vec![],
            };
            let invocation_id = invocation.unwrap_or_else(new_invocation_id);
            let call = cli::SessionCall {
                tool: &tool,
                caller: &caller,
                invocation_id: &invocation_id,
                deadline: None,
                approver: approver.as_deref(),
            };
            let request =
                cli::session_request(&catalog, Source::locate(bindings.as_deref()), call)?;
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&request)?);
            }
        }
        Command::Schema => {
            #[allow(clippy::print_stdout)]
            {
                println!("{}", serde_json::to_string_pretty(&catalog::json_schema())?);
            }
        }
    }
    Ok(())
}

/// The body of `session-policies`: tool name to the session policy a call starting now gets.
fn session_policies(file: &std::path::Path) -> anyhow::Result<serde_json::Value> {
    let catalog = switchboard_gateway::catalog::load(file)?;
    let mut out = serde_json::Map::new();
    for tool in catalog.tools.iter().filter(|t| !t.permissions.is_empty()) {
        let deadline = switchboard_gateway::deadline::Deadline::after(
            std::time::Duration::from_secs(u64::from(tool.timeout_seconds)),
        );
        let text = switchboard_gateway::credentials::session_policy(tool, &deadline)?;
        out.insert(tool.name.clone(), serde_json::from_str(&text)?);
    }
    Ok(serde_json::Value::Object(out))
}
