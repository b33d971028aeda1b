//! [`Caller`]: who is calling, as authentication verified it. Authentication produces it; the
//! rest of the gateway (authorization, the credential broker, the backends) reads it, from the
//! request or, where rmcp calls without the request, from the task ([`with_request_caller`]).

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

tokio::task_local! {
    /// The caller of the request being served, for code that rmcp calls without the request
    /// (see `Gateway::get_tool`).
    static REQUEST_CALLER: Caller;
}

/// Runs `request` (the rest of a request's handling) with `caller` as its caller, for
/// [`with_request_caller`].
pub async fn serve_as<F: std::future::Future>(caller: Caller, request: F) -> F::Output {
    REQUEST_CALLER.scope(caller, request).await
}

/// Runs `f` with the caller of the request this task serves, if any.
pub fn with_request_caller<T>(f: impl FnOnce(Option<&Caller>) -> T) -> T {
    match REQUEST_CALLER.try_with(Caller::clone) {
        Ok(caller) => f(Some(&caller)),
        Err(_) => f(None),
    }
}
