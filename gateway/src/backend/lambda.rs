//! The Lambda backend: each call is one synchronous `Invoke` of the tool's own function.
//!
//! The payload is the call's [`Invocation`](switchboard_tool_runtime::Invocation), credentials
//! included (the function's execution role has no data rights; the tool works with what the
//! broker minted for this call). The answer is the tool's `ToolOutput`.
//!
//! - **Size.** Lambda refuses synchronous payloads over 6 MB; the gateway checks before sending
//!   and answers a tool error naming the limit.
//! - **Function errors.** `FunctionError` (a tool's own failure, a crash) becomes an `isError`
//!   result carrying the function's `errorMessage`, cut to [`MAX_ERROR_MESSAGE_CHARS`]; a function
//!   timeout (`Task timed out after`) becomes `deadline_exceeded`.
//! - **Retries.** The SDK's own retries are turned off for this client (`RetryConfig::disabled()`):
//!   a retry of a request whose answer was lost would run the tool a second time. The backend
//!   retries only throttling answered HTTP 429 (`TooManyRequestsException`: Lambda refuses it
//!   before running anything), with the gateway's capped, jittered [`Backoff`] ([`THROTTLING`]),
//!   for at most 8 attempts and while the deadline allows.
//! - **Deadline and cancellation.** The call answers at its deadline or at its cancel (the
//!   client's, or the gateway's at shutdown), whatever Lambda does: the wait on each `Invoke` and
//!   each throttling pause ends there ([`until_stop`](super::until_stop), the same as the Fargate backend's), and the
//!   `Invoke` is dropped (its connection closed). The function itself runs on until its own
//!   timeout (Lambda cannot stop an invocation), but its credentials stop working at the call's
//!   deadline (the session policy's `aws:CurrentTime` condition). Nothing else is left: Lambda
//!   keeps nothing of the call.
//! - **Unit id** is Lambda's request id.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use switchboard_tool_runtime::ToolOutput;
use tracing::Instrument as _;

use super::{
    Backend, BackendError, Dispatch, Dispatched, PayloadLimit, encode_for, log_finished, until_stop,
};
use crate::aws::{AwsErrors, Backoff, SdkFailure, cut};

/// Lambda's limit on a synchronous invocation's request payload (6 MB).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How much of a function's `errorMessage` reaches the client.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 4096;

/// How throttled `Invoke`s are spaced: 50 ms doubling up to 2 s, at most 8 attempts (and never
/// past the deadline).
pub const THROTTLING: Backoff = Backoff {
    base: Duration::from_millis(50),
    cap: Duration::from_secs(2),
    max_attempts: 8,
};

/// How much of an SDK error without a service message reaches the client.
const MAX_SDK_ERROR_CHARS: usize = 300;

/// The refusal of an invocation over [`MAX_PAYLOAD_BYTES`].
const PAYLOAD_LIMIT: PayloadLimit = PayloadLimit {
    bytes: MAX_PAYLOAD_BYTES,
    whose: "Lambda's limit",
    note: " (6 MB) for a synchronous payload",
};

/// Runs each call as one `Invoke` of the tool's function.
#[derive(Debug)]
pub struct LambdaBackend {
    client: aws_sdk_lambda::Client,
    /// Function ARN by tool name, from the bindings.
    functions: HashMap<String, String>,
    errors: AwsErrors,
}

impl LambdaBackend {
    /// A backend invoking `functions` (tool name → function ARN) with `config`; the SDK's own
    /// retries are turned off (see the module docs).
    pub fn new(
        config: &aws_config::SdkConfig,
        functions: HashMap<String, String>,
        errors: AwsErrors,
    ) -> Self {
        let lambda = aws_sdk_lambda::config::Builder::from(config)
            .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled())
            .build();
        Self {
            client: aws_sdk_lambda::Client::from_conf(lambda),
            functions,
            errors,
        }
    }

    /// `Invoke` of `function`, retried on throttling with [`THROTTLING`] while the deadline
    /// allows; every wait ends at the call's deadline or cancel.
    async fn invoke(
        &self,
        call: &Dispatch,
        function: &str,
        payload: &[u8],
        unit: &tracing::Span,
    ) -> Result<Dispatched, BackendError> {
        let timeout_seconds = call.tool.timeout_seconds;
        let stopped = |stop: super::StopReason| stop.error(None, timeout_seconds);
        let context = call.invocation.traceparent.as_deref().map(client_context);
        let mut attempts = 0;
        loop {
            attempts += 1;
            let invoke = self
                .invoke_once(function, payload, context.as_deref(), timeout_seconds)
                .instrument(unit.clone());
            let message = match until_stop(call, invoke).await.map_err(stopped)? {
                Ok(done) => return Ok(done),
                Err(Attempt::Failed(e)) => return Err(e),
                Err(Attempt::Throttled(message)) => message,
            };
            let Some(pause) = THROTTLING.next_pause(attempts, call.deadline.remaining()) else {
                return Err(BackendError::Start {
                    message: format!(
                        "Lambda throttled the call ({message}) and neither the deadline nor \
                         the retry limit allows another attempt ({attempts} attempt(s))"
                    ),
                });
            };
            tracing::debug!(tool = %call.tool.name, retry = attempts, "Lambda throttled; retrying");
            until_stop(call, tokio::time::sleep(pause))
                .await
                .map_err(stopped)?;
        }
    }

    async fn invoke_once(
        &self,
        function: &str,
        payload: &[u8],
        client_context: Option<&str>,
        timeout_seconds: u32,
    ) -> Result<Dispatched, Attempt> {
        let sent = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .set_client_context(client_context.map(str::to_owned))
            .payload(Blob::new(payload))
            .send()
            .await;
        let out = match sent {
            Ok(out) => out,
            Err(e) => {
                let failure = SdkFailure::read(&e);
                self.errors.count_failure("lambda", &failure);
                let message = failure.text(MAX_SDK_ERROR_CHARS);
                return Err(if failure.is_refused_for_rate() {
                    Attempt::Throttled(message)
                } else {
                    let code = failure.code_or_unknown();
                    Attempt::Failed(BackendError::Start {
                        message: format!("Lambda Invoke of {function} failed: {code}: {message}"),
                    })
                });
            }
        };
        let unit_id = out.request_id().unwrap_or("unknown").to_owned();
        let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
        if let Some(kind) = out.function_error() {
            let error: FunctionError = serde_json::from_slice(body).unwrap_or_default();
            let message = error.error_message.unwrap_or_else(|| kind.to_owned());
            if message.contains("Task timed out after") {
                return Err(Attempt::Failed(BackendError::DeadlineExceeded {
                    unit_id: Some(unit_id),
                    timeout_seconds,
                }));
            }
            return Ok(Dispatched {
                output: ToolOutput::error(cut(&message, MAX_ERROR_MESSAGE_CHARS)),
                unit_id,
            });
        }
        match serde_json::from_slice::<ToolOutput>(body) {
            Ok(output) => Ok(Dispatched { output, unit_id }),
            Err(e) => Err(Attempt::Failed(BackendError::Unit {
                unit_id: Some(unit_id),
                message: format!("the function did not answer a tool result ({e})"),
            })),
        }
    }
}

/// The `ClientContext` of an `Invoke` carrying the call's traceparent: base64 of
/// `{"custom": {"traceparent": "..."}}`, which a function finds in its context's
/// `client_context.custom` (the Lambda runtimes' documented place for a caller's own values).
pub fn client_context(traceparent: &str) -> String {
    use base64::Engine as _;
    let context = serde_json::json!({ "custom": { "traceparent": traceparent } });
    base64::engine::general_purpose::STANDARD.encode(context.to_string())
}

/// What one `Invoke` attempt came to, when it is not an answer.
enum Attempt {
    Throttled(String),
    Failed(BackendError),
}

/// The payload of a function error.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct FunctionError {
    #[serde(default)]
    error_message: Option<String>,
}

#[async_trait]
impl Backend for LambdaBackend {
    async fn dispatch(&self, mut call: Dispatch) -> Result<Dispatched, BackendError> {
        let started = Instant::now();
        let unit = call.unit_span("lambda");
        let (function, payload) =
            encode_for(&call, &self.functions, "Lambda function", PAYLOAD_LIMIT)?;
        let result = self.invoke(&call, function, &payload, &unit).await;
        if let Ok(d) = &result {
            unit.record("switchboard.unit_id", d.unit_id.as_str());
        }
        log_finished("lambda invoke", &call, started, None, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_context_carries_the_traceparent_in_custom() {
        use base64::Engine as _;
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let raw = base64::engine::general_purpose::STANDARD
            .decode(client_context(tp))
            .expect("base64");
        let doc: serde_json::Value = serde_json::from_slice(&raw).expect("json");
        assert_eq!(doc, serde_json::json!({"custom": {"traceparent": tp}}));
    }

    #[test]
    fn throttling_pauses_are_capped() {
        for retry in 1..=20 {
            assert!(THROTTLING.pause(retry) <= Duration::from_millis(2_000));
        }
    }
}
