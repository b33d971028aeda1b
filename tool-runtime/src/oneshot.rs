//! One-shot mode: read one JSON [`Invocation`] on stdin, write one JSON [`ToolOutput`] on stdout,
//! exit. The local sandbox and Fargate run tools this way; the process lives for one call.
//!
//! A tool's own failure (the handler's `Err`) is a result with `isError: true` and exit status 0:
//! the call ran and the agent should read the message. Only a broken contract (stdin that is not
//! an invocation, a closed stdout) exits non-zero, with the reason on stderr.

use std::io::{Read, Write};
use std::process::ExitCode;

use crate::contract::{Invocation, ToolOutput};

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

/// Reads one invocation from `input`, runs `handler` on it and writes its result to `output`.
pub fn exchange<R, W, F, E>(input: R, mut output: W, handler: F) -> Result<(), OneShotError>
where
    R: Read,
    W: Write,
    F: FnOnce(Invocation) -> Result<ToolOutput, E>,
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
    let result = handler(invocation).unwrap_or_else(|e| ToolOutput::error(e.to_string()));
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
    match exchange(std::io::stdin().lock(), std::io::stdout().lock(), handler) {
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
        let big = vec![b' '; MAX_INVOCATION_BYTES as usize + 1];
        let e = exchange(&big[..], Vec::new(), |_| {
            Ok::<_, String>(ToolOutput::default())
        })
        .expect_err("must fail");
        assert!(matches!(e, OneShotError::TooLarge), "{e}");
    }
}
