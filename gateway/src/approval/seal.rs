//! [`Sealer`]: what the gateway hands out and must get back unchanged (a call's `requestState`,
//! the approval page's session cookie) is encrypted and authenticated with XChaCha20-Poly1305,
//! under a key every replica derives from the session key. The purpose is the associated data,
//! so a value sealed for one use never opens for another.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// What a sealed value is for: part of what is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The `requestState` of a call waiting for its approval.
    RequestState,
    /// The approval page's session cookie.
    PageSession,
    /// The cookie of a sign-in through the authorization server, between the redirect there and
    /// the callback (state, nonce, PKCE verifier).
    SignIn,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Self::RequestState => b"switchboard approval request state v1",
            Self::PageSession => b"switchboard approval page session v1",
            Self::SignIn => b"switchboard approval page sign-in v1",
        }
    }
}

/// Seals and opens values with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer")
    }
}

/// A sealed value that does not open: altered, sealed with another key or for another purpose,
/// or not one at all. Deliberately says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a value this gateway sealed")]
pub struct Unsealable;

/// The longest sealed value accepted, in characters (a request state is a few hundred).
const MAX_SEALED_CHARS: usize = 8192;

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&key.into()),
        }
    }

    /// `value` as JSON, encrypted under a random nonce: base64url of nonce and ciphertext.
    pub fn seal<T: Serialize>(&self, purpose: Purpose, value: &T) -> String {
        let plain = serde_json::to_vec(value).unwrap_or_default();
        let nonce_bytes: [u8; 24] = rand::random();
        let nonce = XNonce::from(nonce_bytes);
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: &plain,
                    aad: purpose.label(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The value `text` holds, when this key sealed it for `purpose`.
    pub fn open<T: DeserializeOwned>(&self, purpose: Purpose, text: &str) -> Result<T, Unsealable> {
        if text.len() > MAX_SEALED_CHARS {
            return Err(Unsealable);
        }
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| Unsealable)?;
        if raw.len() < 24 + 16 {
            return Err(Unsealable);
        }
        let (nonce, sealed) = raw.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().map_err(|_| Unsealable)?;
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: purpose.label(),
                },
            )
            .map_err(|_| Unsealable)?;
        serde_json::from_slice(&plain).map_err(|_| Unsealable)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_unchanged_with_their_key_and_purpose() {
        let sealer = Sealer::new([7; 32]);
        let text = sealer.seal(Purpose::RequestState, &("approval", 42));
        let opened: (String, u32) = sealer.open(Purpose::RequestState, &text).expect("opens");
        assert_eq!(opened, ("approval".to_owned(), 42));
        // Another purpose, another key, one flipped character, garbage: none opens.
        assert_eq!(
            sealer.open::<(String, u32)>(Purpose::PageSession, &text),
            Err(Unsealable)
        );
        let other = Sealer::new([8; 32]);
        assert_eq!(
            other.open::<(String, u32)>(Purpose::RequestState, &text),
            Err(Unsealable)
        );
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 1;
        chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
        let altered: String = chars.into_iter().collect();
        assert_eq!(
            sealer.open::<(String, u32)>(Purpose::RequestState, &altered),
            Err(Unsealable)
        );
        assert_eq!(
            sealer.open::<(String, u32)>(Purpose::RequestState, "not sealed"),
            Err(Unsealable)
        );
        // The same value sealed twice differs (random nonce): nothing to correlate.
        assert_ne!(text, sealer.seal(Purpose::RequestState, &("approval", 42)));
    }
}
