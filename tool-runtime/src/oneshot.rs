//! One-shot mode: read one JSON [`Invocation`] on stdin, write one JSON [`ToolOutput`] on stdout,
//! exit. The local sandbox and Fargate run tools this way; the process lives for one call.
//!
//! Before the result, a handler run with [`run_with_progress`] may report progress through its
//! [`Progress`]: each report is one [`ProgressReport`] line on stdout, written and flushed at
//! once, which the gateway forwards to the client as it arrives (see [`crate::contract`]).
//!
//! A tool's own failure (the handler's `Err`) is a result with `isError: true` and exit status 0:
//! the call ran and the agent should read the message. Only a broken contract (stdin that is not
//! an invocation, a closed stdout) exits non-zero, with the reason on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;
use std::sync::Mutex;

use crate::contract::{Invocation, ProgressReport, ToolOutput};

/// The largest invocation accepted on stdin.
pub const MAX_INVOCATION_BYTES: u64 = 8 * 1024 * 1024;

/// Why the one-shot exchange itself failed.
#[derive(Debug, thiserror::Error)]
pub enum OneShotError {
    #[error("cannot read the invocation from stdin: {0}")]
    Read(std::io::Error),
    #[error("the invocation on stdin is larger than {MAX_INVOCATION_BYTES} bytes")]
    TooLarge,
    #[error("stdin does not hold a valid invocation: {0}")]
    Parse(serde_json::Error),
    #[error("cannot write the result to stdout: {0}")]
    Write(std::io::Error),
}

/// Reports a unit's progress while its handler runs.
///
/// In one-shot mode each report is written and flushed on stdout as one [`ProgressReport`] line.
/// Reporting is best effort: a report that cannot be written, or whose values are not finite
/// numbers, is dropped. In Lambda mode ([`Progress::disabled`]) every report is dropped: Lambda
/// answers once and has no channel for progress.
pub struct Progress<'a> {
    out: Option<&'a Mutex<dyn Write + Send + 'a>>,
}

impl std::fmt::Debug for Progress<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Progress")
            .field("enabled", &self.is_enabled())
            .finish()
    }
}

impl Progress<'_> {
    /// A reporter that drops every report.
    pub fn disabled() -> Progress<'static> {
        Progress { out: None }
    }

    /// Whether reports go anywhere.
    pub fn is_enabled(&self) -> bool {
        self.out.is_some()
    }

    /// Reports that the work reached `progress` (of `total`, when known).
    pub fn report(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        self.send(&ProgressReport {
            progress,
            total,
            message: message.map(str::to_owned),
        });
    }

    /// Writes `report` as one line and flushes it.
    pub fn send(&self, report: &ProgressReport) {
        let Some(out) = self.out else {
            return;
        };
        if !report.progress.is_finite() || report.total.is_some_and(|t| !t.is_finite()) {
            return;
        }
        let Ok(mut line) = serde_json::to_vec(report) else {
            return;
        };
        line.push(b'\n');
        // A poisoned lock only means another reporter panicked mid-write; the line is whole.
        let mut out = out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let _ = out.write_all(&line).and_then(|()| out.flush());
    }
}

/// Reads one invocation from `input`, runs `handler` on it and writes its result to `output`.
pub fn exchange<R, W, F, E>(input: R, output: W, handler: F) -> Result<(), OneShotError>
where
    R: Read,
    W: Write + Send,
    F: FnOnce(Invocation) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    exchange_with_progress(input, output, |invocation, _| handler(invocation))
}

/// Like [`exchange`], with a [`Progress`] reporter that writes to `output` before the result.
pub fn exchange_with_progress<R, W, F, E>(
    input: R,
    output: W,
    handler: F,
) -> Result<(), OneShotError>
where
    R: Read,
    W: Write + Send,
    F: FnOnce(Invocation, &Progress<'_>) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    let mut raw = Vec::new();
    input
        .take(MAX_INVOCATION_BYTES + 1)
        .read_to_end(&mut raw)
        .map_err(OneShotError::Read)?;
    if raw.len() as u64 > MAX_INVOCATION_BYTES {
        return Err(OneShotError::TooLarge);
    }
    let invocation: Invocation = serde_json::from_slice(&raw).map_err(OneShotError::Parse)?;
    let output = Mutex::new(output);
    let result = {
        let progress = Progress { out: Some(&output) };
        handler(invocation, &progress).unwrap_or_else(|e| ToolOutput::error(e.to_string()))
    };
    let mut output = output
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut bytes = serde_json::to_vec(&result).map_err(|e| OneShotError::Write(e.into()))?;
    bytes.push(b'\n');
    output.write_all(&bytes).map_err(OneShotError::Write)?;
    output.flush().map_err(OneShotError::Write)
}

/// Runs `handler` in one-shot mode over this process's stdin and stdout.
///
/// ```no_run
/// use switchboard_tool_runtime::{Invocation, ToolOutput};
///
/// fn main() -> std::process::ExitCode {
///     switchboard_tool_runtime::run(|inv: Invocation| {
///         Ok::<_, std::convert::Infallible>(ToolOutput::structured(inv.arguments.into()))
///     })
/// }
/// ```
pub fn run<F, E>(handler: F) -> ExitCode
where
    F: FnOnce(Invocation) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    run_with_progress(|invocation, _| handler(invocation))
}

/// Like [`run`], and the handler may report progress before it answers.
///
/// ```no_run
/// use switchboard_tool_runtime::{Invocation, Progress, ToolOutput};
///
/// fn main() -> std::process::ExitCode {
///     switchboard_tool_runtime::run_with_progress(|inv: Invocation, progress: &Progress| {
///         for step in 0..=10 {
///             progress.report(f64::from(step), Some(10.0), Some("working"));
///         }
///         Ok::<_, std::convert::Infallible>(ToolOutput::structured(inv.arguments.into()))
///     })
/// }
/// ```
pub fn run_with_progress<F, E>(handler: F) -> ExitCode
where
    F: FnOnce(Invocation, &Progress<'_>) -> Result<ToolOutput, E>,
    E: std::fmt::Display,
{
    match exchange_with_progress(std::io::stdin().lock(), std::io::stdout(), handler) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // stderr is the only channel left when the contract itself is broken.
            let _ = writeln!(std::io::stderr(), "switchboard tool: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation_json() -> Vec<u8> {
        br#"{"invocationId":"i-1","tool":"echo","arguments":{"message":"hi"},"deadlineUnixMs":1}"#
            .to_vec()
    }

    #[test]
    fn handler_result_is_written_as_one_json_line() {
        let mut out = Vec::new();
        exchange(&invocation_json()[..], &mut out, |inv| {
            Ok::<_, String>(ToolOutput::structured(inv.arguments["message"].clone()))
        })
        .expect("exchange works");
        assert!(out.ends_with(b"\n"));
        let parsed: ToolOutput = serde_json::from_slice(&out).expect("valid output");
        assert_eq!(parsed.structured_content, Some(serde_json::json!("hi")));
        assert!(!parsed.is_error);
    }

    #[test]
    fn handler_error_becomes_an_error_result() {
        let mut out = Vec::new();
        exchange(&invocation_json()[..], &mut out, |_| {
            Err::<ToolOutput, _>("no luck")
        })
        .expect("a tool failure is still a result");
        let parsed: ToolOutput = serde_json::from_slice(&out).expect("valid output");
        assert!(parsed.is_error);
        assert_eq!(
            parsed.content,
            vec![crate::ContentItem::Text {
                text: "no luck".into()
            }]
        );
    }

    #[test]
    fn progress_lines_come_before_the_result() {
        let mut out = Vec::new();
        exchange_with_progress(&invocation_json()[..], &mut out, |_, progress| {
            assert!(progress.is_enabled());
            progress.report(0.0, Some(2.0), None);
            progress.report(1.0, Some(2.0), Some("half"));
            progress.report(f64::NAN, None, None);
            progress.report(1.5, Some(f64::INFINITY), None);
            Ok::<_, String>(ToolOutput::structured(serde_json::json!("done")))
        })
        .expect("exchange works");
        let text = String::from_utf8(out).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(
            lines[0],
            r#"{"type":"progress","progress":0.0,"total":2.0}"#
        );
        assert_eq!(
            lines[1],
            r#"{"type":"progress","progress":1.0,"total":2.0,"message":"half"}"#
        );
        for line in &lines[..2] {
            assert!(matches!(
                crate::contract::classify_line(line.as_bytes()),
                crate::contract::StdoutLine::Progress(_)
            ));
        }
        let parsed: ToolOutput = serde_json::from_str(lines[2]).expect("valid output");
        assert_eq!(parsed.structured_content, Some(serde_json::json!("done")));
    }

    #[test]
    fn a_disabled_reporter_drops_reports() {
        let progress = Progress::disabled();
        assert!(!progress.is_enabled());
        progress.report(1.0, None, Some("nowhere"));
    }

    #[test]
    fn garbage_on_stdin_is_a_contract_error() {
        let mut out = Vec::new();
        let e = exchange(&b"{not json"[..], &mut out, |_| {
            Ok::<_, String>(ToolOutput::default())
        })
        .expect_err("must fail");
        assert!(matches!(e, OneShotError::Parse(_)), "{e}");
        assert!(out.is_empty());
    }

    #[test]
    fn oversized_invocation_is_refused() {
        let big = vec![b' '; usize::try_from(MAX_INVOCATION_BYTES).expect("fits") + 1];
        let e = exchange(&big[..], Vec::new(), |_| {
            Ok::<_, String>(ToolOutput::default())
        })
        .expect_err("must fail");
        assert!(matches!(e, OneShotError::TooLarge), "{e}");
    }
}
