//! The catalog's types. Every struct denies unknown fields so that a typo is an error, not a
//! silently ignored setting.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A whole catalog file.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    /// Format version; must be 1.
    pub version: u32,
    /// Gateway settings (listen policy, authentication, limits). Terraform ignores this part.
    #[serde(default)]
    pub gateway: GatewaySettings,
    /// The tools, each declared once.
    pub tools: Vec<Tool>,
}

/// Gateway settings carried in the catalog.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewaySettings {
    /// The canonical URI of this MCP server (e.g. `https://mcp.example.com/mcp`). It is the
    /// audience every token must carry. Defaults to `http://<listen address>/mcp`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Extra `Host` header values accepted besides loopback names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Browser origins allowed to call; a request with any other `Origin` gets 403.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// How callers are authenticated (not used with `serve --dev`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSettings>,
    /// Request limits.
    #[serde(default)]
    pub limits: Limits,
}

/// OAuth 2.1 resource-server settings.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// Authorization servers announced in the protected-resource metadata; defaults to the issuer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Where the signing keys are: a JWKS URL (fetched, cached) or a JWKS file.
    pub jwks: JwksSource,
    /// How long a JWKS fetched from `jwks.url` is used before it is fetched again, in seconds
    /// (1 to 3600). A key the authorization server has removed is still accepted for up to this
    /// long; a token naming a key id the cache does not hold causes a fetch at once (at most one
    /// such fetch per 30 seconds, or per this window when it is shorter). Unused for a JWKS file.
    #[serde(default = "default_jwks_cache_seconds")]
    pub jwks_cache_seconds: u64,
    /// Accepted signature algorithms. Only asymmetric ones are allowed.
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim holding the caller's groups (a list of strings).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Claim holding the caller's tenant.
    #[serde(default = "default_tenant_claim")]
    pub tenant_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds (at most 300).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
    /// The longest a token may live, in seconds: when set, a token must carry `iat` and its
    /// `exp - iat` must not exceed this. Off by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_token_lifetime_seconds: Option<u64>,
    /// The JOSE header `typ` every token must carry, compared without case; `at+jwt` (RFC 9068
    /// access tokens) also accepts `application/at+jwt`. Off by default (any or none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required_typ: Option<String>,
    /// Whether a groups claim that is one string (not a list) is split on spaces into several
    /// groups. Off by default: such a string is one group, so a value like `"dev admin"` never
    /// grants `admin`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub split_string_groups: bool,
    /// How a person signs in to the approval page (docs/approvals.md): the gateway is an OpenID
    /// Connect client of this issuer for its page only. Needed when a tool has `approval`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_sign_in: Option<ApprovalSignIn>,
}

/// The approval page's sign-in through the authorization server: authorization code with PKCE
/// (S256), `state` and `nonce` checked, for a client registered with the redirect URI
/// `<origin of public_url>/approvals/callback`. The endpoints come from the issuer's discovery
/// document (`<issuer>/.well-known/openid-configuration`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSignIn {
    /// The page's own client id at the authorization server (not one of the MCP clients').
    pub client_id: String,
    /// The environment variable holding the client's secret, sent with HTTP Basic
    /// authentication to the token endpoint. Unset: a public client (PKCE alone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// Scopes asked for besides `openid`, which is always asked for. The access token the
    /// sign-in gets is for the gateway (`resource` is its canonical URI) and is verified as a
    /// caller's; the approver's groups are read from it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A JWKS location.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum JwksSource {
    /// An `https://` (or loopback `http://`) URL.
    Url(String),
    /// A file holding a JWKS document, relative to the catalog file.
    File(String),
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_tenant_claim() -> String {
    "tenant".into()
}
fn default_leeway() -> u64 {
    30
}
fn default_jwks_cache_seconds() -> u64 {
    300
}

/// Bounds on what a request may carry.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Largest request body accepted, in bytes.
    #[serde(default = "default_max_body")]
    pub max_body_bytes: usize,
    /// Deepest JSON nesting accepted in a request body.
    #[serde(default = "default_max_depth")]
    pub max_json_depth: usize,
    /// How many tool calls may run at once; more are refused with a clear error.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long shutdown waits for in-flight calls before cancelling them, in seconds.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
}

fn default_max_body() -> usize {
    1024 * 1024
}
fn default_max_depth() -> usize {
    64
}
fn default_max_in_flight() -> usize {
    256
}
fn default_grace() -> u64 {
    10
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body(),
            max_json_depth: default_max_depth(),
            max_in_flight: default_max_in_flight(),
            shutdown_grace_seconds: default_grace(),
        }
    }
}

/// Where a tool's calls run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// A fresh bubblewrap sandbox per call on the gateway's machine.
    Local,
    /// An AWS Lambda function per tool, invoked per call.
    Lambda,
    /// An AWS Fargate task per call.
    Fargate,
}

impl BackendKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Lambda => "lambda",
            Self::Fargate => "fargate",
        }
    }
}

/// A network endpoint a tool may reach (a VPC endpoint on AWS, a proxied socket locally).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
pub enum Endpoint {
    #[serde(rename = "s3")]
    S3,
    #[serde(rename = "sts")]
    Sts,
    #[serde(rename = "logs")]
    Logs,
    #[serde(rename = "kms")]
    Kms,
    #[serde(rename = "ecr.api")]
    EcrApi,
    #[serde(rename = "ecr.dkr")]
    EcrDkr,
    #[serde(rename = "secretsmanager")]
    SecretsManager,
}

/// Session tag keys the gateway can set from what it verified (never from arguments).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SessionTag {
    /// The tool's catalog name.
    Tool,
    /// The caller's tenant claim.
    Tenant,
    /// The caller's subject.
    Principal,
    /// The invocation id.
    Invocation,
    /// Who approved the call (docs/approvals.md): only for a tool with `approval`, never by
    /// default. Work-role policies may require it.
    Approver,
}

impl SessionTag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tool => "tool",
            Self::Tenant => "tenant",
            Self::Principal => "principal",
            Self::Invocation => "invocation",
            Self::Approver => "approver",
        }
    }
}

fn default_session_tags() -> Vec<SessionTag> {
    vec![
        SessionTag::Tool,
        SessionTag::Tenant,
        SessionTag::Principal,
        SessionTag::Invocation,
    ]
}

/// Who may call a tool. Deny by default: a caller needs one listed group or one listed scope.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
}

/// A person must approve each call of the tool before it runs (docs/approvals.md): a member of
/// one of `groups` who is not the caller, in the gateway's approval page.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    /// Groups (from the approver's token) whose members may decide. At least one.
    pub groups: Vec<String>,
    /// How long a request for approval, and an approval not yet used, stays valid, in seconds
    /// (60 to 86400).
    #[serde(default = "default_approval_expiry")]
    pub expires_seconds: u32,
    /// Whether the caller may approve its own call. Off by default, and refused for a tool
    /// with AWS permissions.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub approver_may_be_caller: bool,
}

fn default_approval_expiry() -> u32 {
    900
}

/// One IAM statement of a tool's work role. Strings may use `${aws:PrincipalTag/tenant}` and
/// friends, which IAM fills from the session tags of the call.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Permission {
    /// Statement id (letters and digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// IAM actions, e.g. `s3:GetObject`. `*` alone is refused.
    pub actions: Vec<String>,
    /// Resource ARNs.
    pub resources: Vec<String>,
    /// An IAM condition block, as IAM writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<BTreeMap<String, BTreeMap<String, serde_json::Value>>>,
    /// The statement holds only for an approved call: the session policy and the deployed work
    /// role both add `StringLike: {aws:PrincipalTag/approver: "?*"}` to its condition, so a call
    /// whose credentials name no approver cannot use it, even through a bug of the gateway
    /// (docs/approvals.md). Needs `approval` and `approver` in `session_tags`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_approval: bool,
}

/// How the local backend starts the tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LocalUnit {
    /// argv of the tool; a relative executable path is resolved against the catalog's folder,
    /// a bare name against `PATH` at start-up.
    pub command: Vec<String>,
    /// Host paths bound read-only into the sandbox besides the executable and the system
    /// libraries it needs: a path (relative to the catalog file) appears at its own canonical
    /// path; `{path, at}` binds `path` at `at`, a fixed place the tool knows (for example a
    /// provider mirror whose host location differs from machine to machine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub read_only_paths: Vec<ReadOnlyPath>,
    /// Folder of the tenants' files, one folder per tenant (`<tenant_root>/<tenant>`), relative
    /// to the catalog file. Each call sees its caller's tenant's folder, read-only, at
    /// `/run/switchboard/tenant` (`SWITCHBOARD_TENANT_DIR`) and no other tenant's; a caller
    /// without a tenant is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_root: Option<String>,
    /// Sandboxes of this tool kept started ahead of their calls, 0 to 16 (default 0: each call
    /// starts its own). A prepared sandbox is as fresh as one started for the call and serves
    /// exactly one call; what its start costs then falls outside the call's latency. It starts
    /// before its call is known, so its environment has no `SWITCHBOARD_INVOCATION_ID`,
    /// `SWITCHBOARD_DEADLINE_UNIX_MS` or `TRACEPARENT` (all three are in the invocation on stdin),
    /// and a tool with
    /// `permissions` (per-call credentials) or a `tenant_root` (the caller's folder) cannot
    /// have any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub prepared: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// One read-only bind of a local tool's sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum ReadOnlyPath {
    /// A host path, seen in the sandbox at its own canonical path.
    Same(String),
    /// A host path seen in the sandbox at a place of the catalog's choosing.
    At(BoundPath),
}

/// A host path and where a sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BoundPath {
    /// The host path (relative to the catalog file; symbolic links are followed).
    pub path: String,
    /// Where the sandbox sees it: an absolute path outside `/`, `/proc`, `/dev`, `/tmp`,
    /// `/run/switchboard` and the system folders (`/usr`, `/lib*`, `/bin`, `/sbin`, `/etc`),
    /// without `.` or `..` parts.
    pub at: String,
}

impl ReadOnlyPath {
    /// The host path, as the catalog writes it.
    pub fn path(&self) -> &str {
        match self {
            Self::Same(path) | Self::At(BoundPath { path, .. }) => path,
        }
    }

    /// Where the sandbox sees it, when the catalog says.
    pub fn at(&self) -> Option<&str> {
        match self {
            Self::Same(_) => None,
            Self::At(bound) => Some(&bound.at),
        }
    }
}

/// CPU architecture of a Lambda function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    X86_64,
    Arm64,
}

/// How the tool is packaged as a Lambda function.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LambdaUnit {
    /// Zip file holding `bootstrap`, relative to the catalog file.
    pub package: String,
    #[serde(default = "default_arch")]
    pub architecture: Architecture,
}

fn default_arch() -> Architecture {
    Architecture::X86_64
}

/// How the tool runs as a Fargate task.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FargateUnit {
    /// Container image reference (ECR).
    pub image: String,
    /// Task CPU units (256, 512, 1024, 2048, 4096).
    #[serde(default = "default_cpu")]
    pub cpu: u32,
    /// Container command; the image's default when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The start window, 1 to 900 seconds (at most the tool's `timeout_seconds` is used): from
    /// the start of the call's staging, how long the task has to reach `RUNNING` before the call
    /// fails and the task is stopped; the invocation's presigned `GET` expires at its end.
    #[serde(default = "default_start_timeout")]
    pub start_timeout_seconds: u32,
}

fn default_cpu() -> u32 {
    256
}

/// Fargate's cold start with an image pull takes tens of seconds; two minutes leaves room for a
/// large image and a busy region.
pub const DEFAULT_START_TIMEOUT_SECONDS: u32 = 120;

fn default_start_timeout() -> u32 {
    DEFAULT_START_TIMEOUT_SECONDS
}

impl FargateUnit {
    /// The start window of a call whose timeout is `timeout_seconds`: never past the deadline.
    pub fn start_window(&self, timeout_seconds: u32) -> std::time::Duration {
        std::time::Duration::from_secs(u64::from(self.start_timeout_seconds.min(timeout_seconds)))
    }
}

/// One tool.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// MCP tool name: 1 to 48 characters of `a-z`, `0-9`, `-`, `_`, starting with a letter
    /// (it also names AWS resources).
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub description: String,
    /// JSON Schema of the arguments; must be `type: object`. Only local `$ref`s (`#...`).
    pub input_schema: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<serde_json::Value>,
    pub backend: BackendKind,
    /// Wall-clock limit of one call, 1 to 900 seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: u32,
    /// Memory limit, MiB (128 to 10240).
    #[serde(default = "default_memory")]
    pub memory_mb: u32,
    /// Scratch storage, MiB (local: tmpfs size, 1 to 10240; Lambda: 512 to 10240; Fargate:
    /// 21504 to 204800).
    #[serde(default = "default_storage")]
    pub ephemeral_storage_mb: u32,
    /// Endpoints the tool may reach; none means no network at all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// Who may call it.
    pub allow: Allow,
    /// Session tags its credentials carry (defaults to all four).
    #[serde(default = "default_session_tags")]
    pub session_tags: Vec<SessionTag>,
    /// What the tool's work role may do. Empty: the tool gets no AWS credentials.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissions: Vec<Permission>,
    /// A person must approve each call before it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalUnit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lambda: Option<LambdaUnit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fargate: Option<FargateUnit>,
}

fn default_timeout() -> u32 {
    30
}
fn default_memory() -> u32 {
    256
}
fn default_storage() -> u32 {
    512
}
