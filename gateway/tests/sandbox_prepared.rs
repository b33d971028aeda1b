//! Prepared sandboxes (a tool's `local.prepared`) leave nothing behind: after calls and a
//! shutdown, no sandbox process, namespace, mount, scratch entry or control group is left
//! (counted before and after). Its own test binary, so that no other test's sandboxes run
//! while it counts.
#![allow(
    clippy::expect_used,
    reason = "test code: a failed expectation is the test failing, with its message"
)]

use switchboard_gateway::backend::Backend;
use switchboard_gateway::backend::local::LocalOptions;

#[path = "it/support/mod.rs"]
mod support;

use support::sandbox::{
    backend_with, call_ok, census, census_settled, fresh_tool, structured, until_prepared,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_clears_the_prepared_sandboxes_and_leaves_nothing() {
    let before = census();
    let (backend, tools) = backend_with(vec![fresh_tool(3)], LocalOptions::default());
    assert_eq!(until_prepared(&backend, "fresh", 3).await.0, 3);
    for _ in 0..2 {
        let d = call_ok(&backend, &tools[0], serde_json::json!({})).await;
        assert_eq!(structured(&d)["state"], serde_json::json!("fresh"));
    }
    assert_eq!(until_prepared(&backend, "fresh", 3).await.0, 3);
    assert_ne!(census(), before, "the prepared sandboxes should be running");
    backend.shutdown().await;
    assert_eq!(backend.prepared_sandboxes("fresh").0, 0);
    drop(backend);
    assert_eq!(
        census_settled(&before).await,
        before,
        "something of the prepared sandboxes was left behind"
    );
}
