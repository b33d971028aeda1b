//! `switchboard-bench-gateway`: the gateway's whole request path (host guard, authentication,
//! authorization, schema validation, audit, metrics, the rmcp transport) with a backend that does
//! no work, for scripts/bench: what Switchboard adds to a call, without a sandbox or AWS.
//!
//!     switchboard-bench-gateway CATALOG LISTEN DEV_KEY AUDIT_LOG
//!
//! Serves CATALOG in development mode (tokens of `switchboard dev-token --dev-key DEV_KEY`); every
//! tool of the catalog (all `local`) answers at once with its arguments as structured content.
//! Logs as `switchboard serve` does (RUST_LOG, default info, on stderr). Stops on SIGINT/SIGTERM.
#![allow(clippy::print_stderr)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use async_trait::async_trait;
use switchboard_gateway::backend::{Backend, BackendError, Backends, Dispatch, Dispatched};
use switchboard_gateway::catalog::BackendKind;
use switchboard_gateway::serve::{self, ServeOptions};
use switchboard_tool_runtime::ToolOutput;

/// Answers every call with its own arguments, at once.
#[derive(Debug)]
struct NoWork;

#[async_trait]
impl Backend for NoWork {
    async fn dispatch(&self, call: Dispatch) -> Result<Dispatched, BackendError> {
        Ok(Dispatched {
            output: ToolOutput::structured(serde_json::Value::Object(call.invocation.arguments)),
            unit_id: "no-work".into(),
        })
    }
}

fn main() -> ExitCode {
    switchboard_test_tools::mark();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [catalog, listen, dev_key, audit] = args.as_slice() else {
        eprintln!("usage: switchboard-bench-gateway CATALOG LISTEN DEV_KEY AUDIT_LOG");
        return ExitCode::from(2);
    };
    let Ok(listen) = listen.parse() else {
        eprintln!("switchboard-bench-gateway: {listen:?} is not an address");
        return ExitCode::from(2);
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let opts = ServeOptions {
        catalog: PathBuf::from(catalog),
        listen,
        dev: true,
        dev_key: PathBuf::from(dev_key),
        audit_log: Some(PathBuf::from(audit)),
        bindings: None,
        tools_off: vec![],
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-bench-gateway: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let backends = Backends::new().with(BackendKind::Local, Arc::new(NoWork));
        let prepared = serve::prepare(&opts, Some(backends)).await?;
        serve::run(prepared, serve::shutdown_on_signals()).await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench-gateway: {e}");
            ExitCode::FAILURE
        }
    }
}
