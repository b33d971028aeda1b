//! The gate's answers, one named test per refusal: none of them lets the call run.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::audit::MemoryAudit;

fn approvals() -> (Approvals, MemoryAudit) {
    approvals_with_key([3; 32])
}

/// The tool `apply`, which needs approval by `approvers`.
fn rule() -> crate::catalog::Tool {
    let catalog = crate::catalog::parse(
        std::path::Path::new("c.yaml"),
        "version: 1\ntools:\n  - name: apply\n    description: Applies.\n    input_schema: {type: object}\n    backend: local\n    local: {command: [/bin/cat]}\n    allow: {groups: [dev]}\n    approval: {groups: [approvers]}\n",
    )
    .expect("catalog");
    catalog.tools.into_iter().next().expect("one tool")
}

fn caller(subject: &str, tenant: &str) -> Caller {
    Caller {
        subject: subject.into(),
        tenant: Some(tenant.into()),
        groups: vec!["dev".into()],
        scopes: vec![],
    }
}

fn args() -> serde_json::Value {
    json!({"project": "net", "plan": "abc"})
}

/// Asks for a new approval of `args()` by alice and returns it.
async fn asked(approvals: &Approvals) -> Ask {
    match approvals
        .gate(&rule(), &args(), &caller("alice", "acme"), None, false)
        .await
    {
        Gate::Ask(ask) => ask,
        other => panic!("expected an ask, got {other:?}"),
    }
}

async fn decide(approvals: &Approvals, id: &str, approved: bool) {
    approvals
        .store()
        .decide(
            id,
            Decision {
                approved,
                by: "bob".into(),
                at_unix: now_unix(),
                reason: Some("looked at it".into()),
            },
            now_unix(),
        )
        .await
        .expect("decided");
}

async fn retry(
    approvals: &Approvals,
    state: Option<&str>,
    arguments: serde_json::Value,
    who: Caller,
) -> Gate {
    approvals
        .gate(&rule(), &arguments, &who, state, false)
        .await
}

#[tokio::test]
async fn a_call_without_approval_is_asked_to_get_one_at_the_page() {
    let (approvals, audit) = approvals();
    let ask = asked(&approvals).await;
    assert_eq!(
        ask.url,
        format!("http://127.0.0.1:8080/approvals/{}", ask.approval_id)
    );
    assert!(ask.message.contains(&ask.url), "{}", ask.message);
    assert!(ask.message.contains("approvers"), "{}", ask.message);
    // The state names the approval but shows nothing of it.
    assert!(!ask.request_state.contains(&ask.approval_id));
    assert!(!ask.request_state.contains("alice"));
    let lines = audit.records();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["event"], "approval_requested");
    assert_eq!(lines[0]["principal"], "alice");
}

#[tokio::test]
async fn a_pending_approval_is_asked_for_again() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    match retry(
        &approvals,
        Some(&ask.request_state),
        args(),
        caller("alice", "acme"),
    )
    .await
    {
        Gate::Ask(again) => {
            assert_eq!(again.approval_id, ask.approval_id);
            assert!(again.still_pending);
            assert!(again.message.contains("still waiting"), "{}", again.message);
        }
        other => panic!("expected an ask, got {other:?}"),
    }
}

#[tokio::test]
async fn an_approved_call_runs_once_with_its_state() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, true).await;
    // Arguments in another order are the same call.
    let reordered = json!({"plan": "abc", "project": "net"});
    let granted = match retry(
        &approvals,
        Some(&ask.request_state),
        reordered,
        caller("alice", "acme"),
    )
    .await
    {
        Gate::Run(granted) => granted,
        other => panic!("expected to run, got {other:?}"),
    };
    assert_eq!(granted.approver, "bob");
    approvals.spend(&granted).await.expect("spent once");
    assert_eq!(approvals.spend(&granted).await, Err(Refusal::Used));
    match retry(
        &approvals,
        Some(&ask.request_state),
        args(),
        caller("alice", "acme"),
    )
    .await
    {
        Gate::Refuse(Refusal::Used) => {}
        other => panic!("expected used, got {other:?}"),
    }
}

#[tokio::test]
async fn an_approved_call_runs_once_without_state() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, true).await;
    let Gate::Run(granted) = retry(&approvals, None, args(), caller("alice", "acme")).await else {
        panic!("expected to run");
    };
    approvals.spend(&granted).await.expect("spent");
    // The next call of the same arguments asks anew.
    match retry(&approvals, None, args(), caller("alice", "acme")).await {
        Gate::Ask(again) => assert_ne!(again.approval_id, ask.approval_id),
        other => panic!("expected a new ask, got {other:?}"),
    }
}

#[tokio::test]
async fn a_tampered_state_is_refused() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, true).await;
    let mut tampered = ask.request_state.clone();
    tampered.replace_range(10..11, if &tampered[10..11] == "x" { "y" } else { "x" });
    assert!(matches!(
        retry(&approvals, Some(&tampered), args(), caller("alice", "acme")).await,
        Gate::Refuse(Refusal::Tampered)
    ));
    // A state sealed by another gateway's key does not open either.
    let (other, _) = approvals_with_key([9; 32]);
    assert!(matches!(
        retry(
            &other,
            Some(&ask.request_state),
            args(),
            caller("alice", "acme")
        )
        .await,
        Gate::Refuse(Refusal::Tampered)
    ));
}

fn approvals_with_key(key: [u8; 32]) -> (Approvals, MemoryAudit) {
    let audit = MemoryAudit::default();
    let approvals = Approvals::new(ApprovalSettings {
        store: Arc::new(MemoryStore::new()),
        key,
        origin: "http://127.0.0.1:8080".into(),
        sign_in: PageSignIn::Dev,
        audit: AuditSink::writer(Box::new(audit.clone())),
    });
    (approvals, audit)
}

#[tokio::test]
async fn changed_arguments_are_refused() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, true).await;
    let changed = json!({"project": "net", "plan": "def"});
    assert!(matches!(
        retry(
            &approvals,
            Some(&ask.request_state),
            changed,
            caller("alice", "acme")
        )
        .await,
        Gate::Refuse(Refusal::OtherCall)
    ));
}

#[tokio::test]
async fn another_callers_token_is_refused() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, true).await;
    assert!(matches!(
        retry(
            &approvals,
            Some(&ask.request_state),
            args(),
            caller("mallory", "acme")
        )
        .await,
        Gate::Refuse(Refusal::OtherCall)
    ));
    assert!(matches!(
        retry(
            &approvals,
            Some(&ask.request_state),
            args(),
            caller("alice", "other")
        )
        .await,
        Gate::Refuse(Refusal::OtherCall)
    ));
    // Without the state, another caller's identical call is a new request, not this approval.
    assert!(matches!(
        retry(&approvals, None, args(), caller("mallory", "acme")).await,
        Gate::Ask(a) if a.approval_id != ask.approval_id
    ));
}

#[tokio::test]
async fn a_denied_call_is_refused_with_who_and_why() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    decide(&approvals, &ask.approval_id, false).await;
    match retry(
        &approvals,
        Some(&ask.request_state),
        args(),
        caller("alice", "acme"),
    )
    .await
    {
        Gate::Refuse(refusal @ Refusal::Denied { .. }) => {
            assert_eq!(
                refusal.to_string(),
                "the call was denied by bob: looked at it"
            );
        }
        other => panic!("expected denied, got {other:?}"),
    }
}

#[tokio::test]
async fn an_expired_approval_is_refused() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    // Decided, then the clock passes its expiry: the store's record says when it expires.
    let mut approval = approvals
        .store()
        .get(&ask.approval_id)
        .await
        .expect("get")
        .expect("there");
    approval.id = "expired-one".into();
    approval.expires_unix = now_unix() - 1;
    approval.binding = "elsewhere".into();
    approvals.store().create(&approval).await.expect("create");
    let state = approvals.sealer().seal(
        Purpose::RequestState,
        &RequestState {
            approval: "expired-one".into(),
            binding: ask_binding(),
        },
    );
    // Bound to another call: refused as such before its age is looked at.
    assert!(matches!(
        retry(&approvals, Some(&state), args(), caller("alice", "acme")).await,
        Gate::Refuse(Refusal::OtherCall)
    ));
    approval.id = "expired-two".into();
    approval.binding = ask_binding();
    approvals.store().create(&approval).await.expect("create");
    let state = approvals.sealer().seal(
        Purpose::RequestState,
        &RequestState {
            approval: "expired-two".into(),
            binding: ask_binding(),
        },
    );
    assert!(matches!(
        retry(&approvals, Some(&state), args(), caller("alice", "acme")).await,
        Gate::Refuse(Refusal::Expired { decided: false })
    ));
}

fn ask_binding() -> String {
    let sha = hex::encode(Sha256::digest(canonical_json(&args())));
    binding_of("apply", &sha, &caller("alice", "acme"))
}

#[tokio::test]
async fn a_declined_elicitation_is_refused() {
    let (approvals, _) = approvals();
    let ask = asked(&approvals).await;
    assert!(matches!(
        approvals
            .gate(
                &rule(),
                &args(),
                &caller("alice", "acme"),
                Some(&ask.request_state),
                true
            )
            .await,
        Gate::Refuse(Refusal::Declined)
    ));
}

#[test]
fn canonical_json_sorts_keys_at_every_depth() {
    let a = json!({"b": [1, {"y": 1, "x": 2}], "a": "s"});
    assert_eq!(canonical_json(&a), r#"{"a":"s","b":[1,{"x":2,"y":1}]}"#);
}
