//! Signing keys: a JWKS loaded from a file once, or fetched from a URL, cached for a window
//! (`gateway.auth.jwks_cache_seconds`), and refreshed at most once per cool-down when a token
//! names a key id the cache does not hold.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

use super::AuthError;

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one JWKS.
const MAX_KEYS: usize = 64;
/// How long a fetched JWKS is used before it is fetched again, unless the catalog says otherwise.
const DEFAULT_CACHE_WINDOW: Duration = Duration::from_secs(300);
/// Least time between two fetches caused by unknown key ids (or the cache window, when shorter).
const REFRESH_COOL_DOWN: Duration = Duration::from_secs(30);

/// Why keys could not be had.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("cannot read JWKS file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("JWKS from {origin} is not valid: {message}")]
    Parse { origin: String, message: String },
    #[error("cannot fetch JWKS from {url}: {message}")]
    Fetch { url: String, message: String },
}

/// Which family of algorithms a key serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Rsa,
    Ec,
    Okp,
}

fn family_of_alg(alg: Algorithm) -> Option<Family> {
    match alg {
        Algorithm::RS256
        | Algorithm::RS384
        | Algorithm::RS512
        | Algorithm::PS256
        | Algorithm::PS384
        | Algorithm::PS512 => Some(Family::Rsa),
        Algorithm::ES256 | Algorithm::ES384 => Some(Family::Ec),
        Algorithm::EdDSA => Some(Family::Okp),
        _ => None,
    }
}

/// One usable key.
#[derive(Clone)]
struct Key {
    family: Family,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("family", &self.family)
            .finish_non_exhaustive()
    }
}

/// The keys of one JWKS, by key id.
#[derive(Debug, Clone, Default)]
pub struct KeySet {
    by_kid: HashMap<String, Key>,
    /// Keys without a `kid`, usable only by tokens without one.
    anonymous: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document. Symmetric (`oct`) keys and keys marked for encryption are skipped.
    pub fn parse(origin: &str, bytes: &[u8]) -> Result<Self, JwksError> {
        let set: JwkSet = serde_json::from_slice(bytes).map_err(|e| JwksError::Parse {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        let mut out = Self::default();
        for jwk in set.keys.iter().take(MAX_KEYS) {
            let Some(key) = usable(jwk) else { continue };
            match &jwk.common.key_id {
                Some(kid) => {
                    out.by_kid.insert(kid.clone(), key);
                }
                None => out.anonymous.push(key),
            }
        }
        if out.by_kid.is_empty() && out.anonymous.is_empty() {
            return Err(JwksError::Parse {
                origin: origin.into(),
                message: "it holds no usable asymmetric signing key".into(),
            });
        }
        Ok(out)
    }

    fn find(&self, kid: Option<&str>, family: Family) -> Option<&Key> {
        match kid {
            Some(kid) => self.by_kid.get(kid),
            None if self.anonymous.len() + self.by_kid.len() == 1 => self
                .anonymous
                .first()
                .or_else(|| self.by_kid.values().next()),
            None => self.anonymous.iter().find(|k| k.family == family),
        }
    }

    fn contains(&self, kid: Option<&str>, family: Family) -> bool {
        self.find(kid, family).is_some()
    }
}

fn usable(jwk: &Jwk) -> Option<Key> {
    use jsonwebtoken::jwk::PublicKeyUse;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(_) => Family::Ec,
        AlgorithmParameters::OctetKeyPair(_) => Family::Okp,
        _ => return None,
    };
    let decoding = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { family, decoding })
}

/// Where keys come from.
#[derive(Debug)]
pub enum KeySource {
    /// Loaded once (a JWKS file, or the dev key).
    Static(KeySet),
    /// Fetched from a URL and cached.
    Remote(RemoteJwks),
}

impl KeySource {
    /// Loads a JWKS file.
    pub fn from_file(path: &Path) -> Result<Self, JwksError> {
        let bytes = std::fs::read(path).map_err(|source| JwksError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::Static(KeySet::parse(
            &path.display().to_string(),
            &bytes,
        )?))
    }

    /// A JWKS URL, fetched on first use and kept for five minutes (see
    /// [`KeySource::set_cache_window`]).
    pub fn from_url(url: String) -> Result<Self, JwksError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| JwksError::Fetch {
                url: url.clone(),
                message: e.to_string(),
            })?;
        Ok(Self::Remote(RemoteJwks {
            url,
            client,
            window: DEFAULT_CACHE_WINDOW,
            cache: RwLock::new(None),
            refresh: Mutex::new(None),
        }))
    }

    /// How long fetched keys are used before they are fetched again; a key the issuer removed is
    /// accepted for at most this long. Keys loaded once are not affected.
    pub fn set_cache_window(&mut self, window: Duration) {
        if let Self::Remote(remote) = self {
            remote.window = window;
        }
    }

    pub(super) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<DecodingKey, AuthError> {
        let family = family_of_alg(alg).ok_or(AuthError::Algorithm(alg))?;
        let key = match self {
            Self::Static(set) => set.find(kid, family).cloned(),
            Self::Remote(remote) => remote.find(kid, family).await?,
        };
        // The kid is the token's, chosen by whoever sent it: only its start reaches the log.
        let key = key.ok_or_else(|| AuthError::UnknownKey(kid.map(super::shown)))?;
        if key.family != family {
            return Err(AuthError::KeyMismatch {
                kid: kid.map(super::shown),
                alg,
            });
        }
        Ok(key.decoding)
    }
}

/// A JWKS behind a URL.
#[derive(Debug)]
pub struct RemoteJwks {
    url: String,
    client: reqwest::Client,
    /// How long a fetched set is used.
    window: Duration,
    cache: RwLock<Option<(KeySet, Instant)>>,
    /// When a miss last caused a refetch; held while fetching so concurrent misses fetch once.
    refresh: Mutex<Option<Instant>>,
}

impl RemoteJwks {
    fn cool_down(&self) -> Duration {
        REFRESH_COOL_DOWN.min(self.window)
    }

    async fn find(&self, kid: Option<&str>, family: Family) -> Result<Option<Key>, JwksError> {
        if let Some((set, at)) = &*self.cache.read().await
            && at.elapsed() < self.window
            && set.contains(kid, family)
        {
            return Ok(set.find(kid, family).cloned());
        }
        // A miss or a stale cache. Fetches are serialized; a stale cache is always refetched, but
        // a miss on a fresh cache refetches at most once per cool-down, which bounds what a stream
        // of tokens with made-up key ids can cost.
        let mut last_refresh = self.refresh.lock().await;
        let fresh = self
            .cache
            .read()
            .await
            .as_ref()
            .is_some_and(|(_, at)| at.elapsed() < self.window);
        if fresh {
            if let Some((set, _)) = &*self.cache.read().await
                && set.contains(kid, family)
            {
                return Ok(set.find(kid, family).cloned());
            }
            if last_refresh.is_some_and(|t| t.elapsed() < self.cool_down()) {
                return Ok(None);
            }
            *last_refresh = Some(Instant::now());
        }
        let set = self.fetch().await?;
        let found = set.find(kid, family).cloned();
        *self.cache.write().await = Some((set, Instant::now()));
        Ok(found)
    }

    async fn fetch(&self) -> Result<KeySet, JwksError> {
        let err = |message: String| JwksError::Fetch {
            url: self.url.clone(),
            message,
        };
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .map_err(|e| err(e.to_string()))?;
        if !response.status().is_success() {
            return Err(err(format!("HTTP {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| err(e.to_string()))? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                return Err(err(format!("larger than {MAX_JWKS_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        KeySet::parse(&self.url, &body)
    }
}
