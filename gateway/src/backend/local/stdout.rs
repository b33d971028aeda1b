//! A unit's stdout, read as it arrives: progress lines are forwarded, the rest is the result.
//!
//! The tool contract (`switchboard_tool_runtime::contract`) lets a one-shot unit write progress
//! reports, one JSON line each, before its result. This reader splits stdout into lines as the
//! bytes come, hands each valid report to the call's progress channel with `try_send` (a full
//! channel drops the report: the unit is never held up by a slow client) and keeps every other
//! line, byte for byte, as the result. A line that claims to be progress but is not a valid report
//! is dropped. Bounds: the whole of stdout, progress lines included, is capped (more stops the
//! read and the sandbox is killed); at most [`MAX_REPORTS`] reports per call are forwarded; a
//! message is cut to [`MAX_MESSAGE_BYTES`]; a report whose numbers are not finite is dropped.

use switchboard_tool_runtime::contract::{StdoutLine, classify_line};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::mpsc;

use crate::backend::Progress;

/// Bytes read from a sandbox's stdout or stderr at a time. Small, because every call in flight
/// holds two such buffers (1,000 calls in flight would hold 128 MB with 64 KiB ones); a tool
/// that writes more just takes more reads.
pub(super) const READ_CHUNK: usize = 8 * 1024;

/// The most progress reports forwarded for one call; later ones are dropped.
pub const MAX_REPORTS: usize = 1000;

/// The longest progress message forwarded, in bytes; a longer one is cut at a character boundary.
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// What was read from a unit's stdout.
#[derive(Debug, Default)]
pub struct Stdout {
    /// stdout without its progress lines.
    pub result: Vec<u8>,
    /// The unit wrote more than the cap; reading stopped.
    pub overflowed: bool,
    /// Reports handed to the progress channel.
    pub forwarded: usize,
    /// Reports dropped: channel full or closed, past [`MAX_REPORTS`], or invalid.
    pub dropped: usize,
}

impl Stdout {
    fn take_line(&mut self, line: &[u8], progress: &mpsc::Sender<Progress>) {
        match classify_line(line) {
            StdoutLine::Result => self.result.extend_from_slice(line),
            StdoutLine::BadProgress(why) => {
                tracing::debug!(%why, "dropped a malformed progress line");
                self.dropped += 1;
            }
            StdoutLine::Progress(report) => {
                let finite = report.progress.is_finite() && report.total.is_none_or(f64::is_finite);
                if !finite || self.forwarded >= MAX_REPORTS {
                    self.dropped += 1;
                    return;
                }
                let report = Progress {
                    progress: report.progress,
                    total: report.total,
                    message: report.message.map(|m| cut(m, MAX_MESSAGE_BYTES)),
                };
                match progress.try_send(report) {
                    Ok(()) => self.forwarded += 1,
                    Err(_) => self.dropped += 1,
                }
            }
        }
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn cut(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// Reads `pipe` to its end (or until more than `cap` bytes came), forwarding progress lines to
/// `progress` as they arrive.
pub async fn read<R: AsyncRead + Unpin>(
    pipe: Option<R>,
    cap: usize,
    progress: &mpsc::Sender<Progress>,
) -> Stdout {
    let mut out = Stdout::default();
    let Some(mut pipe) = pipe else {
        return out;
    };
    let mut total = 0usize;
    // The line being read; bounded by `cap` because every byte counts against it.
    let mut line: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        total += n;
        if total > cap {
            out.overflowed = true;
            return out;
        }
        let mut chunk = &buf[..n];
        while let Some(at) = chunk.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&chunk[..=at]);
            out.take_line(&line, progress);
            line.clear();
            chunk = &chunk[at + 1..];
        }
        line.extend_from_slice(chunk);
    }
    if !line.is_empty() {
        out.take_line(&line, progress);
    }
    if out.dropped > 0 {
        tracing::debug!(
            forwarded = out.forwarded,
            dropped = out.dropped,
            "some progress reports of the unit were dropped"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_all(bytes: &[u8], cap: usize, room: usize) -> (Stdout, Vec<Progress>) {
        let (tx, mut rx) = mpsc::channel(room);
        let out = read(Some(bytes), cap, &tx).await;
        drop(tx);
        let mut reports = Vec::new();
        while let Some(p) = rx.recv().await {
            reports.push(p);
        }
        (out, reports)
    }

    #[tokio::test]
    async fn progress_lines_are_forwarded_and_the_rest_is_the_result() {
        let stdout = b"{\"type\":\"progress\",\"progress\":0,\"total\":2}\n\
            {\n  \"content\": [{\"type\": \"text\", \"text\": \"hi\"}],\n\
            {\"type\":\"progress\",\"progress\":1,\"message\":\"half\"}\n\
            \"isError\": false\n}";
        let (out, reports) = read_all(stdout, 1 << 20, 16).await;
        assert_eq!(
            reports,
            vec![
                Progress {
                    progress: 0.0,
                    total: Some(2.0),
                    message: None
                },
                Progress {
                    progress: 1.0,
                    total: None,
                    message: Some("half".into())
                },
            ]
        );
        assert_eq!(
            String::from_utf8_lossy(&out.result),
            "{\n  \"content\": [{\"type\": \"text\", \"text\": \"hi\"}],\n\"isError\": false\n}"
        );
        assert!(!out.overflowed);
        assert_eq!((out.forwarded, out.dropped), (2, 0));
    }

    #[tokio::test]
    async fn malformed_progress_is_dropped_and_the_call_goes_on() {
        let stdout = b"{\"type\":\"progress\",\"progress\":\"most\"}\n\
            {\"type\":\"progress\",\"progress\":1,\"extra\":1}\n\
            {\"type\":\"progress\",\"progress\":1e999}\n\
            {\"content\":[]}\n";
        let (out, reports) = read_all(stdout, 1 << 20, 16).await;
        assert!(reports.is_empty(), "{reports:?}");
        assert_eq!(out.result, b"{\"content\":[]}\n");
        assert_eq!(out.dropped, 3);
    }

    #[tokio::test]
    async fn a_full_channel_drops_reports_without_blocking() {
        let mut stdout = Vec::new();
        for i in 0..50 {
            stdout.extend_from_slice(
                format!("{{\"type\":\"progress\",\"progress\":{i}}}\n").as_bytes(),
            );
        }
        stdout.extend_from_slice(b"{\"content\":[]}");
        let (out, reports) = read_all(&stdout, 1 << 20, 4).await;
        assert_eq!(reports.len(), 4);
        assert_eq!((out.forwarded, out.dropped), (4, 46));
        assert_eq!(out.result, b"{\"content\":[]}");
    }

    #[tokio::test]
    async fn reports_and_messages_are_bounded() {
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let mut stdout = Vec::new();
        for i in 0..MAX_REPORTS + 5 {
            let line = serde_json::json!({"type": "progress", "progress": i, "message": long});
            stdout.extend_from_slice(line.to_string().as_bytes());
            stdout.push(b'\n');
        }
        let (out, reports) = read_all(&stdout, 16 << 20, MAX_REPORTS + 10).await;
        assert_eq!(reports.len(), MAX_REPORTS);
        assert_eq!(out.dropped, 5);
        let message = reports[0].message.as_deref().unwrap_or_default();
        assert!(message.len() <= MAX_MESSAGE_BYTES && message.len() >= MAX_MESSAGE_BYTES - 1);
        assert!(out.result.is_empty());
    }

    #[tokio::test]
    async fn the_cap_counts_progress_lines_too() {
        let line = b"{\"type\":\"progress\",\"progress\":1}\n";
        let stdout = line.repeat(100);
        let (out, _) = read_all(&stdout, line.len() * 10, 1000).await;
        assert!(out.overflowed);
    }

    #[test]
    fn cutting_respects_characters() {
        assert_eq!(cut("abc".into(), 5), "abc");
        assert_eq!(cut("aé".into(), 2), "a");
        assert_eq!(cut("aé".into(), 3), "aé");
    }
}
