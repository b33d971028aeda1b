//! `switchboard-escape-probe`: a test tool for the sandbox escape suite.
//!
//! It reads one invocation (one-shot mode), performs the escape attempt named by the `attempt`
//! argument and answers `{"attempt", "escaped", "detail", ...}`. `escaped` is true only when the
//! attempt got through; the suite fails on any `true`. Some attempts can only be judged from the
//! outside (a canary that must stay silent, a process that must be gone): the suite checks those
//! itself and the probe reports what it saw.
//!
//! This binary exists to misbehave: it is never listed in a catalog that serves real callers.
#![allow(unsafe_code)] // raw syscalls are the point of this test tool; each block says why.

use std::ffi::CString;
use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use switchboard_tool_runtime::{Invocation, ToolOutput, run};

#[path = "probe/sockets.rs"]
mod sockets;

/// Why the probe could not run an attempt at all (a broken test, not an escape).
#[derive(Debug, thiserror::Error)]
enum ProbeError {
    #[error("argument {0:?} is missing or not a string")]
    Argument(&'static str),
    #[error("unknown attempt {0:?}")]
    UnknownAttempt(String),
}

struct Args<'a>(&'a Map<String, Value>);

impl Args<'_> {
    fn str(&self, name: &'static str) -> Result<String, ProbeError> {
        self.0
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(ProbeError::Argument(name))
    }
    fn u64_or(&self, name: &str, default: u64) -> u64 {
        self.0.get(name).and_then(Value::as_u64).unwrap_or(default)
    }
}

/// What one attempt found.
struct Report {
    escaped: bool,
    detail: String,
    extra: Map<String, Value>,
}

impl Report {
    fn new(escaped: bool, detail: impl Into<String>) -> Self {
        Self {
            escaped,
            detail: detail.into(),
            extra: Map::new(),
        }
    }
    fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }
}

fn main() -> ExitCode {
    switchboard_test_tools::mark();
    run(|inv: Invocation| {
        let args = Args(&inv.arguments);
        let attempt = args.str("attempt")?;
        let report = perform(&attempt, &args)?;
        let mut out = report.extra;
        out.insert("attempt".into(), attempt.into());
        out.insert("escaped".into(), report.escaped.into());
        out.insert("detail".into(), report.detail.into());
        Ok::<_, ProbeError>(ToolOutput::structured(Value::Object(out)))
    })
}

fn perform(attempt: &str, args: &Args<'_>) -> Result<Report, ProbeError> {
    Ok(match attempt {
        "read_file" => read_file(&args.str("path")?),
        "find_env" => find_env(&args.str("needle")?),
        "write_file" => write_file(&args.str("path")?),
        "persist_write" => persist_write(&args.str("tag")?),
        "persist_check" => persist_check(&args.str("tag")?),
        "tcp_connect" => tcp_connect(&args.str("addr")?),
        "udp_send" => udp_send(&args.str("addr")?, b"canary-ping".to_vec()),
        "dns" => dns(&args.str("name")?, &args.str("server")?),
        "raw_icmp" => raw_icmp(),
        "unix_connect" => unix_connect(&args.str("path")?, &args.str("abstract")?),
        "ptrace" => ptrace(),
        "mount" => mount(),
        "unshare_user" => unshare_user(),
        "host_processes" => host_processes(&args.str("needle")?, args.u64_or("pid", 0)),
        "proc1_environ" => proc1_environ(&args.str("needle")?),
        "tiocsti" => tiocsti(),
        "setuid_exec" => setuid_exec(&args.str("path")?),
        "fork_bomb" => fork_bomb(args.u64_or("count", 5000)),
        "memory_bomb" => memory_bomb(args.u64_or("mb", 2048)),
        "memory_bomb_children" => {
            memory_bomb_children(args.u64_or("children", 8), args.u64_or("mb", 64))
        }
        "fill_scratch" => fill_scratch(args.u64_or("mb", 1024)),
        "spin" => spin(),
        "daemonize" => daemonize(&args.str("tag")?),
        "stdout_flood" => stdout_flood(args.u64_or("mb", 1024)),
        "proxy_connect" => proxy_connect(&args.str("target")?),
        "syscall" => blocked_syscall(&args.str("name")?),
        "socket_family" => socket_family(&args.str("family")?),
        "whoami" => whoami(),
        other => return Err(ProbeError::UnknownAttempt(other.to_owned())),
    })
}

/// `socket()` and `socketpair()` of the named family: escaped when either opened.
fn socket_family(name: &str) -> Report {
    let Some((single, pair)) = sockets::try_family(name) else {
        return Report::new(false, format!("unknown socket family {name}"));
    };
    Report::new(
        single == 0 || pair == 0,
        format!("socket: errno {single}, socketpair: errno {pair}"),
    )
    .with("socket_errno", single)
    .with("socketpair_errno", pair)
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

fn read_file(path: &str) -> Report {
    match std::fs::read(path) {
        Ok(bytes) => Report::new(
            !bytes.is_empty(),
            format!("read {} bytes of {path}", bytes.len()),
        ),
        Err(e) => Report::new(false, format!("{path}: {e}")),
    }
}

fn find_env(needle: &str) -> Report {
    let mut found = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k.to_string_lossy().contains(needle) || v.to_string_lossy().contains(needle) {
            found.push(format!("own environment: {}", k.to_string_lossy()));
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let path = entry.path().join("environ");
            if let Ok(bytes) = std::fs::read(&path)
                && String::from_utf8_lossy(&bytes).contains(needle)
            {
                found.push(path.display().to_string());
            }
        }
    }
    let names: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into())
        .collect();
    Report::new(
        !found.is_empty(),
        format!("found in: {found:?}; environment names: {names:?}"),
    )
}

/// `$OWN_DIR` in `path` stands for the folder of this executable as the sandbox shows it.
fn write_file(path: &str) -> Report {
    let own_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.display().to_string()))
        .unwrap_or_default();
    let path = path.replace("$OWN_DIR", &own_dir);
    match std::fs::write(&path, b"escaped") {
        Ok(()) => Report::new(true, format!("wrote {path}")),
        Err(e) => Report::new(false, format!("{path}: {e}")),
    }
}

fn persist_places(tag: &str) -> Vec<String> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/tmp".into());
    vec![
        format!("/tmp/{tag}"),
        format!("{home}/{tag}"),
        format!("/var/tmp/{tag}"),
        format!("/{tag}"),
    ]
}

fn persist_write(tag: &str) -> Report {
    let written: Vec<String> = persist_places(tag)
        .into_iter()
        .filter(|p| std::fs::write(p, tag).is_ok())
        .collect();
    Report::new(false, format!("marker written to {written:?}")).with("written", written.len())
}

fn persist_check(tag: &str) -> Report {
    let present: Vec<String> = persist_places(tag)
        .into_iter()
        .filter(|p| std::path::Path::new(p).exists())
        .collect();
    Report::new(
        !present.is_empty(),
        format!("marker present at {present:?}"),
    )
}

fn tcp_connect(addr: &str) -> Report {
    let Ok(sock) = addr.parse::<std::net::SocketAddr>() else {
        return Report::new(false, format!("bad address {addr}"));
    };
    match std::net::TcpStream::connect_timeout(&sock, Duration::from_secs(2)) {
        Ok(_) => Report::new(true, format!("connected to {addr}")),
        Err(e) => Report::new(false, format!("{addr}: {e}")),
    }
}

/// Sends a datagram and waits for the canary's answer; an answer means the packet left.
fn udp_send(addr: &str, payload: Vec<u8>) -> Report {
    let sock = match std::net::UdpSocket::bind("0.0.0.0:0") {
        Ok(s) => s,
        Err(e) => return Report::new(false, format!("bind: {e}")),
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(700)));
    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(match sock.send_to(&payload, addr) {
            Ok(n) => format!("sent {n}"),
            Err(e) => e.to_string(),
        });
    }
    let mut buf = [0u8; 512];
    match sock.recv_from(&mut buf) {
        Ok((n, from)) => Report::new(true, format!("answer of {n} bytes from {from}")),
        Err(e) => Report::new(false, format!("send: {sent:?}; no answer: {e}")),
    }
}

fn dns(name: &str, server: &str) -> Report {
    use std::net::ToSocketAddrs;
    let resolved = (name, 443).to_socket_addrs().map(|a| a.collect::<Vec<_>>());
    if let Ok(addrs) = &resolved
        && !addrs.is_empty()
    {
        return Report::new(true, format!("{name} resolved to {addrs:?}"));
    }
    // A plain DNS query for `name`, type A, to the given server.
    let mut query = vec![0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        query.push(u8::try_from(label.len()).unwrap_or(u8::MAX));
        query.extend_from_slice(label.as_bytes());
    }
    query.extend_from_slice(&[0, 0, 1, 0, 1]);
    let direct = udp_send(server, query);
    Report::new(
        direct.escaped,
        format!("resolver: {resolved:?}; direct query: {}", direct.detail),
    )
}

fn raw_icmp() -> Report {
    // SAFETY: socket(2) with constant arguments; the returned fd is closed right away.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    if fd >= 0 {
        // SAFETY: fd was just returned by socket(2) and is owned here.
        unsafe { libc::close(fd) };
        return Report::new(true, "opened a raw ICMP socket");
    }
    let raw = errno();
    // SAFETY: as above.
    let fd6 = unsafe { libc::socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6) };
    if fd6 >= 0 {
        // SAFETY: fd6 was just returned by socket(2) and is owned here.
        unsafe { libc::close(fd6) };
        return Report::new(true, "opened a raw ICMPv6 socket");
    }
    Report::new(false, format!("raw ICMP: {raw}; raw ICMPv6: {}", errno()))
}

fn unix_connect(path: &str, abstract_name: &str) -> Report {
    use std::os::linux::net::SocketAddrExt;
    let by_path = std::os::unix::net::UnixStream::connect(path);
    if by_path.is_ok() {
        return Report::new(true, format!("connected to {path}"));
    }
    let by_name = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name.as_bytes())
        .and_then(|a| std::os::unix::net::UnixStream::connect_addr(&a));
    if by_name.is_ok() {
        return Report::new(true, format!("connected to abstract @{abstract_name}"));
    }
    Report::new(
        false,
        format!(
            "{path}: {:?}; @{abstract_name}: {:?}",
            by_path.err(),
            by_name.err()
        ),
    )
}

fn ptrace() -> Report {
    // SAFETY: fork(2) in a single-threaded process; the child only calls async-signal-safe
    // functions (pause, _exit).
    let child = unsafe { libc::fork() };
    if child == 0 {
        // SAFETY: async-signal-safe calls in the forked child.
        unsafe {
            libc::pause();
            libc::_exit(0)
        }
    }
    let mut results = Vec::new();
    let mut escaped = false;
    for target in [child, 1] {
        // SAFETY: PTRACE_ATTACH takes no pointers.
        let r = unsafe {
            libc::ptrace(
                libc::PTRACE_ATTACH,
                target,
                std::ptr::null_mut::<libc::c_void>(),
                0,
            )
        };
        escaped |= r == 0;
        results.push(format!(
            "attach {target}: {}",
            if r == 0 {
                "ok".into()
            } else {
                errno().to_string()
            }
        ));
    }
    // SAFETY: PTRACE_TRACEME takes no pointers.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_TRACEME,
            0,
            std::ptr::null_mut::<libc::c_void>(),
            0,
        )
    };
    escaped |= r == 0;
    results.push(format!(
        "traceme: {}",
        if r == 0 {
            "ok".into()
        } else {
            errno().to_string()
        }
    ));
    if child > 0 {
        // SAFETY: signalling and reaping our own child.
        unsafe {
            libc::kill(child, libc::SIGKILL);
            libc::waitpid(child, std::ptr::null_mut(), 0);
        }
    }
    Report::new(escaped, results.join("; "))
}

fn mount() -> Report {
    let _ = std::fs::create_dir_all("/tmp/mnt");
    let mut results = Vec::new();
    let mut escaped = false;
    let (none, target, fstype) = (c"none", c"/tmp/mnt", c"tmpfs");
    // SAFETY: all pointers are valid NUL-terminated strings; data is null.
    let r = unsafe {
        libc::mount(
            none.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    escaped |= r == 0;
    results.push(format!(
        "mount tmpfs: {}",
        if r == 0 {
            "ok".into()
        } else {
            errno().to_string()
        }
    ));
    let usr = c"/usr";
    // SAFETY: valid NUL-terminated path.
    let r = unsafe { libc::umount2(usr.as_ptr(), libc::MNT_DETACH) };
    escaped |= r == 0;
    results.push(format!(
        "umount /usr: {}",
        if r == 0 {
            "ok".into()
        } else {
            errno().to_string()
        }
    ));
    let root = c"/";
    // SAFETY: valid NUL-terminated paths; remount of / read-write.
    let r = unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REMOUNT | libc::MS_BIND,
            std::ptr::null(),
        )
    };
    escaped |= r == 0;
    results.push(format!(
        "remount / rw: {}",
        if r == 0 {
            "ok".into()
        } else {
            errno().to_string()
        }
    ));
    Report::new(escaped, results.join("; "))
}

fn unshare_user() -> Report {
    // SAFETY: unshare(2) with a constant flag.
    let r = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
    if r == 0 {
        return Report::new(true, "unshare(CLONE_NEWUSER) succeeded");
    }
    let unshare_err = errno();
    // The same through clone(2), which a filter on unshare alone would miss.
    // SAFETY: raw clone with a null stack behaves like fork; the child exits at once.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid == 0 {
        // SAFETY: in the child: leave immediately.
        unsafe { libc::_exit(0) }
    }
    if pid > 0 {
        // SAFETY: reaping our own child.
        unsafe {
            libc::waitpid(
                libc::pid_t::try_from(pid).unwrap_or(-1),
                std::ptr::null_mut(),
                0,
            )
        };
        return Report::new(true, "clone(CLONE_NEWUSER) succeeded");
    }
    Report::new(false, format!("unshare: {unshare_err}; clone: {}", errno()))
}

fn host_processes(needle: &str, host_pid: u64) -> Report {
    let mut pids = Vec::new();
    let mut matching = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.chars().all(|c| c.is_ascii_digit()) {
                let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
                if String::from_utf8_lossy(&cmdline).contains(needle) {
                    matching.push(name.clone());
                }
                pids.push(name);
            }
        }
    }
    let mut signalled = false;
    if let Ok(host) = libc::pid_t::try_from(host_pid)
        && host > 0
        && !pids.contains(&host_pid.to_string())
    {
        // SAFETY: kill(2) with signal 0 only checks whether the process can be signalled.
        signalled = unsafe { libc::kill(host, 0) } == 0;
    }
    let escaped = !matching.is_empty() || pids.len() > 16 || signalled;
    Report::new(
        escaped,
        format!("visible pids {pids:?}; matching {needle:?}: {matching:?}; host pid {host_pid} signallable: {signalled}"),
    )
    .with("visible", pids.len())
}

fn proc1_environ(needle: &str) -> Report {
    match std::fs::read("/proc/1/environ") {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let names: Vec<&str> = text
                .split('\0')
                .filter_map(|kv| kv.split('=').next())
                .collect();
            Report::new(
                text.contains(needle),
                format!("/proc/1/environ names: {names:?}"),
            )
        }
        Err(e) => Report::new(false, format!("/proc/1/environ: {e}")),
    }
}

fn tiocsti() -> Report {
    let mut fds: Vec<(String, libc::c_int)> = vec![
        ("stdin".into(), 0),
        ("stdout".into(), 1),
        ("stderr".into(), 2),
    ];
    let tty = c"/dev/tty";
    // SAFETY: open(2) of a valid path; the fd is closed below.
    let fd = unsafe { libc::open(tty.as_ptr(), libc::O_RDWR | libc::O_NOCTTY) };
    if fd >= 0 {
        fds.push(("/dev/tty".into(), fd));
    }
    // A terminal of our own: without the filter, TIOCSTI on it is the classic injection path.
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname on the fd just opened; ptsname's buffer is
    // copied before any other call.
    unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        if master >= 0 && libc::grantpt(master) == 0 && libc::unlockpt(master) == 0 {
            let name = libc::ptsname(master);
            if !name.is_null() {
                let slave = libc::open(name, libc::O_RDWR | libc::O_NOCTTY);
                if slave >= 0 {
                    fds.push(("pty slave".into(), slave));
                }
            }
            fds.push(("pty master".into(), master));
        }
    }
    let mut results = Vec::new();
    let mut escaped = false;
    let c: libc::c_char = b'x'.cast_signed();
    // The request type differs between C libraries (an int on musl).
    #[allow(clippy::unnecessary_cast)]
    let tiocsti = libc::TIOCSTI as u64;
    for (name, fd) in &fds {
        for (variant, request) in [
            ("TIOCSTI", tiocsti),
            ("TIOCSTI|1<<32", tiocsti | (1u64 << 32)),
        ] {
            // SAFETY: ioctl(2) through syscall(2) so the high bits of the request reach the
            // kernel unchanged; the argument points at a live byte.
            let r =
                unsafe { libc::syscall(libc::SYS_ioctl, *fd, request, &c as *const libc::c_char) };
            escaped |= r == 0;
            results.push(format!(
                "{name} {variant}: {}",
                if r == 0 {
                    "ok".into()
                } else {
                    errno().to_string()
                }
            ));
        }
    }
    Report::new(escaped, results.join("; "))
}

fn whoami() -> Report {
    // SAFETY: getuid/geteuid cannot fail.
    let (uid, euid) = unsafe { (libc::getuid(), libc::geteuid()) };
    let dev_null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .is_ok();
    let shm = std::fs::write("/dev/shm/probe", b"x").is_ok();
    Report::new(false, format!("uid {uid} euid {euid}"))
        .with("uid", uid)
        .with("euid", euid)
        .with("dev_null", dev_null)
        .with("shm", shm)
}

/// Runs a setuid-root executable (the suite plants one) and compares the uid it reports.
fn setuid_exec(path: &str) -> Report {
    // SAFETY: geteuid cannot fail.
    let own = unsafe { libc::geteuid() };
    match std::process::Command::new(path).arg("-u").output() {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            let escaped = text.parse::<u32>().is_ok_and(|uid| uid != own);
            Report::new(
                escaped,
                format!(
                    "{path} -u printed {text:?} (own euid {own}); stderr {:?}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        }
        Err(e) => Report::new(false, format!("{path}: {e}")),
    }
}

fn fork_bomb(count: u64) -> Report {
    let mut made = 0u64;
    let mut last_error = String::new();
    while made < count {
        // SAFETY: fork(2); the child only calls pause/_exit (async-signal-safe).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: in the child.
            unsafe {
                libc::pause();
                libc::_exit(0)
            }
        }
        if pid < 0 {
            last_error = errno().to_string();
            break;
        }
        made += 1;
    }
    Report::new(
        made >= count,
        format!("forked {made} of {count}; then: {last_error}"),
    )
    .with("forked", made)
}

fn memory_bomb(mb: u64) -> Report {
    const CHUNK: usize = 8 << 20;
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut error = String::new();
    while (held.len() * CHUNK) < usize::try_from(mb).unwrap_or(usize::MAX) << 20 {
        let mut chunk = Vec::new();
        if let Err(e) = chunk.try_reserve_exact(CHUNK) {
            error = e.to_string();
            break;
        }
        chunk.resize(CHUNK, 0xA5);
        held.push(chunk);
    }
    let got = (held.len() * CHUNK) as u64 >> 20;
    Report::new(got >= mb, format!("held {got} MiB of {mb}; then: {error}")).with("mib", got)
}

/// `children` processes that each try to hold `mb` MiB at once: a per-process limit lets every
/// one of them through; only a limit on the sandbox as a whole stops the sum.
fn memory_bomb_children(children: u64, mb: u64) -> Report {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe(2) into a local array.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Report::new(false, format!("pipe: {}", errno()));
    }
    let [read_end, write_end] = fds;
    let mut pids = Vec::new();
    let children = children.min(255);
    for index in 0..children {
        // SAFETY: fork(2) in a single-threaded process: the child may allocate.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let mut block: Vec<u8> = Vec::new();
            let size = usize::try_from(mb).unwrap_or(usize::MAX) << 20;
            if block.try_reserve_exact(size).is_ok() {
                block.resize(size, 0xA5); // touches every page
                // SAFETY: in the child: write its index to say "held", then wait to be killed.
                unsafe {
                    let byte = [u8::try_from(index % 256).unwrap_or_default()];
                    libc::write(write_end, byte.as_ptr().cast(), 1);
                    libc::pause();
                }
            }
            // SAFETY: in the child.
            unsafe { libc::_exit(1) }
        }
        if pid < 0 {
            break;
        }
        pids.push(pid);
    }
    // SAFETY: closing this process's copy of the write end.
    unsafe { libc::close(write_end) };
    // Children that said they held their block (the kernel may kill one afterwards).
    let mut reported = Vec::new();
    // Within the suite's 3 s deadline for the probe, with room to answer.
    let until = Instant::now() + Duration::from_secs(2);
    while reported.len() < pids.len() && Instant::now() < until {
        let mut poll = libc::pollfd {
            fd: read_end,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: poll(2) on one descriptor this process owns.
        if unsafe { libc::poll(&mut poll, 1, 200) } <= 0 {
            continue;
        }
        let mut byte = [0u8; 1];
        // SAFETY: read(2) into a local buffer.
        match unsafe { libc::read(read_end, byte.as_mut_ptr().cast(), 1) } {
            1 => reported.push(usize::from(byte[0])),
            _ => break, // every child has gone: no writer left
        }
    }
    // What is held at once: children that reported and are still alive now (one the kernel
    // killed after it reported holds nothing any more).
    let held = reported
        .iter()
        .filter_map(|&i| pids.get(i))
        // SAFETY: waitpid(2) with WNOHANG on this process's own child: 0 means still running.
        .filter(|&&pid| unsafe { libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG) } == 0)
        .count() as u64;
    for &pid in &pids {
        // SAFETY: kill and reap this process's own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let mib = held * mb;
    Report::new(
        held == children,
        format!(
            "{held} of {} children held {mb} MiB each at once ({mib} MiB together; {} had \
             reported holding theirs)",
            pids.len(),
            reported.len()
        ),
    )
    .with("mib", mib)
    .with("children", pids.len() as u64)
}

fn fill_scratch(mb: u64) -> Report {
    // SAFETY: ignoring SIGXFSZ so that a file-size limit shows as EFBIG instead of killing us.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let block = vec![0x5Au8; 1 << 20];
    let mut total = 0u64;
    let mut error = String::new();
    'files: for n in 0.. {
        let Ok(mut f) = std::fs::File::create(format!("/tmp/fill-{n}")) else {
            error = format!("create: {}", errno());
            break;
        };
        for _ in 0..64 {
            if total >= mb {
                break 'files;
            }
            if let Err(e) = f.write_all(&block).and_then(|()| f.sync_data()) {
                error = e.to_string();
                if e.raw_os_error() == Some(libc::EFBIG) {
                    continue 'files;
                }
                break 'files;
            }
            total += 1;
        }
    }
    Report::new(
        total >= mb,
        format!("wrote {total} MiB of {mb}; then: {error}"),
    )
    .with("mib", total)
}

fn spin() -> Report {
    let mut x = 0u64;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}

fn daemonize(tag: &str) -> Report {
    let Ok(name) = CString::new(tag) else {
        return Report::new(false, "bad tag");
    };
    // SAFETY: fork(2); the children only use async-signal-safe calls until they sleep forever.
    unsafe {
        let pid = libc::fork();
        if pid == 0 {
            libc::setsid();
            if libc::fork() == 0 {
                libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
                libc::signal(libc::SIGHUP, libc::SIG_IGN);
                libc::signal(libc::SIGTERM, libc::SIG_IGN);
                libc::close(0);
                libc::close(1);
                libc::close(2);
                loop {
                    libc::sleep(60);
                }
            }
            libc::_exit(0);
        }
        if pid > 0 {
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    Report::new(false, format!("left a daemon named {tag}"))
}

fn stdout_flood(mb: u64) -> Report {
    let block = vec![b'x'; 1 << 20];
    let mut out = std::io::stdout().lock();
    let mut written = 0;
    while written < mb {
        if out.write_all(&block).is_err() {
            break;
        }
        written += 1;
    }
    Report::new(false, format!("wrote {written} MiB to stdout"))
}

/// Asks the endpoint proxy for a tunnel to `target` and reads what comes back.
fn proxy_connect(target: &str) -> Report {
    let Ok(socket) = std::env::var("SWITCHBOARD_ENDPOINT_SOCKET") else {
        return Report::new(false, "no endpoint socket in the environment");
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&socket) {
        Ok(s) => s,
        Err(e) => return Report::new(false, format!("{socket}: {e}")),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    if let Err(e) = write!(
        stream,
        "CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n"
    ) {
        return Report::new(false, format!("write: {e}"));
    }
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.windows(12).any(|w| w == b"canary-hello") || got.len() > 8192 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&got).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let tunnelled = status.contains(" 200 ");
    Report::new(tunnelled, format!("proxy answered {status:?}"))
        .with("status", status)
        .with("canary", text.contains("canary-hello"))
}

/// Calls a syscall the filter must stop. Where possible the arguments are ones that would
/// succeed without the filter (so a missing rule shows as an escape, not as `EINVAL`); any
/// success is an escape, and the errno tells whether the filter (`EPERM`) answered.
fn blocked_syscall(name: &str) -> Report {
    let zero = 0usize;
    let mut uring_params = [0u8; 120];
    let mut perf_attr = [0u8; 128];
    // perf_event_attr: type PERF_TYPE_SOFTWARE (1), size, config PERF_COUNT_SW_TASK_CLOCK (1),
    // exclude_kernel | exclude_hv (bits 5 and 6 of the flags word at offset 40).
    perf_attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    perf_attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    perf_attr[8..16].copy_from_slice(&1u64.to_ne_bytes());
    perf_attr[40..48].copy_from_slice(&((1u64 << 5) | (1u64 << 6)).to_ne_bytes());
    const KEYCTL_GET_KEYRING_ID: usize = 0;
    const KEY_SPEC_SESSION_KEYRING: isize = -3;
    const KEY_SPEC_PROCESS_KEYRING: isize = -2;
    const UFFD_USER_MODE_ONLY: usize = 1;
    // SAFETY: every pointer passed points at a live local buffer or NUL-terminated literal of
    // the size the call expects; the numbers come from libc's table for this architecture.
    let r = unsafe {
        match name {
            "bpf" => libc::syscall(libc::SYS_bpf, 0, zero, zero),
            "perf_event_open" => libc::syscall(
                libc::SYS_perf_event_open,
                perf_attr.as_mut_ptr(),
                0,
                -1,
                -1,
                0,
            ),
            "io_uring_setup" => {
                libc::syscall(libc::SYS_io_uring_setup, 1, uring_params.as_mut_ptr())
            }
            "keyctl" => libc::syscall(
                libc::SYS_keyctl,
                KEYCTL_GET_KEYRING_ID,
                KEY_SPEC_SESSION_KEYRING,
                1,
                zero,
                zero,
            ),
            "add_key" => libc::syscall(
                libc::SYS_add_key,
                c"user".as_ptr(),
                c"switchboard-probe".as_ptr(),
                c"x".as_ptr(),
                1,
                KEY_SPEC_PROCESS_KEYRING,
            ),
            "setns" => {
                let fd = libc::open(c"/proc/self/ns/uts".as_ptr(), libc::O_RDONLY);
                libc::syscall(libc::SYS_setns, fd, 0)
            }
            "chroot" => libc::syscall(libc::SYS_chroot, c"/tmp".as_ptr()),
            "pivot_root" => libc::syscall(libc::SYS_pivot_root, c"/tmp".as_ptr(), c"/tmp".as_ptr()),
            "process_vm_readv" => libc::syscall(
                libc::SYS_process_vm_readv,
                libc::getpid(),
                zero,
                0,
                zero,
                0,
                0,
            ),
            "userfaultfd" => libc::syscall(
                libc::SYS_userfaultfd,
                libc::O_CLOEXEC as usize | UFFD_USER_MODE_ONLY,
            ),
            "fsopen" => libc::syscall(libc::SYS_fsopen, c"tmpfs".as_ptr(), 0),
            "open_tree" => libc::syscall(libc::SYS_open_tree, -100, c"/".as_ptr(), 1),
            "x32_getpid" => libc::syscall(0x4000_0000 | libc::SYS_getpid),
            _ => return Report::new(false, format!("unknown syscall {name}")),
        }
    };
    let err = errno();
    Report::new(r >= 0, format!("{name} returned {r} ({err})")).with(
        "errno",
        if r >= 0 {
            0
        } else {
            err.raw_os_error().unwrap_or(0)
        },
    )
}
