//! Approvals: a person other than the caller decides, in the gateway's approval page, whether one
//! call of a tool whose catalog entry asks for it (`approval`) runs (docs/approvals.md).
//!
//! A call of such a tool without a granted approval does not run: the gateway keeps a pending
//! [`Approval`] bound to the exact call (tool, canonical arguments, caller subject, tenant) and
//! answers with where to approve it ([`Gate::Ask`]): a URL-mode elicitation, and for the
//! 2026-07-28 revision a sealed `requestState` naming the approval. The client's retry of the same
//! call runs it once the approval is granted, exactly once ([`Store::settle`] is conditional);
//! every other retry is refused with the reason ([`Refusal`]).

pub mod dynamo;
pub mod page;
pub mod seal;
pub mod sign_in;
mod store;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use dynamo::DynamoStore;
pub use seal::{Purpose, Sealer};
pub use store::{MAX_ARGUMENTS_BYTES, MemoryStore, Store, StoreError};

use crate::audit::AuditSink;
use crate::auth::Caller;

/// One request for approval, bound to one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    /// Random, unguessable: it is in the page's URL.
    pub id: String,
    /// What the call is bound to ([`binding_of`]).
    pub binding: String,
    pub tool: String,
    /// The arguments as the page shows them.
    pub arguments: serde_json::Value,
    /// SHA-256 of the canonical arguments (keys sorted, no spaces): what the approval is bound
    /// to, whatever order the client sends the keys in.
    pub arguments_sha256: String,
    /// The call's deadline once it runs: the tool's timeout.
    pub timeout_seconds: u32,
    /// The caller's subject.
    pub caller: String,
    pub tenant: Option<String>,
    /// Who may decide.
    pub groups: Vec<String>,
    pub approver_may_be_caller: bool,
    pub created_unix: u64,
    /// Neither decided nor used from then on.
    pub expires_unix: u64,
    pub decision: Option<Decision>,
    /// When the decision was acted on: the call ran, or its denial was told to it.
    pub settled_unix: Option<u64>,
}

/// A person's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub approved: bool,
    /// The approver's subject.
    pub by: String,
    pub at_unix: u64,
    pub reason: Option<String>,
}

/// What a call's `requestState` holds (sealed, [`Purpose::RequestState`]).
#[derive(Debug, Serialize, Deserialize)]
struct RequestState {
    approval: String,
    binding: String,
}

/// An approval a call may run under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub id: String,
    pub approver: String,
    /// RFC 3339.
    pub approved_at: String,
}

/// What a call of a tool that needs approval does next.
#[derive(Debug)]
pub enum Gate {
    /// Runs, under this approval, once [`Approvals::spend`] has used it.
    Run(Granted),
    /// Waits for a person: the client is told where to approve.
    Ask(Ask),
    /// Does not run, for this reason.
    Refuse(Refusal),
}

/// Where and why the client is asked to have the call approved.
#[derive(Debug, Clone)]
pub struct Ask {
    pub approval_id: String,
    /// The approval page of this approval (not pre-authenticated: the approver signs in).
    pub url: String,
    /// The sealed `requestState` naming it.
    pub request_state: String,
    /// What the client shows the person.
    pub message: String,
    /// Whether this approval was asked for before (its call retried while it is pending).
    pub still_pending: bool,
}

/// Why a call of a tool that needs approval was refused; none of them runs the tool.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request state is not one this gateway issued, or it was altered")]
    Tampered,
    #[error(
        "the approval is bound to another call (other arguments, tool or caller); call again without the request state to ask for a new approval"
    )]
    OtherCall,
    #[error("the approval does not exist (or no longer)")]
    Unknown,
    #[error("the call was denied by {by}{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Denied { by: String, reason: Option<String> },
    #[error("the approval expired before it was {}; call again to ask for a new one", if *.decided { "used" } else { "decided" })]
    Expired { decided: bool },
    #[error("the approval was already used by a call; call again to ask for a new one")]
    Used,
    #[error("the approval page was declined in the client; the call did not run")]
    Declined,
    #[error("{0}")]
    Store(StoreError),
}

impl Refusal {
    /// The audit and metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "approval_denied",
            Self::Store(StoreError::TooLarge { .. }) => "approval_refused",
            Self::Store(_) => "approval_unavailable",
            _ => "approval_refused",
        }
    }
}

/// The approvals of one gateway: the shared store, the sealer, where the page is. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Approvals {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    sealer: Sealer,
    /// `<origin>/approvals`, from the gateway's public URL.
    page_base: String,
    sign_in: PageSignIn,
    audit: AuditSink,
}

/// How a person signs in to the approval page.
#[derive(Debug, Clone)]
pub enum PageSignIn {
    /// `serve --dev`: a form takes a token the gateway verifies (loopback only).
    Dev,
    /// Through the authorization server (`gateway.auth.approval_sign_in`).
    Oidc(Arc<sign_in::OidcSignIn>),
    /// None: nobody can sign in (`serve` refuses such a catalog; see `crate::preflight`).
    Unavailable,
}

/// The settings [`Approvals::new`] takes.
#[derive(Debug)]
pub struct ApprovalSettings {
    pub store: Arc<dyn Store>,
    /// From the session key ([`crate::sessions::Sessions::derive_key`]), so replicas share it.
    pub key: [u8; 32],
    /// `scheme://authority` of the MCP endpoint's canonical URL: the page is at its
    /// `/approvals/`.
    pub origin: String,
    pub sign_in: PageSignIn,
    pub audit: AuditSink,
}

impl Approvals {
    pub fn new(settings: ApprovalSettings) -> Self {
        let origin = settings.origin;
        Self {
            inner: Arc::new(Inner {
                store: settings.store,
                sealer: Sealer::new(settings.key),
                page_base: format!("{origin}/approvals"),
                sign_in: settings.sign_in,
                audit: settings.audit,
            }),
        }
    }

    /// The page of approval `id`.
    pub fn page_url(&self, id: &str) -> String {
        format!("{}/{id}", self.inner.page_base)
    }

    pub(crate) fn sealer(&self) -> &Sealer {
        &self.inner.sealer
    }

    pub(crate) fn store(&self) -> &dyn Store {
        self.inner.store.as_ref()
    }

    pub(crate) fn sign_in(&self) -> &PageSignIn {
        &self.inner.sign_in
    }

    /// Whether the page's cookie must be `Secure`: everywhere but plain http (a loopback
    /// `--dev` gateway).
    pub(crate) fn secure_cookie(&self) -> bool {
        !self.inner.page_base.starts_with("http://")
    }

    pub(crate) fn audit(&self) -> &AuditSink {
        &self.inner.audit
    }

    /// Decides what a call of `tool`, whose catalog entry asks for approval, does next.
    /// `request_state` is what the client echoed (2026-07-28), `declined` whether it answered
    /// the approval elicitation with decline or cancel.
    pub async fn gate(
        &self,
        tool: &crate::catalog::Tool,
        arguments: &serde_json::Value,
        caller: &Caller,
        request_state: Option<&str>,
        declined: bool,
    ) -> Gate {
        match self
            .gate_inner(tool, arguments, caller, request_state, declined)
            .await
        {
            Ok(gate) => gate,
            Err(e) => Gate::Refuse(Refusal::Store(e)),
        }
    }

    async fn gate_inner(
        &self,
        def: &crate::catalog::Tool,
        arguments: &serde_json::Value,
        caller: &Caller,
        request_state: Option<&str>,
        declined: bool,
    ) -> Result<Gate, StoreError> {
        let Some(rule) = &def.approval else {
            return Err(StoreError::Unavailable(format!(
                "tool {:?} asks for no approval",
                def.name
            )));
        };
        let tool = def.name.as_str();
        let arguments_sha256 = hex::encode(Sha256::digest(canonical_json(arguments)));
        let binding = binding_of(tool, &arguments_sha256, caller);
        let now = now_unix();
        if let Some(text) = request_state {
            let Ok(state) = self
                .inner
                .sealer
                .open::<RequestState>(Purpose::RequestState, text)
            else {
                return Ok(Gate::Refuse(Refusal::Tampered));
            };
            if state.binding != binding {
                return Ok(Gate::Refuse(Refusal::OtherCall));
            }
            let Some(approval) = self.inner.store.get(&state.approval).await? else {
                return Ok(Gate::Refuse(Refusal::Unknown));
            };
            if approval.binding != binding {
                return Ok(Gate::Refuse(Refusal::OtherCall));
            }
            return self.settle_or_ask(approval, now, declined).await;
        }
        // No state (2025-11-25, or a client without URL elicitation): the retry of the same
        // call finds its approval by what it is bound to.
        if let Some(approval) = self.inner.store.open_for(&binding).await? {
            let denied = approval.decision.as_ref().is_some_and(|d| !d.approved);
            if now < approval.expires_unix || denied {
                return self.settle_or_ask(approval, now, false).await;
            }
        }
        let approval = Approval {
            id: new_approval_id(),
            binding,
            tool: tool.to_owned(),
            arguments: arguments.clone(),
            arguments_sha256,
            timeout_seconds: def.timeout_seconds,
            caller: caller.subject.clone(),
            tenant: caller.tenant.clone(),
            groups: rule.groups.clone(),
            approver_may_be_caller: rule.approver_may_be_caller,
            created_unix: now,
            expires_unix: now + u64::from(rule.expires_seconds),
            decision: None,
            settled_unix: None,
        };
        self.inner.store.create(&approval).await?;
        self.inner
            .audit
            .event(&AuditEvent::requested(&approval), &approval.id);
        tracing::info!(approval_id = %approval.id, tool, principal = %caller.subject, "approval requested");
        Ok(Gate::Ask(self.ask(&approval, false)))
    }

    async fn settle_or_ask(
        &self,
        approval: Approval,
        now: u64,
        declined: bool,
    ) -> Result<Gate, StoreError> {
        let Some(decision) = approval.decision.clone() else {
            if now >= approval.expires_unix {
                return Ok(Gate::Refuse(Refusal::Expired { decided: false }));
            }
            if declined {
                return Ok(Gate::Refuse(Refusal::Declined));
            }
            return Ok(Gate::Ask(self.ask(&approval, true)));
        };
        if !decision.approved {
            // Told once on the path without state; the state's path keeps telling it.
            match self.inner.store.settle(&approval.id, now).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e),
            }
            return Ok(Gate::Refuse(Refusal::Denied {
                by: decision.by,
                reason: decision.reason,
            }));
        }
        if approval.settled_unix.is_some() {
            return Ok(Gate::Refuse(Refusal::Used));
        }
        if now >= approval.expires_unix {
            return Ok(Gate::Refuse(Refusal::Expired { decided: true }));
        }
        Ok(Gate::Run(Granted {
            id: approval.id,
            approver: decision.by,
            approved_at: rfc3339(decision.at_unix),
        }))
    }

    /// Uses a granted approval, once: the call runs only when this succeeds.
    pub async fn spend(&self, granted: &Granted) -> Result<(), Refusal> {
        match self.inner.store.settle(&granted.id, now_unix()).await {
            Ok(_) => Ok(()),
            Err(StoreError::Conflict) => Err(Refusal::Used),
            Err(e) => Err(Refusal::Store(e)),
        }
    }

    fn ask(&self, approval: &Approval, still_pending: bool) -> Ask {
        let url = self.page_url(&approval.id);
        let who = approval.groups.join(", ");
        let message = if still_pending {
            format!(
                "The call of {} is still waiting for approval by a member of {who}. Open {url} to approve or deny it, then retry.",
                approval.tool
            )
        } else {
            format!(
                "A person must approve this call of {} before it runs: a member of {who} opens {url}, signs in and approves or denies it; then the call can be retried.",
                approval.tool
            )
        };
        Ask {
            approval_id: approval.id.clone(),
            request_state: self.inner.sealer.seal(
                Purpose::RequestState,
                &RequestState {
                    approval: approval.id.clone(),
                    binding: approval.binding.clone(),
                },
            ),
            url,
            message,
            still_pending,
        }
    }
}

/// An approval's own audit line: who asked for what, and who decided what.
#[derive(Debug, Serialize)]
pub(crate) struct AuditEvent<'a> {
    pub time: String,
    /// `approval_requested` or `approval_decided`.
    pub event: &'static str,
    pub approval_id: &'a str,
    pub tool: &'a str,
    pub principal: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<&'a str>,
    pub arguments_sha256: &'a str,
    pub expires_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

impl<'a> AuditEvent<'a> {
    pub fn requested(a: &'a Approval) -> Self {
        Self {
            time: rfc3339(a.created_unix),
            event: "approval_requested",
            approval_id: &a.id,
            tool: &a.tool,
            principal: &a.caller,
            tenant: a.tenant.as_deref(),
            arguments_sha256: &a.arguments_sha256,
            expires_at: rfc3339(a.expires_unix),
            decision: None,
            approver: None,
            reason: None,
        }
    }

    pub fn decided(a: &'a Approval, d: &'a Decision) -> Self {
        Self {
            time: rfc3339(d.at_unix),
            event: "approval_decided",
            decision: Some(if d.approved { "approved" } else { "denied" }),
            approver: Some(&d.by),
            reason: d.reason.as_deref(),
            ..Self::requested(a)
        }
    }
}

/// What a call is bound to: the tool, its canonical arguments, the caller and its tenant.
pub fn binding_of(tool: &str, arguments_sha256: &str, caller: &Caller) -> String {
    let bound = serde_json::json!([tool, arguments_sha256, caller.subject, caller.tenant]);
    hex::encode(Sha256::digest(bound.to_string()))
}

/// `value` as JSON with every object's keys sorted and no spaces, so that the same arguments
/// give the same bytes however the client ordered them. (A few lines of our own rather than a
/// JCS crate: numbers are written as serde_json writes them, which is all a binding needs.)
pub fn canonical_json(value: &serde_json::Value) -> String {
    fn write(value: &serde_json::Value, out: &mut String) {
        match value {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::Value::String(key.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(key) {
                        write(v, out);
                    }
                }
                out.push('}');
            }
            serde_json::Value::Array(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(v, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// 128 random bits, base64url.
fn new_approval_id() -> String {
    use base64::Engine as _;
    let bytes: [u8; 16] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
