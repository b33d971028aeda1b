//! 200 concurrent sandboxed calls complete, and afterwards no sandbox process, mount
//! namespace, host mount or scratch entry is left (counted before and after). Its own test
//! binary, so that no other test's sandboxes run while it counts.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

use std::sync::Arc;
use std::time::Instant;

use switchboard_gateway::backend::Backend;
use switchboard_gateway::backend::local::LocalOptions;
use tokio_util::sync::CancellationToken;

#[path = "it/support/mod.rs"]
mod support;

use support::sandbox::{backend_with, census, census_settled, dispatch_for, structured, tools};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_calls_complete_and_leave_nothing() {
    let before = census();
    // All 200 at once: the running limit is raised to let them (its default refuses the rest).
    let options = LocalOptions {
        max_running: 200,
        ..LocalOptions::default()
    };
    let (backend, tools) = backend_with(tools(), options);
    let backend = Arc::new(backend);
    let started = Instant::now();
    let calls: Vec<_> = (0..200)
        .map(|i| {
            let (backend, tool) = (Arc::clone(&backend), Arc::clone(&tools[0]));
            tokio::spawn(async move {
                backend
                    .dispatch(dispatch_for(
                        &tool,
                        serde_json::json!({"message": format!("m{i}")}),
                        CancellationToken::new(),
                    ))
                    .await
            })
        })
        .collect();
    for (i, call) in calls.into_iter().enumerate() {
        let d = call.await.expect("task").expect("call succeeds");
        assert_eq!(
            structured(&d)["message"],
            serde_json::json!(format!("m{i}"))
        );
    }
    eprintln!("200 calls in {:?}", started.elapsed());
    assert_eq!(backend.in_flight(), 0);
    drop(backend);
    let after = census_settled(&before).await;
    assert_eq!(after, before, "something of the sandboxes was left behind");
}
