//! The broker against a fake STS: what it asks, what it retries, and when it stops.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use serde_json::json;

use super::*;

const INVOCATION: &str = "01937a4e-9c1b-7cc2-a3d4-5e6f708192a3";
const ROLE: &str = "arn:aws:iam::000000000000:role/switchboard-tool-tenant-files";
const SECRET: &str = "wJalrXUtnFEMI-very-secret";
const TOKEN: &str = "FwoGZXIvYXdzE-session-token";

/// What the fake answers to one attempt.
#[derive(Debug, Clone)]
enum Answer {
    Ok,
    Fail(StsFailure),
    /// Never answers.
    Hang,
}

/// Answers from a script; the last answer repeats once the script runs out.
#[derive(Debug)]
struct FakeSts {
    script: Mutex<VecDeque<Answer>>,
    asked: Mutex<Vec<AssumeRoleRequest>>,
}

impl FakeSts {
    fn new(script: impl IntoIterator<Item = Answer>) -> Arc<Self> {
        Arc::new(Self {
            script: Mutex::new(script.into_iter().collect()),
            asked: Mutex::new(Vec::new()),
        })
    }

    fn asked(&self) -> Vec<AssumeRoleRequest> {
        self.asked.lock().expect("not poisoned").clone()
    }
}

#[async_trait]
impl Sts for FakeSts {
    async fn assume_role(&self, request: &AssumeRoleRequest) -> Result<AssumedRole, StsFailure> {
        self.asked
            .lock()
            .expect("not poisoned")
            .push(request.clone());
        let answer = {
            let mut script = self.script.lock().expect("not poisoned");
            if script.len() > 1 {
                script.pop_front()
            } else {
                script.front().cloned()
            }
        };
        match answer.unwrap_or(Answer::Ok) {
            Answer::Ok => Ok(AssumedRole {
                credentials: AwsCredentials {
                    access_key_id: "ASIAFAKE".into(),
                    secret_access_key: SECRET.into(),
                    session_token: TOKEN.into(),
                    expiration: "2026-12-01T10:15:00Z".into(),
                },
                assumed_role_arn: format!(
                    "arn:aws:sts::000000000000:assumed-role/switchboard-tool-tenant-files/{}",
                    request.role_session_name
                ),
            }),
            Answer::Fail(failure) => Err(failure),
            Answer::Hang => std::future::pending().await,
        }
    }
}

fn throttled(code: Option<&str>, status: u16) -> Answer {
    Answer::Fail(StsFailure::Service {
        code: code.map(Into::into),
        message: Some("Rate exceeded".into()),
        status,
    })
}

fn tool() -> Tool {
    serde_json::from_value(json!({
        "name": "tenant-files",
        "description": "d",
        "input_schema": {"type": "object"},
        "backend": "lambda",
        "allow": {"groups": ["dev"]},
        "permissions": [{"sid": "Read", "actions": ["s3:GetObject"],
                         "resources": ["arn:aws:s3:::b/${aws:PrincipalTag/tenant}/*"]}],
    }))
    .expect("a valid tool")
}

fn caller(tenant: Option<&str>) -> Caller {
    Caller {
        subject: "alice@example.com".into(),
        tenant: tenant.map(Into::into),
        groups: vec!["dev".into()],
        scopes: vec![],
    }
}

const ALL_TAGS: [SessionTag; 4] = [
    SessionTag::Tool,
    SessionTag::Tenant,
    SessionTag::Principal,
    SessionTag::Invocation,
];

async fn mint_with(
    sts: &Arc<FakeSts>,
    tenant: Option<&str>,
    deadline: &Deadline,
) -> Result<Minted, CredentialError> {
    let broker = Broker::with_sts(sts.clone());
    let tool = tool();
    let caller = caller(tenant);
    broker
        .mint(MintRequest {
            tool: &tool,
            role_arn: ROLE,
            session_tags: &ALL_TAGS,
            invocation_id: INVOCATION,
            caller: &caller,
            deadline,
            approver: None,
        })
        .await
}

#[tokio::test]
async fn mint_asks_sts_for_exactly_the_call_s_session() {
    let sts = FakeSts::new([Answer::Ok]);
    let deadline = Deadline::after(Duration::from_secs(30));
    let minted = mint_with(&sts, Some("acme"), &deadline)
        .await
        .expect("minted");
    let asked = sts.asked();
    assert_eq!(asked.len(), 1);
    let r = &asked[0];
    assert_eq!(r.role_arn, ROLE);
    assert_eq!(r.role_session_name, INVOCATION);
    assert_eq!(r.source_identity, source_identity("alice@example.com"));
    assert_eq!(r.duration_seconds, 900);
    assert_eq!(
        r.policy,
        session_policy(&tool(), &deadline).expect("policy")
    );
    let expected: BTreeMap<String, String> = [
        ("invocation", INVOCATION),
        ("principal", "alice@example.com"),
        ("tenant", "acme"),
        ("tool", "tenant-files"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(r.tags, expected);
    assert_eq!(minted.session_tags, expected);
    assert!(minted.assumed_role_arn.ends_with(&format!("/{INVOCATION}")));
    assert_eq!(minted.credentials.secret_access_key.expose_secret(), SECRET);
}

#[tokio::test]
async fn refused_requests_never_reach_sts() {
    let sts = FakeSts::new([Answer::Ok]);
    let deadline = Deadline::after(Duration::from_secs(30));
    for (tenant, code) in [
        (Some("acme/x"), "bad_tenant"),
        (Some("ACME"), "bad_tenant"),
        (None, "missing_tenant"),
    ] {
        let e = mint_with(&sts, tenant, &deadline)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), code, "{tenant:?}");
    }
    assert!(sts.asked().is_empty());
}

#[tokio::test(start_paused = true)]
async fn throttling_is_retried_until_sts_answers() {
    for failure in [
        throttled(Some("Throttling"), 400),
        throttled(Some("ThrottlingException"), 400),
        throttled(Some("RequestLimitExceeded"), 400),
        throttled(None, 429),
        throttled(Some("ServiceUnavailable"), 503),
    ] {
        let sts = FakeSts::new([failure.clone(), failure.clone(), failure, Answer::Ok]);
        let deadline = Deadline::after(Duration::from_secs(30));
        mint_with(&sts, Some("acme"), &deadline)
            .await
            .expect("minted at last");
        assert_eq!(sts.asked().len(), 4);
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_stops_at_the_attempt_limit() {
    let sts = FakeSts::new([throttled(Some("Throttling"), 400)]);
    let deadline = Deadline::after(Duration::from_secs(600));
    let e = mint_with(&sts, Some("acme"), &deadline)
        .await
        .expect_err("throttled");
    assert_eq!(e.code(), "throttled");
    assert_eq!(sts.asked().len(), Backoff::default().max_attempts as usize);
    assert!(e.to_string().contains("tenant-files"), "{e}");
}

#[tokio::test(start_paused = true)]
async fn never_sleeps_past_the_deadline() {
    let sts = FakeSts::new([throttled(Some("Throttling"), 400)]);
    let broker = Broker::with_sts(sts.clone()).with_backoff(Backoff {
        base: Duration::from_secs(1),
        cap: Duration::from_secs(60),
        max_attempts: 1000,
    });
    let deadline = Deadline::after(Duration::from_secs(5));
    let started = Instant::now();
    let (tool, caller) = (tool(), caller(Some("acme")));
    let e = broker
        .mint(MintRequest {
            tool: &tool,
            role_arn: ROLE,
            session_tags: &ALL_TAGS,
            invocation_id: INVOCATION,
            caller: &caller,
            deadline: &deadline,
            approver: None,
        })
        .await
        .expect_err("throttled until the deadline");
    assert_eq!(e.code(), "throttled");
    // (The timer rounds a pause up to its millisecond.)
    let slack = Duration::from_millis(1);
    assert!(
        Instant::now() <= deadline.instant() + slack,
        "slept past the deadline"
    );
    assert!(started.elapsed() <= Duration::from_secs(5) + slack);
    assert!(sts.asked().len() > 1, "retried while time was left");
}

#[tokio::test(start_paused = true)]
async fn an_attempt_never_outlives_the_deadline() {
    let sts = FakeSts::new([Answer::Hang]);
    let deadline = Deadline::after(Duration::from_secs(3));
    let e = mint_with(&sts, Some("acme"), &deadline)
        .await
        .expect_err("hangs");
    assert_eq!(e.code(), "deadline_exceeded");
    let now = Instant::now();
    assert!(now >= deadline.instant() && now <= deadline.instant() + Duration::from_millis(1));
    assert_eq!(sts.asked().len(), 1);
}

#[tokio::test]
async fn a_passed_deadline_never_asks_sts() {
    let sts = FakeSts::new([Answer::Ok]);
    let e = mint_with(&sts, Some("acme"), &Deadline::after(Duration::ZERO))
        .await
        .expect_err("too late");
    assert_eq!(e.code(), "deadline_exceeded");
    assert!(sts.asked().is_empty());
}

#[tokio::test]
async fn access_denied_is_not_retried() {
    let sts = FakeSts::new([Answer::Fail(StsFailure::Service {
        code: Some("AccessDenied".into()),
        message: Some("User is not authorized to perform: sts:TagSession".into()),
        status: 403,
    })]);
    let e = mint_with(
        &sts,
        Some("acme"),
        &Deadline::after(Duration::from_secs(30)),
    )
    .await
    .expect_err("denied");
    assert_eq!(e.code(), "AccessDenied");
    assert_eq!(sts.asked().len(), 1);
    let text = e.to_string();
    assert!(
        text.contains("tenant-files") && text.contains(ROLE),
        "{text}"
    );
    assert!(text.contains("sts:TagSession"), "{text}");
}

#[tokio::test]
async fn packed_policy_too_large_names_the_tool() {
    let sts = FakeSts::new([Answer::Fail(StsFailure::Service {
        code: Some("PackedPolicyTooLarge".into()),
        message: Some("Packed policy consumes 112% of allotted space".into()),
        status: 400,
    })]);
    let e = mint_with(
        &sts,
        Some("acme"),
        &Deadline::after(Duration::from_secs(30)),
    )
    .await
    .expect_err("too large");
    assert_eq!(e.code(), "packed_policy_too_large");
    let text = e.to_string();
    assert!(
        text.contains("tenant-files") && text.contains("112%"),
        "{text}"
    );
    assert_eq!(sts.asked().len(), 1);
}

#[tokio::test]
async fn unreachable_sts_is_labelled_and_not_retried() {
    let sts = FakeSts::new([Answer::Fail(StsFailure::Request(
        "connection refused".into(),
    ))]);
    let e = mint_with(
        &sts,
        Some("acme"),
        &Deadline::after(Duration::from_secs(30)),
    )
    .await
    .expect_err("unreachable");
    assert_eq!(e.code(), "sts_unreachable");
    assert_eq!(sts.asked().len(), 1);
}

#[tokio::test]
async fn minted_credentials_never_show_their_secrets() {
    let sts = FakeSts::new([Answer::Ok]);
    let minted = mint_with(
        &sts,
        Some("acme"),
        &Deadline::after(Duration::from_secs(30)),
    )
    .await
    .expect("minted");
    let shown = format!("{minted:?} {:?}", minted.credentials);
    assert!(!shown.contains(SECRET) && !shown.contains(TOKEN), "{shown}");
    assert!(shown.contains("ASIAFAKE"));
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("not poisoned").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn mint_logs_one_debug_line_without_secrets() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    // tracing caches each event's interest process-wide: another test thread emitting the same
    // event while this subscriber registers can leave it cached as "never". Rebuilding the cache
    // and trying again (at most three rounds) keeps that artefact out of the verdict.
    let mut text = String::new();
    for _ in 0..3 {
        tracing::callsite::rebuild_interest_cache();
        captured.0.lock().expect("not poisoned").clear();
        let sts = FakeSts::new([throttled(Some("Throttling"), 400), Answer::Ok]);
        mint_with(
            &sts,
            Some("acme"),
            &Deadline::after(Duration::from_secs(30)),
        )
        .await
        .expect("minted");
        text = String::from_utf8(captured.0.lock().expect("not poisoned").clone()).expect("utf-8");
        assert!(!text.contains(SECRET) && !text.contains(TOKEN), "{text}");
        if text.contains("minted credentials") {
            break;
        }
    }
    let minted: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("minted credentials"))
        .collect();
    assert_eq!(minted.len(), 1, "{text}");
    let line = minted[0];
    for wanted in [
        "tenant-files",
        INVOCATION,
        "assumed-role/",
        "attempts=2",
        "elapsed_ms=",
    ] {
        assert!(line.contains(wanted), "{wanted} missing: {line}");
    }
}
