//! Sandboxes started ahead of their calls (a tool's `local.prepared`), each for exactly one call.
//!
//! Starting a sandbox is most of a local call's time: executing bubblewrap, building the
//! namespaces and mounts, entering a control group (on cgroup v1 hosts the kernel may make that
//! write wait for an RCU grace period, tens of milliseconds), starting the tool. A tool with
//! `prepared: N` keeps up to N sandboxes started and waiting for their invocation on stdin; a
//! call takes one if there is one (and starts its own otherwise), and a background task starts
//! its replacement. A prepared sandbox is exactly what the call would have started itself, with
//! the environment that does not depend on the call (no invocation id or deadline: both are on
//! stdin), and it is never given a second call: the sandbox ends with its call as any other.
//!
//! At shutdown (or when the backend is dropped) the task stops starting sandboxes and kills and
//! clears every one still waiting: processes, control group, uid lease.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Sandbox;
use crate::metrics::ToolLabel;

/// The prepared sandboxes of one tool.
#[derive(Debug)]
pub(super) struct Ready {
    tool: String,
    wanted: usize,
    waiting: std::sync::Mutex<Vec<Sandbox>>,
    /// Woken when a taken sandbox's call ended, or none was found: start replacements.
    wake: Notify,
    /// Sandboxes started ahead so far (replacements included).
    started: AtomicUsize,
}

impl Ready {
    pub(super) fn new(tool: &str, wanted: usize) -> Arc<Self> {
        Arc::new(Self {
            tool: tool.to_owned(),
            wanted,
            waiting: std::sync::Mutex::new(Vec::with_capacity(wanted)),
            wake: Notify::new(),
            started: AtomicUsize::new(0),
        })
    }

    /// A prepared sandbox whose tool is still waiting for its invocation, if there is one. Its
    /// replacement is started once the call has ended ([`Ready::replace`]).
    pub(super) fn take(&self) -> Option<Sandbox> {
        let mut dead = Vec::new();
        let found = {
            let mut waiting = self.waiting.lock().ok()?;
            let mut found = None;
            while let Some(mut sandbox) = waiting.pop() {
                // One whose tool has already ended (it failed on its own while waiting) serves
                // no call.
                if matches!(sandbox.child.try_wait(), Ok(None)) {
                    found = Some(sandbox);
                    break;
                }
                dead.push(sandbox);
            }
            found
        };
        if !dead.is_empty() {
            tracing::warn!(
                tool = %self.tool,
                count = dead.len(),
                "prepared sandboxes ended before their call; they are cleared and replaced"
            );
            tokio::spawn(async move {
                for sandbox in dead {
                    sandbox.discard().await;
                }
            });
        }
        if found.is_none() {
            self.wake.notify_one();
        }
        found
    }

    /// A taken sandbox's call has ended: start its replacement.
    pub(super) fn replace(&self) {
        self.wake.notify_one();
    }

    /// How many sandboxes are waiting right now.
    pub(super) fn waiting(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Sandboxes started ahead so far.
    pub(super) fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    fn drain(&self) -> Vec<Sandbox> {
        self.waiting
            .lock()
            .map(|mut w| std::mem::take(&mut *w))
            .unwrap_or_default()
    }
}

/// Keeps `ready` filled with sandboxes started by `start` until `stop` is cancelled; then kills
/// and clears every one still waiting.
pub(super) async fn keep_filled<F>(
    ready: Arc<Ready>,
    start: impl Fn() -> F + Send + 'static,
    stop: CancellationToken,
) where
    F: Future<Output = Result<Sandbox, String>> + Send,
{
    let mut failures = 0u32;
    while !stop.is_cancelled() {
        let wake = ready.wake.notified();
        tokio::pin!(wake);
        // Registered before the count is read, so a take in between is not missed.
        wake.as_mut().enable();
        while !stop.is_cancelled() && ready.waiting() < ready.wanted {
            match start().await {
                Ok(sandbox) => {
                    failures = 0;
                    ready.started.fetch_add(1, Ordering::Relaxed);
                    if let Ok(mut waiting) = ready.waiting.lock() {
                        waiting.push(sandbox);
                    }
                }
                Err(message) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        tool = %ready.tool,
                        "cannot start a prepared sandbox (calls start their own meanwhile): {message}"
                    );
                    // Back off (up to 30 s) rather than spin on a machine that cannot start one.
                    let pause = Duration::from_millis(250 << failures.min(7));
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = stop.cancelled() => {}
                    }
                    break;
                }
            }
        }
        tokio::select! {
            () = &mut wake => {}
            () = stop.cancelled() => {}
        }
    }
    for sandbox in ready.drain() {
        sandbox.discard().await;
    }
}

/// Counts, by tool, the calls a prepared sandbox served and those that found none waiting.
#[derive(Debug, Default)]
pub(super) struct ReadyCounters {
    served: Family<ToolLabel, Counter>,
    missed: Family<ToolLabel, Counter>,
}

impl ReadyCounters {
    pub(super) fn count(&self, tool: &str, served: bool) {
        let family = if served { &self.served } else { &self.missed };
        family.get_or_create(&ToolLabel::new(tool)).inc();
    }

    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sandbox_prepared_served",
            "Calls of a tool with prepared sandboxes that one of them served, by tool",
            self.served.clone(),
        );
        registry.register(
            "sandbox_prepared_missed",
            "Calls of a tool with prepared sandboxes that found none waiting and started their own, by tool",
            self.missed.clone(),
        );
    }
}
