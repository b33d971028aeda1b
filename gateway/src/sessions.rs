//! MCP sessions of the 2025-11-25 revision (`Mcp-Session-Id`), served by any replica.
//!
//! A session id carries its own state: when it expires, and a MAC over that and the subject of
//! the caller who opened it, keyed by `SWITCHBOARD_SESSION_KEY`. Every replica holding the key
//! verifies an id without asking anyone, so a load balancer needs no stickiness. The subject is
//! not in the id (it is in the MAC only): an id presented with another caller's token fails the
//! MAC and answers like an id that does not exist (404), and a replica that never saw the session
//! re-creates it in memory (rmcp's session restore, replaying the `initialize`) before serving
//! the request. The transport's per-session memory is only a cache: it may be dropped when idle.
//!
//! What a session cannot carry is a request running on another replica. So a replica forwards
//! the two messages that act on such requests, `notifications/cancelled` and `DELETE`, to its
//! peers (`SWITCHBOARD_PEERS`), each with the client's own token: a peer authenticates it like
//! any request and applies it only where it holds the session. An ended (deleted) session is
//! remembered until its expiry by every replica that was told, and refused from then on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, Implementation, InitializeRequestParams,
    ServerJsonRpcMessage,
};
use rmcp::transport::common::server_side_http::{ServerSseMessage, SessionId};
use rmcp::transport::streamable_http_server::session::local::{
    LocalSessionManager, LocalSessionManagerError,
};
use rmcp::transport::streamable_http_server::session::{
    RestoreOutcome, SessionManager, SessionState, SessionStore, SessionStoreError,
};
use sha2::Sha256;

/// How long a session id stays valid after its `initialize`.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// How long a session may sit idle in a replica's memory; it is re-created on its next request.
const IDLE_IN_MEMORY: Duration = Duration::from_secs(300);
/// Shortest key accepted in `SWITCHBOARD_SESSION_KEY`, in bytes.
pub const MIN_KEY_BYTES: usize = 32;
/// Most ended sessions remembered; past it the one expiring first is forgotten.
const MAX_ENDED: usize = 100_000;
/// The request header marking a request one replica forwarded to another.
pub const FORWARDED_HEADER: &str = "switchboard-forwarded";
/// How long a forward to one peer may take.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Prefix of every session id this version mints.
const ID_PREFIX: &str = "sb1";
/// Bytes of the id's payload: expiry (u64, seconds since the epoch) and a random nonce.
const PAYLOAD_BYTES: usize = 8 + 16;
/// Bytes of the MAC kept in the id.
const MAC_BYTES: usize = 20;

type HmacSha256 = Hmac<Sha256>;

/// What a presented session id is, for a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionCheck {
    /// Minted for this caller, not expired, not ended.
    Owned,
    /// Malformed, forged, expired, ended, or minted for someone else: all answer alike.
    NotFound,
}

/// Errors of the session settings.
#[derive(Debug, thiserror::Error)]
pub enum SessionSettingsError {
    #[error("SWITCHBOARD_SESSION_KEY must hold at least {MIN_KEY_BYTES} bytes (it has {0})")]
    ShortKey(usize),
    #[error("SWITCHBOARD_PEERS: {0:?} is not host:port")]
    BadPeer(String),
}

/// Session ids: minting, checking, ending.
pub struct SessionIds {
    key: Vec<u8>,
    /// Whether the key came from the environment (shared by replicas) or was made at start.
    shared_key: bool,
    lifetime: Duration,
    /// Ended session ids, each with its expiry (seconds since the epoch).
    ended: Mutex<HashMap<String, u64>>,
}

impl std::fmt::Debug for SessionIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionIds")
            .field("shared_key", &self.shared_key)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SessionIds {
    /// Ids keyed by `key` (at least [`MIN_KEY_BYTES`]).
    pub fn with_key(key: &[u8], lifetime: Duration) -> Result<Self, SessionSettingsError> {
        if key.len() < MIN_KEY_BYTES {
            return Err(SessionSettingsError::ShortKey(key.len()));
        }
        Ok(Self {
            key: key.to_vec(),
            shared_key: true,
            lifetime,
            ended: Mutex::default(),
        })
    }

    /// Ids keyed by a random key of this process: only this process can verify them.
    pub fn process_local() -> Self {
        let key: [u8; 32] = rand::random();
        Self {
            key: key.to_vec(),
            shared_key: false,
            lifetime: SESSION_LIFETIME,
            ended: Mutex::default(),
        }
    }

    /// From `SWITCHBOARD_SESSION_KEY` when set, else a key of this process.
    pub fn from_env() -> Result<Self, SessionSettingsError> {
        match std::env::var_os("SWITCHBOARD_SESSION_KEY") {
            Some(key) => Self::with_key(key.as_encoded_bytes(), SESSION_LIFETIME),
            None => Ok(Self::process_local()),
        }
    }

    /// Whether replicas given the same key verify each other's ids.
    pub fn shared_key(&self) -> bool {
        self.shared_key
    }

    /// A 32-byte key for another use of the session key (`label` names the use), so that
    /// replicas holding the same session key share it too and no two uses share a key.
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    pub fn derive_key(&self, label: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"switchboard derived key v1\0");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// The MAC over an id's payload and the subject it was minted for.
    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    fn mac(&self, payload: &[u8], subject: &str) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(b"switchboard session v1\0");
        mac.update(payload);
        mac.update(subject.as_bytes());
        mac
    }

    /// A new session id for `subject`.
    pub fn mint(&self, subject: &str) -> String {
        let expires = now_secs() + self.lifetime.as_secs();
        let mut payload = [0u8; PAYLOAD_BYTES];
        payload[..8].copy_from_slice(&expires.to_be_bytes());
        payload[8..].copy_from_slice(&rand::random::<[u8; 16]>());
        let mac = self.mac(&payload, subject).finalize().into_bytes();
        format!(
            "{ID_PREFIX}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(&mac[..MAC_BYTES])
        )
    }

    /// The expiry of a well-formed id whose MAC matches `subject`.
    fn verified_expiry(&self, id: &str, subject: &str) -> Option<u64> {
        let mut parts = id.split('.');
        let (Some(ID_PREFIX), Some(payload), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return None;
        };
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let presented = URL_SAFE_NO_PAD.decode(mac).ok()?;
        if payload.len() != PAYLOAD_BYTES || presented.len() != MAC_BYTES {
            return None;
        }
        // Constant-time comparison of the truncated MAC.
        self.mac(&payload, subject)
            .verify_truncated_left(&presented)
            .ok()?;
        let mut expires = [0u8; 8];
        expires.copy_from_slice(&payload[..8]);
        Some(u64::from_be_bytes(expires))
    }

    /// Whether `subject` may use the session `id`.
    pub fn check(&self, id: &str, subject: &str) -> SessionCheck {
        match self.verified_expiry(id, subject) {
            Some(expires) if expires > now_secs() && !self.lock().contains_key(id) => {
                SessionCheck::Owned
            }
            _ => SessionCheck::NotFound,
        }
    }

    /// Ends a session (its owner deleted it): it is refused from now on, here.
    pub fn end(&self, id: &str, subject: &str) {
        let Some(expires) = self.verified_expiry(id, subject) else {
            return;
        };
        let now = now_secs();
        let mut ended = self.lock();
        ended.retain(|_, e| *e > now);
        if ended.len() >= MAX_ENDED
            && let Some(first) = ended
                .iter()
                .min_by_key(|(_, e)| **e)
                .map(|(k, _)| k.clone())
        {
            ended.remove(&first);
        }
        ended.insert(id.to_owned(), expires);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        match self.ended.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The other replicas, told of cancellations and deletions.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// `host:port` of each peer; a name may resolve to several replicas (all are told).
    targets: Vec<String>,
    client: Option<reqwest::Client>,
}

impl Peers {
    /// Peers from a comma-separated `host:port` list.
    pub fn parse(list: &str) -> Result<Self, SessionSettingsError> {
        let mut targets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let ok = item
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok || item.contains('/') {
                return Err(SessionSettingsError::BadPeer(item.to_owned()));
            }
            targets.push(item.to_owned());
        }
        let client = if targets.is_empty() {
            None
        } else {
            Some(
                reqwest::Client::builder()
                    .timeout(FORWARD_TIMEOUT)
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(|e| SessionSettingsError::BadPeer(e.to_string()))?,
            )
        };
        Ok(Self { targets, client })
    }

    /// From `SWITCHBOARD_PEERS` (empty when unset).
    pub fn from_env() -> Result<Self, SessionSettingsError> {
        Self::parse(&std::env::var("SWITCHBOARD_PEERS").unwrap_or_default())
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Sends a copy of a client's request to every peer, in the background. The copy keeps the
    /// client's headers (its token among them) and is marked as forwarded, so that it is not
    /// forwarded again. Failures are logged; the client's own answer does not wait for them.
    pub fn forward(&self, method: http::Method, headers: &http::HeaderMap, body: bytes::Bytes) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let mut headers = headers.clone();
        headers.insert(FORWARDED_HEADER, http::HeaderValue::from_static("1"));
        headers.remove(http::header::CONTENT_LENGTH);
        for target in self.targets.clone() {
            let (client, method, headers, body) = (
                client.clone(),
                method.clone(),
                headers.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                let addrs = match tokio::net::lookup_host(&target).await {
                    Ok(a) => a.collect::<Vec<_>>(),
                    Err(e) => {
                        tracing::warn!(peer = %target, error = %e, "cannot resolve peer");
                        return;
                    }
                };
                for addr in addrs {
                    let sent = client
                        .request(method.clone(), format!("http://{addr}/mcp"))
                        .headers(headers.clone())
                        .body(body.clone())
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status().is_success() => {
                            tracing::debug!(peer = %addr, status = %r.status(), "forwarded")
                        }
                        Ok(r) => {
                            tracing::warn!(peer = %addr, status = %r.status(), "peer refused a forward")
                        }
                        Err(e) => {
                            tracing::warn!(peer = %addr, error = %e, "cannot forward to peer")
                        }
                    }
                }
            });
        }
    }
}

tokio::task_local! {
    /// The subject and `MCP-Protocol-Version` of the request being served, for the session
    /// manager and store, which rmcp calls without the request.
    static SESSION_REQUEST: (String, Option<String>);
}

/// Runs `f` with the subject and protocol version of the request it serves.
pub async fn scope<F: Future>(subject: String, protocol: Option<String>, f: F) -> F::Output {
    SESSION_REQUEST.scope((subject, protocol), f).await
}

/// Errors of the session manager.
#[derive(Debug, thiserror::Error)]
pub enum SessionManagerError {
    #[error(transparent)]
    Local(#[from] LocalSessionManagerError),
    #[error("a session can only be created while serving an authenticated request")]
    NoCaller,
    #[error("session id collision")]
    Collision,
}

/// rmcp's in-memory session manager, with ids from [`SessionIds`]. Anything not in memory is
/// re-created from the id by rmcp's restore (see [`RestoreFromId`]).
#[derive(Debug)]
pub struct Sessions {
    pub ids: SessionIds,
    pub peers: Peers,
    local: LocalSessionManager,
}

impl Sessions {
    pub fn new(ids: SessionIds, peers: Peers) -> Self {
        let mut local = LocalSessionManager::default();
        local.session_config.keep_alive = Some(IDLE_IN_MEMORY);
        Self { ids, peers, local }
    }

    /// From `SWITCHBOARD_SESSION_KEY` and `SWITCHBOARD_PEERS`.
    pub fn from_env() -> Result<Self, SessionSettingsError> {
        Ok(Self::new(SessionIds::from_env()?, Peers::from_env()?))
    }

    /// Whether this replica holds the session in memory now.
    pub async fn holds(&self, id: &str) -> bool {
        self.local
            .sessions
            .read()
            .await
            .contains_key(&SessionId::from(id))
    }

    /// The store rmcp consults for a session this replica does not hold.
    pub fn store(&self) -> Arc<dyn SessionStore> {
        Arc::new(RestoreFromId)
    }
}

impl SessionManager for Sessions {
    type Error = SessionManagerError;
    type Transport = <LocalSessionManager as SessionManager>::Transport;

    async fn create_session(&self) -> Result<(SessionId, Self::Transport), Self::Error> {
        let subject = SESSION_REQUEST
            .try_with(|(s, _)| s.clone())
            .map_err(|_| SessionManagerError::NoCaller)?;
        let id = SessionId::from(self.ids.mint(&subject));
        match self.local.restore_session(id.clone()).await? {
            RestoreOutcome::Restored(transport) => Ok((id, transport)),
            _ => Err(SessionManagerError::Collision),
        }
    }

    async fn initialize_session(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<ServerJsonRpcMessage, Self::Error> {
        Ok(self.local.initialize_session(id, message).await?)
    }

    async fn has_session(&self, id: &SessionId) -> Result<bool, Self::Error> {
        Ok(self.local.has_session(id).await?)
    }

    async fn close_session(&self, id: &SessionId) -> Result<(), Self::Error> {
        Ok(self.local.close_session(id).await?)
    }

    async fn create_stream(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.local.create_stream(id, message).await?)
    }

    async fn accept_message(
        &self,
        id: &SessionId,
        message: ClientJsonRpcMessage,
    ) -> Result<(), Self::Error> {
        Ok(self.local.accept_message(id, message).await?)
    }

    async fn create_standalone_stream(
        &self,
        id: &SessionId,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.local.create_standalone_stream(id).await?)
    }

    async fn resume(
        &self,
        id: &SessionId,
        last_event_id: String,
    ) -> Result<impl futures::Stream<Item = ServerSseMessage> + Send + Sync + 'static, Self::Error>
    {
        Ok(self.local.resume(id, last_event_id).await?)
    }

    async fn restore_session(
        &self,
        id: SessionId,
    ) -> Result<RestoreOutcome<Self::Transport>, Self::Error> {
        Ok(self.local.restore_session(id).await?)
    }
}

/// The "store" behind restores: the id was verified by the authentication guard before rmcp
/// sees the request, so the state is rebuilt from the request itself. The gateway uses nothing of
/// the client's `initialize` but the protocol version, which every later request repeats in
/// `MCP-Protocol-Version`.
#[derive(Debug)]
struct RestoreFromId;

#[async_trait::async_trait]
impl SessionStore for RestoreFromId {
    async fn load(&self, _id: &str) -> Result<Option<SessionState>, SessionStoreError> {
        let Ok(protocol) = SESSION_REQUEST.try_with(|(_, p)| p.clone()) else {
            return Ok(None);
        };
        let mut params =
            InitializeRequestParams::new(ClientCapabilities::default(), Implementation::default());
        if let Some(version) = protocol
            && let Ok(v) = serde_json::from_value(serde_json::Value::String(version))
        {
            params = params.with_protocol_version(v);
        }
        Ok(Some(SessionState::new(params)))
    }

    async fn store(&self, _id: &str, _state: &SessionState) -> Result<(), SessionStoreError> {
        Ok(())
    }

    async fn delete(&self, _id: &str) -> Result<(), SessionStoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> SessionIds {
        SessionIds::with_key(&[7u8; 32], SESSION_LIFETIME).expect("key")
    }

    #[test]
    fn a_session_belongs_to_its_creator_only() {
        let t = ids();
        let s1 = t.mint("alice");
        assert_eq!(t.check(&s1, "alice"), SessionCheck::Owned);
        assert_eq!(t.check(&s1, "bob"), SessionCheck::NotFound);
        assert_eq!(t.check(&t.mint("bob"), "alice"), SessionCheck::NotFound);
        t.end(&s1, "alice");
        assert_eq!(t.check(&s1, "alice"), SessionCheck::NotFound);
    }

    #[test]
    fn another_replica_with_the_key_verifies_the_id_and_one_without_it_does_not() {
        let a = ids();
        let b = ids();
        let s = a.mint("alice");
        assert_eq!(b.check(&s, "alice"), SessionCheck::Owned);
        let other = SessionIds::with_key(&[8u8; 32], SESSION_LIFETIME).expect("key");
        assert_eq!(other.check(&s, "alice"), SessionCheck::NotFound);
        assert_eq!(
            SessionIds::process_local().check(&s, "alice"),
            SessionCheck::NotFound
        );
    }

    #[test]
    fn forged_expired_and_malformed_ids_are_not_found() {
        let t = ids();
        let s = t.mint("alice");
        let (head, mac) = s.rsplit_once('.').expect("mac");
        // A later expiry with the old MAC.
        let payload = head.split('.').nth(1).expect("payload");
        let mut raw = URL_SAFE_NO_PAD.decode(payload).expect("b64");
        raw[7] ^= 1;
        let forged = format!("{ID_PREFIX}.{}.{mac}", URL_SAFE_NO_PAD.encode(&raw));
        assert_eq!(t.check(&forged, "alice"), SessionCheck::NotFound);
        let expired = SessionIds::with_key(&[7u8; 32], Duration::ZERO).expect("key");
        assert_eq!(
            t.check(&expired.mint("alice"), "alice"),
            SessionCheck::NotFound
        );
        for bad in [
            "",
            "sb1",
            "sb1..",
            "sb2.AAAA.AAAA",
            "2f3c-uuid",
            &format!("{s}.x"),
        ] {
            assert_eq!(t.check(bad, "alice"), SessionCheck::NotFound, "{bad:?}");
        }
    }

    #[test]
    fn short_keys_and_bad_peers_are_refused() {
        assert!(SessionIds::with_key(b"short", SESSION_LIFETIME).is_err());
        assert!(Peers::parse("10.0.0.1:8080, gw.internal:8080").is_ok());
        assert!(Peers::parse("").expect("empty").is_empty());
        for bad in ["nohost", "h:notaport", "http://h:80", ":80"] {
            assert!(Peers::parse(bad).is_err(), "{bad}");
        }
    }
}
