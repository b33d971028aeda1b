//! The MCP side of the gateway: an rmcp [`ServerHandler`](rmcp::ServerHandler) that lists the tools
//! a caller may use and turns `tools/call` into a dispatch to the tool's backend.

mod call;
mod content;
mod handler;
mod outcome;

pub use call::new_invocation_id;
pub use handler::{Gateway, GatewayConfig, GatewayError, ToolEntry, unknown_tool_error};
pub use outcome::{Failure, Outcome};
