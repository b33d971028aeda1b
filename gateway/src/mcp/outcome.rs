//! [`Outcome`]: how a call ended, decided in one place. Each outcome gives its audit and metric
//! label, the reason written to the audit line, and what the client gets: a tool result the
//! agent can read (`isError: true`) or a JSON-RPC error.

use rmcp::ErrorData;
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, ElicitRequest, ElicitRequestParams, ErrorCode,
    InputRequest, InputRequests, InputRequiredResult,
};

use crate::approval::{Ask, Refusal};
use crate::backend::BackendError;
use crate::credentials::CredentialError;

/// How a call ended.
#[derive(Debug)]
pub enum Outcome {
    /// The unit answered; the result may itself be an error (`isError`) the tool reported.
    Answered(CallToolResult),
    /// The call did not produce the tool's answer.
    Failed(Failure),
}

/// Why a call did not produce the tool's answer.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// No such tool. Answers exactly like [`Failure::Denied`].
    #[error("unknown tool")]
    UnknownTool,
    /// The caller may not use the tool. Answers exactly like [`Failure::UnknownTool`].
    #[error("denied")]
    Denied,
    #[error("{0}")]
    InvalidArguments(String),
    #[error("gateway is shutting down")]
    Draining,
    #[error("too many calls in flight")]
    Busy { limit: usize },
    /// The credential broker refused or could not mint the call's credentials.
    #[error("{0}")]
    Credentials(CredentialError),
    /// What the unit answered cannot be passed on (untrusted content that does not check out).
    #[error("the execution unit failed: {0}")]
    BadOutput(String),
    #[error("the client cancelled the call")]
    Cancelled,
    #[error("the call ran past its deadline of {timeout_seconds} s and was stopped")]
    DeadlineExceeded { timeout_seconds: u32 },
    #[error("the gateway shut down and stopped the call")]
    Shutdown,
    /// Any other failure of the backend or its unit.
    #[error("{0}")]
    Backend(BackendError),
    /// The tool needs a person's approval, which the call does not have yet: the client is
    /// told where to get it, as its capabilities allow.
    #[error("waiting for approval {}", .0.approval_id)]
    ApprovalNeeded(Ask, AskBy),
    /// The call's approval does not let it run.
    #[error("{0}")]
    Approval(Refusal),
    /// The tool is turned off on this gateway (`serve --tool-off`), for this reason.
    #[error("the tool is turned off on this gateway: {0}")]
    TurnedOff(String),
}

/// How a client is asked to have a call approved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskBy {
    /// 2026-07-28 with URL elicitation: an `InputRequiredResult` holding a URL-mode
    /// `elicitation/create` and the sealed `requestState`.
    InputRequired,
    /// 2025-11-25 with URL elicitation: the URL-elicitation-required error (-32042).
    UrlElicitationError,
    /// No URL elicitation: a tool error saying where to approve and that the call can be
    /// retried.
    ToolError,
}

/// The JSON-RPC code of the 2025-11-25 revision's URL-elicitation-required error.
pub const URL_ELICITATION_REQUIRED: i32 = -32042;

impl Outcome {
    /// The label of audit lines and of the `outcome` metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Answered(result) if result.is_error == Some(true) => "tool_error",
            Self::Answered(_) => "ok",
            Self::Failed(failure) => failure.label(),
        }
    }

    /// Why the call did not complete, for the audit line.
    pub fn reason(&self) -> Option<String> {
        match self {
            Self::Answered(_) => None,
            Self::Failed(Failure::UnknownTool | Failure::Denied) => None,
            Self::Failed(failure) => Some(failure.to_string()),
        }
    }

    /// What the client gets for a call of tool `name`.
    pub fn into_response(self, name: &str) -> Result<CallToolResponse, ErrorData> {
        match self {
            Self::Answered(result) => Ok(result.into()),
            Self::Failed(Failure::ApprovalNeeded(ask, by)) => ask_response(ask, by),
            Self::Failed(failure) => failure.into_response(name).map(Into::into),
        }
    }
}

impl Failure {
    fn label(&self) -> &'static str {
        match self {
            Self::UnknownTool => "unknown_tool",
            Self::Denied => "denied",
            Self::InvalidArguments(_) => "invalid_arguments",
            Self::Draining | Self::Shutdown => "shutdown",
            Self::Busy { .. } => "busy",
            Self::Credentials(_) => "credentials_failed",
            Self::BadOutput(_) => "unit_failed",
            Self::Cancelled => "cancelled",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Backend(e) => e.outcome(),
            Self::ApprovalNeeded(..) => "approval_required",
            Self::TurnedOff(_) => "turned_off",
            Self::Approval(refusal) => refusal.label(),
        }
    }

    /// Tool results for what the agent can act on (its arguments, the tool's own failure, the
    /// deadline); JSON-RPC errors for what is the gateway's (shutdown, load, credentials, a unit
    /// that could not start).
    fn into_response(self, name: &str) -> Result<CallToolResult, ErrorData> {
        let tool_error = |text: String| Ok(CallToolResult::error(vec![ContentBlock::text(text)]));
        match self {
            Self::UnknownTool | Self::Denied => Err(super::unknown_tool_error(name)),
            Self::InvalidArguments(message) => {
                tool_error(format!("invalid arguments for tool {name:?}: {message}"))
            }
            Self::BadOutput(_) | Self::DeadlineExceeded { .. } => {
                tool_error(format!("tool {name:?} failed: {self}"))
            }
            Self::Backend(ref e) if e.is_tool_result() => {
                tool_error(format!("tool {name:?} failed: {self}"))
            }
            Self::Draining => Err(ErrorData::internal_error(
                "the gateway is shutting down; retry elsewhere",
                None,
            )),
            Self::Busy { limit } => Err(ErrorData::internal_error(
                format!("the gateway is at its limit of {limit} calls in flight; retry later"),
                None,
            )),
            Self::Credentials(ref e) => Err(ErrorData::internal_error(
                format!("tool {name:?}: no credentials for this call: {e}"),
                None,
            )),
            Self::Approval(Refusal::Store(ref e)) => Err(ErrorData::internal_error(
                format!("tool {name:?}: {e}"),
                None,
            )),
            Self::Approval(refusal) => tool_error(format!("tool {name:?} did not run: {refusal}")),
            Self::ApprovalNeeded(ask, _) => tool_error(ask.message),
            Self::TurnedOff(_) => tool_error(format!("tool {name:?}: {self}")),
            Self::Cancelled | Self::Shutdown | Self::Backend(_) => Err(ErrorData::internal_error(
                format!("tool {name:?}: {self}"),
                None,
            )),
        }
    }
}

/// What a client is sent to have a call approved.
fn ask_response(ask: Ask, by: AskBy) -> Result<CallToolResponse, ErrorData> {
    match by {
        AskBy::InputRequired => {
            let elicit = ElicitRequest::new(ElicitRequestParams::UrlElicitationParams {
                meta: None,
                message: ask.message,
                url: ask.url,
                // The 2026-07-28 revision has no elicitation id: the request state names it.
                elicitation_id: String::new(),
            });
            let mut requests = InputRequests::new();
            requests.insert("approval".into(), InputRequest::Elicitation(elicit));
            Ok(InputRequiredResult::new(Some(requests), Some(ask.request_state)).into())
        }
        AskBy::UrlElicitationError => Err(ErrorData::new(
            ErrorCode(URL_ELICITATION_REQUIRED),
            "this call needs a person's approval before it runs",
            Some(serde_json::json!({
                "elicitations": [{
                    "mode": "url",
                    "elicitationId": ask.approval_id,
                    "url": ask.url,
                    "message": ask.message,
                }]
            })),
        )),
        AskBy::ToolError => Ok(CallToolResult::error(vec![ContentBlock::text(ask.message)]).into()),
    }
}

impl From<Failure> for Outcome {
    fn from(failure: Failure) -> Self {
        Self::Failed(failure)
    }
}
