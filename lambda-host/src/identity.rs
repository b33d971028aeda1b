//! Host uids of execution environments.
//!
//! When the host runs as root, each environment's sandbox runs under an unprivileged host uid
//! that no other environment uses while it lives: the process limit (`RLIMIT_NPROC`, counted
//! per real uid) then applies per environment, a function can signal nothing but its own
//! processes, and whatever is left of a killed sandbox is found by its uid. Environments are
//! separate processes, so the lease is an exclusive `flock` on `<dir>/<uid>.lock`: the kernel
//! drops it when the holder exits, however it exits. As another user the host cannot change
//! uid; the sandbox then runs under the host's own uid without the process limit.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Why no host uid could be leased.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot create the uid lease folder {path}: {source}")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the uid lease {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("all {0} sandbox uids are leased; too many execution environments at once")]
    Exhausted(u32),
    #[error("processes of uid {0} were still alive after the sandbox was killed")]
    Survivors(u32),
}

/// A leased host uid (also the gid); the lease ends when this is dropped or the process exits.
#[derive(Debug)]
pub struct UidLease {
    uid: u32,
    _lock: File,
}

impl UidLease {
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

/// Whether this process may give its children other uids.
pub fn is_root() -> bool {
    #[allow(unsafe_code)]
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

/// Leases a uid of `base .. base + count`, starting the search at a point derived from `seed`
/// so that environments starting together rarely contend for the same lock.
pub fn lease(dir: &Path, base: u32, count: u32, seed: &str) -> Result<UidLease, IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
    let start = seed
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for i in 0..count {
        let uid = base + (start.wrapping_add(i) % count.max(1));
        let path = dir.join(format!("{uid}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| IdentityError::Open {
                path: path.clone(),
                source,
            })?;
        #[allow(unsafe_code)]
        // SAFETY: flock(2) on a descriptor this function owns; it does not touch memory.
        let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if locked {
            // A previous holder that died hard may have left processes behind.
            let lease = UidLease { uid, _lock: file };
            kill_uid(uid)?;
            return Ok(lease);
        }
    }
    Err(IdentityError::Exhausted(count))
}

/// Sends SIGKILL to every live process of `uid` until there is none; fails when some are still
/// there after two seconds.
pub fn kill_uid(uid: u32) -> Result<(), IdentityError> {
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let pids = live_pids_of_uid(uid);
        if pids.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() > until {
            return Err(IdentityError::Survivors(uid));
        }
        for pid in pids {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) with a pid read from /proc; at worst the process has just exited
            // and the call fails harmlessly.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Pids of processes (not zombies) whose real uid is `uid`.
pub fn live_pids_of_uid(uid: u32) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
                return false;
            };
            let field = |name: &str| {
                status
                    .lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned()
            };
            let real_uid = field("Uid:")
                .split_whitespace()
                .next()
                .and_then(|u| u.parse::<u32>().ok());
            real_uid == Some(uid) && !field("State:").starts_with('Z')
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_leases_never_share_a_uid_and_a_dropped_one_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        // flock is per open file description, so two leases in one process exclude each other.
        let a = lease(dir.path(), 1_900_000_000, 2, "x").expect("first");
        let b = lease(dir.path(), 1_900_000_000, 2, "x").expect("second");
        assert_ne!(a.uid(), b.uid());
        assert!(matches!(
            lease(dir.path(), 1_900_000_000, 2, "x"),
            Err(IdentityError::Exhausted(2))
        ));
        let freed = a.uid();
        drop(a);
        assert_eq!(
            lease(dir.path(), 1_900_000_000, 2, "x")
                .expect("after release")
                .uid(),
            freed
        );
    }
}
