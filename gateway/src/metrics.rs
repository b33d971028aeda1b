//! Prometheus metrics: calls by tool and outcome, call latency, calls in flight, and refused
//! requests by reason. One registry per gateway (no process-global state).

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::aws::AwsErrors;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    tool: String,
    outcome: String,
}

/// The `tool` label.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ToolLabel {
    tool: String,
}

impl ToolLabel {
    pub fn new(tool: &str) -> Self {
        Self { tool: tool.into() }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendCallLabels {
    backend: String,
    outcome: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BackendLabel {
    backend: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// The gateway's metrics.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    calls: Family<CallLabels, Counter>,
    latency: Family<ToolLabel, Histogram>,
    in_flight: Gauge,
    rejected: Family<ReasonLabel, Counter>,
    backend_calls: Family<BackendCallLabels, Counter>,
    backend_latency: Family<BackendLabel, Histogram>,
    aws_errors: AwsErrors,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// The gateway's own metrics only.
    pub fn new() -> Self {
        Self::with_registered(&AwsErrors::default(), |_| {})
    }

    /// The gateway's metrics, the AWS error counters, and what `register` adds to the registry
    /// (each backend's own counters, for example the local sandbox's endpoint-proxy refusals:
    /// `Backends::register_metrics`).
    pub fn with_registered(aws_errors: &AwsErrors, register: impl FnOnce(&mut Registry)) -> Self {
        let mut registry = Registry::with_prefix("switchboard");
        let calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "tool_calls",
            "Tool calls by tool and outcome",
            calls.clone(),
        );
        let latency = Family::<ToolLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 900.0,
            ])
        });
        registry.register(
            "tool_call_duration_seconds",
            "Tool call latency, end to end",
            latency.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "tool_calls_in_flight",
            "Tool calls running now",
            in_flight.clone(),
        );
        let rejected = Family::<ReasonLabel, Counter>::default();
        registry.register(
            "requests_rejected",
            "Requests refused before dispatch, by reason",
            rejected.clone(),
        );
        let backend_calls = Family::<BackendCallLabels, Counter>::default();
        registry.register(
            "backend_calls",
            "Tool calls by backend and outcome",
            backend_calls.clone(),
        );
        let backend_latency = Family::<BackendLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 900.0,
            ])
        });
        registry.register(
            "backend_call_duration_seconds",
            "Tool call latency by backend, end to end",
            backend_latency.clone(),
        );
        aws_errors.register(&mut registry);
        register(&mut registry);
        Self {
            registry: Arc::new(registry),
            calls,
            latency,
            in_flight,
            rejected,
            backend_calls,
            backend_latency,
            aws_errors: aws_errors.clone(),
        }
    }

    /// The AWS error counters (shared with the broker and the AWS backends).
    pub fn aws_errors(&self) -> &AwsErrors {
        &self.aws_errors
    }

    /// Counts one finished call; `backend` is `None` when the call never reached one (unknown
    /// tool, denied).
    pub fn call_finished(&self, tool: &str, backend: Option<&str>, outcome: &str, seconds: f64) {
        if let Some(backend) = backend {
            self.backend_calls
                .get_or_create(&BackendCallLabels {
                    backend: backend.into(),
                    outcome: outcome.into(),
                })
                .inc();
            self.backend_latency
                .get_or_create(&BackendLabel {
                    backend: backend.into(),
                })
                .observe(seconds);
        }
        self.calls
            .get_or_create(&CallLabels {
                tool: tool.into(),
                outcome: outcome.into(),
            })
            .inc();
        self.latency
            .get_or_create(&ToolLabel::new(tool))
            .observe(seconds);
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Counts one call in flight until the guard drops.
    pub fn in_flight(&self) -> InFlight {
        self.in_flight.inc();
        InFlight(self.in_flight.clone())
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::error!("metrics encoding failed");
        }
        out
    }
}

/// Decrements the in-flight gauge when dropped.
#[derive(Debug)]
pub struct InFlight(Gauge);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}
