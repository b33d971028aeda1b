//! Starting a sandbox's `bwrap` process, and killing what is left of a sandbox: the one sequence
//! the local backend and the LocalStack Lambda host both run, so that a fix lands once.
//!
//! [`spawn`]: the seccomp program goes through a pipe (`--seccomp FD`); the environment is
//! cleared and holds only what the caller passes; the child gets the sandbox's host uid and gid
//! when it has one; between fork and exec (the only `unsafe` of the path) it enters the
//! sandbox's control group ([`crate::cgroup::enter`]) and is prepared ([`prepare_child`]:
//! resource limits, priority, the seccomp pipe's inheritance); then `bwrap` runs.
//!
//! The fork happens on one of a few threads that live as long as this process ([`forkers`]):
//! `bwrap --die-with-parent` asks for `PR_SET_PDEATHSIG`, which the kernel ties to the *thread*
//! that forked `bwrap`, not to its process. Forked from a short-lived thread (a Tokio blocking
//! thread ends after 10 s idle), a sandbox would be killed with SIGKILL when that thread ends,
//! whatever its call's timeout; forked from a lasting thread, it dies with this process only.
//!
//! [`kill`]: the sandbox's init first (pid 1 of its pid namespace: the kernel then kills
//! everything else in the namespace, and `bwrap` reaps it and exits, so no orphan reaches the
//! host's init), then `bwrap` itself if it lingers, then, with [`reap_uid`], whatever still runs
//! under the sandbox's own uid.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Mutex, OnceLock, mpsc};
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::identity::{kill_uid, signal_kill};
use crate::{Rlimits, prepare_child};

/// Why a sandbox could not be started or cleared.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("cannot create the seccomp pipe: {0}")]
    SeccompPipe(std::io::Error),
    #[error("cannot start a sandbox outside of a Tokio runtime")]
    NoRuntime,
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

/// One sandbox's `bwrap` process, as both callers start it.
#[derive(Debug)]
pub struct Spawn<'a> {
    pub bwrap: &'a Path,
    /// bubblewrap's arguments, up to (not including) `--seccomp FD`.
    pub args: &'a [OsString],
    /// The command bubblewrap runs inside.
    pub argv: &'a [String],
    /// The compiled seccomp program ([`crate::seccomp::program_bytes`]).
    pub seccomp: &'a [u8],
    /// The whole environment of the sandbox (nothing of this process's is inherited).
    pub env: &'a [(String, String)],
    /// The sandbox's own host uid (and gid), when this process may give it one.
    pub host_uid: Option<u32>,
    pub limits: Rlimits,
    /// `cgroup.procs` descriptors of the sandbox's control group, entered before `bwrap` runs
    /// (empty without control groups).
    pub cgroup_fds: Vec<RawFd>,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
}

/// Starts `bwrap`. The child is killed if the returned handle is dropped before it exits, and
/// when this process dies (the fork is made on a lasting thread: see the module's documentation).
/// Blocks the calling thread until `bwrap` runs; must be called within a Tokio runtime.
pub fn spawn(spec: Spawn<'_>) -> Result<Child, SpawnError> {
    let (reader, mut writer) = std::io::pipe().map_err(SpawnError::SeccompPipe)?;
    // The program is far smaller than a pipe's buffer, so this write cannot block.
    writer
        .write_all(spec.seccomp)
        .map_err(SpawnError::SeccompPipe)?;
    drop(writer);
    let seccomp_fd = reader.as_raw_fd();

    let mut cmd = Command::new(spec.bwrap);
    cmd.args(spec.args)
        .arg("--seccomp")
        .arg(seccomp_fd.to_string())
        .arg("--")
        .args(spec.argv)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(spec.stdin)
        .stdout(spec.stdout)
        .stderr(spec.stderr)
        .kill_on_drop(true);
    if let Some(uid) = spec.host_uid {
        cmd.uid(uid).gid(uid);
    }
    let limits = spec.limits;
    let cgroup_fds = spec.cgroup_fds;
    #[allow(unsafe_code)]
    // SAFETY: the closure runs in the forked child before exec, where only async-signal-safe
    // calls are allowed: it makes raw system calls (write to the control group's cgroup.procs,
    // fcntl, setrlimit, setpriority) on values moved in beforehand, and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            crate::cgroup::enter(&cgroup_fds)?;
            prepare_child(seccomp_fd, &limits)
        });
    }
    let child = forkers::spawn(cmd)?.map_err(|source| SpawnError::Spawn {
        bwrap: spec.bwrap.display().to_string(),
        source,
    })?;
    // `cmd`, and with it this process's copies of the pipes' other ends, is dropped on return,
    // so a reader of the child's output sees its end when the sandbox is gone.
    drop(reader);
    Ok(child)
}

/// Kills the sandbox whose `bwrap` is `child` and waits until none of its processes is left
/// (see the module's documentation for the order).
pub async fn kill(child: &mut Child, host_uid: Option<u32>) -> Result<(), SpawnError> {
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
    reap_uid(host_uid).await
}

/// Kills every process still running under the sandbox's own uid (none without one): what a
/// sandbox that ended by itself may have left, since its uid is nobody else's.
pub async fn reap_uid(host_uid: Option<u32>) -> Result<(), SpawnError> {
    let Some(uid) = host_uid else {
        return Ok(());
    };
    let left = tokio::task::spawn_blocking(move || kill_uid(uid))
        .await
        .unwrap_or(1);
    if left > 0 {
        return Err(SpawnError::Survivors { uid });
    }
    Ok(())
}

/// The threads sandboxes are forked from: [`FORKERS`] threads, started at the first spawn, that
/// never end (a job that panics is caught), so a child's parent-death signal fires only when
/// this process dies. Several, because a spawn holds its thread until `bwrap` runs, which on
/// cgroup v1 includes the child's wait for its entry into its control group.
mod forkers {
    use super::*;

    /// How many lasting threads fork sandboxes.
    const FORKERS: usize = 8;

    type Job = Box<dyn FnOnce() + Send>;

    fn queue() -> &'static Mutex<mpsc::Sender<Job>> {
        static QUEUE: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
        QUEUE.get_or_init(|| {
            let (tx, rx) = mpsc::channel::<Job>();
            let rx = std::sync::Arc::new(Mutex::new(rx));
            for n in 0..FORKERS {
                let rx = rx.clone();
                let started = std::thread::Builder::new()
                    .name(format!("sandbox-forker-{n}"))
                    .spawn(move || {
                        loop {
                            let job = match rx.lock() {
                                Ok(rx) => rx.recv(),
                                Err(poisoned) => poisoned.into_inner().recv(),
                            };
                            let Ok(job) = job else { return };
                            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                        }
                    });
                // Without any forker, each spawn answers an error (its job is never run).
                drop(started);
            }
            Mutex::new(tx)
        })
    }

    /// Spawns `cmd` on a lasting thread, within the calling thread's Tokio runtime, and waits
    /// for the result.
    pub fn spawn(mut cmd: Command) -> Result<std::io::Result<Child>, SpawnError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| SpawnError::NoRuntime)?;
        let (reply, answer) = mpsc::sync_channel(1);
        let job: Job = Box::new(move || {
            let _entered = runtime.enter();
            let _ = reply.send(cmd.spawn());
        });
        let sent = match queue().lock() {
            Ok(q) => q.send(job),
            Err(poisoned) => poisoned.into_inner().send(job),
        };
        let lost = || {
            Ok(Err(std::io::Error::other(
                "no sandbox forker thread is running",
            )))
        };
        if sent.is_err() {
            return lost();
        }
        answer.recv().map_or_else(|_| lost(), Ok)
    }
}

/// The children of `pid` (for `bwrap`: the sandbox's init).
fn children_of(pid: u32) -> Vec<libc::pid_t> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}
