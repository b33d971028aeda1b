//! Building bubblewrap's arguments.
//!
//! [`Bwrap`] pushes the arguments in the order its methods are called; each caller lays out its
//! own sandbox with it (the gateway's tool sandbox, the Lambda host's `/var/task` layout). The
//! result stops before `--seccomp FD -- argv`, which the spawner adds.

use std::ffi::{OsStr, OsString};
use std::path::Path;

/// bubblewrap arguments under construction.
#[derive(Debug, Clone, Default)]
pub struct Bwrap {
    args: Vec<OsString>,
}

impl Bwrap {
    pub fn new() -> Self {
        Self {
            args: Vec::with_capacity(72),
        }
    }

    /// The arguments built so far.
    pub fn into_args(self) -> Vec<OsString> {
        self.args
    }

    /// Appends arguments as they are.
    pub fn args<S: AsRef<OsStr>>(mut self, items: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(items.into_iter().map(|s| s.as_ref().to_os_string()));
        self
    }

    /// New user, IPC, pid, network and UTS namespaces (`--unshare-user --unshare-ipc
    /// --unshare-pid --unshare-net --unshare-uts`): no host identity, SysV IPC, processes,
    /// network (only a loopback inside) or hostname. The cgroup namespace is separate
    /// ([`Self::unshare_cgroup`]).
    pub fn unshare_all_but_cgroup(self) -> Self {
        self.args([
            "--unshare-user",
            "--unshare-ipc",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-uts",
        ])
    }

    /// A new cgroup namespace: `--unshare-cgroup`, or `--unshare-cgroup-try` when `required` is
    /// false (a kernel without cgroup namespaces then runs the sandbox without one).
    pub fn unshare_cgroup(self, required: bool) -> Self {
        self.args([if required {
            "--unshare-cgroup"
        } else {
            "--unshare-cgroup-try"
        }])
    }

    /// The uid and gid inside the user namespace (`--uid U --gid G`).
    pub fn ids(self, uid: u32, gid: u32) -> Self {
        self.args([
            "--uid".to_owned(),
            uid.to_string(),
            "--gid".to_owned(),
            gid.to_string(),
        ])
    }

    /// `--hostname NAME` (needs the UTS namespace).
    pub fn hostname(self, name: &str) -> Self {
        self.args(["--hostname", name])
    }

    /// `--die-with-parent`: the sandbox is killed when the process that started it dies.
    pub fn die_with_parent(self) -> Self {
        self.args(["--die-with-parent"])
    }

    /// `--as-pid-1`: the program is pid 1 of its pid namespace, so `bwrap` returns only once the
    /// kernel has killed and reaped everything else in it (with bubblewrap's own init, `bwrap`
    /// returns as soon as the program exits and leaves that init to die as an orphan).
    pub fn as_pid_1(self) -> Self {
        self.args(["--as-pid-1"])
    }

    /// `--new-session`: no controlling terminal to inject into (`TIOCSTI`).
    pub fn new_session(self) -> Self {
        self.args(["--new-session"])
    }

    /// `--cap-drop ALL`.
    pub fn cap_drop_all(self) -> Self {
        self.args(["--cap-drop", "ALL"])
    }

    /// The host's system libraries and programs, read-only: `/usr`, then `/lib`, `/lib64`,
    /// `/lib32`, `/bin`, `/sbin` (as the same symlinks where the host has merged `/usr`, as
    /// read-only binds where they are folders, left out where missing), then
    /// `/etc/ld.so.cache` if there is one.
    pub fn host_system(self) -> Self {
        let mut b = self.ro_bind("/usr", "/usr");
        for dir in ["lib", "lib64", "lib32", "bin", "sbin"] {
            let host = Path::new("/").join(dir);
            match std::fs::read_link(&host) {
                Ok(target) => b = b.symlink(&target, &host),
                Err(_) if host.is_dir() => b = b.ro_bind(&host, &host),
                Err(_) => {}
            }
        }
        b.ro_bind_try("/etc/ld.so.cache", "/etc/ld.so.cache")
    }

    /// `--ro-bind SRC DEST`.
    pub fn ro_bind(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--ro-bind"), src.as_ref(), dest.as_ref()])
    }

    /// `--ro-bind-try SRC DEST`: left out when `SRC` does not exist.
    pub fn ro_bind_try(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--ro-bind-try"), src.as_ref(), dest.as_ref()])
    }

    /// `--bind SRC DEST` (writable).
    pub fn bind(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--bind"), src.as_ref(), dest.as_ref()])
    }

    /// `--dev-bind SRC DEST` (device nodes usable).
    pub fn dev_bind(self, src: impl AsRef<OsStr>, dest: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--dev-bind"), src.as_ref(), dest.as_ref()])
    }

    /// `--symlink TARGET LINK`.
    pub fn symlink(self, target: impl AsRef<OsStr>, link: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--symlink"), target.as_ref(), link.as_ref()])
    }

    /// `--dir PATH`.
    pub fn dir(self, path: impl AsRef<OsStr>) -> Self {
        self.args([OsStr::new("--dir"), path.as_ref()])
    }

    /// A fresh procfs of the sandbox's pid namespace (`--proc PATH`).
    pub fn proc(self, path: &str) -> Self {
        self.args(["--proc", path])
    }

    /// bubblewrap's own `/dev` (`--dev PATH`: the usual devices, a devpts, `shm`).
    pub fn dev(self, path: &str) -> Self {
        self.args(["--dev", path])
    }

    /// A minimal `/dev`: `null`, `zero`, `random`, `urandom`, the `fd`/`stdin`/`stdout`/`stderr`
    /// links, and `shm` pointing at `shm_dir` (the scratch, so POSIX shared memory lands in its
    /// cap); no pty, no tty. ([`Self::dev`] mounts a devpts and more, and costs a tenth of a
    /// sandbox's start-up.)
    pub fn minimal_dev(self, shm_dir: &str) -> Self {
        let mut b = self.dir("/dev");
        for dev in ["/dev/null", "/dev/zero", "/dev/random", "/dev/urandom"] {
            b = b.dev_bind(dev, dev);
        }
        b.symlink("/proc/self/fd", "/dev/fd")
            .symlink("/proc/self/fd/0", "/dev/stdin")
            .symlink("/proc/self/fd/1", "/dev/stdout")
            .symlink("/proc/self/fd/2", "/dev/stderr")
            .symlink(shm_dir, "/dev/shm")
    }

    /// A size-capped, private tmpfs: `--size BYTES --perms 0700 --tmpfs PATH`.
    pub fn scratch(self, path: &str, bytes: u64) -> Self {
        let size = bytes.to_string();
        self.args(["--size", size.as_str(), "--perms", "0700", "--tmpfs", path])
    }

    /// `--remount-ro /`: the root (a tmpfs bubblewrap made) becomes read-only; call it after
    /// every mount below it.
    pub fn remount_root_read_only(self) -> Self {
        self.args(["--remount-ro", "/"])
    }

    /// `--chdir DIR`.
    pub fn chdir(self, dir: &str) -> Self {
        self.args(["--chdir", dir])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(b: Bwrap) -> String {
        b.into_args()
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn arguments_come_in_call_order() {
        let args = joined(
            Bwrap::new()
                .unshare_all_but_cgroup()
                .unshare_cgroup(false)
                .ids(7, 8)
                .hostname("h")
                .die_with_parent()
                .as_pid_1()
                .new_session()
                .cap_drop_all()
                .scratch("/tmp", 1024)
                .remount_root_read_only()
                .chdir("/tmp"),
        );
        assert_eq!(
            args,
            "--unshare-user --unshare-ipc --unshare-pid --unshare-net --unshare-uts \
             --unshare-cgroup-try --uid 7 --gid 8 --hostname h --die-with-parent --as-pid-1 \
             --new-session --cap-drop ALL --size 1024 --perms 0700 --tmpfs /tmp --remount-ro / \
             --chdir /tmp"
        );
    }

    #[test]
    fn the_host_system_is_read_only_and_its_links_are_kept() {
        let args = joined(Bwrap::new().host_system());
        assert!(args.starts_with("--ro-bind /usr /usr"), "{args}");
        assert!(
            args.ends_with("--ro-bind-try /etc/ld.so.cache /etc/ld.so.cache"),
            "{args}"
        );
        if let Ok(target) = std::fs::read_link("/bin") {
            assert!(
                args.contains(&format!("--symlink {} /bin", target.display())),
                "{args}"
            );
        }
    }

    #[test]
    fn the_minimal_dev_has_no_terminal() {
        let args = joined(Bwrap::new().minimal_dev("/tmp"));
        assert!(args.starts_with("--dir /dev --dev-bind /dev/null /dev/null"));
        assert!(args.ends_with("--symlink /tmp /dev/shm"), "{args}");
        assert!(!args.contains("tty") && !args.contains("pts"), "{args}");
    }
}
