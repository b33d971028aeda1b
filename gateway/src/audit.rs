//! The audit trail: one JSON line per tool call, written and flushed before the caller gets its
//! answer. It never holds a token, a credential or raw arguments (only their SHA-256).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Serialize;

/// One call as the audit trail records it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRecord {
    /// RFC 3339 time the call arrived.
    pub time: String,
    pub invocation_id: String,
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The MCP session (2025-11-25 revision) the call came in, whichever replica served it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub tool: String,
    pub arguments_sha256: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backend: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role_session_arn: Option<String>,
    /// ok, tool_error, invalid_arguments, unknown_tool, denied, cancelled, deadline_exceeded,
    /// shutdown, busy, start_failed, start_timeout, unit_failed, forged_result, not_configured,
    /// approval_required, approval_refused, approval_denied, approval_unavailable, turned_off.
    pub outcome: &'static str,
    /// Why a call did not complete, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub duration_ms: u64,
    pub bytes_in: usize,
    pub bytes_out: usize,
    /// The approval the call ran under, for a tool that needs one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// Who approved it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approver: Option<String>,
    /// When they did, RFC 3339.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved_at: Option<String>,
}

/// Where audit lines go.
#[derive(Clone)]
pub struct AuditSink {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl std::fmt::Debug for AuditSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditSink")
    }
}

impl AuditSink {
    /// Appends to a file (created 0600 if missing).
    pub fn file(path: &Path) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self::writer(Box::new(file)))
    }

    /// Writes to standard output.
    pub fn stdout() -> Self {
        Self::writer(Box::new(std::io::stdout()))
    }

    pub fn writer(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: Arc::new(Mutex::new(out)),
        }
    }

    /// Writes one record as one line and flushes it. A write failure is logged, never hidden.
    pub fn record(&self, record: &AuditRecord) {
        self.write_line(record, &record.invocation_id);
    }

    /// Writes a line that is not a call's (an approval's request or decision: its `event`
    /// field says which), the same way.
    pub fn event<T: Serialize>(&self, event: &T, id: &str) {
        self.write_line(event, id);
    }

    fn write_line<T: Serialize>(&self, record: &T, id: &str) {
        let mut line = match serde_json::to_vec(record) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "cannot serialize audit record");
                return;
            }
        };
        line.push(b'\n');
        let mut out = match self.out.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = out.write_all(&line).and_then(|()| out.flush()) {
            tracing::error!(error = %e, id, "audit write failed");
        }
    }
}

/// A sink that keeps lines in memory (for tests).
#[derive(Debug, Clone, Default)]
pub struct MemoryAudit(pub Arc<Mutex<Vec<u8>>>);

impl Write for MemoryAudit {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut v = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        v.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl MemoryAudit {
    /// The records written so far.
    pub fn records(&self) -> Vec<serde_json::Value> {
        let v = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        String::from_utf8_lossy(&v)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}
