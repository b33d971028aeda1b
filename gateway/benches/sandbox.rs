//! Benchmark of the local sandbox (not a test): prints p50/p99 of
//! - a plain fork+exec of `switchboard-tool echo` (invocation on stdin, result on stdout);
//! - the bare sandbox: `LocalBackend::dispatch` of the same call, spawn to exit;
//! - a sandboxed echo call end to end: HTTP POST /mcp to `switchboard serve --dev`, JSON-RPC
//!   `tools/call`, answer.
//!
//! `cargo bench -p switchboard-gateway --bench sandbox` (builds the tool binaries it needs with
//! `cargo build --release -p switchboard-tool-runtime` first). `SANDBOX_BENCH_CALLS` sets the
//! number of calls per measurement (default 300). Targets on a 2-core machine: end-to-end p50 at
//! most 10 ms and p99 at most 25 ms; sandbox spawn-to-exit within 5 ms of the plain fork+exec.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]
#![allow(clippy::print_stdout)] // a benchmark reports on stdout

#[path = "../tests/it/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_gateway::backend::Backend;
use tokio_util::sync::CancellationToken;

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a rank in 0..len, q in [0, 1]"
)]
fn percentiles(name: &str, mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1000.0
    };
    let (p50, p99) = (at(0.50), at(0.99));
    println!(
        "{name:<44} n={:<5} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms",
        samples.len()
    );
    (p50, p99)
}

fn invocation_json() -> Vec<u8> {
    let deadline = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| switchboard_gateway::deadline::millis(d) + 60_000)
        .unwrap_or(u64::MAX);
    json!({"invocationId": "bench", "tool": "echo", "arguments": {"message": "hi"},
           "deadlineUnixMs": deadline})
    .to_string()
    .into_bytes()
}

fn plain_fork_exec(n: usize) -> Vec<Duration> {
    let exe = support::sandbox::tool_bin("switchboard-tool");
    let input = invocation_json();
    (0..n)
        .map(|_| {
            let started = Instant::now();
            let mut child = Command::new(&exe)
                .arg("echo")
                .env_clear()
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawn echo");
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(&input)
                .expect("write");
            let out = child.wait_with_output().expect("wait");
            assert!(out.status.success() && !out.stdout.is_empty());
            started.elapsed()
        })
        .collect()
}

async fn sandbox_dispatch(n: usize) -> Vec<Duration> {
    let (backend, tools) = support::sandbox::backend();
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let call = support::sandbox::dispatch_for(
            &tools[0],
            json!({"message": "hi"}),
            CancellationToken::new(),
        );
        let started = Instant::now();
        let d = backend.dispatch(call).await.expect("echo in a sandbox");
        samples.push(started.elapsed());
        assert!(!d.output.is_error);
    }
    samples
}

async fn end_to_end(n: usize) -> Vec<Duration> {
    let dir = tempfile::tempdir().expect("tempdir");
    let echo = support::sandbox::tool_bin("switchboard-tool");
    let catalog = format!(
        "version: 1\ntools:\n  - name: echo\n    description: Echo.\n    input_schema: {{type: object, \
         properties: {{message: {{type: string}}}}, required: [message]}}\n    backend: local\n    \
         local: {{command: [\"{}\", echo]}}\n    allow: {{groups: [dev]}}\n",
        echo.display()
    );
    std::fs::write(dir.path().join("catalog.yaml"), catalog).expect("catalog");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let key = dir.path().join("key.pem");
    let mut gateway = Command::new(bin);
    gateway
        .args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--catalog")
        .arg(dir.path().join("catalog.yaml"))
        .arg("--dev-key")
        .arg(&key)
        .arg("--audit-log")
        .arg(dir.path().join("audit.log"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("gateway.log")).expect("log"));
    support::process::killed_with_starting_thread(&mut gateway);
    let mut gateway = gateway.spawn().expect("start the gateway");
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let until = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{url}/healthz")).send().await.is_err() {
        assert!(
            Instant::now() < until,
            "the gateway did not start: {}",
            std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Only now: `serve --dev` has created the dev key, which `dev-token` must not race.
    let token = Command::new(bin)
        .args(["dev-token", "--sub", "bench", "--group", "dev"])
        .arg("--audience")
        .arg(format!("{url}/mcp"))
        .arg("--dev-key")
        .arg(&key)
        .output()
        .expect("dev-token");
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "echo", "arguments": {"message": "hi"},
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientInfo": {"name": "bench", "version": "1"},
                  "io.modelcontextprotocol/clientCapabilities": {}}}})
    .to_string();
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 10 {
        let started = Instant::now();
        let text = client
            .post(format!("{url}/mcp"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2026-07-28")
            .header("Mcp-Method", "tools/call")
            .header("Mcp-Name", "echo")
            .body(body.clone())
            .send()
            .await
            .expect("post")
            .text()
            .await
            .expect("body");
        let elapsed = started.elapsed();
        assert!(text.contains("\"message\":\"hi\""), "{text}");
        if i >= 10 {
            samples.push(elapsed); // the first calls warm the connection pool
        }
    }
    let _ = gateway.kill();
    let _ = gateway.wait();
    samples
}

fn main() {
    let n: usize = std::env::var("SANDBOX_BENCH_CALLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "sandbox benchmark ({} cores)",
        std::thread::available_parallelism().map_or(0, |p| p.get())
    );
    let (plain, _) = percentiles(
        "plain fork+exec of switchboard-tool echo",
        plain_fork_exec(n),
    );
    let (sandboxed, _) = percentiles(
        "sandbox spawn-to-exit (LocalBackend::dispatch)",
        runtime.block_on(sandbox_dispatch(n)),
    );
    let (e2e50, e2e99) = percentiles(
        "end to end: HTTP tools/call echo",
        runtime.block_on(end_to_end(n)),
    );
    println!(
        "sandbox overhead over plain fork+exec (p50): {:.2} ms (target <= 5 ms)",
        sandboxed - plain
    );
    println!("end to end p50 {e2e50:.2} ms (target <= 10 ms), p99 {e2e99:.2} ms (target <= 25 ms)");
}
