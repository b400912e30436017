//! # observe: Langfuse observability for Rust
//!
//! Put [`#[observe]`](observe) on functions, hold the [`FlushGuard`] from [`init`] in `main`, set
//! the `LANGFUSE_*` environment variables, and every call arrives in Langfuse as a trace of nested
//! observations with inputs, outputs, errors, model, tokens, cost and latency.
//!
//! ```
//! use observe_runtime::observe;
//!
//! #[observe]
//! fn retrieve(query: &str) -> Vec<String> {
//!     vec![format!("doc about {query}")]
//! }
//!
//! #[observe(name = "llm-call", as_type = "generation")]
//! fn call_llm(prompt: String) -> Result<String, std::io::Error> {
//!     observe_runtime::current_observation()
//!         .model("gpt-4o")
//!         .usage(observe_runtime::Usage { input: 12, output: 30, ..Default::default() });
//!     Ok(format!("answer to {prompt}"))
//! }
//!
//! fn main() -> Result<(), observe_runtime::ConfigError> {
//!     let _guard = observe_runtime::init()?; // reads LANGFUSE_*; flushes when dropped
//!     let docs = retrieve("rust");
//!     let _ = call_llm(docs.join("\n"));
//!     Ok(())
//! }
//! ```
//!
//! Scores (evaluations, user feedback) go to the same traces: [`score_current_trace`],
//! [`score_current_observation`], [`score_trace`] for feedback that comes later, and [`Score`]
//! for comments, metadata, sessions and dataset runs.
//!
//! Code already instrumented with `tracing` (your `#[tracing::instrument]` functions, rig, genai,
//! swiftide) joins the same traces through `tracing_layer()`, a `tracing_subscriber` layer
//! behind the `tracing` feature that maps the OpenTelemetry GenAI fields to Langfuse's model,
//! usage, cost, input and output.
//!
//! With no keys set, traces are printed to stderr as trees. Traces go to Langfuse as OpenTelemetry
//! spans over HTTP (OTLP), from one exporter thread that never blocks the program: a full queue
//! drops and counts ([`stats`]), and shutdown is bounded by `LANGFUSE_SHUTDOWN_TIMEOUT` even with
//! the backend down.

#![warn(missing_docs)]
// Three FFI and downcast calls are allowed where they are, each with its SAFETY note.
#![deny(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

// The layers, bottom up; a module never imports one above it (`.ci/module_cycles.py` checks).
// Leaves:
mod capture;
mod clock;
mod diagnostics;
mod ids;
mod mask;
mod media;
mod percent;
mod python_json;
mod sync;
mod text;
mod unobserved;
// What an ended observation is:
mod record;
// Everything after the hand-over:
mod export;
// The public REST API, and prompt management on it:
mod api;
mod dataset;
mod prompt;
// Settings:
mod config;
// The installed client:
mod gate;
// The user's threads:
mod local;
// `tracing` spans as observations:
#[cfg(feature = "tracing")]
mod bridge;
// Start, flush, shutdown:
mod lifecycle;
// Experiments over datasets (they flush at the end):
mod experiment;
// Testing the user's own application: per-test capture scopes.
pub mod testing;

#[doc(hidden)]
#[path = "private.rs"]
pub mod __private;

#[doc = include_str!("observe.md")]
pub use observe_macros::observe;

pub use api::{trace_url, ApiError};
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
pub use bridge::{tracing_layer, TracingLayer};
pub use capture::DEFAULT_FIELD_LIMIT;
pub use config::{
    Config, ConfigError, DEFAULT_BASE_URL, DEFAULT_MAX_QUEUE, DEFAULT_SPOOL_MAX_BYTES,
    MAX_QUEUE_LIMIT,
};
pub use dataset::{
    create_dataset, create_dataset_item, get_dataset, get_dataset_async, CreateDataset,
    CreateDatasetItem, Dataset, DatasetItem,
};
pub use experiment::{
    Evaluation, EvaluatorInput, Experiment, ExperimentData, ExperimentError, ExperimentResult,
    IntoEvaluations, ItemResult, DEFAULT_TASKS, DEFAULT_THREADS,
};
pub use export::{AuthCheck, AuthError, Exporter, MemoryExporter, Project, Stats};
pub use ids::{IdParseError, ObservationId, TraceId};
pub use lifecycle::{flush, FlushError, FlushGuard, ShutdownReport};
pub use local::context::{ContextGuard, TraceContext};
pub use local::fanout::{bind, bind_each, task, thread};
pub use local::future::{FutureExt, InContext};
pub use local::handle::{current_observation, ObservationHandle};
pub use local::score::{score_current_observation, score_current_trace, score_trace, Score};
pub use local::span::{span, ActiveSpan, DetachedSpan, EnteredSpan, SpanBuilder};
pub use local::trace::{current_trace, TraceHandle};
pub use local::w3c::TraceparentError;
pub use mask::Mask;
pub use media::{Media, MediaAttachment, MediaField};
pub use prompt::{
    create_prompt, get_prompt, set_prompt_labels, set_prompt_labels_async, ChatMessage,
    CreatePrompt, Prompt, PromptError, PromptRequest, DEFAULT_PROMPT_CACHE_TTL,
};
pub use record::{
    Cost, ExperimentAttributes, FinishedScore, FinishedSpan, Level, ObservationFields,
    ObservationType, PromptLink, ScoreValue, TraceAttributes, Usage,
};

/// Reads the environment and starts tracing: the same as `Config::from_env().init()`.
///
/// Keep the returned guard alive in `main`: dropping it flushes and shuts down.
pub fn init() -> Result<FlushGuard, ConfigError> {
    Config::from_env().init()
}

/// What the exporter has done so far: spans queued, exported, dropped (by reason), retries and
/// failed requests, and the last error. After a shutdown, the final numbers of that client; all
/// zero before the first `init`.
pub fn stats() -> Stats {
    lifecycle::stats()
}

/// Asks the server whether the configured keys are valid for this host
/// (`GET {base}/api/public/projects`) and returns the project, or an error that quotes the
/// server's message and names the base URL (and, for Langfuse Cloud, the other regions).
///
/// Meant for start-up or a CLI check when keys or region are in doubt, not for every request. It
/// blocks up to the shutdown timeout; from async code call it in `spawn_blocking`.
pub fn auth_check() -> Result<AuthCheck, AuthError> {
    match gate::installed() {
        Some(client) => lifecycle::auth_check(&client),
        None => Err(AuthError::NotInitialized),
    }
}

/// The id of the trace running on this thread, if it is recorded.
pub fn current_trace_id() -> Option<TraceId> {
    current_trace().id()
}

/// The id of the observation running on this thread, if it is recorded.
pub fn current_observation_id() -> Option<ObservationId> {
    current_observation().id()
}
