//! One observation from start to end: ids, clock, name, type, what the setters stored, and the
//! finished record handed to the exporter. Also the manual-span API ([`span`], [`ActiveSpan`]).
//! Knows nothing about HTTP, protobuf or Langfuse attribute names.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::capture;
use crate::client;
use crate::context;
use crate::ids::{ObservationId, TraceId};
use crate::observation::{Cost, Level, ObservationType, Usage};
use crate::trace::{TraceAttributes, TraceState};

/// A prompt a generation was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptLink {
    /// The prompt's name in Langfuse.
    pub name: String,
    /// The prompt's version.
    pub version: u32,
}

/// A finished observation, as exporters receive it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct FinishedSpan {
    /// The trace it belongs to.
    pub trace_id: TraceId,
    /// Its own id.
    pub span_id: ObservationId,
    /// The observation it ran under; `None` for the root of a trace.
    pub parent_span_id: Option<ObservationId>,
    /// `true` when its parent is not an observation of this process (the root here).
    pub is_local_root: bool,
    /// Its name.
    pub name: Cow<'static, str>,
    /// Its type.
    pub kind: ObservationType,
    /// Start, in nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// End, in nanoseconds since the Unix epoch.
    pub end_unix_nanos: u64,
    /// The input as JSON text.
    pub input: Option<String>,
    /// The output as JSON text.
    pub output: Option<String>,
    /// The level.
    pub level: Level,
    /// The status message (an error text, `cancelled`, ...).
    pub status_message: Option<String>,
    /// The model of a generation.
    pub model: Option<String>,
    /// The model parameters as JSON text.
    pub model_parameters: Option<String>,
    /// Token counts.
    pub usage: Option<Usage>,
    /// Costs in USD.
    pub cost: Option<Cost>,
    /// When the first token arrived, in nanoseconds since the Unix epoch.
    pub completion_start_unix_nanos: Option<u64>,
    /// The prompt a generation was made from.
    pub prompt: Option<PromptLink>,
    /// Observation metadata: key and JSON text of the value.
    pub metadata: Vec<(String, String)>,
    /// The trace attributes when the span ended.
    pub trace: Arc<TraceAttributes>,
    pub(crate) explicit_input: bool,
    pub(crate) explicit_output: bool,
}

/// Nanoseconds since the Unix epoch (0 for times before it).
pub(crate) fn unix_nanos(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
        .unwrap_or(0)
}

pub(crate) fn now_unix_nanos() -> u64 {
    unix_nanos(SystemTime::now())
}

/// An open observation: the trace it belongs to, its id, and (when recorded) its data.
pub(crate) struct SpanCore {
    pub(crate) trace: Arc<TraceState>,
    pub(crate) span_id: Option<ObservationId>,
    pub(crate) data: Option<Box<FinishedSpan>>,
}

/// Where a new observation goes: its trace and parent.
type Placement = (Arc<TraceState>, Option<ObservationId>);

/// Under the current context of this thread, or in a new trace.
fn placement_here() -> Placement {
    context::current_parent().unwrap_or_else(client::new_root_trace)
}

/// Opens an observation under the current context of this thread (or a new trace).
pub(crate) fn open(name: Cow<'static, str>, kind: ObservationType) -> SpanCore {
    open_at(placement_here(), name, kind)
}

fn open_at(placement: Placement, name: Cow<'static, str>, kind: ObservationType) -> SpanCore {
    let (trace, parent) = placement;
    let span_id = ObservationId::random();
    let data = trace.is_recording().then(|| {
        Box::new(FinishedSpan {
            trace_id: trace.trace_id,
            span_id,
            parent_span_id: parent,
            is_local_root: parent.is_none() || parent == trace.remote_parent,
            name,
            kind,
            start_unix_nanos: now_unix_nanos(),
            end_unix_nanos: 0,
            input: None,
            output: None,
            level: Level::Default,
            status_message: None,
            model: None,
            model_parameters: None,
            usage: None,
            cost: None,
            completion_start_unix_nanos: None,
            prompt: None,
            metadata: Vec::new(),
            trace: Arc::default(),
            explicit_input: false,
            explicit_output: false,
        })
    });
    SpanCore {
        trace,
        span_id: Some(span_id),
        data,
    }
}

/// Ends an observation and hands it to the client of its trace.
pub(crate) fn close(core: SpanCore) {
    let SpanCore { trace, data, .. } = core;
    let (Some(mut data), Some(client)) = (data, trace.client.as_ref()) else {
        return;
    };
    data.end_unix_nanos = if data.kind == ObservationType::Event {
        data.start_unix_nanos
    } else {
        now_unix_nanos().max(data.start_unix_nanos)
    };
    data.trace = trace.snapshot();
    client.submit(data);
}

/// Starts building a manual observation, for code the attribute cannot annotate.
///
/// ```
/// use observe_runtime::{span, ObservationType};
/// let retrieval = span("vector-search").as_type(ObservationType::Retriever).input(&"query").start();
/// // ... the work; observations opened here become its children ...
/// retrieval.end();
/// ```
pub fn span(name: impl Into<Cow<'static, str>>) -> SpanBuilder {
    SpanBuilder {
        name: name.into(),
        kind: ObservationType::Span,
        input: None,
        placement: None,
    }
}

/// A manual observation being configured; see [`span`].
#[must_use = "call .start() to open the observation"]
pub struct SpanBuilder {
    name: Cow<'static, str>,
    kind: ObservationType,
    input: Option<String>,
    /// Decided when first needed (to know whether the input is worth serializing).
    placement: Option<Placement>,
}

impl std::fmt::Debug for SpanBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpanBuilder")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl SpanBuilder {
    /// Sets the observation type.
    pub fn as_type(mut self, kind: ObservationType) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the input (serialized only when the observation will be recorded).
    pub fn input(mut self, value: impl Serialize) -> Self {
        if !client::enabled() {
            return self;
        }
        let (trace, _) = self.placement.get_or_insert_with(placement_here);
        if let Some(client) = &trace.client {
            self.input = Some(capture::serialize_json(&value, client.field_limit()));
        }
        self
    }

    /// Opens the observation and makes it current on this thread until the returned guard drops.
    pub fn start(self) -> ActiveSpan {
        if !client::enabled() {
            return ActiveSpan {
                token: None,
                _not_send: PhantomData,
            };
        }
        let placement = self.placement.unwrap_or_else(placement_here);
        let mut core = open_at(placement, self.name, self.kind);
        if let Some(data) = core.data.as_deref_mut() {
            if let Some(input) = self.input {
                data.input = Some(input);
                data.explicit_input = true;
            }
        }
        ActiveSpan {
            token: Some(context::push(core)),
            _not_send: PhantomData,
        }
    }
}

/// A running manual observation: current on this thread until it is dropped or [`ActiveSpan::end`]ed.
///
/// It stays on the thread that started it (it is not `Send`); to carry a trace into other threads
/// or tasks, use [`crate::TraceContext`].
#[must_use = "the observation ends when this guard is dropped"]
#[derive(Debug)]
pub struct ActiveSpan {
    token: Option<u64>,
    _not_send: PhantomData<*const ()>,
}

impl ActiveSpan {
    /// The id of the observation, when it is recorded.
    pub fn id(&self) -> Option<ObservationId> {
        self.token.and_then(context::span_id_of)
    }

    /// Ends the observation now.
    pub fn end(self) {}
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        if let Some(mut core) = context::remove(token) {
            if std::thread::panicking() {
                if let Some(data) = core.data.as_deref_mut() {
                    data.level = Level::Error;
                    data.status_message = Some(panic_message());
                }
            }
            close(core);
        }
    }
}

thread_local! {
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// The text of a panic payload.
pub(crate) fn payload_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked (the panic payload is not a string)".to_string())
}

/// The message of the panic unwinding this thread now, as seen by the hook `init` installs.
pub(crate) fn panic_message() -> String {
    LAST_PANIC
        .try_with(|last| last.borrow().clone())
        .ok()
        .flatten()
        .unwrap_or_else(|| "panicked".to_string())
}

/// Installs (once) a panic hook that remembers each thread's panic message for the observations
/// the panic unwinds through, then calls the hook that was there before.
pub(crate) fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = payload_text(info.payload());
            let _ = LAST_PANIC.try_with(|last| {
                if let Ok(mut last) = last.try_borrow_mut() {
                    *last = Some(message);
                }
            });
            previous(info);
        }));
    });
}
