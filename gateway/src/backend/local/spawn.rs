//! Starting one sandbox, feeding it, bounding it, and making sure nothing of it survives.
//!
//! The gateway spawns `bwrap` with a cleared environment and three pipes. Between fork and exec
//! (the only `unsafe` of the backend) the child lowers its resource limits, lowers its CPU
//! priority and unmasks the inheritance of the pipe that carries the seccomp program; when the
//! gateway runs as root the child has already switched to the sandbox's leased host uid.
//! bubblewrap then builds the namespaces, installs the filter and executes the tool.
//!
//! The sandbox ends in one of two ways. Either the tool exits: bubblewrap's init (pid 1 of the
//! sandbox's pid namespace) exits with it and the kernel kills whatever else ran in that
//! namespace before `bwrap` returns. Or the gateway kills it (cancel, deadline, shutdown, too
//! much output): `bwrap` gets SIGKILL, its init follows through `--die-with-parent`, and, when
//! the sandbox has a host uid of its own, every process of that uid is killed until none is left.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use switchboard_sandbox::Rlimits;
use switchboard_sandbox::identity::{kill_uid, signal_kill};
use switchboard_sandbox::prepare_child;

/// Why a sandbox could not be run.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the seccomp pipe: {0}")]
    SeccompPipe(std::io::Error),
    #[error("cannot start {bwrap}: {source}")]
    Spawn {
        bwrap: String,
        source: std::io::Error,
    },
    #[error("cannot wait for the sandbox: {0}")]
    Wait(std::io::Error),
    #[error("processes of uid {uid} were still alive after the sandbox was killed")]
    Survivors { uid: u32 },
}

/// Everything needed to run one sandbox.
#[derive(Debug)]
pub struct Launch<'a> {
    pub bwrap: &'a Path,
    pub args: Vec<OsString>,
    pub argv: &'a [String],
    pub seccomp: &'a [u8],
    pub env: Vec<(String, String)>,
    pub host_uid: Option<u32>,
    pub limits: Rlimits,
    /// `cgroup.procs` descriptors of the sandbox's control group, entered before `bwrap` runs
    /// (empty without control groups).
    pub cgroup_fds: Vec<std::os::fd::RawFd>,
    pub stdin: Vec<u8>,
    /// Bytes of stdout, progress lines included; more kills the sandbox.
    pub stdout_cap: usize,
    pub stderr_cap: usize,
    /// Where the unit's progress lines go as they arrive ([`super::stdout`]).
    pub progress: tokio::sync::mpsc::Sender<crate::backend::Progress>,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub shutdown: CancellationToken,
}

/// Why the gateway stopped a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    Cancelled,
    Shutdown,
    Deadline,
    StdoutOverflow,
}

/// How a sandbox ended.
#[derive(Debug)]
pub enum Ended {
    Exited {
        status: ExitStatus,
        /// stdout without its progress lines.
        stdout: Vec<u8>,
        stderr: Vec<u8>,
    },
    Killed {
        reason: KillReason,
        stderr: Vec<u8>,
    },
}

/// Runs one sandbox to its end. When this returns, no process of the sandbox is left.
pub async fn run(launch: Launch<'_>) -> Result<Ended, SpawnError> {
    let (reader, mut writer) = std::io::pipe().map_err(SpawnError::SeccompPipe)?;
    // The program is far smaller than a pipe's buffer, so this write cannot block.
    writer
        .write_all(launch.seccomp)
        .map_err(SpawnError::SeccompPipe)?;
    drop(writer);
    let seccomp_fd = reader.as_raw_fd();

    let mut cmd = Command::new(launch.bwrap);
    cmd.args(&launch.args)
        .arg("--seccomp")
        .arg(seccomp_fd.to_string())
        .arg("--")
        .args(launch.argv)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(uid) = launch.host_uid {
        cmd.uid(uid).gid(uid);
    }
    let limits = launch.limits;
    let cgroup_fds = launch.cgroup_fds.clone();
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes raw system calls (write to the control group's cgroup.procs,
    // fcntl, setrlimit, setpriority) on values copied in beforehand, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            switchboard_sandbox::cgroup::enter(&cgroup_fds)?;
            prepare_child(seccomp_fd, &limits)
        });
    }
    let mut child = cmd.spawn().map_err(|source| SpawnError::Spawn {
        bwrap: launch.bwrap.display().to_string(),
        source,
    })?;
    drop(reader);

    let mut stdin = child.stdin.take();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let input = launch.stdin;
    // stdin is written in the background: a tool that never reads it must not stall the call.
    let feeder = tokio::spawn(async move {
        if let Some(mut pipe) = stdin.take() {
            let _ = pipe.write_all(&input).await;
            let _ = pipe.shutdown().await;
        }
    });
    let stderr_task = tokio::spawn(read_capped(stderr, launch.stderr_cap));

    let outcome = {
        let finished = async {
            // Progress lines are forwarded as they come; the rest is the result.
            let out = super::stdout::read(stdout, launch.stdout_cap, &launch.progress).await;
            if out.overflowed {
                return Err(KillReason::StdoutOverflow);
            }
            Ok((child.wait().await, out.result))
        };
        tokio::pin!(finished);
        tokio::select! {
            biased;
            r = &mut finished => r,
            () = launch.cancel.cancelled() => Err(KillReason::Cancelled),
            () = launch.shutdown.cancelled() => Err(KillReason::Shutdown),
            () = tokio::time::sleep_until(launch.deadline) => Err(KillReason::Deadline),
        }
    };
    feeder.abort();
    match outcome {
        Ok((status, stdout)) => {
            let status = status.map_err(SpawnError::Wait)?;
            let stderr = stderr_task.await.map(|o| o.bytes).unwrap_or_default();
            Ok(Ended::Exited {
                status,
                stdout,
                stderr,
            })
        }
        Err(reason) => {
            kill(&mut child, launch.host_uid).await?;
            let stderr = stderr_task.await.map(|o| o.bytes).unwrap_or_default();
            Ok(Ended::Killed { reason, stderr })
        }
    }
}

/// Kills the sandbox: its init first (pid 1 of its pid namespace: the kernel then kills
/// everything else in it and `bwrap` reaps it and exits, so no orphan is left to the host's
/// init), then `bwrap` itself if it lingers, then whatever still runs under the sandbox's uid.
async fn kill(child: &mut Child, host_uid: Option<u32>) -> Result<(), SpawnError> {
    let inits = child.id().map(children_of).unwrap_or_default();
    for pid in &inits {
        signal_kill(*pid);
    }
    let grace = if inits.is_empty() {
        Duration::ZERO
    } else {
        Duration::from_secs(1)
    };
    match tokio::time::timeout(grace, child.wait()).await {
        Ok(status) => {
            status.map_err(SpawnError::Wait)?;
        }
        Err(_) => {
            let _ = child.start_kill();
            child.wait().await.map_err(SpawnError::Wait)?;
        }
    }
    if let Some(uid) = host_uid {
        let left = tokio::task::spawn_blocking(move || kill_uid(uid))
            .await
            .unwrap_or(1);
        if left > 0 {
            return Err(SpawnError::Survivors { uid });
        }
    }
    Ok(())
}

/// The children of `pid` (for `bwrap`: the sandbox's init).
fn children_of(pid: u32) -> Vec<libc::pid_t> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// What was read from a pipe, at most `cap` bytes.
#[derive(Debug, Default)]
struct Captured {
    bytes: Vec<u8>,
}

/// Reads until EOF, keeping at most `cap` bytes and draining and dropping the rest (stderr:
/// diagnostics only). stdout is read by [`super::stdout::read`].
async fn read_capped<R: AsyncRead + Unpin>(pipe: Option<R>, cap: usize) -> Captured {
    let Some(mut pipe) = pipe else {
        return Captured::default();
    };
    let mut out = Captured::default();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let room = cap.saturating_sub(out.bytes.len());
                out.bytes.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
}
