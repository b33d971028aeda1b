//! The gateway as an rmcp [`ServerHandler`]: the tools, who may see them, and the shared state a
//! call needs. A call's own path is in [`super::call`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::approval::Approvals;
use crate::audit::AuditSink;
use crate::auth::Caller;
use crate::authz;
use crate::backend::Backends;
use crate::catalog::{Catalog, Tool};
use crate::credentials::Broker;
use crate::metrics::Metrics;
use crate::validate;

/// One tool as the gateway serves it: its catalog entry, its MCP listing, its compiled schema.
#[derive(Debug)]
pub struct ToolEntry {
    pub def: Arc<Tool>,
    listed: rmcp::model::Tool,
    validator: jsonschema::Validator,
    /// The role assumed per call, from the bindings; `None`: the tool gets no credentials.
    work_role: Option<String>,
    /// Why the tool is turned off on this gateway, when it is: its calls answer this.
    off: Option<String>,
}

impl ToolEntry {
    /// The tool's work role, when it gets credentials.
    pub fn work_role(&self) -> Option<&str> {
        self.work_role.as_deref()
    }

    /// Why the tool is turned off, when it is.
    pub fn off(&self) -> Option<&str> {
        self.off.as_deref()
    }

    /// The tool's input schema, compiled at start.
    pub fn validator(&self) -> &jsonschema::Validator {
        &self.validator
    }
}

/// What the gateway needs besides the catalog.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub backends: Backends,
    pub audit: AuditSink,
    pub metrics: Metrics,
    pub max_in_flight: usize,
    /// Work role ARN by tool name (from the bindings): these tools get credentials per call.
    pub work_roles: HashMap<String, String>,
    /// Mints them; required when `work_roles` is not empty.
    pub broker: Option<Broker>,
    /// Where approvals are kept and asked for; required when a tool asks for approval.
    pub approvals: Option<Approvals>,
    /// Tools served turned off, by name, with why: no backend is needed for them.
    pub tools_off: HashMap<String, String>,
}

/// Why the gateway cannot be built from a catalog.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("tools have work roles but no credential broker is configured")]
    NoBroker,
    #[error("tool {0:?} asks for approval but the gateway has no approval store")]
    NoApprovals(String),
    #[error("tool {tool:?}: {error}")]
    Backend {
        tool: String,
        error: crate::backend::BackendError,
    },
    #[error("tool {tool:?}: input_schema: {message}")]
    Schema { tool: String, message: String },
}

/// The shared state behind every MCP request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(super) struct Inner {
    tools: Vec<ToolEntry>,
    by_name: HashMap<String, usize>,
    pub(super) backends: Backends,
    pub(super) audit: AuditSink,
    pub(super) metrics: Metrics,
    pub(super) slots: Arc<Semaphore>,
    pub(super) max_in_flight: usize,
    pub(super) broker: Option<Broker>,
    pub(super) approvals: Option<Approvals>,
    /// Cancelled when shutdown begins: new calls are refused.
    pub(super) draining: CancellationToken,
    /// Cancelled when the shutdown grace period ends: running calls are stopped.
    pub(super) stop_calls: CancellationToken,
}

impl Gateway {
    /// Builds the gateway from a checked catalog. Fails when a schema does not compile or a tool's
    /// backend is not configured.
    pub fn new(catalog: &Catalog, config: GatewayConfig) -> Result<Self, GatewayError> {
        if !config.work_roles.is_empty() && config.broker.is_none() {
            return Err(GatewayError::NoBroker);
        }
        let mut tools = Vec::new();
        let mut by_name = HashMap::new();
        for def in &catalog.tools {
            if def.approval.is_some() && config.approvals.is_none() {
                return Err(GatewayError::NoApprovals(def.name.clone()));
            }
            let off = config.tools_off.get(&def.name).cloned();
            if off.is_none() {
                config
                    .backends
                    .get(def.backend)
                    .map_err(|error| GatewayError::Backend {
                        tool: def.name.clone(),
                        error,
                    })?;
            }
            let validator =
                validate::compile(&def.input_schema).map_err(|message| GatewayError::Schema {
                    tool: def.name.clone(),
                    message,
                })?;
            let schema = def.input_schema.as_object().cloned().unwrap_or_default();
            let mut listed = rmcp::model::Tool::new(
                def.name.clone(),
                listed_description(def, off.as_deref()),
                Arc::new(schema),
            );
            if def.approval.is_some() {
                listed = listed
                    .with_annotations(rmcp::model::ToolAnnotations::default().destructive(true));
            }
            if let Some(title) = &def.title {
                listed = listed.with_title(title.clone());
            }
            if let Some(out) = def.output_schema.as_ref().and_then(|o| o.as_object()) {
                listed = listed.with_raw_output_schema(Arc::new(out.clone()));
            }
            by_name.insert(def.name.clone(), tools.len());
            tools.push(ToolEntry {
                def: Arc::new(def.clone()),
                listed,
                validator,
                work_role: config.work_roles.get(&def.name).cloned(),
                off,
            });
        }
        Ok(Self {
            inner: Arc::new(Inner {
                tools,
                by_name,
                backends: config.backends,
                audit: config.audit,
                metrics: config.metrics,
                slots: Arc::new(Semaphore::new(config.max_in_flight)),
                max_in_flight: config.max_in_flight,
                broker: config.broker,
                approvals: config.approvals,
                draining: CancellationToken::new(),
                stop_calls: CancellationToken::new(),
            }),
        })
    }

    /// Whether `caller` may use at least one tool.
    pub fn caller_may_use_any(&self, caller: &Caller) -> bool {
        self.inner
            .tools
            .iter()
            .any(|t| authz::may_call(&t.def, caller))
    }

    /// Every scope any tool accepts (for protected-resource metadata).
    pub fn scopes(&self) -> Vec<String> {
        let mut s: Vec<String> = self
            .inner
            .tools
            .iter()
            .flat_map(|t| t.def.allow.scopes.iter().cloned())
            .collect();
        s.sort();
        s.dedup();
        s
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Calls running now.
    pub fn in_flight(&self) -> usize {
        self.inner.max_in_flight - self.inner.slots.available_permits()
    }

    /// Whether shutdown has begun.
    pub fn is_draining(&self) -> bool {
        self.inner.draining.is_cancelled()
    }

    /// Begins shutdown: new calls are refused from now on.
    pub fn start_draining(&self) {
        self.inner.draining.cancel();
    }

    /// Ends the grace period: every running call is cancelled, then every backend is told to
    /// stop what is left.
    pub async fn stop_calls(&self) {
        self.inner.stop_calls.cancel();
        self.wait_idle(Duration::from_secs(5)).await;
        for backend in self.inner.backends.all() {
            backend.shutdown().await;
        }
    }

    /// Waits until no call runs, or `grace` has passed. Returns whether all calls finished.
    pub async fn wait_idle(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        while self.in_flight() > 0 {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        true
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    pub(super) fn lookup(&self, name: &str) -> Option<&ToolEntry> {
        self.inner
            .by_name
            .get(name)
            .and_then(|&i| self.inner.tools.get(i))
    }
}

/// The tool's description as listed: a tool that needs approval says so, and who approves; a
/// tool turned off says so, and why.
fn listed_description(def: &Tool, off: Option<&str>) -> String {
    let mut description = def.description.trim_end().to_owned();
    if let Some(approval) = &def.approval {
        description.push_str(&format!(
            " Each call needs a person's approval before it runs: a member of {} who is not the caller approves it in the gateway's approval page.",
            approval.groups.join(", ")
        ));
    }
    if let Some(why) = off {
        description.push_str(&format!(" Turned off on this gateway: {why}"));
    }
    description
}

/// The error for a tool that does not exist or that the caller may not use: the same, to the
/// byte, in both cases.
pub fn unknown_tool_error(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {name}"), None)
}

pub(super) fn caller_of(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| {
            ErrorData::internal_error("request reached the handler unauthenticated", None)
        })
}

impl ServerHandler for Gateway {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new(
                "switchboard",
                env!("CARGO_PKG_VERSION"),
            ))
            .with_instructions(
                "Switchboard gateway: each tool call runs in its own isolated unit. \
                 Tools listed are those your token may call.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let caller = caller_of(&ctx)?;
        let tools = self
            .inner
            .tools
            .iter()
            .filter(|t| authz::may_call(&t.def, &caller))
            .map(|t| t.listed.clone())
            .collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    /// rmcp asks for a tool's definition to check `Mcp-Param-*` headers against its schema
    /// before the call reaches [`Self::call_tool`]. It gets the definition only when the caller of
    /// the request being served may use the tool, so a denied tool and an unknown tool still
    /// answer alike.
    fn get_tool(&self, name: &str) -> Option<rmcp::model::Tool> {
        let entry = self.lookup(name)?;
        crate::auth::with_request_caller(|caller| {
            caller
                .filter(|c| authz::may_call(&entry.def, c))
                .map(|_| entry.listed.clone())
        })
    }

    // The gateway serves tools only: prompts and resources are not methods it has (rmcp's
    // defaults would answer them with empty lists although no capability declares them).
    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListPromptsResult, ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::ListPromptsRequestMethod,
        >())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourcesResult, ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::ListResourcesRequestMethod,
        >())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _ctx: RequestContext<RoleServer>,
    ) -> Result<rmcp::model::ListResourceTemplatesResult, ErrorData> {
        Err(ErrorData::method_not_found::<
            rmcp::model::ListResourceTemplatesRequestMethod,
        >())
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.call(request, ctx).await
    }
}
