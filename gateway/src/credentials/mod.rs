//! The credential broker: AWS credentials minted for one call and nothing more.
//!
//! For each call of a tool with a work role, [`Broker::mint`] asks STS for `AssumeRole` on that
//! role with:
//!
//! - `RoleSessionName` = the invocation id, so CloudTrail names the call;
//! - `SourceIdentity` = the caller's subject made to fit STS ([`source_identity`]); it sticks to
//!   the session through any role chaining;
//! - `Tags` = the session tags the tool asks for ([`session_tags`]), from the verified caller and
//!   the gateway only, never from arguments;
//! - `DurationSeconds` = 900 (STS's minimum);
//! - `Policy` = the tool's permissions as a session policy whose every statement also requires
//!   `aws:CurrentTime` before the call's deadline ([`session_policy`]): the credentials stop
//!   working when the call is over, not 15 minutes later.
//!
//! Everything STS would refuse is refused here first, with an error naming the tool: a bad or
//! missing tenant, too many or too long tags, a subject outside STS's tag character set, a
//! policy over 2,048 characters ([`check_session_policy_fits`] checks that last one for every
//! tool at start). Refused requests never reach STS.
//!
//! **Retries.** The broker owns them: the STS client's own retries are turned off
//! (`RetryConfig::disabled()`), and the broker retries throttling only (`Throttling`,
//! `ThrottlingException`, `RequestLimitExceeded`, HTTP 429/503, ...) with capped exponential
//! backoff and full jitter, for at most 8 attempts, and only while the call's deadline allows:
//! each attempt is bounded by the time left, and no pause runs past it.
//!
//! **Secrets.** The secret key and session token are [`secrecy::SecretString`]s from STS's answer
//! to the [`switchboard_tool_runtime::Invocation`]; no error message, `Debug` output or log line
//! holds one. Each mint logs one `debug` line: tool, invocation, role session ARN, attempts,
//! elapsed time.

mod policy;
mod retry;
mod sts;
mod tags;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_sts::config::retry::RetryConfig;
use switchboard_tool_runtime::AwsCredentials;
use tokio::time::Instant;

use crate::aws::Backoff;
pub use policy::{MAX_SESSION_POLICY_CHARS, check_session_policy_fits, session_policy};
pub use sts::{AssumeRoleRequest, AssumedRole, Sts, StsFailure};
pub use tags::{
    MAX_PRINCIPAL_CHARS, MAX_TAG_KEY_CHARS, MAX_TAG_VALUE_CHARS, MAX_TAGS, MAX_TENANT_CHARS,
    session_tags, source_identity, tenant_problem,
};

use crate::auth::Caller;
use crate::catalog::{SessionTag, Tool};
use crate::deadline::Deadline;

/// How long minted credentials live at most (STS's minimum); the session policy ends them at the
/// call's deadline, which is sooner.
pub const SESSION_DURATION_SECONDS: i32 = 900;

/// Mints per-call credentials. Cheap to clone and share.
#[derive(Debug, Clone)]
pub struct Broker {
    sts: Arc<dyn Sts>,
    backoff: Backoff,
}

/// One call's request for credentials.
#[derive(Debug, Clone, Copy)]
pub struct MintRequest<'a> {
    /// The tool (its name and permissions).
    pub tool: &'a Tool,
    /// The binding's work role.
    pub role_arn: &'a str,
    /// The binding's session tags (the catalog's).
    pub session_tags: &'a [SessionTag],
    /// The call's invocation id (a UUID), also the role session name.
    pub invocation_id: &'a str,
    /// Who is calling, as authentication verified it.
    pub caller: &'a Caller,
    /// When the call must be over.
    pub deadline: &'a Deadline,
    /// Who approved the call, for a tool with `approval` (its `approver` session tag).
    pub approver: Option<&'a str>,
}

/// Credentials for one call. `Debug` hides the secrets.
#[derive(Debug, Clone)]
pub struct Minted {
    pub credentials: AwsCredentials,
    /// `AssumedRoleUser.Arn`: `arn:aws:sts::<account>:assumed-role/<role>/<invocation id>`.
    pub assumed_role_arn: String,
    /// The session tags the credentials carry.
    pub session_tags: BTreeMap<String, String>,
}

impl Broker {
    /// The gateway's own identity from the SDK's standard chain (environment, profile, web
    /// identity, container or instance role). `AWS_ENDPOINT_URL`, which the SDK honours, points
    /// it at an emulator.
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(RetryConfig::disabled())
            .load()
            .await;
        Self::with_client(aws_sdk_sts::Client::new(&config))
    }

    /// A broker using `client`, with the client's own retries turned off.
    pub fn with_client(client: aws_sdk_sts::Client) -> Self {
        let config = client
            .config()
            .to_builder()
            .retry_config(RetryConfig::disabled())
            .build();
        Self::with_sts(Arc::new(aws_sdk_sts::Client::from_conf(config)))
    }

    /// A broker asking `sts` (a fake, in tests).
    pub fn with_sts(sts: Arc<dyn Sts>) -> Self {
        Self {
            sts,
            backoff: Backoff::default(),
        }
    }

    /// The same broker with other retry spacing.
    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Credentials for one call of `request.tool`, or why not. Every check runs before STS is
    /// asked.
    pub async fn mint(&self, request: MintRequest<'_>) -> Result<Minted, CredentialError> {
        let MintRequest {
            tool,
            invocation_id,
            deadline,
            ..
        } = request;
        let name = tool.name.as_str();
        let assume = assume_role_request(&request)?;
        let session_tags = assume.tags.clone();
        let started = Instant::now();
        let (assumed, attempts) =
            retry::assume_role(self.sts.as_ref(), &assume, deadline, &self.backoff, name).await?;
        tracing::debug!(
            tool = name,
            invocation = invocation_id,
            role_session_arn = %assumed.assumed_role_arn,
            attempts,
            elapsed_ms = crate::deadline::millis(started.elapsed()),
            "minted credentials for one call"
        );
        Ok(Minted {
            credentials: assumed.credentials,
            assumed_role_arn: assumed.assumed_role_arn,
            session_tags,
        })
    }
}

/// The `AssumeRole` request [`Broker::mint`] sends to STS for `request`, or why it sends none:
/// every check the broker makes before asking STS runs here. `switchboard session-request`
/// prints it.
pub fn assume_role_request(
    request: &MintRequest<'_>,
) -> Result<AssumeRoleRequest, CredentialError> {
    let MintRequest {
        tool,
        role_arn,
        session_tags: wanted,
        invocation_id,
        caller,
        deadline,
        approver,
    } = *request;
    let name = tool.name.as_str();
    tags::check_session_name(name, invocation_id)?;
    let session_tags = tags::session_tags(wanted, name, caller, invocation_id, approver)?;
    Ok(AssumeRoleRequest {
        role_arn: role_arn.to_owned(),
        role_session_name: invocation_id.to_owned(),
        source_identity: source_identity(&caller.subject),
        tags: session_tags,
        duration_seconds: SESSION_DURATION_SECONDS,
        policy: session_policy(tool, deadline)?,
    })
}

/// Why a call gets no credentials. Messages name the tool and never hold a secret.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error(
        "tool {tool}: the caller's tenant {tenant:?} cannot be a session tag: {reason}; a tenant \
         is 1 to {MAX_TENANT_CHARS} characters of a-z, 0-9 and '-', starting with a letter or a \
         digit"
    )]
    BadTenant {
        tool: String,
        tenant: String,
        reason: String,
    },
    #[error(
        "tool {tool} tags its credentials with the caller's tenant, and the caller's token has no \
         tenant claim"
    )]
    MissingTenant { tool: String },
    #[error(
        "tool {tool} tags its credentials with the caller's subject, which is {chars} characters, \
         over the limit of {MAX_PRINCIPAL_CHARS}; drop `principal` from the tool's session_tags \
         (SourceIdentity still names the caller)"
    )]
    PrincipalTooLong { tool: String, chars: usize },
    #[error(
        "tool {tool} tags its credentials with who approved the call, and the call has no \
         approval"
    )]
    MissingApprover { tool: String },
    #[error(
        "tool {tool} tags its credentials with who approved the call, whose subject is {chars} \
         characters, over the limit of {MAX_PRINCIPAL_CHARS}"
    )]
    ApproverTooLong { tool: String, chars: usize },
    #[error("tool {tool}: {count} session tags, over STS's limit of {MAX_TAGS}")]
    TooManyTags { tool: String, count: usize },
    #[error(
        "tool {tool}: session tag key {key:?} is {chars} characters, over STS's limit of \
         {MAX_TAG_KEY_CHARS}"
    )]
    TagKeyTooLong {
        tool: String,
        key: String,
        chars: usize,
    },
    #[error(
        "tool {tool}: the value of session tag {key:?} is {chars} characters, over STS's limit of \
         {MAX_TAG_VALUE_CHARS}"
    )]
    TagValueTooLong {
        tool: String,
        key: String,
        chars: usize,
    },
    #[error("tool {tool}: session tag {key:?} cannot go to STS: {reason}")]
    BadTag {
        tool: String,
        key: String,
        reason: String,
    },
    #[error("tool {tool}: invocation id {invocation_id:?} cannot name a role session: {reason}")]
    BadSessionName {
        tool: String,
        invocation_id: String,
        reason: String,
    },
    #[error("tool {tool} has no permissions, so it has no work role to mint credentials for")]
    NoPermissions { tool: String },
    #[error("tool {tool}, permission {statement}: {reason}")]
    BadCondition {
        tool: String,
        statement: String,
        reason: String,
    },
    #[error(
        "tool {tool}: its session policy is {chars} characters, over STS's limit of \
         {MAX_SESSION_POLICY_CHARS}; shorten its permissions (fewer statements, actions or \
         resources)"
    )]
    PolicyTooLarge { tool: String, chars: usize },
    #[error(
        "tool {tool}: STS refused the session because its policy and tags are too large once \
         packed ({message}); shorten the tool's permissions or its session_tags"
    )]
    PackedPolicyTooLarge { tool: String, message: String },
    #[error(
        "tool {tool}: STS kept throttling; gave up after {attempts} attempts, as the call's \
         deadline or the retry limit allows no more"
    )]
    Throttled { tool: String, attempts: u32 },
    #[error(
        "tool {tool}: the call's deadline passed while its credentials were being minted \
         ({attempts} attempts)"
    )]
    DeadlineExceeded { tool: String, attempts: u32 },
    #[error("tool {tool}: no credentials for work role {role_arn}: {failure}")]
    Sts {
        tool: String,
        role_arn: String,
        /// What [`CredentialError::code`] answers.
        label: &'static str,
        failure: StsFailure,
    },
}

impl CredentialError {
    /// A short label for metrics and the audit log.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadTenant { .. } => "bad_tenant",
            Self::MissingTenant { .. } => "missing_tenant",
            Self::PrincipalTooLong { .. } => "principal_too_long",
            Self::MissingApprover { .. } => "missing_approver",
            Self::ApproverTooLong { .. } => "approver_too_long",
            Self::TooManyTags { .. } => "too_many_tags",
            Self::TagKeyTooLong { .. } => "tag_key_too_long",
            Self::TagValueTooLong { .. } => "tag_value_too_long",
            Self::BadTag { .. } => "bad_tag",
            Self::BadSessionName { .. } => "bad_session_name",
            Self::NoPermissions { .. } => "no_permissions",
            Self::BadCondition { .. } => "bad_condition",
            Self::PolicyTooLarge { .. } => "policy_too_large",
            Self::PackedPolicyTooLarge { .. } => "packed_policy_too_large",
            Self::Throttled { .. } => "throttled",
            Self::DeadlineExceeded { .. } => "deadline_exceeded",
            Self::Sts { label, .. } => label,
        }
    }
}
