//! A container result sealed with its call's key: what tells the gateway that the result object
//! came from the unit that read the invocation, not from whoever else holds the result URL.
//!
//! The presigned `PUT` of a Fargate task's result is in `RunTask`'s overrides, which anyone with
//! `ecs:DescribeTasks` can read, and it is valid until the deadline. The gateway therefore puts a
//! random key of the call ([`ResultKey`]) in the invocation, which is reached only through the
//! presigned `GET` (valid for the task's start window only), and accepts a result object only when
//! it is sealed with that key:
//!
//! ```text
//! switchboard-result-hmac-sha256 <64 hex digits: HMAC-SHA-256 of the JSON under the key>\n
//! <the ToolOutput JSON, exactly the bytes the MAC covers>
//! ```
//!
//! The key's 64 hex characters, as the invocation carries them, are the HMAC key.

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a sealed result object starts with, before its MAC.
pub const SEAL_PREFIX: &str = "switchboard-result-hmac-sha256 ";

/// One call's result key: 32 random bytes as 64 lowercase hex digits. `Debug` never prints it;
/// serialization does, because the invocation is how it reaches the unit.
#[derive(Clone)]
pub struct ResultKey(SecretString);

impl ResultKey {
    /// The key made of `bytes` (the gateway's random ones).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(SecretString::from(to_hex(&bytes)))
    }

    #[allow(clippy::expect_used, reason = "HMAC takes a key of any length")]
    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(self.0.expose_secret().as_bytes())
            .expect("HMAC takes a key of any length")
    }
}

impl PartialEq for ResultKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose_secret() == other.0.expose_secret()
    }
}

impl Eq for ResultKey {}

impl std::fmt::Debug for ResultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResultKey(<redacted>)")
    }
}

impl Serialize for ResultKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.expose_secret())
    }
}

impl<'de> Deserialize<'de> for ResultKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(serde::de::Error::custom(
                "a result key is 64 lowercase hex digits",
            ));
        }
        Ok(Self(SecretString::from(text)))
    }
}

/// Why a result object is not one sealed with the call's key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("it carries no MAC (it does not start with {SEAL_PREFIX:?}<MAC>)")]
    NotSealed,
    #[error("its MAC is not this call's (made with another key, or the result was altered)")]
    BadMac,
}

/// `output` (a ToolOutput's JSON) sealed with `key`.
pub fn seal(key: &ResultKey, output: &[u8]) -> Vec<u8> {
    let mut mac = key.mac();
    mac.update(output);
    let tag = to_hex(&mac.finalize().into_bytes());
    let mut sealed = Vec::with_capacity(SEAL_PREFIX.len() + tag.len() + 1 + output.len());
    sealed.extend_from_slice(SEAL_PREFIX.as_bytes());
    sealed.extend_from_slice(tag.as_bytes());
    sealed.push(b'\n');
    sealed.extend_from_slice(output);
    sealed
}

/// The JSON of a result object sealed with `key` (the MAC compared in constant time).
pub fn open<'a>(key: &ResultKey, object: &'a [u8]) -> Result<&'a [u8], SealError> {
    let rest = object
        .strip_prefix(SEAL_PREFIX.as_bytes())
        .ok_or(SealError::NotSealed)?;
    let (tag, output) = match rest.get(64) {
        Some(b'\n') => (&rest[..64], &rest[65..]),
        _ => return Err(SealError::NotSealed),
    };
    let tag = from_hex(tag).ok_or(SealError::NotSealed)?;
    let mut mac = key.mac();
    mac.update(output);
    mac.verify_slice(&tag).map_err(|_| SealError::BadMac)?;
    Ok(output)
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &[u8]) -> Option<Vec<u8>> {
    text.chunks(2)
        .map(|pair| {
            let pair = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(pair, 16).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTPUT: &[u8] = br#"{"content":[{"type":"text","text":"hello"}]}"#;

    #[test]
    fn a_sealed_result_opens_with_its_key() {
        let key = ResultKey::from_bytes([7; 32]);
        let sealed = seal(&key, OUTPUT);
        assert!(sealed.starts_with(SEAL_PREFIX.as_bytes()));
        assert_eq!(open(&key, &sealed), Ok(OUTPUT));
    }

    #[test]
    fn a_result_without_a_mac_is_refused() {
        let key = ResultKey::from_bytes([7; 32]);
        assert_eq!(open(&key, OUTPUT), Err(SealError::NotSealed));
        let short = format!(
            "{SEAL_PREFIX}abcd\n{}",
            std::str::from_utf8(OUTPUT).expect("UTF-8")
        );
        assert_eq!(open(&key, short.as_bytes()), Err(SealError::NotSealed));
    }

    #[test]
    fn a_result_sealed_with_another_key_is_refused() {
        let sealed = seal(&ResultKey::from_bytes([8; 32]), OUTPUT);
        assert_eq!(
            open(&ResultKey::from_bytes([7; 32]), &sealed),
            Err(SealError::BadMac)
        );
    }

    #[test]
    fn an_altered_result_is_refused() {
        let key = ResultKey::from_bytes([7; 32]);
        let mut sealed = seal(&key, OUTPUT);
        let last = sealed.len() - 3;
        sealed[last] ^= 1;
        assert_eq!(open(&key, &sealed), Err(SealError::BadMac));
    }

    #[test]
    fn a_key_is_never_debug_printed_and_travels_as_hex() {
        let key = ResultKey::from_bytes([0xab; 32]);
        assert_eq!(format!("{key:?}"), "ResultKey(<redacted>)");
        let json = serde_json::to_string(&key).expect("serializes");
        assert_eq!(json, format!("\"{}\"", "ab".repeat(32)));
        assert_eq!(
            serde_json::from_str::<ResultKey>(&json).expect("parses"),
            key
        );
        assert!(serde_json::from_str::<ResultKey>("\"AB\"").is_err());
    }
}
