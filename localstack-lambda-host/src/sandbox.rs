//! The bubblewrap sandbox one execution environment's function runs in, and its supervision.
//!
//! Layout inside: a read-only root holding `/usr` (and the `/lib*`, `/bin` links into it), the
//! function's code at `/var/task`, this host's own binary at [`FORWARDER`] and the Runtime API's
//! Unix socket at [`RUNTIME_SOCKET`]; `/proc`, a minimal `/dev`; `/tmp` a tmpfs of the function's
//! ephemeral storage size. New user, mount, pid, IPC, UTS, network and cgroup namespaces: the
//! network namespace has loopback only, so the function reaches nothing but the Runtime API
//! (through the forwarder, [`crate::forwarder`]). uid 993 / gid 990 inside (Lambda's
//! `sbx_user1051`), an unprivileged leased uid outside when the host is root
//! ([`switchboard_sandbox::identity`]); no capabilities; a new session; the project's seccomp
//! filter (the local backend's, [`switchboard_sandbox::seccomp`]); resource limits
//! ([`Rlimits`]); and, where the host may make control groups, a group of its own whose memory
//! limit (the function's memory size plus its ephemeral storage: `/tmp` is a tmpfs charged to the
//! group) and process limit hold for all its processes together. Stdout and stderr share one pipe to the host. The arguments, the limits, the spawn
//! sequence and the kill-and-reap are `switchboard-sandbox`'s, the same as the local backend's.
//!
//! As root, the host checks that the sandbox's unprivileged uid can reach what is bound in: the
//! code must be listed, this binary read, the socket's folder searched. What it cannot (a
//! checkout or LocalStack volume under a `0700` folder, as root's home and many CI runners'
//! workspaces are) is staged ([`Layout::stage_unreachable`], [`socket_folder`]): copied, once at
//! start, into `<temp dir>/switchboard-lambda-stage-<pid>-<random>`
//! ([`switchboard_sandbox::stage`], the gateway's staging), the socket made there, and the copy
//! bound in its place; the folder goes when the host exits, one left by a killed host at the next
//! host's start.
//!
//! The sandbox is warm: it lives across invocations until the host kills it (timeout, shutdown)
//! or the runtime exits. Killing `bwrap` takes its pid namespace down (`--die-with-parent` on
//! its init); when the sandbox has a uid of its own, every process of that uid is killed too.

use std::ffi::OsString;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use tokio::net::unix::pipe;
use tokio::process::Child;
use tokio::sync::{mpsc, oneshot};

use switchboard_sandbox::cgroup::SandboxCgroup;
use switchboard_sandbox::spawn::{self, Spawn};
use switchboard_sandbox::stage::{Stage, StageError};
use switchboard_sandbox::{Bwrap, paths};

pub use switchboard_sandbox::Rlimits;
pub use switchboard_sandbox::child::UNLIMITED;

use crate::logs::LogCollector;

/// uid and gid of the function inside its sandbox (Lambda's `sbx_user1051`).
pub const SANDBOX_UID: u32 = 993;
pub const SANDBOX_GID: u32 = 990;
/// The function's code.
pub const TASK_ROOT: &str = "/var/task";
/// This binary inside the sandbox, run as the forwarder (`sandbox-init`).
pub const FORWARDER: &str = "/var/rapid/switchboard-localstack-lambda-host";
/// The Runtime API's Unix socket inside the sandbox.
pub const RUNTIME_SOCKET: &str = "/var/rapid/runtime.sock";
/// Scratch.
pub const SCRATCH: &str = "/tmp";
/// The prefix of a host's stage folder in the temporary folder (`switchboard_sandbox::stage`):
/// copies of what the sandbox's unprivileged uid cannot reach.
pub const STAGE_PREFIX: &str = "switchboard-lambda-stage-";

/// Why a sandbox could not be started or stopped.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "bubblewrap (`bwrap`) is not installed; install it (Debian/Ubuntu: apt-get install \
         bubblewrap) and start again"
    )]
    NoBwrap,
    #[error(
        "{path} cannot be reached by the sandbox's unprivileged uid: {blocker} is not \
         readable/searchable by others (the copy staged for it is under the temporary folder: \
         make TMPDIR a folder others may pass through)"
    )]
    Unreachable { path: PathBuf, blocker: PathBuf },
    #[error("cannot stage what the sandbox's unprivileged uid cannot reach: {0}")]
    Stage(#[from] StageError),
    #[error("cannot create the output pipe: {0}")]
    Pipe(std::io::Error),
    #[error(transparent)]
    Spawn(#[from] switchboard_sandbox::spawn::SpawnError),
    #[error("cannot make the sandbox's control group: {0}")]
    Cgroup(#[from] switchboard_sandbox::cgroup::CgroupError),
}

/// Where things are on the host.
#[derive(Debug, Clone)]
pub struct Layout {
    pub code_dir: PathBuf,
    pub host_binary: PathBuf,
    pub socket: PathBuf,
    pub scratch_bytes: u64,
    pub runtime_api_port: u16,
}

impl Layout {
    /// The bubblewrap arguments, up to (not including) `--seccomp FD`.
    pub fn bwrap_args(&self) -> Vec<OsString> {
        Bwrap::new()
            .unshare_all_but_cgroup()
            .unshare_cgroup(false)
            .ids(SANDBOX_UID, SANDBOX_GID)
            .hostname("lambda")
            .die_with_parent()
            .new_session()
            .cap_drop_all()
            .host_system()
            .ro_bind_try("/etc/ssl/certs", "/etc/ssl/certs")
            .proc("/proc")
            .dev("/dev")
            .scratch(SCRATCH, self.scratch_bytes)
            .ro_bind(&self.code_dir, TASK_ROOT)
            .ro_bind(&self.host_binary, FORWARDER)
            .bind(&self.socket, RUNTIME_SOCKET)
            .remount_root_read_only()
            .chdir(TASK_ROOT)
            .into_args()
    }

    /// The command bubblewrap runs: the forwarder, which starts the bootstrap.
    pub fn command(&self) -> Vec<String> {
        vec![
            FORWARDER.into(),
            "sandbox-init".into(),
            "--socket".into(),
            RUNTIME_SOCKET.into(),
            "--port".into(),
            self.runtime_api_port.to_string(),
            "--".into(),
            format!("{TASK_ROOT}/bootstrap"),
        ]
    }

    /// Copies into `stage` what a process of another, unprivileged uid could not open (the
    /// function's code, this binary: a checkout or LocalStack volume under a `0700` folder) and
    /// binds the copies instead. Returns, for each path staged, the original and the folder that
    /// blocked it. The socket cannot be copied: [`socket_folder`] places it.
    pub fn stage_unreachable(
        &mut self,
        stage: &Stage,
    ) -> Result<Vec<(PathBuf, PathBuf)>, SandboxError> {
        let mut staged = Vec::new();
        for (path, needs) in [
            (&mut self.code_dir, paths::LIST),
            (&mut self.host_binary, paths::READ),
        ] {
            if let Some(blocker) = paths::unreachable_part(path, needs) {
                let copy = stage.place(path)?;
                staged.push((std::mem::replace(path, copy), blocker));
            }
        }
        Ok(staged)
    }

    /// Checks that a process of another, unprivileged uid can open what is bound in.
    pub fn check_reachable(&self) -> Result<(), SandboxError> {
        let socket_dir = self
            .socket
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        // The code must be listed and read, the binary read, the socket's folder only searched.
        for (path, needs) in [
            (&self.code_dir, paths::LIST),
            (&self.host_binary, paths::READ),
            (&socket_dir, paths::SEARCH),
        ] {
            if let Some(blocker) = paths::unreachable_part(path, needs) {
                return Err(SandboxError::Unreachable {
                    path: path.clone(),
                    blocker,
                });
            }
        }
        Ok(())
    }
}

/// The folder for the Runtime API's socket: `work_dir` when an unprivileged uid may pass
/// through it, or else (with the folder that blocked it) a folder made in `stage`.
pub fn socket_folder(
    work_dir: &Path,
    stage: Option<&Stage>,
) -> Result<(PathBuf, Option<PathBuf>), SandboxError> {
    match (stage, paths::unreachable_part(work_dir, paths::SEARCH)) {
        (Some(stage), Some(blocker)) => Ok((stage.folder("runtime")?, Some(blocker))),
        _ => Ok((work_dir.to_path_buf(), None)),
    }
}

/// The bubblewrap executable on `PATH`.
pub fn find_bwrap() -> Result<PathBuf, SandboxError> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    paths::find_executable("bwrap", &path).ok_or(SandboxError::NoBwrap)
}

/// Everything needed to start one sandbox.
#[derive(Debug)]
pub struct Launch<'a> {
    pub bwrap: &'a Path,
    pub layout: &'a Layout,
    pub seccomp: &'a [u8],
    pub env: &'a [(String, String)],
    pub host_uid: Option<u32>,
    pub limits: Rlimits,
    /// The sandbox's control group (memory and processes of all its processes together), when
    /// this host has control groups.
    pub cgroup: Option<SandboxCgroup>,
}

/// A started sandbox: the `bwrap` process, the read end of its output pipe, its control group.
#[derive(Debug)]
pub struct Started {
    child: Child,
    output: OwnedFd,
    cgroup: Option<SandboxCgroup>,
}

/// Starts a sandbox, with the sequence the gateway's local backend runs too
/// ([`switchboard_sandbox::spawn`]).
pub fn start(launch: Launch<'_>) -> Result<Started, SandboxError> {
    let (out_reader, out_writer) = std::io::pipe().map_err(SandboxError::Pipe)?;
    let err_writer = out_writer.try_clone().map_err(SandboxError::Pipe)?;
    let child = spawn::spawn(Spawn {
        bwrap: launch.bwrap,
        args: &launch.layout.bwrap_args(),
        argv: &launch.layout.command(),
        seccomp: launch.seccomp,
        env: launch.env,
        host_uid: launch.host_uid,
        limits: launch.limits,
        cgroup_fds: launch
            .cgroup
            .as_ref()
            .map(SandboxCgroup::entry_fds)
            .unwrap_or_default(),
        stdin: Stdio::null(),
        stdout: Stdio::from(out_writer),
        stderr: Stdio::from(err_writer),
    })?;
    Ok(Started {
        child,
        output: OwnedFd::from(out_reader),
        cgroup: launch.cgroup,
    })
}

/// A running, supervised sandbox.
#[derive(Debug)]
pub struct Supervised {
    pub generation: u64,
    kill: Option<oneshot::Sender<oneshot::Sender<()>>>,
    drain: mpsc::Sender<oneshot::Sender<()>>,
}

impl Supervised {
    /// Kills the sandbox and waits until none of its processes is left.
    pub async fn kill(&mut self) {
        if let Some(kill) = self.kill.take() {
            let (done_tx, done_rx) = oneshot::channel();
            if kill.send(done_tx).is_ok() {
                let _ = done_rx.await;
            }
        }
    }

    /// Waits until every byte the sandbox has written so far is in the collector.
    pub async fn drain_output(&self) {
        let (tx, rx) = oneshot::channel();
        if self.drain.send(tx).await.is_ok() {
            let _ = rx.await;
        }
    }
}

/// Supervises a started sandbox: its output goes to `logs` (and to this process's stderr), and
/// `on_exit` is called with its status when it ends by itself (not when it is killed). Either
/// way, what is left of it (processes of its uid, its control group) is cleared first.
pub fn supervise<F>(
    started: Started,
    generation: u64,
    host_uid: Option<u32>,
    logs: Arc<LogCollector>,
    on_exit: F,
) -> Supervised
where
    F: FnOnce(ExitStatus) + Send + 'static,
{
    let Started {
        mut child,
        output,
        cgroup,
    } = started;
    let (drain_tx, drain_rx) = mpsc::channel(4);
    tokio::spawn(read_output(output, logs, drain_rx));
    let (kill_tx, kill_rx) = oneshot::channel::<oneshot::Sender<()>>();
    tokio::spawn(async move {
        tokio::select! {
            status = child.wait() => {
                clear(spawn::reap_uid(host_uid).await, cgroup).await;
                match status {
                    Ok(status) => on_exit(status),
                    Err(e) => tracing::error!("cannot wait for the sandbox: {e}"),
                }
            }
            request = kill_rx => {
                clear(spawn::kill(&mut child, host_uid).await, cgroup).await;
                if let Ok(done) = request {
                    let _ = done.send(());
                }
            }
        }
    });
    Supervised {
        generation,
        kill: Some(kill_tx),
        drain: drain_tx,
    }
}

/// Logs what killing and reaping could not do, then empties and removes the control group.
async fn clear(reaped: Result<(), spawn::SpawnError>, cgroup: Option<SandboxCgroup>) {
    if let Err(e) = reaped {
        tracing::error!("{e}");
    }
    if let Some(group) = cgroup {
        if group.oom_killed() {
            tracing::warn!("the sandbox reached its memory limit: the kernel killed in it");
        }
        // Kills what is left in the group and removes it (blocking file-system calls).
        let _ = tokio::task::spawn_blocking(move || drop(group)).await;
    }
}

/// Reads the sandbox's output until its end, answering drain requests with what is in the pipe
/// right now.
async fn read_output(
    fd: OwnedFd,
    logs: Arc<LogCollector>,
    mut drain: mpsc::Receiver<oneshot::Sender<()>>,
) {
    let pipe = match pipe::Receiver::from_owned_fd(fd) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("cannot read the sandbox's output: {e}");
            return;
        }
    };
    let mut text = Utf8Chunks::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut open = true;
    while open {
        tokio::select! {
            ready = pipe.readable() => {
                if ready.is_err() {
                    break;
                }
                open = read_available(&pipe, &mut buf, &mut text, &logs);
            }
            Some(done) = drain.recv() => {
                open = read_available(&pipe, &mut buf, &mut text, &logs);
                let _ = done.send(());
            }
        }
    }
    logs.push(&text.finish());
    // Keep answering drains after the end, so nobody waits forever.
    while let Some(done) = drain.recv().await {
        let _ = done.send(());
    }
}

/// Reads until the pipe would block; `false` at the end of output.
fn read_available(
    pipe: &pipe::Receiver,
    buf: &mut [u8],
    text: &mut Utf8Chunks,
    logs: &LogCollector,
) -> bool {
    loop {
        match pipe.try_read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                let _ = std::io::stderr().write_all(&buf[..n]);
                logs.push(&text.feed(&buf[..n]));
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// Turns a byte stream into text without splitting a character between two chunks.
#[derive(Debug, Default)]
struct Utf8Chunks {
    pending: Vec<u8>,
}

impl Utf8Chunks {
    fn feed(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        match std::str::from_utf8(&self.pending) {
            Ok(s) => {
                let out = s.to_owned();
                self.pending.clear();
                out
            }
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                let out = String::from_utf8_lossy(&self.pending[..valid]).into_owned();
                self.pending.drain(..valid);
                out
            }
            Err(_) => {
                let out = String::from_utf8_lossy(&self.pending).into_owned();
                self.pending.clear();
                out
            }
        }
    }

    fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            code_dir: "/srv/code".into(),
            host_binary: "/opt/host".into(),
            socket: "/run/x/runtime.sock".into(),
            scratch_bytes: 512 << 20,
            runtime_api_port: 9001,
        }
    }

    #[test]
    fn arguments_unshare_everything_and_mount_the_lambda_layout() {
        let joined = layout()
            .bwrap_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        for flag in [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--die-with-parent",
            "--new-session",
            "--cap-drop ALL",
            "--uid 993 --gid 990",
            "--ro-bind /srv/code /var/task",
            "--ro-bind /opt/host /var/rapid/switchboard-localstack-lambda-host",
            "--bind /run/x/runtime.sock /var/rapid/runtime.sock",
        ] {
            assert!(joined.contains(flag), "missing {flag} in {joined}");
        }
        assert!(
            joined.contains(&format!(
                "--size {} --perms 0700 --tmpfs /tmp",
                512u64 << 20
            )),
            "{joined}"
        );
        assert!(joined.ends_with("--remount-ro / --chdir /var/task"));
        assert!(!joined.contains("--share-net"));
        // The exact order around the host's own /lib links.
        assert!(
            joined.starts_with(
                "--unshare-user --unshare-ipc --unshare-pid --unshare-net --unshare-uts \
                 --unshare-cgroup-try --uid 993 --gid 990 --hostname lambda --die-with-parent \
                 --new-session --cap-drop ALL --ro-bind /usr /usr "
            ),
            "{joined}"
        );
        let tail = format!(
            "--ro-bind-try /etc/ld.so.cache /etc/ld.so.cache \
             --ro-bind-try /etc/ssl/certs /etc/ssl/certs --proc /proc --dev /dev \
             --size {} --perms 0700 --tmpfs /tmp --ro-bind /srv/code /var/task \
             --ro-bind /opt/host /var/rapid/switchboard-localstack-lambda-host \
             --bind /run/x/runtime.sock /var/rapid/runtime.sock \
             --remount-ro / --chdir /var/task",
            512u64 << 20
        );
        assert!(joined.ends_with(&tail), "{joined}");
    }

    #[test]
    fn the_command_is_the_forwarder_then_the_bootstrap() {
        assert_eq!(
            layout().command().join(" "),
            "/var/rapid/switchboard-localstack-lambda-host sandbox-init --socket /var/rapid/runtime.sock \
             --port 9001 -- /var/task/bootstrap"
        );
    }

    #[test]
    fn what_a_private_folder_hides_is_staged_and_what_others_reach_is_not() {
        use std::os::unix::fs::PermissionsExt as _;
        let chmod = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        let dir = tempfile::tempdir().expect("tempdir");
        chmod(dir.path(), 0o755);
        let (public, private, tmp) = (
            dir.path().join("public"),
            dir.path().join("private"),
            dir.path().join("tmp"),
        );
        for d in [&public, &private, &tmp] {
            std::fs::create_dir_all(d.join("code")).expect("mkdir");
            std::fs::write(d.join("code/bootstrap"), b"#!/bin/sh\n").expect("write");
            std::fs::write(d.join("host"), b"binary").expect("write");
            chmod(&d.join("host"), 0o755);
            chmod(d, 0o755);
        }
        chmod(&private, 0o700);
        let stage = Stage::new(&tmp, STAGE_PREFIX).expect("stage");
        let at = |d: &Path| Layout {
            code_dir: d.join("code"),
            host_binary: d.join("host"),
            socket: d.join("runtime.sock"),
            ..layout()
        };

        let mut reachable = at(&public);
        assert!(
            reachable
                .stage_unreachable(&stage)
                .expect("stage")
                .is_empty()
        );
        assert_eq!(reachable.code_dir, public.join("code"));
        assert_eq!(
            socket_folder(&public, Some(&stage)).expect("socket folder"),
            (public.clone(), None)
        );

        let mut hidden = at(&private);
        assert!(matches!(
            hidden.check_reachable(),
            Err(SandboxError::Unreachable { blocker, .. }) if blocker == private
        ));
        let staged = hidden.stage_unreachable(&stage).expect("stage");
        assert_eq!(
            staged,
            [
                (private.join("code"), private.clone()),
                (private.join("host"), private.clone())
            ]
        );
        assert!(hidden.code_dir.starts_with(stage.root()));
        assert!(hidden.code_dir.join("bootstrap").is_file());
        assert!(hidden.host_binary.starts_with(stage.root()));
        let (socket_dir, blocker) = socket_folder(&private, Some(&stage)).expect("socket folder");
        assert!(socket_dir.starts_with(stage.root()));
        assert_eq!(blocker, Some(private.clone()));
        hidden.socket = socket_dir.join("runtime.sock");
        hidden.check_reachable().expect("the copies are reachable");
        // Without a stage (not root), nothing moves.
        assert_eq!(
            socket_folder(&private, None).expect("socket folder"),
            (private.clone(), None)
        );
    }

    #[test]
    fn characters_split_across_reads_stay_whole() {
        let mut chunks = Utf8Chunks::default();
        let bytes = "é!".as_bytes();
        assert_eq!(chunks.feed(&bytes[..1]), "");
        assert_eq!(chunks.feed(&bytes[1..]), "é!");
        assert_eq!(chunks.feed(&[0xff, b'a']), "\u{fffd}a");
    }
}
