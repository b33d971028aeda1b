//! Host identities of sandboxes.
//!
//! Inside its user namespace a tool runs as its own uid (one per tool). On the host, when the
//! gateway runs as root, each running sandbox also gets an unprivileged uid of its own, leased
//! from a pool for the life of the call: the kernel then counts the process limit per sandbox
//! (`RLIMIT_NPROC` is charged per real uid, and root is exempt from it), a sandbox can signal
//! nothing but itself, and what is left of a killed sandbox can be found by its uid. When the
//! gateway is not root it cannot change uid: sandboxes then run under the gateway's uid and the
//! process limit is not applied (the pid namespace and deadline still bound them).
//!
//! Two gateways on one machine must not hand out the same uid (killing the leftovers of one
//! sandbox would kill the other's), so each lease also holds an exclusive lock on a file named
//! after the uid in a folder all gateways share; the kernel drops the lock if the gateway dies.

use std::fs::File;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Why no host identity could be leased.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("all {0} sandbox uids are in use; too many calls at once")]
    Exhausted(u32),
    #[error("cannot use the uid lock folder {path}: {source}")]
    LockDir {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A pool of host uids, `base .. base + size`.
#[derive(Debug)]
pub struct UidPool {
    base: u32,
    free: Mutex<Vec<u32>>,
    size: u32,
    lock_dir: PathBuf,
}

/// A leased host uid (also used as the gid); returned to the pool on drop.
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
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(lock_dir)
            .map_err(|source| IdentityError::LockDir {
                path: lock_dir.to_path_buf(),
                source,
            })?;
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
            let path = self.lock_dir.join(uid.to_string());
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|source| IdentityError::LockDir {
                    path: path.clone(),
                    source,
                });
            match file {
                Ok(file) if file.try_lock().is_ok() => {
                    break Ok(Lease {
                        uid,
                        pool: Arc::clone(self),
                        _lock: file,
                    });
                }
                // Another gateway holds it: leave it out of this round.
                Ok(_) => skipped.push(slot),
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

/// Whether this process may give its children other uids.
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    #[allow(unsafe_code)]
    let euid = unsafe { libc::geteuid() };
    euid == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leases_are_distinct_and_come_back() {
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
}
