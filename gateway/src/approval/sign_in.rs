//! The approval page's sign-in through the authorization server (`gateway.auth.approval_sign_in`):
//! the gateway is an OpenID Connect client of the issuer it trusts for callers, for its page only.
//!
//! [`OidcSignIn::start`] sends the browser to the authorization endpoint with a fresh `state`,
//! `nonce` and PKCE (S256) verifier, kept in a sealed cookie ([`Pending`]) until the callback;
//! [`OidcSignIn::finish`] checks the callback's `state`, redeems the code at the token endpoint
//! with the verifier, verifies the ID token (issuer, audience = the page's client id, `nonce`)
//! and the access token for the gateway as a caller's token, and returns who signed in, with the
//! groups the access token carries: an approver is whoever the gateway would take them for as a
//! caller.
//!
//! Written here rather than with an OAuth client crate: the ones built for it (`oauth2`,
//! `openidconnect`) bring their own HTTP stack version and their own key fetching, and the ID
//! token is better verified by the same key cache and code that verify every caller's token.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::auth::{AuthError, Caller, Verifier};
use crate::catalog::ApprovalSignIn;

/// How long a sign-in may take from the redirect to the callback.
pub const PENDING_SECONDS: u64 = 600;
/// How long the discovery document is used before it is fetched again.
const DISCOVERY_SECONDS: u64 = 3600;
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a sign-in did not happen. Shown to the person signing in; none of it is a secret.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    #[error("the authorization server's discovery document could not be read: {0}")]
    Discovery(String),
    #[error("the sign-in expired or was started in another browser; start again")]
    NoPending,
    #[error("the sign-in's state does not match; start again")]
    State,
    #[error("the authorization server refused the sign-in: {0}")]
    Refused(String),
    #[error("the token endpoint failed: {0}")]
    Token(String),
    #[error("the ID token was refused: {0}")]
    IdToken(AuthError),
    #[error("the access token for the gateway was refused: {0}")]
    AccessToken(AuthError),
    #[error("the ID token and the access token name different subjects")]
    SubjectMismatch,
}

/// The environment variable of `client_secret_env` is unset or empty.
#[derive(Debug, thiserror::Error)]
#[error(
    "gateway.auth.approval_sign_in.client_secret_env: the environment variable {0} is unset or empty"
)]
pub struct MissingSecret(pub String);

/// What a sign-in keeps between the redirect to the authorization server and the callback
/// (sealed in a cookie of its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    state: String,
    nonce: String,
    verifier: String,
    /// Where the browser goes after (an approval page; [`super::page`] checked it).
    pub next: String,
    pub exp: u64,
}

/// The endpoints of the issuer's discovery document the sign-in uses.
#[derive(Debug, Clone, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: String,
    id_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TokenError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The sign-in of one gateway.
#[derive(Debug)]
pub struct OidcSignIn {
    issuer: String,
    client_id: String,
    client_secret: Option<SecretString>,
    scope: String,
    /// The gateway's canonical URI: the access token is asked for it (RFC 8707).
    resource: String,
    redirect_uri: String,
    http: reqwest::Client,
    discovery: Mutex<Option<(Discovery, Instant)>>,
}

fn random_token() -> String {
    URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn same_secret(a: &str, b: &str) -> bool {
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// An endpoint is reached over https; plain http only on a loopback address.
fn fetchable(url: &str) -> bool {
    crate::auth::setup::check_jwks_url(url).is_ok()
}

impl OidcSignIn {
    /// The sign-in for `settings` of `issuer`, whose access tokens are for `resource`, with the
    /// callback under `origin`. Reads the client secret from its environment variable now.
    pub fn new(
        settings: &ApprovalSignIn,
        issuer: &str,
        resource: &str,
        origin: &str,
    ) -> Result<Self, MissingSecret> {
        let client_secret = match &settings.client_secret_env {
            Some(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Some(SecretString::from(v)),
                _ => return Err(MissingSecret(name.clone())),
            },
            None => None,
        };
        let mut scopes = vec!["openid".to_owned()];
        scopes.extend(settings.scopes.iter().filter(|s| *s != "openid").cloned());
        let http = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Ok(Self {
            issuer: issuer.to_owned(),
            client_id: settings.client_id.clone(),
            client_secret,
            scope: scopes.join(" "),
            resource: resource.to_owned(),
            redirect_uri: format!("{origin}/approvals/callback"),
            http,
            discovery: Mutex::new(None),
        })
    }

    /// The issuer's endpoints, from its discovery document (kept for an hour; a failed fetch is
    /// not kept).
    async fn discovery(&self) -> Result<Discovery, SignInError> {
        let mut kept = self.discovery.lock().await;
        if let Some((d, at)) = kept.as_ref()
            && at.elapsed() < Duration::from_secs(DISCOVERY_SECONDS)
        {
            return Ok(d.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.issuer.trim_end_matches('/')
        );
        let fail = |m: String| SignInError::Discovery(format!("{url}: {m}"));
        let answer = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| fail(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(fail(format!("HTTP {}", answer.status())));
        }
        let d: Discovery = answer.json().await.map_err(|e| fail(e.to_string()))?;
        // OpenID Connect Discovery 4.3: the document's issuer is exactly the one asked.
        if d.issuer != self.issuer {
            return Err(fail(format!(
                "it names issuer {:?}, not {:?}",
                crate::auth::shown(&d.issuer),
                self.issuer
            )));
        }
        for endpoint in [&d.authorization_endpoint, &d.token_endpoint] {
            if !fetchable(endpoint) {
                return Err(fail(format!(
                    "endpoint {:?} is not https (or http on loopback)",
                    crate::auth::shown(endpoint)
                )));
            }
        }
        if let Some(methods) = &d.code_challenge_methods_supported
            && !methods.iter().any(|m| m == "S256")
        {
            return Err(fail("it does not support PKCE with S256".into()));
        }
        *kept = Some((d.clone(), Instant::now()));
        Ok(d)
    }

    /// A new sign-in that returns to `next`: the authorization URL to send the browser to, and
    /// what to keep until the callback.
    pub async fn start(
        &self,
        next: String,
        now_unix: u64,
    ) -> Result<(String, Pending), SignInError> {
        let d = self.discovery().await?;
        let pending = Pending {
            state: random_token(),
            nonce: random_token(),
            verifier: random_token(),
            next,
            exp: now_unix + PENDING_SECONDS,
        };
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(pending.verifier.as_bytes()));
        let mut url = reqwest::Url::parse(&d.authorization_endpoint)
            .map_err(|e| SignInError::Discovery(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.scope)
            .append_pair("state", &pending.state)
            .append_pair("nonce", &pending.nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", &self.resource);
        Ok((url.into(), pending))
    }

    /// The callback of sign-in `pending` with the authorization server's answer: who signed in.
    pub async fn finish(
        &self,
        pending: &Pending,
        answer: &Callback,
        verifier: &Verifier,
    ) -> Result<Caller, SignInError> {
        if !answer
            .state
            .as_deref()
            .is_some_and(|s| same_secret(s, &pending.state))
        {
            return Err(SignInError::State);
        }
        if let Some(error) = &answer.error {
            let detail = answer.error_description.as_deref().unwrap_or("");
            return Err(SignInError::Refused(
                format!(
                    "{} {}",
                    crate::auth::shown(error),
                    crate::auth::shown(detail)
                )
                .trim_end()
                .to_owned(),
            ));
        }
        let code = answer
            .code
            .as_deref()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| SignInError::Refused("the callback carries no code".into()))?;
        let tokens = self.redeem(code, &pending.verifier).await?;
        let id_token = tokens
            .id_token
            .ok_or_else(|| SignInError::Token("the answer carries no ID token".into()))?;
        let subject = verifier
            .verify_id_token(&id_token, &self.client_id, &pending.nonce)
            .await
            .map_err(SignInError::IdToken)?;
        let caller = verifier
            .verify(&tokens.access_token)
            .await
            .map_err(SignInError::AccessToken)?;
        if caller.subject != subject {
            return Err(SignInError::SubjectMismatch);
        }
        Ok(caller)
    }

    /// Redeems `code` at the token endpoint (RFC 6749 4.1.3, RFC 7636 4.5, RFC 8707 2.2).
    async fn redeem(&self, code: &str, code_verifier: &str) -> Result<TokenAnswer, SignInError> {
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &self.redirect_uri),
            ("code_verifier", code_verifier),
            ("resource", &self.resource),
        ];
        let mut request = self.http.post(&d.token_endpoint);
        match &self.client_secret {
            // RFC 6749 2.3.1: both form-encoded before they are joined.
            Some(secret) => {
                let enc =
                    |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
                request =
                    request.basic_auth(enc(&self.client_id), Some(enc(secret.expose_secret())));
            }
            None => form.push(("client_id", &self.client_id)),
        }
        let answer = request
            .header("accept", "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| SignInError::Token(e.without_url().to_string()))?;
        let status = answer.status();
        let body = answer
            .bytes()
            .await
            .map_err(|e| SignInError::Token(e.without_url().to_string()))?;
        if !status.is_success() {
            let why = serde_json::from_slice::<TokenError>(&body)
                .map(|e| {
                    format!(
                        "{} {}",
                        crate::auth::shown(&e.error),
                        crate::auth::shown(e.error_description.as_deref().unwrap_or(""))
                    )
                })
                .unwrap_or_else(|_| format!("HTTP {status}"));
            return Err(SignInError::Token(why.trim_end().to_owned()));
        }
        serde_json::from_slice(&body).map_err(|e| SignInError::Token(e.to_string()))
    }
}

/// The query of the callback the authorization server sends the browser to.
#[derive(Debug, Default, Deserialize)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_named_but_unset_is_refused_at_start() {
        let settings = ApprovalSignIn {
            client_id: "page".into(),
            client_secret_env: Some("SWITCHBOARD_TEST_SECRET_NEVER_SET".into()),
            scopes: vec![],
        };
        let e = OidcSignIn::new(&settings, "https://i", "https://g/mcp", "https://g")
            .expect_err("unset");
        assert!(
            e.to_string().contains("SWITCHBOARD_TEST_SECRET_NEVER_SET"),
            "{e}"
        );
    }

    #[test]
    fn openid_is_asked_for_once_and_first() {
        let settings = ApprovalSignIn {
            client_id: "page".into(),
            client_secret_env: None,
            scopes: vec!["mcp:tools".into(), "openid".into()],
        };
        let s = OidcSignIn::new(&settings, "https://i", "https://g/mcp", "https://g").expect("ok");
        assert_eq!(s.scope, "openid mcp:tools");
        assert_eq!(s.redirect_uri, "https://g/approvals/callback");
    }
}
