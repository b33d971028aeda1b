use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, PaginatedRequestParams, ProgressNotificationParam, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use sha2::{Digest, Sha256};
use switchboard_tool_runtime::{ContentItem, Invocation, ResourceContents, ToolOutput};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::audit::{AuditRecord, AuditSink};
use crate::authz;
use crate::backend::{BackendError, Backends, Caller, Dispatch, Dispatched, Progress};
use crate::catalog::{Catalog, Tool};
use crate::metrics::Metrics;
use crate::validate;

/// One tool as the gateway serves it: its catalog entry, its MCP listing, its compiled schema.
#[derive(Debug)]
pub struct ToolEntry {
    pub def: Arc<Tool>,
    listed: rmcp::model::Tool,
    validator: jsonschema::Validator,
}

/// What the gateway needs besides the catalog.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    pub backends: Backends,
    pub audit: AuditSink,
    pub metrics: Metrics,
    pub max_in_flight: usize,
}

/// The shared state behind every MCP request. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    tools: Vec<ToolEntry>,
    by_name: HashMap<String, usize>,
    backends: Backends,
    audit: AuditSink,
    metrics: Metrics,
    slots: Arc<Semaphore>,
    max_in_flight: usize,
    /// Cancelled when shutdown begins: new calls are refused.
    draining: CancellationToken,
    /// Cancelled when the shutdown grace period ends: running calls are stopped.
    stop_calls: CancellationToken,
    sessions: crate::sessions::SessionOwners,
}

/// Why the gateway stopped a call it had dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopReason {
    Client,
    Deadline,
    Shutdown,
}

impl Gateway {
    /// Builds the gateway from a checked catalog. Fails when a schema does not compile or a tool's
    /// backend is not configured.
    pub fn new(catalog: &Catalog, config: GatewayConfig) -> Result<Self, String> {
        let mut tools = Vec::new();
        let mut by_name = HashMap::new();
        for def in &catalog.tools {
            config
                .backends
                .get(def.backend)
                .map_err(|e| format!("tool {:?}: {e}", def.name))?;
            let validator = validate::compile(&def.input_schema)
                .map_err(|e| format!("tool {:?}: input_schema: {e}", def.name))?;
            let schema = def.input_schema.as_object().cloned().unwrap_or_default();
            let mut listed =
                rmcp::model::Tool::new(def.name.clone(), def.description.clone(), Arc::new(schema));
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
                draining: CancellationToken::new(),
                stop_calls: CancellationToken::new(),
                sessions: Default::default(),
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

    /// Who owns which MCP session.
    pub fn sessions(&self) -> &crate::sessions::SessionOwners {
        &self.inner.sessions
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

    fn lookup(&self, name: &str) -> Option<&ToolEntry> {
        self.inner
            .by_name
            .get(name)
            .and_then(|&i| self.inner.tools.get(i))
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let started = Instant::now();
        let caller = caller_of(&ctx)?;
        let name = request.name.to_string();
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let raw = serde_json::to_vec(&arguments).unwrap_or_default();
        let mut record = AuditRecord {
            time: now_rfc3339(),
            invocation_id: uuid::Uuid::now_v7().to_string(),
            principal: caller.subject.clone(),
            tenant: caller.tenant.clone(),
            tool: name.clone(),
            arguments_sha256: hex::encode(Sha256::digest(&raw)),
            backend: None,
            unit_id: None,
            role_session_arn: None,
            outcome: "ok",
            reason: None,
            duration_ms: 0,
            bytes_in: raw.len(),
            bytes_out: 0,
        };
        let inner = &self.inner;
        let finish = |mut record: AuditRecord, outcome: &'static str, reason: Option<String>| {
            record.outcome = outcome;
            record.reason = reason;
            record.duration_ms = started.elapsed().as_millis() as u64;
            inner.audit.record(&record);
            inner
                .metrics
                .call_finished(&record.tool, outcome, started.elapsed().as_secs_f64());
        };

        // Authorize: an unknown tool and a tool the caller may not use answer alike.
        let entry = match self.lookup(&name) {
            Some(e) if authz::may_call(&e.def, &caller) => e,
            Some(_) => {
                finish(record, "denied", None);
                return Err(unknown_tool_error(&name));
            }
            None => {
                finish(record, "unknown_tool", None);
                return Err(unknown_tool_error(&name));
            }
        };
        record.backend = Some(entry.def.backend.as_str());

        if let Err(message) = validate::check_arguments(&entry.validator, &arguments) {
            let text = format!("invalid arguments for tool {name:?}: {message}");
            finish(record, "invalid_arguments", Some(message));
            return Ok(CallToolResult::error(vec![ContentBlock::text(text)]));
        }
        if inner.draining.is_cancelled() {
            finish(record, "shutdown", Some("gateway is shutting down".into()));
            return Err(ErrorData::internal_error(
                "the gateway is shutting down; retry elsewhere",
                None,
            ));
        }
        let Ok(_slot) = inner.slots.clone().try_acquire_owned() else {
            finish(record, "busy", Some("too many calls in flight".into()));
            return Err(ErrorData::internal_error(
                format!(
                    "the gateway is at its limit of {} calls in flight; retry later",
                    inner.max_in_flight
                ),
                None,
            ));
        };
        let _gauge = inner.metrics.in_flight();
        let backend = match inner.backends.get(entry.def.backend) {
            Ok(b) => b.clone(),
            Err(e) => {
                finish(record, e.outcome(), Some(e.to_string()));
                return Err(ErrorData::internal_error(e.to_string(), None));
            }
        };

        let timeout = Duration::from_secs(u64::from(entry.def.timeout_seconds));
        let deadline_unix_ms = unix_ms() + timeout.as_millis() as u64;
        let mut session_tags = std::collections::BTreeMap::new();
        for tag in &entry.def.session_tags {
            use crate::catalog::SessionTag;
            let value = match tag {
                SessionTag::Tool => Some(name.clone()),
                SessionTag::Tenant => caller.tenant.clone(),
                SessionTag::Principal => Some(caller.subject.clone()),
                SessionTag::Invocation => Some(record.invocation_id.clone()),
            };
            if let Some(v) = value {
                session_tags.insert(tag.as_str().to_owned(), v);
            }
        }
        let invocation = Invocation {
            invocation_id: record.invocation_id.clone(),
            tool: name.clone(),
            arguments: match arguments {
                serde_json::Value::Object(m) => m,
                _ => serde_json::Map::new(),
            },
            deadline_unix_ms,
            credentials: None,
            session_tags,
        };

        // Progress: forward what the unit reports when the client asked for it, only while the
        // value increases (the spec's MUST); the gateway's own first notification is 0.
        let (progress_tx, mut progress_rx) = mpsc::channel::<Progress>(16);
        let progress_task = ctx.meta.get_progress_token().map(|token| {
            let peer = ctx.peer.clone();
            let backend_name = entry.def.backend.as_str();
            tokio::spawn(async move {
                let mut first = ProgressNotificationParam::new(token.clone(), 0.0);
                first.message = Some(format!("dispatched to the {backend_name} backend"));
                let _ = peer.notify_progress(first).await;
                let mut last = 0.0;
                while let Some(p) = progress_rx.recv().await {
                    let Some(p) = monotonic(&mut last, p) else {
                        continue;
                    };
                    let mut n = ProgressNotificationParam::new(token.clone(), p.progress);
                    n.total = p.total;
                    n.message = p.message;
                    let _ = peer.notify_progress(n).await;
                }
            })
        });

        // One token stops the unit; the watcher records why it was pulled.
        let cancel = CancellationToken::new();
        let (why_tx, why_rx) = tokio::sync::oneshot::channel::<StopReason>();
        let watcher = {
            let cancel = cancel.clone();
            let client = ctx.ct.clone();
            let stop = inner.stop_calls.clone();
            tokio::spawn(async move {
                let why = tokio::select! {
                    _ = client.cancelled() => StopReason::Client,
                    _ = tokio::time::sleep(timeout) => StopReason::Deadline,
                    _ = stop.cancelled() => StopReason::Shutdown,
                };
                let _ = why_tx.send(why);
                cancel.cancel();
            })
        };
        let outcome = backend
            .dispatch(Dispatch {
                invocation,
                tool: entry.def.clone(),
                caller,
                cancel,
                progress: progress_tx,
            })
            .await;
        watcher.abort();
        let stopped = why_rx.await.ok();
        if let Some(task) = progress_task {
            // The sender was moved into the dispatch and is gone now, so the task ends by itself.
            let _ = task.await;
        }

        match outcome {
            Ok(Dispatched {
                output,
                unit_id,
                role_session_arn,
            }) => {
                record.unit_id = Some(unit_id);
                record.role_session_arn = role_session_arn;
                let result = match to_call_result(output) {
                    Ok(result) => result,
                    Err(why) => {
                        // Tool output is untrusted: garbage never reaches the client.
                        let reason = format!("the execution unit failed: {why}");
                        finish(record, "unit_failed", Some(reason.clone()));
                        return Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                            "tool {name:?} failed: {reason}"
                        ))]));
                    }
                };
                record.bytes_out = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
                let outcome = if result.is_error == Some(true) {
                    "tool_error"
                } else {
                    "ok"
                };
                finish(record, outcome, None);
                Ok(result)
            }
            Err(err) => {
                record.unit_id = err.unit_id().map(str::to_owned);
                let (outcome, reason) = match (&err, stopped) {
                    (BackendError::DeadlineExceeded { .. }, _)
                    | (BackendError::Cancelled { .. }, Some(StopReason::Deadline)) => (
                        "deadline_exceeded",
                        format!(
                            "the call ran past its deadline of {} s and was stopped",
                            entry.def.timeout_seconds
                        ),
                    ),
                    (BackendError::Cancelled { .. }, Some(StopReason::Shutdown)) => (
                        "shutdown",
                        "the gateway shut down and stopped the call".to_owned(),
                    ),
                    (BackendError::Cancelled { .. }, _) => {
                        ("cancelled", "the client cancelled the call".to_owned())
                    }
                    (other, _) => (other.outcome(), other.to_string()),
                };
                finish(record, outcome, Some(reason.clone()));
                match outcome {
                    // The tool's own failures are results the agent can read.
                    "deadline_exceeded" | "unit_failed" => {
                        Ok(CallToolResult::error(vec![ContentBlock::text(format!(
                            "tool {name:?} failed: {reason}"
                        ))]))
                    }
                    _ => Err(ErrorData::internal_error(
                        format!("tool {name:?}: {reason}"),
                        None,
                    )),
                }
            }
        }
    }
}

/// The error for a tool that does not exist or that the caller may not use: the same, to the
/// byte, in both cases.
pub fn unknown_tool_error(name: &str) -> ErrorData {
    ErrorData::invalid_params(format!("Unknown tool: {name}"), None)
}

fn caller_of(ctx: &RequestContext<RoleServer>) -> Result<Caller, ErrorData> {
    ctx.extensions
        .get::<http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Caller>())
        .cloned()
        .ok_or_else(|| {
            ErrorData::internal_error("request reached the handler unauthenticated", None)
        })
}

/// The report to forward after one whose progress was `last`, if any: only a finite value greater
/// than the last one sent (a non-finite total is left out).
fn monotonic(last: &mut f64, p: Progress) -> Option<Progress> {
    if !p.progress.is_finite() || p.progress <= *last {
        return None;
    }
    *last = p.progress;
    Some(Progress {
        total: p.total.filter(|t| t.is_finite()),
        ..p
    })
}

/// The MCP result of a tool's output, or why the output cannot be passed on: every item is
/// checked, since what a unit writes is untrusted (base64 that decodes, a `type/subtype` mime
/// type, a resource URI with a scheme).
fn to_call_result(output: ToolOutput) -> Result<CallToolResult, String> {
    let content = output
        .content
        .into_iter()
        .enumerate()
        .map(|(i, c)| to_content_block(c).map_err(|why| format!("content item {i}: {why}")))
        .collect::<Result<Vec<ContentBlock>, String>>()?;
    let mut result = if output.is_error {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = output.structured_content;
    Ok(result)
}

fn to_content_block(item: ContentItem) -> Result<ContentBlock, String> {
    Ok(match item {
        ContentItem::Text { text } => ContentBlock::text(text),
        ContentItem::Image { data, mime_type } => {
            check_base64("image data", &data)?;
            check_mime_type(&mime_type)?;
            ContentBlock::image(data, mime_type)
        }
        ContentItem::Audio { data, mime_type } => {
            check_base64("audio data", &data)?;
            check_mime_type(&mime_type)?;
            ContentBlock::audio(data, mime_type)
        }
        ContentItem::Resource { resource } => {
            let contents = match resource {
                ResourceContents::Text {
                    uri,
                    mime_type,
                    text,
                } => {
                    check_uri(&uri)?;
                    mime_type.as_deref().map(check_mime_type).transpose()?;
                    rmcp::model::ResourceContents::TextResourceContents {
                        uri,
                        mime_type,
                        text,
                        meta: None,
                    }
                }
                ResourceContents::Blob {
                    uri,
                    mime_type,
                    blob,
                } => {
                    check_uri(&uri)?;
                    mime_type.as_deref().map(check_mime_type).transpose()?;
                    check_base64("resource blob", &blob)?;
                    rmcp::model::ResourceContents::BlobResourceContents {
                        uri,
                        mime_type,
                        blob,
                        meta: None,
                    }
                }
            };
            ContentBlock::resource(contents)
        }
    })
}

/// `data` must be base64 of the standard alphabet, padded.
fn check_base64(what: &str, data: &str) -> Result<(), String> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .map(drop)
        .map_err(|e| format!("{what} is not valid base64 ({e})"))
}

/// A mime type must look like `type/subtype`, optionally followed by `;` parameters.
fn check_mime_type(mime: &str) -> Result<(), String> {
    let bad = || {
        let shown: String = mime.chars().take(64).collect();
        Err(format!("{shown:?} is not a mime type (type/subtype)"))
    };
    if mime.len() > 255 {
        return bad();
    }
    let (essence, params) = mime.split_once(';').unwrap_or((mime, ""));
    let Some((kind, subtype)) = essence.split_once('/') else {
        return bad();
    };
    // RFC 6838 restricted names.
    let name = |s: &str| {
        s.len() <= 127
            && s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    let params_ok = params.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if name(kind) && name(subtype) && params_ok {
        Ok(())
    } else {
        bad()
    }
}

/// A resource URI must be non-empty, have a scheme and hold no whitespace or control characters.
fn check_uri(uri: &str) -> Result<(), String> {
    let scheme_ok = uri.split_once(':').is_some_and(|(scheme, _)| {
        scheme
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if scheme_ok && uri.len() <= 8192 && !uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Ok(())
    } else {
        let shown: String = uri.chars().take(64).collect();
        Err(format!("resource uri {shown:?} is not a URI"))
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
        crate::http::with_request_caller(|caller| {
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
        self.call(request, ctx).await.map(Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(progress: f64, total: Option<f64>) -> Progress {
        Progress {
            progress,
            total,
            message: None,
        }
    }

    #[test]
    fn progress_forwarded_only_while_it_increases() {
        let mut last = 0.0;
        let sent: Vec<f64> = [0.0, 50.0, 50.0, 10.0, f64::NAN, f64::INFINITY, 100.0, 99.0]
            .into_iter()
            .filter_map(|v| monotonic(&mut last, report(v, Some(100.0))))
            .map(|p| p.progress)
            .collect();
        assert_eq!(sent, vec![50.0, 100.0]);
        let p = monotonic(&mut last, report(101.0, Some(f64::NAN))).expect("greater");
        assert_eq!(p.total, None);
    }

    fn output(items: serde_json::Value) -> ToolOutput {
        serde_json::from_value(serde_json::json!({ "content": items })).expect("valid output")
    }

    #[test]
    fn every_content_type_reaches_mcp() {
        let result = to_call_result(output(serde_json::json!([
            {"type": "text", "text": "hi"},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
            {"type": "resource", "resource": {"uri": "test://r", "mimeType": "text/plain", "text": "x"}},
            {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAEC"}},
        ])))
        .expect("valid content");
        let wire = serde_json::to_value(&result).expect("serializes");
        assert_eq!(
            wire["content"],
            serde_json::json!([
                {"type": "text", "text": "hi"},
                {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
                {"type": "audio", "data": "UklGRg==", "mimeType": "audio/wav"},
                {"type": "resource", "resource": {"uri": "test://r", "mimeType": "text/plain", "text": "x"}},
                {"type": "resource", "resource": {"uri": "file:///b.bin", "blob": "AAEC"}},
            ])
        );
        assert_ne!(result.is_error, Some(true));
    }

    #[test]
    fn invalid_content_is_refused_with_a_reason() {
        for (items, needle) in [
            (
                serde_json::json!([{"type": "image", "data": "not base64!", "mimeType": "image/png"}]),
                "image data is not valid base64",
            ),
            (
                serde_json::json!([{"type": "image", "data": "AAAA", "mimeType": "png"}]),
                "not a mime type",
            ),
            (
                serde_json::json!([{"type": "audio", "data": "AAA", "mimeType": "audio/wav"}]),
                "audio data is not valid base64",
            ),
            (
                serde_json::json!([{"type": "audio", "data": "AAAA", "mimeType": "audio/wav\n"}]),
                "not a mime type",
            ),
            (
                serde_json::json!([{"type": "text", "text": "ok"},
                    {"type": "resource", "resource": {"uri": "no scheme", "text": "x"}}]),
                "content item 1: resource uri",
            ),
            (
                serde_json::json!([{"type": "resource", "resource": {"uri": "u:x", "blob": "@@@@"}}]),
                "resource blob is not valid base64",
            ),
            (
                serde_json::json!([{"type": "resource", "resource": {"uri": "u:x", "mimeType": "a b/c", "text": "x"}}]),
                "not a mime type",
            ),
        ] {
            let e = to_call_result(output(items.clone())).expect_err("must be refused");
            assert!(e.contains(needle), "{items}: {e}");
        }
    }

    #[test]
    fn mime_types_and_uris() {
        for ok in [
            "image/png",
            "audio/wav",
            "application/vnd.api+json",
            "text/plain; charset=utf-8",
        ] {
            assert!(check_mime_type(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "image",
            "/png",
            "image/",
            "ima ge/png",
            "image/png/x",
            "image/p\u{0}ng",
        ] {
            assert!(check_mime_type(bad).is_err(), "{bad:?}");
        }
        for ok in [
            "test://embedded-resource",
            "file:///a/b",
            "urn:x:y",
            "data:,hi",
        ] {
            assert!(check_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "relative/path",
            "://x",
            "1ab:x",
            "test://a b",
            "test://a\nb",
        ] {
            assert!(check_uri(bad).is_err(), "{bad:?}");
        }
    }
}
