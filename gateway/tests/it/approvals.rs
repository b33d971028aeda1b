//! A tool that needs a person's approval, over HTTP in process: how each revision's client is
//! asked, the approval page (sign-in, CSRF, who may decide, escaping), and the retried call that
//! runs once, with every refusal its own test. None of the refused calls reaches the backend.

use axum::body::Body;
use http::{Request, StatusCode};
use serde_json::{Value, json};

use super::gateway_http::{Harness, harness, legacy_session_with, post};

const ORIGIN: &str = "http://127.0.0.1:8080";

fn url_capable() -> Value {
    json!({"elicitation": {"url": {}}})
}

fn ran(h: &Harness) -> usize {
    h.backend.seen.lock().expect("lock").len()
}

/// A 2026-07-28 `tools/call` of `apply`.
async fn call(
    h: &Harness,
    token: &str,
    message: &str,
    capabilities: Value,
    state: Option<&str>,
    responses: Option<Value>,
) -> Value {
    let mut params = json!({"name": "apply", "arguments": {"message": message}});
    if let Some(state) = state {
        params["requestState"] = json!(state);
    }
    if let Some(responses) = responses {
        params["inputResponses"] = responses;
    }
    let (status, _, message) = h
        .rpc_with(Some(token), "tools/call", params, capabilities)
        .await;
    assert_eq!(status, StatusCode::OK, "{message}");
    message
}

/// The approval a 2026-07-28 client is asked for: (page URL, request state).
async fn ask(h: &Harness, token: &str, message: &str) -> (String, String) {
    let answer = call(h, token, message, url_capable(), None, None).await;
    let result = &answer["result"];
    assert_eq!(result["resultType"], "input_required", "{answer}");
    let elicit = &result["inputRequests"]["approval"];
    assert_eq!(elicit["method"], "elicitation/create", "{answer}");
    assert_eq!(elicit["params"]["mode"], "url", "{answer}");
    let url = elicit["params"]["url"].as_str().expect("url").to_owned();
    let state = result["requestState"].as_str().expect("state").to_owned();
    (url, state)
}

fn id_of(url: &str) -> String {
    url.rsplit('/').next().expect("id").to_owned()
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                        (b as char).to_string()
                    }
                    b' ' => "+".into(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

fn form(path: &str, cookie: Option<&str>, origin: &str, body: String) -> Request<Body> {
    let mut req = Request::post(path)
        .header("Host", "127.0.0.1:8080")
        .header("Origin", origin)
        .header("Content-Type", "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    req.body(Body::from(body)).expect("request")
}

/// Signs `subject` in to the page; returns the cookie to send back.
async fn sign_in(h: &Harness, subject: &str, groups: &[&str], next: &str) -> String {
    let token = h.token_of(subject, groups);
    let (status, headers, body) = h
        .send(form(
            "/approvals/sign-in",
            None,
            ORIGIN,
            form_encode(&[("token", &token), ("next", next)]),
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{body}");
    assert_eq!(headers["location"], next);
    let set = headers["set-cookie"].to_str().expect("ascii").to_owned();
    assert!(set.contains("HttpOnly"), "{set}");
    assert!(set.contains("SameSite=Strict"), "{set}");
    // Plain http on loopback (--dev): the one case without Secure.
    assert!(!set.contains("Secure"), "{set}");
    assert!(!set.contains(&token), "the cookie does not carry the token");
    set.split(';').next().expect("pair").to_owned()
}

async fn page(
    h: &Harness,
    id: &str,
    cookie: Option<&str>,
) -> (StatusCode, http::HeaderMap, String) {
    let mut req = Request::get(format!("/approvals/{id}")).header("Host", "127.0.0.1:8080");
    if let Some(c) = cookie {
        req = req.header("Cookie", c);
    }
    h.send(req.body(Body::empty()).expect("request")).await
}

fn csrf_of(body: &str) -> String {
    let at = body.find(r#"name="csrf" value=""#).expect("a csrf field") + 19;
    body[at..].split('"').next().expect("value").to_owned()
}

async fn decide(h: &Harness, id: &str, cookie: &str, csrf: &str, decision: &str) -> StatusCode {
    h.send(form(
        &format!("/approvals/{id}"),
        Some(cookie),
        ORIGIN,
        form_encode(&[
            ("csrf", csrf),
            ("decision", decision),
            ("reason", "checked the plan"),
        ]),
    ))
    .await
    .0
}

/// bob (an approver) approves or denies approval `id`.
async fn bob_decides(h: &Harness, id: &str, decision: &str) {
    let cookie = sign_in(h, "bob", &["approvers"], &format!("/approvals/{id}")).await;
    let (status, _, body) = page(h, id, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        decide(h, id, &cookie, &csrf_of(&body), decision).await,
        StatusCode::SEE_OTHER
    );
}

fn tool_error_text(answer: &Value) -> String {
    assert_eq!(answer["result"]["isError"], true, "{answer}");
    answer["result"]["content"][0]["text"]
        .as_str()
        .expect("text")
        .to_owned()
}

#[tokio::test]
async fn a_tool_that_needs_approval_is_listed_as_destructive_and_says_so() {
    let h = harness();
    let token = h.token_of("alice", &["deployers"]);
    let (_, _, list) = h
        .rpc_with(Some(&token), "tools/list", json!({}), json!({}))
        .await;
    let tool = list["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .find(|t| t["name"] == "apply")
        .expect("apply listed")
        .clone();
    assert_eq!(tool["annotations"]["destructiveHint"], true, "{tool}");
    let description = tool["description"].as_str().expect("description");
    assert!(description.contains("approval"), "{description}");
    assert!(description.contains("approvers"), "{description}");
}

#[tokio::test]
async fn approved_in_the_page_the_retried_call_runs_once() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "ship it").await;
    assert_eq!(ran(&h), 0, "nothing runs before the approval");
    assert!(url.starts_with("http://127.0.0.1:8080/approvals/"), "{url}");
    let id = id_of(&url);
    bob_decides(&h, &id, "approve").await;
    let accept = json!({"approval": {"action": "accept"}});
    let answer = call(
        &h,
        &alice,
        "ship it",
        url_capable(),
        Some(&state),
        Some(accept.clone()),
    )
    .await;
    assert_eq!(
        answer["result"]["structuredContent"]["echo"], "ship it",
        "{answer}"
    );
    assert_eq!(ran(&h), 1);
    // The unit's session tags name the approver beside the caller.
    let seen = h.backend.seen.lock().expect("lock")[0].session_tags.clone();
    assert_eq!(
        seen.get("approver").map(String::as_str),
        Some("bob"),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("principal").map(String::as_str),
        Some("alice"),
        "{seen:?}"
    );
    // The call's audit line names the approval and the approver; the approval's own lines say
    // who asked and who decided.
    let records = h.audit.records();
    let line = records
        .iter()
        .find(|r| r["tool"] == "apply" && r["outcome"] == "ok")
        .expect("the call's line");
    assert_eq!(line["approval_id"], id.as_str());
    assert_eq!(line["approver"], "bob");
    assert!(
        line["approved_at"]
            .as_str()
            .is_some_and(|t| t.contains('T'))
    );
    let events: Vec<&str> = records
        .iter()
        .filter(|r| r["approval_id"] == id.as_str())
        .filter_map(|r| r["event"].as_str())
        .collect();
    assert_eq!(events, ["approval_requested", "approval_decided"]);
    // The same state again: already used, and nothing runs.
    let again = call(
        &h,
        &alice,
        "ship it",
        url_capable(),
        Some(&state),
        Some(accept),
    )
    .await;
    assert!(tool_error_text(&again).contains("already used"), "{again}");
    assert_eq!(ran(&h), 1);
}

#[tokio::test]
async fn a_pending_approval_is_asked_for_again_and_does_not_run() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "wait").await;
    let accept = json!({"approval": {"action": "accept"}});
    let answer = call(
        &h,
        &alice,
        "wait",
        url_capable(),
        Some(&state),
        Some(accept),
    )
    .await;
    assert_eq!(answer["result"]["resultType"], "input_required", "{answer}");
    let message = answer["result"]["inputRequests"]["approval"]["params"]["message"]
        .as_str()
        .expect("message");
    assert!(message.contains("still waiting"), "{message}");
    assert!(message.contains(&url), "{message}");
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn a_denied_call_is_refused_with_the_approvers_reason() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "risky").await;
    bob_decides(&h, &id_of(&url), "deny").await;
    let answer = call(&h, &alice, "risky", url_capable(), Some(&state), None).await;
    let text = tool_error_text(&answer);
    assert!(text.contains("denied by bob: checked the plan"), "{text}");
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn a_tampered_request_state_is_refused() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "x").await;
    bob_decides(&h, &id_of(&url), "approve").await;
    let mut tampered: Vec<char> = state.chars().collect();
    tampered[20] = if tampered[20] == 'Q' { 'R' } else { 'Q' };
    let tampered: String = tampered.into_iter().collect();
    let answer = call(&h, &alice, "x", url_capable(), Some(&tampered), None).await;
    assert!(tool_error_text(&answer).contains("altered"), "{answer}");
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn changed_arguments_are_refused() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "reviewed").await;
    bob_decides(&h, &id_of(&url), "approve").await;
    let answer = call(
        &h,
        &alice,
        "not reviewed",
        url_capable(),
        Some(&state),
        None,
    )
    .await;
    assert!(
        tool_error_text(&answer).contains("bound to another call"),
        "{answer}"
    );
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn another_callers_token_is_refused() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, state) = ask(&h, &alice, "mine").await;
    bob_decides(&h, &id_of(&url), "approve").await;
    let mallory = h.token_of("mallory", &["deployers"]);
    let answer = call(&h, &mallory, "mine", url_capable(), Some(&state), None).await;
    assert!(
        tool_error_text(&answer).contains("bound to another call"),
        "{answer}"
    );
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn a_declined_elicitation_is_refused() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (_, state) = ask(&h, &alice, "no").await;
    let decline = json!({"approval": {"action": "decline"}});
    let answer = call(&h, &alice, "no", url_capable(), Some(&state), Some(decline)).await;
    assert!(tool_error_text(&answer).contains("declined"), "{answer}");
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn a_client_without_url_elicitation_is_told_where_to_approve_then_its_retry_runs() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let answer = call(&h, &alice, "plain", json!({}), None, None).await;
    let text = tool_error_text(&answer);
    assert!(text.contains("http://127.0.0.1:8080/approvals/"), "{text}");
    assert!(text.contains("retried"), "{text}");
    assert_eq!(ran(&h), 0);
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://127.0.0.1:8080/approvals/"))
        .expect("the page's URL")
        .trim_end_matches([',', '.']);
    bob_decides(&h, &id_of(url), "approve").await;
    let answer = call(&h, &alice, "plain", json!({}), None, None).await;
    assert_eq!(
        answer["result"]["structuredContent"]["echo"], "plain",
        "{answer}"
    );
    assert_eq!(ran(&h), 1);
}

#[tokio::test]
async fn a_2025_11_25_client_gets_the_url_elicitation_error_then_its_retry_runs() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let session = legacy_session_with(&h, &alice, url_capable()).await;
    let send = |id: u64| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "apply", "arguments": {"message": "legacy"}}});
        post()
            .header("Authorization", format!("Bearer {alice}"))
            .header("Mcp-Session-Id", &session)
            .header("MCP-Protocol-Version", "2025-11-25")
            .body(Body::from(body.to_string()))
            .expect("req")
    };
    let (_, _, text) = h.send(send(2)).await;
    let answer = crate::support::mcp::last_message(&text);
    assert_eq!(answer["error"]["code"], -32042, "{answer}");
    let elicitation = &answer["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{answer}");
    let id = elicitation["elicitationId"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        elicitation["url"],
        format!("http://127.0.0.1:8080/approvals/{id}").as_str()
    );
    assert_eq!(ran(&h), 0);
    bob_decides(&h, &id, "approve").await;
    let (_, _, text) = h.send(send(3)).await;
    let answer = crate::support::mcp::last_message(&text);
    assert_eq!(
        answer["result"]["structuredContent"]["echo"], "legacy",
        "{answer}"
    );
    assert_eq!(ran(&h), 1);
}

#[tokio::test]
async fn the_page_asks_for_sign_in_first() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, _) = ask(&h, &alice, "x").await;
    let id = id_of(&url);
    let (status, headers, _) = page(&h, &id, None).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(
        headers["location"],
        format!("/approvals/sign-in?next=/approvals/{id}").as_str()
    );
    // A forged cookie is no sign-in.
    let (status, _, _) = page(&h, &id, Some("switchboard_approver=forged")).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_refused_token_does_not_sign_in() {
    let h = harness();
    let (status, headers, body) = h
        .send(form(
            "/approvals/sign-in",
            None,
            ORIGIN,
            form_encode(&[("token", "not-a-jwt"), ("next", "/approvals/x")]),
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(headers.get("set-cookie").is_none());
}

#[tokio::test]
async fn the_caller_cannot_approve_its_own_call() {
    let h = harness();
    // alice is in both groups, and still may not approve her own call.
    let alice = h.token_of("alice", &["deployers", "approvers"]);
    let (url, _) = ask(&h, &alice, "self").await;
    let id = id_of(&url);
    let cookie = sign_in(
        &h,
        "alice",
        &["deployers", "approvers"],
        &format!("/approvals/{id}"),
    )
    .await;
    let (status, _, body) = page(&h, &id, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("another person must approve"), "{body}");
    assert!(!body.contains(r#"id="approve""#), "{body}");
    // Posting a decision anyway, with her session's own CSRF token: refused, nothing changes.
    assert_eq!(
        decide(&h, &id, &cookie, &csrf_of(&body), "approve").await,
        StatusCode::FORBIDDEN
    );
    let (_, _, after) = page(&h, &id, Some(&cookie)).await;
    assert!(after.contains("Waiting for a decision"), "{after}");
}

#[tokio::test]
async fn someone_outside_the_approver_groups_cannot_see_or_decide() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, _) = ask(&h, &alice, "secret arguments").await;
    let id = id_of(&url);
    let cookie = sign_in(&h, "eve", &["deployers"], &format!("/approvals/{id}")).await;
    let (status, _, body) = page(&h, &id, Some(&cookie)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains("secret arguments"));
    assert_eq!(
        decide(&h, &id, &cookie, "x", "approve").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(ran(&h), 0);
}

#[tokio::test]
async fn a_decision_without_the_pages_csrf_token_or_from_another_origin_is_refused() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, _) = ask(&h, &alice, "x").await;
    let id = id_of(&url);
    let cookie = sign_in(&h, "bob", &["approvers"], &format!("/approvals/{id}")).await;
    let (_, _, body) = page(&h, &id, Some(&cookie)).await;
    let csrf = csrf_of(&body);
    assert_eq!(
        decide(&h, &id, &cookie, "wrong", "approve").await,
        StatusCode::FORBIDDEN
    );
    // The right token from another site's page: the Host and Origin guard refuses it first.
    let (status, _, _) = h
        .send(form(
            &format!("/approvals/{id}"),
            Some(&cookie),
            "https://evil.example",
            form_encode(&[("csrf", &csrf), ("decision", "approve")]),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // An origin the MCP endpoint allows (a browser client's) is still not the page's own.
    let (status, _, _) = h
        .send(form(
            &format!("/approvals/{id}"),
            Some(&cookie),
            "https://app.example.com",
            form_encode(&[("csrf", &csrf), ("decision", "approve")]),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, _, after) = page(&h, &id, Some(&cookie)).await;
    assert!(after.contains("Waiting for a decision"), "{after}");
}

#[tokio::test]
async fn a_decision_is_made_once() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, _) = ask(&h, &alice, "x").await;
    let id = id_of(&url);
    let cookie = sign_in(&h, "bob", &["approvers"], &format!("/approvals/{id}")).await;
    let (_, _, body) = page(&h, &id, Some(&cookie)).await;
    let csrf = csrf_of(&body);
    assert_eq!(
        decide(&h, &id, &cookie, &csrf, "deny").await,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        decide(&h, &id, &cookie, &csrf, "approve").await,
        StatusCode::CONFLICT
    );
    let (_, _, after) = page(&h, &id, Some(&cookie)).await;
    assert!(after.contains("Denied by bob"), "{after}");
}

#[tokio::test]
async fn the_page_escapes_what_the_caller_wrote_and_allows_no_script() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let planted = r#"<script>alert(1)</script><img src=x onerror=alert(2)>"#;
    let (url, _) = ask(&h, &alice, planted).await;
    let id = id_of(&url);
    let cookie = sign_in(&h, "bob", &["approvers"], &format!("/approvals/{id}")).await;
    let (status, headers, body) = page(&h, &id, Some(&cookie)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script"), "{body}");
    assert!(!body.contains("<img"), "{body}");
    assert!(
        body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{body}"
    );
    let csp = headers["content-security-policy"].to_str().expect("ascii");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src"),
        "no script source at all: {csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["cache-control"], "no-store");
}

#[tokio::test]
async fn sign_in_sends_the_browser_on_to_an_approval_page_only() {
    let h = harness();
    let token = h.token_of("bob", &["approvers"]);
    let (status, headers, _) = h
        .send(form(
            "/approvals/sign-in",
            None,
            ORIGIN,
            form_encode(&[("token", &token), ("next", "https://evil.example/")]),
        ))
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(headers["location"], "/approvals/sign-in");
}

#[tokio::test]
async fn sign_out_needs_the_sessions_csrf_token_and_clears_the_cookie() {
    let h = harness();
    let alice = h.token_of("alice", &["deployers"]);
    let (url, _) = ask(&h, &alice, "x").await;
    let id = id_of(&url);
    let cookie = sign_in(&h, "bob", &["approvers"], &format!("/approvals/{id}")).await;
    let (_, _, body) = page(&h, &id, Some(&cookie)).await;
    let csrf = csrf_of(&body);
    let (status, headers, _) = h
        .send(form(
            "/approvals/sign-out",
            Some(&cookie),
            ORIGIN,
            form_encode(&[("csrf", "wrong")]),
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(headers.get("set-cookie").is_none());
    let (status, headers, _) = h
        .send(form(
            "/approvals/sign-out",
            Some(&cookie),
            ORIGIN,
            form_encode(&[("csrf", &csrf)]),
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let set = headers["set-cookie"].to_str().expect("ascii");
    assert!(
        set.starts_with("switchboard_approver=;") && set.contains("Max-Age=0"),
        "{set}"
    );
}
