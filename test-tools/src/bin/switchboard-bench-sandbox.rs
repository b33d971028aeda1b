//! `switchboard-bench-sandbox`: what a local sandbox costs, phase by phase, for scripts/bench.
//!
//!     switchboard-bench-sandbox CATALOG TOOL RUNS
//!
//! Plans TOOL of CATALOG as the gateway's local backend does (`ToolPlan`, the same bubblewrap
//! arguments, seccomp program, limits, control group and uid lease) and starts it RUNS times in
//! each of the variants below, one after the other, each run feeding the tool one invocation on
//! stdin and reading its result from stdout, without the gateway's HTTP path. Each variant adds
//! one phase to the one before, so the difference between two rows is what that phase costs:
//!
//! 1. `exec`: the tool alone, spawned directly (posix_spawn): the fork+exec baseline.
//! 2. `bwrap`: through bubblewrap with no namespace but its mount namespace (`--bind / /`).
//! 3. `namespaces but network`: user, IPC, pid (the tool as pid 1), UTS and cgroup namespaces.
//! 4. `network namespace`: and a network namespace.
//! 5. `mounts`: the tool's whole file-system layout (the plan's arguments: a new root, `/usr`
//!    and the executable read-only, `/proc`, a minimal `/dev`, the scratch tmpfs, the root
//!    remounted read-only).
//! 6. `seccomp, limits, environment`: the shared spawn of the sandbox crate: the seccomp program
//!    through a pipe, rlimits and priority before exec (so a fork, not posix_spawn), a cleared
//!    environment with the invocation's variables.
//! 7. `control group`: a control group of its own, made before, entered before exec, emptied
//!    and removed after (skipped without control groups).
//! 8. `uid lease`: a host uid of its own (as root): the whole sandbox of a local call.
//!
//! Prints one JSON object per variant on stdout: `variant`, `runs`, `wall_p50_ms`,
//! `wall_p99_ms`, `cpu_ms` (this process and its reaped descendants, per run: getrusage),
//! `machine_cpu_ms` (every core's busy time while the variant ran, per run, so that what the
//! kernel does in its own workers after a sandbox exits, such as tearing down a network
//! namespace, is counted), and for variants 7 and 8 `cgroup_make_ms`, `cgroup_remove_ms` (p50) and
//! `cgroup_remove_p99_ms`.
//! Variants run in interleaved rounds so that a noisy moment of the machine falls on all.
#![allow(clippy::print_stderr, clippy::print_stdout)]

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use switchboard_gateway::backend::local::plan::{SCRATCH, ToolPlan};
use switchboard_gateway::backend::local::stage as gateway_stage;
use switchboard_sandbox::cgroup::Cgroups;
use switchboard_sandbox::identity::{UidPool, is_root};
use switchboard_sandbox::spawn::Spawn;
use switchboard_sandbox::{Rlimits, seccomp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const VARIANTS: [&str; 8] = [
    "exec",
    "bwrap",
    "namespaces but network",
    "network namespace",
    "mounts",
    "seccomp, limits, environment",
    "control group",
    "uid lease",
];
/// Runs of one variant in a row, before the next variant's.
const BATCH: usize = 10;

struct Bench {
    plan: ToolPlan,
    args: Vec<OsString>,
    bwrap: PathBuf,
    seccomp: Vec<u8>,
    cgroups: Option<Cgroups>,
    uids: Option<std::sync::Arc<UidPool>>,
    stdin: Vec<u8>,
    env: Vec<(String, String)>,
}

#[derive(Default)]
struct Tally {
    wall_ms: Vec<f64>,
    spawn_ms: Vec<f64>,
    cpu_ms: f64,
    machine_ms: f64,
    cgroup_make_ms: Vec<f64>,
    cgroup_remove_ms: Vec<f64>,
}

fn main() -> ExitCode {
    switchboard_test_tools::mark();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [catalog, tool, runs] = args.as_slice() else {
        eprintln!("usage: switchboard-bench-sandbox CATALOG TOOL RUNS");
        return ExitCode::from(2);
    };
    let Ok(runs) = runs.parse::<usize>() else {
        eprintln!("switchboard-bench-sandbox: RUNS must be a number, not {runs:?}");
        return ExitCode::from(2);
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard-bench-sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(Path::new(catalog), tool, runs.max(BATCH))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard-bench-sandbox: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(catalog_path: &Path, tool_name: &str, runs: usize) -> Result<(), String> {
    let catalog = switchboard_gateway::catalog::load(catalog_path).map_err(|e| e.to_string())?;
    let tool = catalog
        .tools
        .iter()
        .find(|t| t.name == tool_name)
        .ok_or_else(|| format!("no tool {tool_name:?} in the catalog"))?;
    let dir = catalog_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let root = is_root();
    let stage = if root {
        Some(gateway_stage::open(&std::env::temp_dir()).map_err(|e| e.to_string())?)
    } else {
        None
    };
    let plan = ToolPlan::new(tool, dir, 10_000, root, stage.as_ref()).map_err(|e| e.to_string())?;
    let args = plan.sandbox_args().for_call(None);
    let bwrap = switchboard_sandbox::paths::find_executable(
        "bwrap",
        &std::env::var_os("PATH").unwrap_or_default(),
    )
    .ok_or("bwrap is not on PATH")?;
    let invocation = serde_json::json!({
        "tool": tool_name,
        "invocationId": "bench",
        "arguments": {"message": "hello from the benchmark"},
        "deadlineUnixMs": 4_102_444_800_000u64,
    });
    let env = vec![
        ("PATH".to_owned(), "/usr/local/bin:/usr/bin:/bin".to_owned()),
        ("HOME".to_owned(), SCRATCH.to_owned()),
        ("TMPDIR".to_owned(), SCRATCH.to_owned()),
        ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ("SWITCHBOARD_TOOL".to_owned(), tool_name.to_owned()),
        ("SWITCHBOARD_INVOCATION_ID".to_owned(), "bench".to_owned()),
    ];
    let bench = Bench {
        plan,
        args,
        bwrap,
        seccomp: seccomp::program_bytes().map_err(|e| e.to_string())?,
        cgroups: Cgroups::new().ok(),
        uids: if root {
            Some(
                UidPool::new(1_750_000_000, 64, Path::new("/run/switchboard/uids"))
                    .map_err(|e| e.to_string())?,
            )
        } else {
            None
        },
        stdin: serde_json::to_vec(&invocation).map_err(|e| e.to_string())?,
        env,
    };
    // Every variant must give the tool's answer before anything is measured.
    for (v, name) in VARIANTS.iter().enumerate() {
        let mut t = Tally::default();
        let out = bench.once(v, &mut t).await?;
        if !out.contains("hello from the benchmark") {
            return Err(format!("variant {name:?} answered {out:?}"));
        }
    }
    let mut tallies: Vec<Tally> = (0..VARIANTS.len()).map(|_| Tally::default()).collect();
    let rounds = runs.div_ceil(BATCH);
    for _ in 0..rounds {
        for (v, tally) in tallies.iter_mut().enumerate() {
            let machine0 = machine_busy_ms();
            let cpu0 = own_cpu_ms();
            for _ in 0..BATCH {
                bench.once(v, tally).await?;
            }
            // Kernel work a batch left behind (namespaces torn down by workers) lands here.
            tokio::time::sleep(Duration::from_millis(50)).await;
            tally.cpu_ms += own_cpu_ms() - cpu0;
            tally.machine_ms += machine_busy_ms() - machine0;
        }
    }
    for (v, tally) in tallies.iter_mut().enumerate() {
        let n = tally.wall_ms.len() as f64;
        let mut line = serde_json::json!({
            "variant": VARIANTS[v],
            "runs": tally.wall_ms.len(),
            "wall_p50_ms": percentile(&mut tally.wall_ms, 0.50),
            "wall_p99_ms": percentile(&mut tally.wall_ms, 0.99),
            "spawn_p50_ms": percentile(&mut tally.spawn_ms, 0.50),
            "spawn_p99_ms": percentile(&mut tally.spawn_ms, 0.99),
            "cpu_ms": tally.cpu_ms / n,
            "machine_cpu_ms": tally.machine_ms / n,
        });
        if !tally.cgroup_make_ms.is_empty() {
            line["cgroup_make_ms"] = percentile(&mut tally.cgroup_make_ms, 0.5).into();
            line["cgroup_remove_ms"] = percentile(&mut tally.cgroup_remove_ms, 0.5).into();
            line["cgroup_remove_p99_ms"] = percentile(&mut tally.cgroup_remove_ms, 0.99).into();
        }
        println!("{line}");
    }
    drop(stage);
    Ok(())
}

impl Bench {
    /// One run of variant `v`: its answer on stdout.
    async fn once(&self, v: usize, tally: &mut Tally) -> Result<String, String> {
        let started = Instant::now();
        let (mut child, group, lease) = match v {
            0..=4 => {
                let mut cmd = if v == 0 {
                    tokio::process::Command::new(&self.plan.executable)
                } else {
                    tokio::process::Command::new(&self.bwrap)
                };
                match v {
                    0 => {}
                    1 => {
                        cmd.args(["--bind", "/", "/", "--"]);
                    }
                    2 | 3 => {
                        cmd.args(["--unshare-user", "--unshare-ipc", "--unshare-pid"]);
                        cmd.args(["--unshare-uts", "--unshare-cgroup", "--as-pid-1"]);
                        if v == 3 {
                            cmd.arg("--unshare-net");
                        }
                        cmd.args(["--bind", "/", "/", "--"]);
                    }
                    _ => {
                        cmd.args(&self.args).arg("--");
                    }
                }
                if v == 4 {
                    cmd.args(&self.plan.argv);
                } else {
                    if v != 0 {
                        cmd.arg(&self.plan.executable);
                    }
                    cmd.args(&self.plan.argv[1..]);
                }
                cmd.env_clear()
                    .envs(self.env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null());
                let child = cmd.spawn().map_err(|e| format!("cannot start: {e}"))?;
                (child, None, None)
            }
            _ => {
                let lease = match (&self.uids, v >= 7) {
                    (Some(pool), true) => Some(pool.lease().map_err(|e| e.to_string())?),
                    _ => None,
                };
                let group = match (&self.cgroups, v >= 6) {
                    (Some(c), true) => {
                        let t = Instant::now();
                        let g = c
                            .sandbox("bench", self.plan.memory_bytes, Some(64))
                            .map_err(|e| e.to_string())?;
                        tally.cgroup_make_ms.push(ms(t.elapsed()));
                        Some(g)
                    }
                    _ => None,
                };
                let child = switchboard_sandbox::spawn::spawn(Spawn {
                    bwrap: &self.bwrap,
                    args: &self.args,
                    argv: &self.plan.argv,
                    seccomp: &self.seccomp,
                    env: &self.env,
                    host_uid: lease
                        .as_ref()
                        .map(switchboard_sandbox::identity::Lease::uid),
                    limits: Rlimits {
                        processes: lease.as_ref().map(|_| 64),
                        open_files: 256,
                        file_bytes: self.plan.scratch_bytes,
                        data_bytes: self.plan.memory_bytes,
                        cpu_seconds: u64::from(self.plan.timeout_seconds) + 1,
                    },
                    cgroup_fds: group
                        .as_ref()
                        .map(switchboard_sandbox::cgroup::SandboxCgroup::entry_fds)
                        .unwrap_or_default(),
                    stdin: Stdio::piped(),
                    stdout: Stdio::piped(),
                    stderr: Stdio::null(),
                })
                .map_err(|e| e.to_string())?;
                (child, group, lease)
            }
        };
        tally.spawn_ms.push(ms(started.elapsed()));
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let mut stdout = child.stdout.take().ok_or("no stdout")?;
        stdin
            .write_all(&self.stdin)
            .await
            .map_err(|e| format!("cannot write the invocation: {e}"))?;
        drop(stdin);
        let mut out = String::new();
        stdout
            .read_to_string(&mut out)
            .await
            .map_err(|e| format!("cannot read the result: {e}"))?;
        let status = child.wait().await.map_err(|e| e.to_string())?;
        if let Some(group) = group {
            let t = Instant::now();
            drop(group);
            tally.cgroup_remove_ms.push(ms(t.elapsed()));
        }
        drop(lease);
        tally.wall_ms.push(ms(started.elapsed()));
        if !status.success() {
            return Err(format!("variant {:?} exited with {status}", VARIANTS[v]));
        }
        Ok(out)
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "a rank in 0..len, q in [0, 1]"
)]
fn percentile(values: &mut [f64], q: f64) -> f64 {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(i).copied().unwrap_or(f64::NAN)
}

/// CPU time of this process and of its reaped descendants, in ms.
fn own_cpu_ms() -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    let mut total = 0.0;
    for who in [libc::RUSAGE_SELF, libc::RUSAGE_CHILDREN] {
        // SAFETY: getrusage(2) fills the struct it is given, which lives on this frame.
        #[allow(unsafe_code)]
        let usage = unsafe {
            let mut u: libc::rusage = std::mem::zeroed();
            libc::getrusage(who, &mut u);
            u
        };
        total += tv(usage.ru_utime) + tv(usage.ru_stime);
    }
    total
}

/// Busy time of every core since boot, in ms (`/proc/stat`: user, nice, system, irq, softirq).
fn machine_busy_ms() -> f64 {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = text.lines().next() else {
        return 0.0;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let busy: f64 = [0, 1, 2, 5, 6].iter().filter_map(|&i| f.get(i)).sum();
    // SAFETY: sysconf(3) has no preconditions.
    #[allow(unsafe_code)]
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    busy * 1000.0 / hz
}
