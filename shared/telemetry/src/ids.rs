//! The tracer of a process that exports no spans.
//!
//! Spans still need OpenTelemetry ids: log lines carry them and calls and
//! events propagate them. The SDK's tracer would build a span that keeps
//! every attribute, then drop it at the end for want of a processor; this
//! one gives each span its ids and nothing else, decided as the SDK decides
//! them by default (random ids, the parent's trace and flags, sampled when
//! there is no parent).

use std::borrow::Cow;
use std::time::SystemTime;

use opentelemetry::trace::{
    Span, SpanBuilder, SpanContext, Status, TraceContextExt as _, TraceFlags, Tracer,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{IdGenerator as _, RandomIdGenerator};

/// Gives spans ids, records nothing.
#[derive(Debug, Default)]
pub(crate) struct IdsTracer {
    ids: RandomIdGenerator,
}

/// A span that is only its context.
#[derive(Debug)]
pub(crate) struct IdsSpan(SpanContext);

impl Tracer for IdsTracer {
    type Span = IdsSpan;

    fn build_with_context(&self, builder: SpanBuilder, parent: &Context) -> IdsSpan {
        let parent = parent.span();
        let parent = parent.span_context();
        let span_id = builder.span_id.unwrap_or_else(|| self.ids.new_span_id());
        let context = if parent.is_valid() {
            SpanContext::new(
                parent.trace_id(),
                span_id,
                parent.trace_flags(),
                false,
                parent.trace_state().clone(),
            )
        } else {
            SpanContext::new(
                builder.trace_id.unwrap_or_else(|| self.ids.new_trace_id()),
                span_id,
                TraceFlags::SAMPLED,
                false,
                Default::default(),
            )
        };
        IdsSpan(context)
    }
}

impl Span for IdsSpan {
    fn add_event_with_timestamp<T>(&mut self, _name: T, _at: SystemTime, _attributes: Vec<KeyValue>)
    where
        T: Into<Cow<'static, str>>,
    {
    }

    fn span_context(&self) -> &SpanContext {
        &self.0
    }

    fn is_recording(&self) -> bool {
        false
    }

    fn set_attribute(&mut self, _attribute: KeyValue) {}

    fn set_status(&mut self, _status: Status) {}

    fn update_name<T>(&mut self, _new_name: T)
    where
        T: Into<Cow<'static, str>>,
    {
    }

    fn add_link(&mut self, _span_context: SpanContext, _attributes: Vec<KeyValue>) {}

    fn end_with_timestamp(&mut self, _timestamp: SystemTime) {}
}
