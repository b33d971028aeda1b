//! Host identities of sandboxes.
//!
//! Inside its user namespace a sandboxed program runs as whatever uid the caller chose. On the
//! host, when the caller runs as root, each running sandbox also gets an unprivileged uid of its
//! own, leased for the life of the sandbox: the kernel then counts the process limit per sandbox
//! (`RLIMIT_NPROC` is charged per real uid, and root is exempt from it), a sandbox can signal
//! nothing but itself, and what is left of a killed sandbox can be found by its uid
//! ([`kill_uid`]). When the caller is not root it cannot change uid: sandboxes then run under
//! its own uid and the process limit is not applied.
//!
//! Two processes on one machine must never hand out the same uid (killing the leftovers of one
//! sandbox would kill the other's), so each lease also holds an exclusive lock (`flock`) on a
//! file named after the uid in a folder they share; the kernel drops the lock when the holder
//! exits, however it exits. Two ways to lease:
//! - [`UidPool`]: a long-lived process running many sandboxes at once (the gateway); lock files
//!   `<dir>/<uid>`.
//! - [`lease`]: a process that runs one sandbox (an execution environment of the Lambda host);
//!   lock files `<dir>/<uid>.lock`, and the leftovers of a previous holder are killed first.
//!
//! (The two file names are those the two callers have always used, so that hosts of different
//! versions on one machine still exclude each other.)

use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why no host identity could be leased.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("all {0} sandbox uids are in use; too many sandboxes at once")]
    Exhausted(u32),
    #[error("cannot use the uid lock folder {path}: {source}")]
    LockDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("processes of uid {0} were still alive after the sandbox was killed")]
    Survivors(u32),
}

/// Whether this process may give its children other uids.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

fn create_lock_dir(dir: &Path) -> Result<(), IdentityError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| IdentityError::LockDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// Opens (creating it if needed) the lock file at `path` and takes its exclusive lock without
/// waiting: `None` when another holder has it.
fn try_lock(path: &Path) -> Result<Option<File>, IdentityError> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| IdentityError::LockDir {
            path: path.to_path_buf(),
            source,
        })?;
    // flock(2): per open file description, so two leases of one process exclude each other too.
    Ok(file.try_lock().is_ok().then_some(file))
}

/// A pool of host uids, `base .. base + size`, for a process that runs many sandboxes.
#[derive(Debug)]
pub struct UidPool {
    base: u32,
    free: Mutex<Vec<u32>>,
    size: u32,
    lock_dir: PathBuf,
}

/// A uid leased from a [`UidPool`] (also used as the gid); returned to the pool on drop.
#[derive(Debug)]
pub struct Lease {
    uid: u32,
    pool: Arc<UidPool>,
    /// Holds the cross-process lock on this uid until the lease is dropped.
    _lock: File,
}

impl Lease {
    pub fn uid(&self) -> u32 {
        self.uid
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut free) = self.pool.free.lock() {
            free.push(self.uid - self.pool.base);
        }
    }
}

impl UidPool {
    pub fn new(base: u32, size: u32, lock_dir: &Path) -> Result<Arc<Self>, IdentityError> {
        create_lock_dir(lock_dir)?;
        // Handed out from the end, so the lowest uids are used first.
        Ok(Arc::new(Self {
            base,
            free: Mutex::new((0..size).rev().collect()),
            size,
            lock_dir: lock_dir.to_path_buf(),
        }))
    }

    pub fn lease(self: &Arc<Self>) -> Result<Lease, IdentityError> {
        let mut skipped = Vec::new();
        let result = loop {
            let Some(slot) = self.free.lock().ok().and_then(|mut free| free.pop()) else {
                break Err(IdentityError::Exhausted(self.size));
            };
            let uid = self.base + slot;
            match try_lock(&self.lock_dir.join(uid.to_string())) {
                Ok(Some(file)) => {
                    break Ok(Lease {
                        uid,
                        pool: Arc::clone(self),
                        _lock: file,
                    });
                }
                // Another process holds it: leave it out of this round.
                Ok(None) => skipped.push(slot),
                Err(e) => {
                    skipped.push(slot);
                    break Err(e);
                }
            }
        };
        if let Ok(mut free) = self.free.lock() {
            // Back at the bottom of the stack, so the next lease tries other uids first.
            for slot in skipped {
                free.insert(0, slot);
            }
        }
        result
    }

    pub fn contains(&self, uid: u32) -> bool {
        uid >= self.base && uid - self.base < self.size
    }
}

/// A uid leased by [`lease`] (also the gid); the lease ends when this is dropped or the process
/// exits.
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

/// Leases one uid of `base .. base + count` for the life of this process (or of the lease),
/// starting the search at a point derived from `seed` so that processes starting together
/// rarely contend for the same lock. A previous holder that died hard may have left processes
/// behind: they are killed before the lease is handed out.
pub fn lease(dir: &Path, base: u32, count: u32, seed: &str) -> Result<UidLease, IdentityError> {
    create_lock_dir(dir)?;
    let start = seed
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    for i in 0..count {
        let uid = base + (start.wrapping_add(i) % count.max(1));
        if let Some(file) = try_lock(&dir.join(format!("{uid}.lock")))? {
            let lease = UidLease { uid, _lock: file };
            if kill_uid(uid) > 0 {
                return Err(IdentityError::Survivors(uid));
            }
            return Ok(lease);
        }
    }
    Err(IdentityError::Exhausted(count))
}

/// Sends SIGKILL to every live process of `uid` until there is none (or two seconds passed);
/// answers how many were still alive at the end.
pub fn kill_uid(uid: u32) -> usize {
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let pids = live_pids_of_uid(uid);
        if pids.is_empty() || std::time::Instant::now() > until {
            return pids.len();
        }
        for pid in pids {
            signal_kill(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Sends SIGKILL to `pid`.
pub fn signal_kill(pid: libc::pid_t) {
    #[allow(unsafe_code)]
    // SAFETY: kill(2) with a pid read from /proc; at worst it names a process that has just
    // exited, and the call fails harmlessly.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
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
    fn pool_leases_are_distinct_and_come_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pool = UidPool::new(1000, 2, dir.path()).expect("pool");
        let a = pool.lease().expect("first");
        let b = pool.lease().expect("second");
        assert_ne!(a.uid(), b.uid());
        assert!(pool.contains(a.uid()) && pool.contains(b.uid()));
        assert!(matches!(pool.lease(), Err(IdentityError::Exhausted(2))));
        let freed = a.uid();
        drop(a);
        assert_eq!(pool.lease().expect("after release").uid(), freed);
        assert!(dir.path().join(freed.to_string()).is_file());
    }

    #[test]
    fn a_uid_locked_by_another_pool_is_skipped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = UidPool::new(5000, 2, dir.path()).expect("pool");
        let other = UidPool::new(5000, 2, dir.path()).expect("pool");
        let a = one.lease().expect("first pool");
        let b = other.lease().expect("second pool");
        assert_ne!(a.uid(), b.uid());
        assert!(matches!(other.lease(), Err(IdentityError::Exhausted(2))));
    }

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
        assert!(dir.path().join(format!("{freed}.lock")).is_file());
    }
}
