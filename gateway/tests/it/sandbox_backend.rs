//! The local backend driven directly (no HTTP): results, identity, deadline, cancellation,
//! shutdown and output caps.
//!
//! Needs bubblewrap and the tool-runtime binaries built for the same profile
//! (`scripts/build`); a missing one fails the test with that advice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchboard_gateway::backend::local::LocalOptions;
use switchboard_gateway::backend::{Backend, BackendError};
use tokio_util::sync::CancellationToken;

use crate::support::sandbox;
use crate::support::sandbox::{
    backend, backend_with, call_ok, dispatch_for, fresh_tool, structured, tools, until_prepared,
};

#[tokio::test]
async fn echo_answers_from_a_sandbox() {
    let (backend, tools) = backend();
    let d = backend
        .dispatch(dispatch_for(
            &tools[0],
            serde_json::json!({"message": "hello"}),
            CancellationToken::new(),
        ))
        .await
        .expect("echo runs");
    assert_eq!(structured(&d), &serde_json::json!({"message": "hello"}));
    assert!(d.unit_id.starts_with("sbx-"), "{}", d.unit_id);
    assert!(!d.output.is_error);
}

#[tokio::test]
async fn the_tool_runs_under_its_own_uid_with_a_clean_environment() {
    let (backend, tools) = backend();
    let d = backend
        .dispatch(dispatch_for(
            &tools[1],
            serde_json::json!({"attempt": "whoami"}),
            CancellationToken::new(),
        ))
        .await
        .expect("probe runs");
    assert_eq!(
        structured(&d)["uid"],
        serde_json::json!(10_001),
        "{:?}",
        structured(&d)
    );
    assert_eq!(
        structured(&d)["dev_null"],
        serde_json::json!(true),
        "{:?}",
        structured(&d)
    );
    assert_eq!(
        structured(&d)["shm"],
        serde_json::json!(true),
        "{:?}",
        structured(&d)
    );
    let d = backend
        .dispatch(dispatch_for(
            &tools[1],
            serde_json::json!({"attempt": "find_env", "needle": "CARGO"}),
            CancellationToken::new(),
        ))
        .await
        .expect("probe runs");
    assert_eq!(
        structured(&d)["escaped"],
        serde_json::json!(false),
        "{:?}",
        structured(&d)
    );
}

#[tokio::test]
async fn the_deadline_kills_a_spinning_tool() {
    let (backend, tools) = backend();
    let started = Instant::now();
    let e = backend
        .dispatch(dispatch_for(
            &tools[1],
            serde_json::json!({"attempt": "spin"}),
            CancellationToken::new(),
        ))
        .await
        .expect_err("must be stopped");
    assert!(
        matches!(
            e,
            BackendError::DeadlineExceeded {
                timeout_seconds: 2,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.unit_id().is_some());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cancellation_kills_the_sandbox() {
    let (backend, tools) = backend();
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let e = backend
        .dispatch(dispatch_for(
            &tools[2],
            serde_json::json!({"attempt": "spin"}),
            cancel,
        ))
        .await
        .expect_err("must be cancelled");
    assert!(matches!(e, BackendError::Cancelled { .. }), "{e}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn shutdown_kills_running_sandboxes() {
    let (backend, tools) = backend();
    let backend = Arc::new(backend);
    let running = {
        let (backend, tool) = (Arc::clone(&backend), Arc::clone(&tools[2]));
        tokio::spawn(async move {
            backend
                .dispatch(dispatch_for(
                    &tool,
                    serde_json::json!({"attempt": "spin"}),
                    CancellationToken::new(),
                ))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(backend.in_flight(), 1);
    backend.shutdown().await;
    assert_eq!(backend.in_flight(), 0);
    let e = running.await.expect("task").expect_err("must be stopped");
    assert!(matches!(e, BackendError::Cancelled { .. }), "{e}");
}

#[tokio::test]
async fn calls_past_the_running_limit_are_refused_at_once_as_busy() {
    let options = LocalOptions {
        max_running: 1,
        ..LocalOptions::default()
    };
    let (backend, tools) = backend_with(tools(), options);
    let backend = Arc::new(backend);
    let spinning = {
        let (backend, tool) = (Arc::clone(&backend), Arc::clone(&tools[2]));
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            backend
                .dispatch(dispatch_for(
                    &tool,
                    serde_json::json!({"attempt": "spin"}),
                    cancel,
                ))
                .await
        });
        (task, stop)
    };
    let until = Instant::now() + Duration::from_secs(5);
    while backend.in_flight() == 0 {
        assert!(Instant::now() < until, "the first call never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let started = Instant::now();
    let e = backend
        .dispatch(dispatch_for(
            &tools[0],
            serde_json::json!({"message": "one too many"}),
            CancellationToken::new(),
        ))
        .await
        .expect_err("must be refused");
    assert!(matches!(e, BackendError::Busy { .. }), "{e}");
    assert_eq!(e.outcome(), "busy");
    assert!(e.to_string().contains("limit of 1 sandboxes"), "{e}");
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "{:?}",
        started.elapsed()
    );
    spinning.1.cancel();
    let _ = spinning.0.await;
    // The slot is free again.
    let d = backend
        .dispatch(dispatch_for(
            &tools[0],
            serde_json::json!({"message": "now"}),
            CancellationToken::new(),
        ))
        .await
        .expect("runs once the first call is gone");
    assert_eq!(structured(&d)["message"], serde_json::json!("now"));
}

#[tokio::test]
async fn a_prepared_sandbox_serves_one_call_and_is_replaced() {
    let (backend, tools) = backend_with(vec![fresh_tool(2)], LocalOptions::default());
    assert_eq!(until_prepared(&backend, "fresh", 2).await, (2, 2));
    for call in 0..3 {
        // The replacement of the last call's sandbox is started once that call ended.
        assert_eq!(until_prepared(&backend, "fresh", 2).await, (2, 2 + call));
        let d = call_ok(&backend, &tools[0], serde_json::json!({})).await;
        // Never a scratch another call wrote in, and started before the call was known.
        assert_eq!(structured(&d)["state"], serde_json::json!("fresh"), "{d:?}");
        assert_eq!(
            structured(&d)["env_invocation"],
            serde_json::json!("none"),
            "{d:?}"
        );
    }
    // Each call's sandbox was replaced by a new one.
    assert_eq!(until_prepared(&backend, "fresh", 2).await, (2, 5));
}

#[tokio::test]
async fn a_call_that_finds_no_prepared_sandbox_starts_its_own() {
    let (backend, tools) = backend_with(vec![fresh_tool(1)], LocalOptions::default());
    let backend = Arc::new(backend);
    assert_eq!(until_prepared(&backend, "fresh", 1).await.0, 1);
    let calls: Vec<_> = (0..4)
        .map(|_| {
            let (backend, tool) = (Arc::clone(&backend), Arc::clone(&tools[0]));
            tokio::spawn(async move {
                backend
                    .dispatch(dispatch_for(
                        &tool,
                        serde_json::json!({}),
                        CancellationToken::new(),
                    ))
                    .await
            })
        })
        .collect();
    let mut envs = Vec::new();
    for call in calls {
        let d = call.await.expect("task").expect("the tool answers");
        assert_eq!(structured(&d)["state"], serde_json::json!("fresh"), "{d:?}");
        envs.push(structured(&d)["env_invocation"].clone());
    }
    // At most one prepared sandbox was waiting: the others started their own, with the call's id.
    let prepared = envs
        .iter()
        .filter(|e| **e == serde_json::json!("none"))
        .count();
    assert!((1..=2).contains(&prepared), "{envs:?}");
}

#[tokio::test]
async fn a_flood_on_stdout_is_cut_off() {
    let (backend, tools) = backend();
    let e = backend
        .dispatch(dispatch_for(
            &tools[2],
            serde_json::json!({"attempt": "stdout_flood", "mb": 1024}),
            CancellationToken::new(),
        ))
        .await
        .expect_err("must be refused");
    assert!(matches!(e, BackendError::Unit { .. }), "{e}");
    assert!(e.to_string().contains("stdout"), "{e}");
}

#[test]
fn a_machine_where_bubblewrap_fails_is_refused_at_start_up() {
    let options = switchboard_gateway::backend::local::LocalOptions {
        bwrap: Some("/bin/false".into()),
        ..Default::default()
    };
    let e = switchboard_gateway::backend::local::LocalBackend::with_options(
        std::path::Path::new("/"),
        &sandbox::tools(),
        options,
    )
    .expect_err("must be refused");
    assert!(e.to_string().contains("cannot start a sandbox"), "{e}");
}

#[tokio::test]
async fn shutdown_removes_the_endpoint_sockets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let runtime = dir.path().join("rt");
    let mut tools = sandbox::tools();
    tools[1].endpoints = vec![switchboard_gateway::catalog::Endpoint::Sts];
    let options = switchboard_gateway::backend::local::LocalOptions {
        runtime_dir: Some(runtime.clone()),
        ..Default::default()
    };
    let backend = switchboard_gateway::backend::local::LocalBackend::with_options(
        std::path::Path::new("/"),
        &tools,
        options,
    )
    .expect("backend starts");
    assert!(runtime.join("probe.sock").exists());
    backend.shutdown().await;
    assert!(
        !runtime.exists(),
        "the socket folder is left after shutdown"
    );
}

/// A shell tool that reads its invocation, sleeps `seconds`, and answers `slept`; `prepared`
/// sandboxes are kept started ahead of its calls.
fn sleeper(
    name: &str,
    seconds: u32,
    timeout_seconds: u32,
    prepared: u32,
) -> switchboard_gateway::catalog::Tool {
    let script = format!(
        r#"read -r invocation; sleep {seconds}; printf '{{"content":[{{"type":"text","text":"slept"}}],"structuredContent":{{"slept":{seconds}}},"isError":false}}\n'"#
    );
    let mut tool = sandbox::tool(
        name,
        vec!["/bin/sh".into(), "-c".into(), script],
        timeout_seconds,
    );
    if let Some(local) = tool.local.as_mut() {
        local.prepared = prepared;
    }
    tool
}

/// The runtime ends a blocking thread after 10 s idle: a sandbox forked from one, and killed
/// with it (its parent-death signal), would end about 10 s into its call.
const LONGER_THAN_AN_IDLE_THREAD: u32 = 30;

#[tokio::test]
async fn a_call_longer_than_an_idle_threads_life_runs_to_its_end() {
    let (backend, tools) = backend_with(
        vec![sleeper("long", LONGER_THAN_AN_IDLE_THREAD, 60, 0)],
        LocalOptions::default(),
    );
    let started = Instant::now();
    let d = call_ok(&backend, &tools[0], serde_json::json!({})).await;
    assert_eq!(
        structured(&d)["slept"],
        serde_json::json!(LONGER_THAN_AN_IDLE_THREAD)
    );
    assert!(started.elapsed() >= Duration::from_secs(LONGER_THAN_AN_IDLE_THREAD.into()));
    backend.shutdown().await;
}

#[tokio::test]
async fn a_prepared_sandbox_serves_a_call_longer_than_an_idle_threads_life() {
    let (backend, tools) = backend_with(
        vec![sleeper("long-prepared", LONGER_THAN_AN_IDLE_THREAD, 60, 1)],
        LocalOptions::default(),
    );
    assert_eq!(until_prepared(&backend, "long-prepared", 1).await.0, 1);
    let d = call_ok(&backend, &tools[0], serde_json::json!({})).await;
    assert_eq!(
        structured(&d)["slept"],
        serde_json::json!(LONGER_THAN_AN_IDLE_THREAD)
    );
    // The call was served by the sandbox started ahead of it, which then was replaced.
    assert!(until_prepared(&backend, "long-prepared", 1).await.1 >= 2);
    // Its replacement is stopped and its control groups removed before the test ends.
    backend.shutdown().await;
}

#[tokio::test]
async fn a_call_past_its_timeout_gets_the_deadline_error_within_half_a_second() {
    let (backend, tools) = backend_with(
        vec![sleeper("overrun", LONGER_THAN_AN_IDLE_THREAD, 3, 0)],
        LocalOptions::default(),
    );
    let started = Instant::now();
    let e = backend
        .dispatch(dispatch_for(
            &tools[0],
            serde_json::json!({}),
            CancellationToken::new(),
        ))
        .await
        .expect_err("must be stopped at its deadline");
    let took = started.elapsed();
    assert!(
        matches!(
            e,
            BackendError::DeadlineExceeded {
                timeout_seconds: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3_500),
        "{took:?}"
    );
    backend.shutdown().await;
}
