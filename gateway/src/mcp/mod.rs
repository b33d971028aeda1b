//! The MCP side of the gateway: an rmcp [`ServerHandler`](rmcp::ServerHandler) that lists the tools
//! a caller may use and turns `tools/call` into a dispatch to the tool's backend.

mod handler;

pub use handler::{Gateway, GatewayConfig, ToolEntry, unknown_tool_error};
