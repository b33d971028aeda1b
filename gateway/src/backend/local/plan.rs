//! What a tool's sandbox looks like, worked out once at start-up from its catalog entry: the
//! executable and read-only paths (resolved and checked), its limits, and the bubblewrap
//! arguments that do not change from call to call.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use switchboard_sandbox::Bwrap;
use switchboard_sandbox::paths::{find_executable, unreadable_part};

use super::stage::{Stage, StageError};
use crate::catalog::{Endpoint, Tool};

/// Where the endpoint proxy's socket appears inside a sandbox.
pub const ENDPOINT_SOCKET: &str = "/run/switchboard/endpoints.sock";
/// Where the tool's executable appears inside a sandbox: a folder of the read-only root, so
/// that the tool's own folder is never writable (not even when the host keeps the executable
/// under `/tmp`, where the scratch tmpfs is mounted).
pub const TOOL_DIR: &str = "/run/switchboard/tool";
/// Where the caller's tenant's folder appears inside a sandbox of a tool with a `tenant_root`
/// (`SWITCHBOARD_TENANT_DIR`); an empty folder when the tenant has none.
pub const TENANT_DIR: &str = "/run/switchboard/tenant";
/// The sandbox's scratch directory (a size-capped tmpfs), also `HOME` and `TMPDIR`.
pub const SCRATCH: &str = "/tmp";

/// Why a tool's sandbox could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("tool {tool:?}: no `local` block")]
    NotLocal { tool: String },
    #[error("tool {tool:?}: executable {name:?} is not on PATH")]
    NotOnPath { tool: String, name: String },
    #[error("tool {tool:?}: {path}: {source}")]
    Resolve {
        tool: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("tool {tool:?}: {path} is not an executable file")]
    NotExecutable { tool: String, path: PathBuf },
    #[error(
        "tool {tool:?}: {path} cannot be reached by the sandbox's unprivileged uid: {blocker} is \
         not readable/searchable by others (move it, or loosen that folder's mode)"
    )]
    Unreachable {
        tool: String,
        path: PathBuf,
        blocker: PathBuf,
    },
    #[error("tool {tool:?}: {source}")]
    Stage { tool: String, source: StageError },
}

/// One tool's sandbox, ready to be started many times.
#[derive(Debug, Clone)]
pub struct ToolPlan {
    pub name: String,
    /// The uid and gid the tool runs as inside its user namespace.
    pub sandbox_uid: u32,
    /// The executable on the host.
    pub executable: PathBuf,
    /// The executable as the sandbox sees it (under [`TOOL_DIR`]).
    pub sandbox_executable: PathBuf,
    /// argv, starting with `sandbox_executable`.
    pub argv: Vec<String>,
    /// The declared read-only paths: (the host path bound, the path in the sandbox). The two
    /// differ when the host path was staged.
    pub read_only_paths: Vec<(PathBuf, PathBuf)>,
    /// Paths the sandboxes' uids could not reach, copied into the stage: (the original, the
    /// part that blocked it).
    pub staged: Vec<(PathBuf, PathBuf)>,
    /// The folder of the tenants' folders (canonical), when the tool sees its caller's tenant's.
    pub tenant_root: Option<PathBuf>,
    pub timeout_seconds: u32,
    pub memory_bytes: u64,
    pub scratch_bytes: u64,
    pub endpoints: Vec<Endpoint>,
    /// The host side of the endpoint proxy's socket, when the tool declares endpoints.
    pub proxy_socket: Option<PathBuf>,
    /// Sandboxes kept started ahead of their calls (the catalog's `local.prepared`).
    pub prepared: usize,
}

/// The executable of `command` (its first word): a path relative to `catalog_dir`, or a name
/// found on `PATH`; canonical, a file, and executable.
fn resolve_executable(
    name: &str,
    command: &[String],
    catalog_dir: &Path,
) -> Result<PathBuf, PlanError> {
    let first = command.first().cloned().unwrap_or_default();
    let raw = if first.contains('/') {
        catalog_dir.join(&first)
    } else {
        std::env::var_os("PATH")
            .and_then(|path| find_executable(&first, &path))
            .ok_or_else(|| PlanError::NotOnPath {
                tool: name.to_owned(),
                name: first.clone(),
            })?
    };
    let executable = canonical(name, &raw)?;
    let meta = std::fs::metadata(&executable).map_err(|source| PlanError::Resolve {
        tool: name.to_owned(),
        path: executable.clone(),
        source,
    })?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(PlanError::NotExecutable {
            tool: name.to_owned(),
            path: executable,
        });
    }
    Ok(executable)
}

/// When another uid could not open `path`, copies it into `stage` and points `path` at the
/// copy; answers the original path and what blocked it. Refused when there is no stage, or when
/// the copy is still unreachable.
fn stage_if_unreachable(
    name: &str,
    path: &mut PathBuf,
    stage: Option<&Stage>,
) -> Result<Option<(PathBuf, PathBuf)>, PlanError> {
    let Some(blocker) = unreadable_part(path) else {
        return Ok(None);
    };
    let unreachable = |path: &Path, blocker| PlanError::Unreachable {
        tool: name.to_owned(),
        path: path.to_path_buf(),
        blocker,
    };
    let Some(stage) = stage else {
        return Err(unreachable(path, blocker));
    };
    let copy = stage.place(path).map_err(|source| PlanError::Stage {
        tool: name.to_owned(),
        source,
    })?;
    if let Some(still) = unreadable_part(&copy) {
        return Err(unreachable(&copy, still));
    }
    Ok(Some((std::mem::replace(path, copy), blocker)))
}

impl ToolPlan {
    /// Resolves a catalog entry. `catalog_dir` anchors relative paths; `sandbox_uid` is the
    /// tool's own uid; `check_reachable` makes sure another uid can open every path (used when
    /// the gateway runs as root and starts sandboxes under unprivileged uids): a path it could
    /// not is copied into `stage` and the copy bound instead, or refused when there is no stage.
    pub fn new(
        tool: &Tool,
        catalog_dir: &Path,
        sandbox_uid: u32,
        check_reachable: bool,
        stage: Option<&Stage>,
    ) -> Result<Self, PlanError> {
        let name = tool.name.clone();
        let unit = tool
            .local
            .as_ref()
            .ok_or_else(|| PlanError::NotLocal { tool: name.clone() })?;
        let mut executable = resolve_executable(&name, &unit.command, catalog_dir)?;
        let mut read_only_paths = unit
            .read_only_paths
            .iter()
            .map(|bind| {
                let host = canonical(&name, &catalog_dir.join(bind.path()))?;
                let sandbox = bind.at().map_or_else(|| host.clone(), PathBuf::from);
                Ok((host, sandbox))
            })
            .collect::<Result<Vec<_>, PlanError>>()?;
        let mut tenant_root = unit
            .tenant_root
            .as_ref()
            .map(|p| canonical(&name, &catalog_dir.join(p)))
            .transpose()?;
        let mut staged = Vec::new();
        if check_reachable {
            let all = std::iter::once(&mut executable)
                .chain(read_only_paths.iter_mut().map(|(host, _)| host))
                .chain(tenant_root.as_mut());
            for path in all {
                if let Some(done) = stage_if_unreachable(&name, path, stage)? {
                    staged.push(done);
                }
            }
        }
        let file_name = executable
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| "tool".into());
        let sandbox_executable = Path::new(TOOL_DIR).join(file_name);
        let mut argv = vec![sandbox_executable.display().to_string()];
        argv.extend(unit.command.iter().skip(1).cloned());
        let mut endpoints = tool.endpoints.clone();
        endpoints.sort();
        endpoints.dedup();
        Ok(Self {
            name,
            sandbox_uid,
            executable,
            sandbox_executable,
            argv,
            read_only_paths,
            staged,
            tenant_root,
            timeout_seconds: tool.timeout_seconds,
            memory_bytes: u64::from(tool.memory_mb) << 20,
            scratch_bytes: u64::from(tool.ephemeral_storage_mb) << 20,
            endpoints,
            proxy_socket: None,
            prepared: unit.prepared as usize,
        })
    }

    /// The bubblewrap arguments of this tool, up to (not including) `--seccomp FD -- argv`.
    pub fn bwrap_args(&self) -> Vec<OsString> {
        self.sandbox_args().for_call(None)
    }

    /// The folder of `tenant` on the host, when the tool has a tenant root and the tenant has a
    /// folder in it: `<tenant_root>/<tenant>`, canonical, and still inside the root (a symbolic
    /// link out of it counts as no folder). `tenant` must already be a valid tenant name.
    pub fn tenant_dir(&self, tenant: &str) -> Option<PathBuf> {
        let root = self.tenant_root.as_ref()?;
        let dir = std::fs::canonicalize(root.join(tenant)).ok()?;
        (dir.starts_with(root) && dir != *root && dir.is_dir()).then_some(dir)
    }

    /// [`Self::bwrap_args`] for a call that sees `tenant_dir` (from [`Self::tenant_dir`])
    /// read-only at [`TENANT_DIR`]; a tool with a tenant root and no folder for the caller's
    /// tenant gets an empty folder there.
    pub fn bwrap_args_for(&self, tenant_dir: Option<&Path>) -> Vec<OsString> {
        self.sandbox_args().for_call(tenant_dir)
    }

    /// This tool's bubblewrap arguments, made once: [`SandboxArgs::for_call`] adds a call's.
    pub fn sandbox_args(&self) -> SandboxArgs {
        let mut b = Bwrap::new()
            .unshare_all_but_cgroup()
            .unshare_cgroup(true)
            .ids(self.sandbox_uid, self.sandbox_uid)
            .hostname("sandbox")
            .die_with_parent()
            .as_pid_1()
            .new_session()
            .cap_drop_all()
            .host_system()
            .proc("/proc")
            .minimal_dev(SCRATCH)
            .scratch(SCRATCH, self.scratch_bytes)
            .ro_bind(&self.executable, &self.sandbox_executable);
        for (host, sandbox) in &self.read_only_paths {
            b = b.ro_bind(host, sandbox);
        }
        if let Some(socket) = &self.proxy_socket {
            b = b.bind(socket, ENDPOINT_SOCKET);
        }
        SandboxArgs {
            head: b.into_args(),
            tenant: self.tenant_root.is_some(),
            tail: Bwrap::new()
                .remount_root_read_only()
                .chdir(SCRATCH)
                .into_args(),
        }
    }
}

/// A tool's bubblewrap arguments, made at start. What differs between its calls (the caller's
/// tenant's folder) goes between `head` and `tail`, before the root is remounted read-only.
#[derive(Debug, Clone)]
pub struct SandboxArgs {
    head: Vec<OsString>,
    /// The tool has a tenant root: every call gets [`TENANT_DIR`].
    tenant: bool,
    tail: Vec<OsString>,
}

impl SandboxArgs {
    /// The arguments of one call that sees `tenant_dir` read-only at [`TENANT_DIR`] (an empty
    /// folder there when it is `None` and the tool has a tenant root).
    pub fn for_call(&self, tenant_dir: Option<&Path>) -> Vec<OsString> {
        let tenant = match tenant_dir {
            Some(dir) => Bwrap::new().ro_bind(dir, TENANT_DIR).into_args(),
            None if self.tenant => Bwrap::new().dir(TENANT_DIR).into_args(),
            None => Vec::new(),
        };
        let mut args = Vec::with_capacity(self.head.len() + tenant.len() + self.tail.len());
        args.extend_from_slice(&self.head);
        args.extend(tenant);
        args.extend_from_slice(&self.tail);
        args
    }
}

fn canonical(tool: &str, path: &Path) -> Result<PathBuf, PlanError> {
    std::fs::canonicalize(path).map_err(|source| PlanError::Resolve {
        tool: tool.into(),
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(command: &[&str]) -> Tool {
        serde_json::from_value(serde_json::json!({
            "name": "t", "description": "d", "input_schema": {"type": "object"},
            "backend": "local", "allow": {"groups": ["g"]},
            "local": {"command": command},
            "ephemeral_storage_mb": 8,
        }))
        .expect("valid tool")
    }

    #[test]
    fn bare_name_resolves_on_path_and_args_follow() {
        let plan = ToolPlan::new(
            &tool(&["sh", "-c", "true"]),
            Path::new("/nonexistent"),
            7,
            false,
            None,
        )
        .expect("sh is on PATH");
        assert!(plan.executable.is_absolute());
        assert_eq!(&plan.argv[1..], ["-c", "true"]);
        assert_eq!(plan.scratch_bytes, 8 << 20);
    }

    #[test]
    fn relative_path_is_anchored_at_the_catalog_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let e = ToolPlan::new(&tool(&["./missing-tool"]), dir.path(), 7, false, None)
            .expect_err("missing executable");
        assert!(e.to_string().contains("missing-tool"), "{e}");
    }

    #[test]
    fn non_executable_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("data"), b"x").expect("write");
        let e = ToolPlan::new(&tool(&["./data"]), dir.path(), 7, false, None)
            .expect_err("not executable");
        assert!(matches!(e, PlanError::NotExecutable { .. }), "{e}");
    }

    #[test]
    fn private_folder_is_reported_when_reachability_is_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let private = dir.path().join("private");
        std::fs::create_dir(&private).expect("mkdir");
        let exe = private.join("tool");
        std::fs::write(&exe, b"#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let e = ToolPlan::new(&tool(&["./private/tool"]), dir.path(), 7, true, None)
            .expect_err("unreachable");
        assert!(matches!(e, PlanError::Unreachable { .. }), "{e}");
    }

    #[test]
    fn arguments_unshare_everything_and_make_the_root_read_only() {
        let plan = ToolPlan::new(&tool(&["sh"]), Path::new("/"), 4242, false, None).expect("plan");
        let args: Vec<String> = plan
            .bwrap_args()
            .iter()
            .map(|a| a.to_string_lossy().into())
            .collect();
        for flag in [
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
            "--unshare-cgroup",
            "--die-with-parent",
            "--as-pid-1",
            "--new-session",
        ] {
            assert!(args.iter().any(|a| a == flag), "missing {flag}");
        }
        let joined = args.join(" ");
        assert!(joined.contains("--uid 4242 --gid 4242"), "{joined}");
        assert!(
            joined.contains(&format!("--size {} --perms 0700 --tmpfs /tmp", 8 << 20)),
            "{joined}"
        );
        assert!(joined.ends_with("--remount-ro / --chdir /tmp"), "{joined}");
        assert!(
            joined.contains(&format!(
                "--ro-bind {} /run/switchboard/tool/",
                plan.executable.display()
            )),
            "{joined}"
        );
        assert!(
            plan.argv[0].starts_with("/run/switchboard/tool/"),
            "{:?}",
            plan.argv
        );
        assert!(!joined.contains("--share-net"));
        // The exact order around the host's own /lib links.
        assert!(
            joined.starts_with(
                "--unshare-user --unshare-ipc --unshare-pid --unshare-net --unshare-uts \
                 --unshare-cgroup --uid 4242 --gid 4242 --hostname sandbox --die-with-parent \
                 --as-pid-1 --new-session --cap-drop ALL --ro-bind /usr /usr "
            ),
            "{joined}"
        );
        let tail = format!(
            "--ro-bind-try /etc/ld.so.cache /etc/ld.so.cache --proc /proc --dir /dev \
             --dev-bind /dev/null /dev/null --dev-bind /dev/zero /dev/zero \
             --dev-bind /dev/random /dev/random --dev-bind /dev/urandom /dev/urandom \
             --symlink /proc/self/fd /dev/fd --symlink /proc/self/fd/0 /dev/stdin \
             --symlink /proc/self/fd/1 /dev/stdout --symlink /proc/self/fd/2 /dev/stderr \
             --symlink /tmp /dev/shm --size {} --perms 0700 --tmpfs /tmp --ro-bind {} {} \
             --remount-ro / --chdir /tmp",
            8 << 20,
            plan.executable.display(),
            plan.sandbox_executable.display()
        );
        assert!(joined.ends_with(&tail), "{joined}");
    }

    #[test]
    fn a_call_sees_only_its_tenants_folder_read_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("tenants");
        std::fs::create_dir_all(root.join("acme/states")).expect("mkdir");
        std::fs::create_dir_all(root.join("globex")).expect("mkdir");
        std::fs::create_dir_all(dir.path().join("outside")).expect("mkdir");
        std::os::unix::fs::symlink("../outside", root.join("escapee")).expect("symlink");
        std::os::unix::fs::symlink("globex", root.join("alias")).expect("symlink");
        let mut t = tool(&["sh"]);
        t.local.as_mut().expect("local").tenant_root = Some("tenants".into());
        let plan = ToolPlan::new(&t, dir.path(), 4242, false, None).expect("plan");
        let root = std::fs::canonicalize(&root).expect("canonical");
        assert_eq!(plan.tenant_root.as_deref(), Some(root.as_path()));
        assert_eq!(plan.tenant_dir("acme"), Some(root.join("acme")));
        assert_eq!(plan.tenant_dir("initech"), None, "no folder");
        assert_eq!(plan.tenant_dir("escapee"), None, "a link out of the root");
        assert_eq!(
            plan.tenant_dir("alias"),
            Some(root.join("globex")),
            "a link inside it"
        );
        let joined = |dir: Option<&Path>| {
            plan.bwrap_args_for(dir)
                .iter()
                .map(|a| a.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let acme = joined(plan.tenant_dir("acme").as_deref());
        let bind = format!(
            "--ro-bind {} /run/switchboard/tenant --remount-ro /",
            root.join("acme").display()
        );
        assert!(acme.contains(&bind), "{acme}");
        assert!(!acme.contains("globex"), "{acme}");
        let none = joined(None);
        assert!(
            none.contains("--dir /run/switchboard/tenant --remount-ro /"),
            "{none}"
        );
        assert!(!none.contains(&root.display().to_string()), "{none}");
        let plain = ToolPlan::new(&tool(&["sh"]), dir.path(), 4242, false, None).expect("plan");
        let args = plain
            .bwrap_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        assert!(
            !args.iter().any(|a| a.contains("/run/switchboard/tenant")),
            "{args:?}"
        );
    }
}
