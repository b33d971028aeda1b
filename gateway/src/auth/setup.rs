//! How authentication is set up at start: the settings of development mode, where a catalog's
//! signing keys come from (a JWKS URL must be https, or http on loopback), and which
//! authorization servers the protected-resource metadata announces. `serve` builds its
//! [`Verifier`](super::Verifier) from these; `check` applies the same rules
//! ([`check_settings`]).

use std::path::Path;

use super::dev::{DEV_ISSUER, DevKey};
use super::{JwksError, KeySource};
use crate::catalog::{AuthSettings, JwksSource};

/// Why auth settings cannot verify tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("unknown algorithm {0:?}")]
    UnknownAlgorithm(String),
    #[error("{0} is symmetric; only asymmetric algorithms are accepted")]
    Symmetric(String),
    #[error("no algorithm is accepted")]
    NoAlgorithm,
    #[error("jwks url {0:?} must be https (or http on loopback)")]
    InsecureJwksUrl(String),
}

/// The settings of `serve --dev`: tokens signed by the local dev key, issued by [`DEV_ISSUER`].
pub fn dev_settings(key: &DevKey) -> AuthSettings {
    AuthSettings {
        issuer: DEV_ISSUER.into(),
        authorization_servers: vec![],
        jwks: JwksSource::File(key.path().display().to_string()),
        jwks_cache_seconds: 300,
        algorithms: vec!["EdDSA".into()],
        groups_claim: "groups".into(),
        tenant_claim: "tenant".into(),
        leeway_seconds: 30,
        max_token_lifetime_seconds: None,
        required_typ: None,
        split_string_groups: false,
        approval_sign_in: None,
    }
}

/// A JWKS URL is fetched over https; plain http only from a loopback address.
pub fn check_jwks_url(url: &str) -> Result<(), SettingsError> {
    let loopback_http = url.starts_with("http://127.")
        || url.starts_with("http://localhost")
        || url.starts_with("http://[::1]");
    if url.starts_with("https://") || loopback_http {
        Ok(())
    } else {
        Err(SettingsError::InsecureJwksUrl(url.to_owned()))
    }
}

/// The start rules a catalog's auth section must pass beyond its own loading (where its keys may
/// come from); what `check` and `serve` both refuse.
pub fn check_settings(settings: &AuthSettings) -> Result<(), SettingsError> {
    match &settings.jwks {
        JwksSource::Url(url) => check_jwks_url(url),
        JwksSource::File(_) => Ok(()),
    }
}

/// The keys a catalog's auth section names: a JWKS file (relative to the catalog's folder), read
/// now, or a JWKS URL, fetched on first use. The settings are those [`check_settings`] passed
/// (`crate::preflight::check`, which `serve` runs first).
pub fn key_source(settings: &AuthSettings, catalog_dir: &Path) -> Result<KeySource, JwksError> {
    Ok(match &settings.jwks {
        JwksSource::File(file) => KeySource::from_file(&catalog_dir.join(file))?,
        JwksSource::Url(url) => KeySource::from_url(url.clone())?,
    })
}

/// The authorization servers the metadata announces: the catalog's, else the issuer.
pub fn authorization_servers(settings: &AuthSettings) -> Vec<String> {
    if settings.authorization_servers.is_empty() {
        vec![settings.issuer.clone()]
    } else {
        settings.authorization_servers.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwks_url_is_https_or_loopback_http() {
        for ok in [
            "https://issuer.example/jwks",
            "http://127.0.0.1:9000/jwks",
            "http://localhost/jwks",
            "http://[::1]:80/jwks",
        ] {
            assert_eq!(check_jwks_url(ok), Ok(()), "{ok}");
        }
        let e = check_jwks_url("http://issuer.example/jwks").expect_err("plain http");
        assert_eq!(
            e.to_string(),
            "jwks url \"http://issuer.example/jwks\" must be https (or http on loopback)"
        );
    }
}
