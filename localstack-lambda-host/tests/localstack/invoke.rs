//! Invocations: results, errors, timeouts, concurrency, logs, warm reuse.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Function, Package, Spec, logs};

#[tokio::test]
async fn a_tool_result_comes_back_as_the_invocation_result() {
    let f = Function::create("result", Spec::default()).await;
    let out = f
        .invoke("echo", json!({"message": "hello from the sandbox"}))
        .await;
    assert_eq!(out.result()["message"], "hello from the sandbox");
    assert_eq!(out.payload["isError"], false);
    f.delete().await;
}

#[tokio::test]
async fn the_reference_tools_package_serves_echo_in_lambda_mode() {
    let spec = Spec {
        package: Package::ReferenceTools,
        ..Spec::default()
    };
    let f = Function::create("package", spec).await;
    let out = f
        .invoke("echo", json!({"message": "from the package"}))
        .await;
    assert_eq!(out.result()["message"], "from the package");
    // A catalog name the package has no tool for is a tool error that names it.
    let out = f.invoke("no-such-tool", json!({})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    assert!(
        out.payload["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("\"no-such-tool\"")),
        "{out:?}"
    );
    f.delete().await;
}

#[tokio::test]
async fn a_tool_error_result_comes_back_as_function_error() {
    let f = Function::create("toolerror", Spec::default()).await;
    let out = f
        .invoke("fail", json!({"message": "the disk is on fire"}))
        .await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    assert_eq!(out.payload["errorType"], "ToolError", "{out:?}");
    assert_eq!(
        out.payload["errorMessage"], "the disk is on fire",
        "{out:?}"
    );
    f.delete().await;
}

#[tokio::test]
async fn a_handler_error_comes_back_as_function_error() {
    let f = Function::create("handlererror", Spec::default()).await;
    let out = f.invoke("echo", json!({"not_message": 1})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    assert_eq!(out.payload["errorType"], "ToolError", "{out:?}");
    assert!(
        out.payload["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("message")),
        "{out:?}"
    );
    f.delete().await;
}

#[tokio::test]
async fn an_init_error_comes_back_as_function_error() {
    let spec = Spec {
        variables: vec![("PROBE_FAIL_INIT", "1")],
        ..Spec::default()
    };
    let f = Function::create("initerror", spec).await;
    let out = f.invoke("echo", json!({"message": "never"})).await;
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    assert_eq!(out.payload["errorType"], "Runtime.InitError", "{out:?}");
    assert!(
        out.payload["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("PROBE_FAIL_INIT")),
        "{out:?}"
    );
    f.delete().await;
}

#[tokio::test]
async fn a_tool_that_sleeps_past_the_timeout_is_stopped_and_reported_as_a_timeout() {
    let spec = Spec {
        timeout_seconds: 2,
        ..Spec::default()
    };
    let f = Function::create("timeout", spec).await;
    let started = Instant::now();
    let out = f.invoke("sleep", json!({"seconds": 60})).await;
    let took = started.elapsed();
    assert_eq!(out.function_error.as_deref(), Some("Unhandled"), "{out:?}");
    let message = out.payload["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.ends_with("Task timed out after 2.00 seconds"),
        "{out:?}"
    );
    assert!(took < Duration::from_secs(15), "took {took:?}");
    f.delete().await;
}

#[tokio::test]
async fn the_environment_recovers_after_a_timeout() {
    let spec = Spec {
        timeout_seconds: 2,
        ..Spec::default()
    };
    let f = Function::create("recover", spec).await;
    let first = f.invoke("sleep", json!({"seconds": 60})).await;
    assert!(first.function_error.is_some(), "{first:?}");
    let again = f.invoke("echo", json!({"message": "back"})).await;
    assert_eq!(again.result()["message"], "back");
    f.delete().await;
}

#[tokio::test]
async fn twenty_concurrent_invocations_all_complete() {
    let f = Function::create("concurrent", Spec::default()).await;
    let calls = (0..20).map(|_| f.invoke("sleep", json!({"seconds": 2})));
    let results = futures::future::join_all(calls).await;
    let mut instances = std::collections::BTreeSet::new();
    for out in &results {
        assert_eq!(out.result()["slept"], 2, "{out:?}");
        instances.insert(out.result()["instance"].to_string());
    }
    assert!(
        instances.len() > 1,
        "20 overlapping calls ran in {} environment(s)",
        instances.len()
    );
    f.delete().await;
}

#[tokio::test]
async fn the_functions_output_is_readable_with_get_log_events() {
    let f = Function::create("logs", Spec::default()).await;
    let token = uuid::Uuid::new_v4().simple().to_string();
    f.invoke("log", json!({"token": token})).await.result();
    let logs = logs().await;
    let group = format!("/aws/lambda/{}", f.name);
    let mut seen = Vec::new();
    for _ in 0..60 {
        seen.clear();
        if let Ok(streams) = logs
            .describe_log_streams()
            .log_group_name(&group)
            .send()
            .await
        {
            for stream in streams.log_streams() {
                let Some(name) = stream.log_stream_name() else {
                    continue;
                };
                let events = logs
                    .get_log_events()
                    .log_group_name(&group)
                    .log_stream_name(name)
                    .start_from_head(true)
                    .send()
                    .await
                    .expect("GetLogEvents");
                seen.extend(
                    events
                        .events()
                        .iter()
                        .filter_map(|e| e.message().map(str::to_owned)),
                );
            }
        }
        let has = |needle: &str| seen.iter().any(|m| m.contains(needle));
        if has(&format!("probe stdout {token}"))
            && has(&format!("probe stderr {token}"))
            && has("REPORT RequestId:")
        {
            f.delete().await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the probe's output never reached {group}: {seen:?}");
}

#[tokio::test]
async fn two_invocations_in_a_row_reuse_one_warm_environment() {
    let f = Function::create("warm", Spec::default()).await;
    let first = f.invoke("state", json!({})).await;
    let second = f.invoke("state", json!({})).await;
    assert_eq!(first.result()["instance"], second.result()["instance"]);
    assert_eq!(first.result()["pid"], second.result()["pid"]);
    assert_eq!(first.result()["calls"], 1);
    assert_eq!(second.result()["calls"], 2);
    f.delete().await;
}

#[tokio::test]
async fn environment_variables_reach_the_function_and_localstacks_stay_out() {
    let spec = Spec {
        variables: vec![("PROBE_GREETING", "hello")],
        ..Spec::default()
    };
    let f = Function::create("env", spec).await;
    let out = f.invoke("state", json!({"env": "PROBE_GREETING"})).await;
    let state = out.result();
    assert_eq!(state["variable"], "hello");
    assert_eq!(state["runtime_api"], "127.0.0.1:9001");
    assert_eq!(state["localstack_endpoint_variable"], false);
    f.delete().await;
}

#[tokio::test]
async fn a_marker_and_a_stray_process_left_by_one_call_are_gone_in_the_next() {
    let f = Function::create("clean", Spec::default()).await;
    let litter = f.invoke("litter", json!({})).await;
    assert_eq!(litter.result()["marker"], true);
    assert_eq!(litter.result()["child"], true);
    let state = f.invoke("state", json!({})).await;
    let state = state.result();
    assert_eq!(state["calls"], 2, "the same environment served both calls");
    assert_eq!(state["marker"], false, "{state}");
    let others = state["other_processes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !others.iter().any(|p| p == "sleep" || p == "sh"),
        "processes left by the first call: {others:?}"
    );
    f.delete().await;
}
