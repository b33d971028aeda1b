//! Resource limits, and what the forked child does between fork and `exec(bwrap)`.
//!
//! Both callers spawn `bwrap` through `tokio::process::Command` with a `pre_exec` hook that
//! calls [`prepare_child`]: it lets the pipe carrying the seccomp program be inherited by
//! bubblewrap, lowers the resource limits (inherited by everything in the sandbox) and lowers
//! the CPU priority. The hook runs in the forked child of a multi-threaded process, so it may
//! only make async-signal-safe calls: raw system calls on values copied in beforehand, no
//! allocation, no locks.

/// Resource limits applied to bubblewrap and inherited by everything in the sandbox.
///
/// A limit of [`UNLIMITED`] is not set at all: the sandbox inherits the caller's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimits {
    /// Processes and threads (`RLIMIT_NPROC`); only when the sandbox has its own host uid (the
    /// kernel counts it per real uid, and exempts root).
    pub processes: Option<u64>,
    /// Open file descriptors of each process (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Largest file the sandbox may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Heap and other private writable memory of each process (`RLIMIT_DATA`).
    pub data_bytes: u64,
    /// CPU seconds of each process (`RLIMIT_CPU`, soft; the hard limit is one more, so the
    /// process gets `SIGXCPU` before `SIGKILL`); the wall-clock deadline is separate.
    pub cpu_seconds: u64,
}

/// A limit left as the caller has it (`RLIM_INFINITY`).
pub const UNLIMITED: u64 = libc::RLIM_INFINITY;

/// Runs in the forked child before `exec(bwrap)`: no allocation, raw system calls only.
///
/// Clears close-on-exec on `seccomp_fd` (so bubblewrap can read `--seccomp FD`), sets no core
/// dumps and the limits of `limits` (in this order: core, open files, file size, data, CPU,
/// processes), and lowers the priority to nice 10: a busy sandbox yields the CPU to the process
/// that started it (the gateway's `/healthz` must answer during a fork bomb; LocalStack and the
/// host must keep serving).
pub fn prepare_child(seccomp_fd: libc::c_int, limits: &Rlimits) -> std::io::Result<()> {
    #[allow(unsafe_code)]
    // SAFETY: plain system calls on an fd this process owns and on rlimit structs that live on
    // this stack frame.
    unsafe {
        if libc::fcntl(seccomp_fd, libc::F_SETFD, 0) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        let set = |resource, soft: u64, hard: u64| {
            if soft == UNLIMITED {
                return Ok(());
            }
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(resource, &lim) == -1 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(())
            }
        };
        set(libc::RLIMIT_CORE, 0, 0)?;
        set(libc::RLIMIT_NOFILE, limits.open_files, limits.open_files)?;
        set(libc::RLIMIT_FSIZE, limits.file_bytes, limits.file_bytes)?;
        set(libc::RLIMIT_DATA, limits.data_bytes, limits.data_bytes)?;
        set(
            libc::RLIMIT_CPU,
            limits.cpu_seconds,
            limits.cpu_seconds.saturating_add(1),
        )?;
        if let Some(n) = limits.processes {
            set(libc::RLIMIT_NPROC, n, n)?;
        }
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `prepare_child` in a forked child (as the callers do) and reads its limits back.
    #[test]
    fn limits_reach_the_executed_program_and_unlimited_ones_are_inherited() {
        use std::os::unix::process::CommandExt;
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&reader);
        let limits = Rlimits {
            processes: None,
            open_files: 77,
            file_bytes: 1 << 20,
            data_bytes: UNLIMITED,
            cpu_seconds: 9,
        };
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            "ulimit -n; ulimit -f; ulimit -d; ulimit -t; ulimit -c; ls /proc/self/fd",
        ]);
        let inherited_data = {
            let mut lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            #[allow(unsafe_code)]
            // SAFETY: getrlimit(2) writes into a struct on this stack frame.
            unsafe {
                libc::getrlimit(libc::RLIMIT_DATA, &mut lim);
            }
            lim.rlim_cur
        };
        #[allow(unsafe_code)]
        // SAFETY: as in the callers: prepare_child makes raw system calls only.
        unsafe {
            cmd.pre_exec(move || prepare_child(fd, &limits));
        }
        let out = cmd.output().expect("sh runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "77", "{text}");
        // `ulimit -f` counts 512-byte blocks in dash and 1024-byte blocks in bash.
        assert!(lines[1] == "2048" || lines[1] == "1024", "{text}");
        let data = if inherited_data == UNLIMITED {
            "unlimited".to_owned()
        } else {
            (inherited_data / 1024).to_string()
        };
        assert_eq!(lines[2], data, "{text}");
        assert_eq!(lines[3], "9", "{text}");
        assert_eq!(lines[4], "0", "{text}");
        assert!(lines[5..].contains(&fd.to_string().as_str()), "{text}");
    }
}
