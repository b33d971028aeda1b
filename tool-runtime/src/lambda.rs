//! Lambda mode: the tool is a Lambda function's `bootstrap` (custom runtime, `provided.al2023`).
//! Each event is one [`Invocation`]; the answer is the tool's [`ToolOutput`]. It runs on the
//! official Rust runtime client (`lambda_runtime`), which speaks the Runtime API at
//! `AWS_LAMBDA_RUNTIME_API`.
//!
//! A tool's own failure (a result with `isError: true`, or the handler's `Err`) is reported as
//! a function error, so `Invoke` answers with `FunctionError` and the payload
//! `{"errorType": "ToolError", "errorMessage": <the tool's text>}` (its text items, joined). An
//! init that fails ([`run_lambda_with_init`]) is reported on `/runtime/init/error`.
//!
//! Lambda answers once and has no channel for progress: a handler written for
//! [`crate::run_with_progress`] runs here through [`run_lambda_with_progress`], and its reports
//! are dropped.
//!
//! Lambda keeps the execution environment warm between calls: the process, its children and
//! `/tmp` would outlive a call. So that each call starts clean, this mode makes the process a
//! child subreaper and, after every call, kills every process the call left behind (its
//! descendants, including daemons that double-forked) and empties the scratch folder
//! (`std::env::temp_dir()`, `/tmp` on Lambda). Only what the handler keeps in memory on purpose
//! carries over.

use std::fmt::Display;
use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::contract::{ContentItem, Invocation, ToolOutput};
use crate::oneshot::Progress;

/// The `errorType` of a tool's own failure.
pub const TOOL_ERROR_TYPE: &str = "ToolError";

/// Why an invocation did not produce a result.
#[derive(Debug, thiserror::Error)]
pub enum LambdaError {
    /// The tool ran and failed (an error result or the handler's `Err`).
    #[error("{0}")]
    Tool(String),
    /// The handler panicked or could not be run.
    #[error("the tool crashed: {0}")]
    Crashed(String),
}

impl From<LambdaError> for lambda_runtime::Diagnostic {
    fn from(error: LambdaError) -> Self {
        let error_type = match error {
            LambdaError::Tool(_) => TOOL_ERROR_TYPE,
            LambdaError::Crashed(_) => "Runtime.ToolCrashed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.into(),
            error_message: error.to_string(),
        }
    }
}

/// Runs `handler` in Lambda mode until the environment is shut down.
pub fn run_lambda<F, E>(handler: F) -> ExitCode
where
    F: Fn(Invocation) -> Result<ToolOutput, E> + Send + Sync + 'static,
    E: Display,
{
    run_lambda_with_init(|| Ok::<_, std::convert::Infallible>(handler))
}

/// Runs a handler written for [`crate::run_with_progress`] in Lambda mode. Lambda answers each
/// invocation once and has no channel for progress, so the handler gets
/// [`Progress::disabled`], which drops every report.
pub fn run_lambda_with_progress<F, E>(handler: F) -> ExitCode
where
    F: Fn(Invocation, &Progress<'_>) -> Result<ToolOutput, E> + Send + Sync + 'static,
    E: Display,
{
    run_lambda(move |invocation| handler(invocation, &Progress::disabled()))
}

/// Runs `init` once (the function's init phase), then its handler for every invocation. An
/// `init` that fails is reported to Lambda as an init error and the process exits.
pub fn run_lambda_with_init<I, F, E, IE>(init: I) -> ExitCode
where
    I: FnOnce() -> Result<F, IE>,
    IE: Display,
    F: Fn(Invocation) -> Result<ToolOutput, E> + Send + Sync + 'static,
    E: Display,
{
    become_subreaper();
    let handler = match init() {
        Ok(h) => Arc::new(h),
        Err(e) => {
            let message = e.to_string();
            let _ = writeln!(
                std::io::stderr(),
                "switchboard tool: init failed: {message}"
            );
            if let Err(post) = post_init_error("Runtime.InitError", &message) {
                let _ = writeln!(
                    std::io::stderr(),
                    "switchboard tool: cannot report the init error: {post}"
                );
            }
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "switchboard tool: {e}");
            return ExitCode::FAILURE;
        }
    };
    let scratch = std::env::temp_dir();
    let service =
        lambda_runtime::service_fn(move |event: lambda_runtime::LambdaEvent<Invocation>| {
            let handler = Arc::clone(&handler);
            let scratch = scratch.clone();
            async move {
                let joined = tokio::task::spawn_blocking(move || {
                    let result = call(handler.as_ref(), event.payload);
                    reset_between_calls(&scratch);
                    result
                })
                .await;
                match joined {
                    Ok(result) => result,
                    Err(e) => {
                        reset_between_calls(&std::env::temp_dir());
                        Err(LambdaError::Crashed(e.to_string()))
                    }
                }
            }
        });
    match runtime.block_on(lambda_runtime::run(service)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "switchboard tool: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the handler and maps a tool failure to [`LambdaError::Tool`].
pub fn call<F, E>(handler: &F, invocation: Invocation) -> Result<ToolOutput, LambdaError>
where
    F: Fn(Invocation) -> Result<ToolOutput, E>,
    E: Display,
{
    match handler(invocation) {
        Ok(output) if output.is_error => Err(LambdaError::Tool(text_of(&output))),
        Ok(output) => Ok(output),
        Err(e) => Err(LambdaError::Tool(e.to_string())),
    }
}

fn text_of(output: &ToolOutput) -> String {
    let texts: Vec<&str> = output
        .content
        .iter()
        .filter_map(|item| match item {
            ContentItem::Text { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    if texts.is_empty() {
        "the tool failed".into()
    } else {
        texts.join("\n")
    }
}

/// Kills what the call left running and empties `scratch`.
pub fn reset_between_calls(scratch: &Path) {
    kill_descendants();
    empty_folder(scratch);
}

/// Removes everything inside `dir` (not `dir` itself).
pub fn empty_folder(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let _ = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
    }
}

/// Makes orphaned descendants (a daemon's double fork) this process's children, so that
/// [`kill_descendants`] finds them.
fn become_subreaper() {
    #[allow(unsafe_code)]
    // SAFETY: prctl(PR_SET_CHILD_SUBREAPER, 1) only sets a flag of this process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// Sends SIGKILL to every descendant of this process and reaps them, until none is left (or two
/// seconds passed).
pub fn kill_descendants() {
    kill_descendants_of(std::process::id().cast_signed());
}

/// Sends SIGKILL to every descendant of `root` until none is left (or two seconds passed); reaps
/// them when `root` is this process.
fn kill_descendants_of(root: libc::pid_t) {
    let reap = root == std::process::id().cast_signed();
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let pids = descendants_of(root);
        if pids.is_empty() || std::time::Instant::now() > until {
            return;
        }
        for pid in &pids {
            #[allow(unsafe_code)]
            // SAFETY: kill(2) with a pid read from /proc; at worst it has just exited.
            unsafe {
                libc::kill(*pid, libc::SIGKILL);
            }
        }
        if reap {
            reap_children();
        }
        std::thread::sleep(Duration::from_millis(5));
        if reap {
            reap_children();
        }
    }
}

/// Collects the exit status of every child that has ended.
fn reap_children() {
    loop {
        let mut status = 0;
        #[allow(unsafe_code)]
        // SAFETY: waitpid(2) with WNOHANG writes only to `status`, which lives on this frame.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// Every process below `root` in the process tree.
fn descendants_of(root: libc::pid_t) -> Vec<libc::pid_t> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(libc::pid_t, libc::pid_t)> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter_map(|pid| Some((pid, parent_of(pid)?)))
        .collect();
    let mut found = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for (pid, ppid) in &parents {
            if *ppid == parent && *pid != root && !found.contains(pid) {
                found.push(*pid);
                frontier.push(*pid);
            }
        }
    }
    found
}

/// The parent pid from `/proc/PID/stat` (the field after the command name, which may itself hold
/// spaces and parentheses).
fn parent_of(pid: libc::pid_t) -> Option<libc::pid_t> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        // A zombie is already dead; reaping takes care of it.
        return None;
    }
    fields.next()?.parse().ok()
}

/// Reports an init failure on the Runtime API (`POST /2018-06-01/runtime/init/error`).
fn post_init_error(error_type: &str, message: &str) -> std::io::Result<()> {
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .map_err(|_| std::io::Error::other("AWS_LAMBDA_RUNTIME_API is not set"))?;
    let body = serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string();
    let mut stream = std::net::TcpStream::connect(&api)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "POST /2018-06-01/runtime/init/error HTTP/1.1\r\nHost: {api}\r\n\
         Content-Type: application/json\r\nLambda-Runtime-Function-Error-Type: {error_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    if answer.starts_with(b"HTTP/1.1 2") || answer.starts_with(b"HTTP/1.0 2") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "the Runtime API answered {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(64)])
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        serde_json::from_value(serde_json::json!({
            "invocationId": "i", "tool": "t", "arguments": {}, "deadlineUnixMs": 0
        }))
        .expect("valid invocation")
    }

    #[test]
    fn an_error_result_is_a_tool_error() {
        let e = call(
            &|_| Ok::<_, String>(ToolOutput::error("no luck")),
            invocation(),
        )
        .expect_err("a tool error");
        let d = lambda_runtime::Diagnostic::from(e);
        assert_eq!(d.error_type, TOOL_ERROR_TYPE);
        assert_eq!(d.error_message, "no luck");
    }

    #[test]
    fn an_error_message_is_made_of_the_text_items_only() {
        let mut output = ToolOutput::error("first");
        output.content.push(ContentItem::Image {
            data: "AAAA".into(),
            mime_type: "image/png".into(),
        });
        output.content.push(ContentItem::text("second"));
        let e = call(&|_| Ok::<_, String>(output.clone()), invocation()).expect_err("a tool error");
        assert!(
            matches!(e, LambdaError::Tool(ref m) if m == "first\nsecond"),
            "{e}"
        );
    }

    #[test]
    fn a_handler_error_is_a_tool_error() {
        let e = call(&|_| Err::<ToolOutput, _>("broken"), invocation()).expect_err("a tool error");
        assert!(
            matches!(e, LambdaError::Tool(ref m) if m == "broken"),
            "{e}"
        );
    }

    #[test]
    fn a_result_passes_through() {
        let out = call(
            &|_| Ok::<_, String>(ToolOutput::structured(serde_json::json!({"a": 1}))),
            invocation(),
        )
        .expect("a result");
        assert_eq!(out.structured_content, Some(serde_json::json!({"a": 1})));
    }

    #[test]
    fn reset_empties_the_scratch_folder() {
        let dir = tempfile_dir();
        std::fs::create_dir_all(dir.join("sub/deeper")).expect("mkdir");
        std::fs::write(dir.join("marker"), b"x").expect("write");
        std::fs::write(dir.join("sub/deeper/f"), b"x").expect("write");
        empty_folder(&dir);
        assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn descendants_are_killed() {
        // A shell with two children; only the shell's descendants are killed, so the test leaves
        // the processes of other tests alone. (Double-forked daemons come back to the probe's
        // subreaper; the LocalStack suite proves that part.)
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 31 & wait"])
            .spawn()
            .expect("sh starts");
        let root = shell.id().cast_signed();
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while descendants_of(root).is_empty() && std::time::Instant::now() < until {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            !descendants_of(root).is_empty(),
            "the shell started nothing"
        );
        kill_descendants_of(root);
        assert!(descendants_of(root).is_empty());
        let _ = shell.kill();
        let _ = shell.wait();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-lambda-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        std::fs::create_dir_all(&dir).expect("mkdir");
        dir
    }
}
