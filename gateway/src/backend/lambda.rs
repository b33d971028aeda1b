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
//!   retries `TooManyRequestsException` only (Lambda refuses it before running anything), with
//!   capped, jittered backoff, while the deadline allows.
//! - **Deadline and cancellation.** The call answers at its deadline or at its cancel (the
//!   client's, or the gateway's at shutdown), whatever Lambda does: the wait on each `Invoke` and
//!   each throttling pause ends there ([`until_stop`](super::until_stop), the same as the Fargate backend's), and the
//!   `Invoke` is dropped (its connection closed). The function itself runs on until its own
//!   timeout (Lambda cannot stop an invocation), but its credentials stop working at the call's
//!   deadline (the session policy's `aws:CurrentTime` condition). Nothing else is left: Lambda
//!   keeps nothing of the call.
//! - **Unit id** is Lambda's request id.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::operation::RequestId;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use switchboard_tool_runtime::ToolOutput;
use tracing::Instrument as _;

use super::{Backend, BackendError, Dispatch, Dispatched, until_stop};
use crate::metrics::AwsErrors;

/// Lambda's limit on a synchronous invocation's request payload (6 MB).
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// How much of a function's `errorMessage` reaches the client.
pub const MAX_ERROR_MESSAGE_CHARS: usize = 4096;

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
                let code = e.code().unwrap_or("unknown").to_owned();
                self.errors.count("lambda", &code);
                let message = e
                    .message()
                    .map(str::to_owned)
                    .unwrap_or_else(|| aws_smithy_error_text(&e));
                return Err(if code == "TooManyRequestsException" {
                    Attempt::Throttled(message)
                } else {
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

/// An SDK error without a service message (could not connect, timed out), in words.
fn aws_smithy_error_text<E: std::error::Error + 'static, R: std::fmt::Debug>(
    e: &aws_sdk_lambda::error::SdkError<E, R>,
) -> String {
    let text = aws_sdk_lambda::error::DisplayErrorContext(e).to_string();
    cut(&text, 300)
}

/// At most `max` characters of `text`, with a note when cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push_str(" … (cut)");
    out
}

/// Full-jitter backoff: a random pause up to `min(cap, base * 2^retry)`.
fn backoff(retry: u32) -> Duration {
    use rand::Rng as _;
    let ceiling = (50u64 << retry.min(6)).min(2_000);
    Duration::from_millis(rand::thread_rng().gen_range(0..=ceiling))
}

#[async_trait]
impl Backend for LambdaBackend {
    async fn dispatch(&self, mut call: Dispatch) -> Result<Dispatched, BackendError> {
        let timeout_seconds = call.tool.timeout_seconds;
        let unit = call.unit_span("lambda");
        let context = call.invocation.traceparent.as_deref().map(client_context);
        let function = self
            .functions
            .get(&call.tool.name)
            .ok_or_else(|| BackendError::Start {
                message: format!("no Lambda function is bound to tool {:?}", call.tool.name),
            })?;
        let payload = serde_json::to_vec(&call.invocation).map_err(|e| BackendError::Start {
            message: format!("cannot encode the invocation: {e}"),
        })?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(BackendError::Refused {
                message: format!(
                    "the invocation is {} bytes, over Lambda's limit of {MAX_PAYLOAD_BYTES} bytes \
                     (6 MB) for a synchronous payload",
                    payload.len()
                ),
                label: "payload_too_large",
            });
        }
        let mut retry = 0;
        let result = loop {
            let invoke = self
                .invoke_once(function, &payload, context.as_deref(), timeout_seconds)
                .instrument(unit.clone());
            let attempt = match until_stop(&call, invoke).await {
                Ok(attempt) => attempt,
                Err(stop) => return Err(stop.error(None, timeout_seconds)),
            };
            match attempt {
                Ok(done) => break Ok(done),
                Err(Attempt::Failed(e)) => break Err(e),
                Err(Attempt::Throttled(message)) => {
                    let pause = backoff(retry);
                    retry += 1;
                    if pause >= call.deadline.remaining() {
                        break Err(BackendError::Start {
                            message: format!(
                                "Lambda throttled the call ({message}) and the deadline leaves no \
                                 time to retry ({retry} attempt(s))"
                            ),
                        });
                    }
                    tracing::debug!(tool = %call.tool.name, retry, "Lambda throttled; retrying");
                    if let Err(stop) = until_stop(&call, tokio::time::sleep(pause)).await {
                        return Err(stop.error(None, timeout_seconds));
                    }
                }
            }
        };
        if let Ok(d) = &result {
            unit.record("switchboard.unit_id", d.unit_id.as_str());
        }
        // The call's own line (mcp::call) is the one at info.
        tracing::debug!(
            tool = %call.tool.name,
            invocation = %call.invocation.invocation_id,
            unit_id = result.as_ref().map(|d| d.unit_id.as_str()).unwrap_or("-"),
            outcome = match &result {
                Ok(d) if d.output.is_error => "tool_error",
                Ok(_) => "ok",
                Err(e) => e.outcome(),
            },
            "lambda invoke finished"
        );
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_error_messages_are_cut_with_a_note() {
        let long = "x".repeat(MAX_ERROR_MESSAGE_CHARS + 10);
        let out = cut(&long, MAX_ERROR_MESSAGE_CHARS);
        assert!(out.ends_with("(cut)"));
        assert_eq!(
            out.chars().filter(|c| *c == 'x').count(),
            MAX_ERROR_MESSAGE_CHARS
        );
        assert_eq!(cut("short", 10), "short");
    }

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
    fn backoff_is_capped() {
        for retry in 0..20 {
            assert!(backoff(retry) <= Duration::from_millis(2_000));
        }
    }
}
