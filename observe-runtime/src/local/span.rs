//! One observation from start to end on this thread: opening it under the current context,
//! ending it into the thread's buffer, and the manual-span API ([`span`], [`ActiveSpan`]).
//! Knows nothing about HTTP, protobuf or Langfuse attribute names.

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

use super::buffer::{self, HandOver};
use super::origin::new_root_trace;
pub(crate) use super::stack::SpanCore;
use super::stack::{self, Ending, Token};
use crate::capture;
use crate::clock::Ticks;
use crate::gate;
use crate::ids::ObservationId;
use crate::record::{
    deferred, fill_now, EndStamp, Level, ObservationFields, ObservationType, SpanData, TraceState,
};
use crate::text::Text;
use crate::unobserved;

/// Where a new observation goes: its trace and parent.
pub(crate) type Placement = (Arc<TraceState>, Option<ObservationId>);

/// Under the current context of this thread, or in a new trace.
fn placement_here() -> Placement {
    match stack::current_parent() {
        // Inside a capture scope, what no client records starts a trace of the scope.
        Some((trace, _)) if !trace.is_recording() && gate::thread_scope().is_some() => {
            new_root_trace()
        }
        Some(placement) => placement,
        None => new_root_trace(),
    }
}

/// Opens an observation under the current context of this thread (or a new trace) and makes it
/// current, built in its place on the stack; returns its token and its trace's options.
#[inline]
pub(crate) fn open_current(
    name: Cow<'static, str>,
    kind: ObservationType,
) -> (Option<Token>, crate::record::TraceOptions) {
    let mut name = Some(name);
    // Most observations open under the top of the stack, in its trace: no reference taken.
    let under_top = stack::push_under_top(|trace, parent| {
        // Inside a capture scope, what no client records starts a trace of the scope.
        if !trace.is_recording() && gate::thread_scope().is_some() {
            return None;
        }
        let span_id = ObservationId::random();
        let name = name.take()?;
        // On the exporter thread or inside the mask, nothing is recorded (see `unobserved`).
        let build = (trace.is_recording() && !unobserved::active()).then(|| {
            let is_local_root = parent.is_none() || parent == trace.remote_parent;
            #[inline(always)]
            move || SpanData::start(span_id, parent, is_local_root, name, kind)
        });
        Some((span_id, build, trace.options))
    });
    if let Some((token, options)) = under_top {
        return (Some(token), options);
    }
    let placement = new_root_trace();
    let options = placement.0.options;
    let token = name.and_then(|name| stack::push_with(move || open_at(placement, name, kind)));
    (token, options)
}

#[inline(always)]
pub(crate) fn open_at(
    placement: Placement,
    name: Cow<'static, str>,
    kind: ObservationType,
) -> SpanCore {
    let (trace, parent) = placement;
    let span_id = ObservationId::random();
    let data = start_data(&trace, span_id, parent, name, kind);
    SpanCore {
        trace,
        span_id: Some(span_id),
        data,
    }
}

/// The data of an observation opened in `trace` under `parent`, when it is recorded.
#[inline(always)]
fn start_data(
    trace: &TraceState,
    span_id: ObservationId,
    parent: Option<ObservationId>,
    name: Cow<'static, str>,
    kind: ObservationType,
) -> Option<SpanData> {
    // On the exporter thread or inside the mask, nothing is recorded (see `unobserved`).
    (trace.is_recording() && !unobserved::active()).then(|| {
        let is_local_root = parent.is_none() || parent == trace.remote_parent;
        SpanData::start(span_id, parent, is_local_root, name, kind)
    })
}

/// Ends an observation that is off the stack: into this thread's buffer, admitted or dropped
/// and counted.
pub(crate) fn close(core: SpanCore) {
    let mut data = core.data;
    let parent = data.as_ref().and_then(SpanData::parent_here);
    let idle = !stack::has_open_recording();
    let ending = Ending {
        trace: Cow::Owned(core.trace),
        data: &mut data,
        idle,
    };
    let (admitted, hand_over) = end(ending);
    // Not on the stack, it is not counted there: its parent, if it is open here, is marked.
    if let (true, false, Some(parent)) = (admitted, idle, parent) {
        stack::mark_child_admitted(parent);
    }
    hand_over.run();
}

/// Ends the observation `token` on this thread's stack, with what `output` holds as its
/// captured output.
///
/// The output is read where it lies, and only once its tag says it is set: after a short body
/// the handle's one-byte store of its empty output is still in flight, and a move (a wider
/// load over it) waited for that store (about 1 ns a span, BENCHMARKS.md, eighth round).
#[inline(always)]
pub(crate) fn close_on_stack(token: Token, output: &mut Option<Text>) {
    let hand_over = stack::end_with(token, output, |ending, output| {
        if let (true, Some(data)) = (output.is_some(), ending.data.as_mut()) {
            if let Some(output) = output.take() {
                data.set_captured_output(output);
            }
        }
        end(ending)
    });
    if let Some(hand_over) = hand_over {
        hand_over.run();
    }
}

/// Ends an observation: into this thread's buffer, admitted or dropped and counted. Returns
/// whether it was admitted, and the buffer's hand-over, to run once the stack is no longer
/// borrowed.
#[inline(always)]
fn end(ending: Ending<'_>) -> (bool, HandOver) {
    let Ending { trace, data, idle } = ending;
    if data.is_none() {
        return (false, HandOver::default());
    }
    let stamp = EndStamp {
        at: Ticks::now(),
        version: trace.note_version(),
    };
    // The record is moved once, from where it lies into the thread's buffer, and stamped there
    // (stamped before, the move's wide loads waited for the stamp's stores).
    let (admission, hand_over) = buffer::admit(trace, data, idle, stamp);
    (admission.admitted(), hand_over)
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
    /// Opens the observation where it is placed, with the input set on the builder.
    fn open(self) -> SpanCore {
        let placement = self.placement.unwrap_or_else(placement_here);
        let mut core = open_at(placement, self.name, self.kind);
        if let Some(data) = core.data.as_mut() {
            if let Some(input) = self.input {
                data.set_input(input);
            }
        }
        core
    }

    /// Sets the observation type.
    pub fn as_type(mut self, kind: ObservationType) -> Self {
        self.kind = kind;
        self
    }

    /// Sets the input (serialized only when the observation will be recorded).
    pub fn input(mut self, value: impl Serialize) -> Self {
        if !gate::enabled() {
            return self;
        }
        let (trace, _) = self.placement.get_or_insert_with(placement_here);
        if trace.is_recording() {
            self.input = Some(capture::serialize_json(&value, trace.options.field_limit));
        }
        self
    }

    /// Opens the observation and makes it current on this thread until the returned guard drops.
    pub fn start(self) -> ActiveSpan {
        if !gate::enabled() {
            return ActiveSpan {
                token: None,
                unwinding: false,
                _not_send: PhantomData,
            };
        }
        let core = self.open();
        ActiveSpan {
            token: stack::push(core),
            unwinding: std::thread::panicking(),
            _not_send: PhantomData,
        }
    }
}

impl SpanBuilder {
    /// Opens the observation without making it current: it is placed under what is current
    /// here and now (or starts a trace), and becomes current only inside
    /// [`DetachedSpan::enter`]. For observations owned by a future or a stream that may be
    /// polled on other threads (middleware, HTTP bodies): enter it for each poll, never across
    /// an `.await`.
    ///
    /// ```
    /// use observe_runtime::{current_observation, span, ObservationType};
    /// let mut call = span("llm").as_type(ObservationType::Generation).start_detached();
    /// // ... later, maybe on another thread ...
    /// call.in_scope(|| {
    ///     current_observation().model("gpt-4o");
    /// });
    /// call.end();
    /// ```
    pub fn start_detached(self) -> DetachedSpan {
        if !gate::enabled() {
            return DetachedSpan { core: None };
        }
        let core = self.open();
        DetachedSpan { core: Some(core) }
    }
}

/// An open observation that is current nowhere until [entered](DetachedSpan::enter); see
/// [`SpanBuilder::start_detached`]. It is `Send`: a future or a stream can own it and enter it
/// on each poll. Dropping it (or [`DetachedSpan::end`]) ends the observation.
#[must_use = "the observation ends when this value is dropped"]
pub struct DetachedSpan {
    core: Option<SpanCore>,
}

impl std::fmt::Debug for DetachedSpan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetachedSpan")
            .field("id", &self.id())
            .finish()
    }
}

impl DetachedSpan {
    /// Makes the observation current on this thread until the returned guard drops:
    /// [`crate::current_observation`] then reaches it, and observations opened meanwhile
    /// become its children.
    pub fn enter(&mut self) -> EnteredSpan<'_> {
        let token = self.core.take().and_then(stack::push);
        EnteredSpan {
            span: self,
            token,
            unwinding: std::thread::panicking(),
            _not_send: PhantomData,
        }
    }

    /// Runs `f` with the observation current (see [`DetachedSpan::enter`]).
    pub fn in_scope<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let _entered = self.enter();
        f()
    }

    /// The id of the observation, when it is recorded.
    pub fn id(&self) -> Option<ObservationId> {
        self.core.as_ref()?.data.as_ref().map(|data| data.span_id)
    }

    /// Whether the observation is recorded (a client is installed and the trace is sampled).
    pub fn is_recording(&self) -> bool {
        self.core.as_ref().is_some_and(|core| core.data.is_some())
    }

    /// Whether inputs and outputs are to be captured (the `capture_io` setting), as
    /// `#[observe]` decides it; false when the observation is not recorded.
    pub fn captures_io(&self) -> bool {
        self.core
            .as_ref()
            .is_some_and(|core| core.data.is_some() && core.trace.options.capture_io)
    }

    /// The size limit of one captured field in bytes (0 when the observation is not recorded).
    pub fn field_limit(&self) -> usize {
        self.core
            .as_ref()
            .filter(|core| core.data.is_some())
            .map_or(0, |core| core.trace.options.field_limit)
    }

    /// Sets fields of the observation now, without making it current (cheaper than
    /// [`DetachedSpan::in_scope`] with [`current_observation`](crate::current_observation)).
    /// Does nothing when the observation is not recorded.
    ///
    /// ```
    /// use observe_runtime::{span, ObservationType};
    /// let mut call = span("llm").as_type(ObservationType::Generation).start_detached();
    /// call.record(|fields| {
    ///     fields.model("gpt-4o").input(serde_json::json!([{"role": "user", "content": "Hi"}]));
    /// });
    /// call.end();
    /// ```
    pub fn record(&mut self, fill: impl FnOnce(&mut ObservationFields<'_>)) {
        if let Some(core) = self.core.as_mut() {
            let limit = core.trace.options.field_limit;
            if let Some(data) = core.data.as_mut() {
                fill_now(data, limit, fill);
            }
        }
    }

    /// Records values later, off this thread: `fill` runs once the observation has ended, where
    /// its record is prepared for export (the exporter's thread), and sets fields through
    /// [`ObservationFields`]. For values the program does not wait for and that cost time to produce
    /// (an HTTP body to parse and write again): the thread that made the call pays only for
    /// moving what `fill` captures.
    ///
    /// What `fill` captures is held until the span is exported, so keep it bounded (the
    /// observe-openai layer defers only bodies within the field limit). A second call replaces
    /// the first fill; values set directly and by the fill are both kept, the fill's last. A
    /// fill that panics is caught (the span is sent with what was set before), and nothing is
    /// recorded while it runs. Does nothing when the observation is not recorded.
    ///
    /// ```
    /// use observe_runtime::{span, ObservationType};
    /// let mut call = span("llm").as_type(ObservationType::Generation).start_detached();
    /// let body = br#"{"model":"gpt-4o","answer":"Paris"}"#.to_vec();
    /// call.defer(move |later| {
    ///     let answer: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    ///     later.model(answer["model"].as_str().unwrap_or("unknown")).output(&answer["answer"]);
    /// });
    /// call.end();
    /// ```
    pub fn defer(&mut self, fill: impl FnOnce(&mut ObservationFields<'_>) + Send + 'static) {
        if let Some(data) = self.core.as_mut().and_then(|core| core.data.as_mut()) {
            data.details().fill = Some(deferred(fill));
        }
    }

    /// Ends the observation now.
    pub fn end(self) {}
}

impl Drop for DetachedSpan {
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            close(core);
        }
    }
}

/// A [`DetachedSpan`] made current on this thread until this guard drops; see
/// [`DetachedSpan::enter`]. A panic while it is held marks the observation ERROR (not one that
/// was already unwinding when it was entered, in a destructor).
#[must_use = "the observation is current only while this guard lives"]
#[derive(Debug)]
pub struct EnteredSpan<'a> {
    span: &'a mut DetachedSpan,
    token: Option<Token>,
    /// A panic was already unwinding when it was entered (in a destructor): not one that went
    /// through it.
    unwinding: bool,
    _not_send: PhantomData<*const ()>,
}

impl Drop for EnteredSpan<'_> {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let mut core = stack::remove(token);
        if panic_went_through(self.unwinding) {
            if let Some(data) = core.as_mut().and_then(|core| core.data.as_mut()) {
                data.set_level(Level::Error);
                *data.status_message_mut() = Some(panic_message());
            }
        }
        self.span.core = core;
    }
}

/// A running manual observation: current on this thread until it is dropped or [`ActiveSpan::end`]ed.
///
/// It stays on the thread that started it (it is not `Send`); to carry a trace into other threads
/// or tasks, use [`crate::TraceContext`].
///
/// **Do not hold it across an `.await`.** While the task waits, the thread runs other tasks, and
/// the observation would stay current for them: their observations would land under it. In async
/// code, put `#[observe]` on the `async fn`, or run the future under a context with
/// [`FutureExt::in_context`](crate::FutureExt::in_context). In debug builds, a guard dropped
/// while observations opened after it are still current is reported once on stderr.
///
/// A panic that unwinds through it marks the observation ERROR with the panic's message; one
/// that was already unwinding when it started (it was started in a destructor) does not.
#[must_use = "the observation ends when this guard is dropped"]
#[derive(Debug)]
pub struct ActiveSpan {
    token: Option<Token>,
    /// A panic was already unwinding when it started (in a destructor): not one that went
    /// through it.
    unwinding: bool,
    _not_send: PhantomData<*const ()>,
}

impl ActiveSpan {
    /// The id of the observation, when it is recorded.
    pub fn id(&self) -> Option<ObservationId> {
        self.token.and_then(stack::span_id_of)
    }

    /// Ends the observation now.
    pub fn end(self) {}
}

impl Drop for ActiveSpan {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        if let Some(mut core) = stack::remove(token) {
            if panic_went_through(self.unwinding) {
                if let Some(data) = core.data.as_mut() {
                    data.set_level(Level::Error);
                    *data.status_message_mut() = Some(panic_message());
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

/// Whether a panic unwinding this thread now went through something begun when
/// `std::thread::panicking()` was `unwinding`: not when that panic was already unwinding then
/// (it was begun in a destructor the panic runs).
#[inline]
pub(crate) fn panic_went_through(unwinding: bool) -> bool {
    !unwinding && std::thread::panicking()
}

/// The message of the panic unwinding this thread now, as seen by the hook `init` installs.
pub(crate) fn panic_message() -> String {
    LAST_PANIC
        .try_with(|last| last.borrow().clone())
        .ok()
        .flatten()
        .unwrap_or_else(|| "panicked".to_string())
}

/// Remembers the message of the panic now unwinding this thread (called by the panic hook).
pub(crate) fn remember_panic(message: String) {
    let _ = LAST_PANIC.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(message);
        }
    });
}
