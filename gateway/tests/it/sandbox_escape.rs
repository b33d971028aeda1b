//! The sandbox escape suite. Every attempt is its own test, sent through the real gateway
//! (`switchboard serve --dev`, over HTTP) into the real sandbox, where the test tool
//! `switchboard-escape-probe` performs it and reports what happened. A test fails when the
//! attempt got through, by the probe's own account or by what the host saw (canaries that must
//! stay silent, files that must not appear, processes that must be gone). After each attempt the
//! gateway must still answer `/healthz`.
//!
//! Run by `tests/sandbox/run.sh` (`cargo test --release -p switchboard-gateway --test it --
//! --ignored sandbox_escape::`; plain `cargo test` ignores it); it needs bubblewrap and the
//! tool-runtime binaries of the same profile.

use std::io::{Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::mcp::last_message;
use crate::support::process::killed_with_starting_thread;
use crate::support::sandbox;

/// The gateway and everything planted around it, shared by all tests of this module.
struct Harness {
    url: String,
    token: String,
    /// A value only the host knows: in a planted file and in the gateway's environment.
    secret: String,
    dir: PathBuf,
    gateway_pid: u32,
    tcp_hits: Arc<AtomicUsize>,
    tcp_addr: String,
    udp_hits: Arc<AtomicUsize>,
    udp_addr: String,
    unix_hits: Arc<AtomicUsize>,
    abstract_name: String,
    sts_addr: String,
}

static HARNESS: OnceLock<Harness> = OnceLock::new();

fn harness() -> &'static Harness {
    HARNESS.get_or_init(start)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A TCP listener that counts connections (and greets with `greeting`).
fn tcp_canary(greeting: &'static [u8]) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("tcp canary");
    let addr = listener.local_addr().expect("addr").to_string();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(greeting);
        }
    });
    (addr, hits)
}

fn start() -> Harness {
    let dir = tempfile::Builder::new()
        .prefix("switchboard-escape-")
        .tempdir()
        .expect("tempdir")
        .keep();
    // The sandbox's unprivileged uid must reach the planted setuid binary's folder.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let secret = format!("sb-secret-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(dir.join("host-secret.txt"), &secret).expect("plant secret");

    // A setuid-root copy of `id`, visible in the probe's sandbox as a read-only path.
    let setuid_dir = dir.join("setuid");
    std::fs::create_dir(&setuid_dir).expect("mkdir");
    std::fs::set_permissions(&setuid_dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::copy("/usr/bin/id", setuid_dir.join("id")).expect("copy id");
    std::fs::set_permissions(
        setuid_dir.join("id"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .expect("setuid");

    let (tcp_addr, tcp_hits) = tcp_canary(b"");
    let (sts_addr, _) = tcp_canary(b"canary-hello");
    let udp = UdpSocket::bind("127.0.0.1:0").expect("udp canary");
    let udp_addr = udp.local_addr().expect("addr").to_string();
    let udp_hits = Arc::new(AtomicUsize::new(0));
    {
        let counter = Arc::clone(&udp_hits);
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((_, from)) = udp.recv_from(&mut buf) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = udp.send_to(b"pong", from);
            }
        });
    }
    let unix_hits = Arc::new(AtomicUsize::new(0));
    let abstract_name = format!("switchboard-canary-{}", uuid::Uuid::new_v4().simple());
    {
        use std::os::linux::net::SocketAddrExt;
        let by_path =
            std::os::unix::net::UnixListener::bind(dir.join("host.sock")).expect("unix canary");
        let name = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
            .expect("name");
        let by_name = std::os::unix::net::UnixListener::bind_addr(&name).expect("abstract canary");
        for listener in [by_path, by_name] {
            let counter = Arc::clone(&unix_hits);
            std::thread::spawn(move || {
                for _ in listener.incoming().flatten() {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    }

    let probe = sandbox::tool_bin("switchboard-escape-probe");
    let echo = sandbox::tool_bin("switchboard-tool");
    let catalog = format!(
        r#"version: 1
tools:
  - name: probe
    description: Performs the escape attempt named in its arguments.
    input_schema: {{type: object}}
    backend: local
    local:
      command: ["{probe}"]
      read_only_paths: ["{setuid}"]
    timeout_seconds: 3
    memory_mb: 128
    ephemeral_storage_mb: 16
    allow: {{groups: [dev]}}
  - name: probe-net
    description: The probe, with the sts endpoint declared.
    input_schema: {{type: object}}
    backend: local
    local:
      command: ["{probe}"]
    timeout_seconds: 5
    memory_mb: 128
    ephemeral_storage_mb: 16
    endpoints: [sts]
    allow: {{groups: [dev]}}
  - name: echo
    description: Echo.
    input_schema: {{type: object, properties: {{message: {{type: string}}}}, required: [message]}}
    backend: local
    local:
      command: ["{echo}", "echo"]
    allow: {{groups: [dev]}}
"#,
        probe = probe.display(),
        echo = echo.display(),
        setuid = setuid_dir.display(),
    );
    let catalog_path = dir.join("catalog.yaml");
    std::fs::write(&catalog_path, catalog).expect("write catalog");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let key = dir.join("dev-key.pem");
    let bin = env!("CARGO_BIN_EXE_switchboard");

    // The gateway is started from a thread that never ends and dies with this process.
    let (tx, rx) = std::sync::mpsc::channel();
    {
        let (catalog_path, key, secret, sts_addr) = (
            catalog_path.clone(),
            key.clone(),
            secret.clone(),
            sts_addr.clone(),
        );
        let log = std::fs::File::create(dir.join("gateway.log")).expect("log");
        std::thread::spawn(move || {
            let mut cmd = Command::new(bin);
            cmd.args(["serve", "--dev", "--listen", &format!("127.0.0.1:{port}")])
                .arg("--catalog")
                .arg(&catalog_path)
                .arg("--dev-key")
                .arg(&key)
                .env("SWITCHBOARD_ESCAPE_SECRET", &secret)
                .env("SWITCHBOARD_LOCAL_ENDPOINTS", format!("sts={sts_addr}"))
                // The suite proves the control-group limits: no silent fallback to rlimits.
                .env("SWITCHBOARD_LOCAL_CGROUPS", "required")
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            killed_with_starting_thread(&mut cmd);
            let mut child = cmd.spawn().expect("start the gateway");
            let _ = tx.send(child.id());
            // This thread lives as long as the gateway (its death signal is tied to it).
            let _ = child.wait();
        });
    }
    let gateway_pid = rx.recv().expect("gateway pid");
    let until = Instant::now() + Duration::from_secs(20);
    while !healthy(&url) {
        assert!(
            Instant::now() < until,
            "the gateway did not come up:\n{}",
            gateway_log(&dir)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Only now: `serve --dev` has created the dev key, which `dev-token` must not race.
    let token = Command::new(bin)
        .args([
            "dev-token",
            "--sub",
            "escape-suite",
            "--group",
            "dev",
            "--ttl",
            "1h",
        ])
        .arg("--audience")
        .arg(format!("{url}/mcp"))
        .arg("--dev-key")
        .arg(&key)
        .output()
        .expect("dev-token");
    assert!(
        token.status.success(),
        "dev-token: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8_lossy(&token.stdout).trim().to_owned();
    Harness {
        url,
        token,
        secret,
        dir,
        gateway_pid,
        tcp_hits,
        tcp_addr,
        udp_hits,
        udp_addr,
        unix_hits,
        abstract_name,
        sts_addr,
    }
}

fn gateway_log(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("gateway.log")).unwrap_or_default();
    text.lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n")
}

/// GET `path` with a plain socket (no runtime needed); the whole answer, head and body.
fn plain_get(url: &str, path: &str) -> String {
    let addr = url.trim_start_matches("http://");
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return String::new();
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

/// GET /healthz answers 200.
fn healthy(url: &str) -> bool {
    plain_get(url, "/healthz").starts_with("HTTP/1.1 200")
}

/// The value of one sample on `/metrics`, 0 when absent.
fn metric(url: &str, sample: &str) -> u64 {
    plain_get(url, "/metrics")
        .lines()
        .find_map(|l| l.strip_prefix(sample)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Calls `tool` over MCP (2026-07-28, stateless) and returns the JSON-RPC response.
async fn call(tool: &str, arguments: Value) -> Value {
    let h = harness();
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
    "name": tool, "arguments": arguments,
    "_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "escape-suite", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {},
    }}});
    let response = reqwest::Client::new()
        .post(format!("{}/mcp", h.url))
        .bearer_auth(&h.token)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .header("MCP-Protocol-Version", "2026-07-28")
        .header("Mcp-Method", "tools/call")
        .header("Mcp-Name", tool)
        .body(body.to_string())
        .timeout(Duration::from_secs(60))
        .send()
        .await
        .expect("the gateway answers");
    let text = response.text().await.expect("body");
    last_message(&text)
}

/// Runs one attempt with the probe and fails if it got through; returns the probe's report.
async fn attempt(tool: &str, arguments: Value) -> Value {
    let response = call(tool, arguments.clone()).await;
    let report = response["result"]["structuredContent"].clone();
    assert!(
        report.is_object(),
        "no report from the probe for {arguments}: {response}\n{}",
        gateway_log(&harness().dir)
    );
    assert_eq!(
        report["escaped"],
        json!(false),
        "ESCAPED: {arguments} -> {report}"
    );
    after_each();
    report
}

/// What must hold after every attempt: the gateway still answers.
fn after_each() {
    assert!(
        healthy(&harness().url),
        "the gateway stopped answering /healthz"
    );
}

/// Host processes whose name is `comm`.
fn host_processes_named(comm: &str) -> Vec<String> {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == comm))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

// ---- secrets ---------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn read_a_planted_host_secret_file() {
    let path = harness().dir.join("host-secret.txt");
    attempt("probe", json!({"attempt": "read_file", "path": path})).await;
    attempt(
        "probe",
        json!({"attempt": "read_file", "path": "/etc/shadow"}),
    )
    .await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn find_a_secret_from_the_gateway_environment() {
    let report = attempt(
        "probe",
        json!({"attempt": "find_env", "needle": harness().secret}),
    )
    .await;
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.contains("CARGO"),
        "the gateway's environment leaked: {detail}"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn read_host_proc_1_environ() {
    let report = attempt(
        "probe",
        json!({"attempt": "proc1_environ", "needle": harness().secret}),
    )
    .await;
    let detail = report["detail"].as_str().unwrap_or_default();
    assert!(
        !detail.contains("CARGO"),
        "pid 1 is not the sandbox's own: {detail}"
    );
}

// ---- writes and persistence ------------------------------------------------------------------

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn write_to_the_root() {
    attempt(
        "probe",
        json!({"attempt": "write_file", "path": "/escape-marker"}),
    )
    .await;
    assert!(!Path::new("/escape-marker").exists());
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn write_to_etc() {
    attempt(
        "probe",
        json!({"attempt": "write_file", "path": "/etc/escape-marker"}),
    )
    .await;
    assert!(!Path::new("/etc/escape-marker").exists());
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn write_to_the_tools_own_directory() {
    attempt(
        "probe",
        json!({"attempt": "write_file", "path": "$OWN_DIR/escape-marker"}),
    )
    .await;
    let own_dir = sandbox::tool_bin("switchboard-escape-probe");
    let own_dir = own_dir.parent().expect("folder");
    assert!(!own_dir.join("escape-marker").exists());
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_marker_written_in_call_n_is_absent_in_call_n_plus_1() {
    let tag = format!("marker-{}", uuid::Uuid::new_v4().simple());
    let written = attempt("probe", json!({"attempt": "persist_write", "tag": tag})).await;
    assert!(
        written["written"].as_u64().unwrap_or(0) >= 1,
        "the scratch folder was not writable: {written}"
    );
    attempt("probe", json!({"attempt": "persist_check", "tag": tag})).await;
}

// ---- network ---------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn tcp_to_a_canary_on_host_loopback() {
    let h = harness();
    let before = h.tcp_hits.load(Ordering::SeqCst);
    attempt(
        "probe",
        json!({"attempt": "tcp_connect", "addr": h.tcp_addr}),
    )
    .await;
    assert_eq!(
        h.tcp_hits.load(Ordering::SeqCst),
        before,
        "the canary was reached"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn udp_to_a_canary_on_host_loopback() {
    let h = harness();
    attempt("probe", json!({"attempt": "udp_send", "addr": h.udp_addr})).await;
    assert_eq!(
        h.udp_hits.load(Ordering::SeqCst),
        0,
        "the UDP canary got a datagram"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn dns_resolution_and_queries() {
    let h = harness();
    attempt(
        "probe",
        json!({"attempt": "dns", "name": "example.com", "server": h.udp_addr}),
    )
    .await;
    attempt(
        "probe",
        json!({"attempt": "dns", "name": "localhost.localdomain", "server": "127.0.0.53:53"}),
    )
    .await;
    assert_eq!(
        h.udp_hits.load(Ordering::SeqCst),
        0,
        "the DNS canary got a query"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_raw_icmp_socket() {
    attempt("probe", json!({"attempt": "raw_icmp"})).await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn connect_to_a_host_unix_socket() {
    let h = harness();
    let path = h.dir.join("host.sock");
    attempt(
        "probe",
        json!({"attempt": "unix_connect", "path": path, "abstract": h.abstract_name}),
    )
    .await;
    assert_eq!(
        h.unix_hits.load(Ordering::SeqCst),
        0,
        "a host Unix socket was reached"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn an_endpoint_tool_reaches_only_its_declared_endpoint() {
    let h = harness();
    // The declared endpoint works (so the refusals below are the proxy's, not a broken proxy).
    let report = call(
        "probe-net",
        json!({"attempt": "proxy_connect", "target": h.sts_addr}),
    )
    .await;
    let report = &report["result"]["structuredContent"];
    assert_eq!(
        report["canary"],
        json!(true),
        "the declared endpoint was not reachable: {report}"
    );
    let refused = r#"switchboard_sandbox_egress_refused_total{tool="probe-net"} "#;
    let refused_before = metric(&h.url, refused);
    let targets = [
        h.tcp_addr.as_str(),
        "s3.us-east-1.amazonaws.com:443",
        "169.254.169.254:80",
    ];
    for target in targets {
        let report = attempt(
            "probe-net",
            json!({"attempt": "proxy_connect", "target": target}),
        )
        .await;
        assert!(
            report["status"]
                .as_str()
                .unwrap_or_default()
                .contains("403"),
            "{report}"
        );
    }
    // Every refusal is counted on /metrics, under the tool's name.
    assert!(
        metric(&h.url, refused) >= refused_before + targets.len() as u64,
        "refusals not counted on /metrics: {}",
        plain_get(&h.url, "/metrics")
    );
    // Around the proxy: no route at all.
    attempt(
        "probe-net",
        json!({"attempt": "tcp_connect", "addr": h.sts_addr}),
    )
    .await;
    attempt(
        "probe-net",
        json!({"attempt": "tcp_connect", "addr": h.tcp_addr}),
    )
    .await;
    assert_eq!(
        h.tcp_hits.load(Ordering::SeqCst),
        0,
        "the canary was reached"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_tool_without_endpoints_has_no_proxy() {
    let report = call(
        "probe",
        json!({"attempt": "proxy_connect", "target": harness().sts_addr}),
    )
    .await;
    let report = &report["result"]["structuredContent"];
    assert_eq!(report["escaped"], json!(false), "{report}");
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("no endpoint socket"),
        "{report}"
    );
    after_each();
}

// ---- kernel interfaces -----------------------------------------------------------------------

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn ptrace() {
    attempt("probe", json!({"attempt": "ptrace"})).await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn mount() {
    attempt("probe", json!({"attempt": "mount"})).await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn unshare_a_new_user_namespace() {
    attempt("probe", json!({"attempt": "unshare_user"})).await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn see_or_signal_host_processes() {
    let h = harness();
    let report = attempt(
        "probe",
        json!({"attempt": "host_processes", "needle": "--dev-key", "pid": h.gateway_pid}),
    )
    .await;
    assert!(report["visible"].as_u64().unwrap_or(99) <= 2, "{report}");
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn tiocsti_terminal_injection() {
    attempt("probe", json!({"attempt": "tiocsti"})).await;
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_setuid_binary() {
    let path = harness().dir.join("setuid").join("id");
    let report = attempt("probe", json!({"attempt": "setuid_exec", "path": path})).await;
    assert!(
        report["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("printed"),
        "{report}"
    );
}

macro_rules! blocked_syscalls {
    ($($test:ident => $name:literal),* $(,)?) => {$(
        #[tokio::test]
        #[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
        async fn $test() {
            let report = attempt("probe", json!({"attempt": "syscall", "name": $name})).await;
            // EPERM is the filter's answer (some of these would fail without it too, with
            // another errno or for want of a capability; most would succeed).
            assert_eq!(report["errno"], json!(libc::EPERM), "{report}");
        }
    )*};
}

blocked_syscalls! {
    syscall_bpf => "bpf",
    syscall_perf_event_open => "perf_event_open",
    syscall_io_uring_setup => "io_uring_setup",
    syscall_keyctl => "keyctl",
    syscall_add_key => "add_key",
    syscall_setns => "setns",
    syscall_chroot => "chroot",
    syscall_pivot_root => "pivot_root",
    syscall_process_vm_readv => "process_vm_readv",
    syscall_userfaultfd => "userfaultfd",
    syscall_fsopen => "fsopen",
    syscall_open_tree => "open_tree",
    syscall_x32_abi => "x32_getpid",
}

// A network namespace isolates only some socket families; the filter refuses every other one,
// for socket() and socketpair() alike. EPERM is the filter's answer: without it these fail with
// another errno (no such module, no capability) or, like vsock on a virtual machine, open.
macro_rules! refused_socket_families {
    ($($test:ident => $family:literal),* $(,)?) => {$(
        #[tokio::test]
        #[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
        async fn $test() {
            let report = attempt("probe", json!({"attempt": "socket_family", "family": $family})).await;
            assert_eq!(report["socket_errno"], json!(libc::EPERM), "{report}");
            assert_eq!(report["socketpair_errno"], json!(libc::EPERM), "{report}");
        }
    )*};
}

refused_socket_families! {
    socket_af_vsock => "vsock",
    socket_af_alg => "alg",
    socket_af_key => "key",
    socket_af_packet => "packet",
    socket_af_bluetooth => "bluetooth",
    socket_af_tipc => "tipc",
    socket_af_rds => "rds",
    socket_af_can => "can",
    socket_af_kcm => "kcm",
    socket_af_qipcrtr => "qipcrtr",
    socket_af_smc => "smc",
    socket_af_xdp => "xdp",
    socket_af_mctp => "mctp",
    socket_af_llc => "llc",
    socket_af_appletalk => "appletalk",
    socket_af_ax25 => "ax25",
    socket_af_x25 => "x25",
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn the_socket_families_tools_use_still_open() {
    for family in ["unix", "inet", "inet6", "netlink"] {
        let response = call(
            "probe",
            json!({"attempt": "socket_family", "family": family}),
        )
        .await;
        let report = &response["result"]["structuredContent"];
        for key in ["socket_errno", "socketpair_errno"] {
            assert_ne!(report[key], json!(libc::EPERM), "{family}: {report}");
        }
        if matches!(family, "unix" | "inet") {
            assert_eq!(report["socket_errno"], json!(0), "{family}: {report}");
        }
    }
    let response = call(
        "probe",
        json!({"attempt": "socket_family", "family": "unix"}),
    )
    .await;
    assert_eq!(
        response["result"]["structuredContent"]["socketpair_errno"],
        json!(0),
        "{response}"
    );
}

// ---- resources -------------------------------------------------------------------------------

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_fork_bomb() {
    let report = attempt("probe", json!({"attempt": "fork_bomb", "count": 5000})).await;
    assert!(
        report["forked"].as_u64().unwrap_or(u64::MAX) < 100,
        "{report}"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_memory_bomb() {
    let report = attempt("probe", json!({"attempt": "memory_bomb", "mb": 1024})).await;
    assert!(
        report["mib"].as_u64().unwrap_or(u64::MAX) <= 128,
        "{report}"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_memory_bomb_spread_over_many_processes() {
    // 8 children of 64 MiB each: every one is within the per-process limit (128 MiB); the
    // sandbox's control group holds all of them together to the tool's memory_mb.
    let arguments = json!({"attempt": "memory_bomb_children", "children": 8, "mb": 64});
    let response = call("probe", arguments.clone()).await;
    let report = &response["result"]["structuredContent"];
    if report.is_object() {
        assert_eq!(report["escaped"], json!(false), "ESCAPED: {report}");
        assert!(
            report["mib"].as_u64().unwrap_or(u64::MAX) <= 128,
            "{report}"
        );
    } else {
        // The kernel may pick the probe itself: then the call fails, saying why.
        let text = response.to_string();
        assert!(text.contains("memory"), "{arguments}: {text}");
    }
    after_each();
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn filling_the_scratch_space() {
    let report = attempt("probe", json!({"attempt": "fill_scratch", "mb": 64})).await;
    assert!(report["mib"].as_u64().unwrap_or(u64::MAX) <= 16, "{report}");
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn spinning_past_the_deadline() {
    let started = Instant::now();
    let response = call("probe", json!({"attempt": "spin"})).await;
    let elapsed = started.elapsed();
    let text = response.to_string();
    assert!(
        text.contains("deadline"),
        "not stopped for its deadline: {text}"
    );
    assert_ne!(response["result"]["isError"], json!(false), "{text}");
    assert!(
        elapsed < Duration::from_secs(6),
        "stopped only after {elapsed:?}"
    );
    after_each();
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_daemonized_child_does_not_outlive_the_call() {
    let tag = format!("sbd{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
    attempt("probe", json!({"attempt": "daemonize", "tag": tag})).await;
    assert_eq!(
        host_processes_named(&tag),
        Vec::<String>::new(),
        "the daemon outlived the call"
    );
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn a_gigabyte_on_stdout() {
    let started = Instant::now();
    let response = call("probe", json!({"attempt": "stdout_flood", "mb": 1024})).await;
    let text = response.to_string();
    assert!(text.contains("stdout"), "not cut off: {text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    after_each();
}

#[tokio::test]
#[ignore = "the escape suite: tests/sandbox/run.sh runs it"]
async fn echo_still_works_beside_the_attempts() {
    let response = call("echo", json!({"message": "still here"})).await;
    assert_eq!(
        response["result"]["structuredContent"],
        json!({"message": "still here"}),
        "{response}"
    );
    after_each();
}
