//! Tracing, initialised once per process.
//!
//! Logs go to standard error, as text for people (colored only on a
//! terminal) or JSON for collectors (`DONDOC_LOG_FORMAT=json`, written by
//! the `json` module), filtered by `DONDOC_LOG` (default `info`).
//! Every span carries an OpenTelemetry context, whether or not spans are
//! exported, so JSON log lines inside a request carry its `trace_id` and
//! `span_id`, and calls and events propagate W3C `traceparent`. When
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, spans are also exported over
//! OTLP/gRPC with `dondoc-<component>` as the service name; when it is not,
//! spans get their ids and nothing else (the `ids` module).
//!
//! Propagation helpers: [`current_traceparent`] (what an event or outgoing
//! call carries), [`context_from_traceparent`] and [`extract`] (the parent
//! of a server span), [`inject_current`] (outgoing metadata).

#![forbid(unsafe_code)]

mod ids;
mod json;

use std::collections::HashMap;
use std::fmt;
use std::io::IsTerminal as _;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TracerProvider as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

pub use opentelemetry;
pub use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Keeps the exporter alive; flushes spans when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (tests; before a planned exit).
    pub fn force_flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// How to initialise telemetry; [`init`] reads it from the environment.
pub struct Settings {
    /// `dondoc-<service>` is the exported service name.
    pub service: String,
    /// The log filter (`tracing` syntax).
    pub filter: String,
    /// One JSON object per line instead of text.
    pub json: bool,
    /// Export spans over OTLP/gRPC to this endpoint.
    pub otlp_endpoint: Option<String>,
    /// How often batched spans are exported.
    pub export_interval: Duration,
    /// Where log lines go; standard error when `None`.
    pub writer: Option<BoxMakeWriter>,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("service", &self.service)
            .field("filter", &self.filter)
            .field("json", &self.json)
            .field("otlp_endpoint", &self.otlp_endpoint)
            .field("export_interval", &self.export_interval)
            .finish_non_exhaustive()
    }
}

impl Settings {
    /// The settings of `service` from the environment: `DONDOC_LOG`,
    /// `DONDOC_LOG_FORMAT`, `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub fn from_env(service: &str) -> Self {
        Self {
            service: service.to_owned(),
            filter: std::env::var("DONDOC_LOG").unwrap_or_else(|_| "info".to_owned()),
            json: std::env::var("DONDOC_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json")),
            otlp_endpoint: std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|e| !e.trim().is_empty()),
            export_interval: Duration::from_secs(5),
            writer: None,
        }
    }
}

/// Installs the global subscriber for `service` from the environment. Call
/// once, at start-up, inside the Tokio runtime (the OTLP exporter's
/// connection lives on it).
pub fn init(service: &str) -> TelemetryGuard {
    init_with(Settings::from_env(service))
}

/// Installs the global subscriber with explicit settings. A second call in
/// the same process changes nothing (the first subscriber stays).
pub fn init_with(settings: Settings) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (subscriber, provider) = subscriber(settings);
    let installed = subscriber.try_init().is_ok();
    if installed && let Some(provider) = &provider {
        opentelemetry::global::set_tracer_provider(provider.clone());
    }
    TelemetryGuard {
        provider: provider.filter(|_| installed),
    }
}

/// The subscriber [`init_with`] installs, and the provider of its exporter
/// when spans are exported.
fn subscriber(
    settings: Settings,
) -> (
    impl tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync + 'static,
    Option<SdkTracerProvider>,
) {
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = log_layer(settings.json, settings.writer);
    // Spans always get an OpenTelemetry context (trace ids in logs,
    // propagation); only an endpoint adds an exporter, and with it the
    // layer that makes spans for it.
    let provider =
        settings
            .otlp_endpoint
            .as_deref()
            .and_then(|endpoint| match otlp_exporter(endpoint) {
                Ok(exporter) => Some(exporting_provider(
                    &settings.service,
                    exporter,
                    settings.export_interval,
                )),
                Err(error) => {
                    eprintln!("OpenTelemetry export disabled: {error}");
                    None
                }
            });
    let ids = match &provider {
        Some(provider) => exporting_layer(provider),
        None => ids::IdsLayer::default().boxed(),
    };
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(ids);
    (subscriber, provider)
}

/// The tracer provider that exports spans in batches every `interval`.
fn exporting_provider(
    service: &str,
    exporter: opentelemetry_otlp::SpanExporter,
    interval: Duration,
) -> SdkTracerProvider {
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_scheduled_delay(interval)
                .build(),
        )
        .build();
    SdkTracerProvider::builder()
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(format!("dondoc-{service}"))
                .build(),
        )
        .with_span_processor(processor)
        .build()
}

/// The layer that makes every span an OpenTelemetry span of `provider`'s,
/// to be exported; its context is made when the span is first entered (so
/// that log lines inside it carry its ids). It records what a trace needs:
/// the spans' own fields, and the events at `WARN` and above as span events
/// (the access log line of every call would only repeat its span's
/// attributes). Not the source location (every server span is opened by
/// the same layer) or the thread (a call moves between threads): those cost
/// attributes, and the thread's name an allocation, on every span.
fn exporting_layer<S>(provider: &SdkTracerProvider) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a> + Send + Sync,
{
    tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("dondoc"))
        .with_tracked_inactivity(false)
        .with_location(false)
        .with_threads(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|metadata| {
            metadata.is_span() || *metadata.level() <= tracing::Level::WARN
        }))
        .boxed()
}

/// The layer that writes log lines to `writer`, standard error when `None`:
/// JSON with the trace ids, or text, colored only on a terminal (escape
/// codes in a file or a collector are noise).
fn log_layer<S>(json: bool, writer: Option<BoxMakeWriter>) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let ansi = writer.is_none() && std::io::stderr().is_terminal();
    let writer = writer.unwrap_or_else(|| BoxMakeWriter::new(std::io::stderr));
    if json {
        tracing_subscriber::fmt::layer()
            .fmt_fields(json::JsonFields)
            .event_format(json::JsonLines)
            .with_writer(writer)
            .boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_ansi(ansi)
            .with_writer(writer)
            .boxed()
    }
}

fn otlp_exporter(endpoint: &str) -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .with_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| e.to_string())
}

/// The current span's context as a W3C `traceparent`, or an empty string
/// when there is none (no subscriber, or outside any span).
pub fn current_traceparent() -> String {
    traceparent_of(&tracing::Span::current())
}

/// A span's context as a W3C `traceparent`, or an empty string.
pub fn traceparent_of(span: &tracing::Span) -> String {
    let Some(span_context) = span_context_of(span) else {
        return String::new();
    };
    // As `TraceContextPropagator` writes it, without the map it writes into.
    format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags() & TraceFlags::SAMPLED
    )
}

/// The 32-hex-digit trace id of a span, when it has one.
pub fn trace_id_of(span: &tracing::Span) -> Option<String> {
    span_context_of(span).map(|context| context.trace_id().to_string())
}

/// A span's OpenTelemetry context, when it has a valid one: from the ids
/// layer when nothing is exported, from the exporting layer otherwise.
fn span_context_of(span: &tracing::Span) -> Option<SpanContext> {
    ids::with_span_ids(span, |ids| ids.0.clone()).or_else(|| {
        let context = span.context();
        let span = context.span();
        let span_context = span.span_context();
        span_context.is_valid().then(|| span_context.clone())
    })
}

/// The remote context in a `traceparent` value (invalid when malformed or
/// empty).
pub fn context_from_traceparent(traceparent: &str) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    TraceContextPropagator::new().extract(&carrier)
}

/// The remote span context of a `traceparent`, when valid: what a consumer
/// links its work to.
pub fn span_context_from_traceparent(traceparent: &str) -> Option<SpanContext> {
    let context = context_from_traceparent(traceparent);
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then_some(span_context)
}

/// The remote context in HTTP headers (`traceparent`, `tracestate`).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

/// Makes `span` the child of the remote parent in `headers`, when there is
/// a valid one. Call before the span is first entered.
pub fn set_remote_parent(span: &tracing::Span, headers: &http::HeaderMap) {
    let parent = extract(headers);
    let remote = parent.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    if ids::with_span_ids(span, |ids| ids.continue_remote(&remote)).is_none() {
        let _ = span.set_parent(parent);
    }
}

/// Writes the current span's `traceparent` (and `tracestate`) into
/// outgoing HTTP headers (a service-to-service call), when there is one.
pub fn inject_current(headers: &mut http::HeaderMap) {
    if let Some(span_context) = span_context_of(&tracing::Span::current()) {
        let context = opentelemetry::Context::new().with_remote_span_context(span_context);
        TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    /// Log lines written into memory (the crate's tests write through it).
    #[derive(Clone, Default)]
    pub(crate) struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Lines {
        /// Everything written so far.
        pub(crate) fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
        type Writer = Lines;
        fn make_writer(&'a self) -> Lines {
            self.clone()
        }
    }

    #[test]
    fn text_lines_written_anywhere_but_a_terminal_carry_no_escape_codes() {
        let lines = Lines::default();
        let layer = log_layer(false, Some(BoxMakeWriter::new(lines.clone())));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info_span!("grpc.server", rpc.method = "GetTask").in_scope(|| {
                tracing::info!(target: "dondoc_gateway::access", code = 0, "call");
            });
        });
        let text = lines.text();
        assert!(
            text.contains("INFO") && text.contains("call") && text.contains("code=0"),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "escape codes in {text:?}");
    }

    fn settings(json: bool, lines: &Lines) -> Settings {
        Settings {
            service: "test".into(),
            filter: "info".into(),
            json,
            otlp_endpoint: None,
            export_interval: Duration::from_secs(5),
            writer: Some(BoxMakeWriter::new(lines.clone())),
        }
    }

    fn traceparent_header(value: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        headers.insert("traceparent", value.parse().unwrap());
        headers
    }

    #[test]
    fn json_lines_inside_a_span_carry_its_ids_when_nothing_is_exported() {
        let lines = Lines::default();
        let (subscriber, provider) = subscriber(settings(true, &lines));
        assert!(provider.is_none());
        let (root, child, remote, unsampled) =
            tracing::subscriber::with_default(subscriber, || {
                tracing::info!("outside");
                let root = tracing::info_span!("grpc.server");
                let child = tracing::info_span!(parent: &root, "db.transaction");
                child.in_scope(|| {
                    // The gateway's access line has a trace_id field of its own.
                    tracing::info!(trace_id = "from-the-field", "call");
                });
                let remote = tracing::info_span!("grpc.server");
                set_remote_parent(
                    &remote,
                    &traceparent_header("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                );
                remote.in_scope(|| tracing::info!("remote"));
                let unsampled = tracing::info_span!("grpc.server");
                set_remote_parent(
                    &unsampled,
                    &traceparent_header("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
                );
                // Written as the propagator writes it, and sent so by
                // inject_current.
                for span in [&root, &unsampled] {
                    let context = opentelemetry::Context::new()
                        .with_remote_span_context(span_context_of(span).unwrap());
                    let mut carrier = HashMap::new();
                    TraceContextPropagator::new().inject_context(&context, &mut carrier);
                    assert_eq!(carrier["traceparent"], traceparent_of(span));
                    let mut headers = http::HeaderMap::new();
                    span.in_scope(|| inject_current(&mut headers));
                    assert_eq!(headers["traceparent"], carrier["traceparent"].as_str());
                }
                assert_eq!(
                    trace_id_of(&root).unwrap(),
                    traceparent_of(&root).split('-').nth(1).unwrap()
                );
                assert_eq!(trace_id_of(&tracing::Span::none()), None);
                assert_eq!(traceparent_of(&tracing::Span::none()), "");
                (
                    traceparent_of(&root),
                    traceparent_of(&child),
                    traceparent_of(&remote),
                    traceparent_of(&unsampled),
                )
            });
        let text = lines.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let part = |traceparent: &str, i: usize| traceparent.split('-').nth(i).unwrap().to_owned();

        assert!(lines[0].get("trace_id").is_none(), "{}", lines[0]);
        // A root span starts a sampled trace; its child continues it.
        assert!(root.ends_with("-01"), "{root}");
        assert_eq!(part(&child, 1), part(&root, 1));
        assert_ne!(part(&child, 2), part(&root, 2));
        assert_eq!(lines[1]["trace_id"], part(&child, 1));
        assert_eq!(lines[1]["span_id"], part(&child, 2));
        assert_eq!(lines[1]["fields"]["trace_id"], "from-the-field");
        // A remote parent's trace and flags are kept.
        assert_eq!(part(&remote, 1), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(part(&remote, 2), "00f067aa0ba902b7");
        assert!(remote.ends_with("-01"), "{remote}");
        assert_eq!(lines[2]["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(lines[2]["span_id"], part(&remote, 2));
        assert!(unsampled.ends_with("-00"), "{unsampled}");
        assert_eq!(part(&unsampled, 1), "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}
