//! Loopback forwarders to the endpoint proxy, for programs a tool runs that speak TCP only
//! (terraform and its providers, written in Go, whose HTTP clients know proxies over TCP but
//! not over a Unix socket).
//!
//! A local sandbox has a network namespace of its own with a loopback interface and nothing
//! else; the only way out is the endpoint proxy's Unix socket. Inside the sandbox, the tool
//! starts:
//!
//! - **a relay** on `127.0.0.1:<ephemeral port>`: each connection is joined, byte for byte, to
//!   a new connection to the proxy's socket. A program given `HTTPS_PROXY=http://127.0.0.1:<port>`
//!   speaks `CONNECT host:443` to the proxy itself, which opens the tunnel or refuses it (403,
//!   counted on the gateway's `/metrics`);
//! - **a pinned forwarder for each loopback upstream** (an emulator such as
//!   `127.0.0.1:4566`): a listener on that same address inside the sandbox whose connections
//!   each go through one `CONNECT` tunnel to it. HTTP clients never send loopback destinations
//!   through a proxy, so an endpoint URL such as `http://127.0.0.1:4566` reaches the emulator
//!   this way, and only because that upstream belongs to a declared endpoint.
//!
//! Nothing here widens what the sandbox reaches: every byte still passes the proxy, which alone
//! decides. Threads, not async: a tool runs a handful of connections.

use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Largest `CONNECT` answer head read from the proxy.
const MAX_HEAD: usize = 8 * 1024;

/// The forwarders of one tool run; they stop with the process.
#[derive(Debug)]
pub struct Forwarders {
    /// The relay's address: `http://<relay>` is the proxy URL for the programs the tool runs.
    pub relay: SocketAddr,
    /// The loopback upstreams that now answer inside the sandbox.
    pub pinned: Vec<SocketAddr>,
}

impl Forwarders {
    /// Starts the relay, and a pinned forwarder for each upstream (`host:port`) that is a
    /// loopback address; other upstreams are reached through the relay.
    pub fn start(socket: &Path, upstreams: &[String]) -> io::Result<Self> {
        let relay_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let relay = relay_listener.local_addr()?;
        let socket = socket.to_path_buf();
        spawn_listener(relay_listener, socket.clone(), None);
        let mut pinned = Vec::new();
        for upstream in upstreams {
            let Some(addr) = loopback(upstream) else {
                continue;
            };
            if pinned.contains(&addr) {
                continue;
            }
            let listener = TcpListener::bind(addr).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} in the sandbox: {e}"),
                )
            })?;
            spawn_listener(listener, socket.clone(), Some(upstream.clone()));
            pinned.push(addr);
        }
        Ok(Self { relay, pinned })
    }
}

/// `host:port` as a loopback socket address (`localhost` counts as `127.0.0.1`).
fn loopback(upstream: &str) -> Option<SocketAddr> {
    let (host, port) = upstream.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse().ok()?
    };
    ip.is_loopback().then_some(SocketAddr::new(ip, port))
}

fn spawn_listener(listener: TcpListener, socket: PathBuf, target: Option<String>) {
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let socket = socket.clone();
            let target = target.clone();
            std::thread::spawn(move || {
                // A failed connection is the client's to see (it is closed); the proxy logs and
                // counts its own refusals.
                let _ = serve(client, &socket, target.as_deref());
            });
        }
    });
}

/// Joins `client` to a new connection to the proxy: as is (the relay), or through a `CONNECT`
/// tunnel to `target` first (a pinned forwarder).
fn serve(client: TcpStream, socket: &Path, target: Option<&str>) -> io::Result<()> {
    let mut proxy = UnixStream::connect(socket)?;
    if let Some(target) = target {
        proxy
            .write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())?;
        let head = read_head(&mut proxy)?;
        let status = head.lines().next().unwrap_or_default();
        if status.split_whitespace().nth(1) != Some("200") {
            let _ = client.shutdown(Shutdown::Both);
            return Err(io::Error::other(format!(
                "the endpoint proxy answered {status:?}"
            )));
        }
    }
    let (mut client_read, mut client_write) = (client.try_clone()?, client);
    let (mut proxy_read, mut proxy_write) = (proxy.try_clone()?, proxy);
    let upstream = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut proxy_write);
        let _ = proxy_write.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut proxy_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = upstream.join();
    Ok(())
}

/// Reads the proxy's answer head, up to and including the blank line, byte by byte (what follows
/// belongs to the tunnel).
fn read_head(proxy: &mut UnixStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(io::Error::other(
                "the endpoint proxy's answer head is too long",
            ));
        }
        if proxy.read(&mut byte)? == 0 {
            return Err(io::Error::other("the endpoint proxy closed the connection"));
        }
        head.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    #[test]
    fn only_loopback_upstreams_are_pinned() {
        assert_eq!(
            loopback("127.0.0.1:4566"),
            Some("127.0.0.1:4566".parse().expect("works"))
        );
        assert_eq!(
            loopback("localhost:4566"),
            Some("127.0.0.1:4566".parse().expect("works"))
        );
        assert_eq!(
            loopback("[::1]:4566"),
            Some("[::1]:4566".parse().expect("works"))
        );
        assert_eq!(loopback("sts.us-east-1.amazonaws.com:443"), None);
        assert_eq!(loopback("10.0.0.1:443"), None);
        assert_eq!(loopback("127.0.0.1"), None);
    }

    /// A fake proxy: answers each CONNECT with `answer`, then echoes what follows.
    fn fake_proxy(dir: &Path, answer: &'static str) -> PathBuf {
        let path = dir.join("proxy.sock");
        let listener = UnixListener::bind(&path).expect("works");
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.expect("works");
                std::thread::spawn(move || {
                    let head = read_head(&mut stream).expect("works");
                    assert!(head.starts_with("CONNECT "), "{head}");
                    stream.write_all(answer.as_bytes()).expect("works");
                    let mut rest = stream.try_clone().expect("works");
                    let _ = io::copy(&mut rest, &mut stream);
                });
            }
        });
        path
    }

    #[test]
    fn the_relay_passes_bytes_as_they_are_and_pinned_forwarders_tunnel_first() {
        let dir = tempfile::tempdir().expect("works");
        let socket = fake_proxy(dir.path(), "HTTP/1.1 200 Connection established\r\n\r\n");
        // A loopback port that is free now, for the pinned forwarder.
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("works")
            .local_addr()
            .expect("works")
            .port();
        let upstream = format!("127.0.0.1:{port}");
        let f = Forwarders::start(&socket, &[upstream.clone(), "sts.example:443".into()])
            .expect("works");
        assert_eq!(f.pinned, vec![upstream.parse().expect("works")]);

        let mut relayed = TcpStream::connect(f.relay).expect("works");
        relayed
            .write_all(b"CONNECT sts.example:443 HTTP/1.1\r\n\r\nping")
            .expect("works");
        let mut got = [0u8; 43];
        relayed.read_exact(&mut got).expect("works");
        assert_eq!(&got, b"HTTP/1.1 200 Connection established\r\n\r\nping");

        let mut pinned = TcpStream::connect(f.pinned[0]).expect("works");
        pinned.write_all(b"hello").expect("works");
        let mut got = [0u8; 5];
        pinned.read_exact(&mut got).expect("works");
        assert_eq!(&got, b"hello");
    }

    #[test]
    fn a_refused_tunnel_closes_the_connection() {
        let dir = tempfile::tempdir().expect("works");
        let socket = fake_proxy(dir.path(), "HTTP/1.1 403 Forbidden\r\n\r\n");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("works")
            .local_addr()
            .expect("works")
            .port();
        let f = Forwarders::start(&socket, &[format!("127.0.0.1:{port}")]).expect("works");
        let mut pinned = TcpStream::connect(f.pinned[0]).expect("works");
        let _ = pinned.write_all(b"hello");
        let mut got = Vec::new();
        let read = pinned.read_to_end(&mut got);
        assert!(read.is_err() || got.is_empty(), "read {got:?}");
    }
}
