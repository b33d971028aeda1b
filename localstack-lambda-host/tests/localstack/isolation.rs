//! What the function cannot do: reach the network, exceed its memory or scratch, write its code.

use std::time::Duration;

use serde_json::json;

use crate::common::{Function, Spec, endpoint};

#[tokio::test]
async fn function_cannot_reach_a_canary_on_loopback() {
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("canary listens");
    let port = canary.local_addr().expect("address").port();
    let f = Function::create("canary", Spec::default()).await;
    let out = f
        .invoke("connect", json!({"host": "127.0.0.1", "port": port}))
        .await;
    let result = out.result();
    assert_eq!(result["connected"], false, "{result}");
    assert_eq!(result["interfaces"], json!(["lo"]), "{result}");
    let reached = tokio::time::timeout(Duration::from_millis(500), canary.accept()).await;
    assert!(reached.is_err(), "the canary was reached");
    f.delete().await;
}

#[tokio::test]
async fn function_cannot_reach_localstack_or_another_host() {
    let port: u16 = endpoint()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .expect("the endpoint has a port");
    let f = Function::create("nonet", Spec::default()).await;
    let local = f
        .invoke("connect", json!({"host": "127.0.0.1", "port": port}))
        .await;
    assert_eq!(local.result()["connected"], false, "{:?}", local.payload);
    let remote = f
        .invoke("connect", json!({"host": "192.0.2.1", "port": 443}))
        .await;
    assert_eq!(remote.result()["connected"], false, "{:?}", remote.payload);
    f.delete().await;
}

#[tokio::test]
async fn memory_beyond_the_functions_size_cannot_be_allocated() {
    let f = Function::create("memory", Spec::default()).await;
    let small = f.invoke("alloc", json!({"mb": 32})).await;
    assert_eq!(small.result()["allocated"], true, "{:?}", small.payload);
    let big = f.invoke("alloc", json!({"mb": 256})).await;
    assert_eq!(big.result()["allocated"], false, "{:?}", big.payload);
    f.delete().await;
}

#[tokio::test]
async fn tmp_is_capped_at_the_ephemeral_storage_size() {
    let f = Function::create("scratch", Spec::default()).await;
    let out = f.invoke("fill-tmp", json!({"mb": 600})).await;
    let result = out.result();
    let written = result["written_mb"].as_u64().unwrap_or(u64::MAX);
    assert!(
        written <= 512,
        "more than the 512 MiB of ephemeral storage: {result}"
    );
    assert!(
        result["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left")),
        "{result}"
    );
    f.delete().await;
}

#[tokio::test]
async fn the_code_is_read_only_and_tmp_is_writable() {
    let f = Function::create("readonly", Spec::default()).await;
    let out = f.invoke("state", json!({})).await;
    assert_eq!(out.result()["task_writable"], false);
    assert_eq!(out.result()["tmp_writable"], true);
    f.delete().await;
}

/// The Lambda host's sandbox runs under the same seccomp filter as the gateway's: socket families
/// that a network namespace does not isolate are refused (EPERM, the filter's answer), for
/// socket() and socketpair() alike, and the families tools use still open.
#[tokio::test]
async fn socket_families_outside_the_network_namespace_are_refused() {
    let f = Function::create("sockets", Spec::default()).await;
    for family in ["vsock", "alg", "key", "packet", "tipc", "xdp"] {
        let out = f.invoke("socket", json!({"family": family})).await;
        let result = out.result();
        assert_eq!(
            result["socket_errno"],
            json!(libc::EPERM),
            "{family}: {result}"
        );
        assert_eq!(
            result["socketpair_errno"],
            json!(libc::EPERM),
            "{family}: {result}"
        );
    }
    let unix = f.invoke("socket", json!({"family": "unix"})).await;
    assert_eq!(
        unix.result()["socket_errno"],
        json!(0),
        "{:?}",
        unix.payload
    );
    assert_eq!(
        unix.result()["socketpair_errno"],
        json!(0),
        "{:?}",
        unix.payload
    );
    let inet = f.invoke("socket", json!({"family": "inet"})).await;
    assert_eq!(
        inet.result()["socket_errno"],
        json!(0),
        "{:?}",
        inet.payload
    );
    f.delete().await;
}

/// The function's memory holds for all its processes together (the sandbox's control group),
/// not for each alone. The group holds memory size + ephemeral storage (128 + 512 MiB here: /tmp
/// is a tmpfs, charged to the group), and each process is bound to the memory size: eight
/// processes holding 100 MiB each at once, each within its own limit, cannot all live; the kernel
/// kills inside the group. Three holding 16 MiB each all exit normally.
#[tokio::test]
async fn memory_is_limited_for_all_the_functions_processes_together() {
    let f = Function::create("memgroup", Spec::default()).await;
    let small = f
        .invoke("alloc-together", json!({"processes": 3, "mb": 16}))
        .await;
    let result = small.result();
    assert_eq!(result["exited_ok"], 3, "{result}");
    let big = f
        .invoke("alloc-together", json!({"processes": 8, "mb": 100}))
        .await;
    let result = big.result();
    assert!(
        result["killed"].as_u64().is_some_and(|n| n >= 1),
        "eight processes of 100 MiB all lived in a function of 128 MiB and 512 MiB of /tmp: {result}"
    );
    f.delete().await;
}
