//! The approval page, under `<origin>/approvals/`: a person signs in, reads the call, and
//! approves or denies it.
//!
//! Everything the page shows of a call (tool, arguments, caller, tenant) is the caller's text, so
//! it is written through maud, which escapes it, and served with a Content-Security-Policy that
//! allows no script at all. The approver's session is a sealed, `HttpOnly`, `SameSite=Strict`
//! cookie (`Secure` except on a plain-http loopback `--dev` gateway) holding a random token that
//! every form carries back (CSRF); a form posted from another origin is refused. Only a member of
//! the tool's approver groups who is not the caller decides, and a decision is made once
//! ([`Store::decide`](super::Store::decide) is conditional).
//!
//! Sign-in: with `--dev`, a form takes a token the gateway verifies as it verifies callers
//! (`switchboard dev-token`); otherwise through the authorization server
//! ([`super::sign_in`]): `/approvals/sign-in` sends the browser there, `/approvals/callback`
//! takes it back. The sign-in's state travels in a cookie of its own, `SameSite=Lax` (it must
//! come back with the authorization server's redirect); the session cookie stays `Strict`, so
//! the callback answers a page that moves on by itself (a redirect chain that passed through
//! another site would not carry it).

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use maud::{DOCTYPE, Markup, html};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::sign_in::{Callback, OidcSignIn, Pending};
use super::{
    Approval, Approvals, AuditEvent, Decision, PageSignIn, Purpose, StoreError, now_unix, rfc3339,
};
use crate::auth::Verifier;

/// What the page's routes share.
#[derive(Debug, Clone)]
pub struct PageState {
    pub approvals: Approvals,
    /// Verifies the token of the `--dev` sign-in.
    pub verifier: Verifier,
    /// `scheme://authority` of the gateway: the one origin a form may be posted from.
    pub origin: String,
}

/// The longest reason an approver may give, in characters.
const MAX_REASON_CHARS: usize = 1000;
/// How long a sign-in lasts at most.
const SESSION_SECONDS: u64 = 1800;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}\
h1{font-size:1.4rem}dl{display:grid;grid-template-columns:max-content 1fr;gap:.3rem 1rem}dt{font-weight:600}\
pre{background:#f4f4f4;padding:.8rem;overflow:auto;white-space:pre-wrap;word-break:break-all}\
.status{padding:.5rem .8rem;border-radius:.3rem;background:#eef}.denied{background:#fdd}.approved{background:#dfd}\
textarea{width:100%}button{font-size:1rem;margin:.5rem .5rem 0 0;padding:.4rem 1rem}";

/// The approver's sign-in, sealed in the cookie.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PageSession {
    sub: String,
    groups: Vec<String>,
    exp: u64,
    /// Carried back by every form.
    csrf: String,
}

/// The page's routes, to be nested at `/approvals`.
pub fn router(state: PageState) -> Router {
    Router::new()
        .route("/style.css", get(style))
        .route("/sign-in", get(sign_in_form).post(sign_in))
        .route("/sign-out", axum::routing::post(sign_out))
        .route("/callback", get(callback))
        .route("/{id}", get(show).post(decide))
        .with_state(state)
}

/// The page's two cookies.
#[derive(Debug, Clone, Copy)]
enum Jar {
    /// The signed-in approver ([`PageSession`]), `SameSite=Strict`.
    Session,
    /// A sign-in under way through the authorization server ([`Pending`]), `SameSite=Lax`.
    SignIn,
}

impl Jar {
    fn name(self, approvals: &Approvals) -> &'static str {
        match (self, approvals.secure_cookie()) {
            (Self::Session, true) => "__Host-switchboard_approver",
            (Self::Session, false) => "switchboard_approver",
            (Self::SignIn, true) => "__Host-switchboard_sign_in",
            (Self::SignIn, false) => "switchboard_sign_in",
        }
    }

    fn same_site(self) -> cookie::SameSite {
        match self {
            Self::Session => cookie::SameSite::Strict,
            Self::SignIn => cookie::SameSite::Lax,
        }
    }

    fn purpose(self) -> Purpose {
        match self {
            Self::Session => Purpose::PageSession,
            Self::SignIn => Purpose::SignIn,
        }
    }

    /// What the request's cookie of this jar holds, opened, if it is there and intact.
    fn read<T: serde::de::DeserializeOwned>(
        self,
        state: &PageState,
        headers: &HeaderMap,
    ) -> Option<T> {
        let name = self.name(&state.approvals);
        let value = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(cookie::Cookie::split_parse)
            .filter_map(Result::ok)
            .find(|c| c.name() == name)?
            .value()
            .to_owned();
        state.approvals.sealer().open(self.purpose(), &value).ok()
    }
}

/// A page with the headers every answer of the approval page carries.
fn page(status: StatusCode, title: &str, body: Markup) -> Response {
    let doc = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Switchboard" }
                link rel="stylesheet" href="/approvals/style.css";
            }
            body { (body) }
        }
    };
    let mut response = (status, doc.into_string()).into_response();
    secure_headers(response.headers_mut(), "text/html; charset=utf-8");
    response
}

fn secure_headers(headers: &mut HeaderMap, content_type: &'static str) {
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

fn message(status: StatusCode, title: &str, text: &str) -> Response {
    page(status, title, html! { h1 { (title) } p { (text) } })
}

async fn style() -> Response {
    let mut response = STYLE.into_response();
    secure_headers(response.headers_mut(), "text/css; charset=utf-8");
    response
}

/// The signed-in approver, if the cookie holds a live session.
fn session(state: &PageState, headers: &HeaderMap) -> Option<PageSession> {
    let session: PageSession = Jar::Session.read(state, headers)?;
    (session.exp > now_unix()).then_some(session)
}

/// A form may come from the gateway's own origin only (a browser always says which).
fn same_origin(state: &PageState, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) => origin.eq_ignore_ascii_case(&state.origin),
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_none_or(|site| site == "same-origin" || site == "none"),
    }
}

fn same_secret(a: &str, b: &str) -> bool {
    // Compared as digests, so the time taken says nothing about the expected value.
    Sha256::digest(a.as_bytes()) == Sha256::digest(b.as_bytes())
}

/// `/approvals/<id>` and nothing else: where a sign-in may send the browser on.
fn safe_next(next: Option<&str>) -> Option<String> {
    let id = next?.strip_prefix("/approvals/")?;
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    ok.then(|| format!("/approvals/{id}"))
}

/// A gateway whose page has no sign-in (`serve` refuses to start so; see `crate::preflight`).
fn sign_in_unavailable() -> Response {
    message(
        StatusCode::NOT_IMPLEMENTED,
        "Sign-in not available",
        "This gateway has no sign-in for its approval page (gateway.auth.approval_sign_in).",
    )
}

#[derive(Debug, Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn sign_in_form(State(state): State<PageState>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref()).unwrap_or_default();
    match state.approvals.sign_in() {
        PageSignIn::Dev => dev_sign_in_form(&next),
        PageSignIn::Oidc(oidc) => start_sign_in(&state, oidc, next).await,
        PageSignIn::Unavailable => sign_in_unavailable(),
    }
}

fn dev_sign_in_form(next: &str) -> Response {
    page(
        StatusCode::OK,
        "Sign in to approve",
        html! {
            h1 { "Sign in to approve" }
            p { "Development sign-in: paste a token for yourself, made with "
                code { "switchboard dev-token --sub <you> --groups <your groups>" } "." }
            form method="post" action="/approvals/sign-in" {
                input type="hidden" name="next" value=(next);
                label for="token" { "Token" }
                textarea id="token" name="token" rows="5" required {}
                button id="sign-in" type="submit" { "Sign in" }
            }
        },
    )
}

/// Sends the browser to the authorization server, keeping the sign-in's state in its cookie.
async fn start_sign_in(state: &PageState, oidc: &OidcSignIn, next: String) -> Response {
    match oidc.start(next, now_unix()).await {
        Ok((url, pending)) => {
            let sealed = state.approvals.sealer().seal(Purpose::SignIn, &pending);
            let mut response = Redirect::to(&url).into_response();
            secure_headers(response.headers_mut(), "text/plain; charset=utf-8");
            with_cookie(
                state,
                response,
                Jar::SignIn,
                &sealed,
                super::sign_in::PENDING_SECONDS,
            )
        }
        Err(e) => {
            tracing::warn!(error = %e, "approval page sign-in could not start");
            message(
                StatusCode::BAD_GATEWAY,
                "Sign-in unavailable",
                &e.to_string(),
            )
        }
    }
}

/// `/approvals/callback`: the authorization server sends the browser back here.
async fn callback(
    State(state): State<PageState>,
    headers: HeaderMap,
    Query(answer): Query<Callback>,
) -> Response {
    let PageSignIn::Oidc(oidc) = state.approvals.sign_in() else {
        return sign_in_unavailable();
    };
    let pending: Option<Pending> = Jar::SignIn
        .read(&state, &headers)
        .filter(|p: &Pending| p.exp > now_unix());
    let outcome = match &pending {
        Some(pending) => oidc.finish(pending, &answer, &state.verifier).await,
        None => Err(super::sign_in::SignInError::NoPending),
    };
    let response = match outcome {
        Ok(caller) => {
            let next = pending.and_then(|p| safe_next(Some(&p.next)));
            let moving_on = html! {
                @if let Some(next) = &next {
                    meta http-equiv="refresh" content={ "0;url=" (next) };
                    h1 { "Signed in" }
                    p { "Signed in as " (caller.subject) ". " a id="continue" href=(next) { "Continue to the approval" } }
                } @else {
                    h1 { "Signed in" }
                    p { "Signed in as " (caller.subject) ". Open the approval's link again." }
                }
            };
            let response = page(StatusCode::OK, "Signed in", moving_on);
            start_session(&state, response, &caller)
        }
        Err(e) => {
            tracing::warn!(error = %e, "approval page sign-in refused");
            message(StatusCode::UNAUTHORIZED, "Sign-in refused", &e.to_string())
        }
    };
    // A sign-in's state serves one callback.
    with_cookie(&state, response, Jar::SignIn, "", 0)
}

/// `response` with a new session for `caller` (its cookie set).
fn start_session(state: &PageState, response: Response, caller: &crate::auth::Caller) -> Response {
    let csrf: [u8; 32] = rand::random();
    let session = PageSession {
        sub: caller.subject.clone(),
        groups: caller.groups.clone(),
        exp: now_unix() + SESSION_SECONDS,
        csrf: hex::encode(csrf),
    };
    tracing::info!(approver = %caller.subject, "approval page sign-in");
    let sealed = state
        .approvals
        .sealer()
        .seal(Purpose::PageSession, &session);
    with_cookie(state, response, Jar::Session, &sealed, SESSION_SECONDS)
}

#[derive(Debug, Deserialize)]
struct SignIn {
    token: String,
    #[serde(default)]
    next: String,
}

/// The `--dev` sign-in form's post.
async fn sign_in(
    State(state): State<PageState>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    if !matches!(state.approvals.sign_in(), PageSignIn::Dev) {
        return message(
            StatusCode::METHOD_NOT_ALLOWED,
            "Sign in through the authorization server",
            "This gateway signs approvers in through its authorization server, not with a token.",
        );
    }
    if !same_origin(&state, &headers) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        );
    }
    let caller = match state.verifier.verify(form.token.trim()).await {
        Ok(caller) => caller,
        Err(e) => {
            tracing::warn!(error = %e, "approval page sign-in refused");
            return message(
                StatusCode::UNAUTHORIZED,
                "Sign-in refused",
                &format!("The token was refused: {e}."),
            );
        }
    };
    let to = safe_next(Some(&form.next)).unwrap_or_else(|| "/approvals/sign-in".into());
    start_session(&state, Redirect::to(&to).into_response(), &caller)
}

/// `response` setting cookie `jar` to `value` for `seconds` (0: removing it).
fn with_cookie(
    state: &PageState,
    mut response: Response,
    jar: Jar,
    value: &str,
    seconds: u64,
) -> Response {
    let secure = state.approvals.secure_cookie();
    let cookie = cookie::Cookie::build((jar.name(&state.approvals), value))
        .path(if secure { "/" } else { "/approvals" })
        .http_only(true)
        .secure(secure)
        .same_site(jar.same_site())
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(seconds).unwrap_or(0),
        ))
        .build();
    if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
        response.headers_mut().append(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
struct SignOut {
    csrf: String,
}

async fn sign_out(
    State(state): State<PageState>,
    headers: HeaderMap,
    Form(form): Form<SignOut>,
) -> Response {
    let signed_in = session(&state, &headers);
    if !same_origin(&state, &headers)
        || !signed_in.is_some_and(|who| same_secret(&form.csrf, &who.csrf))
    {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was sent from another site.",
        );
    }
    with_cookie(
        &state,
        message(StatusCode::OK, "Signed out", "You are signed out."),
        Jar::Session,
        "",
        0,
    )
}

/// Whether the signed-in person may decide approval `a`; why not, when not.
fn may_decide(a: &Approval, who: &PageSession) -> Result<(), &'static str> {
    if !a.groups.iter().any(|g| who.groups.contains(g)) {
        return Err("You are not in a group that may approve this tool's calls.");
    }
    if who.sub == a.caller && !a.approver_may_be_caller {
        return Err("You made this call: another person must approve it.");
    }
    Ok(())
}

/// Whether the signed-in person may see approval `a`: its caller, or one who may decide.
fn may_see(a: &Approval, who: &PageSession) -> bool {
    who.sub == a.caller || a.groups.iter().any(|g| who.groups.contains(g))
}

fn sign_in_redirect(id: &str) -> Response {
    let next = safe_next(Some(&format!("/approvals/{id}"))).unwrap_or_default();
    let mut response = Redirect::to(&format!("/approvals/sign-in?next={next}")).into_response();
    secure_headers(response.headers_mut(), "text/plain; charset=utf-8");
    response
}

async fn load(state: &PageState, id: &str) -> Result<Approval, Response> {
    match state.approvals.store().get(id).await {
        Ok(Some(a)) => Ok(a),
        Ok(None) => Err(message(
            StatusCode::NOT_FOUND,
            "No such approval",
            "This approval does not exist, or no longer.",
        )),
        Err(e) => Err(message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Approvals unavailable",
            &e.to_string(),
        )),
    }
}

async fn show(
    State(state): State<PageState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(who) = session(&state, &headers) else {
        return sign_in_redirect(&id);
    };
    let approval = match load(&state, &id).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    if !may_see(&approval, &who) {
        return message(
            StatusCode::FORBIDDEN,
            "Not yours to see",
            "Only the caller and the tool's approvers may see this approval.",
        );
    }
    page(
        StatusCode::OK,
        "Approve a tool call",
        render(&approval, &who),
    )
}

fn render(a: &Approval, who: &PageSession) -> Markup {
    let now = now_unix();
    let arguments =
        serde_json::to_string_pretty(&a.arguments).unwrap_or_else(|_| a.arguments.to_string());
    let (status_class, status) = match (&a.decision, a.settled_unix) {
        (Some(d), _) if !d.approved => (
            "status denied",
            format!("Denied by {} at {}", d.by, rfc3339(d.at_unix)),
        ),
        (Some(d), Some(_)) => (
            "status approved",
            format!(
                "Approved by {} at {}; the call has run",
                d.by,
                rfc3339(d.at_unix)
            ),
        ),
        (Some(d), None) => (
            "status approved",
            format!("Approved by {} at {}", d.by, rfc3339(d.at_unix)),
        ),
        (None, _) if now >= a.expires_unix => ("status", "Expired without a decision".to_owned()),
        (None, _) => ("status", "Waiting for a decision".to_owned()),
    };
    let decidable = a.decision.is_none() && now < a.expires_unix;
    html! {
        h1 { "Approve a call of " code id="tool" { (a.tool) } }
        p id="status" class=(status_class) { (status) }
        dl {
            dt { "Tool" } dd { code { (a.tool) } }
            dt { "Caller" } dd id="caller" { (a.caller) }
            dt { "Tenant" } dd id="tenant" { (a.tenant.as_deref().unwrap_or("none")) }
            dt { "Requested" } dd { (rfc3339(a.created_unix)) }
            dt { "Valid until" } dd id="expires" { (rfc3339(a.expires_unix)) }
            dt { "Deadline" } dd id="deadline" { "at most " (a.timeout_seconds) " s once it runs" }
            dt { "Arguments SHA-256" } dd { code { (a.arguments_sha256) } }
            @if let Some(d) = &a.decision {
                @if let Some(reason) = &d.reason {
                    dt { "Reason" } dd id="reason" { (reason) }
                }
            }
        }
        h2 { "Arguments" }
        pre id="arguments" { (arguments) }
        @if decidable {
            @match may_decide(a, who) {
                Ok(()) => {
                    form method="post" action={ "/approvals/" (a.id) } {
                        input type="hidden" name="csrf" value=(who.csrf);
                        label for="reason-input" { "Reason (optional)" }
                        textarea id="reason-input" name="reason" rows="3" maxlength="1000" {}
                        button id="approve" type="submit" name="decision" value="approve" { "Approve" }
                        button id="deny" type="submit" name="decision" value="deny" { "Deny" }
                    }
                }
                Err(why) => { p id="cannot-decide" { (why) } }
            }
        }
        form method="post" action="/approvals/sign-out" {
            input type="hidden" name="csrf" value=(who.csrf);
            p { "Signed in as " (who.sub) ". " button id="sign-out" type="submit" { "Sign out" } }
        }
    }
}

#[derive(Debug, Deserialize)]
struct DecisionForm {
    csrf: String,
    decision: String,
    #[serde(default)]
    reason: String,
}

async fn decide(
    State(state): State<PageState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<DecisionForm>,
) -> Response {
    let Some(who) = session(&state, &headers) else {
        return sign_in_redirect(&id);
    };
    if !same_origin(&state, &headers) || !same_secret(&form.csrf, &who.csrf) {
        return message(
            StatusCode::FORBIDDEN,
            "Refused",
            "This form was not sent from this page.",
        );
    }
    let approved = match form.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => {
            return message(StatusCode::BAD_REQUEST, "Bad request", "Approve or deny.");
        }
    };
    let reason = form.reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return message(
            StatusCode::BAD_REQUEST,
            "Bad request",
            "The reason is longer than 1000 characters.",
        );
    }
    let approval = match load(&state, &id).await {
        Ok(a) => a,
        Err(response) => return response,
    };
    if let Err(why) = may_decide(&approval, &who) {
        return message(StatusCode::FORBIDDEN, "Not yours to decide", why);
    }
    let decision = Decision {
        approved,
        by: who.sub.clone(),
        at_unix: now_unix(),
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
    };
    match state
        .approvals
        .store()
        .decide(&id, decision.clone(), decision.at_unix)
        .await
    {
        Ok(decided) => {
            state
                .approvals
                .audit()
                .event(&AuditEvent::decided(&decided, &decision), &decided.id);
            tracing::info!(approval_id = %decided.id, approver = %decision.by, approved, "approval decided");
            let mut response = Redirect::to(&format!("/approvals/{id}")).into_response();
            secure_headers(response.headers_mut(), "text/plain; charset=utf-8");
            response
        }
        Err(StoreError::Conflict) => message(
            StatusCode::CONFLICT,
            "Nothing changed",
            "This approval was already decided, or it has expired.",
        ),
        Err(e) => message(
            StatusCode::SERVICE_UNAVAILABLE,
            "Approvals unavailable",
            &e.to_string(),
        ),
    }
}
