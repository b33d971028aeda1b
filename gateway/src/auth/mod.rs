//! Authentication as an OAuth 2.1 resource server.
//!
//! Every request to `/mcp` carries a bearer JWT. [`Verifier::verify`] checks its signature against
//! keys from a JWKS (file or URL), its algorithm against an allowlist of asymmetric algorithms, its
//! issuer, its audience (this server's canonical URI), and `exp`/`nbf` with a small leeway. The
//! token itself never leaves this module: what the rest of the gateway sees is a [`Caller`].

mod caller;
pub mod dev;
mod jwks;
pub mod setup;

use std::sync::Arc;

use jsonwebtoken::{Algorithm, Validation, decode, decode_header};
use serde::Deserialize;

pub use caller::{Caller, serve_as, with_request_caller};
pub use jwks::{JwksError, KeySet, KeySource};
pub use setup::SettingsError;

use crate::catalog::AuthSettings;

/// Why a token was refused. Each maps to 401 `invalid_token`; the detail goes to logs only.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token")]
    Missing,
    #[error("the Authorization header is not a bearer token")]
    NotBearer,
    #[error("malformed token header: {0}")]
    Header(jsonwebtoken::errors::Error),
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(Algorithm),
    #[error(
        "the token names critical header extensions {0:?}; none is supported (RFC 7515 4.1.11)"
    )]
    Critical(Vec<String>),
    #[error("no key with id {0:?}")]
    UnknownKey(Option<String>),
    #[error("the key for {kid:?} does not fit algorithm {alg:?}")]
    KeyMismatch { kid: Option<String>, alg: Algorithm },
    #[error("token rejected: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    #[error("claim {0} is missing or malformed")]
    Claim(&'static str),
    #[error("the token lives {0} s; at most {1} s are accepted")]
    Lifetime(u64, u64),
    #[error("header typ {0:?} is not the required {1:?}")]
    Typ(Option<String>, String),
    #[error("signing keys unavailable: {0}")]
    Keys(#[from] JwksError),
}

/// The longest attacker-chosen header value (a `kid`, a `crit` name) an error, and so the log,
/// carries; the rest is cut.
pub const MAX_SHOWN: usize = 64;

/// `value` cut to [`MAX_SHOWN`] characters, with `…` when it was longer.
pub(crate) fn shown(value: &str) -> String {
    match value.char_indices().nth(MAX_SHOWN) {
        Some((at, _)) => format!("{}…", &value[..at]),
        None => value.to_owned(),
    }
}

impl AuthError {
    /// Whether a token was presented at all (RFC 6750: no `error` attribute when none was).
    pub fn token_presented(&self) -> bool {
        !matches!(self, Self::Missing)
    }
}

/// Verifies bearer tokens for one resource.
#[derive(Debug, Clone)]
pub struct Verifier {
    inner: Arc<VerifierInner>,
}

#[derive(Debug)]
struct VerifierInner {
    issuer: String,
    audience: String,
    algorithms: Vec<Algorithm>,
    keys: KeySource,
    groups_claim: String,
    tenant_claim: String,
    leeway: u64,
    max_lifetime: Option<u64>,
    required_typ: Option<String>,
    split_string_groups: bool,
}

/// The claims of an ID token the sign-in reads beyond those jsonwebtoken checks.
#[derive(Debug, Deserialize)]
struct IdTokenClaims {
    sub: Option<String>,
    #[serde(default)]
    aud: serde_json::Value,
    #[serde(default)]
    azp: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

#[derive(Debug, Deserialize)]
struct StandardClaims {
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<Vec<String>>,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    exp: Option<u64>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

impl Verifier {
    /// A verifier for tokens issued by `settings.issuer` for `audience`, with keys from `keys`
    /// (fetched keys kept for `settings.jwks_cache_seconds`).
    pub fn new(
        settings: &AuthSettings,
        audience: String,
        mut keys: KeySource,
    ) -> Result<Self, SettingsError> {
        let mut algorithms = Vec::new();
        for name in &settings.algorithms {
            let alg: Algorithm = name
                .parse()
                .map_err(|_| SettingsError::UnknownAlgorithm(name.clone()))?;
            if matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512) {
                return Err(SettingsError::Symmetric(name.clone()));
            }
            algorithms.push(alg);
        }
        if algorithms.is_empty() {
            return Err(SettingsError::NoAlgorithm);
        }
        keys.set_cache_window(std::time::Duration::from_secs(settings.jwks_cache_seconds));
        Ok(Self {
            inner: Arc::new(VerifierInner {
                issuer: settings.issuer.clone(),
                audience,
                algorithms,
                keys,
                groups_claim: settings.groups_claim.clone(),
                tenant_claim: settings.tenant_claim.clone(),
                leeway: settings.leeway_seconds,
                max_lifetime: settings.max_token_lifetime_seconds,
                required_typ: settings.required_typ.clone(),
                split_string_groups: settings.split_string_groups,
            }),
        })
    }

    /// The audience tokens must carry.
    pub fn audience(&self) -> &str {
        &self.inner.audience
    }

    /// Reads the bearer token from an `Authorization` header value and verifies it.
    pub async fn verify_header(
        &self,
        header: Option<&http::HeaderValue>,
    ) -> Result<Caller, AuthError> {
        let value = header.ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let (scheme, token) = value.split_once(' ').ok_or(AuthError::NotBearer)?;
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(AuthError::NotBearer);
        }
        self.verify(token.trim()).await
    }

    /// The header of compact JWS `token` checked (no critical extension, an accepted algorithm,
    /// the required `typ` when `typ` is set) and the key it names.
    async fn header_and_key(
        &self,
        token: &str,
        typ: bool,
    ) -> Result<(jsonwebtoken::Header, jsonwebtoken::DecodingKey), AuthError> {
        let inner = &self.inner;
        let header = decode_header(token).map_err(AuthError::Header)?;
        // The gateway understands no extension, so a token that says one is critical is refused
        // (RFC 7515 4.1.11), whatever it names; jsonwebtoken leaves this check to its caller.
        if let Some(crit) = &header.crit {
            return Err(AuthError::Critical(
                crit.iter().take(8).map(|c| shown(c)).collect(),
            ));
        }
        if !inner.algorithms.contains(&header.alg) {
            return Err(AuthError::Algorithm(header.alg));
        }
        if typ
            && let Some(required) = &inner.required_typ
            && !typ_matches(header.typ.as_deref(), required)
        {
            return Err(AuthError::Typ(
                header.typ.as_deref().map(shown),
                required.clone(),
            ));
        }
        let key = inner
            .keys
            .key_for(header.kid.as_deref(), header.alg)
            .await?;
        Ok((header, key))
    }

    /// Verifies the ID token of an approval page sign-in (OpenID Connect Core 3.1.3.7): signed
    /// by the issuer's keys with an accepted algorithm, issued by the issuer for `client_id`
    /// (and, naming several audiences, authorized for it: `azp`), unexpired, carrying `nonce`.
    /// Returns its subject.
    pub async fn verify_id_token(
        &self,
        token: &str,
        client_id: &str,
        nonce: &str,
    ) -> Result<String, AuthError> {
        let inner = &self.inner;
        let (header, key) = self.header_and_key(token, false).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&inner.issuer]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = inner.leeway;
        let claims = decode::<IdTokenClaims>(token, &key, &validation)
            .map_err(AuthError::Invalid)?
            .claims;
        let several = matches!(&claims.aud, serde_json::Value::Array(a) if a.len() > 1);
        if (several || claims.azp.is_some()) && claims.azp.as_deref() != Some(client_id) {
            return Err(AuthError::Claim("azp"));
        }
        // Compared as digests, so the time taken says nothing about the expected nonce.
        let digest = |v: &str| <sha2::Sha256 as sha2::Digest>::digest(v.as_bytes());
        if claims.nonce.as_deref().map(digest) != Some(digest(nonce)) {
            return Err(AuthError::Claim("nonce"));
        }
        claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Claim("sub"))
    }

    /// Verifies a compact JWS and returns the caller it names.
    pub async fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        let inner = &self.inner;
        let (header, key) = self.header_and_key(token, true).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&inner.issuer]);
        validation.set_audience(&[&inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = inner.leeway;
        let data =
            decode::<StandardClaims>(token, &key, &validation).map_err(AuthError::Invalid)?;
        let claims = data.claims;
        let subject = claims
            .sub
            .filter(|s| !s.is_empty())
            .ok_or(AuthError::Claim("sub"))?;
        if let Some(max) = inner.max_lifetime {
            // exp is required and was checked above; iat is required only here.
            let iat = claims.iat.ok_or(AuthError::Claim("iat"))?;
            let lifetime = claims.exp.unwrap_or(0).saturating_sub(iat);
            if lifetime > max {
                return Err(AuthError::Lifetime(lifetime, max));
            }
        }
        let groups = string_list(
            claims.rest.get(&inner.groups_claim),
            inner.split_string_groups,
        )
        .ok_or(AuthError::Claim("groups"))?;
        let tenant = match claims.rest.get(&inner.tenant_claim) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(AuthError::Claim("tenant")),
        };
        let mut scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        scopes.extend(claims.scp.unwrap_or_default());
        Ok(Caller {
            subject,
            tenant,
            groups,
            scopes,
        })
    }
}

/// Whether a header `typ` is the required one: compared without case, and `application/` in
/// front allowed (RFC 7515 4.1.9: `at+jwt` and `application/at+jwt` are the same type).
fn typ_matches(typ: Option<&str>, required: &str) -> bool {
    let bare = |t: &str| {
        let t = t.trim();
        match t.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => t[12..].to_ascii_lowercase(),
            _ => t.to_ascii_lowercase(),
        }
    };
    typ.is_some_and(|t| bare(t) == bare(required))
}

/// A claim that is absent (empty), a list of strings, or one string: one item, or split on
/// spaces when `split` is set.
fn string_list(value: Option<&serde_json::Value>, split: bool) -> Option<Vec<String>> {
    match value {
        None | Some(serde_json::Value::Null) => Some(Vec::new()),
        Some(serde_json::Value::String(s)) if split => {
            Some(s.split_whitespace().map(str::to_owned).collect())
        }
        Some(serde_json::Value::String(s)) if s.is_empty() => Some(Vec::new()),
        Some(serde_json::Value::String(s)) => Some(vec![s.clone()]),
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests;
