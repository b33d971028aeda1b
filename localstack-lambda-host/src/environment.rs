//! One execution environment: its sandbox's life, and each invocation from LocalStack's
//! `/invoke` to the callback that reports it.
//!
//! The environment starts its sandbox at once and reports `ready` when the runtime first asks
//! for an invocation, or `error` when the init fails (`/init/error`, the runtime exiting, no
//! bootstrap). The sandbox then stays warm: the same processes and the same `/tmp` serve every
//! later invocation, as in Lambda. An invocation that runs past the timeout is answered with the
//! Docker executor's timeout error and its sandbox is killed; so is one whose runtime exits. The
//! next invocation then starts a new sandbox first (its init counts within that invocation's
//! timeout, as Lambda's suppressed init does).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{HostConfig, MAX_OPEN_FILES, MAX_PROCESSES, MAX_RESPONSE_BYTES};
use crate::localstack::{Callbacks, InvokeRequest};
use crate::logs::LogCollector;
use crate::payload;
use crate::runtime_api::{NextInvocation, RuntimeApi, RuntimeEvent};
use crate::sandbox::{self, Launch, Layout, Rlimits, Supervised, UNLIMITED};
use switchboard_sandbox::cgroup::Cgroups;

/// How an init ended.
#[derive(Debug)]
enum Init {
    Ready(Duration),
    Failed(Vec<u8>),
    TimedOut,
}

/// How an invocation ended.
#[derive(Debug)]
enum Outcome {
    Response(bytes::Bytes),
    Error(Vec<u8>),
    TimedOut,
}

/// Everything fixed about how this environment's sandboxes start.
#[derive(Debug)]
pub struct SandboxPlan {
    pub bwrap: std::path::PathBuf,
    pub layout: Layout,
    pub seccomp: Vec<u8>,
    pub host_uid: Option<u32>,
    /// This host's control groups: each sandbox gets one, holding the function's memory size
    /// and the process limit for all its processes together. `None` where the machine has
    /// none this process may use (not root, no memory controller).
    pub cgroups: Option<Cgroups>,
}

/// One execution environment.
#[derive(Debug)]
pub struct Environment {
    config: HostConfig,
    plan: SandboxPlan,
    env: Vec<(String, String)>,
    api: Arc<RuntimeApi>,
    events: mpsc::UnboundedReceiver<RuntimeEvent>,
    callbacks: Callbacks,
    logs: Arc<LogCollector>,
    sandbox: Option<Supervised>,
    queue: Option<mpsc::Sender<NextInvocation>>,
    generation: u64,
    /// The duration of an init that no invocation has reported yet.
    unreported_init: Option<Duration>,
}

impl Environment {
    pub fn new(
        config: HostConfig,
        plan: SandboxPlan,
        api: Arc<RuntimeApi>,
        events: mpsc::UnboundedReceiver<RuntimeEvent>,
        callbacks: Callbacks,
        logs: Arc<LogCollector>,
    ) -> Self {
        let env = config.function_environment();
        Self {
            config,
            plan,
            env,
            api,
            events,
            callbacks,
            logs,
            sandbox: None,
            queue: None,
            generation: 0,
            unreported_init: None,
        }
    }

    /// Starts the sandbox, reports the init to LocalStack, then serves invocations until
    /// `invocations` closes. Call [`Environment::stop`] afterwards.
    pub async fn run(&mut self, invocations: &mut mpsc::Receiver<InvokeRequest>) {
        match self.init(None).await {
            Init::Ready(took) => {
                self.unreported_init = Some(took);
                if let Err(e) = self.callbacks.ready().await {
                    tracing::error!("cannot report ready: {e}");
                }
            }
            Init::Failed(error) => {
                tracing::warn!("init failed: {}", String::from_utf8_lossy(&error));
                // LocalStack shows these logs when the start fails.
                let _ = self.logs.take();
                if let Err(e) = self.callbacks.init_failed(error).await {
                    tracing::error!("cannot report the init error: {e}");
                }
            }
            Init::TimedOut => {}
        }
        loop {
            tokio::select! {
                request = invocations.recv() => match request {
                    Some(request) => self.invoke(request).await,
                    None => return,
                },
                Some(event) = self.events.recv() => self.idle_event(event).await,
            }
        }
    }

    /// Kills the sandbox; nothing of it is left when this returns.
    pub async fn stop(&mut self) {
        if let Some(mut sandbox) = self.sandbox.take() {
            sandbox.kill().await;
        }
        self.queue = None;
    }

    /// An event while no invocation is under way.
    async fn idle_event(&mut self, event: RuntimeEvent) {
        if let RuntimeEvent::Exited { generation, status } = event
            && generation == self.generation
        {
            tracing::warn!(
                "the runtime exited between invocations ({})",
                payload::describe_exit(&status)
            );
            if let Some(sandbox) = self.sandbox.take() {
                sandbox.drain_output().await;
            }
            self.queue = None;
        }
    }

    /// Starts a sandbox and waits until its runtime asks for work, fails, or `deadline` passes.
    async fn init(&mut self, deadline: Option<Instant>) -> Init {
        let started = Instant::now();
        let bootstrap = self.config.code_dir.join("bootstrap");
        if !is_executable_file(&bootstrap) {
            return Init::Failed(payload::invalid_entrypoint(&format!(
                "Couldn't find valid bootstrap(s): [{}/bootstrap]",
                sandbox::TASK_ROOT
            )));
        }
        // Whatever a previous sandbox said is void now.
        while self.events.try_recv().is_ok() {}
        self.generation += 1;
        let generation = self.generation;
        self.queue = Some(self.api.new_queue());
        self.api.set_current(None);
        let started_sandbox = match self.start_sandbox(generation) {
            Ok(s) => s,
            Err(e) => return Init::Failed(payload::runtime_unknown(&e.to_string())),
        };
        let exits = self.api.events();
        self.sandbox = Some(sandbox::supervise(
            started_sandbox,
            generation,
            self.plan.host_uid,
            Arc::clone(&self.logs),
            move |status| {
                let _ = exits.send(RuntimeEvent::Exited { generation, status });
            },
        ));
        let until = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365));
        loop {
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = tokio::time::sleep_until(until) => {
                    self.kill_sandbox().await;
                    return Init::TimedOut;
                }
            };
            match event {
                Some(RuntimeEvent::NextCalled) => return Init::Ready(started.elapsed()),
                Some(RuntimeEvent::InitError { error_type, body }) => {
                    self.kill_sandbox().await;
                    return Init::Failed(payload::function_error(error_type.as_deref(), &body));
                }
                Some(RuntimeEvent::Exited {
                    generation: g,
                    status,
                }) if g == generation => {
                    if let Some(sandbox) = self.sandbox.take() {
                        sandbox.drain_output().await;
                    }
                    return Init::Failed(payload::exit_error(None, &status));
                }
                Some(_) => {}
                None => return Init::Failed(Vec::new()),
            }
        }
    }

    /// Makes the sandbox's control group (when this host has them) and starts the sandbox in it.
    fn start_sandbox(&self, generation: u64) -> Result<sandbox::Started, sandbox::SandboxError> {
        let cgroup = self
            .plan
            .cgroups
            .as_ref()
            .map(|c| {
                // /tmp is a tmpfs, whose pages are charged to the group of whoever writes them:
                // the group holds the function's memory and its ephemeral storage, so that a
                // full /tmp leaves the function its whole memory size, as in Lambda (where /tmp
                // is disk). RLIMIT_DATA still bounds each process to the memory size.
                c.sandbox(
                    &format!("sandbox-{generation}"),
                    self.config.memory_bytes() + self.config.scratch_bytes(),
                    Some(MAX_PROCESSES),
                )
            })
            .transpose()?;
        sandbox::start(Launch {
            bwrap: &self.plan.bwrap,
            layout: &self.plan.layout,
            seccomp: &self.plan.seccomp,
            env: &self.env,
            host_uid: self.plan.host_uid,
            limits: Rlimits {
                processes: self.plan.host_uid.map(|_| MAX_PROCESSES),
                open_files: MAX_OPEN_FILES,
                data_bytes: self.config.memory_bytes(),
                // Not limited here: the function inherits the host's own.
                file_bytes: UNLIMITED,
                cpu_seconds: UNLIMITED,
            },
            cgroup,
        })
    }

    async fn kill_sandbox(&mut self) {
        if let Some(mut sandbox) = self.sandbox.take() {
            sandbox.drain_output().await;
            sandbox.kill().await;
        }
        self.queue = None;
        self.api.set_current(None);
    }

    /// Runs one invocation and reports it to LocalStack.
    async fn invoke(&mut self, request: InvokeRequest) {
        let started = Instant::now();
        let timeout = Duration::from_secs(u64::from(self.config.timeout_seconds));
        let deadline = started + timeout;
        let id = request.invoke_id.clone();
        self.logs
            .push(&payload::start_line(&id, &self.config.function_version));
        let mut init_took = self.unreported_init.take();
        let mut outcome = None;
        if self.sandbox.is_none() {
            match self.init(Some(deadline)).await {
                Init::Ready(took) => init_took = Some(took),
                Init::Failed(error) => outcome = Some(Outcome::Error(error)),
                Init::TimedOut => outcome = Some(Outcome::TimedOut),
            }
        }
        let outcome = match outcome {
            Some(o) => o,
            None => self.run_invocation(&request, deadline).await,
        };
        self.api.set_current(None);
        if matches!(outcome, Outcome::TimedOut) {
            self.logs
                .push(&payload::timeout_log_line(&id, self.config.timeout_seconds));
            self.kill_sandbox().await;
        } else if let Some(sandbox) = &self.sandbox {
            sandbox.drain_output().await;
        }
        self.logs.push(&payload::end_lines(
            &id,
            started.elapsed(),
            timeout,
            self.config.memory_mb,
            init_took,
        ));
        if let Err(e) = self.callbacks.logs(&id, self.logs.take()).await {
            tracing::error!("cannot send the logs of {id}: {e}");
        }
        let sent = match outcome {
            Outcome::Response(body) => self.callbacks.response(&id, body.to_vec()).await,
            Outcome::Error(error) => self.callbacks.error(&id, error).await,
            Outcome::TimedOut => {
                let error = payload::timeout_error(&id, self.config.timeout_seconds);
                self.callbacks.error(&id, error).await
            }
        };
        if let Err(e) = sent {
            tracing::error!("cannot report the outcome of {id}: {e}");
        }
    }

    /// Hands the invocation to the runtime and waits for its outcome.
    async fn run_invocation(&mut self, request: &InvokeRequest, deadline: Instant) -> Outcome {
        let id = request.invoke_id.clone();
        let remaining = deadline.saturating_duration_since(Instant::now());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or_default();
        let next = NextInvocation {
            request_id: id.clone(),
            deadline_unix_ms: now_ms
                .saturating_add(u64::try_from(remaining.as_millis()).unwrap_or(u64::MAX)),
            function_arn: request.invoked_function_arn.clone(),
            trace_id: request.trace_id.clone(),
            payload: bytes::Bytes::from(request.payload.clone().into_bytes()),
        };
        self.api.set_current(Some(id.clone()));
        let generation = self.generation;
        let queued = match &self.queue {
            Some(queue) => queue.send(next).await.is_ok(),
            None => false,
        };
        if !queued {
            return Outcome::Error(payload::runtime_unknown("the runtime is gone"));
        }
        loop {
            let event = tokio::select! {
                event = self.events.recv() => event,
                () = tokio::time::sleep_until(deadline) => return Outcome::TimedOut,
            };
            match event {
                Some(RuntimeEvent::Response { request_id, body }) if request_id == id => {
                    return Outcome::Response(body);
                }
                Some(RuntimeEvent::Error {
                    request_id,
                    error_type,
                    body,
                }) if request_id == id => {
                    return Outcome::Error(payload::function_error(error_type.as_deref(), &body));
                }
                Some(RuntimeEvent::ResponseTooLarge { request_id }) if request_id == id => {
                    return Outcome::Error(payload::response_too_large(MAX_RESPONSE_BYTES));
                }
                Some(RuntimeEvent::Exited {
                    generation: g,
                    status,
                }) if g == generation => {
                    if let Some(sandbox) = self.sandbox.take() {
                        sandbox.drain_output().await;
                    }
                    self.queue = None;
                    return Outcome::Error(payload::exit_error(Some(&id), &status));
                }
                Some(_) => {}
                None => return Outcome::TimedOut,
            }
        }
    }
}

fn is_executable_file(path: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}
