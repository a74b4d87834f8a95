//! JSON log lines, written straight into the line.
//!
//! The same objects as `tracing-subscriber`'s JSON format with the current
//! span and the span list (`timestamp`, `level`, `fields`, `target`, `span`,
//! `spans`), plus the OpenTelemetry `trace_id` and `span_id` of the
//! innermost span that has them (from the ids layer, or the exporting one). That format serialises through `serde`
//! into an `io::Write` adaptor that checks every few bytes for UTF-8, and
//! parses each span's stored fields back from JSON for every line (twice:
//! the span and the list); at the gateway's one line per call, that was
//! most of what logging cost. Here a span's fields are stored once as the
//! text of a JSON object and copied into each line as they are.

use std::fmt::{self, Write as _};

use tracing::field::{Field, Visit};
use tracing::span::Record;
use tracing_opentelemetry::OtelData;

use crate::ids::SpanIds;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Stores a span's fields as the text of one JSON object.
#[derive(Debug, Default)]
pub(crate) struct JsonFields;

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut object = String::new();
        write_object(&mut object, |entries| fields.record(entries));
        writer.write_str(&object)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &Record<'_>,
    ) -> fmt::Result {
        let mut text = String::new();
        let mut added = Entries::new(&mut text);
        added.names = Some(Vec::new());
        fields.record(&mut added);
        let names = added.names.unwrap_or_default();
        let already_there = names.iter().any(|name| has_key(&current.fields, name));
        if already_there {
            // A field recorded again: the latest value wins, as it does in
            // an event's fields; rare enough to rebuild the object for.
            let mut values: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&current.fields).map_err(|_| fmt::Error)?;
            let added: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&format!("{{{text}}}")).map_err(|_| fmt::Error)?;
            values.extend(added);
            current.fields = serde_json::to_string(&values).map_err(|_| fmt::Error)?;
            return Ok(());
        }
        if text.is_empty() {
            return Ok(());
        }
        match current.fields.strip_suffix('}') {
            Some("{") => current.fields.truncate(1),
            Some(body) => {
                let len = body.len();
                current.fields.truncate(len);
                current.fields.push(',');
            }
            None => current.fields = "{".to_owned(),
        }
        current.fields.push_str(&text);
        current.fields.push('}');
        Ok(())
    }
}

/// Whether the JSON object text `object` has a key `name` (the name in
/// quotes, then a colon; field names need no escaping). A string value that
/// looks like one only sends [`JsonFields::add_fields`] the slow way.
fn has_key(object: &str, name: &str) -> bool {
    object
        .match_indices(name)
        .any(|(at, _)| object[..at].ends_with('"') && object[at + name.len()..].starts_with("\":"))
}

/// One JSON object per event: the trace ids, `timestamp`, `level`,
/// `fields`, `target`, and the spans it happened in.
#[derive(Debug, Default)]
pub(crate) struct JsonLines;

impl<S> FormatEvent<S, JsonFields> for JsonLines
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let mut line = String::with_capacity(512);
        line.push('{');
        // The span the event belongs to: its explicit parent, or the
        // current span unless it is an explicit root.
        let leaf = match event.parent() {
            Some(parent) => ctx.span(parent),
            None if event.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        let ids = leaf.as_ref().and_then(|leaf| {
            leaf.scope().find_map(|span| {
                let extensions = span.extensions();
                if let Some(SpanIds(context)) = extensions.get::<SpanIds>() {
                    return Some((context.trace_id(), context.span_id()));
                }
                let data = extensions.get::<OtelData>()?;
                Some((data.trace_id()?, data.span_id()?))
            })
        });
        if let Some((trace_id, span_id)) = ids {
            write!(
                line,
                "\"trace_id\":\"{trace_id}\",\"span_id\":\"{span_id}\","
            )?;
        }
        line.push_str("\"timestamp\":\"");
        SystemTime.format_time(&mut Writer::new(&mut line))?;
        line.push_str("\",\"level\":\"");
        line.push_str(metadata.level().as_str());
        line.push_str("\",\"fields\":");
        write_object(&mut line, |entries| event.record(entries));
        line.push_str(",\"target\":");
        push_string(&mut line, metadata.target());
        if let Some(leaf) = &leaf {
            line.push_str(",\"span\":");
            push_span(&mut line, leaf);
            line.push_str(",\"spans\":[");
            for (i, span) in leaf.scope().from_root().enumerate() {
                if i > 0 {
                    line.push(',');
                }
                push_span(&mut line, &span);
            }
            line.push(']');
        }
        line.push_str("}\n");
        writer.write_str(&line)
    }
}

/// A span as `{<its fields>,"name":"<its name>"}`.
fn push_span<S>(line: &mut String, span: &tracing_subscriber::registry::SpanRef<'_, S>)
where
    S: for<'a> LookupSpan<'a>,
{
    let extensions = span.extensions();
    let fields = extensions
        .get::<FormattedFields<JsonFields>>()
        .and_then(|stored| stored.fields.strip_suffix('}'))
        .filter(|body| body.starts_with('{'));
    match fields {
        Some("{") | None => line.push('{'),
        Some(body) => {
            line.push_str(body);
            line.push(',');
        }
    }
    line.push_str("\"name\":");
    push_string(line, span.name());
    line.push('}');
}

/// Writes `{…}` with the entries that `record` visits.
fn write_object(out: &mut String, record: impl FnOnce(&mut Entries<'_>)) {
    out.push('{');
    record(&mut Entries::new(out));
    out.push('}');
}

/// Writes visited fields as `"name":value` entries, separated by commas.
struct Entries<'a> {
    out: &'a mut String,
    first: bool,
    /// The names written, when [`JsonFields::add_fields`] needs them.
    names: Option<Vec<&'static str>>,
}

impl<'a> Entries<'a> {
    fn new(out: &'a mut String) -> Self {
        Self {
            out,
            first: true,
            names: None,
        }
    }

    /// Starts an entry: the separator and the key.
    fn key(&mut self, field: &Field) -> &mut String {
        let name = field.name();
        // Raw identifiers (`r#type`) are logged without their prefix.
        let name = name.strip_prefix("r#").unwrap_or(name);
        if let Some(names) = &mut self.names {
            names.push(name);
        }
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        push_string(self.out, name);
        self.out.push(':');
        self.out
    }
}

impl Visit for Entries<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        let out = self.key(field);
        if value.is_finite() {
            let _ = write!(out, "{value:?}");
        } else {
            // JSON has no infinities or NaN (serde_json writes null too).
            out.push_str("null");
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        let _ = write!(self.key(field), "{value}");
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        let _ = write!(self.key(field), "{value}");
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.key(field)
            .push_str(if value { "true" } else { "false" });
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        push_string(self.key(field), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let out = self.key(field);
        out.push('"');
        let _ = write!(Escaping(out), "{value:?}");
        out.push('"');
    }
}

/// `value` as a JSON string.
fn push_string(out: &mut String, value: &str) {
    out.push('"');
    escape_into(out, value);
    out.push('"');
}

/// Appends `value` escaped for the inside of a JSON string. The bytes
/// that need escaping are all ASCII, so the scan goes by bytes and cuts
/// only at character boundaries.
fn escape_into(out: &mut String, value: &str) {
    let mut copied = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escaped = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..0x20 => "",
            _ => continue,
        };
        out.push_str(&value[copied..at]);
        if escaped.is_empty() {
            let _ = write!(out, "\\u{byte:04x}");
        } else {
            out.push_str(escaped);
        }
        copied = at + 1;
    }
    out.push_str(&value[copied..]);
}

/// Escapes what is written through it (a `Debug` value's text) into a
/// JSON string.
struct Escaping<'a>(&'a mut String);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;
    use crate::tests::Lines;

    /// Every line written to `lines`, parsed, without its timestamp (the
    /// two formats read the clock at different instants).
    fn parsed(lines: &Lines) -> Vec<Value> {
        let text = lines.text();
        assert!(text.ends_with('\n'), "{text}");
        text.lines()
            .map(|line| {
                let mut value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                let timestamp = value.as_object_mut().unwrap().remove("timestamp").unwrap();
                assert!(timestamp.as_str().unwrap().ends_with('Z'), "{timestamp}");
                value
            })
            .collect()
    }

    #[derive(Debug)]
    struct Refused {
        field: &'static str,
    }

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "refused: \"{}\"\tis missing", self.field)
        }
    }

    impl std::error::Error for Refused {}

    /// Spans and events with every kind of value, some recorded late, one
    /// recorded twice.
    fn log_everything() {
        tracing::info!(target: "dondoc::start", port = 50051u64, "listening outside any span");
        let outer = tracing::info_span!(
            "grpc.server",
            otel.name = "dondoc.assignments.v1.TaskService/CreateTask",
            rpc.grpc.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            quoted = "a \"quoted\" \\ value\nwith a line \u{1} and đ",
        );
        let _outer = outer.enter();
        let inner = tracing::info_span!("db.transaction", r#type = "write", retries = 0i64);
        let _inner = inner.enter();
        inner.record("retries", 2i64);
        outer.record("rpc.grpc.status_code", 5i64);
        outer.record("otel.status_code", "ERROR");
        let error = Refused { field: "due_on" };
        tracing::warn!(
            principal = "users/van-phong",
            latency_ms = 12u64,
            ratio = 0.25f64,
            infinite = f64::INFINITY,
            ok = false,
            code = ?tonic_code(),
            bytes = &b"ab"[..],
            error = &error as &dyn std::error::Error,
            big = u128::MAX,
            "a \"message\" with\tescapes"
        );
        drop(_inner);
        tracing::info!(parent: &outer, "explicit parent");
        tracing::error!(parent: None, "explicit root");
    }

    fn tonic_code() -> (&'static str, i32) {
        ("NotFound", 5)
    }

    #[test]
    fn lines_are_the_objects_of_tracing_subscribers_json_format() {
        let ours = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .fmt_fields(JsonFields)
                .event_format(JsonLines)
                .with_writer(ours.clone()),
        );
        tracing::subscriber::with_default(subscriber, log_everything);
        let theirs = Lines::default();
        let subscriber = tracing_subscriber::registry().with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_writer(theirs.clone()),
        );
        tracing::subscriber::with_default(subscriber, log_everything);

        // A field recorded twice is written once, with its last value
        // (parsing alone would hide a repeated key: the last one wins).
        assert!(!ours.text().contains("\"retries\":0"), "{}", ours.text());
        let (ours, theirs) = (parsed(&ours), parsed(&theirs));
        assert_eq!(ours.len(), 4);
        assert_eq!(ours[..3], theirs[..3]);
        // An explicit root belongs to no span; theirs names the current one.
        assert!(ours[3].get("span").is_none() && ours[3].get("spans").is_none());
        assert_eq!(ours[3]["fields"], theirs[3]["fields"]);
        assert!(theirs[3].get("span").is_some());
        // What the comparison covers.
        let warning = &ours[1];
        assert_eq!(warning["fields"]["latency_ms"], 12);
        assert_eq!(
            warning["fields"]["error"],
            "refused: \"due_on\"\tis missing"
        );
        assert_eq!(warning["fields"]["infinite"], Value::Null);
        assert_eq!(warning["span"]["name"], "db.transaction");
        assert_eq!(warning["span"]["type"], "write");
        assert_eq!(warning["span"]["retries"], 2);
        assert_eq!(warning["spans"][0]["rpc.grpc.status_code"], 5);
        assert_eq!(warning["spans"][0]["otel.status_code"], "ERROR");
        assert_eq!(
            warning["spans"][0]["quoted"],
            "a \"quoted\" \\ value\nwith a line \u{1} and đ"
        );
        assert_eq!(ours[2]["span"]["name"], "grpc.server");
    }

    #[test]
    fn escaping_matches_serde_json_for_every_character_that_needs_it() {
        let text: String = (0u8..0x80).map(char::from).chain("đ€😀".chars()).collect();
        let mut ours = String::new();
        push_string(&mut ours, &text);
        assert_eq!(ours, serde_json::to_string(&text).unwrap());
    }
}
