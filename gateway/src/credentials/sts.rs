//! The seam between the broker and STS: one trait with one call, [`Sts::assume_role`], its
//! implementation on [`aws_sdk_sts::Client`], and what can go wrong with it ([`StsFailure`]).
//! The broker's retry and refusal logic is tested against a fake of this trait.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::SdkError;
use aws_sdk_sts::operation::assume_role::AssumeRoleError;
use aws_sdk_sts::primitives::DateTimeFormat;
use aws_sdk_sts::types::Tag;
use switchboard_tool_runtime::AwsCredentials;

use crate::aws::SdkFailure;

/// One `AssumeRole` call, as the broker built it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumeRoleRequest {
    pub role_arn: String,
    pub role_session_name: String,
    pub source_identity: String,
    pub tags: BTreeMap<String, String>,
    pub duration_seconds: i32,
    /// The inline session policy, compact JSON.
    pub policy: String,
}

/// What STS answered to a successful `AssumeRole`. `Debug` hides the secrets.
#[derive(Debug, Clone)]
pub struct AssumedRole {
    pub credentials: AwsCredentials,
    /// `AssumedRoleUser.Arn`: `arn:aws:sts::<account>:assumed-role/<role>/<session>`.
    pub assumed_role_arn: String,
}

/// Why an `AssumeRole` call failed. Never holds a credential: the only secrets STS sends are in
/// a successful answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StsFailure {
    /// STS answered with an error.
    #[error(
        "STS answered HTTP {status} {}: {}",
        code.as_deref().unwrap_or("(no error code)"),
        message.as_deref().unwrap_or("(no message)")
    )]
    Service {
        code: Option<String>,
        message: Option<String>,
        status: u16,
    },
    /// No answer: the request could not be built, sent or read.
    #[error("the request to STS failed: {0}")]
    Request(String),
    /// An answer the broker cannot use (no credentials in it, for one).
    #[error("STS's answer is unusable: {0}")]
    Response(String),
}

impl StsFailure {
    /// Whether STS is throttling: a throttling error code, or HTTP 429 or 503
    /// ([`crate::aws::is_throttling`]).
    pub fn is_throttling(&self) -> bool {
        match self {
            Self::Service { code, status, .. } => {
                crate::aws::is_throttling(code.as_deref(), Some(*status))
            }
            Self::Request(_) | Self::Response(_) => false,
        }
    }

    /// The STS error code, when STS answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Service { code, .. } => code.as_deref(),
            Self::Request(_) | Self::Response(_) => None,
        }
    }
}

/// STS, as the broker needs it.
#[async_trait]
pub trait Sts: std::fmt::Debug + Send + Sync {
    /// One `AssumeRole` attempt; the broker owns retries and timeouts.
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<AssumedRole, StsFailure>;
}

#[async_trait]
impl Sts for aws_sdk_sts::Client {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<AssumedRole, StsFailure> {
        let mut call = self
            .assume_role()
            .role_arn(&request.role_arn)
            .role_session_name(&request.role_session_name)
            .source_identity(&request.source_identity)
            .duration_seconds(request.duration_seconds)
            .policy(&request.policy);
        for (key, value) in &request.tags {
            let tag = Tag::builder()
                .key(key)
                .value(value)
                .build()
                .map_err(|e| StsFailure::Request(e.to_string()))?;
            call = call.tags(tag);
        }
        let answer = call.send().await.map_err(from_sdk)?;
        let credentials = answer
            .credentials()
            .ok_or_else(|| StsFailure::Response("it holds no credentials".into()))?;
        let expiration = credentials
            .expiration()
            .fmt(DateTimeFormat::DateTime)
            .map_err(|e| StsFailure::Response(format!("its expiration: {e}")))?;
        let assumed_role_arn = answer
            .assumed_role_user()
            .map(|u| u.arn().to_owned())
            .ok_or_else(|| StsFailure::Response("it names no assumed role user".into()))?;
        Ok(AssumedRole {
            credentials: AwsCredentials {
                access_key_id: credentials.access_key_id().to_owned(),
                secret_access_key: credentials.secret_access_key().into(),
                session_token: credentials.session_token().into(),
                expiration,
            },
            assumed_role_arn,
        })
    }
}

fn from_sdk(error: SdkError<AssumeRoleError, HttpResponse>) -> StsFailure {
    let failure = SdkFailure::read(&error);
    match failure.status {
        Some(status) => StsFailure::Service {
            code: failure.code,
            message: failure.message,
            status,
        },
        None => StsFailure::Request(failure.context),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(code: Option<&str>, status: u16) -> StsFailure {
        StsFailure::Service {
            code: code.map(Into::into),
            message: Some("m".into()),
            status,
        }
    }

    #[test]
    fn throttling_is_recognised_by_code_and_by_status() {
        for code in ["Throttling", "ThrottlingException", "RequestLimitExceeded"] {
            assert!(service(Some(code), 400).is_throttling(), "{code}");
        }
        assert!(service(None, 429).is_throttling());
        assert!(service(Some("ServiceUnavailable"), 503).is_throttling());
        for code in ["AccessDenied", "PackedPolicyTooLarge", "ValidationError"] {
            assert!(!service(Some(code), 400).is_throttling(), "{code}");
        }
        assert!(!service(None, 500).is_throttling());
        assert!(!StsFailure::Request("connection refused".into()).is_throttling());
    }
}
