//! Asking STS within a call's deadline: one attempt at a time, each bounded by the time left,
//! throttling retried with the gateway's one capped, full-jitter [`Backoff`], nothing else retried.
//!
//! The SDK's own retries are off for the broker's client ([`super::Broker::with_client`]), so
//! this loop is the only one: no hidden attempt or pause can outlive the deadline.

use super::CredentialError;
use super::sts::{AssumeRoleRequest, AssumedRole, Sts, StsFailure};
use crate::aws::Backoff;
use crate::deadline::Deadline;

/// `AssumeRole` until it succeeds, fails for a reason other than throttling, or the deadline (or
/// the attempt limit) leaves no room. Returns the answer and the number of attempts.
pub(super) async fn assume_role(
    sts: &dyn Sts,
    request: &AssumeRoleRequest,
    deadline: &Deadline,
    backoff: &Backoff,
    tool: &str,
) -> Result<(AssumedRole, u32), CredentialError> {
    let mut attempts = 0;
    loop {
        let remaining = deadline.remaining();
        if remaining.is_zero() {
            // Only a pause's rounding to the timer's millisecond lands here after throttling.
            return Err(if attempts == 0 {
                CredentialError::DeadlineExceeded {
                    tool: tool.into(),
                    attempts,
                }
            } else {
                CredentialError::Throttled {
                    tool: tool.into(),
                    attempts,
                }
            });
        }
        attempts += 1;
        let failure = match tokio::time::timeout(remaining, sts.assume_role(request)).await {
            Err(_) => {
                return Err(CredentialError::DeadlineExceeded {
                    tool: tool.into(),
                    attempts,
                });
            }
            Ok(Ok(assumed)) => return Ok((assumed, attempts)),
            Ok(Err(failure)) => failure,
        };
        if !failure.is_throttling() {
            return Err(refusal(tool, &request.role_arn, failure));
        }
        let Some(pause) = backoff.next_pause(attempts, deadline.remaining()) else {
            return Err(CredentialError::Throttled {
                tool: tool.into(),
                attempts,
            });
        };
        tracing::debug!(
            tool,
            attempt = attempts,
            pause_ms = crate::deadline::millis(pause),
            "STS is throttling; retrying"
        );
        tokio::time::sleep(pause).await;
    }
}

/// A failure STS will not change its mind about.
fn refusal(tool: &str, role_arn: &str, failure: StsFailure) -> CredentialError {
    if let StsFailure::Service {
        code: Some(code),
        message,
        ..
    } = &failure
        && matches!(
            code.as_str(),
            "PackedPolicyTooLarge" | "PackedPolicyTooLargeException"
        )
    {
        return CredentialError::PackedPolicyTooLarge {
            tool: tool.into(),
            message: message.clone().unwrap_or_default(),
        };
    }
    CredentialError::Sts {
        tool: tool.into(),
        role_arn: role_arn.into(),
        label: label(&failure),
        failure,
    }
}

/// STS error codes reported as themselves in metrics and the audit log; any other code is
/// `sts_error`, so a label's values stay a known, short list.
const KNOWN_CODES: &[&str] = &[
    "AccessDenied",
    "ExpiredToken",
    "ExpiredTokenException",
    "IncompleteSignature",
    "InvalidClientTokenId",
    "InvalidParameterValue",
    "MalformedPolicyDocument",
    "MalformedPolicyDocumentException",
    "MissingAuthenticationToken",
    "RegionDisabledException",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "ValidationError",
    "InternalFailure",
    "ServiceUnavailable",
];

fn label(failure: &StsFailure) -> &'static str {
    match failure {
        StsFailure::Service { code, .. } => code
            .as_deref()
            .and_then(|c| KNOWN_CODES.iter().find(|k| **k == c).copied())
            .unwrap_or("sts_error"),
        StsFailure::Request(_) => "sts_unreachable",
        StsFailure::Response(_) => "sts_bad_response",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_codes_get_one_label() {
        let service = |code: &str| StsFailure::Service {
            code: Some(code.into()),
            message: None,
            status: 400,
        };
        assert_eq!(label(&service("AccessDenied")), "AccessDenied");
        assert_eq!(label(&service("SomethingNew")), "sts_error");
        assert_eq!(label(&StsFailure::Request("x".into())), "sts_unreachable");
    }
}
