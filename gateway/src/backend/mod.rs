//! The seam between the gateway and the execution units: one [`Backend`] trait.
//!
//! The gateway authenticates, authorizes and validates a call, builds an [`Invocation`], and hands
//! it to the backend named by the tool's catalog entry. A backend runs the call in a unit that
//! exists for this call only and answers with the tool's [`ToolOutput`] and the unit's id.

pub mod fargate;
pub mod lambda;
pub mod local;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use switchboard_tool_runtime::{Invocation, ToolOutput};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;
use crate::catalog::{BackendKind, Tool};
use crate::deadline::Deadline;

/// A progress report a unit sends while it runs; forwarded to the client when it asked for
/// progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub progress: f64,
    pub total: Option<f64>,
    pub message: Option<String>,
}

/// One call handed to a backend.
#[derive(Debug)]
pub struct Dispatch {
    pub invocation: Invocation,
    /// The tool's catalog entry.
    pub tool: Arc<Tool>,
    pub caller: Caller,
    /// The call's one deadline. The backend alone enforces it, at every step of the unit's
    /// life (staging, starting, running, collecting): when it passes, the backend stops what it
    /// started and answers [`BackendError::DeadlineExceeded`] at once, whatever AWS or the unit
    /// is doing.
    pub deadline: Deadline,
    /// Cancelled when the client cancels the call or the gateway shuts down (never for the
    /// deadline). A backend must stop the unit and return [`BackendError::Cancelled`] promptly.
    pub cancel: CancellationToken,
    /// Where to send progress; sending never blocks the unit (a full channel drops the report).
    pub progress: mpsc::Sender<Progress>,
    /// The call's `dispatch` span: a backend's [`Dispatch::unit_span`] goes under it.
    pub span: tracing::Span,
    /// The client's W3C `traceparent`, when it sent a valid one.
    pub client_traceparent: Option<String>,
}

impl Dispatch {
    /// The span of the unit running this call (under the `dispatch` span), and the traceparent
    /// the unit gets, which is also put into the invocation: the unit span's own when traces
    /// are exported, the client's otherwise ([`crate::telemetry::traceparent`]). A backend
    /// records `switchboard.unit_id` on the span once it knows the unit.
    pub fn unit_span(&mut self, backend: &'static str) -> tracing::Span {
        let span = crate::telemetry::step_span!(
            &self.span,
            "unit",
            self.invocation.invocation_id,
            self.tool.name,
            switchboard.backend = backend,
            switchboard.unit_id = tracing::field::Empty,
        );
        self.invocation.traceparent =
            crate::telemetry::traceparent(&span, self.client_traceparent.as_deref());
        span
    }
}

/// Why a unit was stopped before it ended by itself; the one list the call's watcher and the
/// backends share. The call's watcher stops a call for [`StopReason::Cancelled`] and
/// [`StopReason::Shutdown`] (through [`Dispatch::cancel`]); [`StopReason::Deadline`] is the
/// backend's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The client cancelled the call (or hung up).
    Cancelled,
    /// The gateway is shutting down.
    Shutdown,
    /// The call's deadline passed.
    Deadline,
}

impl StopReason {
    /// The backend's answer for a call stopped this way (a shutdown is a cancel to the
    /// backend; the call's watcher tells the two apart in the audit line).
    pub(crate) fn error(self, unit_id: Option<String>, timeout_seconds: u32) -> BackendError {
        match self {
            Self::Deadline => BackendError::DeadlineExceeded {
                unit_id,
                timeout_seconds,
            },
            Self::Cancelled | Self::Shutdown => BackendError::Cancelled { unit_id },
        }
    }
}

/// What a backend answers for a call that ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Dispatched {
    pub output: ToolOutput,
    /// The unit that ran the call: sandbox id, Lambda request id, task ARN.
    pub unit_id: String,
}

/// Why a backend could not produce a tool result.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("the call was cancelled")]
    Cancelled { unit_id: Option<String> },
    #[error("the call ran past its deadline of {timeout_seconds} s and was stopped")]
    DeadlineExceeded {
        unit_id: Option<String>,
        timeout_seconds: u32,
    },
    #[error("the execution unit could not be started: {message}")]
    Start { message: String },
    /// The unit was started but did not come up within its start window (a Fargate task not
    /// `RUNNING` by the end of `fargate.start_timeout_seconds`), and was stopped.
    #[error(
        "the task did not start within {start_timeout_seconds} s (its start window, \
         fargate.start_timeout_seconds) and was stopped"
    )]
    StartTimeout {
        unit_id: Option<String>,
        start_timeout_seconds: u64,
    },
    #[error("the execution unit failed: {message}")]
    Unit {
        unit_id: Option<String>,
        message: String,
    },
    /// A result object that is not sealed with the call's key (`switchboard_tool_runtime::seal`):
    /// someone who holds the result URL but never read the invocation stored it.
    #[error("the task's result was refused as forged: {message}")]
    ForgedResult {
        unit_id: Option<String>,
        message: String,
    },
    /// The call cannot be sent to its unit as it is (too large for the unit's API, say).
    #[error("{message}")]
    Refused {
        message: String,
        /// Audit and metric label, e.g. `payload_too_large`.
        label: &'static str,
    },
    #[error("no {0} backend is configured on this gateway")]
    NotConfigured(&'static str),
    /// The backend is running as many units as it may; the call can be retried.
    #[error("{message}")]
    Busy { message: String },
}

impl BackendError {
    /// The unit that was running when the error happened, if one had started.
    pub fn unit_id(&self) -> Option<&str> {
        match self {
            Self::Cancelled { unit_id }
            | Self::DeadlineExceeded { unit_id, .. }
            | Self::StartTimeout { unit_id, .. }
            | Self::ForgedResult { unit_id, .. }
            | Self::Unit { unit_id, .. } => unit_id.as_deref(),
            Self::Start { .. }
            | Self::Refused { .. }
            | Self::NotConfigured(_)
            | Self::Busy { .. } => None,
        }
    }

    /// Whether the agent gets this failure as a tool result (`isError`) it can act on, rather
    /// than as a JSON-RPC error.
    pub fn is_tool_result(&self) -> bool {
        matches!(
            self,
            Self::Unit { .. }
                | Self::Refused { .. }
                | Self::DeadlineExceeded { .. }
                | Self::StartTimeout { .. }
                | Self::ForgedResult { .. }
        )
    }

    /// A short outcome label for audit lines and metrics.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Cancelled { .. } => "cancelled",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Start { .. } => "start_failed",
            Self::StartTimeout { .. } => "start_timeout",
            Self::Unit { .. } => "unit_failed",
            Self::ForgedResult { .. } => "forged_result",
            Self::Refused { label, .. } => label,
            Self::NotConfigured(_) => "not_configured",
            Self::Busy { .. } => "busy",
        }
    }
}

/// The binding of a call's tool in `targets` and the call's invocation encoded, refused when it is
/// over `limit`: what the AWS backends do before they send anything. `target` names what a
/// binding holds ("Lambda function") for the error of a tool without one.
pub(crate) fn encode_for<'a, T>(
    call: &Dispatch,
    targets: &'a HashMap<String, T>,
    target: &str,
    limit: PayloadLimit,
) -> Result<(&'a T, Vec<u8>), BackendError> {
    let bound = targets
        .get(&call.tool.name)
        .ok_or_else(|| BackendError::Start {
            message: format!("no {target} is bound to tool {:?}", call.tool.name),
        })?;
    let payload = serde_json::to_vec(&call.invocation).map_err(|e| BackendError::Start {
        message: format!("cannot encode the invocation: {e}"),
    })?;
    if payload.len() > limit.bytes {
        return Err(BackendError::Refused {
            message: format!(
                "the invocation is {} bytes, over {} of {} bytes{}",
                payload.len(),
                limit.whose,
                limit.bytes,
                limit.note
            ),
            label: "payload_too_large",
        });
    }
    Ok((bound, payload))
}

/// The largest invocation a unit's API takes, and how the refusal names it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PayloadLimit {
    pub bytes: usize,
    /// Whose limit: "the limit", "Lambda's limit".
    pub whose: &'static str,
    /// Words after the number, e.g. " (6 MB) for a synchronous payload".
    pub note: &'static str,
}

/// The outcome label of a backend's answer: `ok`, `tool_error`, or the error's.
pub(crate) fn outcome(result: &Result<Dispatched, BackendError>) -> &'static str {
    match result {
        Ok(d) if d.output.is_error => "tool_error",
        Ok(_) => "ok",
        Err(e) => e.outcome(),
    }
}

/// Logs the backend's line for a finished call at debug (`"<unit> finished"`: "lambda invoke
/// finished"): tool, invocation, unit id, outcome, duration, and whether the unit was prepared
/// ahead of the call when the backend prepares units. The call's own line (mcp::call) is the one
/// at info.
pub(crate) fn log_finished(
    unit: &str,
    call: &Dispatch,
    started: std::time::Instant,
    prepared: Option<bool>,
    result: &Result<Dispatched, BackendError>,
) {
    let unit_id = match result {
        Ok(d) => Some(d.unit_id.as_str()),
        Err(e) => e.unit_id(),
    };
    tracing::debug!(
        tool = %call.tool.name,
        invocation = %call.invocation.invocation_id,
        unit_id = unit_id.unwrap_or("-"),
        outcome = outcome(result),
        prepared,
        duration_ms = crate::deadline::millis(started.elapsed()),
        "{unit} finished"
    );
}

/// Awaits `work` unless the call's deadline passes or the call is cancelled first; a deadline
/// that has passed wins over a cancel. Every wait of a call on AWS goes through here: the
/// backend alone answers the deadline. The call's cancel covers the client's and the
/// shutdown's, so a stop seen here is [`StopReason::Deadline`] or [`StopReason::Cancelled`].
pub(crate) async fn until_stop<F: Future>(
    call: &Dispatch,
    work: F,
) -> Result<F::Output, StopReason> {
    tokio::select! {
        biased;
        _ = tokio::time::sleep_until(call.deadline.instant()) => Err(StopReason::Deadline),
        _ = call.cancel.cancelled() => Err(StopReason::Cancelled),
        out = work => Ok(out),
    }
}

/// Counts what is in flight (calls, clean-ups) so that shutdown can wait until none is.
#[derive(Debug, Default)]
pub(crate) struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

impl InFlight {
    /// How many are in flight now.
    pub(crate) fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until none is in flight.
    pub(crate) async fn until_idle(&self) {
        loop {
            // Created before the count is read, so a notification in between is not lost.
            let idle = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One in flight, counted until dropped.
pub(crate) struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    pub(crate) fn new(in_flight: &Arc<InFlight>) -> Self {
        in_flight.count.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(in_flight))
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// An execution backend.
#[async_trait]
pub trait Backend: Send + Sync + fmt::Debug {
    /// Runs one call in a fresh unit and returns what the tool answered.
    async fn dispatch(&self, call: Dispatch) -> Result<Dispatched, BackendError>;

    /// Stops every unit still running; called once at shutdown after in-flight calls were given
    /// their grace period.
    async fn shutdown(&self) {}

    /// Adds what this backend counts to the gateway's metrics registry (called once at start).
    fn register_metrics(&self, _registry: &mut prometheus_client::registry::Registry) {}
}

/// The backends a gateway has, by kind.
#[derive(Debug, Default, Clone)]
pub struct Backends {
    by_kind: HashMap<BackendKind, Arc<dyn Backend>>,
}

impl Backends {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) the backend for `kind`.
    pub fn with(mut self, kind: BackendKind, backend: Arc<dyn Backend>) -> Self {
        self.by_kind.insert(kind, backend);
        self
    }

    pub fn get(&self, kind: BackendKind) -> Result<&Arc<dyn Backend>, BackendError> {
        self.by_kind
            .get(&kind)
            .ok_or(BackendError::NotConfigured(kind.as_str()))
    }

    /// Every configured backend.
    pub fn all(&self) -> impl Iterator<Item = &Arc<dyn Backend>> {
        self.by_kind.values()
    }

    /// Adds what each backend counts to the gateway's metrics registry (called once at start,
    /// with the registry `Metrics::with_registered` hands over).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        for backend in self.all() {
            backend.register_metrics(registry);
        }
    }
}
