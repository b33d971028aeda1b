//! `whoami`: answers which call this is and which AWS credentials it received. A reference tool
//! that makes the credential broker observable: a test (or an operator) compares its answer with
//! what STS issued and proves that the call got credentials minted for it, and for it only.
//!
//! It takes no arguments (any it is given are ignored) and answers, as structured content and as
//! the same JSON in its text item:
//!
//! ```text
//! {"invocationId": "<id>", "tool": "<catalog name>",
//!  "sessionTags": {"invocation": "<id>", "principal": "...", "tenant": "...", "tool": "..."},
//!  "credentials": null | {"accessKeyId": "ASIA...", "expiration": "<RFC 3339>",
//!                         "secretAccessKeySha256Prefix": "<12 hex digits>"}}
//! ```
//!
//! **It never echoes the secret access key or the session token**, whole or in part: the answer
//! goes to the agent, and from there anywhere. What identifies the secret instead is
//! `secretAccessKeySha256Prefix`, the first 12 hex digits (48 bits) of the SHA-256 of the secret
//! access key: enough for someone who holds the secret to check that it is the one this call
//! received, and of no use in recovering a random 40-character key.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::contract::{AwsCredentials, Invocation, ToolOutput};

/// How many hex digits of the secret's SHA-256 the answer shows.
pub const SECRET_FINGERPRINT_HEX_DIGITS: usize = 12;

/// Why whoami refuses to answer.
#[derive(Debug, thiserror::Error)]
pub enum WhoamiError {
    /// The credentials' session tags name another call or another tool than the invocation: the
    /// tool will not vouch for credentials minted for someone else.
    #[error(
        "the credentials' session tag {key}={tagged:?} does not match this call's {key} \
         {expected:?}: they were minted for another call"
    )]
    ForeignSession {
        key: &'static str,
        tagged: String,
        expected: String,
    },
}

/// Reports the invocation id, the tool's name, the session tags and the public parts of the
/// credentials (see the module docs; the secret parts are never in the answer). Refuses when a
/// session tag `invocation` or `tool` contradicts the invocation itself.
pub fn whoami(invocation: Invocation) -> Result<ToolOutput, WhoamiError> {
    let Invocation {
        invocation_id,
        tool,
        credentials,
        session_tags,
        ..
    } = invocation;
    check_tag(&session_tags, "invocation", &invocation_id)?;
    check_tag(&session_tags, "tool", &tool)?;
    let credentials = credentials.as_ref().map_or(Value::Null, public_parts);
    Ok(ToolOutput::structured(json!({
        "invocationId": invocation_id,
        "tool": tool,
        "sessionTags": session_tags,
        "credentials": credentials,
    })))
}

fn check_tag(
    tags: &BTreeMap<String, String>,
    key: &'static str,
    expected: &str,
) -> Result<(), WhoamiError> {
    match tags.get(key) {
        Some(tagged) if tagged != expected => Err(WhoamiError::ForeignSession {
            key,
            tagged: tagged.clone(),
            expected: expected.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// The access key id, the expiry and a fingerprint of the secret; never the secrets.
fn public_parts(credentials: &AwsCredentials) -> Value {
    json!({
        "accessKeyId": credentials.access_key_id,
        "expiration": credentials.expiration,
        "secretAccessKeySha256Prefix":
            fingerprint(credentials.secret_access_key.expose_secret()),
    })
}

/// The first [`SECRET_FINGERPRINT_HEX_DIGITS`] lowercase hex digits of SHA-256(`secret`).
pub fn fingerprint(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(SECRET_FINGERPRINT_HEX_DIGITS);
    for byte in digest.iter().take(SECRET_FINGERPRINT_HEX_DIGITS / 2) {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "FwoGZXIvYXdzEXAMPLE-session-token//////////";

    fn invocation(extra: Value) -> Invocation {
        let mut value = json!({
            "invocationId": "5f0c2a52-8d7e-4a4e-9d0b-1c6f2f7d3e11", "tool": "whoami",
            "arguments": {"tenant": "evil", "tool": "x"}, "deadlineUnixMs": 1
        });
        if let (Some(v), Value::Object(extra)) = (value.as_object_mut(), extra) {
            v.extend(extra);
        }
        serde_json::from_value(value).expect("valid invocation")
    }

    fn with_credentials() -> Invocation {
        invocation(json!({
            "credentials": {
                "accessKeyId": "ASIAEXAMPLE123", "secretAccessKey": SECRET,
                "sessionToken": TOKEN, "expiration": "2026-12-01T10:15:00Z"
            },
            "sessionTags": {
                "invocation": "5f0c2a52-8d7e-4a4e-9d0b-1c6f2f7d3e11", "tool": "whoami",
                "tenant": "acme", "principal": "alice@example.com"
            }
        }))
    }

    #[test]
    fn reports_the_call_its_tags_and_its_access_key() {
        let out = whoami(with_credentials()).expect("whoami answers");
        assert!(!out.is_error);
        assert_eq!(
            out.structured_content,
            Some(json!({
                "invocationId": "5f0c2a52-8d7e-4a4e-9d0b-1c6f2f7d3e11",
                "tool": "whoami",
                "sessionTags": {
                    "invocation": "5f0c2a52-8d7e-4a4e-9d0b-1c6f2f7d3e11", "tool": "whoami",
                    "tenant": "acme", "principal": "alice@example.com"
                },
                "credentials": {
                    "accessKeyId": "ASIAEXAMPLE123",
                    "expiration": "2026-12-01T10:15:00Z",
                    "secretAccessKeySha256Prefix": fingerprint(SECRET),
                }
            }))
        );
    }

    #[test]
    fn never_echoes_the_secret_or_the_token() {
        let out = whoami(with_credentials()).expect("whoami answers");
        let wire = serde_json::to_string(&out).expect("serializes");
        for secret in [SECRET, TOKEN] {
            assert!(!wire.contains(secret), "{wire}");
            // Not even a recognisable piece of it.
            for piece in secret.as_bytes().chunks(8) {
                let piece = std::str::from_utf8(piece).expect("ascii");
                assert!(!wire.contains(piece), "{piece:?} in {wire}");
            }
        }
    }

    #[test]
    fn the_fingerprint_is_the_start_of_the_secrets_sha256() {
        // sha256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
        assert_eq!(fingerprint("abc"), "ba7816bf8f01");
        assert_eq!(fingerprint(SECRET).len(), SECRET_FINGERPRINT_HEX_DIGITS);
        assert_ne!(fingerprint(SECRET), fingerprint("another secret"));
    }

    #[test]
    fn without_credentials_it_says_null() {
        let out = whoami(invocation(json!({}))).expect("whoami answers");
        let content = out.structured_content.expect("structured content");
        assert_eq!(content["credentials"], Value::Null);
        assert_eq!(content["sessionTags"], json!({}));
        assert_eq!(content["tool"], "whoami");
    }

    #[test]
    fn arguments_change_nothing() {
        let mut plain = with_credentials();
        plain.arguments = serde_json::Map::new();
        assert_eq!(
            whoami(plain).expect("answers").structured_content,
            whoami(with_credentials())
                .expect("answers")
                .structured_content
        );
    }

    #[test]
    fn refuses_credentials_tagged_for_another_call_or_tool() {
        for (key, value) in [("invocation", "another-call"), ("tool", "tenant-files")] {
            let mut inv = with_credentials();
            inv.session_tags.insert(key.into(), value.into());
            let e = whoami(inv).expect_err("foreign session");
            let text = e.to_string();
            assert!(text.contains(key) && text.contains(value), "{text}");
        }
    }
}
