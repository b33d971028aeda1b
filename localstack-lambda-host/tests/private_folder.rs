//! The host serves an invocation when its own binary, the function's code and its work folder
//! are under a `0700` folder (a checkout in root's home, a CI runner's private workspace), which
//! the sandbox's unprivileged uid cannot reach: as root, the host stages copies where it can
//! (`switchboard_sandbox::stage`), says so, and removes them when it exits.
//!
//! No LocalStack: the test plays LocalStack's side of the executor protocol itself (it takes the
//! callbacks on a loopback listener and sends `POST /invoke`), and the function is a Lambda
//! runtime in bash, so that plain `cargo test` runs it in seconds. It needs bubblewrap, as the
//! gateway's sandbox tests do.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::mpsc;

/// A Lambda runtime that answers each event with `{"echo": EVENT}`, speaking the Runtime API
/// over bash's `/dev/tcp` (one connection per request).
const BOOTSTRAP: &str = r#"#!/bin/bash
set -eu
host=${AWS_LAMBDA_RUNTIME_API%:*}
port=${AWS_LAMBDA_RUNTIME_API##*:}
request() { # METHOD PATH BODY: prints the answer, headers and body
  exec 3<>"/dev/tcp/$host/$port"
  printf '%s /2018-06-01/runtime/%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "$1" "$2" "$host" "${#3}" "$3" >&3
  cat <&3
  exec 3<&-
}
while :; do
  answer=$(request GET invocation/next "")
  id=$(printf '%s\n' "$answer" | tr -d '\r' | sed -n 's/^lambda-runtime-aws-request-id: *//Ip')
  event=${answer#*$'\r\n\r\n'}
  request POST "invocation/$id/response" "{\"echo\":$event}" >/dev/null
done
"#;

/// The test's stand-in for LocalStack: every callback, as (path, body).
async fn callbacks() -> (String, mpsc::UnboundedReceiver<(String, String)>) {
    async fn record(
        State(tx): State<mpsc::UnboundedSender<(String, String)>>,
        UrlPath(path): UrlPath<String>,
        body: String,
    ) -> &'static str {
        let _ = tx.send((path, body));
        "OK"
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let app = Router::new()
        .route("/_localstack_lambda/{*path}", axum::routing::post(record))
        .with_state(tx);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}/_localstack_lambda"), rx)
}

async fn next_callback(rx: &mut mpsc::UnboundedReceiver<(String, String)>) -> (String, String) {
    tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("no callback from the host within 30 s")
        .expect("the callback listener stopped")
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

fn stage_folders(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .expect("list the temporary folder")
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("switchboard-lambda-stage-"))
        })
        .collect()
}

fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_binary_code_and_work_folder_under_a_private_folder_serve_an_invocation() {
    let dir = tempfile::tempdir().expect("tempdir");
    chmod(dir.path(), 0o755);
    // The host's temporary folder, where its stage goes: others may pass through it.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    chmod(&tmp, 0o755);
    // The private folder: the host binary, the code and the work folder, as in a checkout.
    let private = dir.path().join("private");
    let host = private.join("bin/switchboard-localstack-lambda-host");
    let code = private.join("code");
    let work = private.join("work/envs/private-test");
    std::fs::create_dir_all(host.parent().expect("parent")).expect("mkdir");
    std::fs::create_dir_all(&code).expect("mkdir");
    std::fs::copy(
        env!("CARGO_BIN_EXE_switchboard-localstack-lambda-host"),
        &host,
    )
    .expect("copy the host");
    std::fs::write(code.join("bootstrap"), BOOTSTRAP).expect("write the bootstrap");
    chmod(&code.join("bootstrap"), 0o755);
    chmod(&private, 0o700);

    let (endpoint, mut rx) = callbacks().await;
    let runtime_id = "private-test";
    let config = serde_json::json!({
        "runtime_id": runtime_id,
        "function_name": "private",
        "function_version": "$LATEST",
        "runtime_endpoint": format!("{endpoint}/{runtime_id}"),
        "code_dir": code,
        "timeout_seconds": 10,
        "memory_mb": 128,
        "ephemeral_storage_mb": 16,
        "work_dir": work,
        // Shared by every run of this test on the machine, so that two never lease one uid; a
        // range of its own, apart from LocalStack's environments.
        "uid_lock_dir": std::env::temp_dir().join("switchboard-lambda-host-test-uids"),
        "host_uid_base": 1_790_000_000u32,
        "host_uid_count": 256,
    });
    let mut child = tokio::process::Command::new(&host)
        .args(["serve", "--function", "private", "--runtime-id", runtime_id])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the host");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin
        .write_all(format!("{config}\n").as_bytes())
        .await
        .expect("write the configuration");
    let mut stderr = child.stderr.take().expect("stderr");
    let log = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });
    let mut announced = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut announced)
        .await
        .expect("read the port");
    if announced.is_empty() {
        drop(stdin);
        panic!(
            "the host exited before it announced its port:\n{}",
            log.await.unwrap_or_default()
        );
    }
    let port = serde_json::from_str::<serde_json::Value>(&announced).expect("port line")["port"]
        .as_u64()
        .expect("a port");

    let (path, body) = next_callback(&mut rx).await;
    assert_eq!(
        path,
        format!("{runtime_id}/status/{runtime_id}/ready"),
        "{body}"
    );
    if is_root() {
        assert_eq!(
            stage_folders(&tmp).len(),
            1,
            "no stage folder while running"
        );
    }
    let invoke = serde_json::json!({
        "invoke-id": "request-1",
        "invoked-function-arn": "arn:aws:lambda:us-east-1:000000000000:function:private",
        "payload": r#"{"message":"from a private folder"}"#,
        "trace-id": "",
    });
    let status = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client")
        .post(format!("http://127.0.0.1:{port}/invoke"))
        .body(invoke.to_string())
        .send()
        .await
        .expect("POST /invoke")
        .status();
    assert!(status.is_success(), "POST /invoke answered {status}");
    let mut response = None;
    while response.is_none() {
        let (path, body) = next_callback(&mut rx).await;
        if path.ends_with("invocations/request-1/response") {
            response = Some(body);
        } else {
            assert!(
                path.ends_with("invocations/request-1/logs"),
                "{path}: {body}"
            );
        }
    }
    let response: serde_json::Value =
        serde_json::from_str(&response.unwrap_or_default()).expect("a JSON response");
    assert_eq!(
        response,
        serde_json::json!({"echo": {"message": "from a private folder"}})
    );

    drop(stdin);
    let exit = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .expect("the host did not stop within 15 s of its stdin closing")
        .expect("wait for the host");
    let log = log.await.unwrap_or_default();
    assert!(exit.success(), "the host exited with {exit}:\n{log}");
    assert_eq!(stage_folders(&tmp), Vec::<PathBuf>::new(), "{log}");
    assert!(!work.exists(), "the work folder outlived the host");
    if is_root() {
        for staged in [&host, &code] {
            let line = format!("staged a copy of {}", staged.display());
            assert!(log.contains(&line), "the log lacks {line:?}:\n{log}");
        }
        assert!(
            log.contains("the Runtime API's socket is in the stage folder"),
            "{log}"
        );
    } else {
        eprintln!(
            "not root: the sandbox runs under this uid, which reaches the private folder; the \
             staging this test is about is only exercised as root (as CI runs it)"
        );
    }
}
