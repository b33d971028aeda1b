//! The local backend: every call in a fresh bubblewrap sandbox on the gateway's machine.
//!
//! One call, one sandbox: new user, mount, pid, IPC, UTS, network and cgroup namespaces; a
//! read-only root holding `/usr`, the tool's executable and its declared read-only paths; a
//! size-capped tmpfs as scratch (also `HOME` and `TMPDIR`); the tool's own uid and gid; an
//! environment holding only the invocation's; no capabilities; a new session; a seccomp filter
//! ([`seccomp`]); resource limits ([`spawn::Rlimits`]); a wall-clock deadline; capped stdout and
//! stderr. The tool reads one JSON invocation on stdin and writes one JSON result on stdout,
//! optionally preceded by progress lines, which are forwarded as they arrive ([`stdout`]).
//! When [`LocalBackend::dispatch`] returns, nothing of the call is left running or on disk.
//!
//! Modules: [`plan`] (a tool's sandbox, worked out at start-up), [`spawn`] (running one
//! sandbox), [`identity`] (host uids), [`seccomp`] (the filter), [`proxy`] (declared endpoints).
//! `docs/sandbox.md` explains the design and what each measure answers.

pub mod identity;
pub mod plan;
pub mod proxy;
mod ready;
pub mod seccomp;
pub mod spawn;
pub mod stage;
pub mod stdout;

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsString;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use switchboard_sandbox::cgroup::{CgroupError, CgroupMode, Cgroups, SandboxCgroup};
use switchboard_tool_runtime::ToolOutput;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use self::identity::{Lease, UidPool};
use self::plan::{ENDPOINT_SOCKET, SCRATCH, TENANT_DIR, ToolPlan};
use self::proxy::EgressCounters;
use self::ready::{Ready, ReadyCounters};
use self::spawn::{Drive, Ended, Launch, Rlimits};
use super::{Backend, BackendError, Dispatch, Dispatched, InFlight, InFlightGuard};
use crate::catalog::{BackendKind, Endpoint, Tool};

/// Why the local backend could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "bubblewrap (`bwrap`) is not installed: the local backend runs every call in a bubblewrap \
         sandbox. Install it (Debian/Ubuntu: `apt-get install bubblewrap`, or run \
         scripts/install-deps) and start again"
    )]
    NoBwrap,
    #[error("the catalog has more local tools than sandbox uids can number")]
    TooManyTools,
    #[error(transparent)]
    Plan(#[from] plan::PlanError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Proxy(#[from] proxy::ProxyError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Stage(#[from] stage::StageError),
    #[error("cannot create the runtime folder {path}: {source}")]
    RuntimeDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "SWITCHBOARD_LOCAL_ENDPOINTS: {0:?} is not `name=host:port` with a known endpoint name"
    )]
    EndpointSetting(String),
    #[error(
        "SWITCHBOARD_LOCAL_MAX_RUNNING: {setting:?} is not a number of sandboxes from 1 to {max}"
    )]
    MaxRunning { setting: String, max: u32 },
    #[error(
        "tools declare endpoints or prepared sandboxes, so the backend must be created inside a \
         tokio runtime"
    )]
    NoRuntime,
    #[error(
        "bubblewrap cannot start a sandbox on this machine: {0}. The local backend needs \
         unprivileged user namespaces (Debian: sysctl kernel.unprivileged_userns_clone=1; \
         Ubuntu 24.04: the bwrap AppArmor profile); see docs/sandbox.md"
    )]
    SmokeTest(String),
}

/// Settings of the local backend; [`Default`] holds the defaults.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// The bubblewrap executable; found on `PATH` when `None`.
    pub bwrap: Option<PathBuf>,
    /// First host uid leased to sandboxes when the gateway runs as root.
    pub host_uid_base: u32,
    /// The size of the host uid pool: a hard bound on sandboxes at once, prepared ones included.
    pub max_sandboxes: u32,
    /// Calls that may run a sandbox at once (`SWITCHBOARD_LOCAL_MAX_RUNNING`; default 8 per
    /// CPU core, at least 8). Starting a sandbox costs a few milliseconds of CPU, so past this
    /// the machine only queues: more calls are refused at once as busy, to be retried.
    pub max_running: usize,
    /// Folder of the uid lock files shared by every gateway of this machine (root only).
    pub uid_lock_dir: PathBuf,
    /// Processes and threads one sandbox may have (enforced when the gateway runs as root).
    pub max_processes: u64,
    /// Open files per sandboxed process.
    pub max_open_files: u64,
    /// Bytes of stdout a tool may write; more kills the sandbox and fails the call.
    pub max_stdout_bytes: usize,
    /// Bytes of stderr kept for error messages; more is drained and dropped.
    pub max_stderr_bytes: usize,
    /// Upstream `host:port` of each endpoint a tool may declare.
    pub endpoints: BTreeMap<Endpoint, String>,
    /// Folder for the endpoint proxies' sockets; a fresh folder under the system's temporary
    /// folder when `None`. Removed when the backend is dropped.
    pub runtime_dir: Option<PathBuf>,
    /// Whether each sandbox gets a control group that limits the memory (and process count) of
    /// all its processes together (`SWITCHBOARD_LOCAL_CGROUPS`: auto, required, off).
    pub cgroups: CgroupMode,
    /// The deployment's AWS region, passed to every sandbox as `AWS_REGION` (what the tool
    /// signs its AWS requests for); unset without bindings.
    pub region: Option<String>,
}

impl Default for LocalOptions {
    fn default() -> Self {
        Self {
            bwrap: None,
            host_uid_base: 1_700_000_000,
            max_sandboxes: 1024,
            max_running: default_max_running(),
            uid_lock_dir: PathBuf::from("/run/switchboard/uids"),
            max_processes: 64,
            max_open_files: 256,
            max_stdout_bytes: 4 << 20,
            max_stderr_bytes: 64 << 10,
            endpoints: BTreeMap::new(),
            runtime_dir: None,
            cgroups: CgroupMode::Auto,
            region: None,
        }
    }
}

impl LocalOptions {
    /// Defaults, with endpoint upstreams from `SWITCHBOARD_LOCAL_ENDPOINTS`
    /// (`sts=127.0.0.1:4566,s3=127.0.0.1:4566`).
    pub fn from_env() -> Result<Self, LocalError> {
        let mut options = Self::default();
        if let Ok(setting) = std::env::var("SWITCHBOARD_LOCAL_ENDPOINTS") {
            options.endpoints = parse_endpoints(&setting)?;
        }
        if let Ok(setting) = std::env::var("SWITCHBOARD_LOCAL_CGROUPS") {
            options.cgroups = setting.parse()?;
        }
        if let Ok(setting) = std::env::var("SWITCHBOARD_LOCAL_MAX_RUNNING") {
            options.max_running = setting
                .trim()
                .parse()
                .ok()
                .filter(|n| (1..=options.max_sandboxes as usize).contains(n))
                .ok_or(LocalError::MaxRunning {
                    setting,
                    max: options.max_sandboxes,
                })?;
        }
        Ok(options)
    }
}

/// 8 sandboxes per CPU core, at least 8.
fn default_max_running() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get() * 8)
        .unwrap_or(8)
        .clamp(8, 1024)
}

fn parse_endpoints(setting: &str) -> Result<BTreeMap<Endpoint, String>, LocalError> {
    setting
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let bad = || LocalError::EndpointSetting(item.to_owned());
            let (name, addr) = item.split_once('=').ok_or_else(bad)?;
            let endpoint: Endpoint =
                serde_json::from_value(serde_json::Value::String(name.trim().into()))
                    .map_err(|_| bad())?;
            let addr = addr.trim().to_ascii_lowercase();
            let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
            if host.is_empty() || port.parse::<u16>().is_err() {
                return Err(bad());
            }
            Ok((endpoint, addr))
        })
        .collect()
}

/// A folder the backend created and removes when dropped.
#[derive(Debug)]
struct RuntimeDir(PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[derive(Debug)]
struct PreparedTool {
    plan: Arc<ToolPlan>,
    args: plan::SandboxArgs,
    /// Its sandboxes started ahead of their calls, when the catalog asks for some.
    ready: Option<Arc<Ready>>,
}

/// What starting a sandbox needs: shared by the calls and by the tasks that prepare sandboxes
/// ahead of them.
#[derive(Debug, Clone)]
struct Starter {
    bwrap: Arc<PathBuf>,
    seccomp: Arc<[u8]>,
    uids: Option<Arc<UidPool>>,
    cgroups: Option<Arc<Cgroups>>,
    max_processes: u64,
    max_open_files: u64,
}

/// A started sandbox, its tool waiting for the invocation on stdin.
#[derive(Debug)]
struct Sandbox {
    unit_id: String,
    child: tokio::process::Child,
    group: Option<SandboxCgroup>,
    lease: Option<Lease>,
}

impl Starter {
    /// Starts a sandbox of `plan` with these bubblewrap arguments and environment: its own
    /// host uid (as root), its own control group (where the machine allows), then `bwrap`.
    fn start(
        &self,
        plan: &ToolPlan,
        args: Vec<OsString>,
        env: Vec<(String, String)>,
    ) -> Result<Sandbox, String> {
        let unit_id = format!("sbx-{}", uuid::Uuid::new_v4().simple());
        let lease = match &self.uids {
            Some(pool) => Some(pool.lease().map_err(|e| e.to_string())?),
            None => None,
        };
        let group = match &self.cgroups {
            Some(c) => Some(
                c.sandbox(&unit_id, plan.memory_bytes, Some(self.max_processes))
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let child = spawn::start(Launch {
            bwrap: &self.bwrap,
            args,
            argv: &plan.argv,
            seccomp: &self.seccomp,
            env,
            host_uid: lease.as_ref().map(Lease::uid),
            cgroup_fds: group
                .as_ref()
                .map(SandboxCgroup::entry_fds)
                .unwrap_or_default(),
            limits: Rlimits {
                processes: lease.as_ref().map(|_| self.max_processes),
                open_files: self.max_open_files,
                file_bytes: plan.scratch_bytes,
                data_bytes: plan.memory_bytes,
                cpu_seconds: u64::from(plan.timeout_seconds) + 1,
            },
        })
        .map_err(|e| e.to_string())?;
        Ok(Sandbox {
            unit_id,
            child,
            group,
            lease,
        })
    }

    /// [`Starter::start`] on a blocking thread: the fork, and the child's entry into its control
    /// group, hold the calling thread until `bwrap` runs (on cgroup v1 the kernel may make that
    /// entry wait for an RCU grace period, tens of milliseconds), which must not stall the
    /// runtime's workers and the other calls they serve.
    async fn start_blocking(
        &self,
        plan: Arc<ToolPlan>,
        args: Vec<OsString>,
        env: Vec<(String, String)>,
    ) -> Result<Sandbox, String> {
        let starter = self.clone();
        tokio::task::spawn_blocking(move || starter.start(&plan, args, env))
            .await
            .map_err(|e| format!("the sandbox's start was interrupted: {e}"))?
    }
}

impl Sandbox {
    /// Kills a sandbox that will serve no call and clears what it held.
    async fn discard(mut self) {
        let uid = self.lease.as_ref().map(Lease::uid);
        if let Err(e) = switchboard_sandbox::spawn::kill(&mut self.child, uid).await {
            tracing::warn!(unit_id = %self.unit_id, "clearing a prepared sandbox: {e}");
        }
        if let Some(group) = self.group.take() {
            let _ = tokio::task::spawn_blocking(move || drop(group)).await;
        }
    }
}

/// Runs each call of a local tool in a fresh bubblewrap sandbox.
#[derive(Debug)]
pub struct LocalBackend {
    tools: HashMap<String, PreparedTool>,
    starter: Starter,
    options: LocalOptions,
    shutdown: CancellationToken,
    in_flight: Arc<InFlight>,
    /// One permit per call running a sandbox (`max_running`).
    running: Arc<tokio::sync::Semaphore>,
    /// Control groups and uid leases of finished calls being cleared (after their answer).
    clearing: Arc<InFlight>,
    egress: Arc<EgressCounters>,
    /// The proxies' socket folder; removed at shutdown (or when the backend is dropped).
    runtime_dir: std::sync::Mutex<Option<RuntimeDir>>,
    /// The tasks that keep prepared sandboxes started (stopped by `shutdown`).
    preparers: std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
    ready_counters: ReadyCounters,
    /// Copies of what the sandboxes could not reach (removed at shutdown, or with the backend).
    stage: std::sync::Mutex<Option<stage::Stage>>,
}

impl Drop for LocalBackend {
    /// A backend dropped without [`Backend::shutdown`] still stops its preparers, which then
    /// kill and clear the prepared sandboxes (while the runtime runs).
    fn drop(&mut self) {
        self.shutdown.cancel();
        // Finished calls' groups and leases are cleared on blocking threads in a moment: wait
        // for them (briefly), so that a dropped backend has left nothing behind.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while self.clearing.count() > 0 && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl LocalBackend {
    /// Plans a sandbox for every local tool of the catalog, with [`LocalOptions::from_env`].
    /// `catalog_dir` anchors the tools' relative paths.
    pub fn new(catalog_dir: &Path, tools: &[Tool]) -> Result<Self, LocalError> {
        Self::with_options(catalog_dir, tools, LocalOptions::from_env()?)
    }

    /// Plans a sandbox for every local tool of `tools` with `options`: the host uids (as root),
    /// the control groups, the endpoint proxies, the staged copies; then starts one sandbox to
    /// see that bubblewrap works here, and the preparers of the tools that want sandboxes
    /// started ahead.
    pub fn with_options(
        catalog_dir: &Path,
        tools: &[Tool],
        options: LocalOptions,
    ) -> Result<Self, LocalError> {
        let bwrap = match &options.bwrap {
            Some(path) => path.clone(),
            None => find_bwrap().ok_or(LocalError::NoBwrap)?,
        };
        let root = identity::is_root();
        let uids = uid_pool(root, &options)?;
        let cgroups = control_groups(options.cgroups)?;
        let shutdown = CancellationToken::new();
        let egress = Arc::new(EgressCounters::default());
        let local_tools: Vec<&Tool> = tools
            .iter()
            .filter(|t| t.backend == BackendKind::Local)
            .collect();
        let runtime_dir = runtime_dir_for(&local_tools, &options)?;
        // As root, sandboxes run under unprivileged uids: what they cannot reach is staged.
        let stage = if root && !local_tools.is_empty() {
            Some(stage::open(&std::env::temp_dir())?)
        } else {
            None
        };
        let mut prepared = HashMap::new();
        for (index, tool) in local_tools.into_iter().enumerate() {
            let sandbox_uid =
                10_000 + u32::try_from(index).map_err(|_| LocalError::TooManyTools)?;
            let mut plan = ToolPlan::new(tool, catalog_dir, sandbox_uid, root, stage.as_ref())?;
            log_staged(&plan);
            if let (Some(dir), false) = (&runtime_dir, plan.endpoints.is_empty()) {
                let socket = dir.0.join(format!("{}.sock", plan.name));
                proxy::start(
                    &plan.name,
                    &socket,
                    &plan.endpoints,
                    &options.endpoints,
                    Arc::clone(&egress),
                    shutdown.child_token(),
                )?;
                plan.proxy_socket = Some(socket);
            }
            let args = plan.sandbox_args();
            let ready = (plan.prepared > 0).then(|| Ready::new(&plan.name, plan.prepared));
            let plan = Arc::new(plan);
            prepared.insert(plan.name.clone(), PreparedTool { plan, args, ready });
        }
        let starter = Starter {
            bwrap: Arc::new(bwrap),
            seccomp: seccomp::program_bytes()?.into(),
            uids,
            cgroups,
            max_processes: options.max_processes,
            max_open_files: options.max_open_files,
        };
        let backend = Self {
            tools: prepared,
            running: Arc::new(tokio::sync::Semaphore::new(options.max_running)),
            starter,
            options,
            shutdown,
            in_flight: Arc::new(InFlight::default()),
            clearing: Arc::new(InFlight::default()),
            egress,
            runtime_dir: std::sync::Mutex::new(runtime_dir),
            preparers: std::sync::Mutex::new(Vec::new()),
            ready_counters: ReadyCounters::default(),
            stage: std::sync::Mutex::new(stage),
        };
        backend.smoke_test()?;
        backend.start_preparers();
        Ok(backend)
    }

    /// Starts, for every tool with `prepared` sandboxes, the task that keeps them started.
    fn start_preparers(&self) {
        let mut handles = Vec::new();
        for prepared in self.tools.values() {
            let Some(ready) = &prepared.ready else {
                continue;
            };
            let (starter, plan) = (self.starter.clone(), Arc::clone(&prepared.plan));
            let args = prepared.args.for_call(None);
            let env = self.environment(&plan, None);
            let start = move || {
                let (starter, plan) = (starter.clone(), Arc::clone(&plan));
                let (args, env) = (args.clone(), env.clone());
                async move { starter.start_blocking(plan, args, env).await }
            };
            tracing::info!(
                tool = %prepared.plan.name,
                "keeping {} sandbox(es) of this tool started ahead of their calls",
                prepared.plan.prepared
            );
            handles.push(tokio::spawn(ready::keep_filled(
                Arc::clone(ready),
                start,
                self.shutdown.child_token(),
            )));
        }
        if let Ok(mut preparers) = self.preparers.lock() {
            preparers.extend(handles);
        }
    }

    /// Prepared sandboxes of `tool` waiting for a call right now, and started so far.
    pub fn prepared_sandboxes(&self, tool: &str) -> (usize, usize) {
        self.tools
            .get(tool)
            .and_then(|t| t.ready.as_ref())
            .map(|r| (r.waiting(), r.started()))
            .unwrap_or_default()
    }

    /// Starts one sandbox of the first tool running `/usr/bin/true`, so that a machine where
    /// bubblewrap cannot work fails at start-up with the reason, not at the first call.
    fn smoke_test(&self) -> Result<(), LocalError> {
        let Some(prepared) = self.tools.values().next() else {
            return Ok(());
        };
        let mut cmd = std::process::Command::new(&*self.starter.bwrap);
        cmd.args(prepared.args.for_call(None))
            .args(["--", "/usr/bin/true"])
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let lease = match &self.starter.uids {
            Some(pool) => Some(pool.lease()?),
            None => None,
        };
        if let Some(lease) = &lease {
            std::os::unix::process::CommandExt::uid(&mut cmd, lease.uid());
            std::os::unix::process::CommandExt::gid(&mut cmd, lease.uid());
        }
        let out = cmd
            .output()
            .map_err(|e| LocalError::SmokeTest(e.to_string()))?;
        if out.status.success() {
            Ok(())
        } else {
            let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            Err(LocalError::SmokeTest(format!(
                "{} ({})",
                stderr, out.status
            )))
        }
    }

    /// Calls running right now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// The whole environment of a sandbox of `plan`: without `call` (a sandbox prepared ahead
    /// of its call), only what every call of the tool shares.
    fn environment(&self, plan: &ToolPlan, call: Option<&Dispatch>) -> Vec<(String, String)> {
        let mut env = vec![
            ("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into()),
            ("HOME".into(), SCRATCH.into()),
            ("TMPDIR".into(), SCRATCH.into()),
            ("LANG".into(), "C.UTF-8".into()),
            ("SWITCHBOARD_TOOL".into(), plan.name.clone()),
        ];
        let inv = call.map(|c| &c.invocation);
        if let Some(inv) = inv {
            env.push((
                "SWITCHBOARD_INVOCATION_ID".into(),
                inv.invocation_id.clone(),
            ));
            env.push((
                "SWITCHBOARD_DEADLINE_UNIX_MS".into(),
                inv.deadline_unix_ms.to_string(),
            ));
            if let Some(traceparent) = &inv.traceparent {
                env.push(("TRACEPARENT".into(), traceparent.clone()));
            }
        }
        if let Some(region) = &self.options.region {
            env.push(("AWS_REGION".into(), region.clone()));
        }
        if let Some(c) = inv.and_then(|i| i.credentials.as_ref()) {
            env.push(("AWS_ACCESS_KEY_ID".into(), c.access_key_id.clone()));
            use secrecy::ExposeSecret as _;
            let secret = c.secret_access_key.expose_secret().to_owned();
            env.push(("AWS_SECRET_ACCESS_KEY".into(), secret));
            env.push((
                "AWS_SESSION_TOKEN".into(),
                c.session_token.expose_secret().into(),
            ));
        }
        if plan.tenant_root.is_some() {
            env.push(("SWITCHBOARD_TENANT_DIR".into(), TENANT_DIR.into()));
            if let Some(tenant) = call.and_then(|c| c.caller.tenant.as_ref()) {
                env.push(("SWITCHBOARD_TENANT".into(), tenant.clone()));
            }
        }
        if plan.proxy_socket.is_some() {
            env.push(("SWITCHBOARD_ENDPOINT_SOCKET".into(), ENDPOINT_SOCKET.into()));
            let names: Vec<&str> = plan.endpoints.iter().map(|e| endpoint_name(*e)).collect();
            env.push(("SWITCHBOARD_ENDPOINTS".into(), names.join(",")));
            for e in &plan.endpoints {
                if let Some(addr) = self.options.endpoints.get(e) {
                    let key = endpoint_name(*e).replace('.', "_").to_ascii_uppercase();
                    env.push((format!("SWITCHBOARD_ENDPOINT_{key}"), addr.clone()));
                }
            }
        }
        env
    }
}

/// The pool of host uids the sandboxes lease, when the gateway runs as root; without root,
/// sandboxes run under the gateway's own uid (said in a warning).
fn uid_pool(root: bool, options: &LocalOptions) -> Result<Option<Arc<UidPool>>, LocalError> {
    if !root {
        tracing::warn!(
            "the gateway is not root: sandboxes run under its own uid and the per-sandbox \
             process limit is not applied (see docs/sandbox.md)"
        );
        return Ok(None);
    }
    let pool = UidPool::new(
        options.host_uid_base,
        options.max_sandboxes,
        &options.uid_lock_dir,
    )?;
    Ok(Some(pool))
}

/// The control groups the sandboxes get, as `mode` asks and the machine allows; the groups left
/// by gateways that are gone are removed first (said in the log, as is the choice).
fn control_groups(mode: CgroupMode) -> Result<Option<Arc<Cgroups>>, LocalError> {
    let cgroups = match mode {
        CgroupMode::Off => {
            tracing::warn!("control groups are off: memory is limited per sandboxed process only");
            None
        }
        CgroupMode::Required => Some(Cgroups::shared()?),
        CgroupMode::Auto => match Cgroups::shared() {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(
                    "no control group per sandbox, memory is limited per process only: {e}"
                );
                None
            }
        },
    };
    if let Some(n) = cgroups
        .as_ref()
        .map(|c| c.leftovers_removed())
        .filter(|n| *n > 0)
    {
        tracing::info!(
            "removed {n} control group(s) left by gateway processes that are gone (killed \
             before they could remove them)"
        );
    }
    if let Some(c) = &cgroups {
        tracing::info!(
            "each sandbox gets its own control group ({}): one memory limit for all its processes",
            c.describe()
        );
    }
    Ok(cgroups)
}

/// The folder of the endpoint proxies' sockets, when a local tool declares endpoints. Refused
/// outside a tokio runtime when the proxies or the preparers will need one.
fn runtime_dir_for(
    local_tools: &[&Tool],
    options: &LocalOptions,
) -> Result<Option<RuntimeDir>, LocalError> {
    let in_runtime = tokio::runtime::Handle::try_current().is_ok();
    let wants_prepared = local_tools
        .iter()
        .any(|t| t.local.as_ref().is_some_and(|l| l.prepared > 0));
    if wants_prepared && !in_runtime {
        return Err(LocalError::NoRuntime);
    }
    if !local_tools.iter().any(|t| !t.endpoints.is_empty()) {
        return Ok(None);
    }
    if !in_runtime {
        return Err(LocalError::NoRuntime);
    }
    Ok(Some(make_runtime_dir(options.runtime_dir.clone())?))
}

/// Says which of the plan's paths the sandboxes see as a staged copy.
fn log_staged(plan: &ToolPlan) {
    for (path, blocker) in &plan.staged {
        tracing::info!(
            tool = %plan.name,
            "staged a copy of {} for the sandboxes: their uids cannot reach it ({} is \
             private); changes to it are not seen until the gateway restarts",
            path.display(),
            blocker.display()
        );
    }
}

/// The host folder a call of a tool with a tenant root sees: its caller's tenant's, or none
/// (an empty folder) when that tenant has no folder. A caller without a tenant, or with one that
/// is not a plain name, is refused before any sandbox starts.
fn tenant_dir(plan: &ToolPlan, call: &Dispatch) -> Result<Option<PathBuf>, BackendError> {
    let Some(tenant) = call.caller.tenant.as_deref() else {
        return Err(BackendError::Refused {
            message: format!(
                "tool {:?} reads its caller's tenant's files, and the caller's token names no \
                 tenant",
                plan.name
            ),
            label: "no_tenant",
        });
    };
    if let Some(reason) = crate::credentials::tenant_problem(tenant) {
        return Err(BackendError::Refused {
            message: format!(
                "tool {:?}: the caller's tenant cannot name a folder: {reason}",
                plan.name
            ),
            label: "bad_tenant",
        });
    }
    Ok(plan.tenant_dir(tenant))
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::S3 => "s3",
        Endpoint::Sts => "sts",
        Endpoint::Logs => "logs",
        Endpoint::Kms => "kms",
        Endpoint::EcrApi => "ecr.api",
        Endpoint::SecretsManager => "secretsmanager",
        Endpoint::EcrDkr => "ecr.dkr",
    }
}

fn find_bwrap() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join("bwrap"))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn make_runtime_dir(configured: Option<PathBuf>) -> Result<RuntimeDir, LocalError> {
    let path = configured.unwrap_or_else(|| {
        std::env::temp_dir().join(format!(
            "switchboard-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ))
    });
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o711)
        .create(&path)
        .map_err(|source| LocalError::RuntimeDir {
            path: path.clone(),
            source,
        })?;
    Ok(RuntimeDir(path))
}

/// The last `max` bytes of `bytes`, as text.
fn tail(bytes: &[u8], max: usize) -> String {
    let start = bytes.len().saturating_sub(max);
    String::from_utf8_lossy(&bytes[start..]).trim().to_owned()
}

/// A running permit of the local backend (`max_running`).
type RunningPermit = tokio::sync::OwnedSemaphorePermit;

impl LocalBackend {
    /// Whether `call` may run a sandbox now: a local tool of this gateway, its deadline not
    /// passed, the gateway not shutting down, its caller's tenant a folder name (for a tool with a
    /// tenant root), and a running permit free. Its tool, the tenant folder it sees and its
    /// permit.
    fn admit(
        &self,
        call: &Dispatch,
    ) -> Result<(&PreparedTool, Option<PathBuf>, RunningPermit), BackendError> {
        let prepared = self
            .tools
            .get(&call.tool.name)
            .ok_or_else(|| BackendError::Start {
                message: format!("{:?} is not a local tool of this gateway", call.tool.name),
            })?;
        let plan = &prepared.plan;
        if call.deadline.passed() {
            return Err(BackendError::DeadlineExceeded {
                unit_id: None,
                timeout_seconds: plan.timeout_seconds,
            });
        }
        if self.shutdown.is_cancelled() {
            return Err(BackendError::Start {
                message: "the gateway is shutting down".into(),
            });
        }
        let tenant = match &plan.tenant_root {
            None => None,
            Some(_) => tenant_dir(plan, call)?,
        };
        let running =
            Arc::clone(&self.running)
                .try_acquire_owned()
                .map_err(|_| BackendError::Busy {
                    message: format!(
                        "the local backend is running its limit of {} sandboxes \
                     (SWITCHBOARD_LOCAL_MAX_RUNNING); retry later",
                        self.options.max_running
                    ),
                })?;
        Ok((prepared, tenant, running))
    }

    /// A sandbox of the tool prepared ahead when one waits, else one started for `call` (seeing
    /// `tenant`); and whether it was prepared.
    async fn take_or_start(
        &self,
        prepared: &PreparedTool,
        tenant: Option<&Path>,
        call: &Dispatch,
    ) -> Result<(Sandbox, bool), BackendError> {
        let plan = &prepared.plan;
        let ready = prepared.ready.as_ref().and_then(|r| {
            let taken = r.take();
            self.ready_counters.count(&plan.name, taken.is_some());
            taken
        });
        if let Some(sandbox) = ready {
            return Ok((sandbox, true));
        }
        let sandbox = self
            .starter
            .start_blocking(
                Arc::clone(plan),
                prepared.args.for_call(tenant),
                self.environment(plan, Some(call)),
            )
            .await
            .map_err(|message| BackendError::Start { message })?;
        Ok((sandbox, false))
    }

    /// Feeds `stdin` to the sandbox and drives it until it ends (by itself, or stopped for the
    /// deadline, the cancel or the shutdown); then the tool's next prepared sandbox is started,
    /// and the sandbox's control group and uid cleared after the answer. How it ended, and
    /// whether the kernel killed inside it for its memory limit.
    async fn run_sandbox(
        &self,
        prepared: &PreparedTool,
        sandbox: Sandbox,
        stdin: Vec<u8>,
        call: &Dispatch,
    ) -> (Result<Ended, spawn::SpawnError>, bool) {
        let Sandbox {
            child,
            group,
            lease,
            ..
        } = sandbox;
        let ended = spawn::drive(
            child,
            Drive {
                stdin,
                stdout_cap: self.options.max_stdout_bytes,
                stderr_cap: self.options.max_stderr_bytes,
                progress: call.progress.clone(),
                deadline: call.deadline.instant(),
                cancel: call.cancel.clone(),
                shutdown: self.shutdown.clone(),
                host_uid: lease.as_ref().map(Lease::uid),
            },
        )
        .await;
        let out_of_memory = group.as_ref().is_some_and(SandboxCgroup::oom_killed);
        if let Some(ready) = &prepared.ready {
            // Replaced once this call's sandbox is gone, not while it still runs: the two
            // would contend for the same kernel locks.
            ready.replace();
        }
        // Nothing of the sandbox runs any more (its pid 1 exited, or it was killed and its uid
        // reaped): its emptied control group is removed, and its uid returned, after the answer.
        // On cgroup v1 the removal waits for the kernel's cgroup lock, which another sandbox's
        // entry into its own group can hold across an RCU grace period (tens of milliseconds).
        let clearing = InFlightGuard::new(&self.clearing);
        tokio::task::spawn_blocking(move || {
            drop(group);
            drop(lease);
            drop(clearing);
        });
        (ended, out_of_memory)
    }
}

/// The call's answer from how its sandbox `unit_id` ended: the tool's result on stdout, or why
/// there is none (stopped, too much output, no valid result: the tail of its stderr).
fn answer(
    ended: Result<Ended, spawn::SpawnError>,
    unit_id: &str,
    plan: &ToolPlan,
    max_stdout_bytes: usize,
) -> Result<Dispatched, BackendError> {
    let unit = Some(unit_id.to_owned());
    let (status, stdout, stderr) = match ended {
        Err(e) => {
            return Err(BackendError::Unit {
                unit_id: unit,
                message: e.to_string(),
            });
        }
        Ok(Ended::Stopped { reason, .. }) => return Err(reason.error(unit, plan.timeout_seconds)),
        Ok(Ended::Overflowed { .. }) => {
            return Err(BackendError::Unit {
                unit_id: unit,
                message: format!(
                    "the tool wrote more than {max_stdout_bytes} bytes to stdout and was stopped"
                ),
            });
        }
        Ok(Ended::Exited {
            status,
            stdout,
            stderr,
        }) => (status, stdout, stderr),
    };
    let parse = match serde_json::from_slice::<ToolOutput>(&stdout) {
        Ok(output) => {
            return Ok(Dispatched {
                output,
                unit_id: unit_id.to_owned(),
            });
        }
        Err(parse) => parse,
    };
    let why = if status.success() {
        format!("the tool exited without a valid result on stdout ({parse})")
    } else {
        format!("the tool failed ({status})")
    };
    let err = tail(&stderr, 1024);
    let message = if err.is_empty() {
        why
    } else {
        format!("{why}: {err}")
    };
    Err(BackendError::Unit {
        unit_id: unit,
        message,
    })
}

/// A unit failure of a sandbox the kernel killed inside for its memory limit, said so rather
/// than "failed".
fn word_out_of_memory(
    result: Result<Dispatched, BackendError>,
    plan: &ToolPlan,
) -> Result<Dispatched, BackendError> {
    match result {
        Err(BackendError::Unit { unit_id, message }) => Err(BackendError::Unit {
            unit_id,
            message: format!(
                "the tool ran out of memory: its sandbox reached the limit of {} MiB for all \
                 its processes ({message})",
                plan.memory_bytes >> 20
            ),
        }),
        other => other,
    }
}

#[async_trait]
impl Backend for LocalBackend {
    async fn dispatch(&self, mut call: Dispatch) -> Result<Dispatched, BackendError> {
        let started = std::time::Instant::now();
        let (prepared, tenant, _running) = self.admit(&call)?;
        let plan = &prepared.plan;
        // A sandbox prepared ahead has no `TRACEPARENT` in its environment: the unit finds the
        // traceparent in the invocation on stdin.
        let unit = call.unit_span("local");
        let stdin = serde_json::to_vec(&call.invocation).map_err(|e| BackendError::Start {
            message: format!("cannot encode the invocation: {e}"),
        })?;
        let _guard = InFlightGuard::new(&self.in_flight);
        let (sandbox, was_prepared) = self
            .take_or_start(prepared, tenant.as_deref(), &call)
            .instrument(unit.clone())
            .await?;
        let unit_id = sandbox.unit_id.clone();
        unit.record("switchboard.unit_id", unit_id.as_str());
        let (ended, out_of_memory) = self
            .run_sandbox(prepared, sandbox, stdin, &call)
            .instrument(unit)
            .await;
        let result = answer(ended, &unit_id, plan, self.options.max_stdout_bytes);
        let result = if out_of_memory {
            word_out_of_memory(result, plan)
        } else {
            result
        };
        // The call's own line (mcp::call) is the one at info; this adds the sandbox's details.
        super::log_finished("local sandbox", &call, started, Some(was_prepared), &result);
        result
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.egress.register(registry);
        self.ready_counters.register(registry);
    }

    async fn shutdown(&self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.in_flight.until_idle()).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.clearing.until_idle()).await;
        // The preparers saw the token: each kills and clears the sandboxes still waiting.
        let preparers = self
            .preparers
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default();
        for preparer in preparers {
            let _ = tokio::time::timeout(Duration::from_secs(10), preparer).await;
        }
        // The proxies stopped with the shutdown token; their sockets go with the folder.
        if let Ok(mut dir) = self.runtime_dir.lock() {
            dir.take();
        }
        if let Ok(mut stage) = self.stage.lock() {
            stage.take();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_setting_parses_and_rejects_nonsense() {
        let map = parse_endpoints("sts=127.0.0.1:4566, s3 = LOCALHOST:4566").expect("valid");
        assert_eq!(
            map.get(&Endpoint::Sts).map(String::as_str),
            Some("127.0.0.1:4566")
        );
        assert_eq!(
            map.get(&Endpoint::S3).map(String::as_str),
            Some("localhost:4566")
        );
        assert!(parse_endpoints("ftp=1.2.3.4:21").is_err());
        assert!(parse_endpoints("sts=nohost").is_err());
    }
}
