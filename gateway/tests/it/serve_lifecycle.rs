//! `serve` on a real listener: development mode's limits and graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use switchboard_gateway::auth::dev::{DevClaims, DevKey};
use switchboard_gateway::backend::{Backend, BackendError, Backends, Dispatch, Dispatched};
use switchboard_gateway::catalog::BackendKind;
use switchboard_gateway::serve::{ServeError, ServeOptions, prepare, run};
use switchboard_tool_runtime::ToolOutput;
use tokio_util::sync::CancellationToken;

#[derive(Debug)]
struct Sleeper;

#[async_trait]
impl Backend for Sleeper {
    async fn dispatch(&self, call: Dispatch) -> Result<Dispatched, BackendError> {
        let ms = call
            .invocation
            .arguments
            .get("sleep_ms")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => Ok(Dispatched {
                output: ToolOutput::structured(json!({"slept": ms})),
                unit_id: "u".into(),
            }),
            _ = call.cancel.cancelled() => Err(BackendError::Cancelled { unit_id: Some("u".into()) }),
            _ = tokio::time::sleep_until(call.deadline.instant()) => Err(BackendError::DeadlineExceeded {
                unit_id: Some("u".into()),
                timeout_seconds: call.tool.timeout_seconds,
            }),
        }
    }
}

fn catalog(grace: u64) -> String {
    format!(
        r#"
version: 1
gateway:
  limits: {{shutdown_grace_seconds: {grace}}}
tools:
  - name: sleep
    description: Sleeps.
    input_schema: {{type: object, properties: {{sleep_ms: {{type: integer}}}}}}
    backend: local
    local: {{command: [unused]}}
    timeout_seconds: 60
    allow: {{groups: [dev]}}
"#
    )
}

struct Running {
    _dir: tempfile::TempDir,
    url: String,
    token: String,
    shutdown: CancellationToken,
    server: tokio::task::JoinHandle<Result<(), ServeError>>,
    audit: std::path::PathBuf,
}

async fn start(grace: u64) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog_path = dir.path().join("catalog.yaml");
    std::fs::write(&catalog_path, catalog(grace)).expect("write catalog");
    let audit = dir.path().join("audit.jsonl");
    let opts = ServeOptions {
        catalog: catalog_path,
        listen: "127.0.0.1:0".parse().expect("addr"),
        dev: true,
        dev_key: dir.path().join("dev.pem"),
        audit_log: Some(audit.clone()),
        bindings: None,
        tools_off: vec![],
    };
    let backends = Backends::new().with(BackendKind::Local, Arc::new(Sleeper));
    let prepared = prepare(&opts, Some(backends)).await.expect("prepare");
    let addr = prepared.listener.local_addr().expect("addr");
    let url = format!("http://{addr}/mcp");
    let (key, _) = DevKey::load_or_create(&opts.dev_key).expect("key");
    let token = key
        .mint(&DevClaims::new(&url, "bob", vec!["dev".into()], 600))
        .expect("token");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(prepared, shutdown.clone()));
    Running {
        _dir: dir,
        url,
        token,
        shutdown,
        server,
        audit,
    }
}

async fn call(url: String, token: String, sleep_ms: u64) -> reqwest::Result<String> {
    rpc(
        &url,
        &token,
        "tools/call",
        json!({"name": "sleep", "arguments": {"sleep_ms": sleep_ms}}),
    )
    .await
}

/// A 2026-07-28 request of `method` with `params` (its `_meta` and headers added), as text.
async fn rpc(url: &str, token: &str, method: &str, params: Value) -> reqwest::Result<String> {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}});
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", method);
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        request = request.header("Mcp-Name", name.to_owned());
    }
    request
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await?
        .text()
        .await
}

#[tokio::test]
async fn dev_mode_refuses_a_non_loopback_listen_address() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog_path = dir.path().join("catalog.yaml");
    std::fs::write(&catalog_path, catalog(1)).expect("write");
    let opts = ServeOptions {
        catalog: catalog_path,
        listen: "0.0.0.0:0".parse().expect("addr"),
        dev: true,
        dev_key: dir.path().join("dev.pem"),
        audit_log: None,
        bindings: None,
        tools_off: vec![],
    };
    let err = prepare(
        &opts,
        Some(Backends::new().with(BackendKind::Local, Arc::new(Sleeper))),
    )
    .await
    .expect_err("must refuse");
    assert!(matches!(err, ServeError::DevNotLoopback(_)), "{err}");
    assert!(
        !dir.path().join("dev.pem").exists(),
        "no key is created for a refused start"
    );
}

#[tokio::test]
async fn no_auth_section_without_dev_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let catalog_path = dir.path().join("catalog.yaml");
    std::fs::write(&catalog_path, catalog(1)).expect("write");
    let opts = ServeOptions {
        catalog: catalog_path,
        listen: "127.0.0.1:0".parse().expect("addr"),
        dev: false,
        dev_key: dir.path().join("dev.pem"),
        audit_log: None,
        bindings: None,
        tools_off: vec![],
    };
    let err = prepare(&opts, None).await.expect_err("must refuse");
    assert!(err.to_string().contains("gateway.auth is missing"), "{err}");
}

#[tokio::test]
async fn shutdown_lets_a_running_call_finish_within_grace() {
    let r = start(10).await;
    let pending = tokio::spawn(call(r.url.clone(), r.token.clone(), 400));
    tokio::time::sleep(Duration::from_millis(100)).await;
    r.shutdown.cancel();
    let text = pending
        .await
        .expect("join")
        .expect("the running call is answered");
    assert!(text.contains(r#""slept":400"#), "{text}");
    tokio::time::timeout(Duration::from_secs(10), r.server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("clean exit");
    // after shutdown nothing listens any more
    assert!(
        reqwest::Client::new()
            .get(r.url.replace("/mcp", "/healthz"))
            .send()
            .await
            .is_err()
    );
    let audit = std::fs::read_to_string(&r.audit).expect("audit");
    assert!(audit.contains(r#""outcome":"ok""#), "{audit}");
}

#[tokio::test]
async fn shutdown_cancels_calls_that_outlive_the_grace_period() {
    let r = start(1).await;
    let pending = tokio::spawn(call(r.url.clone(), r.token.clone(), 30_000));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = std::time::Instant::now();
    r.shutdown.cancel();
    let text = pending.await.expect("join").expect("the call is answered");
    assert!(text.contains("shut down"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    tokio::time::timeout(Duration::from_secs(10), r.server)
        .await
        .expect("server stops")
        .expect("join")
        .expect("clean exit");
    let audit = std::fs::read_to_string(&r.audit).expect("audit");
    assert!(audit.contains(r#""outcome":"shutdown""#), "{audit}");
}

#[tokio::test]
async fn a_stateless_client_that_hangs_up_cancels_its_call() {
    let r = start(10).await;
    // The client gives up after 300 ms and drops the connection.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(300),
        call(r.url.clone(), r.token.clone(), 30_000),
    )
    .await;
    assert!(gave_up.is_err(), "the call should still be running");
    let started = std::time::Instant::now();
    let mut audit = String::new();
    while started.elapsed() < Duration::from_secs(5) {
        audit = std::fs::read_to_string(&r.audit).unwrap_or_default();
        if !audit.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(audit.contains(r#""outcome":"cancelled""#), "{audit}");
    r.shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), r.server).await;
}

/// A catalog whose one tool's program does not exist on this machine (as terraform_plan's
/// Terraform on a fresh machine).
const MISSING_PROGRAM: &str = r#"
version: 1
tools:
  - name: needs_terraform
    description: Needs a program this machine lacks.
    input_schema: {type: object}
    backend: local
    local: {command: [/nonexistent/terraform-here]}
    allow: {groups: [dev]}
"#;

fn options_off(dir: &std::path::Path, tools_off: Vec<(String, String)>) -> ServeOptions {
    let catalog_path = dir.join("catalog.yaml");
    std::fs::write(&catalog_path, MISSING_PROGRAM).expect("write");
    ServeOptions {
        catalog: catalog_path,
        listen: "127.0.0.1:0".parse().expect("addr"),
        dev: true,
        dev_key: dir.join("dev.pem"),
        audit_log: Some(dir.join("audit.jsonl")),
        bindings: None,
        tools_off,
    }
}

#[tokio::test]
async fn a_tool_turned_off_is_served_listed_and_answers_why_without_its_unit() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Without --tool-off the gateway refuses to start: the tool's program is missing.
    let err = prepare(&options_off(dir.path(), vec![]), None)
        .await
        .expect_err("missing program");
    assert!(
        err.to_string().contains("/nonexistent/terraform-here"),
        "{err}"
    );
    let why = "Terraform is not installed here; install it and restart".to_owned();
    let opts = options_off(dir.path(), vec![("needs_terraform".into(), why.clone())]);
    let prepared = prepare(&opts, None)
        .await
        .expect("starts with the tool off");
    let addr = prepared.listener.local_addr().expect("addr");
    let url = format!("http://{addr}/mcp");
    let (key, _) = DevKey::load_or_create(&opts.dev_key).expect("key");
    let token = key
        .mint(&DevClaims::new(&url, "bob", vec!["dev".into()], 600))
        .expect("token");
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(run(prepared, shutdown.clone()));
    let rpc = |method: &'static str, params: Value| {
        let (url, token) = (url.clone(), token.clone());
        async move {
            let text = rpc(&url, &token, method, params).await.expect("answer");
            crate::support::mcp::last_message(&text)
        }
    };
    let list = rpc("tools/list", json!({})).await;
    let description = list["result"]["tools"][0]["description"]
        .as_str()
        .expect("listed")
        .to_owned();
    assert!(description.contains(&why), "{description}");
    let answer = rpc(
        "tools/call",
        json!({"name": "needs_terraform", "arguments": {}}),
    )
    .await;
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    let text = answer["result"]["content"][0]["text"]
        .as_str()
        .expect("text");
    assert!(
        text.contains("turned off on this gateway") && text.contains(&why),
        "{text}"
    );
    shutdown.cancel();
    server.await.expect("join").expect("served");
    let audit = std::fs::read_to_string(dir.path().join("audit.jsonl")).expect("audit");
    assert!(audit.contains(r#""outcome":"turned_off""#), "{audit}");
}

#[tokio::test]
async fn turning_off_a_tool_the_catalog_lacks_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options_off(dir.path(), vec![("nonesuch".into(), "why".into())]);
    let err = prepare(&opts, None).await.expect_err("refused");
    assert!(
        matches!(err, ServeError::UnknownToolOff(ref n) if n == "nonesuch"),
        "{err}"
    );
}
