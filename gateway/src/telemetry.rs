//! Logs and traces: the log filter and format, and OpenTelemetry spans exported over OTLP.
//!
//! **Logs** go to stderr, as text or (`--log-json`) one JSON object per line. `RUST_LOG` sets the
//! filter; without it, [`DEFAULT_LOG_FILTER`]: the gateway's own events at `info` (one line per
//! call, and the events that matter: start, refusals, shutdown), every library at `warn`, and
//! the MCP transport (rmcp) at `error`, since its warnings are one line per client mistake that
//! the gateway's own line already reports. `RUST_LOG=debug` shows everything.
//!
//! **Traces** are built only when an OTLP endpoint is configured with the standard variables
//! (`OTEL_EXPORTER_OTLP_ENDPOINT` or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`; `OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`,
//! `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*` are read by the SDK). Without one, no exporter, tracer or
//! tracing layer exists, and the call's spans (at `debug` level) cost what a disabled `tracing`
//! span costs. Only `http/protobuf` is spoken (`OTEL_EXPORTER_OTLP_PROTOCOL`); `OTEL_SDK_DISABLED=true`
//! or `OTEL_TRACES_EXPORTER=none` turn the export off.
//!
//! A call's spans ([`call_span`] and the steps under it) carry the invocation id and the tool
//! (`switchboard.invocation_id`, `switchboard.tool`). A W3C `traceparent` from the client makes
//! the call span its child; the unit gets the traceparent of its `unit` span ([`traceparent`]),
//! or, when traces are off, the client's own, so the unit's spans stay in the client's trace.

use std::sync::OnceLock;

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The log filter when `RUST_LOG` is not set (see the module docs).
pub const DEFAULT_LOG_FILTER: &str =
    "warn,switchboard=info,switchboard_gateway=info,switchboard_sandbox=info,rmcp=error";

/// The name of the tracer, and of the service when `OTEL_SERVICE_NAME` does not say.
pub const SERVICE_NAME: &str = "switchboard";

/// Why logs or traces could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error(
        "OTEL_EXPORTER_OTLP_PROTOCOL={0:?}: switchboard exports traces over OTLP http/protobuf \
         only; unset the variable or set it to http/protobuf"
    )]
    Protocol(String),
    #[error("cannot build the OTLP trace exporter: {0}")]
    Exporter(String),
    #[error("cannot install the log subscriber: {0}")]
    Subscriber(String),
}

/// Whether spans are exported (set once, by [`init`]).
static EXPORTING: OnceLock<bool> = OnceLock::new();

/// Whether this process exports traces.
pub fn exporting() -> bool {
    EXPORTING.get().copied().unwrap_or(false)
}

/// What [`init`] set up; [`Telemetry::shutdown`] exports the spans still buffered.
#[derive(Debug)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether traces are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flushes and stops the exporter: every span ended so far is sent (or the export's own
    /// timeout passes). Call it outside any tokio runtime, after the gateway stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            eprintln!("switchboard: exporting the last spans failed: {e}");
        }
    }
}

/// Whether the standard OTEL_* variables (read through `var`) ask for traces over OTLP.
fn otlp_configured(var: impl Fn(&str) -> Option<String>) -> Result<bool, TelemetryError> {
    let set = |name: &str| var(name).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
        || set("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        return Ok(false);
    }
    if set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
    {
        return Ok(false);
    }
    for name in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = set(name) {
            if p != "http/protobuf" {
                return Err(TelemetryError::Protocol(p));
            }
            break;
        }
    }
    Ok(true)
}

/// Installs the log subscriber and, when an OTLP endpoint is configured, the tracer. Must run
/// before any tokio runtime starts (the exporter's HTTP client is a blocking one).
pub fn init(log_json: bool) -> Result<Telemetry, TelemetryError> {
    let provider = if otlp_configured(|k| std::env::var(k).ok())? {
        Some(tracer_provider()?)
    } else {
        None
    };
    let _ = EXPORTING.set(provider.is_some());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let logs = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if log_json {
        logs.json().with_filter(filter).boxed()
    } else {
        logs.with_filter(filter).boxed()
    };
    let traces = provider.as_ref().map(|p| {
        use opentelemetry::trace::TracerProvider as _;
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer(SERVICE_NAME))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                // The call's spans, and the gateway's own events inside them (as span events);
                // nothing of the libraries, the exporter's HTTP client least of all.
                meta.target().starts_with("switchboard")
                    && (meta.is_span() || *meta.level() <= tracing::Level::INFO)
            }))
    });
    tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init()
        .map_err(|e| TelemetryError::Subscriber(e.to_string()))?;
    if provider.is_some() {
        let endpoint = [
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ]
        .into_iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
        .unwrap_or_default();
        tracing::info!(%endpoint, "exporting traces over OTLP (http/protobuf)");
    }
    Ok(Telemetry { provider })
}

fn tracer_provider() -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::WithExportConfig as _;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| SERVICE_NAME.into());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// The client's trace context from a request's `traceparent` (and `tracestate`) headers: empty
/// when there is none or it is not valid W3C Trace Context.
pub fn client_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    if !headers.contains_key("traceparent") {
        return opentelemetry::Context::new();
    }
    TraceContextPropagator::new().extract(&opentelemetry_http::HeaderExtractor(headers))
}

/// The `traceparent` header value naming `cx`'s span, when it has a valid one.
pub fn traceparent_of(cx: &opentelemetry::Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = std::collections::HashMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove("traceparent")
}

/// The traceparent a unit gets: `span`'s own when traces are exported, otherwise the client's
/// (`client`), so that what the unit records joins the client's trace either way.
pub fn traceparent(span: &tracing::Span, client: Option<&str>) -> Option<String> {
    if exporting()
        && let Some(own) = traceparent_of(&span.context())
    {
        return Some(own);
    }
    client.map(str::to_owned)
}

/// One `tools/call` as traces see it, begun by the HTTP layer when it reads the request (so that
/// authentication is a step of the call) and carried to the handler in the request's
/// extensions.
#[derive(Debug, Clone)]
pub struct CallTrace {
    /// The call's invocation id, given here so that every span of the call carries it.
    pub invocation_id: String,
    pub tool: String,
    /// The `tools/call` span.
    pub span: tracing::Span,
    /// The client's W3C `traceparent`, when it sent a valid one.
    pub client_traceparent: Option<String>,
}

impl CallTrace {
    /// Begins the call's span, under the client's span when `headers` name one.
    pub fn begin(invocation_id: String, tool: String, headers: &http::HeaderMap) -> Self {
        let client = client_context(headers);
        let client_traceparent = traceparent_of(&client);
        let span = call_span(&invocation_id, &tool, &client);
        Self {
            invocation_id,
            tool,
            span,
            client_traceparent,
        }
    }

    /// Records how the call ended on its span (an audit label: `ok`, `denied`, ...).
    pub fn finish(&self, outcome: &str, succeeded: bool) {
        self.span.record("switchboard.outcome", outcome);
        self.span
            .record("otel.status_code", if succeeded { "ok" } else { "error" });
    }
}

/// The span of one `tools/call`, a child of the client's span when it sent one (`client`).
pub fn call_span(
    invocation_id: &str,
    tool: &str,
    client: &opentelemetry::Context,
) -> tracing::Span {
    let span = tracing::debug_span!(
        target: "switchboard_gateway::call",
        "tools/call",
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
        switchboard.invocation_id = %invocation_id,
        switchboard.tool = %tool,
        switchboard.backend = tracing::field::Empty,
        switchboard.outcome = tracing::field::Empty,
    );
    if exporting() && client.span().span_context().is_valid() {
        let _ = span.set_parent(client.clone());
    }
    span
}

/// A step of a call (`authenticate`, `authorize`, `mint_credentials`, `dispatch`, `unit`), under
/// `parent`, with the call's invocation id and tool.
macro_rules! step_span {
    ($parent:expr, $name:literal, $invocation_id:expr, $tool:expr $(, $($field:tt)*)?) => {
        tracing::debug_span!(
            target: "switchboard_gateway::call",
            parent: $parent,
            $name,
            switchboard.invocation_id = %$invocation_id,
            switchboard.tool = %$tool,
            $($($field)*)?
        )
    };
}
pub(crate) use step_span;

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert!(!otlp_configured(vars(&[])).expect("no error"));
        assert!(!otlp_configured(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])).expect("ok"));
        assert!(!otlp_configured(vars(&[("OTEL_SERVICE_NAME", "x")])).expect("ok"));
    }

    #[test]
    fn an_endpoint_turns_export_on_unless_disabled() {
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")];
        assert!(otlp_configured(vars(&on)).expect("ok"));
        let traces = [(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "http://c:4318/v1/traces",
        )];
        assert!(otlp_configured(vars(&traces)).expect("ok"));
        for off in [
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert!(!otlp_configured(vars(&[on[0], off])).expect("ok"));
        }
    }

    #[test]
    fn only_http_protobuf_is_spoken() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        let ok = [on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")];
        assert!(otlp_configured(vars(&ok)).expect("ok"));
        let grpc = [on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")];
        assert!(matches!(
            otlp_configured(vars(&grpc)),
            Err(TelemetryError::Protocol(p)) if p == "grpc"
        ));
        // The per-signal variable wins over the general one.
        let both = [
            on,
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ];
        assert!(otlp_configured(vars(&both)).expect("ok"));
    }

    #[test]
    fn a_valid_client_traceparent_is_read_and_written_back() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", http::HeaderValue::from_static(tp));
        let cx = client_context(&headers);
        assert_eq!(traceparent_of(&cx).as_deref(), Some(tp));
        // Not exporting: the unit gets the client's own.
        assert_eq!(
            traceparent(&tracing::Span::none(), Some(tp)).as_deref(),
            Some(tp)
        );
    }

    #[test]
    fn an_invalid_or_absent_traceparent_is_no_context() {
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        ] {
            let mut headers = http::HeaderMap::new();
            headers.insert("traceparent", http::HeaderValue::from_static(bad));
            assert_eq!(traceparent_of(&client_context(&headers)), None, "{bad}");
        }
        assert_eq!(
            traceparent_of(&client_context(&http::HeaderMap::new())),
            None
        );
    }
}
