//! Development authentication that is not a bypass: a local Ed25519 signing key, created once and
//! kept in a file only its owner can read. `serve --dev` trusts that key and nothing else, and
//! `dev-token` signs tokens with it. Every check of production mode still applies.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use sha2::{Digest, Sha256};

use super::{KeySet, KeySource};

/// The issuer dev tokens carry.
pub const DEV_ISSUER: &str = "urn:switchboard:dev";

/// Why the dev key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DevKeyError {
    #[error("cannot create folder {0}: {1}")]
    CreateDir(PathBuf, std::io::Error),
    #[error("cannot write dev key {0}: {1}")]
    Write(PathBuf, std::io::Error),
    #[error("cannot read dev key {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("dev key {0} is not an Ed25519 PKCS#8 PEM key: {1}")]
    Parse(PathBuf, String),
    #[error("cannot sign token: {0}")]
    Sign(jsonwebtoken::errors::Error),
}

/// The default place of the dev key: `$XDG_STATE_HOME/switchboard/dev-key.pem`, else
/// `~/.local/state/switchboard/dev-key.pem`, else `.switchboard/dev-key.pem`.
pub fn default_key_path() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")));
    match base {
        Some(b) => b.join("switchboard/dev-key.pem"),
        None => PathBuf::from(".switchboard/dev-key.pem"),
    }
}

/// A loaded dev key.
pub struct DevKey {
    signing: SigningKey,
    path: PathBuf,
}

impl std::fmt::Debug for DevKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevKey")
            .field("path", &self.path)
            .field("kid", &self.kid())
            .finish()
    }
}

impl DevKey {
    /// Loads the key at `path`, creating it (mode 0600) when the file does not exist.
    /// Returns the key and whether it was created.
    pub fn load_or_create(path: &Path) -> Result<(Self, bool), DevKeyError> {
        match std::fs::read_to_string(path) {
            Ok(pem) => {
                let signing = SigningKey::from_pkcs8_pem(&pem)
                    .map_err(|e| DevKeyError::Parse(path.to_path_buf(), e.to_string()))?;
                Ok((
                    Self {
                        signing,
                        path: path.to_path_buf(),
                    },
                    false,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| DevKeyError::CreateDir(dir.to_path_buf(), e))?;
                }
                let signing = SigningKey::generate(&mut rand::rngs::OsRng);
                let pem = signing
                    .to_pkcs8_pem(LineEnding::LF)
                    .map_err(|e| DevKeyError::Parse(path.to_path_buf(), e.to_string()))?;
                // Written whole under a private name, then linked into place: a concurrent
                // `serve --dev` and `dev-token` never read a half-written key, and the first
                // link wins (the loser loads the winner's key).
                let tmp = path.with_extension(format!("tmp.{}", uuid::Uuid::new_v4().simple()));
                let write = || -> std::io::Result<()> {
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .mode(0o600)
                        .open(&tmp)?;
                    file.write_all(pem.as_bytes())?;
                    file.sync_all()
                };
                let linked = write().and_then(|()| std::fs::hard_link(&tmp, path));
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok((
                        Self {
                            signing,
                            path: path.to_path_buf(),
                        },
                        true,
                    )),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Self::load_or_create(path)
                    }
                    Err(e) => Err(DevKeyError::Write(path.to_path_buf(), e)),
                }
            }
            Err(e) => Err(DevKeyError::Read(path.to_path_buf(), e)),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The key id: the first 16 hex digits of the SHA-256 of the public key.
    pub fn kid(&self) -> String {
        let digest = Sha256::digest(self.signing.verifying_key().as_bytes());
        hex::encode(&digest[..8])
    }

    /// The public key as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(self.signing.verifying_key().as_bytes());
        serde_json::json!({"keys": [{
            "kty": "OKP", "crv": "Ed25519", "x": x, "kid": self.kid(), "alg": "EdDSA", "use": "sig"
        }]})
    }

    /// The only keys `serve --dev` trusts.
    pub fn key_source(&self) -> KeySource {
        let doc = self.jwks().to_string();
        // The document is built above from a valid key, so parsing cannot fail; an empty set
        // (which trusts nothing) is the safe fallback all the same.
        KeySource::Static(KeySet::parse("dev key", doc.as_bytes()).unwrap_or_default())
    }

    /// Signs a token.
    pub fn mint(&self, claims: &DevClaims) -> Result<String, DevKeyError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid());
        self.sign(&header, claims)
    }

    /// Signs `claims` under `header` as it is (its `alg` must be EdDSA to verify).
    pub(crate) fn sign(
        &self,
        header: &Header,
        claims: &impl serde::Serialize,
    ) -> Result<String, DevKeyError> {
        let der = self
            .signing
            .to_pkcs8_der()
            .map_err(|e| DevKeyError::Parse(self.path.clone(), e.to_string()))?;
        let key = EncodingKey::from_ed_der(der.as_bytes());
        jsonwebtoken::encode(header, claims, &key).map_err(DevKeyError::Sign)
    }
}

/// Claims of a dev token.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub groups: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub jti: String,
}

impl DevClaims {
    /// Claims valid from now for `ttl_seconds`.
    pub fn new(audience: &str, subject: &str, groups: Vec<String>, ttl_seconds: u64) -> Self {
        let now = jsonwebtoken::get_current_timestamp();
        Self {
            iss: DEV_ISSUER.into(),
            aud: audience.into(),
            sub: subject.into(),
            groups,
            tenant: None,
            scope: None,
            iat: now,
            nbf: now,
            exp: now + ttl_seconds,
            jti: uuid::Uuid::new_v4().to_string(),
        }
    }
}
