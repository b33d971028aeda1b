//! Environments end with their function.

use std::time::Duration;

use serde_json::json;

use crate::common::{Function, Spec, processes_mentioning};

/// The runtime ids of the hosts serving `function`.
fn runtime_ids_of(function: &str) -> Vec<String> {
    processes_mentioning(&format!("--function {function} "))
        .into_iter()
        .filter_map(|(_, cmdline)| {
            let mut words = cmdline.split_whitespace();
            words.find(|w| *w == "--runtime-id")?;
            words.next().map(str::to_owned)
        })
        .collect()
}

#[tokio::test]
async fn deleting_the_function_stops_its_environments() {
    let f = Function::create("delete", Spec::default()).await;
    f.invoke("litter", json!({})).await.result();
    let name = f.name.clone();
    let ids = runtime_ids_of(&name);
    assert!(!ids.is_empty(), "no host serves {name}");
    // The sandbox's processes name the environment's folder, which holds the runtime id.
    assert!(
        ids.iter().all(|id| processes_mentioning(id).len() >= 2),
        "each environment has a host and a sandbox"
    );
    f.delete().await;
    for _ in 0..60 {
        let left: Vec<_> = ids.iter().flat_map(|id| processes_mentioning(id)).collect();
        if left.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let left: Vec<_> = ids.iter().flat_map(|id| processes_mentioning(id)).collect();
    panic!("processes of {name} still run after DeleteFunction: {left:?}");
}
