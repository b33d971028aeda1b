//! The real `switchboard-tool` binary in container mode, against a local HTTP server that plays
//! the invocation bucket's presigned URLs: it fetches the invocation, runs the tool, stores one
//! `ToolOutput` and exits 0; a broken exchange exits non-zero without showing a signature.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SIGNATURE: &str = "X-Amz-Signature=0123456789abcdef";

/// What the fake bucket answers and what it was sent.
#[derive(Default)]
struct Bucket {
    /// Path → (status, body) answered to a GET.
    objects: BTreeMap<String, (u16, Vec<u8>)>,
    /// Path → body of every PUT.
    stored: BTreeMap<String, Vec<u8>>,
    /// Status answered to a PUT.
    put_status: u16,
}

/// Serves `bucket` on 127.0.0.1 until the process ends; returns the base URL.
fn serve(bucket: Arc<Mutex<Bucket>>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let method = parts.next().unwrap_or_default().to_owned();
            let target = parts.next().unwrap_or_default().to_owned();
            let path = target.split('?').next().unwrap_or_default().to_owned();
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).is_err() || header.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = header.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let (status, answer) = {
                let mut b = bucket.lock().expect("lock");
                match method.as_str() {
                    "GET" => b
                        .objects
                        .get(&path)
                        .cloned()
                        .unwrap_or((404, b"no such key".to_vec())),
                    "PUT" => {
                        b.stored.insert(path, body);
                        (b.put_status, Vec::new())
                    }
                    _ => (405, Vec::new()),
                }
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                answer.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&answer);
        }
    });
    base
}

fn deadline_ms(from_now: Duration) -> u64 {
    let at = SystemTime::now() + from_now;
    u64::try_from(
        at.duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_millis(),
    )
    .expect("fits")
}

fn invocation(tool: &str, arguments: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "invocationId": "inv-container-1", "tool": tool, "arguments": arguments,
        "deadlineUnixMs": deadline_ms(Duration::from_secs(30)),
    }))
    .expect("json")
}

fn bucket_with(path: &str, status: u16, body: Vec<u8>) -> Arc<Mutex<Bucket>> {
    let mut b = Bucket {
        put_status: 200,
        ..Bucket::default()
    };
    b.objects.insert(path.into(), (status, body));
    Arc::new(Mutex::new(b))
}

/// Runs the binary with the two URLs and a clean environment.
fn run(base: &str, get_path: &str, put_path: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchboard-tool"))
        .env_clear()
        .env(
            "SWITCHBOARD_INVOCATION_URL",
            format!("{base}{get_path}?X-Amz-Expires=30&{SIGNATURE}"),
        )
        .env(
            "SWITCHBOARD_RESULT_URL",
            format!("{base}{put_path}?X-Amz-Expires=30&{SIGNATURE}"),
        )
        .output()
        .expect("switchboard-tool runs")
}

fn stored(bucket: &Arc<Mutex<Bucket>>, path: &str) -> Option<serde_json::Value> {
    let b = bucket.lock().expect("lock");
    b.stored
        .get(path)
        .map(|body| serde_json::from_slice(body).expect("the stored result is JSON"))
}

#[test]
fn the_tool_runs_once_and_its_result_is_stored_at_the_result_url() {
    let bucket = bucket_with(
        "/invocations/i-1/invocation.json",
        200,
        invocation("echo", serde_json::json!({"message": "from the bucket"})),
    );
    let base = serve(Arc::clone(&bucket));
    let out = run(
        &base,
        "/invocations/i-1/invocation.json",
        "/invocations/i-1/result.json",
    );
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stored(&bucket, "/invocations/i-1/result.json").expect("a result was stored");
    assert_eq!(
        result["structuredContent"],
        serde_json::json!({"message": "from the bucket"})
    );
    assert_ne!(result["isError"], serde_json::json!(true));
    // Nothing on stdout: the result goes to the bucket only.
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_tool_failure_is_a_stored_error_result_and_exit_zero() {
    let bucket = bucket_with(
        "/inv",
        200,
        invocation("no-such-tool", serde_json::json!({})),
    );
    let base = serve(Arc::clone(&bucket));
    let out = run(&base, "/inv", "/res");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let result = stored(&bucket, "/res").expect("a result was stored");
    assert_eq!(result["isError"], serde_json::json!(true));
    assert!(result.to_string().contains("no-such-tool"), "{result}");
}

#[test]
fn a_refused_fetch_exits_nonzero_naming_the_object_but_not_the_signature() {
    let bucket = bucket_with("/inv", 403, b"AccessDenied".to_vec());
    let base = serve(Arc::clone(&bucket));
    let out = run(&base, "/inv", "/res");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("{base}/inv")) && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stderr.contains("0123456789abcdef"), "{stderr}");
    assert!(
        stored(&bucket, "/res").is_none(),
        "a result was stored without a call"
    );
}

#[test]
fn a_refused_store_exits_nonzero() {
    let bucket = bucket_with(
        "/inv",
        200,
        invocation("echo", serde_json::json!({"message": "m"})),
    );
    bucket.lock().expect("lock").put_status = 403;
    let base = serve(Arc::clone(&bucket));
    let out = run(&base, "/inv", "/res");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot store the result") && stderr.contains("403"),
        "{stderr}"
    );
    assert!(!stderr.contains("0123456789abcdef"), "{stderr}");
}

#[test]
fn an_invocation_over_the_limit_is_refused_before_the_tool_runs() {
    let huge = vec![b' '; 8 * 1024 * 1024 + 16];
    let bucket = bucket_with("/inv", 200, huge);
    let base = serve(Arc::clone(&bucket));
    let out = run(&base, "/inv", "/res");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("larger than"),
        "{:?}",
        out
    );
    assert!(stored(&bucket, "/res").is_none());
}

#[test]
fn without_the_result_url_the_unit_refuses_to_start() {
    let bucket = bucket_with(
        "/inv",
        200,
        invocation("echo", serde_json::json!({"message": "m"})),
    );
    let base = serve(Arc::clone(&bucket));
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard-tool"))
        .env_clear()
        .env("SWITCHBOARD_INVOCATION_URL", format!("{base}/inv"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_RESULT_URL is not set"));
}
