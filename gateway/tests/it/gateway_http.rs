//! The gateway's HTTP and MCP behaviour, in process: the router is built with `app()` and driven
//! with `tower::ServiceExt::oneshot`, with a backend written here in test code.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use switchboard_gateway::approval::{ApprovalSettings, Approvals, MemoryStore};
use switchboard_gateway::audit::{AuditSink, MemoryAudit};
use switchboard_gateway::auth::Verifier;
use switchboard_gateway::auth::dev::{DEV_ISSUER, DevClaims, DevKey};
use switchboard_gateway::backend::{
    Backend, BackendError, Backends, Dispatch, Dispatched, Progress,
};
use switchboard_gateway::catalog::{self, AuthSettings, BackendKind, JwksSource};
use switchboard_gateway::http::{AppState, RequestLimit, app};

use switchboard_gateway::mcp::{Gateway, GatewayConfig};
use switchboard_gateway::metrics::Metrics;
use switchboard_gateway::sessions::{Peers, SESSION_LIFETIME, SessionIds, Sessions};
use switchboard_tool_runtime::{ContentItem, Invocation, ToolOutput};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::support::mcp::last_message;

pub(crate) const RESOURCE: &str = "http://127.0.0.1:8080/mcp";
pub(crate) const V_NEW: &str = "2026-07-28";

const CATALOG: &str = r#"
version: 1
tools:
  - name: echo
    description: Echo.
    input_schema:
      type: object
      properties:
        message: {type: string, maxLength: 20}
        sleep_ms: {type: integer}
        fail: {type: boolean}
      required: [message]
      additionalProperties: false
    backend: local
    local: {command: [unused]}
    timeout_seconds: 1
    allow: {groups: [dev]}
  - name: admin-only
    description: Only admins.
    input_schema: {type: object}
    backend: local
    local: {command: [unused]}
    allow: {groups: [admin], scopes: ["tools:admin"]}
  - name: deploy
    description: Routes on a header.
    input_schema:
      type: object
      properties:
        region: {type: string, x-mcp-header: Region}
    backend: local
    local: {command: [unused]}
    allow: {groups: [ops]}
  - name: apply
    description: Changes something; a person approves each call.
    input_schema:
      type: object
      properties:
        message: {type: string}
      required: [message]
      additionalProperties: false
    backend: local
    local: {command: [unused]}
    allow: {groups: [deployers]}
    approval: {groups: [approvers], expires_seconds: 600}
    session_tags: [tool, principal, approver]
"#;

/// A backend that answers in process: echoes, sleeps, fails on request, records invocations.
#[derive(Debug, Default)]
pub(crate) struct TestBackend {
    pub(crate) seen: Mutex<Vec<Invocation>>,
}

#[async_trait]
impl Backend for TestBackend {
    async fn dispatch(&self, call: Dispatch) -> Result<Dispatched, BackendError> {
        let args = call.invocation.arguments.clone();
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(call.invocation.clone());
        }
        let _ = call.progress.try_send(Progress {
            progress: 0.5,
            total: Some(1.0),
            message: Some("half".into()),
        });
        let message = args
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if message == "zigzag" {
            // Backwards, equal, forwards, not a number: only 1.0 may reach the client.
            for progress in [0.25, 0.5, 1.0, f64::NAN] {
                let _ = call.progress.try_send(Progress {
                    progress,
                    total: Some(1.0),
                    message: None,
                });
            }
        }
        if let Some(data) = message.strip_suffix("-image") {
            let image = ContentItem::Image {
                data: if data == "good" {
                    "iVBORw0KGgo="
                } else {
                    "no base64!"
                }
                .into(),
                mime_type: "image/png".into(),
            };
            let output = ToolOutput {
                content: vec![image],
                ..ToolOutput::default()
            };
            return Ok(Dispatched {
                output,
                unit_id: "unit-1".into(),
            });
        }
        if let Some(ms) = args.get("sleep_ms").and_then(Value::as_u64) {
            // As every backend does, it enforces the call's deadline itself.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(ms)) => {}
                _ = call.cancel.cancelled() => return Err(BackendError::Cancelled { unit_id: Some("unit-1".into()) }),
                _ = tokio::time::sleep_until(call.deadline.instant()) => {
                    return Err(BackendError::DeadlineExceeded {
                        unit_id: Some("unit-1".into()),
                        timeout_seconds: call.tool.timeout_seconds,
                    });
                }
            }
        }
        if args.get("fail").and_then(Value::as_bool) == Some(true) {
            return Ok(Dispatched {
                output: ToolOutput::error("it broke"),
                unit_id: "unit-1".into(),
            });
        }
        Ok(Dispatched {
            output: ToolOutput::structured(json!({"echo": args.get("message")})),
            unit_id: "unit-1".into(),
        })
    }
}

pub(crate) struct Harness {
    _dir: tempfile::TempDir,
    pub(crate) key: DevKey,
    /// Built once, so that MCP sessions live across requests.
    pub(crate) router: axum::Router,
    pub(crate) audit: MemoryAudit,
    pub(crate) backend: Arc<TestBackend>,
}

pub(crate) fn harness() -> Harness {
    harness_with(RequestLimit::for_calls(8))
}

fn harness_with(requests: RequestLimit) -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("dev.pem");
    let sessions = Sessions::new(SessionIds::process_local(), Peers::default());
    replica(requests, &key, sessions, dir)
}

/// Two replicas of one deployment: the same token key and the same session key, separate
/// processes in all else (gateway, backend, audit, in-memory sessions).
fn replicas() -> (Harness, Harness) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("dev.pem");
    let session_key = [9u8; 32];
    let sessions = || {
        let ids = SessionIds::with_key(&session_key, SESSION_LIFETIME).expect("key");
        Sessions::new(ids, Peers::default())
    };
    let b = replica(
        RequestLimit::for_calls(8),
        &key,
        sessions(),
        tempfile::tempdir().expect("tempdir"),
    );
    (
        replica(RequestLimit::for_calls(8), &key, sessions(), dir),
        b,
    )
}

fn replica(
    requests: RequestLimit,
    key: &std::path::Path,
    sessions: Sessions,
    dir: tempfile::TempDir,
) -> Harness {
    let (key, _) = DevKey::load_or_create(key).expect("key");
    let catalog = catalog::parse(std::path::Path::new("test.yaml"), CATALOG).expect("catalog");
    let backend = Arc::new(TestBackend::default());
    let audit = MemoryAudit::default();
    let approvals = Approvals::new(ApprovalSettings {
        store: Arc::new(MemoryStore::new()),
        key: sessions.ids.derive_key("approvals"),
        origin: "http://127.0.0.1:8080".into(),
        sign_in: switchboard_gateway::approval::PageSignIn::Dev,
        audit: AuditSink::writer(Box::new(audit.clone())),
    });
    let gateway = Gateway::new(
        &catalog,
        GatewayConfig {
            backends: Backends::new().with(BackendKind::Local, backend.clone()),
            audit: AuditSink::writer(Box::new(audit.clone())),
            metrics: Metrics::new(),
            max_in_flight: 8,
            work_roles: Default::default(),
            broker: None,
            approvals: Some(approvals.clone()),
            tools_off: Default::default(),
        },
    )
    .expect("gateway");
    let settings = AuthSettings {
        issuer: DEV_ISSUER.into(),
        authorization_servers: vec![],
        jwks: JwksSource::File("unused".into()),
        jwks_cache_seconds: 300,
        algorithms: vec!["EdDSA".into()],
        groups_claim: "groups".into(),
        tenant_claim: "tenant".into(),
        leeway_seconds: 5,
        max_token_lifetime_seconds: None,
        required_typ: None,
        split_string_groups: false,
        approval_sign_in: None,
    };
    let verifier = Verifier::new(&settings, RESOURCE.into(), key.key_source()).expect("verifier");
    let state = AppState {
        gateway,
        verifier,
        resource: RESOURCE.into(),
        authorization_servers: vec!["https://issuer.test".into()],
        allowed_hosts: vec!["mcp.example.com".into()],
        allowed_origins: vec!["https://app.example.com".into()],
        max_body_bytes: 64 * 1024,
        max_json_depth: 32,
        requests,
        mcp_shutdown: CancellationToken::new(),
        sessions: Arc::new(sessions),
        approvals: Some(approvals),
    };
    Harness {
        _dir: dir,
        key,
        router: app(state),
        audit,
        backend,
    }
}

impl Harness {
    /// A token of `subject` in `groups`, tenant `acme`.
    pub(crate) fn token_of(&self, subject: &str, groups: &[&str]) -> String {
        let mut c = DevClaims::new(
            RESOURCE,
            subject,
            groups.iter().map(|g| g.to_string()).collect(),
            600,
        );
        c.tenant = Some("acme".into());
        self.key.mint(&c).expect("mint")
    }

    fn token(&self, groups: &[&str]) -> String {
        let mut c = DevClaims::new(
            RESOURCE,
            "alice",
            groups.iter().map(|g| g.to_string()).collect(),
            600,
        );
        c.tenant = Some("acme".into());
        self.key.mint(&c).expect("mint")
    }

    pub(crate) async fn send(
        &self,
        request: Request<Body>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    }

    /// A 2026-07-28 request: headers and `_meta` as that revision wants them.
    async fn rpc(
        &self,
        token: Option<&str>,
        method: &str,
        params: Value,
    ) -> (StatusCode, http::HeaderMap, Value) {
        self.rpc_with(token, method, params, json!({})).await
    }

    /// [`Self::rpc`] from a client declaring `capabilities`.
    pub(crate) async fn rpc_with(
        &self,
        token: Option<&str>,
        method: &str,
        params: Value,
        capabilities: Value,
    ) -> (StatusCode, http::HeaderMap, Value) {
        let mut params = params;
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": V_NEW,
            "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": capabilities,
        });
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
        let mut req = post()
            .header("MCP-Protocol-Version", V_NEW)
            .header("Mcp-Method", method);
        if let Some(n) = name {
            req = req.header("Mcp-Name", n);
        }
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let (status, headers, text) = self
            .send(req.body(Body::from(body.to_string())).expect("request"))
            .await;
        (status, headers, last_message(&text))
    }
}

pub(crate) fn post() -> http::request::Builder {
    Request::post("/mcp")
        .header("Host", "127.0.0.1:8080")
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
}

fn sse_messages(text: &str) -> Vec<Value> {
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .collect()
}

#[tokio::test]
async fn healthz_answers_without_a_token() {
    let h = harness();
    let (status, _, body) = h
        .send(
            Request::get("/healthz")
                .header("Host", "127.0.0.1:8080")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.trim(), "ok");
}

#[tokio::test]
async fn missing_token_gets_401_with_resource_metadata() {
    let h = harness();
    let (status, headers, _) = h.rpc(None, "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers
        .get("www-authenticate")
        .expect("challenge")
        .to_str()
        .expect("ascii");
    assert_eq!(
        challenge,
        "Bearer resource_metadata=\"http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp\""
    );
}

#[tokio::test]
async fn invalid_token_gets_401_invalid_token() {
    let h = harness();
    let (status, headers, _) = h.rpc(Some("not-a-jwt"), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let challenge = headers
        .get("www-authenticate")
        .expect("challenge")
        .to_str()
        .expect("ascii");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn token_granting_no_tool_gets_403_insufficient_scope() {
    let h = harness();
    let (status, headers, _) = h
        .rpc(Some(&h.token(&["nobody"])), "tools/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = headers
        .get("www-authenticate")
        .expect("challenge")
        .to_str()
        .expect("ascii");
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("tools:admin"),
        "{challenge}"
    );
}

#[tokio::test]
async fn protected_resource_metadata_names_the_resource() {
    let h = harness();
    let (status, _, body) = h
        .send(
            Request::get("/.well-known/oauth-protected-resource/mcp")
                .header("Host", "127.0.0.1:8080")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["resource"], RESOURCE);
    assert_eq!(doc["authorization_servers"], json!(["https://issuer.test"]));
    assert_eq!(doc["scopes_supported"], json!(["tools:admin"]));
}

#[tokio::test]
async fn list_shows_only_the_callers_tools() {
    let h = harness();
    let (status, _, body) = h
        .rpc(Some(&h.token(&["dev"])), "tools/list", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let names: Vec<&str> = body["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, vec!["echo"]);
    let (_, _, body) = h
        .rpc(Some(&h.token(&["dev", "admin"])), "tools/list", json!({}))
        .await;
    assert_eq!(body["result"]["tools"].as_array().expect("tools").len(), 2);
}

#[tokio::test]
async fn call_returns_structured_result_and_audits_it() {
    let h = harness();
    let (status, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "hi"}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"]["structuredContent"],
        json!({"echo": "hi"}),
        "{body}"
    );
    assert_eq!(body["result"]["isError"], json!(false));
    let records = h.audit.records();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r["outcome"], "ok");
    assert_eq!(r["principal"], "alice");
    assert_eq!(r["tenant"], "acme");
    assert_eq!(r["tool"], "echo");
    assert_eq!(r["backend"], "local");
    assert_eq!(r["unit_id"], "unit-1");
    assert_eq!(r["arguments_sha256"].as_str().map(str::len), Some(64));
    // the invocation carries tags from the verified token, never the token itself
    let seen = h.backend.seen.lock().expect("lock").clone();
    assert_eq!(
        seen[0].session_tags.get("principal").map(String::as_str),
        Some("alice")
    );
    assert_eq!(
        seen[0].session_tags.get("tenant").map(String::as_str),
        Some("acme")
    );
    assert_eq!(
        seen[0].session_tags.get("invocation"),
        Some(&seen[0].invocation_id)
    );
    let token = h.token(&["dev"]);
    let sig = token.rsplit('.').next().expect("sig");
    assert!(!serde_json::to_string(&seen[0]).expect("json").contains(sig));
    assert!(!serde_json::to_string(&records).expect("json").contains(sig));
}

#[tokio::test]
async fn denied_tool_answers_exactly_like_unknown_tool() {
    let h = harness();
    let token = h.token(&["dev"]);
    let (s1, _, denied) = h
        .rpc(
            Some(&token),
            "tools/call",
            json!({"name": "admin-only", "arguments": {}}),
        )
        .await;
    let (s2, _, unknown) = h
        .rpc(
            Some(&token),
            "tools/call",
            json!({"name": "no-such-tool", "arguments": {}}),
        )
        .await;
    assert_eq!(s1, s2);
    assert!(denied["error"].is_object(), "{denied}");
    assert_eq!(denied["error"]["code"], unknown["error"]["code"]);
    assert_eq!(
        denied["error"]["message"]
            .as_str()
            .map(|m| m.replace("admin-only", "NAME")),
        unknown["error"]["message"]
            .as_str()
            .map(|m| m.replace("no-such-tool", "NAME"))
    );
    let outcomes: Vec<String> = h
        .audit
        .records()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(outcomes, vec!["denied", "unknown_tool"]);
    assert!(h.backend.seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn arguments_breaking_the_schema_name_the_field() {
    let h = harness();
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "far too long for the limit"}}),
        )
        .await;
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    let text = body["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("/message"), "{text}");
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x", "extra": 1}}),
        )
        .await;
    let text = body["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("extra"), "{text}");
    assert!(h.backend.seen.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn tool_failure_is_an_error_result() {
    let h = harness();
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x", "fail": true}}),
        )
        .await;
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    assert_eq!(h.audit.records()[0]["outcome"], "tool_error");
}

#[tokio::test]
async fn posts_past_the_request_limit_are_refused_at_once_with_503() {
    let h = Arc::new(harness_with(RequestLimit::new(1)));
    let token = h.token(&["dev"]);
    let slow = {
        let (h, token) = (Arc::clone(&h), token.clone());
        tokio::spawn(async move {
            h.rpc(
                Some(&token),
                "tools/call",
                json!({"name": "echo", "arguments": {"message": "x", "sleep_ms": 600}}),
            )
            .await
        })
    };
    let until = Instant::now() + Duration::from_secs(5);
    while h.backend.seen.lock().expect("lock").is_empty() {
        assert!(
            Instant::now() < until,
            "the slow call never reached the backend"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let (status, headers, body) = h.rpc(Some(&token), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    let message = body["error"]["message"].as_str().expect("a JSON-RPC error");
    assert!(message.contains("limit of 1 requests"), "{message}");
    let (status, _, body) = slow.await.expect("task");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["result"]["structuredContent"]["echo"],
        json!("x"),
        "{body}"
    );
    // The slow call's answer is done: its permit is back.
    let (status, _, body) = h.rpc(Some(&token), "tools/list", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn deadline_stops_the_call_with_a_clear_error() {
    let h = harness();
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x", "sleep_ms": 5000}}),
        )
        .await;
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    let text = body["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("deadline"), "{text}");
    let r = &h.audit.records()[0];
    assert_eq!(r["outcome"], "deadline_exceeded");
    assert!(r["duration_ms"].as_u64().expect("ms") < 3000);
}

/// A 2026-07-28 `tools/call` of echo that asks for progress under `token`; the answer's raw
/// text (an SSE stream: the notifications, then the result).
async fn call_asking_progress(h: &Harness, message: &str, token: Value) -> (StatusCode, String) {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": message},
        "_meta": {"progressToken": token,
            "io.modelcontextprotocol/protocolVersion": V_NEW,
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let req = post()
        .header("MCP-Protocol-Version", V_NEW)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", "echo")
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .body(Body::from(body.to_string()))
        .expect("req");
    let (status, _, text) = h.send(req).await;
    (status, text)
}

#[tokio::test]
async fn progress_is_forwarded_when_asked_for() {
    let h = harness();
    let (status, text) = call_asking_progress(&h, "x", json!("p1")).await;
    assert_eq!(status, StatusCode::OK);
    let progress: Vec<Value> = sse_messages(&text)
        .into_iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(progress.len() >= 2, "{text}");
    assert_eq!(progress[0]["params"]["progressToken"], "p1");
    assert_eq!(progress[1]["params"]["message"], "half");
}

#[tokio::test]
async fn progress_only_increases() {
    let h = harness();
    let (status, text) = call_asking_progress(&h, "zigzag", json!(9)).await;
    assert_eq!(status, StatusCode::OK);
    let messages = sse_messages(&text);
    let values: Vec<f64> = messages
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .map(|m| m["params"]["progress"].as_f64().expect("a number"))
        .collect();
    assert_eq!(values, vec![0.0, 0.5, 1.0], "{text}");
    assert_eq!(messages.last().map(|m| m["id"].clone()), Some(json!(1)));
}

#[tokio::test]
async fn image_content_is_passed_on_and_garbage_is_refused() {
    let h = harness();
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "good-image"}}),
        )
        .await;
    assert_eq!(
        body["result"]["content"],
        json!([{"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"}]),
        "{body}"
    );
    let (_, _, body) = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "bad-image"}}),
        )
        .await;
    assert_eq!(body["result"]["isError"], json!(true), "{body}");
    let text = body["result"]["content"][0]["text"].as_str().expect("text");
    assert!(text.contains("not valid base64"), "{text}");
    assert!(!text.contains("no base64!"), "{text}");
    let records = h.audit.records();
    assert_eq!(records[0]["outcome"], "ok");
    assert_eq!(records[1]["outcome"], "unit_failed");
}

#[tokio::test]
async fn foreign_host_is_refused() {
    let h = harness();
    let req = Request::post("/mcp")
        .header("Host", "evil.example:8080")
        .body(Body::from("{}"))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::FORBIDDEN);
    let req = Request::get("/healthz")
        .header("Host", "mcp.example.com")
        .body(Body::empty())
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::OK);
}

/// A load balancer's health check names the target by its IP address in `Host` (issue 11 item
/// 9): the health endpoints answer it, `/mcp` and `/metrics` still refuse it.
#[tokio::test]
async fn health_checks_answer_whatever_the_host() {
    let h = harness();
    for (path, host) in [
        ("/healthz", "10.0.3.17:8080"),
        ("/readyz", "10.0.3.17"),
        ("/healthz", "evil.example"),
    ] {
        let req = Request::get(path)
            .header("Host", host)
            .body(Body::empty())
            .expect("req");
        assert_eq!(
            h.send(req).await.0,
            StatusCode::OK,
            "{path} with Host {host}"
        );
    }
    let req = Request::post("/mcp")
        .header("Host", "10.0.3.17:8080")
        .body(Body::from("{}"))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::FORBIDDEN);
    let req = Request::get("/metrics")
        .header("Host", "10.0.3.17:8080")
        .body(Body::empty())
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn foreign_origin_is_refused() {
    let h = harness();
    for (origin, expected) in [
        ("http://evil.example", StatusCode::FORBIDDEN),
        ("http://127.0.0.1:8080", StatusCode::OK),
        ("https://app.example.com", StatusCode::OK),
    ] {
        // /metrics: behind the guard like /mcp, and answering without a token.
        let req = Request::get("/metrics")
            .header("Host", "127.0.0.1:8080")
            .header("Origin", origin)
            .body(Body::empty())
            .expect("req");
        assert_eq!(h.send(req).await.0, expected, "{origin}");
    }
}

#[tokio::test]
async fn oversized_body_gets_413() {
    let h = harness();
    let big = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"pad":"{}"}}}}"#,
        "x".repeat(100_000)
    );
    let req = post()
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .body(Body::from(big))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn deep_nesting_is_refused_before_parsing() {
    let h = harness();
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{{"x":{}{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let req = post()
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .body(Body::from(deep))
        .expect("req");
    let (status, _, body) = h.send(req).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("nested deeper"), "{body}");
}

#[tokio::test]
async fn header_and_body_method_mismatch_gets_400() {
    let h = harness();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": V_NEW,
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}}}});
    let req = post()
        .header("MCP-Protocol-Version", V_NEW)
        .header("Mcp-Method", "tools/call")
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .body(Body::from(body.to_string()))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn legacy_initialize_gets_a_session() {
    let h = harness();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let req = post()
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .body(Body::from(body.to_string()))
        .expect("req");
    let (status, headers, text) = h.send(req).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(headers.get("mcp-session-id").is_some(), "{headers:?}");
    assert_eq!(
        last_message(&text)["result"]["protocolVersion"],
        "2025-11-25"
    );
}

#[tokio::test]
async fn metrics_count_calls_by_tool_and_outcome() {
    let h = harness();
    let _ = h
        .rpc(
            Some(&h.token(&["dev"])),
            "tools/call",
            json!({"name": "echo", "arguments": {"message": "x"}}),
        )
        .await;
    let (_, _, text) = h
        .send(
            Request::get("/metrics")
                .header("Host", "127.0.0.1:8080")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert!(
        text.contains(r#"switchboard_tool_calls_total{tool="echo",outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("switchboard_tool_call_duration_seconds"),
        "{text}"
    );
    assert!(text.contains("switchboard_tool_calls_in_flight"), "{text}");
}

/// Initializes a 2025-11-25 session and returns its id.
async fn legacy_session(h: &Harness, token: &str) -> String {
    legacy_session_with(h, token, json!({})).await
}

/// [`legacy_session`] of a client declaring `capabilities`.
pub(crate) async fn legacy_session_with(h: &Harness, token: &str, capabilities: Value) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "t", "version": "1"}}});
    let req = post()
        .header("Authorization", format!("Bearer {token}"))
        .body(Body::from(init.to_string()))
        .expect("req");
    let (status, headers, text) = h.send(req).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let session = headers
        .get("mcp-session-id")
        .expect("session")
        .to_str()
        .expect("ascii")
        .to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let req = post()
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(Body::from(note.to_string()))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::ACCEPTED);
    session
}

#[tokio::test]
async fn notifications_cancelled_stops_the_dispatch() {
    let h = harness();
    let token = h.token(&["dev"]);
    let session = legacy_session(&h, &token).await;
    let call = json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "x", "sleep_ms": 30_000}}});
    let req = post()
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(Body::from(call.to_string()))
        .expect("req");
    let router = h.router.clone();
    let pending = tokio::spawn(async move {
        let response = router.oneshot(req).await.expect("infallible");
        let _ = tokio::time::timeout(Duration::from_secs(10), response.into_body().collect()).await;
    });
    // wait until the backend has the call
    for _ in 0..100 {
        if !h.backend.seen.lock().expect("lock").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        h.backend.seen.lock().expect("lock").len(),
        1,
        "the call reached the backend"
    );
    let cancel = json!({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 42, "reason": "user"}});
    let req = post()
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(Body::from(cancel.to_string()))
        .expect("req");
    assert_eq!(h.send(req).await.0, StatusCode::ACCEPTED);
    let started = std::time::Instant::now();
    let mut outcome = None;
    while started.elapsed() < Duration::from_secs(5) {
        if let Some(r) = h.audit.records().first() {
            outcome = r["outcome"].as_str().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(outcome.as_deref(), Some("cancelled"));
    pending.abort();
}

/// Bad input gets a clear JSON-RPC error, and the gateway keeps serving.
async fn bad_body(h: &Harness, body: &str) -> (StatusCode, String) {
    let req = post()
        .header("Authorization", format!("Bearer {}", h.token(&["dev"])))
        .header("MCP-Protocol-Version", V_NEW)
        .body(Body::from(body.to_owned()))
        .expect("req");
    let (status, _, text) = h.send(req).await;
    let req = Request::get("/healthz")
        .header("Host", "127.0.0.1:8080")
        .body(Body::empty())
        .expect("req");
    assert_eq!(
        h.send(req).await.0,
        StatusCode::OK,
        "still serving after {body:?}"
    );
    (status, text)
}

#[tokio::test]
async fn invalid_json_gets_a_parse_error() {
    let h = harness();
    let (status, text) = bad_body(&h, "{not json").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    assert!(text.contains("-32700"), "{text}");
}

#[tokio::test]
async fn wrong_jsonrpc_version_is_refused() {
    let h = harness();
    let (status, text) = bad_body(
        &h,
        r#"{"jsonrpc":"1.0","id":1,"method":"tools/list","params":{}}"#,
    )
    .await;
    assert!(status.is_client_error(), "{status} {text}");
    assert!(text.contains("error"), "{text}");
}

#[tokio::test]
async fn json_rpc_batch_is_refused() {
    let h = harness();
    let (status, text) = bad_body(
        &h,
        r#"[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"ping"}]"#,
    )
    .await;
    assert!(status.is_client_error(), "{status} {text}");
    assert!(text.contains("error"), "{text}");
}

#[tokio::test]
async fn discover_announces_both_revisions_and_ping_answers() {
    let h = harness();
    let token = h.token(&["dev"]);
    let (status, _, body) = h.rpc(Some(&token), "server/discover", json!({})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions = body["result"]["supportedVersions"].to_string();
    assert!(
        versions.contains("2026-07-28") && versions.contains("2025-11-25"),
        "{body}"
    );
    assert!(
        body["result"]["capabilities"]["tools"].is_object(),
        "{body}"
    );
    // `ping` belongs to the session lifecycle (2025-11-25); 2026-07-28 dropped it.
    let session = legacy_session(&h, &token).await;
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let req = post()
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", &session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(Body::from(ping.to_string()))
        .expect("req");
    let (status, _, text) = h.send(req).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(last_message(&text)["result"], json!({}), "{text}");
}

async fn call_with_region_header(h: &Harness, groups: &[&str], tool: &str) -> (StatusCode, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": tool, "arguments": {"region": "us-west-2"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": V_NEW,
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
            "io.modelcontextprotocol/clientCapabilities": {}}}});
    let req = post()
        .header("MCP-Protocol-Version", V_NEW)
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
        .header("Mcp-Param-Region", "us-east-1")
        .header("Authorization", format!("Bearer {}", h.token(groups)))
        .body(Body::from(body.to_string()))
        .expect("req");
    let (status, _, text) = h.send(req).await;
    (status, last_message(&text))
}

#[tokio::test]
async fn param_header_contradicting_the_arguments_is_refused() {
    let h = harness();
    let (status, body) = call_with_region_header(&h, &["ops"], "deploy").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], -32020, "{body}");
}

#[tokio::test]
async fn param_header_check_does_not_reveal_a_denied_tool() {
    let h = harness();
    let (s1, denied) = call_with_region_header(&h, &["dev"], "deploy").await;
    let (s2, unknown) = call_with_region_header(&h, &["dev"], "nonexistent").await;
    assert_eq!(s1, s2);
    assert_eq!(
        denied["error"]["code"], unknown["error"]["code"],
        "{denied} {unknown}"
    );
    assert_eq!(
        denied["error"]["message"]
            .as_str()
            .map(|m| m.replace("deploy", "NAME")),
        unknown["error"]["message"]
            .as_str()
            .map(|m| m.replace("nonexistent", "NAME"))
    );
}

#[tokio::test]
async fn prompts_and_resources_are_not_served() {
    let h = harness();
    for method in ["prompts/list", "resources/list", "resources/templates/list"] {
        let (_, _, body) = h.rpc(Some(&h.token(&["dev"])), method, json!({})).await;
        assert_eq!(body["error"]["code"], -32601, "{method}: {body}");
    }
}

#[tokio::test]
async fn a_session_is_useless_with_another_callers_token() {
    let h = harness();
    let alice = h.token(&["dev"]);
    let session = legacy_session(&h, &alice).await;
    let mut c = DevClaims::new(RESOURCE, "bob", vec!["dev".into()], 600);
    c.tenant = Some("acme".into());
    let bob = h.key.mint(&c).expect("mint");
    let list = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/list"});
    let send = |token: String| {
        post()
            .header("Authorization", format!("Bearer {token}"))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(Body::from(list.to_string()))
            .expect("req")
    };
    let (status, _, text) = h.send(send(bob)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    let (status, _, text) = h.send(send(alice)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("echo"), "{text}");
}

/// A 2025-11-25 request in a session.
fn in_session(token: &str, session: &str, message: &Value) -> Request<Body> {
    post()
        .header("Authorization", format!("Bearer {token}"))
        .header("Mcp-Session-Id", session)
        .header("MCP-Protocol-Version", "2025-11-25")
        .body(Body::from(message.to_string()))
        .expect("req")
}

#[tokio::test]
async fn a_session_opened_on_one_replica_goes_on_on_another() {
    let (a, b) = replicas();
    let token = a.token(&["dev"]);
    let session = legacy_session(&a, &token).await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, text) = b.send(in_session(&token, &session, &list)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains("echo"), "{text}");
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"message": "on b"}}});
    let (status, _, text) = b.send(in_session(&token, &session, &call)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert_eq!(
        last_message(&text)["result"]["structuredContent"]["echo"],
        "on b"
    );
    assert_eq!(b.audit.records().len(), 1, "replica b served the call");
    assert!(a.audit.records().is_empty(), "replica a did not");
    // And back on the first one.
    let (status, _, text) = a.send(in_session(&token, &session, &call)).await;
    assert_eq!(status, StatusCode::OK, "{text}");
}

#[tokio::test]
async fn a_session_id_with_another_subjects_token_is_not_found_on_another_replica() {
    let (a, b) = replicas();
    let session = legacy_session(&a, &a.token(&["dev"])).await;
    let mut c = DevClaims::new(RESOURCE, "bob", vec!["dev".into()], 600);
    c.tenant = Some("acme".into());
    let bob = b.key.mint(&c).expect("mint");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, text) = b.send(in_session(&bob, &session, &list)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
}

#[tokio::test]
async fn a_session_id_from_a_replica_without_the_key_is_not_found() {
    let a = harness();
    let (_, b) = replicas();
    let token = a.token(&["dev"]);
    let session = legacy_session(&a, &token).await;
    // b is another deployment (another session key); the caller holds a token b accepts.
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, text) = b
        .send(in_session(&b.token(&["dev"]), &session, &list))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
}

#[tokio::test]
async fn deleting_a_session_answers_200_and_ends_it() {
    let (a, b) = replicas();
    let token = a.token(&["dev"]);
    let session = legacy_session(&a, &token).await;
    let delete = || {
        Request::delete("/mcp")
            .header("Host", "127.0.0.1:8080")
            .header("Authorization", format!("Bearer {token}"))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(Body::empty())
            .expect("req")
    };
    // Deleted where it is held: rmcp closes it; the SDKs expect 200 or 204, not 202.
    let (status, _, text) = a.send(delete()).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let (status, _, text) = a.send(in_session(&token, &session, &list)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
    // Deleted on a replica that never held it: answered there, and ended there too.
    let other = legacy_session(&a, &token).await;
    let (status, _, _) = b
        .send(
            Request::delete("/mcp")
                .header("Host", "127.0.0.1:8080")
                .header("Authorization", format!("Bearer {token}"))
                .header("Mcp-Session-Id", &other)
                .header("MCP-Protocol-Version", "2025-11-25")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, text) = b.send(in_session(&token, &other, &list)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{text}");
}
