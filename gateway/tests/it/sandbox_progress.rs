//! Progress and rich content from a real sandboxed unit: the conformance fixture tool
//! (`tests/mcp/fixtures/conformance-tool`, a shell script) run by the local backend.
//!
//! Needs bubblewrap; the script must sit in folders other users can read when the tests run as
//! root (as the gateway needs for any tool).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_gateway::backend::local::{LocalBackend, LocalOptions};
use switchboard_gateway::backend::{Backend, Progress};
use switchboard_gateway::catalog::Tool;
use switchboard_tool_runtime::{ContentItem, ResourceContents};
use tokio_util::sync::CancellationToken;

use crate::support::sandbox::{dispatch_for, tool};

const PNG: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";

fn fixture() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/mcp/fixtures/conformance-tool")
        .canonicalize()
        .expect("tests/mcp/fixtures/conformance-tool exists")
        .display()
        .to_string()
}

fn backend(modes: &[&str]) -> (Arc<LocalBackend>, Vec<Arc<Tool>>) {
    let tools: Vec<Tool> = modes
        .iter()
        .map(|mode| tool(mode, vec![fixture(), (*mode).to_owned()], 10))
        .collect();
    let backend =
        LocalBackend::with_options(std::path::Path::new("/"), &tools, LocalOptions::default())
            .expect("backend starts");
    (Arc::new(backend), tools.into_iter().map(Arc::new).collect())
}

#[tokio::test]
async fn progress_streams_in_order_before_the_result() {
    let (backend, tools) = backend(&["progress"]);
    let mut call = dispatch_for(&tools[0], serde_json::json!({}), CancellationToken::new());
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Progress>(16);
    call.progress = tx;
    let running = {
        let backend = Arc::clone(&backend);
        tokio::spawn(async move { backend.dispatch(call).await })
    };
    // The first report arrives while the unit still runs (it sleeps twice after it).
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a report within 10 s")
        .expect("a report");
    assert!(
        !running.is_finished(),
        "the first report came only after the call had ended"
    );
    let dispatched = running.await.expect("task").expect("the call runs");
    // The backend has returned: every report is already in the channel.
    let mut reports = vec![first];
    while let Ok(p) = rx.try_recv() {
        reports.push(p);
    }
    let values: Vec<(f64, Option<f64>)> = reports.iter().map(|p| (p.progress, p.total)).collect();
    assert_eq!(
        values,
        vec![
            (0.0, Some(100.0)),
            (50.0, Some(100.0)),
            (100.0, Some(100.0))
        ]
    );
    assert_eq!(reports[1].message.as_deref(), Some("halfway"));
    assert_eq!(
        dispatched.output.content,
        vec![ContentItem::text("Progress test completed")]
    );
    assert!(!dispatched.output.is_error);
}

#[tokio::test]
async fn a_unit_returns_images_and_embedded_resources() {
    let (backend, tools) = backend(&["image", "mixed"]);
    let d = backend
        .dispatch(dispatch_for(
            &tools[0],
            serde_json::json!({}),
            CancellationToken::new(),
        ))
        .await
        .expect("the call runs");
    assert_eq!(
        d.output.content,
        vec![ContentItem::Image {
            data: PNG.into(),
            mime_type: "image/png".into()
        }]
    );
    let d = backend
        .dispatch(dispatch_for(
            &tools[1],
            serde_json::json!({}),
            CancellationToken::new(),
        ))
        .await
        .expect("the call runs");
    assert_eq!(d.output.content.len(), 3, "{:?}", d.output.content);
    assert_eq!(
        d.output.content[2],
        ContentItem::Resource {
            resource: ResourceContents::Text {
                uri: "test://mixed-content-resource".into(),
                mime_type: Some("application/json".into()),
                text: r#"{"test":"data","value":123}"#.into(),
            }
        }
    );
}
