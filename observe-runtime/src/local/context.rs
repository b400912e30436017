//! The [`TraceContext`] handle that carries a trace to other threads, tasks, processes and
//! services, and the [`ContextGuard`] that keeps one current. The W3C text forms are read and
//! written in `w3c`; what is current lives on the thread's `stack`.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::origin::{new_trace, rebound};
use super::stack::{self, SpanCore, Token};
use super::w3c::{self, TraceparentError};
use crate::diagnostics;
use crate::gate;
use crate::ids::{ObservationId, TraceId};
use crate::record::baggage;
use crate::record::TraceState;

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
        let (trace, span_id) = stack::share_top()?;
        Some(TraceContext::new(trace, span_id))
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
        let (trace_id, parent, sampled) = w3c::parse_traceparent(header)?;
        Ok(TraceContext::new(
            new_trace(trace_id, Some(parent), Some(sampled)),
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
        w3c::traceparent(trace.trace_id, span_id, trace.options.sampled)
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
        let token = stack::push(SpanCore {
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
    token: Option<Token>,
    _not_send: PhantomData<*const ()>,
}

impl Drop for ContextGuard {
    fn drop(&mut self) {
        // An attached context ends nothing: it only stops being current.
        if let Some(token) = self.token {
            drop(stack::remove(token));
        }
    }
}
