//! The HTTP surface: `/mcp` behind the Host/Origin guard, the body guard and authentication;
//! protected-resource metadata; health, readiness and metrics.

mod guard;
mod ops;

use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use crate::approval::Approvals;
use crate::approval::page::{self, PageState};
use crate::auth::Verifier;
use crate::mcp::Gateway;
use crate::sessions::Sessions;

/// Everything the HTTP layer needs.
#[derive(Debug, Clone)]
pub struct AppState {
    pub gateway: Gateway,
    pub verifier: Verifier,
    /// Canonical URI of the MCP endpoint (the token audience), e.g. `http://127.0.0.1:8080/mcp`.
    pub resource: String,
    /// Authorization servers announced in the metadata.
    pub authorization_servers: Vec<String>,
    /// `Host` values accepted (host or host:port); loopback names are always accepted.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted besides the resource's own origin.
    pub allowed_origins: Vec<String>,
    pub max_body_bytes: usize,
    pub max_json_depth: usize,
    /// POSTs to the MCP endpoint handled at once; more are refused at once.
    pub requests: RequestLimit,
    /// Cancelled at the end of shutdown: closes MCP sessions and streams.
    pub mcp_shutdown: CancellationToken,
    /// Sessions of the 2025-11-25 revision: ids any replica verifies, peers told of cancels.
    pub sessions: Arc<Sessions>,
    /// The approvals, when a tool asks for them: their page is served under `/approvals/`.
    pub approvals: Option<Approvals>,
}

/// How many POSTs to the MCP endpoint may be handled at once. Each one being handled holds
/// memory in the transport (some tens of kilobytes), so without a bound a thousand clients
/// retrying at once would make the gateway grow by as many; past the bound a POST is answered at
/// once with 503, a JSON-RPC error and `Retry-After`, before its body is read.
#[derive(Debug, Clone)]
pub struct RequestLimit {
    permits: Arc<tokio::sync::Semaphore>,
    max: usize,
}

impl RequestLimit {
    pub fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(max)),
            max,
        }
    }

    /// The bound the gateway uses: room for `max_in_flight` tool calls and 64 other requests.
    pub fn for_calls(max_in_flight: usize) -> Self {
        Self::new(max_in_flight + 64)
    }
}

impl AppState {
    /// The URL of this resource's RFC 9728 metadata.
    pub fn metadata_url(&self) -> String {
        metadata_url_for(&self.resource)
    }
}

/// `https://host/mcp` → `https://host/.well-known/oauth-protected-resource/mcp`.
fn metadata_url_for(resource: &str) -> String {
    match resource.find("://").map(|i| i + 3) {
        Some(start) => {
            let rest = &resource[start..];
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}{authority}/.well-known/oauth-protected-resource{path}",
                &resource[..start]
            )
        }
        None => format!("{resource}/.well-known/oauth-protected-resource"),
    }
}

/// `host[:port]` of a URL.
pub(crate) fn authority_of(url: &str) -> Option<String> {
    url.parse::<http::Uri>()
        .ok()?
        .authority()
        .map(ToString::to_string)
}

/// `scheme://authority` of a URL, lowercased, as browsers send it in `Origin`.
pub(crate) fn origin_of(url: &str) -> Option<String> {
    let uri = url.parse::<http::Uri>().ok()?;
    Some(format!("{}://{}", uri.scheme_str()?, uri.authority()?).to_ascii_lowercase())
}

/// Builds the router.
pub fn app(state: AppState) -> Router {
    let handler = state.gateway.clone();
    let mut config = StreamableHttpServerConfig::default()
        // Host and Origin are checked by our own guard in front of every route.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(state.max_body_bytes)
        .with_sse_keep_alive(Some(std::time::Duration::from_secs(15)))
        .with_cancellation_token(state.mcp_shutdown.clone());
    // A session this replica does not hold in memory is re-created from its id.
    config.session_store = Some(state.sessions.store());
    let mcp =
        StreamableHttpService::new(move || Ok(handler.clone()), state.sessions.clone(), config);
    let mcp = Router::new()
        .route_service("/mcp", mcp)
        .layer(from_fn_with_state(state.clone(), guard::authenticate))
        .layer(from_fn_with_state(state.clone(), guard::body_limits))
        .layer(from_fn_with_state(state.clone(), guard::shed));
    let mut router = Router::new().merge(mcp);
    if let Some(approvals) = &state.approvals {
        // Behind the Host and Origin guard like everything but the health checks; the page
        // authenticates its own visitors (a signed-in cookie, not a bearer token).
        router = router.nest_service(
            "/approvals",
            page::router(PageState {
                approvals: approvals.clone(),
                verifier: state.verifier.clone(),
                origin: origin_of(&state.resource).unwrap_or_default(),
            }),
        );
    }
    router
        .route(
            "/.well-known/oauth-protected-resource",
            get(ops::resource_metadata),
        )
        .route(
            "/.well-known/oauth-protected-resource/mcp",
            get(ops::resource_metadata),
        )
        .route("/metrics", get(ops::metrics))
        .layer(from_fn_with_state(state.clone(), guard::host_and_origin))
        // Added after the guard, so outside it: a load balancer's health check sends the
        // target's IP address as `Host`, which the guard would refuse, and these two answer
        // nothing a rebinding page could use.
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_and_authority_of_urls() {
        assert_eq!(
            super::origin_of("HTTP://127.0.0.1:8080/mcp").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            super::authority_of("https://mcp.example.com/mcp").as_deref(),
            Some("mcp.example.com")
        );
        assert_eq!(super::origin_of("not a url"), None);
    }

    #[test]
    fn metadata_url_inserts_well_known_before_path() {
        assert_eq!(
            super::metadata_url_for("https://mcp.example.com/mcp"),
            "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"
        );
        assert_eq!(
            super::metadata_url_for("http://127.0.0.1:8080/mcp"),
            "http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp"
        );
    }
}
