//! The credential broker against LocalStack's STS, observed on the wire.
//!
//! Each test starts a recording reverse proxy in front of LocalStack and points the broker's STS
//! client at it, so the assertions read the `AssumeRole` request exactly as it left the gateway.
//! LocalStack must be running; the test panics when `LOCALSTACK_ENDPOINT` is unset, and plain
//! `cargo test` ignores it:
//!
//! ```sh
//! eval "$(START_MOTO=0 LOCALSTACK_SERVICES=iam,sts localstack/start)"
//! cargo test --release -p switchboard-gateway --test it -- --ignored broker_localstack::
//! localstack/stop
//! ```
//!
//! Emulators check shapes, not policy evaluation: these tests prove what is asked and that the
//! minted credentials name the call's role session, not what IAM would allow with them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_sts::config::{BehaviorVersion, Credentials, Region};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use switchboard_gateway::auth::Caller;
use switchboard_gateway::catalog::{SessionTag, Tool};
use switchboard_gateway::credentials::{
    Broker, MintRequest, Minted, session_policy, source_identity,
};
use switchboard_gateway::deadline::Deadline;

const ALL_TAGS: [SessionTag; 4] = [
    SessionTag::Tool,
    SessionTag::Tenant,
    SessionTag::Principal,
    SessionTag::Invocation,
];
const SUBJECT: &str = "alice@example.com";

fn localstack() -> String {
    std::env::var("LOCALSTACK_ENDPOINT").expect(
        "LOCALSTACK_ENDPOINT is unset: start LocalStack first \
         (eval \"$(START_MOTO=0 LOCALSTACK_SERVICES=iam,sts localstack/start)\")",
    )
}

/// One request as the proxy saw it.
#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl Proxy {
    /// Listens on a port of its own and relays every request to `upstream`; returns its URL.
    async fn start(upstream: String) -> (String, Arc<Mutex<Vec<Recorded>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let proxy = Self {
            upstream,
            http: reqwest::Client::new(),
            seen: seen.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port on loopback");
        let addr = listener.local_addr().expect("bound");
        let app = axum::Router::new().fallback(relay).with_state(proxy);
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}"), seen)
    }
}

async fn relay(State(proxy): State<Proxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .expect("a request body under 1 MiB");
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "/".into());
    proxy.seen.lock().expect("not poisoned").push(Recorded {
        method: parts.method.to_string(),
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let mut headers = parts.headers;
    for hop in [header::HOST, header::CONTENT_LENGTH, header::CONNECTION] {
        headers.remove(hop);
    }
    let answer = proxy
        .http
        .request(parts.method, format!("{}{path}", proxy.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match answer {
        Ok(answer) => answer,
        Err(e) => {
            return Response::builder()
                .status(StatusCode::BAD_GATEWAY)
                .body(Body::from(format!("proxy: {e}")))
                .expect("a valid response");
        }
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    for hop in [
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::CONNECTION,
    ] {
        headers.remove(hop);
    }
    let body = answer.bytes().await.expect("LocalStack's whole answer");
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// An `application/x-www-form-urlencoded` body as pairs, in order.
fn form(body: &[u8]) -> Vec<(String, String)> {
    fn decode(text: &str) -> String {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).expect("ASCII escape");
                    out.push(u8::from_str_radix(hex, 16).expect("a hex escape"));
                    i += 2;
                }
                b => out.push(b),
            }
            i += 1;
        }
        String::from_utf8(out).expect("UTF-8 form values")
    }
    std::str::from_utf8(body)
        .expect("a text body")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Pairs as an `application/x-www-form-urlencoded` body.
fn encode_form(pairs: &[(&str, &str)]) -> String {
    let encode = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    char::from(b).to_string()
                }
                b => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Creates a role in LocalStack's IAM (unsigned: LocalStack routes by the credential scope and
/// does not check the signature) and returns its ARN.
async fn create_role(endpoint: &str, name: &str) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::000000000000:root"},
        "Action": ["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"]}]});
    let answer = reqwest::Client::new()
        .post(format!("{endpoint}/"))
        .header(
            header::AUTHORIZATION,
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, \
             SignedHeaders=host, Signature=0",
        )
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(encode_form(&[
            ("Action", "CreateRole"),
            ("Version", "2010-05-08"),
            ("RoleName", name),
            ("AssumeRolePolicyDocument", &trust.to_string()),
        ]))
        .send()
        .await
        .expect("LocalStack answers");
    let status = answer.status();
    let text = answer.text().await.expect("an answer body");
    assert!(status.is_success(), "CreateRole {name}: {status} {text}");
    format!("arn:aws:iam::000000000000:role/{name}")
}

fn sts_client(endpoint: &str, credentials: Credentials) -> aws_sdk_sts::Client {
    aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .endpoint_url(endpoint)
            .build(),
    )
}

fn static_test_credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "broker-localstack")
}

fn tool() -> Tool {
    serde_json::from_value(json!({
        "name": "tenant-files",
        "description": "Reads the caller's tenant's files.",
        "input_schema": {"type": "object"},
        "backend": "lambda",
        "allow": {"groups": ["dev"]},
        "permissions": [
            {"sid": "Read", "actions": ["s3:GetObject"],
             "resources": ["arn:aws:s3:::switchboard-files/${aws:PrincipalTag/tenant}/*"]},
            {"actions": ["s3:ListBucket"], "resources": ["arn:aws:s3:::switchboard-files"],
             "condition": {"StringLike": {"s3:prefix": ["${aws:PrincipalTag/tenant}/*"]}}},
        ],
    }))
    .expect("a valid tool")
}

fn caller(tenant: &str) -> Caller {
    Caller {
        subject: SUBJECT.into(),
        tenant: Some(tenant.into()),
        groups: vec!["dev".into()],
        scopes: vec![],
    }
}

/// A role of its own for each test, so runs never share state.
fn role_name() -> String {
    format!(
        "switchboard-broker-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

struct Setup {
    broker: Broker,
    seen: Arc<Mutex<Vec<Recorded>>>,
    role_arn: String,
    role_name: String,
    endpoint: String,
}

async fn setup() -> Setup {
    let endpoint = localstack();
    let role_name = role_name();
    let role_arn = create_role(&endpoint, &role_name).await;
    let (proxy, seen) = Proxy::start(endpoint.clone()).await;
    let broker = Broker::with_client(sts_client(&proxy, static_test_credentials()));
    Setup {
        broker,
        seen,
        role_arn,
        role_name,
        endpoint,
    }
}

async fn mint(
    setup: &Setup,
    tool: &Tool,
    tenant: &str,
    invocation_id: &str,
    deadline: &Deadline,
) -> Result<Minted, switchboard_gateway::credentials::CredentialError> {
    let caller = caller(tenant);
    setup
        .broker
        .mint(MintRequest {
            tool,
            role_arn: &setup.role_arn,
            session_tags: &ALL_TAGS,
            invocation_id,
            caller: &caller,
            deadline,
            approver: None,
        })
        .await
}

#[tokio::test]
#[ignore = "needs LocalStack: tests/lambda/run.sh runs it"]
async fn assume_role_request_carries_exactly_the_expected_session() {
    let setup = setup().await;
    let tool = tool();
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let deadline = Deadline::after(Duration::from_secs(60));
    mint(&setup, &tool, "acme", &invocation_id, &deadline)
        .await
        .expect("LocalStack mints");

    let seen = setup.seen.lock().expect("not poisoned").clone();
    assert_eq!(seen.len(), 1, "one request to STS: {seen:?}");
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/");
    let authorization = request.headers[header::AUTHORIZATION]
        .to_str()
        .expect("ASCII");
    assert!(
        authorization.contains("/us-east-1/sts/aws4_request"),
        "{authorization}"
    );

    let pairs = form(&request.body);
    let fields: BTreeMap<String, String> = pairs.iter().cloned().collect();
    assert_eq!(fields.len(), pairs.len(), "no field twice: {pairs:?}");
    let mut expected_keys: BTreeSet<String> = [
        "Action",
        "Version",
        "RoleArn",
        "RoleSessionName",
        "SourceIdentity",
        "DurationSeconds",
        "Policy",
    ]
    .into_iter()
    .map(Into::into)
    .collect();
    for n in 1..=4 {
        expected_keys.insert(format!("Tags.member.{n}.Key"));
        expected_keys.insert(format!("Tags.member.{n}.Value"));
    }
    assert_eq!(
        fields.keys().cloned().collect::<BTreeSet<_>>(),
        expected_keys,
        "{pairs:?}"
    );
    assert_eq!(fields["Action"], "AssumeRole");
    assert_eq!(fields["Version"], "2011-06-15");
    assert_eq!(fields["RoleArn"], setup.role_arn);
    assert_eq!(fields["RoleSessionName"], invocation_id);
    assert_eq!(fields["SourceIdentity"], source_identity(SUBJECT));
    assert_eq!(fields["DurationSeconds"], "900");

    let tags: BTreeMap<String, String> = (1..=4)
        .map(|n| {
            (
                fields[&format!("Tags.member.{n}.Key")].clone(),
                fields[&format!("Tags.member.{n}.Value")].clone(),
            )
        })
        .collect();
    let expected_tags: BTreeMap<String, String> = [
        ("tool", "tenant-files"),
        ("tenant", "acme"),
        ("principal", SUBJECT),
        ("invocation", invocation_id.as_str()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(tags, expected_tags);

    let policy_text = &fields["Policy"];
    assert_eq!(
        policy_text,
        &session_policy(&tool, &deadline).expect("renders"),
        "the policy goes out exactly as rendered"
    );
    assert!(
        !policy_text.contains(' ') && !policy_text.contains('\n'),
        "compact: {policy_text}"
    );
    let policy: Value = serde_json::from_str(policy_text).expect("the policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("statements");
    assert_eq!(statements.len(), tool.permissions.len());
    for s in statements {
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(
            s["Condition"]["DateLessThan"]["aws:CurrentTime"],
            deadline.rfc3339(),
            "{s}"
        );
    }
    assert_eq!(
        statements[0]["Resource"][0],
        "arn:aws:s3:::switchboard-files/${aws:PrincipalTag/tenant}/*"
    );
    assert_eq!(
        statements[1]["Condition"]["StringLike"]["s3:prefix"][0],
        "${aws:PrincipalTag/tenant}/*"
    );
}

#[tokio::test]
#[ignore = "needs LocalStack: tests/lambda/run.sh runs it"]
async fn minted_credentials_name_the_invocation_session() {
    let setup = setup().await;
    let tool = tool();
    let invocation_id = uuid::Uuid::now_v7().to_string();
    let deadline = Deadline::after(Duration::from_secs(60));
    let minted = mint(&setup, &tool, "acme", &invocation_id, &deadline)
        .await
        .expect("LocalStack mints");
    assert!(
        minted.assumed_role_arn.ends_with(&format!(
            ":assumed-role/{}/{invocation_id}",
            setup.role_name
        )),
        "{}",
        minted.assumed_role_arn
    );
    time::OffsetDateTime::parse(
        &minted.credentials.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .expect("the expiration is RFC 3339");

    let c = &minted.credentials;
    let as_tool = sts_client(
        &setup.endpoint,
        Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.expose_secret().to_owned(),
            Some(c.session_token.expose_secret().to_owned()),
            None,
            "minted",
        ),
    );
    let identity = as_tool
        .get_caller_identity()
        .send()
        .await
        .expect("GetCallerIdentity with the minted credentials");
    let arn = identity.arn().expect("an ARN");
    assert_eq!(arn, minted.assumed_role_arn);
    assert!(
        arn.ends_with(&format!("/{}/{invocation_id}", setup.role_name)),
        "{arn}"
    );
}

#[tokio::test]
#[ignore = "needs LocalStack: tests/lambda/run.sh runs it"]
async fn each_mint_gets_its_own_session() {
    let setup = setup().await;
    let tool = tool();
    let deadline = Deadline::after(Duration::from_secs(120));
    let mut times = Vec::new();
    let mut keys = BTreeSet::new();
    let mut sessions = BTreeSet::new();
    for _ in 0..20 {
        let invocation_id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        let minted = mint(&setup, &tool, "acme", &invocation_id, &deadline)
            .await
            .expect("LocalStack mints");
        times.push(started.elapsed());
        keys.insert(minted.credentials.access_key_id.clone());
        sessions.insert(minted.assumed_role_arn.clone());
    }
    assert_eq!(keys.len(), 20, "an access key per call");
    assert_eq!(sessions.len(), 20, "a role session per call");
    times.sort();
    eprintln!(
        "mint against LocalStack through the proxy: min {:?}, median {:?}, max {:?}",
        times[0], times[10], times[19]
    );
}

#[tokio::test]
#[ignore = "needs LocalStack: tests/lambda/run.sh runs it"]
async fn refused_tenant_never_reaches_sts() {
    let setup = setup().await;
    let tool = tool();
    let deadline = Deadline::after(Duration::from_secs(60));
    for tenant in ["acme/x", "ACME", "", ".."] {
        let invocation_id = uuid::Uuid::now_v7().to_string();
        let e = mint(&setup, &tool, tenant, &invocation_id, &deadline)
            .await
            .expect_err("refused");
        assert_eq!(e.code(), "bad_tenant", "{tenant:?}: {e}");
    }
    assert!(
        setup.seen.lock().expect("not poisoned").is_empty(),
        "a refused request reached STS"
    );
    // The proxy is on the path: an accepted request shows up.
    let invocation_id = uuid::Uuid::now_v7().to_string();
    mint(&setup, &tool, "acme", &invocation_id, &deadline)
        .await
        .expect("LocalStack mints");
    assert_eq!(setup.seen.lock().expect("not poisoned").len(), 1);
}
