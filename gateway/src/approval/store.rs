//! Where approvals are kept: [`Store`], whose two writes ([`Store::decide`] and
//! [`Store::settle`]) are conditional, so a decision is made once and an approval used once
//! however many replicas or requests race for it. [`MemoryStore`] is the `--dev` gateway's own;
//! [`super::dynamo::DynamoStore`] the deployed gateway's, shared by its replicas.

use std::collections::HashMap;
use std::sync::Mutex;

use super::{Approval, Decision};

/// The most bytes of arguments (as JSON) an approval keeps. The approver sees them all, so they
/// are never cut: a call with more is refused ([`StoreError::TooLarge`]). DynamoDB holds at most
/// 400 KB per item; this leaves room for everything else the item holds. Both stores apply it,
/// so `--dev` refuses what a deployed gateway would.
pub const MAX_ARGUMENTS_BYTES: usize = 256 * 1024;

/// Why a store operation did not happen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The condition of a conditional write did not hold: the approval was already decided,
    /// already used, or has expired.
    #[error("the approval was already decided, used, or has expired")]
    Conflict,
    #[error("no such approval")]
    NotFound,
    /// The call's arguments are too large to be kept for the approver ([`MAX_ARGUMENTS_BYTES`]).
    #[error(
        "the call's arguments take {bytes} bytes as JSON; a call that needs approval may have at most {max}"
    )]
    TooLarge { bytes: usize, max: usize },
    /// The store could not be reached or answered an error.
    #[error("the approval store failed: {0}")]
    Unavailable(String),
}

/// The approvals every replica shares.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Keeps a new, undecided approval.
    async fn create(&self, approval: &Approval) -> Result<(), StoreError>;

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError>;

    /// The newest approval of `binding` not yet settled, if any.
    async fn open_for(&self, binding: &str) -> Result<Option<Approval>, StoreError>;

    /// Records the decision, only if the approval is undecided and not expired at `now_unix`.
    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        now_unix: u64,
    ) -> Result<Approval, StoreError>;

    /// Marks a decided approval settled (an approval used by its call, or a denial told to
    /// it), only if it is decided, not settled, and (for an approval) not expired at `now_unix`.
    async fn settle(&self, id: &str, now_unix: u64) -> Result<Approval, StoreError>;
}

/// Approvals in this process's memory: shared by its requests, gone when it exits.
#[derive(Debug, Default)]
pub struct MemoryStore {
    approvals: Mutex<HashMap<String, Approval>>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Approval>) -> T) -> T {
        let mut guard = self
            .approvals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

#[async_trait::async_trait]
impl Store for MemoryStore {
    async fn create(&self, approval: &Approval) -> Result<(), StoreError> {
        let bytes = approval.arguments.to_string().len();
        if bytes > MAX_ARGUMENTS_BYTES {
            return Err(StoreError::TooLarge {
                bytes,
                max: MAX_ARGUMENTS_BYTES,
            });
        }
        self.with(|all| {
            // Forget what expired long ago, so a long-running dev gateway stays small.
            let now = super::now_unix();
            all.retain(|_, a| a.expires_unix + 3600 > now);
            if all.contains_key(&approval.id) {
                return Err(StoreError::Conflict);
            }
            all.insert(approval.id.clone(), approval.clone());
            Ok(())
        })
    }

    async fn get(&self, id: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self.with(|all| all.get(id).cloned()))
    }

    async fn open_for(&self, binding: &str) -> Result<Option<Approval>, StoreError> {
        Ok(self.with(|all| {
            all.values()
                .filter(|a| a.binding == binding && a.settled_unix.is_none())
                .max_by_key(|a| a.created_unix)
                .cloned()
        }))
    }

    async fn decide(
        &self,
        id: &str,
        decision: Decision,
        now_unix: u64,
    ) -> Result<Approval, StoreError> {
        self.with(|all| {
            let approval = all.get_mut(id).ok_or(StoreError::NotFound)?;
            if approval.decision.is_some() || now_unix >= approval.expires_unix {
                return Err(StoreError::Conflict);
            }
            approval.decision = Some(decision);
            Ok(approval.clone())
        })
    }

    async fn settle(&self, id: &str, now_unix: u64) -> Result<Approval, StoreError> {
        self.with(|all| {
            let approval = all.get_mut(id).ok_or(StoreError::NotFound)?;
            let usable = match &approval.decision {
                None => false,
                Some(d) if d.approved => now_unix < approval.expires_unix,
                Some(_) => true,
            };
            if !usable || approval.settled_unix.is_some() {
                return Err(StoreError::Conflict);
            }
            approval.settled_unix = Some(now_unix);
            Ok(approval.clone())
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn approval(id: &str, expires_unix: u64) -> Approval {
        Approval {
            id: id.into(),
            binding: "b".into(),
            tool: "apply".into(),
            arguments: serde_json::json!({}),
            arguments_sha256: String::new(),
            timeout_seconds: 30,
            caller: "alice".into(),
            tenant: None,
            groups: vec!["approvers".into()],
            approver_may_be_caller: false,
            created_unix: 1,
            expires_unix,
            decision: None,
            settled_unix: None,
        }
    }

    fn decision(by: &str, approved: bool) -> Decision {
        Decision {
            approved,
            by: by.into(),
            at_unix: 2,
            reason: None,
        }
    }

    #[tokio::test]
    async fn a_decision_is_made_once_and_an_approval_used_once_under_a_race() {
        let store = Arc::new(MemoryStore::new());
        store
            .create(&approval("a1", u64::MAX))
            .await
            .expect("create");
        // 16 approvers decide at once: exactly one decision lands.
        let decided = futures::future::join_all((0..16).map(|i| {
            let store = Arc::clone(&store);
            async move {
                store
                    .decide("a1", decision(&format!("bob{i}"), i % 2 == 0), 2)
                    .await
            }
        }))
        .await;
        assert_eq!(decided.iter().filter(|r| r.is_ok()).count(), 1);
        assert!(
            decided
                .iter()
                .filter(|r| r.is_err())
                .all(|r| r == &Err(StoreError::Conflict))
        );
        // 16 calls use it at once: exactly one does.
        let used = futures::future::join_all((0..16).map(|_| {
            let store = Arc::clone(&store);
            async move { store.settle("a1", 3).await }
        }))
        .await;
        assert_eq!(used.iter().filter(|r| r.is_ok()).count(), 1);
        assert_eq!(store.open_for("b").await.expect("open_for"), None);
    }

    #[tokio::test]
    async fn nothing_is_decided_or_used_after_expiry() {
        let store = MemoryStore::new();
        store.create(&approval("a2", 10)).await.expect("create");
        assert_eq!(
            store.decide("a2", decision("bob", true), 10).await,
            Err(StoreError::Conflict)
        );
        store.create(&approval("a3", 10)).await.expect("create");
        store
            .decide("a3", decision("bob", true), 9)
            .await
            .expect("in time");
        assert_eq!(store.settle("a3", 10).await, Err(StoreError::Conflict));
        // A denial is told once, whenever it is asked about.
        store.create(&approval("a4", 10)).await.expect("create");
        store
            .decide("a4", decision("bob", false), 9)
            .await
            .expect("in time");
        assert!(store.settle("a4", 50).await.is_ok());
        assert_eq!(store.settle("a4", 51).await, Err(StoreError::Conflict));
        assert_eq!(store.settle("nope", 1).await, Err(StoreError::NotFound));
    }
}
