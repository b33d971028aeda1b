//! Sandboxes of the local backend: tools, backends, dispatches and the host census.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_gateway::auth::Caller;
use switchboard_gateway::backend::local::{LocalBackend, LocalOptions};
use switchboard_gateway::backend::{Dispatch, Dispatched};
use switchboard_gateway::catalog::Tool;
use switchboard_gateway::deadline::Deadline;
use switchboard_tool_runtime::Invocation;
use tokio_util::sync::CancellationToken;

/// A binary of the tool-runtime crate, next to this test's profile folder.
pub fn tool_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = profile.join(name);
    assert!(
        bin.is_file(),
        "{} is missing: build it first (scripts/build: switchboard-tool-runtime and switchboard-test-tools, with this profile)",
        bin.display()
    );
    bin
}

pub fn tool(name: &str, command: Vec<String>, timeout_seconds: u32) -> Tool {
    serde_json::from_value(serde_json::json!({
        "name": name, "description": "test", "input_schema": {"type": "object"},
        "backend": "local", "allow": {"groups": ["dev"]},
        "local": {"command": command},
        "timeout_seconds": timeout_seconds, "memory_mb": 128, "ephemeral_storage_mb": 16,
    }))
    .expect("valid tool")
}

pub fn tools() -> Vec<Tool> {
    let echo = tool_bin("switchboard-tool").display().to_string();
    let probe = tool_bin("switchboard-escape-probe").display().to_string();
    vec![
        tool("echo", vec![echo, "echo".into()], 10),
        tool("probe", vec![probe.clone()], 2),
        tool("slow-probe", vec![probe], 30),
    ]
}

pub fn backend() -> (LocalBackend, Vec<Arc<Tool>>) {
    backend_with(tools(), LocalOptions::default())
}

pub fn backend_with(tools: Vec<Tool>, options: LocalOptions) -> (LocalBackend, Vec<Arc<Tool>>) {
    let backend = LocalBackend::with_options(std::path::Path::new("/"), &tools, options)
        .expect("backend starts");
    (backend, tools.into_iter().map(Arc::new).collect())
}

/// A shell tool with `prepared` sandboxes that says whether its scratch was used before
/// (`state`: `fresh` or `reused`, and it marks it used) and what `SWITCHBOARD_INVOCATION_ID` its
/// environment holds (`none` in a sandbox started before its call).
pub fn fresh_tool(prepared: u32) -> Tool {
    let script = r#"read -r invocation
if [ -e /tmp/used ]; then state=reused; else state=fresh; fi
: > /tmp/used
printf '{"content":[{"type":"text","text":"%s"}],"structuredContent":{"state":"%s","env_invocation":"%s"},"isError":false}\n' "$state" "$state" "${SWITCHBOARD_INVOCATION_ID:-none}""#;
    let mut tool = tool(
        "fresh",
        vec!["/bin/sh".into(), "-c".into(), script.into()],
        10,
    );
    if let Some(local) = tool.local.as_mut() {
        local.prepared = prepared;
    }
    tool
}

/// Waits (up to 10 s) until `tool` has `waiting` prepared sandboxes waiting; answers
/// (waiting, started so far).
pub async fn until_prepared(backend: &LocalBackend, tool: &str, waiting: usize) -> (usize, usize) {
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = backend.prepared_sandboxes(tool);
        if now.0 == waiting || std::time::Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub fn dispatch_for(
    tool: &Arc<Tool>,
    arguments: serde_json::Value,
    cancel: CancellationToken,
) -> Dispatch {
    // The deadline the gateway would give the call: the tool's timeout from now.
    let deadline = Deadline::after(Duration::from_secs(u64::from(tool.timeout_seconds)));
    let invocation: Invocation = serde_json::from_value(serde_json::json!({
        "invocationId": uuid::Uuid::new_v4().to_string(), "tool": tool.name,
        "arguments": arguments, "deadlineUnixMs": deadline.unix_ms(),
    }))
    .expect("valid invocation");
    let (progress, _) = tokio::sync::mpsc::channel(1);
    Dispatch {
        invocation,
        tool: Arc::clone(tool),
        caller: Caller {
            subject: "t".into(),
            tenant: None,
            groups: vec!["dev".into()],
            scopes: vec![],
        },
        deadline,
        cancel,
        progress,
        span: tracing::Span::none(),
        client_traceparent: None,
    }
}

/// Runs one call of `tool` that must succeed.
pub async fn call_ok(
    backend: &LocalBackend,
    tool: &Arc<Tool>,
    arguments: serde_json::Value,
) -> Dispatched {
    use switchboard_gateway::backend::Backend as _;
    backend
        .dispatch(dispatch_for(tool, arguments, CancellationToken::new()))
        .await
        .expect("the tool answers")
}

pub fn structured(d: &Dispatched) -> &serde_json::Value {
    d.output
        .structured_content
        .as_ref()
        .expect("structured content")
}

/// Processes whose real uid is in the backend's default sandbox range, and bwrap processes.
pub fn sandbox_processes() -> usize {
    let base = LocalOptions::default().host_uid_base;
    let range = base..base + LocalOptions::default().max_sandboxes;
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
        })
        .filter(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let uid = status
                .lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().next()?.parse::<u32>().ok());
            let name = status.lines().next().unwrap_or_default();
            uid.is_some_and(|u| range.contains(&u)) || name.ends_with("\tbwrap")
        })
        .count()
}

/// What a sandbox could leave behind on the host, counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Census {
    /// Processes of the sandbox uid range, and bwrap processes.
    pub processes: usize,
    /// Distinct mount namespaces on the machine.
    pub mount_namespaces: usize,
    /// Distinct user namespaces on the machine.
    pub user_namespaces: usize,
    /// Lines of the host's mount table.
    pub host_mounts: usize,
    /// Entries of the host's temporary folder.
    pub tmp_entries: usize,
    /// Switchboard's control groups (the gateways' `switchboard-<pid>` folders and the
    /// sandboxes' groups in them) in the cgroup v1 memory and pids hierarchies.
    pub control_groups: usize,
}

/// The census once it equals `expected`, or as it stands after 2 s. A sandbox's outer bubblewrap
/// process exits and is reaped a moment after the call's answer (which comes when the tool's
/// pid 1 ends), so a count taken at once can see it; something really left behind is still
/// there after 2 s.
pub async fn census_settled(expected: &Census) -> Census {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let now = census();
        if now == *expected || std::time::Instant::now() >= until {
            return now;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn census() -> Census {
    let namespaces = |kind: &str| {
        let mut seen = std::collections::BTreeSet::new();
        for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
            if let Ok(link) = std::fs::read_link(entry.path().join("ns").join(kind)) {
                seen.insert(link);
            }
        }
        seen.len()
    };
    Census {
        processes: sandbox_processes(),
        mount_namespaces: namespaces("mnt"),
        user_namespaces: namespaces("user"),
        host_mounts: std::fs::read_to_string("/proc/self/mountinfo")
            .expect("mountinfo")
            .lines()
            .count(),
        tmp_entries: std::fs::read_dir(std::env::temp_dir())
            .expect("tmp")
            .count(),
        control_groups: control_groups(),
    }
}

fn control_groups() -> usize {
    let subdirs = |dir: &std::path::Path| -> Vec<std::path::PathBuf> {
        std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .map(|e| e.path())
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"]
        .iter()
        .flat_map(|root| subdirs(std::path::Path::new(root)))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("switchboard-"))
        })
        .map(|gateway| 1 + subdirs(&gateway).len())
        .sum()
}
