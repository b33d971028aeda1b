//! One control group per sandbox: a memory limit (and, where the controller exists, a process
//! limit) for everything the sandbox runs together, not per process.
//!
//! Rlimits bound each process on its own (`RLIMIT_DATA` of the tool's `memory_mb`), so a tool
//! that forks could hold `memory_mb` in every child. A control group closes that: the kernel
//! counts every page of every process of the sandbox against one limit and OOM-kills inside the
//! group when it is reached.
//!
//! The gateway makes a folder of its own, `switchboard-<pid>`, in the memory hierarchy it may
//! write, and one child folder per sandbox, named by the unit id. The sandbox enters its group
//! before `bwrap` is executed (the pre-exec hook writes `0`, "this process", to the group's
//! `cgroup.procs` through a descriptor opened beforehand), so every process it ever makes is
//! counted from the start. When the call ends the group is emptied and removed.
//!
//! Both kernel interfaces are handled:
//! - **cgroup v1**: a writable `memory` hierarchy (`memory.limit_in_bytes`, and
//!   `memory.memsw.limit_in_bytes` where swap accounting exists) plus, when mounted, the `pids`
//!   hierarchy (`pids.max`).
//! - **cgroup v2**: the gateway's own group must be delegated to it (systemd `Delegate=yes`, or
//!   a container that owns its cgroup namespace) with `memory` available; the sandboxes' parent
//!   gets `memory` and `pids` in its `cgroup.subtree_control`, each sandbox `memory.max`,
//!   `memory.swap.max = 0` and `pids.max`.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Whether the local backend uses control groups (`SWITCHBOARD_LOCAL_CGROUPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupMode {
    /// Use them when this machine lets the gateway; say so at start either way.
    #[default]
    Auto,
    /// Refuse to start without them.
    Required,
    /// Never use them (rlimits only).
    Off,
}

impl std::str::FromStr for CgroupMode {
    type Err = CgroupError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "auto" | "" => Ok(Self::Auto),
            "required" => Ok(Self::Required),
            "off" => Ok(Self::Off),
            other => Err(CgroupError::Mode(other.to_owned())),
        }
    }
}

/// Why control groups could not be set up or used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("SWITCHBOARD_LOCAL_CGROUPS must be auto, required or off, not {0:?}")]
    Mode(String),
    #[error(
        "no writable memory control group: {0} (cgroup v1 needs a writable memory hierarchy, \
         cgroup v2 a delegated group with the memory controller; or set \
         SWITCHBOARD_LOCAL_CGROUPS=off to rely on per-process rlimits)"
    )]
    Unavailable(String),
    #[error("control group {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which interface, and where the gateway's own folders are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Layout {
    V1 {
        memory: PathBuf,
        pids: Option<PathBuf>,
        swap: bool,
    },
    V2 {
        parent: PathBuf,
        pids: bool,
    },
}

/// The gateway's control groups: one parent folder per hierarchy, removed on drop.
#[derive(Debug)]
pub struct Cgroups {
    layout: Layout,
    /// Groups left by gateway processes that are gone, removed at start.
    leftovers_removed: usize,
}

impl Cgroups {
    /// Sets up the gateway's parent group, or says why it cannot.
    pub fn new() -> Result<Self, CgroupError> {
        Self::under(Path::new("/sys/fs/cgroup"), &own_cgroup_v2())
    }

    /// This process's parent group, shared by every user in the process: the folder is named
    /// after the process, so two users each owning one would remove it under the other (a
    /// process with two local backends, as the tests have). Removed when the last user drops it.
    pub fn shared() -> Result<std::sync::Arc<Self>, CgroupError> {
        static SHARED: std::sync::Mutex<std::sync::Weak<Cgroups>> =
            std::sync::Mutex::new(std::sync::Weak::new());
        let mut shared = SHARED
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(alive) = shared.upgrade() {
            return Ok(alive);
        }
        let made = std::sync::Arc::new(Self::new()?);
        *shared = std::sync::Arc::downgrade(&made);
        Ok(made)
    }

    /// As [`Cgroups::new`], with the cgroup file system mounted at `root` (tests).
    fn under(root: &Path, own_v2: &Option<String>) -> Result<Self, CgroupError> {
        let name = format!("switchboard-{}", std::process::id());
        let v1_memory = root.join("memory");
        if v1_memory.join("memory.limit_in_bytes").is_file() {
            let leftovers_removed =
                remove_leftovers(&v1_memory) + remove_leftovers(&root.join("pids"));
            let memory = v1_memory.join(&name);
            make_dir(&memory).map_err(|e| CgroupError::Unavailable(e.to_string()))?;
            let pids_root = root.join("pids");
            let pids = if pids_root.join("cgroup.procs").is_file() {
                let dir = pids_root.join(&name);
                make_dir(&dir).ok().map(|()| dir)
            } else {
                None
            };
            let swap = memory.join("memory.memsw.limit_in_bytes").is_file();
            return Ok(Self {
                layout: Layout::V1 { memory, pids, swap },
                leftovers_removed,
            });
        }
        let Some(own) = own_v2 else {
            return Err(CgroupError::Unavailable(
                "neither a cgroup v1 memory hierarchy nor a cgroup v2 group".into(),
            ));
        };
        let own_dir = root.join(own.trim_start_matches('/'));
        let controllers = std::fs::read_to_string(own_dir.join("cgroup.controllers"))
            .map_err(|e| CgroupError::Unavailable(format!("{}: {e}", own_dir.display())))?;
        if !controllers.split_whitespace().any(|c| c == "memory") {
            return Err(CgroupError::Unavailable(format!(
                "the memory controller is not available in {}",
                own_dir.display()
            )));
        }
        let pids = controllers.split_whitespace().any(|c| c == "pids");
        let leftovers_removed = remove_leftovers(&own_dir);
        let parent = own_dir.join(&name);
        make_dir(&parent).map_err(|e| CgroupError::Unavailable(e.to_string()))?;
        let wanted = if pids { "+memory +pids" } else { "+memory" };
        if let Err(e) = write_file(&parent.join("cgroup.subtree_control"), wanted) {
            let _ = std::fs::remove_dir(&parent);
            return Err(CgroupError::Unavailable(format!(
                "cannot enable {wanted} below {}: {e}",
                parent.display()
            )));
        }
        Ok(Self {
            layout: Layout::V2 { parent, pids },
            leftovers_removed,
        })
    }

    /// How many control groups of gateway processes that are gone (`switchboard-<pid>` folders
    /// and the per-call groups in them) were removed at start.
    pub fn leftovers_removed(&self) -> usize {
        self.leftovers_removed
    }

    /// A short description for the start-up log line.
    pub fn describe(&self) -> String {
        match &self.layout {
            Layout::V1 { memory, pids, .. } => format!(
                "cgroup v1 at {}{}",
                memory.display(),
                if pids.is_some() { " (+pids)" } else { "" }
            ),
            Layout::V2 { parent, pids } => format!(
                "cgroup v2 at {}{}",
                parent.display(),
                if *pids { " (+pids)" } else { "" }
            ),
        }
    }

    /// Makes the group of one sandbox with its limits.
    pub fn sandbox(
        &self,
        unit_id: &str,
        memory_bytes: u64,
        max_processes: Option<u64>,
    ) -> Result<SandboxCgroup, CgroupError> {
        let mut group = SandboxCgroup {
            dirs: Vec::new(),
            procs: Vec::new(),
            memory_dir: PathBuf::new(),
            v2: matches!(self.layout, Layout::V2 { .. }),
        };
        match &self.layout {
            Layout::V1 { memory, pids, swap } => {
                let dir = self.add_in(&mut group, memory, unit_id)?;
                group.memory_dir = dir.clone();
                write_file(
                    &dir.join("memory.limit_in_bytes"),
                    &memory_bytes.to_string(),
                )
                .map_err(io_err(&dir))?;
                if *swap {
                    write_file(
                        &dir.join("memory.memsw.limit_in_bytes"),
                        &memory_bytes.to_string(),
                    )
                    .map_err(io_err(&dir))?;
                }
                if let (Some(pids), Some(max)) = (pids, max_processes) {
                    let dir = self.add_in(&mut group, pids, unit_id)?;
                    write_file(&dir.join("pids.max"), &max.to_string()).map_err(io_err(&dir))?;
                }
            }
            Layout::V2 { parent, pids } => {
                let dir = self.add_in(&mut group, parent, unit_id)?;
                group.memory_dir = dir.clone();
                write_file(&dir.join("memory.max"), &memory_bytes.to_string())
                    .map_err(io_err(&dir))?;
                // No swap: the limit is the memory the sandbox may use, not a hint.
                let _ = write_file(&dir.join("memory.swap.max"), "0");
                if let (true, Some(max)) = (pids, max_processes) {
                    write_file(&dir.join("pids.max"), &max.to_string()).map_err(io_err(&dir))?;
                }
            }
        }
        Ok(group)
    }

    /// Makes the group `unit_id` in `parent` for `group`. The parent is named after this
    /// process and may have just been removed by another user of it in this process whose last
    /// group went (the tests run several local backends in one process): it is then made again.
    fn add_in(
        &self,
        group: &mut SandboxCgroup,
        parent: &Path,
        unit_id: &str,
    ) -> Result<PathBuf, CgroupError> {
        let dir = parent.join(unit_id);
        for _ in 0..3 {
            match group.add_dir(&dir) {
                Err(CgroupError::Io { source, .. }) if source.kind() == ErrorKind::NotFound => {
                    make_dir(parent).map_err(io_err(parent))?;
                    if let Layout::V2 { pids, .. } = &self.layout {
                        let wanted = if *pids { "+memory +pids" } else { "+memory" };
                        write_file(&parent.join("cgroup.subtree_control"), wanted)
                            .map_err(io_err(parent))?;
                    }
                }
                other => return other.map(|()| dir),
            }
        }
        group.add_dir(&dir).map(|()| dir)
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        let dirs: Vec<&Path> = match &self.layout {
            Layout::V1 { memory, pids, .. } => std::iter::once(memory.as_path())
                .chain(pids.as_deref())
                .collect(),
            Layout::V2 { parent, .. } => vec![parent.as_path()],
        };
        for dir in dirs {
            // The last sandbox's group may still be going (its processes being reaped): retry
            // briefly rather than leave the parent behind.
            let _ = remove_group(dir);
        }
    }
}

/// The group of one sandbox. Dropping it kills what is left in it and removes it.
#[derive(Debug)]
pub struct SandboxCgroup {
    /// Every folder of this sandbox, one per hierarchy.
    dirs: Vec<PathBuf>,
    /// `cgroup.procs` of each folder, opened close-on-exec for the pre-exec hook.
    procs: Vec<File>,
    memory_dir: PathBuf,
    v2: bool,
}

impl SandboxCgroup {
    fn add_dir(&mut self, dir: &Path) -> Result<(), CgroupError> {
        make_dir(dir).map_err(io_err(dir))?;
        self.dirs.push(dir.to_path_buf());
        let procs = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(dir.join("cgroup.procs"))
            .map_err(io_err(dir))?;
        self.procs.push(procs);
        Ok(())
    }

    /// Descriptors the child writes `0` to before exec, to enter every hierarchy of the group.
    pub fn entry_fds(&self) -> Vec<RawFd> {
        self.procs.iter().map(AsRawFd::as_raw_fd).collect()
    }

    /// True when the kernel had to kill inside the group because it reached its memory limit.
    pub fn oom_killed(&self) -> bool {
        if self.v2 {
            let events =
                std::fs::read_to_string(self.memory_dir.join("memory.events")).unwrap_or_default();
            return counter(&events, "oom_kill").is_some_and(|n| n > 0)
                || counter(&events, "oom").is_some_and(|n| n > 0);
        }
        let control =
            std::fs::read_to_string(self.memory_dir.join("memory.oom_control")).unwrap_or_default();
        if let Some(n) = counter(&control, "oom_kill") {
            return n > 0;
        }
        // Kernels without the oom_kill count: the limit was hit at least once.
        std::fs::read_to_string(self.memory_dir.join("memory.failcnt"))
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    }

    /// Processes still in the group.
    pub fn pids(&self) -> Vec<libc::pid_t> {
        pids_in(&self.dirs)
    }

    /// Kills every process of the group and waits (briefly) until it is empty.
    pub fn kill_all(&self) {
        kill_all_in(&self.dirs);
    }
}

/// Processes in the groups `dirs`.
fn pids_in(dirs: &[PathBuf]) -> Vec<libc::pid_t> {
    let mut pids: Vec<libc::pid_t> = dirs
        .iter()
        .filter_map(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<_>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Kills every process in the groups `dirs` and waits (briefly) until they are empty.
fn kill_all_in(dirs: &[PathBuf]) {
    for _ in 0..50 {
        let pids = pids_in(dirs);
        if pids.is_empty() {
            return;
        }
        for pid in pids {
            // SAFETY: kill(2) with a pid read from the group's own cgroup.procs.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Removes the emptied group `dir`, giving its last processes a moment to be reaped. True when
/// it is gone.
fn remove_group(dir: &Path) -> bool {
    for _ in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return true,
            Err(e) if e.kind() == ErrorKind::NotFound => return true,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    false
}

impl Drop for SandboxCgroup {
    fn drop(&mut self) {
        kill_all_in(&self.dirs);
        self.procs.clear();
        for dir in &self.dirs {
            remove_group(dir);
        }
    }
}

/// Removes, from the hierarchy folder `dir`, the `switchboard-<pid>` folders of gateway processes
/// that are gone (a gateway killed with SIGKILL cannot remove its own), with the per-call groups
/// inside them, after killing whatever still runs in those. Returns how many groups it removed.
/// A folder whose pid names a live process is kept, whoever that process is: a pid reused by
/// another process only delays the removal to a later start.
fn remove_leftovers(dir: &Path) -> usize {
    let mut removed = 0;
    for (parent, _) in crate::paths::left_by_gone_processes(dir, "switchboard-") {
        let children: Vec<PathBuf> = std::fs::read_dir(&parent)
            .map(|it| {
                it.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        for child in children {
            kill_all_in(std::slice::from_ref(&child));
            if remove_group(&child) {
                removed += 1;
            }
        }
        if std::fs::remove_dir(&parent).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Enters the groups behind `fds`. Runs in the forked child before exec: only raw `write(2)`
/// on descriptors opened by the parent, no allocation.
pub fn enter(fds: &[RawFd]) -> std::io::Result<()> {
    for &fd in fds {
        // SAFETY: `fd` is an open descriptor inherited from the parent; the buffer is static.
        #[allow(unsafe_code)]
        let n = unsafe { libc::write(fd, b"0".as_ptr().cast(), 1) };
        if n != 1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// `name N` from a flat-keyed cgroup file.
fn counter(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (key, value) = l.split_once(' ')?;
        (key == name).then(|| value.trim().parse().ok())?
    })
}

/// This process's group on the unified (v2) hierarchy, from `/proc/self/cgroup` (`0::/path`).
fn own_cgroup_v2() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(str::to_owned)
}

fn make_dir(dir: &Path) -> std::io::Result<()> {
    match std::fs::create_dir(dir) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

fn write_file(path: &Path, value: &str) -> std::io::Result<()> {
    let mut f = OpenOptions::new().write(true).open(path)?;
    f.write_all(value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_nonsense_is_refused() {
        assert_eq!("auto".parse::<CgroupMode>().ok(), Some(CgroupMode::Auto));
        assert_eq!(
            "required".parse::<CgroupMode>().ok(),
            Some(CgroupMode::Required)
        );
        assert_eq!("off".parse::<CgroupMode>().ok(), Some(CgroupMode::Off));
        let e = "yes".parse::<CgroupMode>().expect_err("refused");
        assert!(e.to_string().contains("\"yes\""), "{e}");
    }

    #[test]
    fn counters_are_read_by_name() {
        let events = "low 0\nhigh 0\nmax 3\noom 1\noom_kill 2\n";
        assert_eq!(counter(events, "oom_kill"), Some(2));
        assert_eq!(counter(events, "oom"), Some(1));
        assert_eq!(counter(events, "missing"), None);
        let control = "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n";
        assert_eq!(counter(control, "oom_kill"), Some(0));
    }

    /// A fake v1 tree: plain folders with the control files a real one has.
    #[test]
    fn v1_layout_writes_limits_into_the_sandbox_group() {
        let root = tempfile::tempdir().expect("tempdir");
        let memory = root.path().join("memory");
        std::fs::create_dir(&memory).expect("mkdir");
        std::fs::write(memory.join("memory.limit_in_bytes"), "max").expect("write");
        let cgroups = Cgroups::under(root.path(), &None).expect("v1 found");
        let parent = memory.join(format!("switchboard-{}", std::process::id()));
        assert!(parent.is_dir());
        // The kernel makes these files in a new group; a plain folder does not.
        let unit = parent.join("sbx-1");
        std::fs::create_dir(&unit).expect("mkdir");
        for f in ["cgroup.procs", "memory.limit_in_bytes"] {
            std::fs::write(unit.join(f), "").expect("write");
        }
        let group = cgroups
            .sandbox("sbx-1", 64 << 20, Some(32))
            .expect("group made");
        assert_eq!(
            std::fs::read_to_string(unit.join("memory.limit_in_bytes")).expect("read"),
            (64u64 << 20).to_string()
        );
        assert_eq!(group.entry_fds().len(), 1, "no pids hierarchy here");
        assert!(!group.oom_killed());
        assert!(group.pids().is_empty());
        assert!(cgroups.describe().starts_with("cgroup v1"));
    }

    #[test]
    fn groups_of_gateways_that_are_gone_are_removed_at_start() {
        let root = tempfile::tempdir().expect("tempdir");
        let memory = root.path().join("memory");
        std::fs::create_dir(&memory).expect("mkdir");
        std::fs::write(memory.join("memory.limit_in_bytes"), "max").expect("write");
        // 4194304 is above the kernel's largest pid: that gateway is gone. Process 1 is alive.
        let dead = memory.join("switchboard-4194304");
        let live = memory.join("switchboard-1");
        let other = memory.join("someone-else");
        for d in [
            dead.join("sbx-1"),
            dead.join("sbx-2"),
            live.join("sbx-3"),
            other.clone(),
        ] {
            std::fs::create_dir_all(d).expect("mkdir");
        }
        let cgroups = Cgroups::under(root.path(), &None).expect("v1 found");
        assert!(!dead.exists(), "a dead gateway's groups are left");
        assert_eq!(
            cgroups.leftovers_removed(),
            3,
            "two call groups and their parent"
        );
        assert!(live.join("sbx-3").is_dir() && other.is_dir());
    }

    #[test]
    fn without_any_hierarchy_it_says_why() {
        let root = tempfile::tempdir().expect("tempdir");
        let e = Cgroups::under(root.path(), &None).expect_err("nothing there");
        assert!(
            e.to_string().contains("SWITCHBOARD_LOCAL_CGROUPS=off"),
            "{e}"
        );
    }

    #[test]
    fn v2_without_the_memory_controller_is_refused() {
        let root = tempfile::tempdir().expect("tempdir");
        let own = root.path().join("svc");
        std::fs::create_dir(&own).expect("mkdir");
        std::fs::write(own.join("cgroup.controllers"), "cpu io\n").expect("write");
        let e = Cgroups::under(root.path(), &Some("/svc".into())).expect_err("no memory");
        assert!(e.to_string().contains("memory controller"), "{e}");
    }
}
