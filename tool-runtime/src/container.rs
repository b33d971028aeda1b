//! Container mode (a Fargate task): the invocation and the result travel through two presigned
//! URLs, the only things the gateway puts in the task's overrides.
//!
//! `RunTask` overrides are visible to anyone with `ecs:DescribeTasks` and are recorded by
//! CloudTrail, so they must not hold arguments or credentials. The gateway writes the invocation
//! (credentials included) to its invocation bucket and passes the task:
//!
//! - [`INVOCATION_URL_ENV`]: a presigned `GET` of the invocation object;
//! - [`RESULT_URL_ENV`]: a presigned `PUT` of the result object.
//!
//! The `GET` expires at the end of the call's start window (the tool's
//! `fargate.start_timeout_seconds`, at most its deadline), the `PUT` at the deadline. The unit
//! fetches the invocation as soon as it starts (at most
//! [`MAX_INVOCATION_BYTES`](crate::oneshot::MAX_INVOCATION_BYTES)), runs the tool, `PUT`s one JSON
//! [`ToolOutput`], sealed with the invocation's result key when it has one ([`crate::seal`]: the
//! gateway takes no result the result URL alone could have made), and exits 0. A tool's own failure is a result with `isError: true`, not a crash.
//! Only a broken exchange (a URL missing, the invocation unreadable, the result not stored) exits
//! non-zero, with the reason on stderr. A presigned URL is a bearer secret until it expires:
//! messages name its host and path, never its query (the signature).
//!
//! The unit needs no AWS rights of its own: the URLs carry the gateway's signature. Progress
//! reports are dropped ([`Progress::disabled`](crate::Progress::disabled)): the task has no
//! channel back but the result.

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::contract::{Invocation, ToolOutput};
use crate::oneshot::MAX_INVOCATION_BYTES;
use crate::seal::seal;

/// The presigned `GET` URL of the invocation.
pub const INVOCATION_URL_ENV: &str = "SWITCHBOARD_INVOCATION_URL";
/// The presigned `PUT` URL of the result.
pub const RESULT_URL_ENV: &str = "SWITCHBOARD_RESULT_URL";

/// How long fetching the invocation may take (the deadline is not known before it arrives).
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);
/// The least time given to storing the result, even when the deadline has passed (the gateway
/// then no longer waits, but a result stored late is still deleted by it rather than lost).
const MIN_PUT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the exchange through the URLs failed.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("{0} is not set: container mode needs both presigned URLs")]
    MissingUrl(&'static str),
    #[error("{0} is not an http(s) URL")]
    BadUrl(&'static str),
    #[error("{0} is plain http to a host that is not loopback: the exchange must use TLS")]
    NotTls(&'static str),
    #[error("cannot start the HTTP client: {0}")]
    Client(String),
    #[error("cannot fetch the invocation from {target}: {reason}")]
    Fetch { target: String, reason: String },
    #[error("the invocation at {0} is larger than {MAX_INVOCATION_BYTES} bytes")]
    TooLarge(String),
    #[error("the invocation at {0} is not a valid invocation: {1}")]
    Parse(String, serde_json::Error),
    #[error("cannot store the result at {target}: {reason}")]
    Put { target: String, reason: String },
}

/// Whether this process was started in container mode (the invocation URL is set).
pub fn is_container_mode() -> bool {
    std::env::var_os(INVOCATION_URL_ENV).is_some()
}

/// Runs `handler` in container mode with the URLs of this process's environment.
pub fn run_container<F, E>(handler: F) -> ExitCode
where
    F: FnOnce(Invocation) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    let urls = (
        std::env::var(INVOCATION_URL_ENV)
            .map_err(|_| ContainerError::MissingUrl(INVOCATION_URL_ENV)),
        std::env::var(RESULT_URL_ENV).map_err(|_| ContainerError::MissingUrl(RESULT_URL_ENV)),
    );
    let outcome = match urls {
        (Ok(invocation), Ok(result)) => exchange_urls(&invocation, &result, handler),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "switchboard tool: {e}");
            ExitCode::from(2)
        }
    }
}

/// Fetches the invocation from `invocation_url`, runs `handler` and `PUT`s its result to
/// `result_url`.
pub fn exchange_urls<F, E>(
    invocation_url: &str,
    result_url: &str,
    handler: F,
) -> Result<(), ContainerError>
where
    F: FnOnce(Invocation) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    let get = parse_url(invocation_url, INVOCATION_URL_ENV)?;
    let put = parse_url(result_url, RESULT_URL_ENV)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ContainerError::Client(e.to_string()))?;
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| ContainerError::Client(e.to_string()))?;

    let raw = runtime.block_on(fetch(&client, get.clone()))?;
    let mut invocation: Invocation =
        serde_json::from_slice(&raw).map_err(|e| ContainerError::Parse(shown(&get), e))?;
    let deadline = UNIX_EPOCH + Duration::from_millis(invocation.deadline_unix_ms);
    let key = invocation.result_key.take();

    // The handler runs outside the runtime: a tool may start one of its own.
    let result = handler(invocation).unwrap_or_else(|e| ToolOutput::error(e.to_string()));
    let body = serde_json::to_vec(&result).map_err(|e| ContainerError::Put {
        target: shown(&put),
        reason: e.to_string(),
    })?;
    // Sealed with the call's key, which only the invocation carries: the result URL alone
    // cannot make a result the gateway takes.
    let body = match &key {
        Some(key) => seal(key, &body),
        None => body,
    };
    let timeout = deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .max(MIN_PUT_TIMEOUT);
    runtime.block_on(store(&client, put, body, timeout))
}

/// Takes `https` URLs, and `http` only to a loopback host (an emulator on the same machine): on
/// a task's network the invocation, credentials included, travels over TLS or not at all.
fn parse_url(value: &str, name: &'static str) -> Result<reqwest::Url, ContainerError> {
    let url = reqwest::Url::parse(value).map_err(|_| ContainerError::BadUrl(name))?;
    let loopback = match url.host_str() {
        Some("localhost" | "[::1]") => true,
        Some(host) => host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback()),
        None => return Err(ContainerError::BadUrl(name)),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(ContainerError::NotTls(name)),
        _ => Err(ContainerError::BadUrl(name)),
    }
}

/// A URL as messages show it: scheme, host, port and path; never the query, which holds the
/// presigned signature.
pub fn shown(url: &reqwest::Url) -> String {
    let mut safe = url.clone();
    safe.set_query(None);
    safe.set_fragment(None);
    let _ = safe.set_password(None);
    let _ = safe.set_username("");
    safe.to_string()
}

/// A transport error's text without the URL (reqwest's `Display` includes it, query and all).
fn reason(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

async fn fetch(client: &reqwest::Client, url: reqwest::Url) -> Result<Vec<u8>, ContainerError> {
    let target = shown(&url);
    let failed = |reason: String| ContainerError::Fetch {
        target: target.clone(),
        reason,
    };
    let mut response = client
        .get(url.clone())
        .timeout(FETCH_TIMEOUT)
        .send()
        .await
        .map_err(|e| failed(reason(e)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(failed(format!("answered {status}")));
    }
    let mut raw = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| failed(reason(e)))? {
        raw.extend_from_slice(&chunk);
        if raw.len() as u64 > MAX_INVOCATION_BYTES {
            return Err(ContainerError::TooLarge(target));
        }
    }
    Ok(raw)
}

async fn store(
    client: &reqwest::Client,
    url: reqwest::Url,
    body: Vec<u8>,
    timeout: Duration,
) -> Result<(), ContainerError> {
    let target = shown(&url);
    let response = client
        .put(url)
        .timeout(timeout)
        .body(body)
        .send()
        .await
        .map_err(|e| ContainerError::Put {
            target: target.clone(),
            reason: reason(e),
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ContainerError::Put {
            target,
            reason: format!("answered {status}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shown_url_never_holds_the_signature() {
        let url = reqwest::Url::parse(
            "https://bucket.s3.eu-west-1.amazonaws.com/invocations/i-1/invocation.json\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=deadbeef",
        )
        .expect("url");
        let text = shown(&url);
        assert_eq!(
            text,
            "https://bucket.s3.eu-west-1.amazonaws.com/invocations/i-1/invocation.json"
        );
    }

    #[test]
    fn only_http_urls_are_taken() {
        assert!(parse_url("https://h/p?x=1", INVOCATION_URL_ENV).is_ok());
        assert!(parse_url("http://127.0.0.1:4566/b/k?x=1", INVOCATION_URL_ENV).is_ok());
        assert!(parse_url("http://localhost:4566/b/k", INVOCATION_URL_ENV).is_ok());
        for bad in ["file:///etc/passwd", "not a url", "ftp://h/p", ""] {
            let e = parse_url(bad, RESULT_URL_ENV).expect_err(bad);
            assert_eq!(
                e.to_string(),
                "SWITCHBOARD_RESULT_URL is not an http(s) URL"
            );
        }
    }

    #[test]
    fn plain_http_to_a_remote_host_is_refused() {
        for bad in [
            "http://bucket.s3.eu-west-1.amazonaws.com/i/invocation.json?X-Amz-Signature=x",
            "http://10.0.0.5/b/k",
        ] {
            let e = parse_url(bad, INVOCATION_URL_ENV).expect_err(bad);
            assert!(matches!(e, ContainerError::NotTls(_)), "{bad}: {e}");
        }
    }
}
