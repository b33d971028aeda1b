//! Who owns each MCP session (2025-11-25 `Mcp-Session-Id`). A session id is bound to the caller
//! that created it; presented with another caller's token it is treated as a session that does
//! not exist. The table is bounded: when full, the least recently used binding is dropped, and a
//! session without a binding is refused too (its client starts a new one), so it fails closed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Most sessions remembered at once.
const MAX_SESSIONS: usize = 10_000;

/// What a presented session id is, for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Bound to this caller.
    Owned,
    /// Unknown, or bound to someone else: both answer alike.
    NotFound,
}

/// The session-to-owner table.
#[derive(Debug, Default)]
pub struct SessionOwners {
    owners: Mutex<HashMap<String, (String, Instant)>>,
}

impl SessionOwners {
    /// Binds a new session to `subject`.
    pub fn bind(&self, session: &str, subject: &str) {
        let mut owners = self.lock();
        if owners.len() >= MAX_SESSIONS
            && let Some(oldest) = owners
                .iter()
                .min_by_key(|(_, (_, seen))| *seen)
                .map(|(k, _)| k.clone())
        {
            owners.remove(&oldest);
        }
        owners.insert(session.to_owned(), (subject.to_owned(), Instant::now()));
    }

    /// Whether `subject` may use `session`; refreshes the binding when it may.
    pub fn check(&self, session: &str, subject: &str) -> SessionCheck {
        match self.lock().get_mut(session) {
            Some((owner, seen)) if owner == subject => {
                *seen = Instant::now();
                SessionCheck::Owned
            }
            _ => SessionCheck::NotFound,
        }
    }

    /// Forgets a session (after its owner deleted it).
    pub fn forget(&self, session: &str) {
        self.lock().remove(session);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (String, Instant)>> {
        match self.owners.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_belongs_to_its_creator_only() {
        let t = SessionOwners::default();
        t.bind("s1", "alice");
        assert_eq!(t.check("s1", "alice"), SessionCheck::Owned);
        assert_eq!(t.check("s1", "bob"), SessionCheck::NotFound);
        assert_eq!(t.check("s2", "alice"), SessionCheck::NotFound);
        t.forget("s1");
        assert_eq!(t.check("s1", "alice"), SessionCheck::NotFound);
    }
}
