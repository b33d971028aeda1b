//! `switchboard-localstack-lambda-host`: runs one Lambda execution environment for LocalStack without
//! Docker.
//!
//! LocalStack's `switchboard-sandbox` executor (`localstack/plugin/`) starts one host process
//! per execution environment, where its Docker executor would start a container running its
//! runtime-init. The host speaks LocalStack's executor protocol on one side ([`localstack`]) and
//! the Lambda Runtime API on the other ([`runtime_api`]), and runs the function's `bootstrap` in
//! a bubblewrap sandbox with no network but loopback ([`sandbox`]); inside, this same binary
//! forwards `127.0.0.1:9001` to the Runtime API's Unix socket ([`forwarder`]).
//!
//! The host reads its configuration as one JSON line on stdin ([`config`]), prints
//! `{"port": N}` on stdout once LocalStack can reach it, and stops (killing the sandbox) when
//! stdin closes, on SIGTERM or on SIGINT. `docs/localstack-lambda.md` tells the whole story.

pub mod config;
pub mod environment;
pub mod forwarder;
pub mod localstack;
pub mod logs;
pub mod payload;
pub mod runtime_api;
pub mod sandbox;

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use switchboard_sandbox::cgroup::Cgroups;
use switchboard_sandbox::stage::Stage;
use switchboard_sandbox::{identity, seccomp};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use crate::config::{ConfigError, HostConfig, MAX_LOG_BYTES, RUNTIME_API_PORT};
use crate::environment::{Environment, SandboxPlan};
use crate::localstack::{CallbackError, Callbacks};
use crate::logs::LogCollector;
use crate::runtime_api::RuntimeApi;
use crate::sandbox::{Layout, SandboxError};

/// Why the host could not serve.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Identity(#[from] identity::IdentityError),
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error(transparent)]
    Callback(#[from] CallbackError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("cannot find this program's own executable: {0}")]
    CurrentExe(std::io::Error),
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot listen for LocalStack on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("cannot tell LocalStack the port: {0}")]
    Announce(std::io::Error),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HostError {
    let path = path.to_path_buf();
    move |source| HostError::Io { what, path, source }
}

/// Reads the configuration from `stdin`, serves the environment, and returns once `stdin`
/// closes or a termination signal arrives; nothing of the environment is left then.
pub async fn serve<R>(stdin: R) -> Result<(), HostError>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let mut stdin = BufReader::new(stdin);
    let mut line = String::new();
    let read = stdin
        .read_line(&mut line)
        .await
        .map_err(ConfigError::Read)?;
    if read == 0 {
        return Err(ConfigError::Missing.into());
    }
    let config = HostConfig::parse(line.trim())?;
    tracing::info!(?config, "starting an execution environment");

    let lease = if identity::is_root() {
        Some(identity::lease(
            &config.uid_lock_dir,
            config.host_uid_base,
            config.host_uid_count,
            &config.runtime_id,
        )?)
    } else {
        None
    };
    let host_uid = lease.as_ref().map(identity::UidLease::uid);

    let work_dir = WorkDir::create(&config.work_dir)?;
    // As root, the sandbox runs under an unprivileged uid: what it cannot reach is staged.
    let stage = host_uid
        .map(|_| open_stage(&std::env::temp_dir()))
        .transpose()?;
    let (socket_dir, blocker) = sandbox::socket_folder(&work_dir.0, stage.as_ref())?;
    if let Some(blocker) = blocker {
        tracing::info!(
            "the Runtime API's socket is in the stage folder: the sandbox's uid cannot reach {} \
             ({} is private)",
            work_dir.0.display(),
            blocker.display()
        );
    }
    let socket = socket_dir.join("runtime.sock");
    let unix = tokio::net::UnixListener::bind(&socket).map_err(io("cannot bind", &socket))?;
    if let Some(uid) = host_uid {
        std::os::unix::fs::chown(&socket, Some(uid), Some(uid))
            .map_err(io("cannot chown", &socket))?;
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(io("cannot chmod", &socket))?;

    let mut layout = Layout {
        code_dir: config.code_dir.clone(),
        host_binary: std::env::current_exe().map_err(HostError::CurrentExe)?,
        socket,
        scratch_bytes: config.scratch_bytes(),
        runtime_api_port: RUNTIME_API_PORT,
    };
    if let Some(stage) = &stage {
        for (path, blocker) in layout.stage_unreachable(stage)? {
            tracing::info!(
                "staged a copy of {} for the sandbox: its uid cannot reach it ({} is private)",
                path.display(),
                blocker.display()
            );
        }
        layout.check_reachable()?;
    }
    let plan = SandboxPlan {
        bwrap: match &config.bwrap {
            Some(path) => path.clone(),
            None => sandbox::find_bwrap()?,
        },
        layout,
        seccomp: seccomp::program_bytes()?,
        host_uid,
        cgroups: control_groups(),
    };

    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let api = RuntimeApi::new(events_tx);
    let runtime_app = runtime_api::router(Arc::clone(&api));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(unix, runtime_app).await {
            tracing::error!("the Runtime API stopped: {e}");
        }
    });

    let (invoke_tx, mut invoke_rx) = mpsc::channel(16);
    let tcp = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(HostError::Listen)?;
    let port = tcp.local_addr().map_err(HostError::Listen)?.port();
    tokio::spawn(async move {
        if let Err(e) = axum::serve(tcp, localstack::router(invoke_tx)).await {
            tracing::error!("the invoke endpoint stopped: {e}");
        }
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", serde_json::json!({ "port": port }))
            .and_then(|()| out.flush())
            .map_err(HostError::Announce)?;
    }

    let callbacks = Callbacks::new(&config.runtime_endpoint, &config.runtime_id)?;
    let logs = Arc::new(LogCollector::new(MAX_LOG_BYTES));
    let mut environment = Environment::new(config, plan, api, events_rx, callbacks, logs);
    tokio::select! {
        () = environment.run(&mut invoke_rx) => {}
        () = stop_requested(stdin) => tracing::info!("stopping"),
    }
    environment.stop().await;
    drop(work_dir);
    drop(stage);
    drop(lease);
    Ok(())
}

/// This host's control groups, or `None` (with a warning) where the machine has none it may use:
/// the function's memory is then limited per process only (RLIMIT_DATA).
fn control_groups() -> Option<Cgroups> {
    match Cgroups::new() {
        Ok(c) => {
            if c.leftovers_removed() > 0 {
                tracing::info!(
                    "removed {} control group(s) left by processes that are gone",
                    c.leftovers_removed()
                );
            }
            tracing::debug!("each sandbox gets its own control group ({})", c.describe());
            Some(c)
        }
        Err(e) => {
            tracing::warn!(
                "no control group per sandbox, the function's memory is limited per process only: {e}"
            );
            None
        }
    }
}

/// This host's stage folder in `parent` (the temporary folder), after removing those of hosts
/// that are gone, saying which it removed.
fn open_stage(parent: &Path) -> Result<Stage, HostError> {
    let stage = Stage::new(parent, sandbox::STAGE_PREFIX).map_err(SandboxError::Stage)?;
    for (path, pid) in stage.removed_leftovers() {
        tracing::info!(
            "removed {}, the stage folder of host process {pid}, which is gone",
            path.display()
        );
    }
    Ok(stage)
}

/// Resolves when stdin reaches its end (LocalStack stopped the environment, or died) or a
/// SIGTERM / SIGINT arrives.
async fn stop_requested<R: AsyncRead + Unpin>(mut stdin: BufReader<R>) {
    let eof = async {
        let mut buf = [0u8; 256];
        loop {
            match stdin.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    let term = async {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut t), Ok(mut i)) => {
                tokio::select! {
                    _ = t.recv() => {}
                    _ = i.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = eof => {}
        () = term => {}
    }
}

/// The environment's own folder, removed when dropped.
#[derive(Debug)]
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(path: &Path) -> Result<Self, HostError> {
        if let Some(parent) = path.parent() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(parent)
                .map_err(io("cannot create", parent))?;
        }
        let _ = std::fs::remove_dir_all(path);
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(path)
            .map_err(io("cannot create", path))?;
        // The mode given at creation is filtered by the umask; set it exactly.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o711))
            .map_err(io("cannot chmod", path))?;
        Ok(Self(path.to_path_buf()))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
