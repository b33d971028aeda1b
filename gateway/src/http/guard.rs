//! Middleware in front of the MCP service: DNS-rebinding protection, body limits, authentication.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use std::sync::Arc;

use super::{AppState, origin_of};
use crate::auth::Caller;
use crate::sessions::SessionCheck;
use crate::telemetry::{CallTrace, step_span};
use crate::validate::json_depth_exceeds;
use tracing::Instrument as _;

fn json_rpc_error(status: StatusCode, code: i64, message: String) -> Response {
    let body = serde_json::json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn forbidden(message: &str) -> Response {
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}

/// Splits `host[:port]` (with `[v6]` brackets) into host and port.
fn split_authority(authority: &str) -> (&str, Option<&str>) {
    if let Some(rest) = authority.strip_prefix('[') {
        if let Some((host, tail)) = rest.split_once(']') {
            return (host, tail.strip_prefix(':'));
        }
        return (authority, None);
    }
    match authority.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => (h, Some(p)),
        _ => (authority, None),
    }
}

fn is_loopback_name(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn host_allowed(state: &AppState, authority: &str) -> bool {
    let (host, _) = split_authority(authority);
    if is_loopback_name(host) {
        return true;
    }
    state.allowed_hosts.iter().any(|allowed| {
        let (ah, ap) = split_authority(allowed);
        let (_, port) = split_authority(authority);
        ah.eq_ignore_ascii_case(host) && (ap.is_none() || ap == port)
    })
}

/// Rejects requests whose `Host` is not this server's (DNS rebinding) and browser requests from
/// other origins, with 403, before anything else runs.
pub async fn host_and_origin(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let authority = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    match authority {
        Some(a) if host_allowed(&state, &a) => {}
        Some(a) => {
            state.gateway.metrics().rejected("host");
            tracing::warn!(host = %a, "refused request for a foreign Host");
            return forbidden("Host not allowed");
        }
        None => {
            state.gateway.metrics().rejected("host");
            return forbidden("Host header required");
        }
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin = origin.to_str().unwrap_or("").to_ascii_lowercase();
        let own = origin_of(&state.resource);
        let ok = own.as_deref() == Some(origin.as_str())
            || state
                .allowed_origins
                .iter()
                .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(&origin));
        if !ok {
            state.gateway.metrics().rejected("origin");
            tracing::warn!(%origin, "refused request from a foreign Origin");
            return forbidden("Origin not allowed");
        }
    }
    next.run(request).await
}

/// Refuses a POST at once when the gateway is already handling its limit of them
/// ([`super::RequestLimit`]); the permit is held until the answer (a stream included) is done.
pub async fn shed(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let Ok(permit) = Arc::clone(&state.requests.permits).try_acquire_owned() else {
        state.gateway.metrics().rejected("busy");
        let mut response = json_rpc_error(
            StatusCode::SERVICE_UNAVAILABLE,
            -32603,
            format!(
                "the gateway is handling its limit of {} requests; retry later",
                state.requests.max
            ),
        );
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    let response = next.run(request).await;
    response.map(|body| {
        Body::new(body.map_frame(move |frame| {
            let _held = &permit;
            frame
        }))
    })
}

/// Bounds the body's size and JSON nesting before anything parses it.
pub async fn body_limits(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return next.run(request).await;
    }
    let too_large = || {
        state.gateway.metrics().rejected("body_too_large");
        json_rpc_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            -32600,
            format!("request body is larger than {} bytes", state.max_body_bytes),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return too_large();
    }
    let (parts, body) = request.into_parts();
    let bytes = match http_body_util::Limited::new(body, state.max_body_bytes)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return too_large();
        }
        Err(e) => {
            return json_rpc_error(
                StatusCode::BAD_REQUEST,
                -32700,
                format!("cannot read request body: {e}"),
            );
        }
    };
    if json_depth_exceeds(&bytes, state.max_json_depth) {
        state.gateway.metrics().rejected("too_deep");
        return json_rpc_error(
            StatusCode::BAD_REQUEST,
            -32700,
            format!(
                "request JSON is nested deeper than {} levels",
                state.max_json_depth
            ),
        );
    }
    let mut parts = parts;
    match check_envelope(&bytes) {
        Err(response) => {
            state.gateway.metrics().rejected("malformed");
            return *response;
        }
        Ok(Some(tool)) => {
            parts.extensions.insert(ToolCallRequest { tool });
        }
        Ok(None) => {}
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// A request whose message is a `tools/call` of `tool` (put in its extensions by the body guard,
/// so that authentication is traced as a step of the call).
#[derive(Debug, Clone)]
struct ToolCallRequest {
    tool: String,
}

/// The outer shape of one JSON-RPC message.
#[derive(serde::Deserialize)]
struct Envelope<'a> {
    jsonrpc: Option<serde_json::Value>,
    id: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
    /// Left unparsed (whatever its shape: rmcp judges it).
    #[serde(borrow)]
    params: Option<&'a serde_json::value::RawValue>,
}

/// The part of a `tools/call`'s params the body guard reads.
#[derive(serde::Deserialize)]
struct ToolCallParams {
    name: String,
}

/// Answers malformed JSON-RPC with a JSON-RPC error (parse error, invalid request, no batches)
/// before the MCP service sees it. For a well-formed `tools/call`, the tool's name.
fn check_envelope(bytes: &[u8]) -> Result<Option<String>, Box<Response>> {
    let bad = |code: i64, message: String, id: Option<serde_json::Value>| {
        let body = serde_json::json!({"jsonrpc": "2.0", "id": id.unwrap_or(serde_json::Value::Null),
            "error": {"code": code, "message": message}});
        Box::new(
            (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response(),
        )
    };
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first == Some(&b'[') {
        return Err(bad(
            -32600,
            "Invalid Request: JSON-RPC batches are not supported by MCP".into(),
            None,
        ));
    }
    let envelope: Envelope = match serde_json::from_slice(bytes) {
        Ok(e) => e,
        Err(e) if e.is_data() => {
            return Err(bad(
                -32600,
                "Invalid Request: the body must be one JSON-RPC object".into(),
                None,
            ));
        }
        Err(e) => return Err(bad(-32700, format!("Parse error: {e}"), None)),
    };
    let id = envelope.id.filter(|i| i.is_string() || i.is_number());
    if envelope.jsonrpc.as_ref().and_then(|v| v.as_str()) != Some("2.0") {
        return Err(bad(
            -32600,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"".into(),
            id,
        ));
    }
    if envelope.method.as_ref().is_some_and(|m| !m.is_string()) {
        return Err(bad(
            -32600,
            "Invalid Request: \"method\" must be a string".into(),
            id,
        ));
    }
    if envelope.method.as_ref().and_then(|m| m.as_str()) != Some("tools/call") {
        return Ok(None);
    }
    Ok(envelope
        .params
        .and_then(|p| serde_json::from_str::<ToolCallParams>(p.get()).ok())
        .map(|p| p.name))
}

/// Verifies the bearer token and puts the [`Caller`](crate::auth::Caller) into the request.
/// The `Authorization` header is removed so the token goes no further. A request naming a
/// session goes on through [`session_guard`].
pub async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // A tools/call is traced from here: authentication is its first step.
    let trace = call_trace(&request);
    let (caller, authorization) = match verify_caller(&state, &mut request, trace.as_ref()).await {
        Ok(verified) => verified,
        Err(refusal) => return refusal,
    };
    let presented = request
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(session) = presented else {
        let subject = caller.subject.clone();
        let run = serve_as(caller, trace, request, next);
        return crate::sessions::scope(subject, None, run).await;
    };
    let presented = Presented {
        session,
        caller,
        authorization,
        trace,
    };
    session_guard(&state, presented, request, next).await
}

/// The trace of a `tools/call` (the body guard named its tool), begun with authentication.
fn call_trace(request: &Request) -> Option<CallTrace> {
    request.extensions().get::<ToolCallRequest>().map(|call| {
        CallTrace::begin(
            crate::mcp::new_invocation_id(),
            call.tool.clone(),
            request.headers(),
        )
    })
}

/// The caller of a valid bearer token that some tool is granted to, and the `Authorization`
/// header, taken out of the request; else the 401 or 403 to answer.
async fn verify_caller(
    state: &AppState,
    request: &mut Request,
    trace: Option<&CallTrace>,
) -> Result<(Caller, Option<HeaderValue>), Response> {
    let verify = state
        .verifier
        .verify_header(request.headers().get(header::AUTHORIZATION));
    let result = match trace {
        Some(t) => {
            let span = step_span!(&t.span, "authenticate", t.invocation_id, t.tool);
            verify.instrument(span).await
        }
        None => verify.await,
    };
    let authorization = request.headers_mut().remove(header::AUTHORIZATION);
    let caller = result.map_err(|e| unauthenticated(state, &e, trace))?;
    if !state.gateway.caller_may_use_any(&caller) {
        return Err(no_tool_granted(state, trace));
    }
    Ok((caller, authorization))
}

/// 401 with the challenge that names this resource's metadata.
fn unauthenticated(
    state: &AppState,
    error: &crate::auth::AuthError,
    trace: Option<&CallTrace>,
) -> Response {
    state.gateway.metrics().rejected("unauthenticated");
    if let Some(t) = trace {
        t.finish("unauthenticated", false);
    }
    tracing::info!(reason = %error, "refused token");
    let mut challenge = format!("Bearer resource_metadata=\"{}\"", state.metadata_url());
    if error.token_presented() {
        challenge.push_str(", error=\"invalid_token\", error_description=\"the access token is not valid for this resource\"");
    }
    challenge_response(
        StatusCode::UNAUTHORIZED,
        &challenge,
        "a valid bearer token for this resource is required",
    )
}

/// 403 `insufficient_scope`: the token is valid but grants no tool here.
fn no_tool_granted(state: &AppState, trace: Option<&CallTrace>) -> Response {
    state.gateway.metrics().rejected("insufficient_scope");
    if let Some(t) = trace {
        t.finish("insufficient_scope", false);
    }
    let mut challenge = format!(
        "Bearer error=\"insufficient_scope\", resource_metadata=\"{}\"",
        state.metadata_url()
    );
    let scopes = state.gateway.scopes();
    if !scopes.is_empty() {
        challenge.push_str(&format!(", scope=\"{}\"", scopes.join(" ")));
    }
    challenge_response(
        StatusCode::FORBIDDEN,
        &challenge,
        "the token grants no tool on this server",
    )
}

/// Hands the request on with its caller (and its call's trace) in the extensions and the task.
async fn serve_as(
    caller: Caller,
    trace: Option<CallTrace>,
    mut request: Request,
    next: Next,
) -> Response {
    request.extensions_mut().insert(caller.clone());
    if let Some(t) = trace {
        request.extensions_mut().insert(t);
    }
    crate::auth::serve_as(caller, next.run(request)).await
}

/// An authenticated request that names a session.
struct Presented {
    session: String,
    caller: Caller,
    /// The `Authorization` header, for the copies sent to peers.
    authorization: Option<HeaderValue>,
    trace: Option<CallTrace>,
}

/// The session guard: a session id must have been minted for this caller (by any replica
/// holding the session key); any other is told the session does not exist. Cancellations and
/// deletions go to the peers too ([`act_on_replicas`]).
async fn session_guard(
    state: &AppState,
    presented: Presented,
    request: Request,
    next: Next,
) -> Response {
    let Presented {
        session,
        caller,
        authorization,
        trace,
    } = presented;
    if state.sessions.ids.check(&session, &caller.subject) != SessionCheck::Owned {
        state.gateway.metrics().rejected("session_not_owned");
        if let Some(t) = &trace {
            t.finish("session_not_owned", false);
        }
        return json_rpc_error(StatusCode::NOT_FOUND, -32001, "Session not found".into());
    }
    let subject = caller.subject.clone();
    let protocol = request
        .headers()
        .get("mcp-protocol-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let method = request.method().clone();
    let request = match act_on_replicas(state, &session, &subject, authorization, request).await {
        Ok(request) => request,
        Err(answered) => return answered,
    };
    let run = serve_as(caller, trace, request, next);
    let mut response = crate::sessions::scope(subject, protocol, run).await;
    // The SDKs take 200 or 204 as a session ended (rmcp answers 202).
    if method == axum::http::Method::DELETE && response.status() == StatusCode::ACCEPTED {
        *response.status_mut() = StatusCode::OK;
    }
    response
}

/// A cancellation or a deletion may concern a request running on another replica: the peers get
/// a copy (with the client's token, so that they authenticate it themselves), a deletion ends the
/// session, and when nothing of the session runs here the request is answered at once (`Err`).
/// Any other request goes on unchanged.
async fn act_on_replicas(
    state: &AppState,
    session: &str,
    subject: &str,
    authorization: Option<HeaderValue>,
    request: Request,
) -> Result<Request, Response> {
    let forwarded = request
        .headers()
        .contains_key(crate::sessions::FORWARDED_HEADER);
    let method = request.method().clone();
    let (parts, body) = request.into_parts();
    // Only a POST's body is read here: the body guard has already bounded and buffered it. A
    // DELETE's body means nothing and is dropped; a GET's is passed on as it is.
    let (body, copy) = match method {
        axum::http::Method::POST => {
            let bytes = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let cancels = is_cancellation(&bytes);
            (Body::from(bytes.clone()), cancels.then_some(bytes))
        }
        axum::http::Method::DELETE => (Body::empty(), Some(bytes::Bytes::new())),
        _ => (body, None),
    };
    if let Some(copy) = copy {
        if !forwarded && !state.sessions.peers.is_empty() {
            let mut headers = parts.headers.clone();
            if let Some(token) = authorization {
                headers.insert(header::AUTHORIZATION, token);
            }
            state.sessions.peers.forward(method.clone(), &headers, copy);
        }
        if method == axum::http::Method::DELETE {
            state.sessions.ids.end(session, subject);
        }
        if !state.sessions.holds(session).await {
            // Nothing of it runs here: answered without re-creating the session.
            return Err(if method == axum::http::Method::DELETE {
                StatusCode::OK.into_response()
            } else {
                StatusCode::ACCEPTED.into_response()
            });
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// Whether a JSON-RPC message is `notifications/cancelled`.
fn is_cancellation(body: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Method<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Method<'_>>(body)
        .ok()
        .and_then(|m| m.method)
        .is_some_and(|m| m == "notifications/cancelled")
}

fn challenge_response(status: StatusCode, challenge: &str, message: &str) -> Response {
    let mut response = json_rpc_error(status, -32001, message.to_owned());
    if let Ok(v) = HeaderValue::from_str(challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_splitting() {
        assert_eq!(
            split_authority("127.0.0.1:8080"),
            ("127.0.0.1", Some("8080"))
        );
        assert_eq!(split_authority("[::1]:80"), ("::1", Some("80")));
        assert_eq!(split_authority("example.com"), ("example.com", None));
        assert!(is_loopback_name("localhost"));
        assert!(is_loopback_name("::1"));
        assert!(!is_loopback_name("evil.example"));
    }

    #[test]
    fn the_envelope_names_a_tools_calls_tool_and_leaves_other_params_to_rmcp() {
        let named = |body: &str| check_envelope(body.as_bytes()).map_err(|_| "refused");
        let call = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"a":[1]},"name":"echo"}}"#;
        assert_eq!(named(call), Ok(Some("echo".to_owned())));
        let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"echo"}}"#;
        assert_eq!(named(list), Ok(None));
        // Params of any other shape are not the guard's to refuse.
        for params in ["[1,2]", "\"x\"", "{\"name\":7}", "null", "{}"] {
            let body =
                format!(r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{params}}}"#);
            assert_eq!(named(&body), Ok(None), "{params}");
        }
    }
}
