//! The `tracing` layer: a span opens an observation when it is created (its id and parent fixed
//! then), is current in this crate's context while it is entered (so `#[observe]` functions and
//! manual spans called inside are its children, and it is theirs when created inside them),
//! gathers the values recorded on it, and ends into the same buffers as every observation when
//! it closes. Events raise the level of what they happen in, and become `event` observations.
//! Spans and events of the exporter's own HTTP stack, and of the exporter thread, are ignored.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;

use tracing_core::span::{Attributes, Id, Record};
use tracing_core::{Event, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::{LookupSpan, SpanRef};

use super::closed::ClosedSpans;
use super::fields::Fields;
use super::mapping::{self, Severity};
use crate::gate;
use crate::ids::{ObservationId, TraceId};
use crate::local::origin::new_root_trace;
use crate::local::span::{self as local_span, Placement};
use crate::local::stack::{self, SpanCore, Token};
use crate::record::{raise_level, Level, ObservationType, SpanData, TraceState};
use crate::unobserved;

/// The targets of the exporter's HTTP stack: their spans and events are never recorded (the
/// export of a span would otherwise make more spans to export).
const EXPORTER_TARGETS: [&str; 5] = ["hyper", "hyper_util", "reqwest", "h2", "rustls"];

/// The longest event name taken from its message, in characters.
const EVENT_NAME_CHARS: usize = 200;

/// A [`tracing_subscriber::Layer`] that turns `tracing` spans into Langfuse observations of the
/// same traces as [`#[observe]`](crate::observe); made by [`tracing_layer`].
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
///
/// let subscriber = tracing_subscriber::registry()
///     .with(observe_runtime::tracing_layer().record_info_events(true));
/// tracing::subscriber::with_default(subscriber, || {
///     let _span = tracing::info_span!("retrieve", query = "rust").entered();
///     tracing::info!("three documents"); // an `event` observation under "retrieve"
/// });
/// ```
#[derive(Debug, Clone, Default)]
pub struct TracingLayer {
    info_events: bool,
    /// Another bridge layer is below this one in the same subscriber: that one records the
    /// events (spans are recorded by the first layer that sees them).
    duplicate: bool,
    /// The spans this layer closed lately, for a `follows_from` that names one of them; a
    /// table of its own in each subscriber (their span ids are not unique across them).
    closed: Arc<ClosedSpans>,
}

/// A layer for `tracing_subscriber` that sends `tracing` spans to Langfuse as observations of
/// the same traces as [`#[observe]`](crate::observe), with the OpenTelemetry GenAI fields
/// (`gen_ai.*`) mapped to Langfuse's model, usage, cost, input and output.
///
/// Install it like any layer, with the filter of your choice; it records nothing until
/// [`init`](crate::init) has installed a client.
///
/// ```
/// use tracing_subscriber::layer::SubscriberExt as _;
/// use tracing_subscriber::Layer as _;
///
/// let filter = tracing_subscriber::filter::Targets::new()
///     .with_target("my_app", tracing::Level::DEBUG)
///     .with_target("rig", tracing::Level::INFO);
/// let subscriber = tracing_subscriber::registry()
///     .with(observe_runtime::tracing_layer().with_filter(filter));
/// // tracing::subscriber::set_global_default(subscriber) in a real program
/// # drop(subscriber);
/// ```
pub fn tracing_layer() -> TracingLayer {
    TracingLayer::default()
}

impl TracingLayer {
    /// Also records events at INFO, DEBUG and TRACE (those the filter lets through) as `event`
    /// observations; off by default. WARN and ERROR events inside a trace always are.
    ///
    /// ```
    /// let layer = observe_runtime::tracing_layer().record_info_events(true);
    /// # drop(layer);
    /// ```
    pub fn record_info_events(mut self, record: bool) -> Self {
        self.info_events = record;
        self
    }
}

/// What the layer keeps in a span's registry extensions.
struct Bridged {
    trace: Arc<TraceState>,
    span_id: ObservationId,
    /// The record, while the span is not entered (entered, it sits on that thread's stack);
    /// `None` for a span that is not recorded.
    data: Option<SpanData>,
    recording: bool,
    fields: Fields,
    /// The level raised by the events inside it.
    severity: Severity,
    /// The observations it follows from (`Span::follows_from`): trace and observation ids.
    follows: Vec<(TraceId, ObservationId)>,
}

thread_local! {
    /// The spans entered on this thread through the layer: tracing id and context token.
    static ENTERED: RefCell<Vec<(u64, Token)>> = const { RefCell::new(Vec::new()) };
}

/// Whether `tracing` data from there must never be recorded: the exporter's HTTP stack or the
/// exporter thread.
fn ignored(metadata: &Metadata<'_>) -> bool {
    is_exporter_target(metadata.target()) || unobserved::active()
}

/// Whether `target` is one of the exporter's HTTP stack or a module of one.
fn is_exporter_target(target: &str) -> bool {
    EXPORTER_TARGETS.iter().any(|stack| {
        target
            .strip_prefix(stack)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
    })
}

/// The span itself or its nearest ancestor that the layer records.
fn nearest<'a, S>(span: SpanRef<'a, S>) -> Option<SpanRef<'a, S>>
where
    S: for<'lookup> LookupSpan<'lookup>,
{
    span.scope()
        .find(|span| span.extensions().get::<Bridged>().is_some())
}

/// The trace and the observation `span` (recorded by the layer) stands for.
fn placement_of<S>(span: &SpanRef<'_, S>) -> Option<Placement>
where
    S: for<'lookup> LookupSpan<'lookup>,
{
    span.extensions()
        .get::<Bridged>()
        .map(|bridged| (bridged.trace.clone(), Some(bridged.span_id)))
}

/// Where a new span goes: under its explicit parent, else under what is current on this thread
/// (the innermost of entered spans and observations), else under the contextual span, else in a
/// new trace.
///
/// The parent is marked shared, as when a context handle is taken on it: the new span may be
/// entered and end on other threads, after the parent, which must then have been sent.
fn placement_for<S>(attributes: &Attributes<'_>, ctx: &Context<'_, S>) -> Placement
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    if attributes.is_root() {
        return new_root_trace();
    }
    let explicit = attributes
        .parent()
        .and_then(|parent| ctx.span(parent))
        .and_then(nearest);
    if let Some(placement) = explicit.as_ref().and_then(adopted_by) {
        return placement;
    }
    if let Some(here) = stack::current_parent() {
        if let Some(parent) = here.1 {
            // Its record is on this thread's stack (when it is recorded here).
            stack::with_span_data(parent, |data| data.mark_shared());
        }
        return here;
    }
    ctx.lookup_current()
        .and_then(nearest)
        .as_ref()
        .and_then(adopted_by)
        .unwrap_or_else(new_root_trace)
}

/// The placement under `parent` (recorded by the layer) for a new span, the parent marked
/// shared; its record is in its extensions unless it is entered somewhere.
fn adopted_by<S>(parent: &SpanRef<'_, S>) -> Option<Placement>
where
    S: for<'lookup> LookupSpan<'lookup>,
{
    let mut extensions = parent.extensions_mut();
    let bridged = extensions.get_mut::<Bridged>()?;
    match bridged.data.as_mut() {
        Some(data) => data.mark_shared(),
        None => stack::with_span_data(bridged.span_id, |data| data.mark_shared()),
    }
    Some((bridged.trace.clone(), Some(bridged.span_id)))
}

impl<S> Layer<S> for TracingLayer
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    #[allow(unsafe_code)]
    fn on_layer(&mut self, subscriber: &mut S) {
        // SAFETY: the pointer is only tested for presence, never dereferenced.
        let below = unsafe { subscriber.downcast_raw(std::any::TypeId::of::<TracingLayer>()) };
        self.duplicate = below.is_some();
        self.closed = Arc::default();
    }

    fn on_new_span(&self, attributes: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if !gate::enabled() || ignored(attributes.metadata()) {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        if span.extensions().get::<Bridged>().is_some() {
            // A second bridge layer in the same subscriber: the first one records the span.
            return;
        }
        let placement = placement_for(attributes, &ctx);
        let name = Cow::Borrowed(attributes.metadata().name());
        let SpanCore {
            trace,
            span_id,
            data,
        } = local_span::open_at(placement, name, ObservationType::Span);
        let Some(span_id) = span_id else {
            return;
        };
        let mut bridged = Bridged {
            recording: data.is_some(),
            trace,
            span_id,
            data,
            fields: Fields::default(),
            severity: Severity::NONE,
            follows: Vec::new(),
        };
        if bridged.recording {
            let limit = bridged.trace.options.field_limit;
            attributes.record(&mut bridged.fields.recorder(limit));
            mapping::apply_trace_fields(&bridged.fields, &bridged.fields.names(), &bridged.trace);
        }
        span.extensions_mut().insert(bridged);
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else {
            return;
        };
        let limit = match span.extensions().get::<Bridged>() {
            Some(bridged) if bridged.recording => bridged.trace.options.field_limit,
            _ => return,
        };
        // The values are formatted with no lock held: a `Debug` impl may itself log.
        let mut recorded = Fields::default();
        values.record(&mut recorded.recorder(limit));
        let mut extensions = span.extensions_mut();
        if let Some(bridged) = extensions.get_mut::<Bridged>() {
            let names = recorded.names();
            bridged.fields.merge(recorded);
            mapping::apply_trace_fields(&bridged.fields, &names, &bridged.trace);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        if !gate::enabled() {
            return;
        }
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        let Some(bridged) = extensions.get_mut::<Bridged>() else {
            return;
        };
        // The record moves onto the stack only if the push succeeds.
        let token = stack::push_with(|| SpanCore {
            trace: bridged.trace.clone(),
            span_id: Some(bridged.span_id),
            data: bridged.data.take(),
        });
        if let Some(token) = token {
            let _ = ENTERED.try_with(|entered| {
                if let Ok(mut entered) = entered.try_borrow_mut() {
                    entered.push((id.into_u64(), token));
                }
            });
        }
    }

    fn on_exit(&self, id: &Id, ctx: Context<'_, S>) {
        let key = id.into_u64();
        let token = ENTERED
            .try_with(|entered| {
                let mut entered = entered.try_borrow_mut().ok()?;
                let index = entered.iter().rposition(|(k, _)| *k == key)?;
                Some(entered.remove(index).1)
            })
            .ok()
            .flatten();
        let Some(token) = token else {
            return;
        };
        let Some(data) = stack::remove(token).and_then(|core| core.data) else {
            return;
        };
        if let Some(span) = ctx.span(id) {
            if let Some(bridged) = span.extensions_mut().get_mut::<Bridged>() {
                bridged.data = Some(data);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else {
            return;
        };
        let Some(bridged) = span.extensions_mut().remove::<Bridged>() else {
            return;
        };
        self.closed
            .remember(id.into_u64(), bridged.trace.trace_id, bridged.span_id);
        let Bridged {
            trace,
            span_id,
            data,
            fields,
            severity,
            follows,
            ..
        } = bridged;
        let Some(mut data) = data else {
            return;
        };
        if !follows.is_empty() {
            let named: Vec<serde_json::Value> = follows
                .iter()
                .map(|(trace_id, span_id)| {
                    serde_json::json!({
                        "trace_id": trace_id.to_string(),
                        "observation_id": span_id.to_string(),
                    })
                })
                .collect();
            let json = serde_json::Value::Array(named).to_string();
            let metadata = &mut data.details().metadata;
            metadata.retain(|(key, _)| key != "follows_from");
            metadata.push(("follows_from".to_string(), json));
        }
        let options = trace.options;
        mapping::apply_span_fields(
            &fields,
            &mut data,
            false,
            options.capture_io,
            options.field_limit,
        );
        raise(&mut data, severity.level, severity.message);
        local_span::close(SpanCore {
            trace,
            span_id: Some(span_id),
            data: Some(data),
        });
    }

    fn on_follows_from(&self, id: &Id, follows: &Id, ctx: Context<'_, S>) {
        // A span that has closed is no longer in the registry: its observation is remembered.
        let other = match ctx.span(follows) {
            Some(span) => span
                .extensions()
                .get::<Bridged>()
                .map(|b| (b.trace.trace_id, b.span_id)),
            None => self.closed.find(follows.into_u64()),
        };
        let Some(other) = other else {
            return;
        };
        let Some(span) = ctx.span(id) else {
            return;
        };
        let mut extensions = span.extensions_mut();
        if let Some(bridged) = extensions.get_mut::<Bridged>() {
            // A second bridge layer of the same subscriber sees the same call: once is enough.
            if bridged.recording && !bridged.follows.contains(&other) {
                bridged.follows.push(other);
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let metadata = event.metadata();
        if self.duplicate || !gate::enabled() || ignored(metadata) {
            return;
        }
        let level = match *metadata.level() {
            tracing_core::Level::ERROR => Level::Error,
            tracing_core::Level::WARN => Level::Warning,
            tracing_core::Level::INFO => Level::Default,
            _ => Level::Debug,
        };
        let severe = level >= Level::Warning;
        if !severe && !self.info_events {
            return;
        }
        let Some((placement, span)) = event_placement(event, &ctx) else {
            return;
        };
        if !placement.0.is_recording() {
            return;
        }
        let options = placement.0.options;
        let mut fields = Fields::default();
        event.record(&mut fields.recorder(options.field_limit));
        let message = fields.get("message").map(|value| value.text());
        let error = fields.get("error").map(|value| value.text());
        let text = match (&message, &error) {
            (Some(message), Some(error)) => Some(format!("{message}: {error}")),
            (Some(text), None) | (None, Some(text)) => Some(text.clone()),
            (None, None) => None,
        };
        if severe {
            match &span {
                Some(span) => {
                    if let Some(bridged) = span.extensions_mut().get_mut::<Bridged>() {
                        bridged.severity.raise(level, text.clone());
                    }
                }
                None => {
                    if let Some(id) = placement.1 {
                        stack::with_span_data(id, |data| raise(data, level, text.clone()));
                    }
                }
            }
        }
        let name = match (&message, &error) {
            (Some(message), _) => cut(message),
            (None, Some(error)) => cut(error),
            (None, None) => metadata.name().to_string(),
        };
        let mut core = local_span::open_at(placement, Cow::Owned(name), ObservationType::Event);
        if let Some(data) = core.data.as_mut() {
            data.set_level(level);
            if let (true, Some(text)) = (severe, text) {
                *data.status_message_mut() = Some(text);
            }
            mapping::apply_span_fields(
                &fields,
                data,
                true,
                options.capture_io,
                options.field_limit,
            );
            if let Some(message) = message.filter(|m| m.chars().count() > EVENT_NAME_CHARS) {
                let json = crate::capture::serialize_json(&message, options.field_limit);
                data.details().metadata.push(("message".to_string(), json));
            }
        }
        local_span::close(core);
    }
}

/// Where an event happened: the trace and observation it belongs to, and the span recorded by
/// the layer when that is it (else the observation is one of this crate's, current here).
/// `None` outside any trace: a stray log line starts no trace.
fn event_placement<'a, S>(
    event: &Event<'_>,
    ctx: &'a Context<'_, S>,
) -> Option<(Placement, Option<SpanRef<'a, S>>)>
where
    S: Subscriber + for<'lookup> LookupSpan<'lookup>,
{
    if event.is_root() {
        return None;
    }
    if let Some(parent) = event.parent() {
        if let Some(span) = ctx.span(parent).and_then(nearest) {
            return placement_of(&span).map(|placement| (placement, Some(span)));
        }
    }
    let current = ctx.lookup_current().and_then(nearest);
    match stack::current_parent() {
        Some(here) => {
            // The span entered here when it is what is current, else an observation inside it.
            let span = current.filter(|span| {
                placement_of(span).is_some_and(|(_, id)| id.is_some() && id == here.1)
            });
            Some((here, span))
        }
        None => {
            let span = current?;
            placement_of(&span).map(|placement| (placement, Some(span)))
        }
    }
}

/// Raises the level of a record to WARNING or ERROR, with the message that came with it.
fn raise(data: &mut SpanData, level: Level, message: Option<String>) {
    let mut now = data.level();
    let details = data.details.get_or_insert_with(Box::default);
    raise_level(&mut now, &mut details.status_message, level, message);
    data.set_level(now);
}

/// An event's name from its text: at most [`EVENT_NAME_CHARS`] characters.
fn cut(text: &str) -> String {
    match text.char_indices().nth(EVENT_NAME_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_stack_is_recognized_by_crate_not_by_prefix() {
        for target in [
            "hyper",
            "hyper::proto::h1",
            "hyper_util::client::legacy",
            "h2::codec",
        ] {
            assert!(is_exporter_target(target), "{target}");
        }
        for target in ["hyperion", "h2o", "my_app::reqwest_wrapper", "rustlsx"] {
            assert!(!is_exporter_target(target), "{target}");
        }
    }

    #[test]
    fn event_names_are_cut_at_a_character_boundary() {
        assert_eq!(cut("short"), "short");
        let long = "é".repeat(EVENT_NAME_CHARS + 5);
        let name = cut(&long);
        assert_eq!(name.chars().count(), EVENT_NAME_CHARS + 1);
        assert!(name.ends_with('…'));
    }
}
