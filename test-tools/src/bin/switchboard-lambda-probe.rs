//! `switchboard-lambda-probe`: a test tool in Lambda mode (zipped as `bootstrap`). The tool name
//! in each invocation picks what it does; each reports what its execution environment allowed
//! or kept. Used only by the LocalStack Lambda suite.
//!
//! - `echo`: the reference echo tool;
//! - `fail`: a tool error result (`isError: true`);
//! - `sleep` and `long-sleep` `{seconds}`: sleeps, then answers (two tools, for two timeouts);
//! - `connect` `{host, port}`: tries a TCP connection; answers whether it worked and which
//!   network interfaces the environment has;
//! - `state` `{env?}`: this process's instance id and call count (what stays warm), whether the
//!   marker file exists, which other processes run, and the variable named by `env`;
//! - `litter`: leaves a marker file in `/tmp` and a stray process behind;
//! - `log` `{token}`: writes the token to stdout and stderr;
//! - `alloc` `{mb}`: tries to allocate and touch that much memory;
//! - `alloc-together` `{processes, mb}`: starts that many copies of itself that each hold `mb` MiB
//!   at once; answers how many exited normally and how many were killed (SIGKILL);
//! - `fill-tmp` `{mb}`: writes that much into `/tmp` until it fails;
//! - `socket` `{family}`: tries `socket()` and `socketpair()` of that family (`vsock`, `alg`,
//!   `unix`, ...); answers the errno of each, 0 for one that opened.
//!
//! With `PROBE_FAIL_INIT=1` in its environment, the init fails.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use switchboard_tool_runtime::lambda::run_lambda_with_init;
use switchboard_tool_runtime::{Invocation, ToolOutput, tools};

#[path = "probe/sockets.rs"]
mod sockets;

const MARKER: &str = "switchboard-probe-marker";

#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("PROBE_FAIL_INIT is set: the probe refuses to start")]
    InitRefused,
    #[error("unknown probe tool {0:?}")]
    UnknownTool(String),
    #[error(transparent)]
    Echo(#[from] tools::echo::EchoError),
}

struct Probe {
    instance: String,
    calls: AtomicU64,
}

fn main() -> ExitCode {
    switchboard_test_tools::mark();
    // A child of `alloc-together`: holds that many MiB (every page touched) for a moment, then
    // exits 0; 3 when it cannot allocate them.
    if let Some(mb) = std::env::var(ALLOC_CHILD)
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let mut block: Vec<u8> = Vec::new();
        if block.try_reserve_exact(mb << 20).is_err() {
            return ExitCode::from(3);
        }
        block.resize(mb << 20, 1);
        std::hint::black_box(&mut block);
        std::thread::sleep(Duration::from_millis(1500));
        drop(std::hint::black_box(block));
        return ExitCode::SUCCESS;
    }
    run_lambda_with_init(|| {
        if std::env::var("PROBE_FAIL_INIT").is_ok_and(|v| v == "1") {
            return Err(ProbeError::InitRefused);
        }
        let instance = std::fs::read_to_string("/proc/sys/kernel/random/uuid")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| format!("pid-{}", std::process::id()));
        let probe = Probe {
            instance,
            calls: AtomicU64::new(0),
        };
        Ok(move |invocation: Invocation| probe.handle(invocation))
    })
}

fn arg_u64(invocation: &Invocation, name: &str, default: u64) -> u64 {
    invocation
        .arguments
        .get(name)
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

fn arg_str<'a>(invocation: &'a Invocation, name: &str) -> Option<&'a str> {
    invocation.arguments.get(name).and_then(Value::as_str)
}

impl Probe {
    fn handle(&self, invocation: Invocation) -> Result<ToolOutput, ProbeError> {
        let calls = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        let value = match invocation.tool.as_str() {
            "echo" => return Ok(tools::echo::echo(invocation)?),
            "fail" => {
                return Ok(ToolOutput::error(
                    arg_str(&invocation, "message").unwrap_or("the probe failed on purpose"),
                ));
            }
            "sleep" | "long-sleep" => {
                let seconds = arg_u64(&invocation, "seconds", 1);
                std::thread::sleep(Duration::from_secs(seconds));
                json!({"slept": seconds, "instance": self.instance})
            }
            "connect" => {
                let host = arg_str(&invocation, "host").unwrap_or("127.0.0.1");
                let port = u16::try_from(arg_u64(&invocation, "port", 0)).unwrap_or_default();
                connect(host, port)
            }
            "state" => self.state(&invocation, calls),
            "litter" => litter(),
            "log" => {
                let token = arg_str(&invocation, "token").unwrap_or("no-token");
                let _ = writeln!(std::io::stdout(), "probe stdout {token}");
                let _ = writeln!(std::io::stderr(), "probe stderr {token}");
                json!({"logged": token})
            }
            "alloc" => alloc(arg_u64(&invocation, "mb", 1)),
            "alloc-together" => alloc_together(
                arg_u64(&invocation, "processes", 1),
                arg_u64(&invocation, "mb", 1),
            ),
            "fill-tmp" => fill_tmp(arg_u64(&invocation, "mb", 1)),
            "socket" => {
                let family = arg_str(&invocation, "family").unwrap_or("");
                match sockets::try_family(family) {
                    Some((single, pair)) => {
                        json!({"family": family, "socket_errno": single, "socketpair_errno": pair})
                    }
                    None => json!({"family": family, "unknown": true}),
                }
            }
            other => return Err(ProbeError::UnknownTool(other.to_owned())),
        };
        Ok(ToolOutput::structured(value))
    }

    fn state(&self, invocation: &Invocation, calls: u64) -> Value {
        let me = std::process::id();
        let parent = std::os::unix::process::parent_id();
        let others: Vec<String> = std::fs::read_dir("/proc")
            .map(|dir| {
                dir.flatten()
                    .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                    .filter(|pid| *pid != me && *pid != parent && *pid != 1)
                    .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).ok())
                    .map(|comm| comm.trim().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        let variable = arg_str(invocation, "env").map(|name| std::env::var(name).ok());
        json!({
            "instance": self.instance,
            "calls": calls,
            "pid": me,
            "marker": std::env::temp_dir().join(MARKER).exists(),
            "other_processes": others,
            "variable": variable,
            "runtime_api": std::env::var("AWS_LAMBDA_RUNTIME_API").ok(),
            "localstack_endpoint_variable": std::env::var("LOCALSTACK_RUNTIME_ENDPOINT").is_ok(),
            "tmp_writable": std::fs::write(std::env::temp_dir().join("probe-w"), b"x").is_ok(),
            "task_writable": std::fs::write("/var/task/probe-w", b"x").is_ok(),
        })
    }
}

fn connect(host: &str, port: u16) -> Value {
    let interfaces: Vec<String> = std::fs::read_to_string("/proc/net/dev")
        .map(|s| {
            s.lines()
                .skip(2)
                .filter_map(|l| l.split(':').next())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let outcome = format!("{host}:{port}")
        .parse::<std::net::SocketAddr>()
        .map_err(|e| e.to_string())
        .and_then(|addr| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
                .map_err(|e| e.to_string())
        });
    json!({
        "connected": outcome.is_ok(),
        "error": outcome.err(),
        "interfaces": interfaces,
    })
}

fn litter() -> Value {
    let marker = std::env::temp_dir().join(MARKER);
    let wrote = std::fs::write(&marker, b"left by an earlier call").is_ok();
    // A direct child, and a daemon that double-forks away from this process.
    let child = std::process::Command::new("sleep")
        .arg("300")
        .spawn()
        .is_ok();
    let daemon = std::process::Command::new("sh")
        .args(["-c", "setsid sleep 301 >/dev/null 2>&1 &"])
        .status()
        .is_ok_and(|s| s.success());
    json!({"marker": wrote, "child": child, "daemon": daemon})
}

fn alloc(mb: u64) -> Value {
    let bytes = usize::try_from(mb).unwrap_or(usize::MAX) << 20;
    let mut block: Vec<u8> = Vec::new();
    match block.try_reserve_exact(bytes) {
        Ok(()) => {
            // Touch every page so the memory is really used.
            block.resize(bytes, 1);
            json!({"allocated": true, "mb": mb, "sum": block.iter().step_by(4096).map(|b| u64::from(*b)).sum::<u64>()})
        }
        Err(e) => json!({"allocated": false, "mb": mb, "error": e.to_string()}),
    }
}

/// The variable that makes this binary an `alloc-together` child.
const ALLOC_CHILD: &str = "PROBE_ALLOC_CHILD_MB";

/// Starts `processes` copies of this binary that each hold `mb` MiB at the same time (each within
/// the per-process limit), waits for them, and says how each ended: a memory limit that holds for
/// the sandbox's processes together kills some of them (SIGKILL), a per-process one none.
fn alloc_together(processes: u64, mb: u64) -> Value {
    use std::os::unix::process::ExitStatusExt;
    let mut children = Vec::new();
    for _ in 0..processes {
        match std::process::Command::new("/proc/self/exe")
            .env(ALLOC_CHILD, mb.to_string())
            .spawn()
        {
            Ok(child) => children.push(child),
            Err(e) => return json!({"started": children.len(), "error": e.to_string()}),
        }
    }
    let mut exited_ok = 0;
    let mut killed = 0;
    let mut other = Vec::new();
    for mut child in children {
        match child.wait() {
            Ok(status) if status.success() => exited_ok += 1,
            Ok(status) if status.signal() == Some(libc::SIGKILL) => killed += 1,
            Ok(status) => other.push(status.to_string()),
            Err(e) => other.push(e.to_string()),
        }
    }
    json!({"processes": processes, "mb": mb, "exited_ok": exited_ok, "killed": killed, "other": other})
}

fn fill_tmp(mb: u64) -> Value {
    let chunk = vec![7u8; 1 << 20];
    let mut written = 0u64;
    let mut error = None;
    let path = std::env::temp_dir().join("probe-fill");
    match std::fs::File::create(&path) {
        Ok(mut file) => {
            while written < mb {
                if let Err(e) = file.write_all(&chunk) {
                    error = Some(e.to_string());
                    break;
                }
                written += 1;
            }
            if error.is_none()
                && let Err(e) = file.sync_all()
            {
                error = Some(e.to_string());
            }
        }
        Err(e) => error = Some(e.to_string()),
    }
    json!({"written_mb": written, "error": error})
}
