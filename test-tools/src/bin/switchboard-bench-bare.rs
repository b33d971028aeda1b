//! `switchboard-bench-bare`: the baseline of scripts/bench, a bare MCP server built with rmcp that
//! serves the same `echo` tool over Streamable HTTP with no authentication, no authorization, no
//! validation, no audit and no metrics: what a user would run without Switchboard.
//!
//!     switchboard-bench-bare LISTEN
//!
//! `echo` answers at once with its arguments as structured content. Logs as the gateway does
//! (RUST_LOG, default info, on stderr) and, as it does, sets TCP_NODELAY. Stops on
//! SIGINT/SIGTERM.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

#[derive(Debug, Clone)]
struct Bare {
    echo: Tool,
}

impl ServerHandler for Bare {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("bare", "1"))
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(vec![self.echo.clone()]))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        (name == "echo").then(|| self.echo.clone())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if request.name != "echo" {
            return Err(ErrorData::invalid_params("no such tool", None));
        }
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        let text = arguments.to_string();
        let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
        result.structured_content = Some(arguments);
        Ok(result.into())
    }
}

fn main() -> ExitCode {
    switchboard_test_tools::mark();
    let Some(listen) = std::env::args().nth(1) else {
        eprintln!("usage: switchboard-bench-bare LISTEN");
        return ExitCode::from(2);
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let schema = json!({
        "type": "object",
        "properties": {"message": {"type": "string", "maxLength": 4096}},
        "required": ["message"],
        "additionalProperties": false,
    });
    let Value::Object(schema) = schema else {
        return ExitCode::FAILURE;
    };
    let bare = Bare {
        echo: Tool::new("echo", "Returns the message it is given.", Arc::new(schema)),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-bench-bare: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result: Result<(), std::io::Error> = runtime.block_on(async move {
        let service = StreamableHttpService::new(
            move || Ok(bare.clone()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let router = axum::Router::new().route_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind(&listen).await?;
        // No Nagle, as the gateway: a response written in pieces (SSE) would otherwise wait for
        // the client's delayed ACK, about 40 ms per call.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                use tokio::signal::unix::{SignalKind, signal};
                if let (Ok(mut t), Ok(mut i)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                ) {
                    tokio::select! {
                        _ = t.recv() => {}
                        _ = i.recv() => {}
                    }
                }
            })
            .await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench-bare: {e}");
            ExitCode::FAILURE
        }
    }
}
