//! [`Deadline`]: the one clock of a call. The handler creates it when the call is admitted; the
//! credential broker, the backends and the handler's own watcher all read this value. Unix time
//! appears only where a deadline goes on the wire ([`Deadline::unix_ms`] in the invocation,
//! [`Deadline::rfc3339`] in a session policy).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// `d` in whole milliseconds, for logs and the wire (saturating: no duration here comes near
/// `u64::MAX` milliseconds, but none may wrap if one did).
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// When a call must be over: a monotonic instant, and the wall-clock time it stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    at: Instant,
    wall: SystemTime,
    timeout: Duration,
}

impl Deadline {
    /// The deadline `timeout` from now.
    pub fn after(timeout: Duration) -> Self {
        Self {
            at: Instant::now() + timeout,
            wall: SystemTime::now() + timeout,
            timeout,
        }
    }

    /// The monotonic instant the call must be over by.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The whole time the call was given.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The deadline as Unix milliseconds, for the wire (the invocation's `deadlineUnixMs`).
    pub fn unix_ms(&self) -> u64 {
        self.wall
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .unwrap_or(0)
    }

    /// The deadline as RFC 3339 UTC with second precision, rounded up (`2026-12-01T10:00:05Z`),
    /// for IAM's `aws:CurrentTime` conditions.
    pub fn rfc3339(&self) -> String {
        let secs = self
            .wall
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0))
            .unwrap_or(0);
        let format =
            time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
        time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(i64::MAX))
            .ok()
            .and_then(|t| t.format(&format).ok())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remaining_shrinks_and_the_wire_forms_agree() {
        let d = Deadline::after(Duration::from_secs(30));
        assert!(d.remaining() <= Duration::from_secs(30));
        assert!(d.remaining() > Duration::from_secs(29));
        assert!(!d.passed());
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(millis)
            .expect("clock");
        assert!(d.unix_ms() >= now_ms + 29_000 && d.unix_ms() <= now_ms + 30_000);
        let text = d.rfc3339();
        assert_eq!(text.len(), "2026-12-01T10:00:05Z".len(), "{text}");
        let parsed =
            time::OffsetDateTime::parse(&text, &time::format_description::well_known::Rfc3339)
                .expect("RFC 3339");
        let secs = u64::try_from(parsed.unix_timestamp()).expect("after 1970");
        assert!(secs * 1000 >= d.unix_ms() && secs * 1000 < d.unix_ms() + 1000);
    }

    #[tokio::test]
    async fn a_zero_deadline_has_passed() {
        let d = Deadline::after(Duration::ZERO);
        assert!(d.passed());
        assert_eq!(d.remaining(), Duration::ZERO);
    }
}
