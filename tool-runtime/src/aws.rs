//! Calling AWS from inside a unit, with the credentials minted for this one call.
//!
//! A tool never reaches for the environment's credential chain: the only credentials it has
//! are its invocation's ([`Invocation::credentials`]), minted by the gateway for this call, for
//! this tool's work role, and ending at the call's deadline. [`UnitAws::for_call`] builds SDK
//! clients with exactly those.
//!
//! How a request leaves the unit depends on where the unit runs:
//!
//! - **Local sandbox.** The sandbox has no network. When the tool declares endpoints, the
//!   gateway binds its endpoint proxy's Unix socket into the sandbox and names it in
//!   `SWITCHBOARD_ENDPOINT_SOCKET`, with the declared names in `SWITCHBOARD_ENDPOINTS` and each
//!   one's upstream in `SWITCHBOARD_ENDPOINT_<NAME>` (`host:port`). Each request then goes
//!   through one `CONNECT host:port` tunnel on that socket ([`TunnelConnector`]): TLS inside the
//!   tunnel when the upstream's port is 443 (a regional AWS endpoint, checked against the
//!   system's root certificates), plain HTTP otherwise (an emulator). The proxy refuses any
//!   target that is not a declared endpoint's upstream.
//! - **Lambda or Fargate.** The SDK's own HTTPS client; in the tool's VPC the endpoint's private
//!   DNS name answers for the regional hostname, and the security group reaches nothing else.
//!
//! The region is `AWS_REGION` (Lambda sets it; the local backend passes the deployment's), or
//! `us-east-1` when unset.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sts::config::Credentials;
use aws_smithy_runtime_api::client::behavior_version::BehaviorVersion;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;
use aws_types::SdkConfig;
use aws_types::region::Region;
use aws_types::sdk_config::SharedCredentialsProvider;
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use secrecy::ExposeSecret as _;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::UnixStream;

use crate::contract::{AwsCredentials, Invocation};

/// The region used when `AWS_REGION` is not set.
pub const DEFAULT_REGION: &str = "us-east-1";

/// Largest CONNECT answer head read from the endpoint proxy.
const MAX_PROXY_HEAD: usize = 8 * 1024;

/// Why a unit cannot call AWS.
#[derive(Debug, thiserror::Error)]
pub enum UnitAwsError {
    #[error(
        "this call received no AWS credentials: the catalog grants the tool no permissions, \
         or the gateway runs without the deployment's bindings"
    )]
    NoCredentials,
    #[error(
        "the tool does not declare the {0} endpoint (it may reach only {1}); add it to the \
         tool's `endpoints` in the catalog"
    )]
    NotDeclared(&'static str, String),
    #[error(
        "the tool declares the {0} endpoint but the gateway has no upstream for it \
         (SWITCHBOARD_LOCAL_ENDPOINTS, for example {0}=127.0.0.1:4566)"
    )]
    NoUpstream(&'static str),
    #[error("the upstream of the {0} endpoint, {1:?}, is not host:port")]
    BadUpstream(&'static str, String),
    #[error("the credentials' expiration {0:?} is not an RFC 3339 time")]
    BadExpiration(String),
}

/// How this unit reaches a declared endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// The SDK's own client and the service's regional endpoint (Lambda, Fargate).
    Direct,
    /// Through the gateway's endpoint proxy (local sandbox).
    Proxy {
        socket: PathBuf,
        declared: BTreeSet<String>,
        /// `SWITCHBOARD_ENDPOINT_<NAME>` values, by endpoint name.
        upstreams: std::collections::BTreeMap<String, String>,
    },
}

/// AWS as one call of one tool sees it: its credentials, its region, its way out.
#[derive(Debug, Clone)]
pub struct UnitAws {
    credentials: Credentials,
    region: String,
    reach: Reach,
}

impl UnitAws {
    /// AWS for this call: the invocation's credentials, and the region and endpoint proxy the
    /// unit's environment names (see the module docs).
    pub fn for_call(invocation: &Invocation) -> Result<Self, UnitAwsError> {
        Self::from_environment(invocation, |name| std::env::var(name).ok())
    }

    /// [`Self::for_call`] with the environment read through `var`.
    pub fn from_environment(
        invocation: &Invocation,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, UnitAwsError> {
        let minted = invocation
            .credentials
            .as_ref()
            .ok_or(UnitAwsError::NoCredentials)?;
        let region = var("AWS_REGION")
            .filter(|r| !r.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_REGION.to_owned());
        let reach = match var("SWITCHBOARD_ENDPOINT_SOCKET").filter(|s| !s.is_empty()) {
            None => Reach::Direct,
            Some(socket) => {
                let declared: BTreeSet<String> = var("SWITCHBOARD_ENDPOINTS")
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                let upstreams = declared
                    .iter()
                    .filter_map(|name| {
                        let key = name.replace('.', "_").to_ascii_uppercase();
                        Some((name.clone(), var(&format!("SWITCHBOARD_ENDPOINT_{key}"))?))
                    })
                    .collect();
                Reach::Proxy {
                    socket: PathBuf::from(socket),
                    declared,
                    upstreams,
                }
            }
        };
        Ok(Self {
            credentials: sdk_credentials(minted)?,
            region,
            reach,
        })
    }

    /// The region requests are signed for.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// In a local sandbox: the endpoint proxy's socket and the upstream (`host:port`) of each
    /// declared endpoint, by name. `None` when the unit reaches AWS directly.
    pub fn proxy(&self) -> Option<(&Path, &std::collections::BTreeMap<String, String>)> {
        match &self.reach {
            Reach::Direct => None,
            Reach::Proxy {
                socket, upstreams, ..
            } => Some((socket, upstreams)),
        }
    }

    /// An STS client that signs with this call's credentials.
    pub fn sts(&self) -> Result<aws_sdk_sts::Client, UnitAwsError> {
        let config = self.sdk_config("sts")?;
        Ok(aws_sdk_sts::Client::new(&config))
    }

    /// A Secrets Manager client that signs with this call's credentials (endpoint
    /// `secretsmanager`).
    pub fn secrets_manager(&self) -> Result<aws_sdk_secretsmanager::Client, UnitAwsError> {
        let config = self.sdk_config("secretsmanager")?;
        Ok(aws_sdk_secretsmanager::Client::new(&config))
    }

    /// An S3 client that signs with this call's credentials (endpoint `s3`). Behind the local
    /// endpoint proxy it addresses buckets by path: the proxy admits the declared upstream's
    /// host, not `<bucket>.<host>`.
    pub fn s3(&self) -> Result<aws_sdk_s3::Client, UnitAwsError> {
        let config = self.sdk_config("s3")?;
        let config = aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(matches!(self.reach, Reach::Proxy { .. }))
            .build();
        Ok(aws_sdk_s3::Client::from_conf(config))
    }

    /// The shared SDK configuration of a client for `endpoint`: this call's credentials and
    /// region and, in a sandbox, the endpoint's upstream reached through the proxy.
    fn sdk_config(&self, endpoint: &'static str) -> Result<SdkConfig, UnitAwsError> {
        let mut config = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(self.region.clone()))
            .credentials_provider(SharedCredentialsProvider::new(self.credentials.clone()));
        if let Some((endpoint_url, connector)) = self.through_proxy(endpoint)? {
            config = config
                .endpoint_url(endpoint_url)
                .http_client(http_client_fn(move |_, _| connector.clone()));
        }
        Ok(config.build())
    }

    /// For a sandboxed unit: the endpoint URL of `endpoint`'s upstream and a connector that
    /// tunnels to it. `None` when the unit reaches AWS directly.
    fn through_proxy(
        &self,
        endpoint: &'static str,
    ) -> Result<Option<(String, SharedHttpConnector)>, UnitAwsError> {
        let Reach::Proxy {
            socket,
            declared,
            upstreams,
        } = &self.reach
        else {
            return Ok(None);
        };
        if !declared.contains(endpoint) {
            let list = if declared.is_empty() {
                "none".to_owned()
            } else {
                declared.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            return Err(UnitAwsError::NotDeclared(endpoint, list));
        }
        let upstream = upstreams
            .get(endpoint)
            .ok_or(UnitAwsError::NoUpstream(endpoint))?;
        let url = endpoint_url(upstream)
            .ok_or_else(|| UnitAwsError::BadUpstream(endpoint, upstream.clone()))?;
        let connector = SharedHttpConnector::new(TunnelConnector::new(socket));
        Ok(Some((url, connector)))
    }
}

/// `https://host` for port 443, `http://host:port` otherwise.
pub fn endpoint_url(upstream: &str) -> Option<String> {
    let (host, port) = upstream.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    if host.is_empty() {
        return None;
    }
    Some(if port == 443 {
        format!("https://{host}")
    } else {
        format!("http://{host}:{port}")
    })
}

/// Runs `call` to completion on a thread and current-thread runtime of its own, for synchronous
/// tool handlers (which may themselves run inside the Lambda runtime's tokio context, where
/// blocking on a future would panic). A panic of the call is an error, not a crash.
pub fn block_on<F, T>(call: F) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, String>> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start a runtime: {e}"))?
            .block_on(call)
    })
    .join()
    .map_err(|_| "the call panicked".to_owned())?
}

fn sdk_credentials(minted: &AwsCredentials) -> Result<Credentials, UnitAwsError> {
    let expiry = time::OffsetDateTime::parse(
        &minted.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| UnitAwsError::BadExpiration(minted.expiration.clone()))?;
    let unix = u64::try_from(expiry.unix_timestamp()).unwrap_or(0);
    Ok(Credentials::new(
        minted.access_key_id.clone(),
        minted.secret_access_key.expose_secret().to_owned(),
        Some(minted.session_token.expose_secret().to_owned()),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(unix)),
        "switchboard-invocation",
    ))
}

/// An SDK connector that sends each request through its own `CONNECT` tunnel on the endpoint
/// proxy's Unix socket, to the request's own `host:port`; TLS inside the tunnel for `https`.
///
/// Written here because no HTTP client library speaks CONNECT over a Unix socket; the HTTP
/// itself is hyper's, the TLS rustls's. One connection per request: a tool makes few calls.
#[derive(Debug, Clone)]
pub struct TunnelConnector {
    socket: PathBuf,
}

impl TunnelConnector {
    pub fn new(socket: &Path) -> Self {
        Self {
            socket: socket.to_owned(),
        }
    }

    async fn send(self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let mut request = request
            .try_into_http1x()
            .map_err(|e| ConnectorError::other(e.into(), None))?;
        let uri = request.uri().clone();
        let host = uri
            .host()
            .ok_or_else(|| user_error(format!("request URI {uri} has no host")))?
            .to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        if !request.headers().contains_key(http::header::HOST) {
            let authority = uri
                .authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_else(|| host.clone());
            let value = http::HeaderValue::from_str(&authority)
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            request.headers_mut().insert(http::header::HOST, value);
        }
        let origin_form: http::Uri = uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/")
            .parse()
            .map_err(|e: http::uri::InvalidUri| ConnectorError::other(e.into(), None))?;
        *request.uri_mut() = origin_form;

        let tunnel = open_tunnel(&self.socket, &host, port).await?;
        let response = if https {
            let tls = tls_connector().map_err(|e| ConnectorError::other(e.into(), None))?;
            let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.clone())
                .map_err(|e| ConnectorError::other(e.into(), None))?;
            let stream = tls
                .connect(name, tunnel)
                .await
                .map_err(|e| ConnectorError::io(e.into()))?;
            exchange(stream, request).await?
        } else {
            exchange(tunnel, request).await?
        };
        HttpResponse::try_from(response).map_err(|e| ConnectorError::other(e.into(), None))
    }
}

impl HttpConnector for TunnelConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        HttpConnectorFuture::new(self.clone().send(request))
    }
}

fn user_error(message: String) -> ConnectorError {
    ConnectorError::other(message.into(), None)
}

/// Asks the endpoint proxy for a tunnel to `host:port`; the proxy's refusal (a non-200 answer)
/// becomes an error carrying its status line.
async fn open_tunnel(socket: &Path, host: &str, port: u16) -> Result<UnixStream, ConnectorError> {
    let mut stream = UnixStream::connect(socket).await.map_err(|e| {
        ConnectorError::io(
            format!(
                "cannot reach the endpoint proxy at {}: {e}",
                socket.display()
            )
            .into(),
        )
    })?;
    let head = format!("CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n");
    stream
        .write_all(head.as_bytes())
        .await
        .map_err(|e| ConnectorError::io(e.into()))?;
    let mut answer = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte: what follows the head belongs to the tunnel.
    while !answer.ends_with(b"\r\n\r\n") {
        if answer.len() >= MAX_PROXY_HEAD {
            return Err(user_error(
                "the endpoint proxy's answer head is too long".into(),
            ));
        }
        let n = stream
            .read(&mut byte)
            .await
            .map_err(|e| ConnectorError::io(e.into()))?;
        if n == 0 {
            return Err(ConnectorError::io(
                "the endpoint proxy closed the connection before answering CONNECT".into(),
            ));
        }
        answer.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&answer);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let status = status_line.split_whitespace().nth(1).unwrap_or_default();
    if status == "200" {
        Ok(stream)
    } else {
        Err(user_error(format!(
            "the endpoint proxy refused a tunnel to {host}:{port}: {status_line}"
        )))
    }
}

/// One HTTP/1.1 exchange on `stream`; the answer's body read whole.
async fn exchange<S>(
    stream: S,
    request: http::Request<SdkBody>,
) -> Result<http::Response<SdkBody>, ConnectorError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ConnectorError::io(e.into()))?;
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| ConnectorError::io(e.into()))?;
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map_err(|e| ConnectorError::io(e.into()))?
        .to_bytes();
    driver.abort();
    Ok(http::Response::from_parts(parts, SdkBody::from(bytes)))
}

/// A TLS client that trusts the system's root certificates, built once.
fn tls_connector() -> Result<tokio_rustls::TlsConnector, String> {
    static CONNECTOR: std::sync::OnceLock<Result<tokio_rustls::TlsConnector, String>> =
        std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| {
            use tokio_rustls::rustls;
            let mut roots = rustls::RootCertStore::empty();
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err("no root certificates found on this system (SSL_CERT_FILE)".into());
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn invocation(with_credentials: bool) -> Invocation {
        let mut value = serde_json::json!({
            "invocationId": "inv-1", "tool": "whoami", "arguments": {}, "deadlineUnixMs": 1
        });
        if with_credentials {
            value["credentials"] = serde_json::json!({
                "accessKeyId": "ASIAEXAMPLE", "secretAccessKey": "s3cr3t",
                "sessionToken": "t0ken", "expiration": "2030-01-01T00:00:00Z"
            });
        }
        serde_json::from_value(value).expect("valid invocation")
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_call_without_credentials_cannot_call_aws() {
        let e = UnitAws::from_environment(&invocation(false), env(&[])).expect_err("refused");
        assert!(matches!(e, UnitAwsError::NoCredentials), "{e}");
    }

    #[test]
    fn outside_a_sandbox_the_sdk_reaches_aws_directly() {
        let aws = UnitAws::from_environment(&invocation(true), env(&[("AWS_REGION", "eu-west-1")]))
            .expect("usable");
        assert_eq!(aws.region(), "eu-west-1");
        assert!(aws.through_proxy("sts").expect("direct").is_none());
    }

    #[test]
    fn in_a_sandbox_an_undeclared_endpoint_is_refused_before_any_request() {
        let aws = UnitAws::from_environment(
            &invocation(true),
            env(&[
                (
                    "SWITCHBOARD_ENDPOINT_SOCKET",
                    "/run/switchboard/endpoints.sock",
                ),
                ("SWITCHBOARD_ENDPOINTS", "s3"),
                ("SWITCHBOARD_ENDPOINT_S3", "127.0.0.1:4566"),
            ]),
        )
        .expect("usable");
        let e = aws.through_proxy("sts").expect_err("not declared");
        assert_eq!(
            e.to_string(),
            "the tool does not declare the sts endpoint (it may reach only s3); add it to the \
             tool's `endpoints` in the catalog"
        );
    }

    #[test]
    fn a_declared_endpoint_without_upstream_names_the_setting() {
        let aws = UnitAws::from_environment(
            &invocation(true),
            env(&[
                (
                    "SWITCHBOARD_ENDPOINT_SOCKET",
                    "/run/switchboard/endpoints.sock",
                ),
                ("SWITCHBOARD_ENDPOINTS", "sts"),
            ]),
        )
        .expect("usable");
        let e = aws.through_proxy("sts").expect_err("no upstream");
        assert!(e.to_string().contains("SWITCHBOARD_LOCAL_ENDPOINTS"), "{e}");
    }

    #[test]
    fn the_upstream_port_picks_tls() {
        assert_eq!(
            endpoint_url("sts.eu-west-1.amazonaws.com:443").as_deref(),
            Some("https://sts.eu-west-1.amazonaws.com")
        );
        assert_eq!(
            endpoint_url("127.0.0.1:4566").as_deref(),
            Some("http://127.0.0.1:4566")
        );
        assert_eq!(endpoint_url("nohost"), None);
        assert_eq!(endpoint_url(":80"), None);
    }

    #[test]
    fn debug_output_of_a_unit_aws_holds_no_secret() {
        let aws = UnitAws::from_environment(&invocation(true), env(&[])).expect("usable");
        let shown = format!("{aws:?}");
        assert!(shown.contains("ASIAEXAMPLE"), "{shown}");
        assert!(
            !shown.contains("s3cr3t") && !shown.contains("t0ken"),
            "{shown}"
        );
    }

    /// A proxy that answers CONNECT with 403 and counts what it was asked.
    #[tokio::test]
    async fn a_refused_tunnel_is_an_error_carrying_the_proxy_answer() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("proxy.sock");
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 1024];
            let n = s.read(&mut buf).await.expect("read");
            s.write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                .await
                .expect("write");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        });
        let e = open_tunnel(&path, "evil.example", 443)
            .await
            .expect_err("refused");
        let asked = server.await.expect("server");
        assert!(
            asked.starts_with("CONNECT evil.example:443 HTTP/1.1\r\n"),
            "{asked}"
        );
        assert!(format!("{e:?}").contains("403 Forbidden"), "{e:?}");
    }
}
