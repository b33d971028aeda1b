//! Host identities of sandboxes.
//!
//! Inside its user namespace a tool runs as its own uid (one per tool). On the host, when the
//! gateway runs as root, each running sandbox also gets an unprivileged uid of its own, leased
//! from a pool for the life of the call: the kernel then counts the process limit per sandbox
//! (`RLIMIT_NPROC` is charged per real uid, and root is exempt from it), a sandbox can signal
//! nothing but itself, and what is left of a killed sandbox can be found by its uid. When the
//! gateway is not root it cannot change uid: sandboxes then run under the gateway's uid and the
//! process limit is not applied (the pid namespace and deadline still bound them).

use std::sync::{Arc, Mutex};

/// Why no host identity could be leased.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("all {0} sandbox uids are in use; too many calls at once")]
    Exhausted(u32),
}

/// A pool of host uids, `base .. base + size`.
#[derive(Debug)]
pub struct UidPool {
    base: u32,
    free: Mutex<Vec<u32>>,
    size: u32,
}

/// A leased host uid (also used as the gid); returned to the pool on drop.
#[derive(Debug)]
pub struct Lease {
    uid: u32,
    pool: Arc<UidPool>,
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
    pub fn new(base: u32, size: u32) -> Arc<Self> {
        // Handed out from the end, so the lowest uids are used first.
        Arc::new(Self {
            base,
            free: Mutex::new((0..size).rev().collect()),
            size,
        })
    }

    pub fn lease(self: &Arc<Self>) -> Result<Lease, IdentityError> {
        let slot = self
            .free
            .lock()
            .ok()
            .and_then(|mut free| free.pop())
            .ok_or(IdentityError::Exhausted(self.size))?;
        Ok(Lease {
            uid: self.base + slot,
            pool: Arc::clone(self),
        })
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
        let pool = UidPool::new(1000, 2);
        let a = pool.lease().expect("first");
        let b = pool.lease().expect("second");
        assert_ne!(a.uid(), b.uid());
        assert!(pool.contains(a.uid()) && pool.contains(b.uid()));
        assert!(matches!(pool.lease(), Err(IdentityError::Exhausted(2))));
        let freed = a.uid();
        drop(a);
        assert_eq!(pool.lease().expect("after release").uid(), freed);
    }
}
