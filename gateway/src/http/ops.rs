//! Health, readiness, metrics and RFC 9728 metadata.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AppState;

pub async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready while not shutting down.
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.mcp_shutdown.is_cancelled() || state.gateway.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    } else {
        (StatusCode::OK, "ready\n")
    }
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.gateway.metrics().render(),
    )
}

pub async fn resource_metadata(State(state): State<AppState>) -> impl IntoResponse {
    let mut doc = serde_json::json!({
        "resource": state.resource,
        "bearer_methods_supported": ["header"],
        "resource_name": "Switchboard MCP gateway",
    });
    if !state.authorization_servers.is_empty() {
        doc["authorization_servers"] = serde_json::json!(state.authorization_servers);
    }
    let scopes = state.gateway.scopes();
    if !scopes.is_empty() {
        doc["scopes_supported"] = serde_json::json!(scopes);
    }
    Json(doc)
}
