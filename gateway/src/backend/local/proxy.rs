//! The endpoint proxy: the local twin of a VPC endpoint.
//!
//! A sandbox has no network at all (its own network namespace holds only a loopback). A tool
//! that declares endpoints gets one more thing: a Unix socket, bound into the sandbox at
//! [`ENDPOINT_SOCKET`](super::plan::ENDPOINT_SOCKET), on which this proxy answers HTTP
//! `CONNECT host:port`. The proxy opens the tunnel only when `host:port` is the upstream of an
//! endpoint the tool declared; every other request is refused with 403 and counted.
//!
//! Upstreams come from [`LocalOptions::endpoints`](super::LocalOptions): for example `sts` and
//! `s3` pointing at LocalStack, or at the regional AWS hostnames on port 443. A declared endpoint
//! with no upstream configured is refused like any other target, with a message that says so.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;

use crate::catalog::Endpoint;
use crate::metrics::ToolLabel;

/// Largest request head the proxy reads.
const MAX_HEAD: usize = 8 * 1024;

/// Why a proxy could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What the endpoint proxies did, per tool; exported on the gateway's `/metrics` as
/// `switchboard_sandbox_egress_refused_total` and `switchboard_sandbox_egress_tunnels_total`.
#[derive(Debug, Default)]
pub struct EgressCounters {
    /// Requests refused: not a CONNECT, or a destination the tool did not declare.
    refused: Family<ToolLabel, Counter>,
    /// Tunnels opened to a declared endpoint.
    tunnels: Family<ToolLabel, Counter>,
}

impl EgressCounters {
    fn count_refused(&self, tool: &str) {
        self.refused.get_or_create(&ToolLabel::new(tool)).inc();
    }

    fn count_tunnel(&self, tool: &str) {
        self.tunnels.get_or_create(&ToolLabel::new(tool)).inc();
    }

    /// Refusals so far for `tool`.
    pub fn refused(&self, tool: &str) -> u64 {
        self.refused.get_or_create(&ToolLabel::new(tool)).get()
    }

    /// Tunnels opened so far for `tool`.
    pub fn tunnels(&self, tool: &str) -> u64 {
        self.tunnels.get_or_create(&ToolLabel::new(tool)).get()
    }

    /// Adds both counters to a metrics registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "sandbox_egress_refused",
            "Connections a sandbox's endpoint proxy refused (undeclared destination or not CONNECT), by tool",
            self.refused.clone(),
        );
        registry.register(
            "sandbox_egress_tunnels",
            "Tunnels a sandbox's endpoint proxy opened to a declared endpoint, by tool",
            self.tunnels.clone(),
        );
    }
}

/// Starts the proxy of one tool on `socket`; it serves until `stop` is cancelled.
pub fn start(
    tool: &str,
    socket: &Path,
    declared: &[Endpoint],
    upstreams: &BTreeMap<Endpoint, String>,
    counters: Arc<EgressCounters>,
    stop: CancellationToken,
) -> Result<(), ProxyError> {
    let bind_err = |source| ProxyError::Bind {
        path: socket.to_path_buf(),
        source,
    };
    let _ = std::fs::remove_file(socket);
    let std_listener = std::os::unix::net::UnixListener::bind(socket).map_err(bind_err)?;
    // The sandbox runs under another uid; the socket must be connectable by it. Only declared
    // upstreams are reachable through it, whoever connects.
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o666)).map_err(bind_err)?;
    std_listener.set_nonblocking(true).map_err(bind_err)?;
    let listener = UnixListener::from_std(std_listener).map_err(bind_err)?;
    let allowed: Arc<BTreeSet<String>> = Arc::new(
        declared
            .iter()
            .filter_map(|e| upstreams.get(e).cloned())
            .collect(),
    );
    let unconfigured: Vec<Endpoint> = declared
        .iter()
        .filter(|e| !upstreams.contains_key(e))
        .copied()
        .collect();
    if !unconfigured.is_empty() {
        tracing::warn!(
            tool,
            ?unconfigured,
            "declared endpoints have no upstream; they will be refused"
        );
    }
    let tool = tool.to_owned();
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                () = stop.cancelled() => return,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else { continue };
            let (allowed, counters, tool) =
                (Arc::clone(&allowed), Arc::clone(&counters), tool.clone());
            tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    Duration::from_secs(900),
                    serve(stream, &allowed, &counters, &tool),
                )
                .await;
            });
        }
    });
    Ok(())
}

/// Answers one connection: one CONNECT, then a tunnel or a refusal.
async fn serve(
    mut stream: UnixStream,
    allowed: &BTreeSet<String>,
    counters: &EgressCounters,
    tool: &str,
) -> std::io::Result<()> {
    let head = match tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        _ => return respond(&mut stream, "400 Bad Request").await,
    };
    let target = match parse_connect(&head) {
        Some(t) => t,
        None => {
            counters.count_refused(tool);
            tracing::warn!(tool, "endpoint proxy refused a request that is not CONNECT");
            return respond(&mut stream, "405 Method Not Allowed").await;
        }
    };
    if !allowed.contains(&target) {
        counters.count_refused(tool);
        tracing::warn!(
            tool,
            target,
            "endpoint proxy refused an undeclared destination"
        );
        return respond(&mut stream, "403 Forbidden").await;
    }
    let mut upstream =
        match tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(&target)).await {
            Ok(Ok(s)) => s,
            _ => return respond(&mut stream, "502 Bad Gateway").await,
        };
    counters.count_tunnel(tool);
    stream
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await?;
    tokio::io::copy_bidirectional(&mut stream, &mut upstream)
        .await
        .map(|_| ())
}

async fn respond(stream: &mut UnixStream, status: &str) -> std::io::Result<()> {
    let body = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends an HTTP request head.
async fn read_head(stream: &mut UnixStream) -> std::io::Result<Option<String>> {
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte, so that nothing after the head (the tunnelled bytes) is consumed here.
    while head.len() < MAX_HEAD {
        if stream.read(&mut byte).await? == 0 {
            return Ok(None);
        }
        head.push(byte[0]);
        if head.ends_with(b"\r\n\r\n") {
            return Ok(String::from_utf8(head).ok());
        }
    }
    Ok(None)
}

/// `CONNECT host:port HTTP/1.1` → `host:port` (lower-cased).
fn parse_connect(head: &str) -> Option<String> {
    let mut parts = head.lines().next()?.split_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    if method != "CONNECT" || !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return None;
    }
    let (host, port) = target.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    (!host.is_empty()).then(|| target.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connect_with_host_and_port_parses() {
        assert_eq!(
            parse_connect("CONNECT STS.example:443 HTTP/1.1\r\n\r\n").as_deref(),
            Some("sts.example:443")
        );
        assert_eq!(parse_connect("GET http://x/ HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_connect("CONNECT x HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_connect("CONNECT x:99999 HTTP/1.1\r\n\r\n"), None);
    }

    #[tokio::test]
    async fn declared_upstream_is_tunnelled_and_anything_else_refused_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("p.sock");
        let upstream = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = upstream.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                let _ = s.write_all(b"hello").await;
            }
        });
        let counters = Arc::new(EgressCounters::default());
        let stop = CancellationToken::new();
        let upstreams = BTreeMap::from([
            (Endpoint::Sts, addr.clone()),
            (Endpoint::S3, "127.0.0.1:9".into()),
        ]);
        start(
            "t",
            &socket,
            &[Endpoint::Sts],
            &upstreams,
            Arc::clone(&counters),
            stop.clone(),
        )
        .expect("proxy starts");

        let mut ok = UnixStream::connect(&socket).await.expect("connect");
        ok.write_all(format!("CONNECT {addr} HTTP/1.1\r\n\r\n").as_bytes())
            .await
            .expect("write");
        let mut got = vec![0u8; 64];
        let mut text = String::new();
        while !text.contains("hello") {
            let n = ok.read(&mut got).await.expect("read");
            assert!(n > 0, "closed early: {text:?}");
            text.push_str(&String::from_utf8_lossy(&got[..n]));
        }
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");

        for target in ["127.0.0.1:9", "example.com:443"] {
            let mut refused = UnixStream::connect(&socket).await.expect("connect");
            refused
                .write_all(format!("CONNECT {target} HTTP/1.1\r\n\r\n").as_bytes())
                .await
                .expect("write");
            let mut answer = String::new();
            refused.read_to_string(&mut answer).await.expect("read");
            assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
        }
        assert_eq!(counters.refused("t"), 2);
        assert_eq!(counters.tunnels("t"), 1);
        assert_eq!(counters.refused("other"), 0);
        let mut registry = Registry::default();
        counters.register(&mut registry);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        assert!(
            text.contains("sandbox_egress_refused_total{tool=\"t\"} 2"),
            "{text}"
        );
        stop.cancel();
    }
}
