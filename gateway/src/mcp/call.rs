//! One `tools/call`, as named steps read top to bottom:
//! authorize → validate → admit → approval → mint credentials → dispatch → answer → audit.
//!
//! Each step either hands the next one what it needs or ends the call with a [`Failure`]; the
//! [`Outcome`] alone decides what the client gets and what the audit line and the metrics say.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ProgressNotificationParam,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use sha2::{Digest, Sha256};
use switchboard_tool_runtime::Invocation;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::content::to_call_result;
use super::handler::{Gateway, ToolEntry};
use super::outcome::{AskBy, Failure, Outcome};
use crate::approval::{Gate, Granted, Refusal, StoreError};
use crate::audit::AuditRecord;
use crate::auth::Caller;
use crate::authz;
use crate::backend::{Backend, BackendError, Dispatch, Dispatched, Progress, StopReason};
use crate::credentials::{CredentialError, MintRequest};
use crate::deadline::Deadline;
use crate::metrics::InFlight;
use crate::telemetry::{CallTrace, step_span};
use crate::validate;

/// A call that passed admission: it holds an in-flight slot until it ends.
struct Admitted {
    _slot: OwnedSemaphorePermit,
    _gauge: InFlight,
}

/// A new invocation id: a UUIDv7, so ids sort by the time their calls arrived.
pub fn new_invocation_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// What the call carries from step to step.
struct Call<'a> {
    caller: Caller,
    /// The call's span and the client's trace context ([`CallTrace`]).
    trace: CallTrace,
    name: String,
    /// The arguments as sent: an object (rmcp types them so), moved into the invocation.
    arguments: serde_json::Value,
    record: AuditRecord,
    ctx: &'a RequestContext<RoleServer>,
    /// What the client echoed from an earlier `InputRequiredResult` (2026-07-28).
    request_state: Option<String>,
    /// Whether it answered the approval elicitation with decline or cancel.
    declined: bool,
}

impl Gateway {
    /// Serves one `tools/call`.
    pub(super) async fn call(
        &self,
        request: CallToolRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let caller = super::handler::caller_of(&ctx)?;
        let mut call = Call::begin(caller, request, &ctx);
        let span = call.trace.span.clone();
        let outcome = match self.run(&mut call).instrument(span).await {
            Ok(result) => Outcome::Answered(result),
            Err(failure) => Outcome::Failed(failure),
        };
        let name = call.name.clone();
        call.trace
            .finish(outcome.label(), matches!(outcome, Outcome::Answered(_)));
        self.audit(call.record, &outcome, started.elapsed());
        outcome.into_response(&name)
    }

    /// The steps of a call, in order.
    async fn run(&self, call: &mut Call<'_>) -> Result<CallToolResult, Failure> {
        let entry = {
            let _step = step_span!(
                &call.trace.span,
                "authorize",
                call.trace.invocation_id,
                call.name
            )
            .entered();
            self.authorize(&call.name, &call.caller)?
        };
        if let Some(why) = entry.off() {
            return Err(Failure::TurnedOff(why.to_owned()));
        }
        call.record.backend = Some(entry.def.backend.as_str());
        call.trace
            .span
            .record("switchboard.backend", entry.def.backend.as_str());
        validate_arguments(entry, &call.arguments)?;
        let _admitted = self.admit()?;
        let granted = self.approval(entry, call).await?;
        let backend = self.backend_of(entry)?;
        let deadline = Deadline::after(Duration::from_secs(u64::from(entry.def.timeout_seconds)));
        let mut invocation = self.invocation(entry, call, &deadline);
        // From here on, the client's cancel and the gateway's shutdown stop the call; the
        // deadline is enforced by the step that is running (the broker, then the backend).
        let watch = self.watch(call);
        tokio::select! {
            biased;
            minted = self.mint_credentials(entry, call, &mut invocation, &deadline) => minted?,
            () = watch.cancel.cancelled() => {
                return Err(stop_failure(
                    BackendError::Cancelled { unit_id: None },
                    watch.why(),
                    entry.def.timeout_seconds,
                ));
            }
        }
        if let Some(granted) = &granted {
            self.spend_approval(granted).await?;
        }
        let dispatched = match self
            .dispatch(entry, &backend, call, invocation, deadline, watch)
            .await
        {
            Ok(dispatched) => dispatched,
            Err((failure, unit_id)) => {
                call.record.unit_id = unit_id;
                return Err(failure);
            }
        };
        call.record.unit_id = Some(dispatched.unit_id.clone());
        let result = answer(dispatched)?;
        call.record.bytes_out = serde_json::to_vec(&result).map(|v| v.len()).unwrap_or(0);
        Ok(result)
    }

    /// Authorize: an unknown tool and a tool the caller may not use answer alike.
    fn authorize(&self, name: &str, caller: &Caller) -> Result<&ToolEntry, Failure> {
        match self.lookup(name) {
            Some(entry) if authz::may_call(&entry.def, caller) => Ok(entry),
            Some(_) => Err(Failure::Denied),
            None => Err(Failure::UnknownTool),
        }
    }

    /// Approval: a tool whose catalog asks for one runs only under an approval a person granted
    /// for this exact call. Without one the client is told where to get it; the approval is
    /// spent only once the call's credentials are minted ([`Self::spend_approval`]), so a call
    /// that fails before that loses nothing.
    async fn approval(
        &self,
        entry: &ToolEntry,
        call: &mut Call<'_>,
    ) -> Result<Option<Granted>, Failure> {
        if entry.def.approval.is_none() {
            return Ok(None);
        }
        let Some(approvals) = self.inner().approvals.as_ref() else {
            return Err(Failure::Approval(Refusal::Store(StoreError::Unavailable(
                "this gateway has no approval store".into(),
            ))));
        };
        let step = step_span!(
            &call.trace.span,
            "approval",
            call.trace.invocation_id,
            call.name
        );
        let gate = approvals
            .gate(
                &entry.def,
                &call.arguments,
                &call.caller,
                call.request_state.as_deref(),
                call.declined,
            )
            .instrument(step)
            .await;
        match gate {
            Gate::Run(granted) => {
                call.record.approval_id = Some(granted.id.clone());
                call.record.approver = Some(granted.approver.clone());
                call.record.approved_at = Some(granted.approved_at.clone());
                Ok(Some(granted))
            }
            Gate::Ask(ask) => {
                call.record.approval_id = Some(ask.approval_id.clone());
                Err(Failure::ApprovalNeeded(ask, ask_by(call.ctx)))
            }
            Gate::Refuse(refusal) => Err(Failure::Approval(refusal)),
        }
    }

    /// Marks the call's approval used, once: of two calls racing with one approval, one runs.
    async fn spend_approval(&self, granted: &Granted) -> Result<(), Failure> {
        let Some(approvals) = self.inner().approvals.as_ref() else {
            return Ok(());
        };
        approvals.spend(granted).await.map_err(Failure::Approval)
    }

    /// Admit: no new call while shutting down, none past the in-flight limit.
    fn admit(&self) -> Result<Admitted, Failure> {
        let inner = self.inner();
        if inner.draining.is_cancelled() {
            return Err(Failure::Draining);
        }
        let slot = inner
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Failure::Busy {
                limit: inner.max_in_flight,
            })?;
        Ok(Admitted {
            _slot: slot,
            _gauge: inner.metrics.in_flight(),
        })
    }

    fn backend_of(&self, entry: &ToolEntry) -> Result<Arc<dyn Backend>, Failure> {
        self.inner()
            .backends
            .get(entry.def.backend)
            .cloned()
            .map_err(Failure::Backend)
    }

    /// The invocation the unit receives: validated arguments, the deadline on the wire, and the
    /// session tags, whose values come from the verified caller and the gateway only (never from
    /// the arguments).
    fn invocation(
        &self,
        entry: &ToolEntry,
        call: &mut Call<'_>,
        deadline: &Deadline,
    ) -> Invocation {
        // A tool with a work role gets the tags the broker checked and sent to STS (set when the
        // credentials are minted); for one without, they are informational and an absent tenant
        // is left out.
        let mut session_tags = std::collections::BTreeMap::new();
        if entry.work_role().is_none() {
            for tag in &entry.def.session_tags {
                use crate::catalog::SessionTag;
                let value = match tag {
                    SessionTag::Tool => Some(call.name.clone()),
                    SessionTag::Tenant => call.caller.tenant.clone(),
                    SessionTag::Principal => Some(call.caller.subject.clone()),
                    SessionTag::Invocation => Some(call.record.invocation_id.clone()),
                    SessionTag::Approver => call.record.approver.clone(),
                };
                if let Some(v) = value {
                    session_tags.insert(tag.as_str().to_owned(), v);
                }
            }
        }
        Invocation {
            invocation_id: call.record.invocation_id.clone(),
            tool: call.name.clone(),
            arguments: match std::mem::take(&mut call.arguments) {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            deadline_unix_ms: deadline.unix_ms(),
            credentials: None,
            session_tags,
            // Set by the backend, from the span of the unit ([`Dispatch::unit_span`]).
            traceparent: None,
            // Set by a backend whose result comes back by a URL others can read (Fargate).
            result_key: None,
        }
    }

    /// Mint credentials: for a tool with a work role, STS `AssumeRole` for this call only; the
    /// credentials go into the invocation, the role session into the audit line.
    async fn mint_credentials(
        &self,
        entry: &ToolEntry,
        call: &mut Call<'_>,
        invocation: &mut Invocation,
        deadline: &Deadline,
    ) -> Result<(), Failure> {
        let (Some(role_arn), Some(broker)) = (entry.work_role(), self.inner().broker.as_ref())
        else {
            return Ok(());
        };
        let step = step_span!(
            &call.trace.span,
            "mint_credentials",
            call.trace.invocation_id,
            call.name
        );
        let minted = broker
            .mint(MintRequest {
                tool: &entry.def,
                role_arn,
                session_tags: &entry.def.session_tags,
                invocation_id: &invocation.invocation_id,
                caller: &call.caller,
                deadline,
                approver: call.record.approver.as_deref(),
            })
            .instrument(step)
            .await
            .map_err(|e| {
                let code = match &e {
                    CredentialError::Sts { label, .. } => Some(*label),
                    CredentialError::PackedPolicyTooLarge { .. } => Some("PackedPolicyTooLarge"),
                    CredentialError::Throttled { .. } => Some("Throttling"),
                    _ => None,
                };
                if let Some(code) = code {
                    self.inner().metrics.aws_errors().count("sts", code);
                }
                match e {
                    // The deadline is the call's, whichever step it passes in: one outcome.
                    CredentialError::DeadlineExceeded { .. } => Failure::DeadlineExceeded {
                        timeout_seconds: entry.def.timeout_seconds,
                    },
                    e => Failure::Credentials(e),
                }
            })?;
        call.record.role_session_arn = Some(minted.assumed_role_arn);
        invocation.session_tags = minted.session_tags;
        invocation.credentials = Some(minted.credentials);
        Ok(())
    }

    /// The call's watcher: cancels the call when the client cancels it (or hangs up) or the
    /// gateway shuts down, and remembers which. Never for the deadline, which the running step
    /// enforces itself.
    fn watch(&self, call: &Call<'_>) -> Watch {
        let cancel = CancellationToken::new();
        let why = Arc::new(std::sync::OnceLock::new());
        let task = {
            let (cancel, why) = (cancel.clone(), Arc::clone(&why));
            let client = call.ctx.ct.clone();
            let stop = self.inner().stop_calls.clone();
            tokio::spawn(async move {
                let reason = tokio::select! {
                    _ = client.cancelled() => StopReason::Cancelled,
                    _ = stop.cancelled() => StopReason::Shutdown,
                };
                let _ = why.set(reason);
                cancel.cancel();
            })
        };
        Watch { cancel, why, task }
    }

    /// Dispatch: hands the invocation to the backend, which runs it to its end or its deadline;
    /// the watcher stops it when the client cancels or the gateway shuts down. Forwards progress
    /// while it runs.
    async fn dispatch(
        &self,
        entry: &ToolEntry,
        backend: &Arc<dyn Backend>,
        call: &Call<'_>,
        invocation: Invocation,
        deadline: Deadline,
        watch: Watch,
    ) -> Result<Dispatched, (Failure, Option<String>)> {
        let (progress_tx, progress_rx) = mpsc::channel::<Progress>(16);
        let progress_task = forward_progress(call.ctx, entry.def.backend.as_str(), progress_rx);
        let step = step_span!(
            &call.trace.span,
            "dispatch",
            call.trace.invocation_id,
            call.name
        );
        let result = backend
            .dispatch(Dispatch {
                invocation,
                tool: entry.def.clone(),
                caller: call.caller.clone(),
                deadline,
                cancel: watch.cancel.clone(),
                progress: progress_tx,
                span: step.clone(),
                client_traceparent: call.trace.client_traceparent.clone(),
            })
            .instrument(step)
            .await;
        let stopped = watch.why();
        if let Some(task) = progress_task {
            // The sender was moved into the dispatch and is gone now, so the task ends by itself.
            let _ = task.await;
        }
        result.map_err(|err| {
            let unit_id = err.unit_id().map(str::to_owned);
            (
                stop_failure(err, stopped, entry.def.timeout_seconds),
                unit_id,
            )
        })
    }

    /// Audit: one line per call, and the call metrics, from the outcome.
    fn audit(&self, mut record: AuditRecord, outcome: &Outcome, elapsed: Duration) {
        let inner = self.inner();
        record.outcome = outcome.label();
        record.reason = outcome.reason();
        record.duration_ms = crate::deadline::millis(elapsed);
        // The call's one line in the log at the default level.
        tracing::info!(
            invocation_id = %record.invocation_id,
            tool = %record.tool,
            principal = %record.principal,
            backend = record.backend.map(tracing::field::display),
            outcome = %record.outcome,
            duration_ms = record.duration_ms,
            unit_id = record.unit_id.as_deref().map(tracing::field::display),
            reason = record.reason.as_deref().map(tracing::field::display),
            "tool call"
        );
        inner.audit.record(&record);
        inner.metrics.call_finished(
            &record.tool,
            record.backend,
            record.outcome,
            elapsed.as_secs_f64(),
        );
    }
}

impl<'a> Call<'a> {
    fn begin(
        caller: Caller,
        request: CallToolRequestParams,
        ctx: &'a RequestContext<RoleServer>,
    ) -> Self {
        let name = request.name.to_string();
        // Begun by the HTTP layer when the request came through it (authentication is then the
        // first step of the call's trace); otherwise here.
        let parts = ctx.extensions.get::<http::request::Parts>();
        let trace = parts
            .and_then(|p| p.extensions.get::<CallTrace>())
            .filter(|t| t.tool == name)
            .cloned()
            .unwrap_or_else(|| {
                let empty = http::HeaderMap::new();
                let headers = parts.map_or(&empty, |p| &p.headers);
                CallTrace::begin(new_invocation_id(), name.clone(), headers)
            });
        let declined = request
            .input_responses
            .as_ref()
            .and_then(|r| r.get("approval"))
            .and_then(|r| r.get("action"))
            .and_then(|a| a.as_str())
            .is_some_and(|a| a == "decline" || a == "cancel");
        let request_state = request.request_state;
        let arguments = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let raw = serde_json::to_vec(&arguments).unwrap_or_default();
        let record = AuditRecord {
            time: now_rfc3339(),
            invocation_id: trace.invocation_id.clone(),
            principal: caller.subject.clone(),
            tenant: caller.tenant.clone(),
            session: parts
                .and_then(|p| p.headers.get("mcp-session-id"))
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
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
            approval_id: None,
            approver: None,
            approved_at: None,
        };
        Self {
            caller,
            trace,
            name,
            arguments,
            record,
            ctx,
            request_state,
            declined,
        }
    }
}

/// How this client can be asked for an approval: by the 2026-07-28 `InputRequiredResult` or the
/// 2025-11-25 URL-elicitation error when it declared URL elicitation, else by a tool error.
fn ask_by(ctx: &RequestContext<RoleServer>) -> AskBy {
    let url = ctx
        .client_capabilities()
        .and_then(|c| c.elicitation)
        .is_some_and(|e| e.url.is_some());
    if !url {
        return AskBy::ToolError;
    }
    match ctx.protocol_version() {
        Some(v) if !v.has_initialize() => AskBy::InputRequired,
        _ => AskBy::UrlElicitationError,
    }
}

/// What [`Gateway::watch`] started: the call's cancel token and why it was cancelled, if it
/// was. The watching task ends with the call.
struct Watch {
    cancel: CancellationToken,
    why: Arc<std::sync::OnceLock<StopReason>>,
    task: tokio::task::JoinHandle<()>,
}

impl Watch {
    fn why(&self) -> Option<StopReason> {
        self.why.get().copied()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Validate: the arguments against the tool's compiled input schema.
fn validate_arguments(entry: &ToolEntry, arguments: &serde_json::Value) -> Result<(), Failure> {
    validate::check_arguments(entry.validator(), arguments).map_err(Failure::InvalidArguments)
}

/// Answer: the unit's output as MCP content, checked, since what a unit writes is untrusted.
fn answer(dispatched: Dispatched) -> Result<CallToolResult, Failure> {
    to_call_result(dispatched.output).map_err(Failure::BadOutput)
}

/// A backend error, read together with why the watcher pulled the call (if it did): a
/// cancellation is the client's unless the gateway was shutting down. The deadline is the
/// backend's to tell ([`BackendError::DeadlineExceeded`]).
fn stop_failure(err: BackendError, stopped: Option<StopReason>, timeout_seconds: u32) -> Failure {
    match (err, stopped) {
        (BackendError::DeadlineExceeded { .. }, _) => Failure::DeadlineExceeded { timeout_seconds },
        (BackendError::Cancelled { .. }, Some(StopReason::Shutdown)) => Failure::Shutdown,
        (BackendError::Cancelled { .. }, _) => Failure::Cancelled,
        (other, _) => Failure::Backend(other),
    }
}

/// Progress: forwards what the unit reports when the client asked for it, only while the value
/// increases (the spec's MUST); the gateway's own first notification is 0.
fn forward_progress(
    ctx: &RequestContext<RoleServer>,
    backend_name: &'static str,
    mut reports: mpsc::Receiver<Progress>,
) -> Option<tokio::task::JoinHandle<()>> {
    let token = ctx.meta.get_progress_token()?;
    let peer = ctx.peer.clone();
    Some(tokio::spawn(async move {
        let mut first = ProgressNotificationParam::new(token.clone(), 0.0);
        first.message = Some(format!("dispatched to the {backend_name} backend"));
        let _ = peer.notify_progress(first).await;
        let mut last = 0.0;
        while let Some(p) = reports.recv().await {
            let Some(p) = monotonic(&mut last, p) else {
                continue;
            };
            let mut n = ProgressNotificationParam::new(token.clone(), p.progress);
            n.total = p.total;
            n.message = p.message;
            let _ = peer.notify_progress(n).await;
        }
    }))
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

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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
}
