//! [`Caller`]: who is calling, as authentication verified it. Authentication produces it; the
//! rest of the gateway (authorization, the credential broker, the backends) reads it.

/// Who is calling, as the gateway verified it. Never carries the caller's token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub subject: String,
    /// The tenant claim, if any.
    pub tenant: Option<String>,
    /// Groups from the token.
    pub groups: Vec<String>,
    /// Scopes from the token's `scope` claim.
    pub scopes: Vec<String>,
}
