//! Span ids for a process that exports no spans.
//!
//! Spans still need OpenTelemetry ids: log lines carry them and calls and
//! events propagate them. `tracing-opentelemetry`'s layer would also record
//! every field of every span as an attribute, its enters and exits, and the
//! span itself at its end, all for nothing when nothing is exported: about
//! 1.2 µs a span, against 0.05 µs for this layer. Ids are decided as the
//! SDK decides them by default: random, the parent's trace and flags, a new
//! sampled trace without a parent.

use opentelemetry::trace::{SpanContext, TraceFlags, TraceState};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Gives every span a [`SpanIds`] when it is created.
#[derive(Debug, Default)]
pub(crate) struct IdsLayer {
    ids: RandomIdGenerator,
}

/// A span's OpenTelemetry context, in its extensions.
#[derive(Debug, Clone)]
pub(crate) struct SpanIds(pub(crate) SpanContext);

impl SpanIds {
    /// Makes the span the child of `parent`, a remote context: its trace,
    /// flags and state, the span's own id.
    pub(crate) fn continue_remote(&mut self, parent: &SpanContext) {
        self.0 = SpanContext::new(
            parent.trace_id(),
            self.0.span_id(),
            parent.trace_flags(),
            false,
            parent.trace_state().clone(),
        );
    }
}

impl<S> tracing_subscriber::Layer<S> for IdsLayer
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, _attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = span
            .parent()
            .and_then(|parent| parent.extensions().get::<SpanIds>().cloned());
        let span_id = self.ids.new_span_id();
        let context = match parent {
            Some(SpanIds(parent)) => SpanContext::new(
                parent.trace_id(),
                span_id,
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            ),
            None => SpanContext::new(
                self.ids.new_trace_id(),
                span_id,
                TraceFlags::SAMPLED,
                false,
                TraceState::NONE,
            ),
        };
        span.extensions_mut().insert(SpanIds(context));
    }
}

/// Runs `f` on the ids of `span`, when it has them (this layer is
/// installed and the span is enabled).
pub(crate) fn with_span_ids<R>(
    span: &tracing::Span,
    f: impl FnOnce(&mut SpanIds) -> R,
) -> Option<R> {
    let mut f = Some(f);
    let mut result = None;
    span.with_subscriber(|(id, dispatch)| {
        let Some(registry) = dispatch.downcast_ref::<tracing_subscriber::Registry>() else {
            return;
        };
        let Some(data) = registry.span(id) else {
            return;
        };
        let mut extensions = data.extensions_mut();
        if let (Some(ids), Some(f)) = (extensions.get_mut::<SpanIds>(), f.take()) {
            result = Some(f(ids));
        }
    });
    result
}
