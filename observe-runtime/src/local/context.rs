//! The trace context: a thread-local stack of what is running (our observations and attached
//! contexts), the [`TraceContext`] handle that carries a trace to other threads, tasks and
//! processes. No lock and no allocation on push and pop once the stack has grown; user code is
//! never called while the stack is borrowed.

use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};

use arc_swap::ArcSwap;

use super::origin::{new_trace, rebound};
use crate::diagnostics;
use crate::gate;
use crate::ids::{ObservationId, TraceId};
use crate::record::baggage;
use crate::record::{SpanData, TraceState};

/// An open observation: the trace it belongs to, its id, and (when recorded) its data.
pub(crate) struct SpanCore {
    pub(crate) trace: Arc<TraceState>,
    pub(crate) span_id: Option<ObservationId>,
    pub(crate) data: Option<SpanData>,
}

struct Frame {
    token: u64,
    core: SpanCore,
}

/// This thread's stack of what is current, and the token the next push gets.
struct Stack {
    frames: Vec<Frame>,
    next_token: u64,
    /// Frames that hold a recorded observation.
    recording: usize,
}

impl std::ops::Deref for Stack {
    type Target = Vec<Frame>;
    fn deref(&self) -> &Vec<Frame> {
        &self.frames
    }
}

impl std::ops::DerefMut for Stack {
    fn deref_mut(&mut self) -> &mut Vec<Frame> {
        &mut self.frames
    }
}

/// Recorded observations still open on a thread when its thread-locals were destroyed: at
/// `exit`, glibc destroys the exiting thread's before the exit hooks run, and a thread may end
/// with a guard leaked. Kept for the exit hook, up to [`LEFT_OPEN_LIMIT`].
static LEFT_OPEN: Mutex<Vec<SpanCore>> = Mutex::new(Vec::new());
const LEFT_OPEN_LIMIT: usize = 4096;

fn left_open() -> MutexGuard<'static, Vec<SpanCore>> {
    match LEFT_OPEN.lock() {
        Ok(left) => left,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        if self.recording == 0 {
            return;
        }
        let mut left = left_open();
        for frame in self.frames.drain(..).rev() {
            if frame.core.data.is_some() && left.len() < LEFT_OPEN_LIMIT {
                left.push(frame.core);
            }
        }
    }
}

thread_local! {
    static STACK: RefCell<Stack> = const {
        RefCell::new(Stack {
            frames: Vec::new(),
            next_token: 1,
            recording: 0,
        })
    };
}

/// Makes `core` current; returns the token that takes it back.
pub(crate) fn push(core: SpanCore) -> u64 {
    push_with(move || core)
}

/// Makes what `make` builds current, building it in its place on the stack; returns the token
/// that takes it back (0 when the stack cannot be reached).
#[inline]
pub(crate) fn push_with(make: impl FnOnce() -> SpanCore) -> u64 {
    STACK
        .try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else {
                return 0;
            };
            let token = stack.next_token;
            stack.next_token = token.wrapping_add(1).max(1);
            let core = make();
            stack.recording += usize::from(core.data.is_some());
            stack.frames.push(Frame { token, core });
            token
        })
        .unwrap_or(0)
}

/// Takes back what `push` made current (usually the top of the stack).
pub(crate) fn remove(token: u64) -> Option<SpanCore> {
    if token == 0 {
        return None;
    }
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let core = if stack.last().is_some_and(|f| f.token == token) {
                stack.frames.pop()?.core
            } else {
                let index = stack.iter().rposition(|f| f.token == token)?;
                #[cfg(debug_assertions)]
                warn_out_of_order();
                stack.frames.remove(index).core
            };
            stack.recording -= usize::from(core.data.is_some());
            Some(core)
        })
        .ok()
        .flatten()
}

/// Takes everything off this thread's stack, top first, then the recorded observations left
/// open by threads whose thread-locals are gone (the process is ending: the guards that would
/// have taken them back will not run, or will find nothing).
pub(crate) fn take_all() -> Vec<SpanCore> {
    let mut all = STACK
        .try_with(|stack| {
            let Ok(mut stack) = stack.try_borrow_mut() else {
                return Vec::new();
            };
            stack.recording = 0;
            stack.frames.drain(..).rev().map(|f| f.core).collect()
        })
        .unwrap_or_default();
    all.append(&mut left_open());
    all
}

/// A guard ended while what was made current after it still is: usually a guard held across an
/// `.await` on a thread shared by tasks.
#[cfg(debug_assertions)]
fn warn_out_of_order() {
    crate::diagnostics::warn_once(
        "guards-out-of-order",
        "an observation or attached context ended while one made current after it was still \
         current: a guard (ActiveSpan, ContextGuard) was probably held across an .await; \
         observations of other tasks may have landed under it. Use #[observe] on the async fn \
         or FutureExt::in_context instead (reported once, in debug builds only)",
    );
}

fn with_top<R>(f: impl FnOnce(&Frame) -> R) -> Option<R> {
    STACK
        .try_with(|stack| stack.try_borrow().ok()?.last().map(f))
        .ok()
        .flatten()
}

/// The trace and parent observation a new observation opened here hangs under.
pub(crate) fn current_parent() -> Option<(Arc<TraceState>, Option<ObservationId>)> {
    with_top(|f| (f.core.trace.clone(), f.core.span_id))
}

pub(crate) fn current_trace_state() -> Option<Arc<TraceState>> {
    with_top(|f| f.core.trace.clone())
}

/// The recorded trace running on this thread, and the observation running in it when that one
/// is ours and recorded (both read from the same frame).
pub(crate) fn current_recording_ids() -> Option<(TraceId, Option<ObservationId>)> {
    with_top(|f| {
        f.core.trace.is_recording().then(|| {
            (
                f.core.trace.trace_id,
                f.core.data.as_ref().map(|d| d.span_id),
            )
        })
    })
    .flatten()
}

/// The id of the current observation when it is ours and recorded.
pub(crate) fn current_recording_span_id() -> Option<ObservationId> {
    with_top(|f| f.core.data.as_ref().map(|d| d.span_id)).flatten()
}

pub(crate) fn current_field_limit() -> Option<usize> {
    with_top(|f| {
        f.core
            .trace
            .is_recording()
            .then_some(f.core.trace.options.field_limit)
    })
    .flatten()
}

/// Whether a recorded observation is open on this thread (else what it buffered may go).
pub(crate) fn has_open_recording() -> bool {
    STACK
        .try_with(|stack| stack.try_borrow().map(|s| s.recording > 0).unwrap_or(true))
        .unwrap_or(false)
}

/// Notes on the open observation `parent` of this thread, if it is one, that a child of it was
/// admitted to the queue: it must then be admitted too.
pub(crate) fn mark_child_admitted(parent: ObservationId) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        if let Some(data) = stack
            .iter_mut()
            .rev()
            .filter_map(|f| f.core.data.as_mut())
            .find(|d| d.span_id == parent)
        {
            data.child_admitted = true;
        }
    });
}

pub(crate) fn span_id_of(token: u64) -> Option<ObservationId> {
    with_data_of(token, |data| data.span_id)
}

/// Runs `f` on the data of the recorded observation `push` returned `token` for, if it is on
/// this thread's stack; `f` must not call user code.
pub(crate) fn with_data_of<R>(token: u64, f: impl FnOnce(&mut SpanData) -> R) -> Option<R> {
    STACK
        .try_with(|stack| {
            let mut stack = stack.try_borrow_mut().ok()?;
            let frame = match stack.last_mut() {
                Some(top) if top.token == token => top,
                _ => stack.iter_mut().rev().find(|f| f.token == token)?,
            };
            frame.core.data.as_mut().map(f)
        })
        .ok()
        .flatten()
}

/// Changes the data of a recorded observation of this thread.
pub(crate) fn with_span_data(id: ObservationId, change: impl FnOnce(&mut SpanData)) {
    let _ = STACK.try_with(|stack| {
        let Ok(mut stack) = stack.try_borrow_mut() else {
            return;
        };
        let data = stack
            .iter_mut()
            .rev()
            .filter_map(|f| f.core.data.as_mut())
            .find(|d| d.span_id == id);
        if let Some(data) = data {
            change(data);
        }
    });
}

/// A handle on a running trace and observation: `Clone + Send + Sync`, for carrying the trace to
/// other threads, tasks ([`FutureExt::in_context`](crate::FutureExt::in_context)), processes
/// ([`apply_to`](Self::apply_to)) and services (`traceparent` and `baggage` headers).
///
/// A context is bound to the running client when it is attached, not when it is made: one made
/// before `init` (say [`from_env`](Self::from_env) at start-up) records once tracing runs.
///
/// ```
/// use observe_runtime::{span, TraceContext};
/// let _root = span("request").start();
/// let context = TraceContext::current();
/// std::thread::spawn(move || {
///     let _attached = context.as_ref().map(TraceContext::attach);
///     let _child = span("worker").start(); // a child of "request" when tracing is on
/// })
/// .join()
/// .unwrap();
/// ```
#[derive(Clone)]
pub struct TraceContext {
    /// The trace, shared by the clones of this context: binding it again to a new client
    /// happens once for all of them.
    trace: Arc<ArcSwap<TraceState>>,
    span_id: Option<ObservationId>,
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let trace = self.trace.load();
        f.debug_struct("TraceContext")
            .field("trace_id", &trace.trace_id)
            .field("observation_id", &self.span_id)
            .field("sampled", &trace.options.sampled)
            .finish()
    }
}

/// Why a `traceparent` header was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceparentError {
    value: String,
    reason: String,
}

impl fmt::Display for TraceparentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid traceparent {:?}: {}; expected \"00-<32 lowercase hex trace id>-<16 lowercase hex \
             parent id>-<2 hex flags>\"",
            self.value, self.reason
        )
    }
}

impl std::error::Error for TraceparentError {}

impl TraceparentError {
    pub(crate) fn new(value: &str, reason: impl Into<String>) -> Self {
        TraceparentError {
            value: value.chars().take(100).collect(),
            reason: reason.into(),
        }
    }
}

impl TraceContext {
    fn new(trace: Arc<TraceState>, span_id: Option<ObservationId>) -> TraceContext {
        TraceContext {
            trace: Arc::new(ArcSwap::new(trace)),
            span_id,
        }
    }

    /// The trace, bound to the client installed now.
    fn bound(&self) -> Arc<TraceState> {
        let trace = self.trace.load_full();
        match rebound(&trace) {
            None => trace,
            Some(fresh) => {
                // Another clone may have bound it meanwhile: theirs wins, so all share one.
                let previous = self.trace.compare_and_swap(&trace, fresh.clone());
                if Arc::ptr_eq(&previous, &trace) {
                    fresh
                } else {
                    arc_swap::Guard::into_inner(previous)
                }
            }
        }
    }

    /// The trace and observation running on this thread, if any.
    pub fn current() -> Option<TraceContext> {
        STACK
            .try_with(|stack| {
                let mut stack = stack.try_borrow_mut().ok()?;
                let top = stack.last_mut()?;
                // Children may now end on other threads: the observation is always sent, so
                // that they never arrive without it.
                if let Some(data) = top.core.data.as_mut() {
                    data.shared = true;
                }
                Some(TraceContext::new(top.core.trace.clone(), top.core.span_id))
            })
            .ok()
            .flatten()
    }

    /// A context whose next observation starts (or joins) the given trace, for example an id
    /// taken from an incoming request (see [`TraceId::from_external`]).
    pub fn for_trace(trace_id: TraceId) -> TraceContext {
        TraceContext::new(new_trace(trace_id, None, None), None)
    }

    /// The W3C `traceparent` of a remote caller: observations opened under it join that trace as
    /// children of the caller's span, and keep its sampling decision.
    ///
    /// ```
    /// use observe_runtime::TraceContext;
    /// let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    /// let context = TraceContext::from_traceparent(header).unwrap();
    /// assert_eq!(context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    /// assert!(TraceContext::from_traceparent("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01").is_err());
    /// ```
    pub fn from_traceparent(header: &str) -> Result<TraceContext, TraceparentError> {
        let error = |reason: &str| TraceparentError::new(header, reason);
        let parts: Vec<&str> = header.trim().split('-').collect();
        if parts.len() < 4 {
            return Err(error(&format!(
                "it has {} part(s) separated by '-', not 4",
                parts.len()
            )));
        }
        if parts[0].len() != 2 || !parts[0].bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(error("the version is not two hex characters"));
        }
        if parts[0] == "ff" {
            return Err(error("version ff is invalid in the W3C format"));
        }
        if parts[0] == "00" && parts.len() != 4 {
            let lengths: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            if lengths.len() >= 6 && lengths[1..6] == [8, 4, 4, 4, 12] {
                return Err(error(&format!(
                    "the trace id {:?} is a UUID with dashes; write it as 32 lowercase hex \
                     characters without them (TraceId::from_external turns any id into a trace \
                     id)",
                    parts[1..6].join("-")
                )));
            }
            return Err(error(&format!(
                "version 00 has exactly 4 parts separated by '-' (version, trace id, parent id, \
                 flags), this one has {}",
                parts.len()
            )));
        }
        let trace_id: TraceId = parts[1]
            .parse()
            .map_err(|_| error("the trace id is not 32 lowercase hex characters, not all zero"))?;
        let parent: ObservationId = parts[2]
            .parse()
            .map_err(|_| error("the parent id is not 16 lowercase hex characters, not all zero"))?;
        let flags = u8::from_str_radix(parts[3], 16)
            .ok()
            .filter(|_| parts[3].len() == 2 && parts[3].bytes().all(|b| !b.is_ascii_uppercase()))
            .ok_or_else(|| error("the flags are not two lowercase hex characters"))?;
        Ok(TraceContext::new(
            new_trace(trace_id, Some(parent), Some(flags & 1 == 1)),
            Some(parent),
        ))
    }

    /// Adopts the trace attributes an incoming W3C `baggage` header carries in the keys of the
    /// Langfuse SDKs (`langfuse_session_id`, `langfuse_user_id`, `langfuse_trace_name`,
    /// `langfuse_version`, `langfuse_tags`, `langfuse_metadata_<key>`, and the trace-wide prompt
    /// link `langfuse_prompt_name` with `langfuse_prompt_version`): every observation sent under
    /// this context carries them (the prompt link: every generation).
    ///
    /// Values are read as the official SDKs write them: percent-encoded (this SDK, the JS SDK),
    /// or form-encoded as the Python SDK's propagator writes them, where `+` is a space (a value
    /// is taken as form-encoded only when every other character in it is one that form encoding
    /// leaves as is, so a raw `+` in `mailto:a+b@x` stays a plus). Tags may be a JSON array or a
    /// Python list's text (`['a', 'b']`). Other entries are ignored; a malformed entry is skipped
    /// and reported once on stderr. Metadata values arrive as strings.
    ///
    /// ```
    /// use observe_runtime::TraceContext;
    /// let context = TraceContext::from_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    ///     .unwrap()
    ///     .with_baggage("langfuse_session_id=chat-42,langfuse_user_id=alice");
    /// assert_eq!(context.to_baggage(), "langfuse_session_id=chat-42,langfuse_user_id=alice");
    /// ```
    pub fn with_baggage(self, baggage: &str) -> TraceContext {
        let decoded = baggage::decode(baggage);
        if let Some(first) = decoded.skipped.first() {
            diagnostics::warn_once(
                "baggage",
                format!("a baggage entry was ignored: {first} (reported once)"),
            );
        }
        if !decoded.is_empty() {
            self.trace
                .load()
                .update(|a| baggage::adopt(a, &decoded.attributes));
        }
        self
    }

    /// The trace attributes that travel with this context (session, user, trace name, version,
    /// tags, the trace-wide prompt link, and the metadata keys that fit in 8192 bytes), as a W3C `baggage` header value in
    /// the keys of the Langfuse SDKs; empty when there are none. This is the explicit call:
    /// [`apply_to`](Self::apply_to) and `inject` send it only when
    /// [`Config::propagate_attributes`](crate::Config::propagate_attributes) is on.
    pub fn to_baggage(&self) -> String {
        let encoded = baggage::encode(&self.trace.load().current_attributes());
        if let Some(first) = encoded.left_out.first() {
            diagnostics::warn_once(
                "baggage-left-out",
                format!(
                    "{first} does not travel in baggage: metadata keys must be W3C tokens, and                      baggage holds 8192 bytes and 180 entries (reported once)"
                ),
            );
        }
        encoded.header
    }

    /// The baggage to send, unless propagation is off or there is nothing to carry.
    pub(crate) fn baggage_to_send(&self) -> Option<String> {
        gate::propagates_attributes()
            .then(|| self.to_baggage())
            .filter(|baggage| !baggage.is_empty())
    }

    /// The W3C `traceparent` header of this context (for outgoing requests).
    pub fn to_traceparent(&self) -> String {
        // A context made by `for_trace` has no observation yet: the child's parent id is then a
        // fresh id that no observation has (the W3C format needs one).
        let span_id = self.span_id.unwrap_or_else(ObservationId::random);
        let trace = self.bound();
        format!(
            "00-{}-{}-{}",
            trace.trace_id,
            span_id,
            if trace.options.sampled { "01" } else { "00" }
        )
    }

    /// The context passed to this process in the `TRACEPARENT` environment variable, if any,
    /// with the trace attributes of `BAGGAGE` (unless propagation is off); a malformed value is
    /// reported on stderr and ignored.
    pub fn from_env() -> Option<TraceContext> {
        let value = std::env::var("TRACEPARENT").ok()?;
        match Self::from_traceparent(&value) {
            Ok(context) => Some(match std::env::var("BAGGAGE") {
                Ok(baggage) if gate::propagates_attributes() => context.with_baggage(&baggage),
                _ => context,
            }),
            Err(error) => {
                crate::diagnostics::warn_once(
                    "TRACEPARENT",
                    format!("TRACEPARENT ignored: {error}"),
                );
                None
            }
        }
    }

    /// Passes this context to a child process in `TRACEPARENT`, its trace attributes (session,
    /// user, tags, ...) in `BAGGAGE` (see [`to_baggage`](Self::to_baggage); not when
    /// [`Config::propagate_attributes`](crate::Config::propagate_attributes) is off), and the
    /// `LANGFUSE_*` settings of the running client that neither the command nor this process's
    /// environment already sets (base URL, environment, release, sample rate), **but not the
    /// keys**, not even those this process inherited: a program started this way, such as a tool
    /// that runs generated code, does not get the secret key unless the command sets it. For your own worker processes, which report into the
    /// same trace with a plain `init()`, use [`apply_to_with_keys`](Self::apply_to_with_keys).
    ///
    /// ```no_run
    /// # fn demo() -> std::io::Result<()> {
    /// let mut command = std::process::Command::new("python3");
    /// command.args(["-c", "print('untrusted code')"]);
    /// if let Some(context) = observe_runtime::TraceContext::current() {
    ///     context.apply_to(&mut command); // the trace, not the keys
    /// }
    /// command.status()?;
    /// # Ok(()) }
    /// ```
    pub fn apply_to(&self, command: &mut std::process::Command) {
        self.apply(command, false);
    }

    /// [`apply_to`](Self::apply_to) with `LANGFUSE_PUBLIC_KEY` and `LANGFUSE_SECRET_KEY` too (when
    /// neither the command nor this process's environment sets them), for a worker process of
    /// yours that reports into the same trace with a plain `init()`.
    ///
    /// ```no_run
    /// # fn demo() -> std::io::Result<()> {
    /// let mut command = std::process::Command::new("worker");
    /// if let Some(context) = observe_runtime::TraceContext::current() {
    ///     context.apply_to_with_keys(&mut command);
    /// }
    /// command.status()?;
    /// # Ok(()) }
    /// ```
    pub fn apply_to_with_keys(&self, command: &mut std::process::Command) {
        self.apply(command, true);
    }

    fn apply(&self, command: &mut std::process::Command, with_keys: bool) {
        const KEYS: [&str; 2] = ["LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"];
        command.env("TRACEPARENT", self.to_traceparent());
        if let Some(baggage) = self.baggage_to_send() {
            command.env("BAGGAGE", baggage);
        }
        if let Some(client) = gate::installed() {
            let already: Vec<String> = command
                .get_envs()
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            for (name, value) in &client.child_environment {
                let key = KEYS.contains(name);
                if (with_keys || !key)
                    && !already.iter().any(|k| k == name)
                    && std::env::var_os(name).is_none()
                {
                    command.env(name, value);
                }
            }
        }
        if !with_keys {
            // Not even inherited from this process's environment, unless the command sets them.
            let set: Vec<String> = command
                .get_envs()
                .filter(|(_, value)| value.is_some())
                .map(|(k, _)| k.to_string_lossy().into_owned())
                .collect();
            for key in KEYS {
                if !set.iter().any(|k| k == key) {
                    command.env_remove(key);
                }
            }
        }
    }

    /// The trace id.
    pub fn trace_id(&self) -> TraceId {
        self.trace.load().trace_id
    }

    /// The observation new observations will hang under, if any.
    pub fn observation_id(&self) -> Option<ObservationId> {
        self.span_id
    }

    /// Whether the trace is sampled (recorded).
    pub fn is_sampled(&self) -> bool {
        self.bound().options.sampled
    }

    /// Makes this context current on this thread until the guard drops.
    pub fn attach(&self) -> ContextGuard {
        let token = push(SpanCore {
            trace: self.bound(),
            span_id: self.span_id,
            data: None,
        });
        ContextGuard {
            token,
            _not_send: PhantomData,
        }
    }
}

/// Keeps an attached [`TraceContext`] current until it drops.
///
/// **Do not hold it across an `.await`**: while the task waits, the thread runs other tasks, and
/// they would run in this context. For a future, use
/// [`FutureExt::in_context`](crate::FutureExt::in_context), which makes the context current
/// during each poll only. In debug builds, a guard dropped while what was made current after it
/// still is is reported once on stderr.
#[must_use = "the context is current only while this guard lives"]
#[derive(Debug)]
pub struct ContextGuard {
    token: u64,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        // An attached context ends nothing: it only stops being current.
        drop(remove(self.token));
    }
}
