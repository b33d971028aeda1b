//! `whoami`: answers which call this is and which AWS credentials it received. A reference tool
//! that makes the credential broker observable: a test (or an operator) compares its answer with
//! what STS issued and proves that the call got credentials minted for it, and for it only.
//!
//! It answers, as structured content and as the same JSON in its text item:
//!
//! ```text
//! {"invocationId": "<id>", "tool": "<catalog name>",
//!  "sessionTags": {"invocation": "<id>", "principal": "...", "tenant": "...", "tool": "..."},
//!  "credentials": null | {"accessKeyId": "ASIA...", "expiration": "<RFC 3339>",
//!                         "secretAccessKeySha256Prefix": "<12 hex digits>"}}
//! ```
//!
//! Its one argument, `sts` (boolean, default false), makes it also ask AWS who it is: STS
//! `GetCallerIdentity` signed with this call's credentials, sent the way the unit reaches AWS
//! ([`crate::aws`]: through the endpoint proxy in a local sandbox, which needs the tool to
//! declare the `sts` endpoint). The answer then has `"callerIdentity": {"arn", "account",
//! "userId"}`: the role session STS says these credentials belong to, which names the call's
//! invocation id. Other arguments are ignored.
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
    /// `sts: true` and the unit cannot call AWS (no credentials, no declared endpoint, ...).
    #[error("cannot ask STS: {0}")]
    Setup(#[from] crate::aws::UnitAwsError),
    /// `sts: true` and STS did not answer with an identity.
    #[error("STS GetCallerIdentity failed: {0}")]
    Sts(String),
}

/// Reports the invocation id, the tool's name, the session tags and the public parts of the
/// credentials (see the module docs; the secret parts are never in the answer), and with
/// `sts: true` what STS says of them. Refuses when a session tag `invocation` or `tool`
/// contradicts the invocation itself.
pub fn whoami(invocation: Invocation) -> Result<ToolOutput, WhoamiError> {
    check_tag(
        &invocation.session_tags,
        "invocation",
        &invocation.invocation_id,
    )?;
    check_tag(&invocation.session_tags, "tool", &invocation.tool)?;
    let caller_identity = if invocation.arguments.get("sts") == Some(&Value::Bool(true)) {
        Some(caller_identity(crate::aws::UnitAws::for_call(
            &invocation,
        )?)?)
    } else {
        None
    };
    let Invocation {
        invocation_id,
        tool,
        credentials,
        session_tags,
        ..
    } = invocation;
    let credentials = credentials.as_ref().map_or(Value::Null, public_parts);
    let mut answer = json!({
        "invocationId": invocation_id,
        "tool": tool,
        "sessionTags": session_tags,
        "credentials": credentials,
    });
    if let (Some(identity), Some(map)) = (caller_identity, answer.as_object_mut()) {
        map.insert("callerIdentity".into(), identity);
    }
    Ok(ToolOutput::structured(answer))
}

/// STS `GetCallerIdentity` with this call's credentials ([`crate::aws::block_on`]).
fn caller_identity(aws: crate::aws::UnitAws) -> Result<Value, WhoamiError> {
    let sts = aws.sts()?;
    let asked = crate::aws::block_on(async move {
        sts.get_caller_identity()
            .send()
            .await
            .map_err(|e| aws_sdk_sts::error::DisplayErrorContext(e).to_string())
    })
    .map_err(WhoamiError::Sts)?;
    Ok(json!({
        "arn": asked.arn(),
        "account": asked.account(),
        "userId": asked.user_id(),
    }))
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
    fn asking_sts_without_credentials_is_a_clear_error() {
        let mut inv = invocation(json!({}));
        inv.arguments.insert("sts".into(), Value::Bool(true));
        let e = whoami(inv).expect_err("no credentials");
        assert!(
            e.to_string()
                .starts_with("cannot ask STS: this call received no AWS credentials"),
            "{e}"
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
