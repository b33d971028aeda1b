//! The AWS plumbing every AWS path of the gateway shares: the clients' configuration and the
//! deployment's bindings ([`Aws`]), the one retry spacing ([`Backoff`]), the one reading of a
//! failed SDK request ([`SdkFailure`]: code, message, throttling), the AWS error counter
//! ([`AwsErrors`]) and the cutting of long texts ([`cut`]).
//!
//! The credential broker (STS) and the AWS backends (Lambda, ECS and S3) use these and nothing
//! of each other.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_sts::config::http::HttpResponse;
use aws_sdk_sts::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use rand::Rng as _;

use crate::bindings::Bindings;

/// What the AWS side of a gateway shares: the deployment's bindings, the SDK configuration
/// (the standard credential chain; `AWS_ENDPOINT_URL` points every client at an emulator) and
/// the AWS error counters.
#[derive(Debug, Clone)]
pub struct Aws {
    pub bindings: Bindings,
    pub config: aws_config::SdkConfig,
    pub errors: AwsErrors,
}

impl Aws {
    /// Loads the SDK configuration for `bindings`, which [`crate::preflight::check`] has checked
    /// against the catalog.
    pub async fn load(bindings: Bindings) -> Self {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(bindings.region.clone()))
            .load()
            .await;
        Self {
            bindings,
            config,
            errors: AwsErrors::default(),
        }
    }

    /// Work role ARN by tool, for the tools whose binding has one.
    pub fn work_roles(&self) -> HashMap<String, String> {
        self.bindings
            .tools
            .iter()
            .filter_map(|(name, b)| Some((name.clone(), b.work_role_arn.clone()?)))
            .collect()
    }
}

/// How retried attempts are spaced: capped exponential backoff with full jitter, for at most
/// `max_attempts` attempts and never past the time left. Every AWS retry of the gateway (STS
/// throttling, Lambda throttling, ECS `RunTask` throttling, the Fargate polls) uses this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first pause; it doubles with each retry.
    pub base: Duration,
    /// The ceiling no pause goes over.
    pub cap: Duration,
    /// Attempts in all, the first included.
    pub max_attempts: u32,
}

impl Default for Backoff {
    /// The credential broker's: 100 ms doubling up to 2 s, 8 attempts.
    fn default() -> Self {
        Self {
            base: Duration::from_millis(100),
            cap: Duration::from_secs(2),
            max_attempts: 8,
        }
    }
}

impl Backoff {
    /// The pause before retry number `retry` (1 for the first): uniform in
    /// `[0, min(cap, base * 2^(retry - 1))]` ("full jitter").
    pub fn pause(&self, retry: u32) -> Duration {
        let doubling = 2u32.saturating_pow(retry.saturating_sub(1));
        let ceiling = self.base.saturating_mul(doubling).min(self.cap);
        let micros = u64::try_from(ceiling.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::thread_rng().gen_range(0..=micros))
    }

    /// The pause before the next attempt, after `attempts` attempts and with `remaining` time
    /// left; `None` when the attempt limit is reached or the pause would not end in time.
    pub fn next_pause(&self, attempts: u32, remaining: Duration) -> Option<Duration> {
        let pause = self.pause(attempts);
        (attempts < self.max_attempts && pause < remaining).then_some(pause)
    }
}

/// Error codes AWS uses for throttling (STS answers `Throttling`, ECS `ThrottlingException`,
/// Lambda `TooManyRequestsException`; the others come from the SDKs' shared list, so a proxy or
/// a future change of a service is covered too).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "BandwidthLimitExceeded",
    "PriorRequestNotComplete",
];

/// Whether an answer is throttling: a throttling error code, or HTTP 429 or 503 (what AWS
/// answers when it sheds load, with or without a code).
pub fn is_throttling(code: Option<&str>, status: Option<u16>) -> bool {
    matches!(status, Some(429 | 503)) || code.is_some_and(|c| THROTTLING_CODES.contains(&c))
}

/// One failed SDK request, read once: what the service answered (its error code, message and
/// HTTP status), or, when no usable answer came (could not connect, timed out, an answer that
/// does not parse), the whole error in words. Every SDK crate re-exports the same smithy error
/// types; the STS crate's paths name them here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdkFailure {
    /// The service's error code, when it answered with one.
    pub code: Option<String>,
    /// The service's error message, when it answered with one.
    pub message: Option<String>,
    /// The HTTP status, when the service answered with an error.
    pub status: Option<u16>,
    /// The whole error with its sources, in words.
    pub context: String,
}

impl SdkFailure {
    pub fn read<E>(error: &SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        let status = match error {
            SdkError::ServiceError(service) => Some(service.raw().status().as_u16()),
            _ => None,
        };
        Self {
            code: error.code().map(str::to_owned),
            message: error.message().map(str::to_owned),
            status,
            context: DisplayErrorContext(error).to_string(),
        }
    }

    /// The error code, `unknown` without one (what the error counter counts).
    pub fn code_or_unknown(&self) -> &str {
        self.code.as_deref().unwrap_or("unknown")
    }

    /// The service's message, or else the error in words, cut to `max` characters.
    pub fn text(&self, max: usize) -> String {
        match &self.message {
            Some(message) => message.clone(),
            None => cut(&self.context, max),
        }
    }

    /// Whether the service is throttling ([`is_throttling`]).
    pub fn is_throttling(&self) -> bool {
        is_throttling(self.code.as_deref(), self.status)
    }

    /// Whether the service refused the request for its rate before doing anything: throttling
    /// answered with HTTP 429 Too Many Requests. What a request that must not run twice may
    /// retry (a 503 may come after the work began).
    pub fn is_refused_for_rate(&self) -> bool {
        self.status == Some(429) && self.is_throttling()
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AwsErrorLabels {
    service: String,
    code: String,
}

/// AWS API errors by service and error code (`switchboard_aws_errors_total`), counted by the
/// credential broker (service `sts`) and the AWS backends (`lambda`, ...). Cheap to clone; every
/// clone counts into the same family.
#[derive(Debug, Clone, Default)]
pub struct AwsErrors(Family<AwsErrorLabels, Counter>);

impl AwsErrors {
    pub fn count(&self, service: &str, code: &str) {
        self.0
            .get_or_create(&AwsErrorLabels {
                service: service.into(),
                code: code.into(),
            })
            .inc();
    }

    /// Counts `failure` under `service` by its code (`unknown` without one).
    pub fn count_failure(&self, service: &str, failure: &SdkFailure) {
        self.count(service, failure.code_or_unknown());
    }

    /// Errors counted so far for `service` and `code`.
    pub fn get(&self, service: &str, code: &str) -> u64 {
        self.0
            .get_or_create(&AwsErrorLabels {
                service: service.into(),
                code: code.into(),
            })
            .get()
    }

    /// Adds the counter to a metrics registry.
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "aws_errors",
            "AWS API errors by service (sts, lambda) and error code",
            self.0.clone(),
        );
    }
}

/// At most `max` characters of `text`, with a note when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max).collect();
    out.push_str(" … (cut)");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_capped_full_jitter() {
        let b = Backoff::default();
        for retry in 1..=20 {
            let ceiling = (b.base * 2u32.saturating_pow(retry - 1)).min(b.cap);
            for _ in 0..50 {
                assert!(b.pause(retry) <= ceiling, "retry {retry}");
            }
        }
        // Jittered: not the same pause every time.
        let pauses: std::collections::HashSet<Duration> = (0..50).map(|_| b.pause(5)).collect();
        assert!(pauses.len() > 1);
        assert!(b.pause(u32::MAX) <= b.cap);
    }

    #[test]
    fn backoff_stops_at_its_attempt_limit_and_at_the_time_left() {
        let b = Backoff::default();
        let plenty = Duration::from_secs(60);
        assert!(b.next_pause(1, plenty).is_some());
        assert!(b.next_pause(b.max_attempts - 1, plenty).is_some());
        assert!(b.next_pause(b.max_attempts, plenty).is_none());
        assert!(b.next_pause(1, Duration::ZERO).is_none());
    }

    #[test]
    fn throttling_is_recognised_by_code_and_by_status() {
        for code in [
            "Throttling",
            "ThrottlingException",
            "TooManyRequestsException",
        ] {
            assert!(is_throttling(Some(code), Some(400)), "{code}");
        }
        assert!(is_throttling(None, Some(429)));
        assert!(is_throttling(Some("ServiceUnavailable"), Some(503)));
        assert!(!is_throttling(Some("InvalidParameterException"), Some(400)));
        assert!(!is_throttling(None, Some(500)));
        assert!(!is_throttling(None, None));
    }

    #[test]
    fn long_texts_are_cut_with_a_note() {
        let long = "x".repeat(110);
        let out = cut(&long, 100);
        assert!(out.ends_with("(cut)"));
        assert_eq!(out.chars().filter(|c| *c == 'x').count(), 100);
        assert_eq!(cut("short", 10), "short");
    }
}
