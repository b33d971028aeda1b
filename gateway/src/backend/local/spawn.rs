//! Starting one sandbox, feeding it, bounding it, and making sure nothing of it survives.
//!
//! The gateway spawns `bwrap` with three pipes through [`switchboard_sandbox::spawn`], the
//! sequence the LocalStack Lambda host runs too: a cleared environment, the sandbox's leased host
//! uid when the gateway runs as root, and, between fork and exec, the control group, the resource
//! limits, a lower CPU priority and the pipe that carries the seccomp program. bubblewrap then
//! builds the namespaces, installs the filter and executes the tool.
//!
//! The sandbox ends in one of two ways. Either the tool exits: bubblewrap's init (pid 1 of the
//! sandbox's pid namespace) exits with it and the kernel kills whatever else ran in that
//! namespace before `bwrap` returns. Or the gateway kills it (cancel, deadline, shutdown, too
//! much output): `bwrap` gets SIGKILL, its init follows through `--die-with-parent`, and, when
//! the sandbox has a host uid of its own, every process of that uid is killed until none is left.

use std::ffi::OsString;
use std::path::Path;
use std::process::{ExitStatus, Stdio};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use switchboard_sandbox::Rlimits;
use switchboard_sandbox::spawn::Spawn;

use crate::backend::StopReason;

/// Why a sandbox could not be run (the shared sequence's errors).
pub use switchboard_sandbox::spawn::SpawnError;

/// Everything needed to start one sandbox.
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
}

/// What a started sandbox is given and bounded by for its one call.
#[derive(Debug)]
pub struct Drive {
    pub stdin: Vec<u8>,
    /// Bytes of stdout, progress lines included; more kills the sandbox.
    pub stdout_cap: usize,
    pub stderr_cap: usize,
    /// Where the unit's progress lines go as they arrive ([`super::stdout`]).
    pub progress: tokio::sync::mpsc::Sender<crate::backend::Progress>,
    pub deadline: Instant,
    pub cancel: CancellationToken,
    pub shutdown: CancellationToken,
    /// The sandbox's host uid, when it has one (what is left of it is killed by uid).
    pub host_uid: Option<u32>,
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
    /// Killed for the call's cancel, the gateway's shutdown or the deadline.
    Stopped { reason: StopReason, stderr: Vec<u8> },
    /// Killed for writing more than its stdout cap.
    Overflowed { stderr: Vec<u8> },
}

/// Why [`drive`] killed a sandbox.
enum Killed {
    Stopped(StopReason),
    Overflowed,
}

/// Starts `bwrap` with three pipes; the sandbox then waits for its invocation on stdin.
pub fn start(launch: Launch<'_>) -> Result<Child, SpawnError> {
    switchboard_sandbox::spawn::spawn(Spawn {
        bwrap: launch.bwrap,
        args: &launch.args,
        argv: launch.argv,
        seccomp: launch.seccomp,
        env: &launch.env,
        host_uid: launch.host_uid,
        limits: launch.limits,
        cgroup_fds: launch.cgroup_fds,
        stdin: Stdio::piped(),
        stdout: Stdio::piped(),
        stderr: Stdio::piped(),
    })
}

/// Runs a started sandbox (from [`start`]) through its one call to its end. When this returns,
/// no process of the sandbox is left.
pub async fn drive(mut child: Child, launch: Drive) -> Result<Ended, SpawnError> {
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
                return Err(Killed::Overflowed);
            }
            Ok((child.wait().await, out.result))
        };
        tokio::pin!(finished);
        tokio::select! {
            biased;
            r = &mut finished => r,
            () = launch.shutdown.cancelled() => Err(Killed::Stopped(StopReason::Shutdown)),
            () = launch.cancel.cancelled() => Err(Killed::Stopped(StopReason::Cancelled)),
            () = tokio::time::sleep_until(launch.deadline) => Err(Killed::Stopped(StopReason::Deadline)),
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
        Err(killed) => {
            switchboard_sandbox::spawn::kill(&mut child, launch.host_uid).await?;
            let stderr = stderr_task.await.map(|o| o.bytes).unwrap_or_default();
            Ok(match killed {
                Killed::Stopped(reason) => Ended::Stopped { reason, stderr },
                Killed::Overflowed => Ended::Overflowed { stderr },
            })
        }
    }
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
    let mut buf = vec![0u8; super::stdout::READ_CHUNK];
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
